//! The thread policy, in one place: how many CPU threads a run, the app's run, and each run of a
//! sweep get, and the named pools they run in.
//!
//! `threads = 0` in [`DonutConfig`] means "automatic": every core, on the command line and in
//! the app (whose run yields a core to the UI while the user interacts: `worker`), and an even
//! share of that between the runs of a sweep. A GPU backend always gets one thread.

use crate::config::DonutConfig;

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

#[cfg(test)]
mod tests {
    use super::*;

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
