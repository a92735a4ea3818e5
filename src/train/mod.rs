//! Training: the loop that fits a [`DonutModel`] to a prepared series.
//!
//! [`train`] runs on whatever thread calls it and talks to the outside only through
//! [`TrainHooks`]: it reports [`TrainEvent`]s (loss terms per step, validations, epochs, latent
//! snapshots) and polls for live setting changes and stop requests between steps. The command
//! line drives it with a progress bar, the app from its worker thread ([`worker`]).

pub mod adam;
pub mod batch;
pub mod fused;
pub mod learner;
pub mod worker;

use crate::config::{DonutConfig, LiveSettings};
use crate::data::{Part, Prepared};
use crate::model::loss::{Batch, LossTerms, m_elbo};
use crate::model::{DonutModel, Latent, device_for};
use batch::{HostBatch, host_batch};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::prelude::*;
use burn::tensor::TensorData;
use learner::Learner;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rayon::iter::{IntoParallelIterator, ParallelIterator};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// A loss whose magnitude passes this has diverged (f32 arithmetic is about to overflow).
pub const EXPLODED_LOSS: f64 = 1e15;

/// Most latent points in a snapshot.
pub const LATENT_MAX_POINTS: usize = 20_000;

/// Statistics of one optimisation step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// 1-based step.
    pub step: usize,
    /// 0-based epoch.
    pub epoch: usize,
    /// The loss terms of this batch.
    pub terms: LossTerms,
    /// Learning rate used (after decay).
    pub learning_rate: f64,
    /// Training throughput over the last steps.
    pub windows_per_sec: f64,
    /// Seconds since training began.
    pub elapsed_secs: f64,
}

/// The validation loss at a step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidStats {
    /// Step after which it was measured.
    pub step: usize,
    /// Mean loss terms over all validation windows.
    pub terms: LossTerms,
    /// Whether this is the best so far (its parameters are kept).
    pub best: bool,
}

/// Latent means of a fixed sample of windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentSnapshot {
    /// Step at which it was taken (0 = before training).
    pub step: usize,
    /// Epoch at which it was taken.
    pub epoch: usize,
    /// Latent dimension K.
    pub dim: usize,
    /// Window ends (point indices), shared by every snapshot of a run.
    pub ends: Arc<Vec<usize>>,
    /// Means, `[ends.len() * dim]`, row-major.
    pub means: Vec<f32>,
}

/// What the loop reports.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    /// Training is about to start.
    Started {
        /// Steps per epoch.
        steps_per_epoch: usize,
        /// Total steps planned.
        total_steps: usize,
        /// Training windows.
        train_windows: usize,
    },
    /// A step finished.
    Step(StepStats),
    /// A validation finished.
    Valid(ValidStats),
    /// An epoch finished.
    Epoch {
        /// The finished epoch (0-based).
        epoch: usize,
        /// Seconds since training began.
        elapsed_secs: f64,
    },
    /// Latent means of the sample windows.
    Latent(LatentSnapshot),
}

/// What the hooks tell the loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Go on.
    Continue,
    /// Stop as soon as possible (the best parameters so far are kept).
    Stop,
}

/// The loop's connection to its driver. `Send`, because the loop runs on a thread of its own pool.
pub trait TrainHooks: Send {
    /// Receives every event.
    fn event(&mut self, event: TrainEvent);
    /// Called between steps: may change `live` settings or ask to stop. May block (pause).
    fn poll(&mut self, live: &mut LiveSettings) -> Flow;
    /// Steps between latent snapshots; `None` for no snapshots.
    fn latent_every_steps(&self) -> Option<usize> {
        None
    }
}

/// Hooks that ignore everything (tests, benchmarks).
pub struct NoHooks;

impl TrainHooks for NoHooks {
    fn event(&mut self, _event: TrainEvent) {}
    fn poll(&mut self, _live: &mut LiveSettings) -> Flow {
        Flow::Continue
    }
}

/// Why training failed.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss or its terms became NaN, infinite, or exploded past [`EXPLODED_LOSS`].
    #[error("training diverged at step {step} (epoch {epoch}): the {term} became {value}. {hint}")]
    Diverged {
        /// Step.
        step: usize,
        /// Epoch.
        epoch: usize,
        /// Which term.
        term: &'static str,
        /// Its value.
        value: f64,
        /// The setting that most likely caused it.
        hint: String,
    },
    /// No training window.
    #[error("no training windows: the train part is shorter than the window")]
    NoWindows,
}

/// The result of a training run.
pub struct TrainOutcome {
    /// The model with the best validation parameters restored, for inference (no autodiff).
    pub model: DonutModel,
    /// Every step's statistics.
    pub steps: Vec<StepStats>,
    /// Every validation.
    pub validations: Vec<ValidStats>,
    /// Latent snapshots taken (thinned to at most [`MAX_KEPT_SNAPSHOTS`]).
    pub snapshots: Vec<LatentSnapshot>,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Wall seconds of the whole loop (steps, validations, snapshots).
    pub train_secs: f64,
    /// Windows per second over the optimisation steps alone.
    pub train_windows_per_sec: f64,
    /// True when stopped on request before the last epoch.
    pub stopped: bool,
    /// The settings in force at the end (live changes included).
    pub config: DonutConfig,
}

/// Most snapshots kept for replay; older ones are thinned evenly beyond this.
pub const MAX_KEPT_SNAPSHOTS: usize = 128;

/// Appends `item`; past `cap` items, drops every other older one so the history stays evenly spread
/// and bounded in memory (the newest is always kept).
pub fn push_thinned<T>(history: &mut Vec<T>, item: T, cap: usize) {
    history.push(item);
    if history.len() > cap.max(2) {
        let last = history.len() - 1;
        let mut i = 0;
        history.retain(|_| {
            let keep = i % 2 == 0 || i == last;
            i += 1;
            keep
        });
    }
}

/// Evenly spaced window ends over the whole series (every part), at most `max` of them.
pub fn latent_sample_ends(prep: &Prepared, max: usize) -> Vec<usize> {
    let all: Vec<usize> = Part::ALL
        .iter()
        .flat_map(|&p| prep.window_ends(p))
        .collect();
    if all.len() <= max {
        return all;
    }
    (0..max).map(|i| all[i * all.len() / max]).collect()
}

/// Latent means of the windows ending at `ends`, `[ends.len() * K]`.
pub fn latent_means(
    model: &DonutModel,
    prep: &Prepared,
    ends: &[usize],
    device: &Device,
) -> Vec<f32> {
    let w = prep.window;
    let mut out = Vec::with_capacity(ends.len() * model.latent_dim());
    for chunk in ends.chunks(4096) {
        let x: Vec<f32> = chunk
            .iter()
            .flat_map(|&e| prep.window_values(e).iter().copied())
            .collect();
        let x = Tensor::<2>::from_data(TensorData::new(x, [chunk.len(), w]), device);
        let q = model.encode(x);
        out.extend(q.mean.into_data().try_to_vec::<f32>().unwrap_or_default());
    }
    out
}

fn divergence_hint(config: &DonutConfig, live: &LiveSettings) -> String {
    if live.learning_rate > 0.01 {
        format!(
            "The learning rate {} is likely too high: try 1e-3.",
            live.learning_rate
        )
    } else if live.injection_rate > 0.5 {
        format!(
            "The injection rate {} leaves little data: try 0.01.",
            live.injection_rate
        )
    } else if config.std_epsilon < 1e-6 {
        format!(
            "std_epsilon {} lets standard deviations reach 0: try 1e-4.",
            config.std_epsilon
        )
    } else if config.grad_clip_norm > 100.0 {
        format!(
            "grad_clip_norm {} does not bound updates: try 10.",
            config.grad_clip_norm
        )
    } else {
        "Check the data for extreme values, or lower learning_rate.".to_string()
    }
}

/// Mean loss terms over all windows of `part` (no injection, no gradients), each chunk of windows
/// (with latent noise of `latent` drawn from `rng`) measured by `chunk_loss`. `keep_going` is
/// asked before each chunk; None when it says no, or when the part has no window.
#[allow(clippy::too_many_arguments)]
pub fn part_loss(
    prep: &Prepared,
    part: Part,
    live: &LiveSettings,
    config: &DonutConfig,
    latent: Latent,
    rng: &mut Xoshiro256PlusPlus,
    keep_going: &mut dyn FnMut() -> bool,
    chunk_loss: &mut dyn FnMut(HostBatch, Vec<f32>) -> LossTerms,
) -> Option<LossTerms> {
    let ends: Vec<usize> = prep.window_ends(part).collect();
    if ends.is_empty() {
        return None;
    }
    let k = config.latent_dim;
    let mut sum = LossTerms::default();
    for chunk in ends.chunks(config.batch_size.max(1024)) {
        if !keep_going() {
            return None;
        }
        let host = host_batch(prep, chunk, &[], live);
        let noise = latent.sample_noise(rng, chunk.len() * k);
        let t = chunk_loss(host, noise);
        let f = chunk.len() as f64;
        sum.total += t.total * f;
        sum.recon += t.recon * f;
        sum.prior += t.prior * f;
        sum.entropy += t.entropy * f;
        sum.l2 += t.l2 * f;
    }
    let n = ends.len() as f64;
    Some(LossTerms {
        total: sum.total / n,
        recon: sum.recon / n,
        prior: sum.prior / n,
        entropy: sum.entropy / n,
        l2: sum.l2 / n,
    })
}

/// Fewest windows worth a shard of their own in a data-parallel step.
pub const MIN_SHARD_WINDOWS: usize = 32;

/// Shards of a data-parallel step: one per thread, each of at least 32 windows.
pub fn shard_count(threads: usize, batch_size: usize) -> usize {
    threads.min(batch_size / MIN_SHARD_WINDOWS).max(1)
}

/// Threads for a run on `config.backend`: the CPU backends use `config.worker_threads()`; a GPU
/// backend gets one (a whole batch per kernel launch is what a GPU wants).
pub fn backend_threads(config: &DonutConfig) -> usize {
    if config.backend.is_gpu() {
        1
    } else {
        config.worker_threads()
    }
}

/// A pool of `threads` named threads for training and scoring. burn's CPU kernels that use rayon
/// run inside it too, so `threads` bounds the CPU that a run takes.
pub fn thread_pool(threads: usize) -> rayon::ThreadPool {
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

/// One data-parallel optimisation step's forward and backward passes: the batch is cut into
/// `shards` contiguous parts, each part's loss (scaled by its share of the batch) is
/// differentiated on its own thread against a fork of `model`, and the gradients are summed, which
/// gives the gradient of the whole batch's mean loss. Returns the batch's loss terms (the shards'
/// terms weighted by their share) and the summed gradients.
#[allow(clippy::too_many_arguments)]
pub fn sharded_step(
    pool: &rayon::ThreadPool,
    model: &DonutModel,
    host: batch::HostBatch,
    noise: Vec<f32>,
    shards: usize,
    latent_dim: usize,
    window: usize,
    l2_weight: f64,
    device: &Device,
) -> (LossTerms, GradientsParams) {
    let n = host.n;
    if shards <= 1 {
        let loss = m_elbo(
            model,
            host.upload(noise, latent_dim, window, device),
            l2_weight,
        );
        let terms = loss.to_terms();
        let grads = GradientsParams::from_grads(loss.total.backward(), model);
        return (terms, grads);
    }
    let parts: Vec<(DonutModel, Batch, f64)> = host
        .split(&noise, shards, latent_dim)
        .into_iter()
        .map(|(part, noise)| {
            let share = part.n as f64 / n as f64;
            let batch = part.upload(noise, latent_dim, window, device);
            (model.clone().fork(device), batch, share)
        })
        .collect();
    let results: Vec<(LossTerms, GradientsParams, f64)> = pool.install(|| {
        parts
            .into_par_iter()
            .map(|(replica, batch, share)| {
                let loss = m_elbo(&replica, batch, l2_weight);
                let terms = loss.to_terms();
                let grads = loss.total.mul_scalar(share).backward();
                (terms, GradientsParams::from_grads(grads, &replica), share)
            })
            .collect()
    });
    let mut accumulator = GradientsAccumulator::<DonutModel>::new();
    let mut terms = LossTerms::default();
    for (t, grads, share) in results {
        accumulator.accumulate(model, grads);
        terms.total += t.total * share;
        terms.recon += t.recon * share;
        terms.prior += t.prior * share;
        terms.entropy += t.entropy * share;
        terms.l2 += t.l2 * share;
    }
    (terms, accumulator.grads())
}

/// Trains a DONUT model on the train part of `prep`, validating on its validation part.
///
/// The loop runs on the first thread of a pool of `config.worker_threads()` threads (the calling
/// thread waits), so that the data-parallel steps start without waking a sleeping thread.
pub fn train(
    prep: &Prepared,
    config: &DonutConfig,
    hooks: &mut dyn TrainHooks,
) -> Result<TrainOutcome, TrainError> {
    let pool = thread_pool(backend_threads(config));
    pool.install(|| train_in_pool(prep, config, hooks, &pool))
}

fn train_in_pool(
    prep: &Prepared,
    config: &DonutConfig,
    hooks: &mut dyn TrainHooks,
    pool: &rayon::ThreadPool,
) -> Result<TrainOutcome, TrainError> {
    let mut config = config.clone();
    let started = Instant::now();
    let device = device_for(config.backend);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed);
    let mut ends: Vec<usize> = prep.window_ends(Part::Train).collect();
    if ends.is_empty() {
        return Err(TrainError::NoWindows);
    }
    let batch_size = config.batch_size.min(ends.len());
    let shards = shard_count(backend_threads(&config), batch_size);
    let mut learner = Learner::new(&config, &mut rng, &device, shards);
    let latent = Latent::of(&config);
    let steps_per_epoch = ends.len() / batch_size;
    let k = config.latent_dim;
    let train_range = prep.part(Part::Train);
    hooks.event(TrainEvent::Started {
        steps_per_epoch,
        total_steps: steps_per_epoch * config.epochs,
        train_windows: ends.len(),
    });

    let latent_every = hooks.latent_every_steps();
    let latent_ends = Arc::new(if latent_every.is_some() {
        latent_sample_ends(prep, LATENT_MAX_POINTS)
    } else {
        Vec::new()
    });
    let mut snapshots = Vec::new();
    let mut snapshot =
        |model: &DonutModel, step: usize, epoch: usize, hooks: &mut dyn TrainHooks| {
            let means = latent_means(&model.valid(), prep, &latent_ends, &device);
            let snap = LatentSnapshot {
                step,
                epoch,
                dim: k,
                ends: latent_ends.clone(),
                means,
            };
            push_thinned(&mut snapshots, snap.clone(), MAX_KEPT_SNAPSHOTS);
            hooks.event(TrainEvent::Latent(snap));
        };
    if latent_every.is_some() {
        snapshot(learner.model(), 0, 0, hooks);
    }

    let mut live = config.live();
    let mut steps = Vec::with_capacity(steps_per_epoch * config.epochs);
    let mut validations = Vec::new();
    let mut best: Option<(f64, DonutModel)> = None;
    let mut valid_rng = Xoshiro256PlusPlus::seed_from_u64(config.seed ^ 0x005E_ED0F_BA11);
    let mut step = 0usize;
    let mut step_secs = 0.0f64;
    let mut recent: std::collections::VecDeque<(Instant, usize)> =
        std::collections::VecDeque::new();
    let mut stopped = false;
    let mut epochs_done = 0;
    let mut injected = vec![false; prep.len()];
    // Validation loss of the current parameters; the best parameters so far are kept.
    // The hooks are polled between its chunks: a stop request abandons it (returns Stop), and
    // live changes made meanwhile reach `live` for the next steps.
    let validate = |learner: &mut Learner,
                    step: usize,
                    live: &mut LiveSettings,
                    rng: &mut Xoshiro256PlusPlus,
                    best: &mut Option<(f64, DonutModel)>,
                    validations: &mut Vec<ValidStats>,
                    hooks: &mut dyn TrainHooks|
     -> Flow {
        let settings = *live;
        let mut flow = Flow::Continue;
        let terms = part_loss(
            prep,
            Part::Valid,
            &settings,
            &config,
            latent,
            rng,
            &mut || {
                flow = hooks.poll(live);
                flow == Flow::Continue
            },
            &mut |host, noise| learner.loss(pool, host, noise),
        );
        let Some(terms) = terms else {
            return flow;
        };
        let is_best =
            terms.total.is_finite() && best.as_ref().is_none_or(|(b, _)| terms.total < *b);
        if is_best {
            *best = Some((terms.total, learner.model().clone()));
        }
        let v = ValidStats {
            step,
            terms,
            best: is_best,
        };
        validations.push(v);
        hooks.event(TrainEvent::Valid(v));
        flow
    };

    'epochs: for epoch in 0..config.epochs {
        let lr_factor = config
            .lr_decay
            .powi((epoch / config.lr_decay_epochs) as i32);
        // A fresh injection mask over the training points every epoch.
        for i in train_range.clone() {
            injected[i] = live.injection_rate > 0.0 && rng.random_bool(live.injection_rate);
        }
        ends.shuffle(&mut rng);
        for batch_ends in ends.chunks_exact(batch_size) {
            if hooks.poll(&mut live) == Flow::Stop {
                stopped = true;
                break 'epochs;
            }
            let learning_rate = live.learning_rate * lr_factor;
            let t0 = Instant::now();
            let host = host_batch(prep, batch_ends, &injected, &live);
            let noise = latent.sample_noise(&mut rng, batch_size * k);
            let terms = learner.gradient(pool, host, noise);
            if !terms.is_finite() || terms.total.abs() > EXPLODED_LOSS {
                let (term, value) = [
                    ("total loss", terms.total),
                    ("reconstruction term", terms.recon),
                    ("prior term", terms.prior),
                    ("entropy term", terms.entropy),
                    ("L2 term", terms.l2),
                ]
                .into_iter()
                .find(|(_, v)| !v.is_finite() || v.abs() > EXPLODED_LOSS)
                .unwrap_or(("total loss", terms.total));
                return Err(TrainError::Diverged {
                    step: step + 1,
                    epoch,
                    term,
                    value,
                    hint: divergence_hint(&config, &live),
                });
            }
            learner.apply(pool, learning_rate);
            step += 1;
            let now = Instant::now();
            step_secs += (now - t0).as_secs_f64();
            recent.push_back((now, batch_size));
            while recent.len() > 20 {
                recent.pop_front();
            }
            let windows_per_sec = match (recent.front(), recent.len()) {
                (Some((first, _)), n) if n > 1 => {
                    let secs = (now - *first).as_secs_f64();
                    let windows: usize = recent.iter().skip(1).map(|(_, b)| b).sum();
                    if secs > 0.0 {
                        windows as f64 / secs
                    } else {
                        0.0
                    }
                }
                _ => batch_size as f64 / (now - t0).as_secs_f64().max(1e-9),
            };
            let stats = StepStats {
                step,
                epoch,
                terms,
                learning_rate,
                windows_per_sec,
                elapsed_secs: started.elapsed().as_secs_f64(),
            };
            steps.push(stats);
            hooks.event(TrainEvent::Step(stats));

            if step.is_multiple_of(config.valid_every_steps)
                && validate(
                    &mut learner,
                    step,
                    &mut live,
                    &mut valid_rng,
                    &mut best,
                    &mut validations,
                    hooks,
                ) == Flow::Stop
            {
                stopped = true;
                break 'epochs;
            }
            if let Some(every) = latent_every
                && step.is_multiple_of(every)
            {
                snapshot(learner.model(), step, epoch, hooks);
            }
        }
        epochs_done = epoch + 1;
        hooks.event(TrainEvent::Epoch {
            epoch,
            elapsed_secs: started.elapsed().as_secs_f64(),
        });
    }

    // A last validation, so the final parameters compete too (not after a stop request, which
    // must end the run promptly: the best parameters validated so far are kept).
    if !stopped {
        validate(
            &mut learner,
            step,
            &mut live,
            &mut valid_rng,
            &mut best,
            &mut validations,
            hooks,
        );
    }
    let final_model = match best {
        Some((_, m)) => m,
        None => learner.model().clone(),
    };
    if latent_every.is_some() {
        snapshot(&final_model, step, epochs_done, hooks);
    }
    live.apply_to(&mut config);
    let windows = step * batch_size;
    Ok(TrainOutcome {
        model: final_model.valid(),
        steps,
        validations,
        snapshots,
        epochs_done,
        train_secs: started.elapsed().as_secs_f64(),
        train_windows_per_sec: if step_secs > 0.0 {
            windows as f64 / step_secs
        } else {
            0.0
        },
        stopped,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::push_thinned;

    #[test]
    fn thinning_keeps_the_history_bounded_spread_and_newest() {
        let mut h = Vec::new();
        for i in 0..1000 {
            push_thinned(&mut h, i, 16);
            assert!(h.len() <= 16);
            assert_eq!(h.last(), Some(&i));
        }
        assert_eq!(h[0], 0);
        assert!(h.windows(2).all(|w| w[0] < w[1]));
        assert!(h.len() >= 8);
    }
}
