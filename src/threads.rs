//! The thread policy, in one place: how many CPU threads a run, the app's run, and each run of a
//! sweep get, and the named pools they run in.
//!
//! `threads = 0` in [`DonutConfig`] means "automatic": every core, on the command line and in
//! the app (whose run yields a core to the UI while the user interacts: `worker`), and an even
//! share of that between the runs of a sweep. A GPU backend always gets one thread.

use crate::config::DonutConfig;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Who a run is for: that decides what an automatic thread count means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Host {
    /// The command line: every core.
    Cli,
    /// The desktop app: every core; its run yields one to the UI while the user interacts.
    App,
}

/// Cores of this machine (1 when unknown).
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The automatic thread count for `host`: every core for both. The app's run sleeps between
/// steps while the user interacts, which keeps frames smooth (BENCHMARKS.md has the figures).
pub fn automatic(host: Host) -> usize {
    match host {
        Host::Cli | Host::App => cores(),
    }
}

/// `config` with `threads = 0` resolved for `host`, shared by `concurrent_runs` runs at once.
/// An explicit thread count is kept as it is.
pub fn resolved(config: &DonutConfig, host: Host, concurrent_runs: usize) -> DonutConfig {
    let mut config = config.clone();
    if config.threads == 0 {
        config.threads = (automatic(host) / concurrent_runs.max(1)).max(1);
    }
    config
}

/// The thread count in force for `config` (0 = every core).
pub fn requested(config: &DonutConfig) -> usize {
    match config.threads {
        0 => automatic(Host::Cli),
        n => n,
    }
}

/// Threads for a run on `config.backend`: the CPU backends use [`requested`]; a GPU backend gets
/// one (a whole batch per kernel launch is what a GPU wants).
pub fn for_backend(config: &DonutConfig) -> usize {
    if config.backend.is_gpu() {
        1
    } else {
        requested(config)
    }
}

/// Niceness of the app's run threads: the UI thread (and the software renderer's) take the CPU
/// whenever they need it, and the run gets every cycle they leave.
pub const BACKGROUND_NICENESS: i32 = 10;

/// Lowers the calling thread's scheduling priority to [`BACKGROUND_NICENESS`] (on Linux, where
/// niceness is per thread and inherited by the threads it starts, such as its compute pools);
/// elsewhere it does nothing. True when it took effect.
pub fn run_in_background() -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: setpriority takes plain integers and touches no memory of ours; `0` names
        // the calling thread on Linux.
        #[allow(unsafe_code)]
        let done = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, BACKGROUND_NICENESS) };
        done == 0
    }
    #[cfg(not(target_os = "linux"))]
    {
        false
    }
}

/// Fewest windows worth a shard of their own in a data-parallel step.
pub const MIN_SHARD_WINDOWS: usize = 32;

/// Shards a batch is cut into at the fewest: four, whatever the thread count up to four, so that a
/// run gives the same numbers on one thread as on four (shard gradients are summed in a fixed
/// order), and so that a thread the system takes away for a moment (the app's renderer) leaves
/// its shards to the others instead of stalling the step. 64-window shards also train faster
/// than 128-window ones on one core (their activations stay in its cache).
pub const MIN_SHARDS: usize = 4;

/// Shards of a data-parallel step: one per thread, at least [`MIN_SHARDS`], each of at least
/// [`MIN_SHARD_WINDOWS`].
pub fn shard_count(threads: usize, batch_size: usize) -> usize {
    threads
        .max(MIN_SHARDS)
        .min(batch_size / MIN_SHARD_WINDOWS)
        .max(1)
}

/// A pool of `threads` named threads (`donut-compute-N`) for training and scoring. burn's CPU
/// kernels that use rayon run inside it too, so `threads` bounds the CPU that a run takes.
pub fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .thread_name(|i| format!("donut-compute-{i}"))
        .build()
        .unwrap_or_else(|_| {
            // Creating threads failed (resource limits): fall back to the calling thread alone.
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .use_current_thread()
                .build()
                .unwrap_or_else(|e| panic!("cannot create even a one-thread pool: {e}"))
        })
}

/// What [`run_pool`] gives back.
#[derive(Debug)]
pub struct PoolRun<R> {
    /// What the work returned for each item it ran to an end (`Some`), in the items' order.
    pub results: Vec<R>,
    /// Worker threads the system would not start (the others, or none, took the items).
    pub threads_not_started: usize,
}

/// Runs `work` on each of `items` on `workers` named scoped threads (`{name}-N`, at most one per
/// item) that take the items in order, each as its last one ends: the pool of the runs of a
/// sweep and of a fleet. A worker takes no further item once `cancel` is set.
pub fn run_pool<T, R, F>(
    name: &str,
    workers: usize,
    items: &[T],
    cancel: &AtomicBool,
    work: F,
) -> PoolRun<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> Option<R> + Sync,
{
    let next = AtomicUsize::new(0);
    let finished = Mutex::new(Vec::new());
    let mut threads_not_started = 0;
    std::thread::scope(|scope| {
        for w in 0..workers.clamp(1, items.len().max(1)) {
            let (next, finished, work) = (&next, &finished, &work);
            let spawned = std::thread::Builder::new()
                .name(format!("{name}-{w}"))
                .spawn_scoped(scope, move || {
                    while !cancel.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        if let Some(result) = work(item) {
                            finished
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push((i, result));
                        }
                    }
                });
            if spawned.is_err() {
                threads_not_started += 1;
            }
        }
    });
    let mut results = finished.into_inner().unwrap_or_else(|e| e.into_inner());
    results.sort_by_key(|(i, _)| *i);
    PoolRun {
        results: results.into_iter().map(|(_, r)| r).collect(),
        threads_not_started,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_runs_every_item_once_and_keeps_their_order() {
        let items: Vec<usize> = (0..23).collect();
        let ran = run_pool("test-pool", 4, &items, &AtomicBool::new(false), |&i| {
            assert!(
                std::thread::current()
                    .name()
                    .unwrap()
                    .starts_with("test-pool-")
            );
            (i % 5 != 0).then_some(i * 10)
        });
        let expected: Vec<usize> = items
            .iter()
            .filter(|&&i| i % 5 != 0)
            .map(|i| i * 10)
            .collect();
        assert_eq!(ran.results, expected);
        assert_eq!(ran.threads_not_started, 0);
    }

    #[test]
    fn a_cancelled_pool_takes_no_further_item() {
        let cancel = AtomicBool::new(false);
        let items: Vec<usize> = (0..50).collect();
        let ran = run_pool("test-cancel", 1, &items, &cancel, |&i| {
            if i == 2 {
                cancel.store(true, Ordering::Relaxed);
            }
            Some(i)
        });
        assert_eq!(ran.results, vec![0, 1, 2]);
    }

    #[test]
    fn automatic_counts_take_every_core_and_split_between_runs() {
        let auto = DonutConfig::default();
        assert_eq!(auto.threads, 0);
        assert_eq!(resolved(&auto, Host::Cli, 1).threads, cores());
        assert_eq!(resolved(&auto, Host::App, 1).threads, cores());
        assert_eq!(
            resolved(&auto, Host::Cli, 1000).threads,
            1,
            "never zero threads"
        );
        let three = DonutConfig {
            threads: 3,
            ..Default::default()
        };
        assert_eq!(resolved(&three, Host::App, 2).threads, 3, "explicit stays");
        assert_eq!(shard_count(4, 64), 2);
        assert_eq!(shard_count(4, 16), 1);
    }
}
