//! The app's run worker: a named thread per run that owns the model and runs the pipeline
//! (train -> score -> evaluate), then ends.
//!
//! The UI sends [`Command`]s over a bounded crossbeam channel and drains [`WorkerEvent`]s, which
//! hold plain data only (no tensors). Step statistics are batched (one message per ~30 ms) so a
//! fast loop never floods the channel; every send wakes the UI through the `wake` callback.

use crate::config::{DonutConfig, LiveSettings};
use crate::data::{Part, Prepared};
use crate::history::StepStats;
use crate::pipeline::preview::Preview;
use crate::pipeline::{RunError, RunHooks, RunRecord};
use crate::threads::Host;
use crate::train::{Flow, TrainEvent, TrainHooks};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the UI asks of the worker.
#[derive(Debug, Clone)]
pub enum Command {
    /// Pause between steps.
    Pause,
    /// Resume after a pause.
    Resume,
    /// Stop training (the best parameters so far are scored); a Stop while scoring abandons it.
    Stop,
    /// Take this many optimisation steps, then pause (from a pause, or while training).
    Step(usize),
    /// Change live settings mid-run.
    Live(LiveSettings),
    /// End the run at once, without scoring.
    Shutdown,
}

/// Where a run is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// No run in progress (the worker has ended, or not started).
    #[default]
    Idle,
    /// Optimising.
    Training,
    /// Paused between steps.
    Paused,
    /// Computing scores.
    Scoring,
}

/// What the worker tells the UI.
#[derive(Clone, Debug)]
pub enum WorkerEvent {
    /// A training event (steps come batched in [`WorkerEvent::Steps`]).
    Train(TrainEvent),
    /// Several steps at once.
    Steps(Vec<StepStats>),
    /// The phase changed.
    Phase(Phase),
    /// Scoring progress: windows scored of total.
    ScoreProgress {
        /// Done.
        done: usize,
        /// Total.
        total: usize,
    },
    /// Preview scores taken while training, at a new best validation loss (replaced by the
    /// final scores when the run finishes).
    Preview(Box<Preview>),
    /// The run finished (also after Stop): its record, settings as requested (`threads` as
    /// asked, not as resolved for this machine).
    Finished(Box<RunRecord>),
    /// The run failed; the message says why.
    Failed(String),
}

/// The UI's handle on the worker thread.
pub struct Worker {
    commands: Sender<Command>,
    events: Receiver<WorkerEvent>,
    thread: Option<JoinHandle<()>>,
}

/// How many commands may wait.
const COMMAND_CAPACITY: usize = 64;
/// How many events may wait before the worker blocks.
const EVENT_CAPACITY: usize = 1024;

/// The least time between two latent snapshots of the app's run (each encodes up to 20,000
/// windows; about seven a second keep the cloud moving).
pub const LATENT_MIN_INTERVAL: Duration = Duration::from_millis(150);

/// Windows in each of the app's latent snapshots: enough for the cloud's shape, few enough that a
/// software renderer draws it between steps (a saved run from `train --save` keeps 20,000).
pub const LIVE_LATENT_POINTS: usize = 8_000;

/// While the user interacts, the run sleeps this long between steps: the app trains on every
/// core, and gives the UI thread one back while it is being used.
pub const YIELD_WHILE_INTERACTING: Duration = Duration::from_millis(3);

/// Input within this long counts as interacting.
pub const INTERACTION_LINGER: Duration = Duration::from_millis(300);

/// When the user last gave the app input, as milliseconds on the wall clock (0: never), shared
/// by the UI, which sets it, and the worker, which yields while it is recent.
#[derive(Clone, Debug, Default)]
pub struct Interaction(Arc<AtomicU64>);

fn wall_clock_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Interaction {
    /// The user gave input now.
    pub fn touch(&self) {
        self.0.store(wall_clock_ms(), Ordering::Relaxed);
    }

    /// True when the user gave input within [`INTERACTION_LINGER`].
    pub fn recent(&self) -> bool {
        let at = self.0.load(Ordering::Relaxed);
        at > 0 && wall_clock_ms().saturating_sub(at) < INTERACTION_LINGER.as_millis() as u64
    }
}

impl Worker {
    /// Spawns a worker thread, named `donut-worker`, that trains on `data` with `config` (an
    /// automatic thread count resolved for the app), scores every window, evaluates the test
    /// part, and ends. `wake` is called after every event (the UI passes `ctx.request_repaint`).
    /// `latent_every_steps` sets the snapshot cadence.
    pub fn spawn(
        data: Arc<Prepared>,
        config: DonutConfig,
        wake: Box<dyn Fn() + Send + Sync>,
        latent_every_steps: usize,
    ) -> std::io::Result<Self> {
        Self::spawn_yielding(
            data,
            config,
            wake,
            latent_every_steps,
            Interaction::default(),
        )
    }

    /// As [`Worker::spawn`], yielding [`YIELD_WHILE_INTERACTING`] between steps while
    /// `interacting` is recent (the app touches it when the user moves, clicks or types).
    pub fn spawn_yielding(
        data: Arc<Prepared>,
        config: DonutConfig,
        wake: Box<dyn Fn() + Send + Sync>,
        latent_every_steps: usize,
        interacting: Interaction,
    ) -> std::io::Result<Self> {
        let (cmd_tx, cmd_rx) = bounded(COMMAND_CAPACITY);
        let (ev_tx, ev_rx) = bounded(EVENT_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("donut-worker".into())
            .spawn(move || {
                // The UI's frames come first; the run takes every cycle they leave.
                crate::threads::run_in_background();
                let mut state = WorkerState {
                    commands: cmd_rx,
                    events: ev_tx,
                    wake,
                    latent_every_steps,
                    interacting,
                };
                state.run_one(&data, &config);
                state.emit(WorkerEvent::Phase(Phase::Idle));
            })?;
        Ok(Self {
            commands: cmd_tx,
            events: ev_rx,
            thread: Some(thread),
        })
    }

    /// Sends a command; false if the worker has gone or its queue is full.
    pub fn send(&self, command: Command) -> bool {
        match self.commands.try_send(command) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => false,
        }
    }

    /// Events that have arrived, at most until `budget` has passed.
    pub fn drain(&self, budget: Duration) -> Vec<WorkerEvent> {
        let start = Instant::now();
        let mut out = Vec::new();
        while start.elapsed() < budget {
            match self.events.try_recv() {
                Ok(e) => out.push(e),
                Err(_) => break,
            }
        }
        out
    }

    /// True while the thread runs.
    pub fn is_alive(&self) -> bool {
        self.thread.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Asks the thread to end and waits for it (at most `timeout`); true if it ended.
    pub fn shutdown(&mut self, timeout: Duration) -> bool {
        let _ = self.commands.send_timeout(Command::Shutdown, timeout);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            // Keep the event queue moving so the worker never blocks on a full channel.
            while self.events.try_recv().is_ok() {}
            if self.thread.as_ref().is_none_or(|t| t.is_finished()) {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        false
    }
}

impl Drop for Worker {
    /// Asks the thread to end without waiting: it stops at its next step or scoring chunk.
    fn drop(&mut self) {
        let _ = self.commands.try_send(Command::Shutdown);
    }
}

struct WorkerState {
    commands: Receiver<Command>,
    events: Sender<WorkerEvent>,
    wake: Box<dyn Fn() + Send + Sync>,
    latent_every_steps: usize,
    interacting: Interaction,
}

/// What the commands asked for during a run.
#[derive(Clone, Copy)]
enum Polled {
    Continue,
    Stop,
    Shutdown,
}

impl WorkerState {
    fn emit(&self, event: WorkerEvent) {
        let _ = self.events.send(event);
        (self.wake)();
    }

    fn run_one(&mut self, data: &Arc<Prepared>, config: &DonutConfig) {
        self.emit(WorkerEvent::Phase(Phase::Training));
        let resolved = crate::threads::resolved(config, Host::App, 1);
        let mut hooks = WorkerHooks {
            state: self,
            pending: Vec::new(),
            last_flush: Instant::now(),
            request: Polled::Continue,
            last_progress: Instant::now(),
            phase: Phase::Training,
            step_budget: None,
        };
        // A panic inside burn must not take the app down: report it instead.
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            crate::pipeline::run(data, &resolved, &Part::ALL, &mut hooks)
        }));
        hooks.flush();
        let (request, phase) = (hooks.request, hooks.phase);
        if matches!(request, Polled::Shutdown) {
            return;
        }
        match result {
            Ok(Ok(mut record)) => {
                record.config.threads = config.threads;
                self.emit(WorkerEvent::Finished(Box::new(record)));
            }
            Ok(Err(RunError::Stopped(_))) => self.emit(WorkerEvent::Failed(
                "scoring was stopped before it finished: no scores for this run".into(),
            )),
            Ok(Err(e)) => self.emit(WorkerEvent::Failed(e.to_string())),
            Err(panic) => self.emit(WorkerEvent::Failed(format!(
                "the run panicked while {}: {}",
                if phase == Phase::Scoring {
                    "scoring"
                } else {
                    "training"
                },
                panic_message(&panic)
            ))),
        }
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}

struct WorkerHooks<'a> {
    state: &'a WorkerState,
    pending: Vec<StepStats>,
    last_flush: Instant,
    request: Polled,
    /// When scoring progress was last reported.
    last_progress: Instant,
    /// Training, or scoring once training has handed over.
    phase: Phase,
    /// Steps left before pausing, after a [`Command::Step`].
    step_budget: Option<usize>,
}

impl WorkerHooks<'_> {
    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let steps = std::mem::take(&mut self.pending);
            self.state.emit(WorkerEvent::Steps(steps));
        }
        self.last_flush = Instant::now();
    }

    /// Applies one command; returns Stop when the run must end.
    fn apply(&mut self, command: Command, live: &mut LiveSettings, paused: &mut bool) -> Flow {
        match command {
            Command::Pause => *paused = true,
            Command::Resume => {
                *paused = false;
                self.step_budget = None;
            }
            Command::Step(steps) => {
                *paused = false;
                self.step_budget = Some(steps.max(1));
            }
            Command::Live(settings) => *live = settings,
            Command::Stop => {
                self.request = Polled::Stop;
                return Flow::Stop;
            }
            Command::Shutdown => {
                self.request = Polled::Shutdown;
                return Flow::Stop;
            }
        }
        Flow::Continue
    }
}

impl TrainHooks for WorkerHooks<'_> {
    fn event(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Step(s) => {
                if let Some(left) = &mut self.step_budget {
                    *left = left.saturating_sub(1);
                }
                self.pending.push(s);
                if self.last_flush.elapsed() > Duration::from_millis(30) {
                    self.flush();
                }
            }
            other => {
                self.flush();
                self.state.emit(WorkerEvent::Train(other));
            }
        }
    }

    fn poll(&mut self, live: &mut LiveSettings) -> Flow {
        if self.state.interacting.recent() {
            std::thread::sleep(YIELD_WHILE_INTERACTING);
        }
        let mut paused = false;
        while let Ok(command) = self.state.commands.try_recv() {
            if self.apply(command, live, &mut paused) == Flow::Stop {
                return Flow::Stop;
            }
        }
        if self.step_budget == Some(0) {
            self.step_budget = None;
            paused = true;
        }
        if paused {
            self.flush();
            self.state.emit(WorkerEvent::Phase(Phase::Paused));
            while paused {
                match self.state.commands.recv_timeout(Duration::from_millis(200)) {
                    Ok(command) => {
                        if self.apply(command, live, &mut paused) == Flow::Stop {
                            return Flow::Stop;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        self.request = Polled::Shutdown;
                        return Flow::Stop;
                    }
                }
            }
            self.state.emit(WorkerEvent::Phase(Phase::Training));
        }
        Flow::Continue
    }

    fn latent_every_steps(&self) -> Option<usize> {
        Some(self.state.latent_every_steps.max(1))
    }

    fn latent_min_interval(&self) -> Option<Duration> {
        Some(LATENT_MIN_INTERVAL)
    }

    fn latent_max_points(&self) -> usize {
        LIVE_LATENT_POINTS
    }
}

impl RunHooks for WorkerHooks<'_> {
    fn wants_previews(&self) -> bool {
        true
    }

    fn preview(&mut self, preview: Preview) {
        self.flush();
        self.state.emit(WorkerEvent::Preview(Box::new(preview)));
    }

    fn score_after_training(&mut self) -> bool {
        self.flush();
        if matches!(self.request, Polled::Shutdown) {
            return false;
        }
        self.phase = Phase::Scoring;
        self.state.emit(WorkerEvent::Phase(Phase::Scoring));
        true
    }

    fn scoring(&mut self, done: usize, total: usize) -> bool {
        if self.last_progress.elapsed() > Duration::from_millis(100) {
            self.last_progress = Instant::now();
            self.state.emit(WorkerEvent::ScoreProgress { done, total });
        }
        match self.state.commands.try_recv() {
            Ok(Command::Stop) => {
                self.request = Polled::Stop;
                false
            }
            Ok(Command::Shutdown) => {
                self.request = Polled::Shutdown;
                false
            }
            _ => true,
        }
    }
}
