//! The training loop as a [`Trainer`]: set up once, then epochs of steps with validation and
//! latent snapshots, then the best parameters restored.

use super::batch::host_batch;
use super::learner::Learner;
use super::snapshots::{latent_means, latent_means_fused, latent_sample_ends};
use super::{EXPLODED_LOSS, Flow, TrainError, TrainEvent, TrainHooks, TrainOutcome};
use crate::config::{DonutConfig, LiveSettings};
use crate::data::{Part, Prepared};
use crate::history::{History, LatentSnapshot, LossTerms, StepStats, TrainStats, ValidStats};
use crate::model::fused::ScoringNet;
use crate::model::{DonutModel, Latent, device_for};
use burn::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// Steps over which the reported throughput is averaged.
const THROUGHPUT_STEPS: usize = 20;

/// With a least interval between snapshots (a live view), the share of the run's time they may
/// take: the next waits at least the last one's time over this share.
pub const SNAPSHOT_SHARE: f64 = 0.08;

/// One training run in progress: the learner, its generators, the history so far and the best
/// parameters validated so far.
pub(super) struct Trainer<'a> {
    prep: &'a Prepared,
    /// The settings; live changes are written back at the end.
    config: DonutConfig,
    hooks: &'a mut dyn TrainHooks,
    pool: &'a rayon::ThreadPool,
    device: Device,
    learner: Learner,
    latent: Latent,
    /// Shuffling, injection and the training steps' latent noise.
    rng: Xoshiro256PlusPlus,
    /// The validations' latent noise.
    valid_rng: Xoshiro256PlusPlus,
    /// End points of the training windows (shuffled every epoch).
    ends: Vec<usize>,
    batch_size: usize,
    /// Steps between latent snapshots (None: no snapshots).
    latent_every: Option<usize>,
    /// The windows whose latent means each snapshot holds.
    latent_ends: Arc<Vec<usize>>,
    /// The least time between two snapshots, and when the last was taken.
    latent_interval: Option<(std::time::Duration, Instant)>,
    /// How long the last snapshot took: with an interval, snapshots take at most
    /// [`SNAPSHOT_SHARE`] of the run's time.
    snapshot_secs: f64,
    live: LiveSettings,
    /// This epoch's injected points (indices of the series).
    injected: Vec<bool>,
    history: History,
    /// The lowest validation loss so far and the parameters that gave it.
    best: Option<(f64, DonutModel)>,
    step: usize,
    /// Seconds spent in the optimisation steps alone.
    step_secs: f64,
    /// Recent steps' end times and sizes, for the reported throughput.
    recent: VecDeque<(Instant, usize)>,
    epochs_done: usize,
    stopped: bool,
    /// Validations since the last new best.
    since_best: usize,
    /// The step at which `patience` ended training.
    stopped_early: Option<usize>,
    started: Instant,
}

impl<'a> Trainer<'a> {
    /// Sets up a run: the model drawn from the seed, the training windows, the snapshot sample;
    /// reports [`TrainEvent::Started`] and the snapshot before the first step.
    pub(super) fn new(
        prep: &'a Prepared,
        config: &DonutConfig,
        hooks: &'a mut dyn TrainHooks,
        pool: &'a rayon::ThreadPool,
    ) -> Result<Self, TrainError> {
        let started = Instant::now();
        let config = config.clone();
        let device = device_for(config.backend);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(config.seed);
        let ends: Vec<usize> = prep.window_ends(Part::Train).collect();
        if ends.is_empty() {
            return Err(TrainError::NoWindows);
        }
        let batch_size = config.batch_size.min(ends.len());
        let shards = crate::threads::shard_count(crate::threads::for_backend(&config), batch_size);
        let learner = Learner::new(&config, &mut rng, &device, shards);
        let steps_per_epoch = ends.len() / batch_size;
        hooks.event(TrainEvent::Started {
            steps_per_epoch,
            total_steps: steps_per_epoch * config.epochs,
            train_windows: ends.len(),
        });
        let latent_every = hooks.latent_every_steps();
        let hooks_interval = hooks.latent_min_interval().map(|d| (d, started));
        let latent_ends = Arc::new(if latent_every.is_some() {
            latent_sample_ends(prep, hooks.latent_max_points())
        } else {
            Vec::new()
        });
        let mut history = History::default();
        // Room for the planned steps, within reason (a huge plan grows as it goes instead).
        history
            .steps
            .reserve((steps_per_epoch * config.epochs).min(1 << 20));
        let mut trainer = Self {
            prep,
            live: config.live(),
            valid_rng: Xoshiro256PlusPlus::seed_from_u64(config.seed ^ 0x005E_ED0F_BA11),
            latent: Latent::of(&config),
            config,
            hooks,
            pool,
            device,
            learner,
            rng,
            ends,
            batch_size,
            latent_every,
            latent_ends,
            latent_interval: hooks_interval,
            snapshot_secs: 0.0,
            injected: vec![false; prep.len()],
            history,
            best: None,
            step: 0,
            step_secs: 0.0,
            recent: VecDeque::new(),
            epochs_done: 0,
            stopped: false,
            since_best: 0,
            stopped_early: None,
            started,
        };
        if trainer.latent_every.is_some() {
            trainer.snapshot_current(0, 0);
        }
        Ok(trainer)
    }

    /// Runs every epoch (or until stopped), validates the final parameters, and returns the
    /// model with the best validated parameters.
    pub(super) fn run(mut self) -> Result<TrainOutcome, TrainError> {
        for epoch in 0..self.config.epochs {
            if self.epoch(epoch)? == Flow::Stop {
                // Patience ends a run as its last epoch would; a request stops it.
                self.stopped = self.stopped_early.is_none();
                if !self.stopped {
                    self.epochs_done = epoch + 1;
                }
                break;
            }
            self.epochs_done = epoch + 1;
            self.hooks.event(TrainEvent::Epoch {
                epoch,
                elapsed_secs: self.started.elapsed().as_secs_f64(),
            });
        }
        // A last validation, so the final parameters compete too (not after a stop request, which
        // must end the run promptly: the best parameters validated so far are kept).
        if !self.stopped && self.stopped_early.is_none() {
            self.validate();
            // Patience running out at the last validation ends nothing early.
            self.stopped_early = None;
        }
        Ok(self.finish())
    }

    /// One pass over the training windows: a fresh injection mask, a shuffle, then the steps.
    fn epoch(&mut self, epoch: usize) -> Result<Flow, TrainError> {
        let lr_factor = self
            .config
            .lr_decay
            .powi((epoch / self.config.lr_decay_epochs) as i32);
        let rate = self.live.injection_rate;
        for i in self.prep.part(Part::Train) {
            self.injected[i] = rate > 0.0 && self.rng.random_bool(rate);
        }
        let mut ends = std::mem::take(&mut self.ends);
        ends.shuffle(&mut self.rng);
        let mut flow = Flow::Continue;
        for batch_ends in ends.chunks_exact(self.batch_size) {
            flow = self.step(batch_ends, epoch, lr_factor)?;
            if flow == Flow::Stop {
                break;
            }
        }
        self.ends = ends;
        Ok(flow)
    }

    /// One optimisation step on the windows ending at `batch_ends`, then a validation and a
    /// snapshot when they are due.
    fn step(
        &mut self,
        batch_ends: &[usize],
        epoch: usize,
        lr_factor: f64,
    ) -> Result<Flow, TrainError> {
        if self.hooks.poll(&mut self.live) == Flow::Stop {
            return Ok(Flow::Stop);
        }
        let learning_rate = self.live.learning_rate * lr_factor;
        let t0 = Instant::now();
        let host = host_batch(self.prep, batch_ends, &self.injected, &self.live);
        let noise = self
            .latent
            .sample_noise(&mut self.rng, self.batch_size * self.config.latent_dim);
        let terms = self.learner.gradient(self.pool, host, noise);
        if !terms.is_finite() || terms.total.abs() > EXPLODED_LOSS {
            return Err(self.diverged(&terms, epoch));
        }
        self.learner.apply(self.pool, learning_rate);
        self.step += 1;
        let now = Instant::now();
        self.step_secs += (now - t0).as_secs_f64();
        let stats = StepStats {
            step: self.step,
            epoch,
            terms,
            learning_rate,
            windows_per_sec: self.throughput(now, t0),
            elapsed_secs: self.started.elapsed().as_secs_f64(),
        };
        self.history.steps.push(stats);
        self.hooks.event(TrainEvent::Step(stats));

        if self.step.is_multiple_of(self.config.valid_every_steps) && self.validate() == Flow::Stop
        {
            return Ok(Flow::Stop);
        }
        let budget = std::time::Duration::from_secs_f64(self.snapshot_secs / SNAPSHOT_SHARE);
        let interval_passed = self
            .latent_interval
            .is_none_or(|(least, last)| last.elapsed() >= least.max(budget));
        if let Some(every) = self.latent_every
            && self.step.is_multiple_of(every)
            && interval_passed
        {
            if let Some((_, last)) = &mut self.latent_interval {
                *last = Instant::now();
            }
            let taken = Instant::now();
            self.snapshot_current(self.step, epoch);
            self.snapshot_secs = taken.elapsed().as_secs_f64();
        }
        Ok(Flow::Continue)
    }

    /// Windows per second over the last [`THROUGHPUT_STEPS`] steps (the step that started at
    /// `t0` and ended at `now` alone, at first).
    fn throughput(&mut self, now: Instant, t0: Instant) -> f64 {
        self.recent.push_back((now, self.batch_size));
        while self.recent.len() > THROUGHPUT_STEPS {
            self.recent.pop_front();
        }
        match (self.recent.front(), self.recent.len()) {
            (Some((first, _)), n) if n > 1 => {
                let secs = (now - *first).as_secs_f64();
                let windows: usize = self.recent.iter().skip(1).map(|(_, b)| b).sum();
                if secs > 0.0 {
                    windows as f64 / secs
                } else {
                    0.0
                }
            }
            _ => self.batch_size as f64 / (now - t0).as_secs_f64().max(1e-9),
        }
    }

    /// The error for a step whose loss is not finite or exploded: which term, and the setting
    /// most likely to blame.
    fn diverged(&self, terms: &LossTerms, epoch: usize) -> TrainError {
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
        TrainError::Diverged {
            step: self.step + 1,
            epoch,
            term,
            value,
            hint: divergence_hint(&self.config, &self.live),
        }
    }

    /// The validation loss of the current parameters (mean terms over every validation window,
    /// no injection, no gradients); the best parameters so far are kept. The hooks are polled
    /// between its chunks: a stop request abandons it (returns Stop), and live changes made
    /// meanwhile reach the next steps.
    fn validate(&mut self) -> Flow {
        let settings = self.live;
        let ends: Vec<usize> = self.prep.window_ends(Part::Valid).collect();
        if ends.is_empty() {
            return Flow::Continue;
        }
        let k = self.config.latent_dim;
        let mut sum = LossTerms::default();
        for chunk in ends.chunks(self.config.batch_size.max(1024)) {
            if self.hooks.poll(&mut self.live) == Flow::Stop {
                return Flow::Stop;
            }
            let host = host_batch(self.prep, chunk, &[], &settings);
            let noise = self
                .latent
                .sample_noise(&mut self.valid_rng, chunk.len() * k);
            let chunk_terms = self.learner.loss(self.pool, host, noise);
            sum.add_weighted(&chunk_terms, chunk.len() as f64);
        }
        let terms = sum.divided_by(ends.len() as f64);
        let is_best =
            terms.total.is_finite() && self.best.as_ref().is_none_or(|(b, _)| terms.total < *b);
        if is_best {
            self.best = Some((terms.total, self.learner.model().clone()));
            self.since_best = 0;
        } else {
            self.since_best += 1;
        }
        let v = ValidStats {
            step: self.step,
            terms,
            best: is_best,
        };
        self.history.validations.push(v);
        self.hooks.event(TrainEvent::Valid(v));
        if is_best {
            let learner = &mut self.learner;
            self.hooks
                .new_best(self.step, &mut || learner.model().valid());
        }
        let patience = self.config.patience;
        if patience > 0 && self.since_best >= patience && self.epochs_done >= self.config.min_epochs
        {
            self.stopped_early = Some(self.step);
            return Flow::Stop;
        }
        Flow::Continue
    }

    /// Latent means of the sample windows under the current parameters, kept in the history
    /// and reported: on the fused engine, straight from its flat parameters.
    fn snapshot_current(&mut self, step: usize, epoch: usize) {
        let net = self
            .learner
            .fused_params()
            .and_then(|params| ScoringNet::from_params(&self.config, params.to_vec()));
        match net {
            Some(net) => {
                let means = latent_means_fused(&net, self.prep, &self.latent_ends);
                self.push_snapshot(means, step, epoch);
            }
            None => {
                let model = self.learner.model().valid();
                self.snapshot(&model, step, epoch);
            }
        }
    }

    /// Latent means of the sample windows under `model` (an inference model), kept in the
    /// history and reported.
    fn snapshot(&mut self, model: &DonutModel, step: usize, epoch: usize) {
        let means = latent_means(
            model,
            &self.config,
            self.prep,
            &self.latent_ends,
            &self.device,
        );
        self.push_snapshot(means, step, epoch);
    }

    /// Keeps a snapshot of `means` in the history and reports it.
    fn push_snapshot(&mut self, means: Vec<f32>, step: usize, epoch: usize) {
        let snapshot = LatentSnapshot {
            step,
            epoch,
            dim: self.config.latent_dim,
            ends: self.latent_ends.clone(),
            means,
        }
        .rounded();
        self.history.push_snapshot(snapshot.clone());
        self.hooks.event(TrainEvent::Latent(snapshot));
    }

    /// The best validated parameters (the last ones when nothing was validated), a last snapshot
    /// of them, and the run's statistics.
    fn finish(mut self) -> TrainOutcome {
        let final_model = match self.best.take() {
            Some((_, m)) => m.valid(),
            None => self.learner.model().valid(),
        };
        if self.latent_every.is_some() {
            self.snapshot(&final_model, self.step, self.epochs_done);
        }
        self.live.apply_to(&mut self.config);
        let windows = self.step * self.batch_size;
        TrainOutcome {
            model: final_model,
            stats: TrainStats {
                epochs_done: self.epochs_done,
                train_secs: self.started.elapsed().as_secs_f64(),
                train_windows_per_sec: if self.step_secs > 0.0 {
                    windows as f64 / self.step_secs
                } else {
                    0.0
                },
                stopped: self.stopped,
                stopped_early: self.stopped_early,
                first_detections_secs: None,
            },
            history: self.history,
            config: self.config,
        }
    }
}

/// The setting most likely to blame for a diverged run, as advice.
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
