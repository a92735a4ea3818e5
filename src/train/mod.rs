//! Training: the loop that fits a [`DonutModel`] to a prepared series.
//!
//! [`train`] runs on whatever thread calls it and talks to the outside only through
//! [`TrainHooks`]: it reports [`TrainEvent`]s (loss terms per step, validations, epochs, latent
//! snapshots) and polls for live setting changes and stop requests between steps. The loop itself
//! is a `Trainer`; the pipeline (one layer up) drives it for the command line, the sweeps and the
//! app's worker.

pub mod adam;
pub mod batch;
pub mod fused;
pub mod learner;
pub mod snapshots;
mod trainer;

use crate::config::{DonutConfig, LiveSettings};
use crate::data::Prepared;
use crate::history::{History, LatentSnapshot, StepStats, TrainStats, ValidStats};
use crate::model::DonutModel;

pub use snapshots::{LATENT_MAX_POINTS, latent_means, latent_sample_ends};

/// A loss whose magnitude passes this has diverged (f32 arithmetic is about to overflow).
pub const EXPLODED_LOSS: f64 = 1e15;

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
    /// Most windows in a latent snapshot.
    fn latent_max_points(&self) -> usize {
        LATENT_MAX_POINTS
    }
    /// With snapshots on, the least time between two of them (a live view needs a few a
    /// second, not one every few milliseconds: each encodes thousands of windows). None: every
    /// [`Self::latent_every_steps`] steps, whatever the time.
    fn latent_min_interval(&self) -> Option<std::time::Duration> {
        None
    }
    /// Called when a validation has found a new best loss at `step`: `model` makes the
    /// inference model of these parameters, for a driver that scores a preview with it.
    fn new_best(&mut self, _step: usize, _model: &mut dyn FnMut() -> DonutModel) {}
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

/// What training produces: the model (best validation parameters restored, for inference), the
/// history, the statistics, and the settings in force at the end (live changes included).
pub struct TrainOutcome {
    /// The model, on the inference device of the run's backend.
    pub model: DonutModel,
    /// Every step, every validation and the latent snapshots taken.
    pub history: History,
    /// How long, how fast, how far.
    pub stats: TrainStats,
    /// The settings in force at the end.
    pub config: DonutConfig,
}

/// Trains a DONUT model on the train part of `prep`, validating on its validation part.
///
/// The loop runs on the first thread of a pool of [`crate::threads::for_backend`] threads (the
/// calling thread waits), so that the data-parallel steps start without waking a sleeping thread.
pub fn train(
    prep: &Prepared,
    config: &DonutConfig,
    hooks: &mut dyn TrainHooks,
) -> Result<TrainOutcome, TrainError> {
    let pool = crate::threads::pool(crate::threads::for_backend(config));
    pool.install(|| trainer::Trainer::new(prep, config, hooks, &pool)?.run())
}
