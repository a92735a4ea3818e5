//! The app's state and frame loop: persisted settings, the loaded data, the worker's events.

use super::latent::LatentView;
use super::latent3d::Camera;
use super::loader::{FileEvent, FileJobs};
use crate::config::DonutConfig;
use crate::data::{self, Prepared, RawSeries};
use crate::eval::{Adjust, F1Score, f1_at};
use crate::run::DataSummary;
use crate::train::worker::{Command, Phase, RunResult, Worker, WorkerEvent};
use crate::train::{LatentSnapshot, StepStats, TrainEvent, ValidStats};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Training threads in the app when the `threads` setting is 0: one core is left to the UI (whose
/// rendering is on the CPU too without a GPU). Measured on 2 cores (BENCHMARKS.md): a second
/// training thread added under 2 % to training throughput while the app draws, and tripled the
/// worst frame time.
pub fn app_worker_threads() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .max(1)
}

/// Steps between latent snapshots while training in the app.
const LATENT_EVERY_STEPS: usize = 10;

/// Everything that survives a restart of the app (eframe storage). Runtime handles are not here.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Persisted {
    /// Every hyperparameter.
    pub config: DonutConfig,
    /// The latent panel's choices.
    pub latent: LatentView,
    /// The 3-D camera.
    pub camera: Camera,
    /// The last CSV opened (reopened at launch when it still loads).
    pub last_file: Option<PathBuf>,
    /// Recently opened CSVs, newest first.
    pub recent_files: Vec<PathBuf>,
    /// Recently saved or opened runs, newest first.
    pub recent_runs: Vec<PathBuf>,
    /// Width of the controls panel.
    pub controls_width: f32,
    /// Teaching view: the stacked ELBO chart and explanations beside the controls.
    pub teaching: bool,
}

impl Default for Persisted {
    fn default() -> Self {
        Self {
            config: DonutConfig::default(),
            latent: LatentView::default(),
            camera: Camera::default(),
            last_file: None,
            recent_files: Vec::new(),
            recent_runs: Vec::new(),
            controls_width: 330.0,
            teaching: false,
        }
    }
}

impl Persisted {
    /// Reads the saved state; anything missing, corrupt or invalid falls back to the defaults.
    /// Looks in the app's own state file first (see [`Persisted::save_file`]), then in eframe's
    /// storage (where versions before 0.2 kept it).
    pub fn load(storage: Option<&dyn eframe::Storage>) -> Self {
        Self::load_from(state_file_path().as_deref(), storage)
    }

    /// [`Persisted::load`] with the state file's path given (None: eframe's storage only).
    pub fn load_from(
        file: Option<&std::path::Path>,
        storage: Option<&dyn eframe::Storage>,
    ) -> Self {
        let from_file = file.and_then(Self::load_file);
        let state = from_file.unwrap_or_else(|| {
            storage
                .and_then(|s| eframe::get_value::<Persisted>(s, eframe::APP_KEY))
                .unwrap_or_default()
        });
        state.checked()
    }

    /// Reads a state file; None when it is missing or unreadable (the caller uses defaults).
    pub fn load_file(path: &std::path::Path) -> Option<Self> {
        let text = std::fs::read_to_string(path).ok()?;
        serde_json::from_str::<Persisted>(&text)
            .ok()
            .map(Persisted::checked)
    }

    /// Writes the state to `path` atomically (a temporary file, synced, then renamed over the
    /// old one), so that a crash or a full disk mid-write leaves the previous state intact.
    pub fn save_file(&self, path: &std::path::Path) -> std::io::Result<()> {
        let text = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        crate::runfile::write_atomically(path, |w| w.write_all(text.as_bytes()))
    }

    /// The state with an out-of-range config replaced by the defaults (the rest kept).
    fn checked(self) -> Self {
        if self.config.validate().is_err() {
            Persisted {
                config: DonutConfig::default(),
                ..self
            }
        } else {
            self
        }
    }
}

/// Where the app keeps its state: `state.json` in eframe's storage folder for this app.
pub fn state_file_path() -> Option<PathBuf> {
    eframe::storage_dir("donut-explorer").map(|d| d.join("state.json"))
}

/// Launch options from the command line.
#[derive(Clone, Debug, Default)]
pub struct AppOptions {
    /// A CSV to open instead of the bundled sample.
    pub data: Option<PathBuf>,
    /// Start training as soon as the data is loaded.
    pub autostart: bool,
    /// Close the window after this many seconds (for smoke tests and measurements).
    pub quit_after_secs: Option<f64>,
    /// Write frame-time statistics (JSON) here on exit.
    pub frame_report: Option<PathBuf>,
    /// A saved run to open at launch.
    pub run: Option<PathBuf>,
    /// A saved run to pin for comparison at launch.
    pub pin: Option<PathBuf>,
    /// Settings (`key=value`) applied over the saved ones at launch.
    pub settings: Vec<String>,
}

/// The loaded series and its preparation for the current window and split.
pub struct Dataset {
    /// As read.
    pub raw: Arc<RawSeries>,
    /// Prepared for the current config (None when the config does not fit the data).
    pub prepared: Option<Arc<Prepared>>,
    /// Summary of the prepared data.
    pub summary: Option<DataSummary>,
    /// Why it could not be prepared.
    pub problem: Option<String>,
}

impl Dataset {
    fn new(raw: Arc<RawSeries>, config: &DonutConfig) -> Self {
        let mut d = Self {
            raw,
            prepared: None,
            summary: None,
            problem: None,
        };
        d.prepare(config);
        d
    }

    fn prepare(&mut self, config: &DonutConfig) {
        match Prepared::new(&self.raw, config) {
            Ok(p) => {
                self.summary = Some(DataSummary::of(&p));
                self.prepared = Some(Arc::new(p));
                self.problem = None;
            }
            Err(e) => {
                self.prepared = None;
                self.summary = None;
                self.problem = Some(e.to_string());
            }
        }
    }
}

/// Loss history of the current run.
#[derive(Default)]
pub struct History {
    /// Every training step.
    pub steps: Vec<StepStats>,
    /// Every validation.
    pub valid: Vec<ValidStats>,
    /// Steps planned.
    pub total_steps: usize,
    /// Steps per epoch.
    pub steps_per_epoch: usize,
}

/// Frame-time statistics: the app's own `ui` time, and eframe's whole-frame CPU time
/// (layout, tessellation and painting included) when running natively.
#[derive(Default)]
pub struct FrameTimes {
    samples_ms: Vec<f32>,
    full_ms: Vec<f32>,
}

/// (median, 99th percentile, worst, count) of the last `window` samples.
fn summarise(samples: &[f32], window: usize) -> (f32, f32, f32, usize) {
    let start = samples.len().saturating_sub(window);
    let mut v: Vec<f32> = samples[start..].to_vec();
    if v.is_empty() {
        return (0.0, 0.0, 0.0, 0);
    }
    v.sort_by(f32::total_cmp);
    let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    (pick(0.5), pick(0.99), v[v.len() - 1], v.len())
}

impl FrameTimes {
    fn push(&mut self, ms: f32) {
        self.samples_ms.push(ms);
    }

    fn push_full(&mut self, ms: f32) {
        self.full_ms.push(ms);
    }

    /// (median, 99th percentile, worst, count) of `ui` time over the last `window` frames.
    pub fn stats(&self, window: usize) -> (f32, f32, f32, usize) {
        summarise(&self.samples_ms, window)
    }

    /// The same for eframe's whole-frame CPU time.
    pub fn full_stats(&self, window: usize) -> (f32, f32, f32, usize) {
        summarise(&self.full_ms, window)
    }
}

/// The app.
pub struct DonutApp {
    /// Saved between launches.
    pub state: Persisted,
    pub(super) options: AppOptions,
    /// The data.
    pub data: Option<Dataset>,
    pub(super) files: FileJobs,
    worker: Option<Worker>,
    /// Where the worker is.
    pub phase: Phase,
    /// The config of the run in progress (or last run).
    pub run_config: Option<DonutConfig>,
    /// Loss history.
    pub history: History,
    /// The latest latent snapshot.
    pub latent: Option<LatentSnapshot>,
    /// Every latent snapshot of the current run.
    pub snapshots: Vec<LatentSnapshot>,
    /// The snapshot shown when replaying (None: the newest).
    pub replay: Option<usize>,
    /// Results of the last finished run.
    pub result: Option<Arc<RunResult>>,
    /// Anomaly-score threshold for flagging.
    pub threshold: f64,
    /// The last error (load, training), shown until dismissed.
    pub error: Option<String>,
    /// A short notice (restart, save).
    pub notice: Option<String>,
    /// Scoring progress (done, total).
    pub score_progress: Option<(usize, usize)>,
    /// The window (its end point) to highlight in the series panel.
    pub highlight_end: Option<usize>,
    pub(super) latent_cache: super::latent::LatentCache,
    /// Frame times of `ui` (ms).
    pub frame_times: FrameTimes,
    started: Instant,
    run_started: Option<Instant>,
    /// Seconds from launch to the first latent points on screen.
    pub first_latent_secs: Option<f64>,
    load_requested: bool,
    /// A structural change made while a slider is held: restart when it is released.
    restart_pending: bool,
    /// The sweep window.
    pub sweeps: super::sweeps::SweepPanel,
    /// The compare window and the pinned run.
    pub compare: super::compare::ComparePanel,
    /// The thread writing the last saved state, if any.
    state_saver: Option<std::thread::JoinHandle<()>>,
    /// `--autostart` waits for the CSV being loaded at launch.
    autostart_pending: bool,
}

impl DonutApp {
    /// Creates the app from eframe's creation context (restores the saved state).
    pub fn new(cc: &eframe::CreationContext<'_>, options: AppOptions) -> Self {
        Self::with_state(Persisted::load(cc.storage), options)
    }

    /// Creates the app from a state (tests use this). Starts on the bundled sample unless
    /// `options.data` or the saved last file names another CSV, which is loaded in the background.
    pub fn with_state(mut state: Persisted, options: AppOptions) -> Self {
        let mut launch_error = None;
        for assignment in &options.settings {
            let mut config = state.config.clone();
            match config.set(assignment).and_then(|()| config.validate()) {
                Ok(()) => state.config = config,
                Err(e) => launch_error = Some(format!("--set {assignment}: {e}")),
            }
        }
        let data = data::load_sample()
            .ok()
            .map(|raw| Dataset::new(Arc::new(raw), &state.config));
        Self {
            state,
            options,
            data,
            files: FileJobs::default(),
            worker: None,
            phase: Phase::Idle,
            run_config: None,
            history: History::default(),
            latent: None,
            snapshots: Vec::new(),
            replay: None,
            result: None,
            threshold: 0.0,
            error: launch_error,
            notice: None,
            score_progress: None,
            highlight_end: None,
            latent_cache: Default::default(),
            frame_times: FrameTimes::default(),
            started: Instant::now(),
            run_started: None,
            first_latent_secs: None,
            load_requested: false,
            restart_pending: false,
            sweeps: Default::default(),
            compare: Default::default(),
            state_saver: None,
            autostart_pending: false,
        }
    }

    /// The prepared data, when the current settings fit it.
    pub fn prepared(&self) -> Option<&Arc<Prepared>> {
        self.data.as_ref().and_then(|d| d.prepared.as_ref())
    }

    /// True while the worker trains, pauses or scores.
    pub fn is_running(&self) -> bool {
        self.phase != Phase::Idle
    }

    /// True while the worker thread is alive.
    pub fn worker_alive(&self) -> bool {
        self.worker.as_ref().is_some_and(|w| w.is_alive())
    }

    /// Loads a CSV in the background; the current data stays until it succeeds.
    pub fn open_path(&mut self, ctx: &egui::Context, path: PathBuf) {
        self.files.load(ctx, path);
    }

    /// Starts a fresh run with the current settings.
    pub fn start_training(&mut self, ctx: &egui::Context) {
        let Some(prep) = self.prepared().cloned() else {
            self.error = Some(
                self.data
                    .as_ref()
                    .and_then(|d| d.problem.clone())
                    .unwrap_or_else(|| "no data loaded".into()),
            );
            return;
        };
        if let Err(e) = self.state.config.validate() {
            self.error = Some(e.to_string());
            return;
        }
        let config = self.state.config.clone();
        let mut worker_config = config.clone();
        if worker_config.threads == 0 {
            worker_config.threads = app_worker_threads();
        }
        // A run in progress is told to end; it finishes on its own within a step.
        self.worker = None;
        let wake_ctx = ctx.clone();
        let spawned = Worker::spawn(
            prep,
            worker_config,
            Box::new(move || wake_ctx.request_repaint()),
            LATENT_EVERY_STEPS,
        );
        if let Err(e) = &spawned {
            self.error = Some(format!("cannot start the training thread: {e}"));
        }
        if let Ok(worker) = spawned {
            self.worker = Some(worker);
            self.history = History::default();
            self.latent = None;
            self.snapshots.clear();
            self.replay = None;
            self.result = None;
            self.score_progress = None;
            self.run_config = Some(config);
            self.phase = Phase::Training;
            self.run_started = Some(Instant::now());
            self.error = None;
        }
    }

    /// Ends the run in progress without waiting for it or taking any more of its events (the
    /// worker is told to shut down and finishes on its own within a step).
    pub fn abandon_run(&mut self) {
        self.worker = None;
        self.phase = Phase::Idle;
        self.score_progress = None;
    }

    /// Sends a command to the worker, if there is one.
    pub fn send(&mut self, command: Command) {
        if let Some(w) = &self.worker {
            w.send(command);
        }
    }

    /// Stops the run and ends the worker thread; true when it ended within the timeout.
    pub fn shutdown_worker(&mut self, timeout: Duration) -> bool {
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

    /// Called after a settings change: live settings go to the running worker; structural
    /// changes restart the run (and say so); the data is re-prepared when the window or split moved.
    pub fn settings_changed(&mut self, ctx: &egui::Context, before: &DonutConfig) {
        let after = self.state.config.clone();
        if after.validate().is_err() {
            return;
        }
        let reshape = before.window != after.window
            || before.test_fraction != after.test_fraction
            || before.valid_fraction != after.valid_fraction;
        if reshape && let Some(d) = self.data.as_mut() {
            d.prepare(&after);
        }
        let Some(run) = self.run_config.clone() else {
            return;
        };
        if !self.is_running() {
            return;
        }
        if run.needs_restart(&after) {
            if ctx.input(|i| i.pointer.any_down()) {
                self.restart_pending = true;
                return;
            }
            self.restart_pending = false;
            let changed: Vec<String> = run
                .entries()
                .into_iter()
                .zip(after.entries())
                .filter(|(a, b)| {
                    a.1 != b.1
                        && !matches!(
                            a.0.as_str(),
                            "beta_mode"
                                | "beta_value"
                                | "entropy_mode"
                                | "entropy_value"
                                | "injection_rate"
                                | "learning_rate"
                        )
                })
                .map(|(a, b)| format!("{} {} -> {}", a.0, a.1, b.1))
                .collect();
            self.notice = Some(format!("Restarted training: {}", changed.join(", ")));
            self.start_training(ctx);
        } else if run.live() != after.live() {
            self.send(Command::Live(after.live()));
            if let Some(r) = self.run_config.as_mut() {
                after.live().apply_to(r);
            }
        }
    }

    /// Precision/recall/F1 of the test part at the current threshold: (no delay, delay, point-wise).
    pub fn metrics_at_threshold(&self) -> Option<[F1Score; 3]> {
        let (prep, result) = (self.prepared()?, self.result.as_ref()?);
        if result.scores.len() != prep.len() {
            return None;
        }
        let test = prep.part(crate::data::Part::Test);
        let (s, l, m) = (
            &result.scores[test.clone()],
            &prep.labels[test.clone()],
            &prep.missing[test],
        );
        Some([
            f1_at(s, l, m, Adjust::Segment, self.threshold),
            f1_at(
                s,
                l,
                m,
                Adjust::Delay(result.config.eval_delay),
                self.threshold,
            ),
            f1_at(s, l, m, Adjust::PointWise, self.threshold),
        ])
    }

    fn handle_worker_events(&mut self) {
        let Some(worker) = &self.worker else { return };
        let events = worker.drain(Duration::from_millis(4));
        for event in events {
            match event {
                WorkerEvent::Steps(steps) => self.history.steps.extend(steps),
                WorkerEvent::Train(TrainEvent::Started {
                    total_steps,
                    steps_per_epoch,
                    ..
                }) => {
                    self.history.total_steps = total_steps;
                    self.history.steps_per_epoch = steps_per_epoch;
                }
                WorkerEvent::Train(TrainEvent::Step(s)) => self.history.steps.push(s),
                WorkerEvent::Train(TrainEvent::Valid(v)) => self.history.valid.push(v),
                WorkerEvent::Train(TrainEvent::Epoch { .. }) => {}
                WorkerEvent::Train(TrainEvent::Latent(snap)) => {
                    let before = self.snapshots.len();
                    crate::train::push_thinned(
                        &mut self.snapshots,
                        snap.clone(),
                        crate::train::MAX_KEPT_SNAPSHOTS,
                    );
                    if self.snapshots.len() < before {
                        self.replay = None; // indices moved
                    }
                    self.latent = Some(snap);
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
                WorkerEvent::Finished(result)
                    if self
                        .prepared()
                        .is_none_or(|p| p.len() != result.scores.len()) =>
                {
                    self.error = Some(
                        "A run finished on data that is no longer loaded: its results were dropped."
                            .into(),
                    );
                }
                WorkerEvent::Finished(mut result) => {
                    // The worker ran with the app's resolved thread count; the run's settings keep
                    // the requested one (0 = automatic), so that pinned, saved and reopened runs do
                    // not carry this machine's core count into other settings.
                    if let Some(r) = self.run_config.as_ref() {
                        result.config.threads = r.threads;
                    }
                    self.threshold = result.metrics.best_f1.threshold;
                    if let Some(r) = self.run_config.as_mut() {
                        *r = result.config.clone();
                    }
                    self.result = Some(Arc::from(result));
                    self.score_progress = None;
                }
                WorkerEvent::Failed(message) => {
                    self.error = Some(message);
                }
            }
        }
    }

    fn handle_file_events(&mut self) {
        for event in self.files.poll() {
            match event {
                FileEvent::Loaded(Ok(raw)) => {
                    let path = PathBuf::from(&raw.source);
                    let dataset = Dataset::new(raw, &self.state.config);
                    if let Some(problem) = &dataset.problem {
                        self.error = Some(format!(
                            "{problem} (the current settings do not fit this file; adjust the window or split)"
                        ));
                    } else {
                        self.error = None;
                    }
                    // The run on the old data is abandoned, not stopped: a stopped run would still
                    // score the old series and deliver results that do not fit the new one.
                    self.abandon_run();
                    self.data = Some(dataset);
                    self.result = None;
                    self.latent = None;
                    self.snapshots.clear();
                    self.history = History::default();
                    self.state.recent_files.retain(|p| p != &path);
                    self.state.recent_files.insert(0, path.clone());
                    self.state.recent_files.truncate(8);
                    self.state.last_file = Some(path);
                    self.notice = None;
                }
                FileEvent::Loaded(Err(e)) => {
                    self.error = Some(format!(
                        "Could not load: {e}. The previous data is still loaded."
                    ));
                }
                FileEvent::Saved(Ok(path)) => {
                    if path.extension().is_some_and(|e| e == "donut") {
                        remember(&mut self.state.recent_runs, &path);
                    }
                    self.notice = Some(format!("Saved {}", path.display()));
                }
                FileEvent::RunLoaded(Ok(loaded)) => self.open_saved_run(*loaded),
                FileEvent::RunLoaded(Err(e)) => {
                    self.error = Some(format!("Could not open the run: {e}"))
                }
                FileEvent::Saved(Err(e)) => self.error = Some(format!("Could not save: {e}")),
                FileEvent::PinLoaded(Ok(run)) => {
                    let threshold = run.metrics.map_or(0.0, |m| m.best_f1.threshold);
                    self.compare.pinned = Some((Arc::from(run), threshold));
                    self.compare.open = true;
                }
                FileEvent::PinLoaded(Err(e)) => {
                    self.error = Some(format!("Could not pin the run: {e}"))
                }
                FileEvent::Cancelled => {}
            }
        }
    }

    /// The finished run as a saved-run record, when there is one.
    pub fn saved_run(&self) -> Option<crate::runfile::SavedRun> {
        let result = self.result.as_ref()?;
        Some(crate::runfile::SavedRun {
            app_version: env!("CARGO_PKG_VERSION").to_string(),
            source: self
                .data
                .as_ref()
                .map(|d| d.raw.source.clone())
                .unwrap_or_default(),
            config: result.config.clone(),
            weights: result.weights.clone(),
            metrics: Some(result.metrics),
            steps: self.history.steps.clone(),
            validations: self.history.valid.clone(),
            snapshots: self.snapshots.clone(),
            scores: result.scores.clone(),
            epochs_done: result.epochs_done,
            train_secs: result.train_secs,
            train_windows_per_sec: result.train_windows_per_sec,
            score_secs: result.score_secs,
        })
    }

    /// Pins the finished run for comparison (its record is copied once) and opens the compare
    /// window.
    pub fn pin_run(&mut self) {
        match self.saved_run() {
            Some(run) => {
                self.compare.pinned = Some((Arc::new(run), self.threshold));
                self.compare.open = true;
                self.notice = Some(
                    "Pinned this run: train another (or open a saved run) to compare them".into(),
                );
            }
            None => self.error = Some("No finished run to pin yet.".into()),
        }
    }

    /// Saves the finished run (picker and writing in the background).
    pub fn save_run(&mut self, ctx: &egui::Context) {
        let Some(saved) = self.saved_run() else {
            self.error = Some("No finished run to save yet.".into());
            return;
        };
        self.files.pick_and_save(ctx, "run.donut", move |path| {
            Ok(crate::runfile::save(path, &saved)?)
        });
    }

    /// Reads a saved run (and its data) in the background; [`Self::open_saved_run`] shows it.
    pub fn open_run_path(&mut self, ctx: &egui::Context, path: PathBuf) {
        self.files.load_run(ctx, path);
    }

    /// Shows a saved run: its settings, losses, latent snapshots and scores, on its own data.
    pub fn open_saved_run(&mut self, loaded: super::loader::LoadedRun) {
        let super::loader::LoadedRun {
            path,
            run: saved,
            data,
        } = loaded;
        self.worker = None;
        self.phase = Phase::Idle;
        self.state.config = saved.config.clone();
        if let Some(raw) = data {
            self.data = Some(Dataset::new(raw, &saved.config));
        } else if let Some(d) = self.data.as_mut() {
            d.prepare(&saved.config);
        }
        let fits = self
            .prepared()
            .is_some_and(|p| p.source == saved.source && p.len() == saved.scores.len());
        self.history = History {
            steps: saved.steps.clone(),
            valid: saved.validations.clone(),
            total_steps: saved.steps.len(),
            steps_per_epoch: 0,
        };
        self.replay = None;
        self.run_config = Some(saved.config.clone());
        remember(&mut self.state.recent_runs, &path);
        if !fits {
            self.result = None;
            self.latent = None;
            self.snapshots.clear();
            self.error = Some(format!(
                "Opened run {}: it was trained on {}, which could not be loaded, so its scores and latent points are hidden.",
                path.display(),
                saved.source
            ));
            return;
        }
        self.snapshots = saved.snapshots.clone();
        self.latent = saved.snapshots.last().cloned();
        self.result = saved.metrics.map(|metrics| {
            Arc::new(RunResult {
                scores: saved.scores.clone(),
                metrics,
                config: saved.config.clone(),
                epochs_done: saved.epochs_done,
                train_secs: saved.train_secs,
                train_windows_per_sec: saved.train_windows_per_sec,
                score_secs: saved.score_secs,
                stopped: false,
                weights: saved.weights.clone(),
            })
        });
        if let Some(r) = &self.result {
            self.threshold = r.metrics.best_f1.threshold;
        }
        self.notice = Some(format!(
            "Opened run {} (trained on {})",
            path.display(),
            saved.source
        ));
    }

    fn first_frame(&mut self, ctx: &egui::Context) {
        if self.load_requested {
            return;
        }
        self.load_requested = true;
        // A run opened at launch brings its own data: no CSV is loaded over it.
        let path = if self.options.run.is_some() {
            None
        } else {
            self.options
                .data
                .clone()
                .or_else(|| self.state.last_file.clone())
        };
        if let Some(path) = path.clone() {
            self.open_path(ctx, path);
        }
        if let Some(run) = self.options.run.clone() {
            self.open_run_path(ctx, run);
        }
        if let Some(pin) = self.options.pin.clone() {
            self.files.load_pin(ctx, pin);
        }
        if self.options.autostart {
            if path.is_some() {
                // Train on the file once it has loaded (or on what is loaded if it fails).
                self.autostart_pending = true;
            } else if self.options.run.is_none() {
                self.start_training(ctx);
            }
        }
    }

    /// The whole UI for one frame (also what the headless tests drive).
    pub fn ui_frame(&mut self, ui: &mut egui::Ui) {
        let frame_start = Instant::now();
        let ctx = ui.ctx().clone();
        self.first_frame(&ctx);
        let had_data = self.data.as_ref().map(|d| Arc::as_ptr(&d.raw));
        self.handle_file_events();
        if self.autostart_pending
            && (self.data.as_ref().map(|d| Arc::as_ptr(&d.raw)) != had_data
                || self.files.pending == 0)
        {
            self.autostart_pending = false;
            self.start_training(&ctx);
        }
        self.handle_worker_events();
        if self.restart_pending && !ctx.input(|i| i.pointer.any_down()) {
            let before = self.run_config.clone().unwrap_or_default();
            self.settings_changed(&ctx, &before);
        }
        let dropped: Vec<PathBuf> = ui.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        for path in dropped {
            self.open_path(&ctx, path);
        }

        egui::Panel::top("menu").show(ui, |ui| self.top_bar_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        egui::Panel::left("controls")
            .default_size(self.state.controls_width)
            .resizable(true)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| super::controls::controls_ui(self, ui));
            });
        egui::CentralPanel::default().show(ui, |ui| {
            let full = ui.available_size();
            let series_height = (full.y * 0.48).max(220.0);
            ui.allocate_ui(egui::vec2(full.x, series_height), |ui| {
                super::series::series_ui(self, ui)
            });
            ui.separator();
            ui.columns(2, |cols| {
                super::latent::latent_ui(self, &mut cols[0]);
                super::loss::loss_ui(self, &mut cols[1]);
            });
        });

        let mut sweeps_open = self.sweeps.open;
        egui::Window::new("Sweeps")
            .open(&mut sweeps_open)
            .default_size([760.0, 620.0])
            .vscroll(true)
            .show(&ctx, |ui| super::sweeps::sweeps_ui(self, ui));
        self.sweeps.open = sweeps_open;
        if !self.sweeps.open {
            self.sweeps.poll();
        }

        let mut compare_open = self.compare.open;
        egui::Window::new("Compare runs")
            .open(&mut compare_open)
            // Right of the controls, so that Train and the sliders stay reachable.
            .default_pos([self.state.controls_width + 40.0, 70.0])
            .default_size([900.0, 760.0])
            .vscroll(true)
            .show(&ctx, |ui| super::compare::compare_ui(self, ui));
        self.compare.open = compare_open;

        if self.is_running() || self.sweeps.is_running() {
            ctx.request_repaint_after(Duration::from_millis(33));
        }
        if self.files.pending > 0 {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
        if self.first_latent_secs.is_none() && self.latent.is_some() {
            self.first_latent_secs = Some(self.started.elapsed().as_secs_f64());
        }
        if let Some(secs) = self.options.quit_after_secs {
            if self.started.elapsed().as_secs_f64() >= secs {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            } else {
                ctx.request_repaint_after(Duration::from_millis(100));
            }
        }
        self.frame_times
            .push(frame_start.elapsed().as_secs_f32() * 1000.0);
    }

    fn top_bar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("donut-explorer");
            ui.separator();
            if ui.button("Open CSV…").on_hover_text("Open a timestamp,value[,label] CSV (or drop one on the window)").clicked() {
                self.files.pick_and_load(ui.ctx());
            }
            if ui.button("Sample data").on_hover_text("Load the bundled sample series").clicked()
                && let Ok(raw) = data::load_sample()
            {
                self.abandon_run();
                self.data = Some(Dataset::new(Arc::new(raw), &self.state.config));
                self.state.last_file = None;
                self.result = None;
                self.latent = None;
                self.snapshots.clear();
                self.history = History::default();
            }
            if ui.button("Sweeps…").on_hover_text("Repeat runs over a setting's values and seeds; compare their F1 and latent spaces").clicked() {
                self.sweeps.open = !self.sweeps.open;
            }
            if ui
                .button("Pin run")
                .on_hover_text("Keep the finished run aside to compare the next one with it")
                .clicked()
            {
                self.pin_run();
            }
            if ui.button("Compare…").on_hover_text("The pinned run beside the current one: settings, figures, losses, latent spaces, detections").clicked() {
                self.compare.open = !self.compare.open;
            }
            if ui
                .button("Save run…")
                .on_hover_text("Save the finished run: settings, weights, metrics, losses, latent snapshots, scores")
                .clicked()
            {
                let ctx = ui.ctx().clone();
                self.save_run(&ctx);
            }
            if ui.button("Open run…").on_hover_text("Open a saved run (.donut)").clicked() {
                self.files.pick_and_load_run(ui.ctx());
            }
            if let Some(p) = recent_ui(ui, "Recent runs", &self.state.recent_runs) {
                self.open_run_path(ui.ctx(), p);
            }
            if let Some(p) = recent_ui(ui, "Recent", &self.state.recent_files) {
                self.open_path(ui.ctx(), p);
            }
            ui.separator();
            if let Some(d) = &self.data {
                match &d.summary {
                    Some(s) => {
                        ui.label(format!(
                            "{} · {} points · every {} · {} missing · {:.2} % anomalous · roughness {:.3} · train/valid/test {}/{}/{}",
                            short_name(&s.source),
                            s.points,
                            format_interval(s.interval_secs, d.raw.has_timestamps),
                            s.missing,
                            s.anomaly_ratio * 100.0,
                            s.roughness,
                            s.split[0],
                            s.split[1],
                            s.split[2]
                        ));
                    }
                    None => {
                        ui.colored_label(ui.visuals().warn_fg_color, d.problem.clone().unwrap_or_default());
                    }
                }
            }
            if self.files.pending > 0 {
                ui.spinner();
            }
        });
        if let Some(e) = self.error.clone() {
            ui.horizontal(|ui| {
                ui.colored_label(ui.visuals().error_fg_color, format!("Error: {e}"));
                if ui.small_button("Dismiss").clicked() {
                    self.error = None;
                }
            });
        }
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            let state = match self.phase {
                Phase::Idle if self.result.is_some() => "finished",
                Phase::Idle => "idle",
                Phase::Training => "training",
                Phase::Paused => "paused",
                Phase::Scoring => "scoring",
            };
            ui.strong(state);
            if let Some(s) = self.history.steps.last() {
                let epochs = self.run_config.as_ref().map_or(0, |c| c.epochs);
                ui.label(format!(
                    "epoch {}/{} · step {}/{} · {:.0} windows/s · elapsed {:.1} s",
                    s.epoch + 1,
                    epochs,
                    s.step,
                    self.history.total_steps,
                    s.windows_per_sec,
                    s.elapsed_secs
                ));
            }
            if let Some((done, total)) = self.score_progress {
                ui.add(egui::ProgressBar::new(done as f32 / total.max(1) as f32).desired_width(160.0).text(format!("scoring {done}/{total}")));
            }
            if let Some(r) = &self.result {
                ui.label(format!(
                    "trained {:.1} s ({:.0} win/s) · scored {:.1} s · best F1 {:.3} / delay {} {:.3} / point-wise {:.3}",
                    r.train_secs,
                    r.train_windows_per_sec,
                    r.score_secs,
                    r.metrics.best_f1.f1,
                    r.config.eval_delay,
                    r.metrics.best_f1_delay.f1,
                    r.metrics.best_f1_pointwise.f1
                ));
            }
            if let Some(n) = &self.notice {
                ui.separator();
                ui.label(n.as_str());
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let (median, _, worst, _) = self.frame_times.stats(120);
                ui.weak(format!("frame {median:.1} ms (worst {worst:.1})"));
            });
        });
    }

    fn write_frame_report(&self) {
        let Some(path) = &self.options.frame_report else {
            return;
        };
        let (median, p99, worst, count) = self.frame_times.stats(usize::MAX);
        let (full_median, full_p99, full_worst, full_count) =
            self.frame_times.full_stats(usize::MAX);
        let report = serde_json::json!({
            "ui_frames": count,
            "ui_median_ms": median,
            "ui_p99_ms": p99,
            "ui_worst_ms": worst,
            "frame_cpu_frames": full_count,
            "frame_cpu_median_ms": full_median,
            "frame_cpu_p99_ms": full_p99,
            "frame_cpu_worst_ms": full_worst,
            "first_latent_secs": self.first_latent_secs,
            "latent_points": self.latent.as_ref().map(|l| l.ends.len()),
            "steps": self.history.steps.len(),
            "phase_at_exit": format!("{:?}", self.phase),
        });
        let _ = std::fs::write(path, report.to_string());
    }
}

/// A drop-down of recent files (nothing when the list is empty); returns the one clicked.
fn recent_ui(ui: &mut egui::Ui, label: &str, files: &[PathBuf]) -> Option<PathBuf> {
    if files.is_empty() {
        return None;
    }
    let mut open = None;
    egui::ComboBox::from_id_salt(label)
        .selected_text(label)
        .show_ui(ui, |ui| {
            for p in files {
                if ui
                    .selectable_label(false, p.display().to_string())
                    .clicked()
                {
                    open = Some(p.clone());
                }
            }
        });
    open
}

/// Puts `path` first in a recent-files list of at most 8.
fn remember(list: &mut Vec<PathBuf>, path: &std::path::Path) {
    list.retain(|p| p != path);
    list.insert(0, path.to_path_buf());
    list.truncate(8);
}

pub(super) fn short_name(source: &str) -> String {
    std::path::Path::new(source)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| source.to_string())
}

fn format_interval(secs: i64, has_timestamps: bool) -> String {
    if !has_timestamps {
        return "1 row (no timestamps)".into();
    }
    match secs {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

impl eframe::App for DonutApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        if let Some(cpu_secs) = frame.info().cpu_usage {
            self.frame_times.push_full(cpu_secs * 1000.0);
        }
        self.ui_frame(ui);
    }

    /// Saves the state to the app's own file, atomically, on a named background thread (eframe's
    /// storage writes its file in place, which a crash mid-write can leave half-written).
    fn save(&mut self, _storage: &mut dyn eframe::Storage) {
        let Some(path) = state_file_path() else {
            return;
        };
        if let Some(previous) = self.state_saver.take() {
            let _ = previous.join();
        }
        let state = self.state.clone();
        self.state_saver = std::thread::Builder::new()
            .name("state-saver".into())
            .spawn(move || {
                if let Err(e) = state.save_file(&path) {
                    log::warn!("could not save the app state to {}: {e}", path.display());
                }
            })
            .ok();
    }

    fn on_exit(&mut self, _gl: Option<&eframe::glow::Context>) {
        if let Some(saver) = self.state_saver.take() {
            let _ = saver.join();
        }
        self.write_frame_report();
        self.shutdown_worker(Duration::from_secs(2));
    }
}
