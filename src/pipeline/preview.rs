//! Detections while a run learns: at each new best validation loss (at most about once a
//! second, and never more than a tenth of the run's time), the validation and test parts are
//! scored with the parameters of that best and a fast estimate (`preview_n_z` z samples,
//! `preview_mcmc_iterations` MCMC rounds) and evaluated like the final scores; the driver gets
//! them as a [`Preview`] and shows them, marked, until the full pass replaces them.

use super::{RunHooks, RunRecord, Scored, score_and_evaluate};
use crate::config::{DonutConfig, LiveSettings};
use crate::data::{Part, Prepared};
use crate::model::DonutModel;
use crate::train::{Flow, TrainEvent, TrainHooks};
use std::time::{Duration, Instant};

/// The shortest time between two previews.
pub const MIN_PREVIEW_INTERVAL: Duration = Duration::from_secs(1);

/// Previews take at most this share of a run's time: after one that took `t`, the next waits
/// at least `t * (1 / share - 1)`.
pub const PREVIEW_SHARE: f64 = 0.1;

/// Preview scores of a run that is still training.
#[derive(Clone, Debug)]
pub struct Preview {
    /// The step of the best validation loss whose parameters scored it.
    pub step: usize,
    /// Seconds from the start of the run.
    pub elapsed_secs: f64,
    /// Seconds its scoring took.
    pub score_secs: f64,
    /// The scores, thresholds and figures as a record (no weights, no history), its `config`
    /// holding the preview's n_z and MCMC iterations.
    pub record: std::sync::Arc<RunRecord>,
}

/// The training hooks of a run that takes previews: every call goes to the driver's hooks;
/// new bests are scored when due.
pub(super) struct Previewing<'a> {
    pub inner: &'a mut dyn RunHooks,
    pub prep: &'a Prepared,
    pub config: DonutConfig,
    pub started: Instant,
    pub next_at: Instant,
    /// Seconds from the start to the first preview.
    pub first_secs: Option<f64>,
    /// The live settings as of the training loop's last poll, polled on during a preview.
    pub live: Option<LiveSettings>,
    /// Live changes that arrived during a preview, for the loop's next poll.
    pub pending: Option<LiveSettings>,
    /// A stop request that arrived during a preview (which it abandoned), for the loop.
    pub stop_requested: bool,
}

impl<'a> Previewing<'a> {
    /// Hooks for a run of `config` on `prep` starting now.
    pub fn new(inner: &'a mut dyn RunHooks, prep: &'a Prepared, config: &DonutConfig) -> Self {
        let now = Instant::now();
        Self {
            inner,
            prep,
            config: DonutConfig {
                n_z: config.preview_n_z.max(1),
                mcmc_iterations: config.preview_mcmc_iterations,
                ..config.clone()
            },
            started: now,
            next_at: now,
            first_secs: None,
            live: None,
            pending: None,
            stop_requested: false,
        }
    }

    fn due(&self) -> bool {
        self.config.preview_n_z > 0 && self.inner.wants_previews() && Instant::now() >= self.next_at
    }
}

impl TrainHooks for Previewing<'_> {
    fn event(&mut self, event: TrainEvent) {
        self.inner.event(event);
    }

    fn poll(&mut self, live: &mut LiveSettings) -> Flow {
        if let Some(pending) = self.pending.take() {
            *live = pending;
        }
        if self.stop_requested {
            return Flow::Stop;
        }
        let flow = self.inner.poll(live);
        self.live = Some(*live);
        flow
    }

    fn latent_every_steps(&self) -> Option<usize> {
        self.inner.latent_every_steps()
    }

    fn latent_min_interval(&self) -> Option<std::time::Duration> {
        self.inner.latent_min_interval()
    }

    fn latent_max_points(&self) -> usize {
        self.inner.latent_max_points()
    }

    fn new_best(&mut self, step: usize, model: &mut dyn FnMut() -> DonutModel) {
        if !self.due() {
            return;
        }
        let t0 = Instant::now();
        let model = model();
        // The driver is polled between chunks, as training polls it between steps: a stop
        // request abandons the preview (and then the run), live changes wait for the loop.
        let before = self.live.unwrap_or_else(|| self.config.live());
        let mut polling = PollDuringPreview {
            inner: &mut *self.inner,
            live: before,
            stopped: false,
        };
        let scored = score_and_evaluate(
            &model,
            self.prep,
            &self.config,
            &[Part::Valid, Part::Test],
            &mut polling,
            false,
        );
        let (live, stopped) = (polling.live, polling.stopped);
        if live != before {
            self.pending = Some(live);
            self.live = Some(live);
        }
        self.stop_requested |= stopped;
        let Ok(scored) = scored else {
            return;
        };
        let score_secs = t0.elapsed().as_secs_f64();
        let wait = Duration::from_secs_f64(score_secs * (1.0 / PREVIEW_SHARE - 1.0));
        self.next_at = Instant::now() + wait.max(MIN_PREVIEW_INTERVAL);
        let elapsed_secs = self.started.elapsed().as_secs_f64();
        self.first_secs.get_or_insert(elapsed_secs);
        self.inner.preview(Preview {
            step,
            elapsed_secs,
            score_secs,
            record: std::sync::Arc::new(preview_record(self.prep, &self.config, scored)),
        });
    }
}

/// The hooks a preview's scoring runs with: its progress polls the driver, keeping live changes
/// and noting a stop request.
struct PollDuringPreview<'a> {
    inner: &'a mut dyn RunHooks,
    live: LiveSettings,
    stopped: bool,
}

impl TrainHooks for PollDuringPreview<'_> {
    fn event(&mut self, _event: TrainEvent) {}

    fn poll(&mut self, _live: &mut LiveSettings) -> Flow {
        Flow::Continue
    }
}

impl RunHooks for PollDuringPreview<'_> {
    fn scoring(&mut self, _done: usize, _total: usize) -> bool {
        self.stopped |= self.inner.poll(&mut self.live) == Flow::Stop;
        !self.stopped
    }
}

/// A record of preview scores (no weights, no history).
fn preview_record(prep: &Prepared, config: &DonutConfig, scored: Scored) -> RunRecord {
    RunRecord {
        app_version: RunRecord::current_version(),
        source: prep.source.clone(),
        config: config.clone(),
        data: Some(super::DataSummary::of(prep)),
        stats: Default::default(),
        score_secs: scored.score_secs,
        scored_windows: scored.scored_windows,
        weights: Vec::new(),
        history: Default::default(),
        scores: scored.scores,
        metrics: scored.metrics,
        evaluation: scored.evaluation,
        baselines: scored.baselines,
        no_f1_reason: scored.no_f1_reason,
        thresholds: scored.thresholds,
        threshold: scored.threshold,
        reference_scores: scored.reference_scores,
        standardisation: Some(prep.standardisation()),
    }
}
