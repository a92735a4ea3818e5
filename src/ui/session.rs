//! The current run as the app holds it: live while the worker trains and scores, then its
//! record. It is replaced whole when the data changes or another run starts or opens, so that
//! nothing of an old run (a late event, a record scored on other data) outlives it.

use crate::config::DonutConfig;
use crate::data::Prepared;
use crate::eval::{Threshold, ThresholdRule};
use crate::history::{History, LatentSnapshot};
use crate::pipeline::RunRecord;
use crate::pipeline::preview::Preview;
use crate::train::TrainEvent;
use crate::worker::{Command, Interaction, Phase, Worker, WorkerEvent};
use std::sync::Arc;
use std::time::Duration;

/// Steps between latent snapshots while training in the app.
const LATENT_EVERY_STEPS: usize = 10;

/// How long one drain of the worker's events may take (a frame's share).
pub const EVENT_BUDGET: Duration = Duration::from_millis(4);

/// The current run: none yet, live, or finished.
pub struct RunState {
    /// The settings of the run (None: no run).
    pub config: Option<DonutConfig>,
    /// Where the worker is.
    pub phase: Phase,
    /// Every step, validation and snapshot received so far (emptied once the record arrives,
    /// whose history is the same and becomes the one copy).
    pub(super) live: History,
    /// Steps planned.
    pub total_steps: usize,
    /// The snapshot shown when replaying (None: the newest).
    pub replay: Option<usize>,
    /// The finished run.
    pub record: Option<Arc<RunRecord>>,
    /// The threshold points are flagged at, with its rule (the run's own when it finishes; a
    /// value chosen on the series panel is `ThresholdRule::Chosen`).
    pub threshold: Threshold,
    /// Scoring progress (done, total).
    pub score_progress: Option<(usize, usize)>,
    /// Preview scores taken while training (None once the final record has arrived).
    pub preview: Option<Arc<Preview>>,
    /// When the user last gave input: the worker yields a core while it is recent.
    pub interacting: Interaction,
    /// Seconds from the start of the run to its first preview.
    pub first_preview_secs: Option<f64>,
    worker: Option<Worker>,
}

impl Default for RunState {
    fn default() -> Self {
        Self {
            config: None,
            phase: Phase::default(),
            live: History::default(),
            total_steps: 0,
            replay: None,
            record: None,
            threshold: Threshold {
                value: f64::INFINITY,
                rule: ThresholdRule::Chosen,
            },
            score_progress: None,
            preview: None,
            interacting: Interaction::default(),
            first_preview_secs: None,
            worker: None,
        }
    }
}

impl RunState {
    /// Starts a run of `config` on `data` on its own worker thread; `wake` is called after every
    /// event. The error says why the thread could not start.
    pub fn start(
        data: Arc<Prepared>,
        config: DonutConfig,
        wake: Box<dyn Fn() + Send + Sync>,
    ) -> Result<Self, String> {
        let interacting = Interaction::default();
        let worker = Worker::spawn_yielding(
            data,
            config.clone(),
            wake,
            LATENT_EVERY_STEPS,
            interacting.clone(),
        )
        .map_err(|e| format!("cannot start the training thread: {e}"))?;
        Ok(Self {
            config: Some(config),
            phase: Phase::Training,
            worker: Some(worker),
            interacting,
            ..Default::default()
        })
    }

    /// A finished run opened from a file, flagged at its own threshold.
    pub fn finished(record: Arc<RunRecord>) -> Self {
        Self {
            config: Some(record.config.clone()),
            threshold: record.threshold,
            total_steps: record.history.steps.len(),
            record: Some(record),
            ..Default::default()
        }
    }

    /// A run opened from a file whose data could not be loaded: its settings and losses, no
    /// scores or latent points.
    pub fn without_data(record: &RunRecord) -> Self {
        Self {
            config: Some(record.config.clone()),
            live: record.history.without_snapshots(),
            total_steps: record.history.steps.len(),
            ..Default::default()
        }
    }

    /// The run's history: the record's once finished, else what has streamed in.
    pub fn history(&self) -> &History {
        self.record.as_ref().map_or(&self.live, |r| &r.history)
    }

    /// The newest latent snapshot.
    pub fn latest_snapshot(&self) -> Option<&LatentSnapshot> {
        self.history().latest_snapshot()
    }

    /// The record the panels show: the final one, else the latest preview's (the flag says
    /// which).
    pub fn shown_record(&self) -> Option<(&Arc<RunRecord>, bool)> {
        match (&self.record, &self.preview) {
            (Some(record), _) => Some((record, false)),
            (None, Some(preview)) => Some((&preview.record, true)),
            (None, None) => None,
        }
    }

    /// What to say over preview scores while they are shown: their n_z, step and time, and
    /// that the full pass replaces them (None when the final scores are shown, or none).
    pub fn preview_note(&self) -> Option<String> {
        let preview = self.preview.as_ref().filter(|_| self.record.is_none())?;
        Some(format!(
            "Preview: scored with n_z {} and {} MCMC rounds at step {} (a new best validation loss), {:.1} s into the run; the full pass (n_z {}) replaces it when training ends",
            preview.record.config.n_z,
            preview.record.config.mcmc_iterations,
            preview.step,
            preview.elapsed_secs,
            self.config.as_ref().map_or(0, |c| c.n_z)
        ))
    }

    /// True while the worker trains, pauses or scores.
    pub fn is_running(&self) -> bool {
        self.phase != Phase::Idle
    }

    /// True while the worker thread is alive.
    pub fn worker_alive(&self) -> bool {
        self.worker.as_ref().is_some_and(|w| w.is_alive())
    }

    /// Sends a command to the worker, if there is one.
    pub fn send(&self, command: Command) {
        if let Some(w) = &self.worker {
            w.send(command);
        }
    }

    /// Takes `steps` optimisation steps, then pauses.
    pub fn step(&mut self, steps: usize) {
        self.send(Command::Step(steps));
        self.phase = Phase::Training;
    }

    /// Pauses or resumes between steps.
    pub fn set_paused(&mut self, paused: bool) {
        self.send(if paused {
            Command::Pause
        } else {
            Command::Resume
        });
        self.phase = if paused {
            Phase::Paused
        } else {
            Phase::Training
        };
    }

    /// Stops the run and ends the worker thread; true when it ended within the timeout.
    pub fn shutdown(&mut self, timeout: Duration) -> bool {
        match self.worker.as_mut() {
            Some(w) => {
                let ended = w.shutdown(timeout);
                if ended {
                    self.worker = None;
                    self.phase = Phase::Idle;
                }
                ended
            }
            None => true,
        }
    }

    /// Takes the worker's waiting events (within [`EVENT_BUDGET`]); returns the error of a failed
    /// run, if one arrived.
    pub fn pump(&mut self) -> Option<String> {
        let events = match &self.worker {
            Some(worker) => worker.drain(EVENT_BUDGET),
            None => return None,
        };
        let mut failure = None;
        for event in events {
            match event {
                WorkerEvent::Steps(steps) => self.live.steps.extend(steps),
                WorkerEvent::Train(TrainEvent::Started { total_steps, .. }) => {
                    self.total_steps = total_steps;
                }
                WorkerEvent::Train(TrainEvent::Step(s)) => self.live.steps.push(s),
                WorkerEvent::Train(TrainEvent::Valid(v)) => self.live.validations.push(v),
                WorkerEvent::Train(TrainEvent::Epoch { .. }) => {}
                WorkerEvent::Train(TrainEvent::Latent(snap)) => {
                    if self.live.push_snapshot(snap) {
                        self.replay = None; // indices moved
                    }
                }
                WorkerEvent::Phase(p) => {
                    self.phase = p;
                    if p != Phase::Scoring {
                        self.score_progress = None;
                    }
                }
                WorkerEvent::ScoreProgress { done, total } => {
                    self.score_progress = Some((done, total))
                }
                WorkerEvent::Preview(preview) => {
                    // Flag at the preview's own threshold, unless the user chose one.
                    let chosen = self.threshold.rule == ThresholdRule::Chosen
                        && self.threshold.value.is_finite();
                    if !chosen {
                        self.threshold = preview.record.threshold;
                    }
                    self.first_preview_secs.get_or_insert(preview.elapsed_secs);
                    self.preview = Some(Arc::from(preview));
                }
                WorkerEvent::Finished(record) => {
                    self.preview = None;
                    self.threshold = record.threshold;
                    self.config = Some(record.config.clone());
                    self.record = Some(Arc::from(record));
                    self.live = History::default();
                    self.score_progress = None;
                }
                WorkerEvent::Failed(message) => failure = Some(message),
            }
        }
        failure
    }
}
