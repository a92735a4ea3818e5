//! The app: its state, the frame (pump events, draw the panels, apply their commands), and
//! eframe's hooks. Events from the worker and the file threads are drained in `logic()`, which
//! eframe calls even while the window is hidden, so a minimised app keeps training.

use super::bars::{TopBar, status_ui, top_bar_ui};
use super::columns::{ColumnPrompt, column_prompt_ui};
use super::commands::AppCommand;
use super::dataset::Dataset;
use super::file_browser::FileBrowser;
use super::layout::Pane;
use super::loader::{FileEvent, FileJobs, LoadedRun, Purpose, WriteJob};
use super::panes::MainPanes;
use super::projection::LatentCache;
use super::session::RunState;
use super::state::{AppOptions, FrameTimes, Persisted, state_file_path};
use super::widgets::remember;
use crate::config::{DonutConfig, SettingGroup};
use crate::data::{self, Prepared};
use crate::pipeline::{RunRecord, save_detections};
use crate::worker::{Command, Phase};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Between frames while only a search runs: its trials wake the app as they report, and a
/// frame under software rendering takes CPU from the trials.
pub const TUNE_FRAME_INTERVAL: Duration = Duration::from_millis(500);

/// The least time between two frames that only show a run's progress (3 a second; the user's
/// own input draws at once). Under software rendering every frame takes CPU, in the app's thread
/// and the renderer's, from training: on cpu4.csv on 2 cores the app trained at 81 % of the
/// command line's speed at 4 frames a second and 87 % at 3 (windows per second of training,
/// validations included, on both sides; BENCHMARKS.md, session 10).
pub const LIVE_FRAME_INTERVAL: Duration = Duration::from_millis(330);

/// The app.
pub struct DonutApp {
    /// Saved between launches.
    pub state: Persisted,
    options: AppOptions,
    /// The data.
    pub data: Option<Dataset>,
    /// File jobs on their own threads (dialogs, reading, writing).
    pub files: FileJobs,
    /// The in-app file browser, for desktops where the system dialog cannot open.
    pub browser: FileBrowser,
    /// A CSV waiting for its columns to be named.
    pub column_prompt: Option<ColumnPrompt>,
    /// The current run, replaced whole when the data or the run changes.
    pub run: RunState,
    /// The last error (load, training), shown until dismissed.
    pub error: Option<String>,
    /// A short notice (restart, save).
    pub notice: Option<String>,
    /// The window (its end point) to highlight in the series panel.
    pub highlight_end: Option<usize>,
    latent_cache: LatentCache,
    /// Frame times of `ui` (ms).
    pub frame_times: FrameTimes,
    started: Instant,
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
    /// Another series scored with the finished run's model ("Apply to another series…").
    pub applied: Option<Box<super::loader::Applied>>,
    /// The detection panel's cached precision-recall curve.
    pub detection: super::detection::DetectionCache,
    /// The main view's tiles.
    pub tree: egui_tiles::Tree<Pane>,
    /// Whether the Compare tab was shown last frame.
    compare_shown: bool,
    /// The window shown in the reconstruction view.
    pub inspection: Option<Box<super::loader::Inspection>>,
    /// The point hovered on the series (its window is marked in the latent cloud).
    pub series_hover: Option<usize>,
    /// Where the series' values plot was drawn last frame (plot to screen coordinates).
    pub series_transform: Option<egui_plot::PlotTransform>,
    /// The lessons tab.
    pub lessons: super::lessons::LessonPanel,
    /// The selected windows (ends, ascending): marked on the series and in the cloud, kept
    /// through replay.
    pub selection: Option<Arc<Vec<usize>>>,
    /// A brush being drawn on the series.
    series_brush: (Option<f64>, Option<f64>),
    /// The Fleet tab.
    pub fleet: super::fleet::FleetPanel,
    /// The Tune tab.
    pub tune: super::tune::TunePanel,
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
            match state.config.with_overrides(&[assignment]) {
                Ok(config) => state.config = config,
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
            browser: FileBrowser::default(),
            column_prompt: None,
            run: RunState::default(),
            error: launch_error,
            notice: None,
            highlight_end: None,
            latent_cache: LatentCache::default(),
            frame_times: FrameTimes::default(),
            started: Instant::now(),
            first_latent_secs: None,
            load_requested: false,
            restart_pending: false,
            sweeps: Default::default(),
            compare: Default::default(),
            state_saver: None,
            autostart_pending: false,
            applied: None,
            detection: Default::default(),
            tree: super::layout::default_tree(),
            compare_shown: true,
            inspection: None,
            series_hover: None,
            series_transform: None,
            lessons: Default::default(),
            selection: None,
            series_brush: (None, None),
            fleet: Default::default(),
            tune: Default::default(),
        }
    }

    /// The prepared data, when the current settings fit it.
    pub fn prepared(&self) -> Option<&Arc<Prepared>> {
        self.data.as_ref().and_then(|d| d.prepared.as_ref())
    }

    /// True while the worker trains, pauses or scores.
    pub fn is_running(&self) -> bool {
        self.run.is_running()
    }

    /// True while the worker thread is alive.
    pub fn worker_alive(&self) -> bool {
        self.run.worker_alive()
    }

    /// Loads a CSV in the background (with the columns remembered for it and the duplicate
    /// policy); the current data stays until it succeeds.
    pub fn open_path(&mut self, ctx: &egui::Context, path: PathBuf) {
        self.sync_reading();
        self.files.load(ctx, path);
    }

    /// Hands the file jobs what they need to read CSVs as the user asked.
    fn sync_reading(&mut self) {
        self.files.reading.choices = self.state.column_choices.clone();
        self.files.reading.duplicates = self.state.config.duplicates;
    }

    /// Chooses a file for `purpose`: the system dialog, or the in-app browser where the system
    /// dialog is known not to open.
    pub fn choose_file(&mut self, ctx: &egui::Context, purpose: Purpose) {
        self.sync_reading();
        if self.files.system_dialog_unavailable.is_some() {
            let folder = self.browse_folder();
            self.browser.open(purpose, &folder);
        } else {
            self.files.pick(ctx, purpose);
        }
    }

    /// Where the in-app browser starts: the folder of the last file opened, else the current one.
    fn browse_folder(&self) -> PathBuf {
        self.state
            .last_file
            .as_deref()
            .and_then(Path::parent)
            .filter(|p| p.is_dir())
            .map(Path::to_path_buf)
            .or_else(|| std::env::current_dir().ok())
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Chooses where to save, then writes there with `write`, in the background.
    fn save_as(&mut self, ctx: &egui::Context, suggested_name: &str, write: WriteJob) {
        self.choose_file(
            ctx,
            Purpose::Save {
                suggested_name: suggested_name.to_string(),
                write,
            },
        );
    }

    /// Reads a saved run (and its data) in the background; [`Self::open_saved_run`] shows it.
    pub fn open_run_path(&mut self, ctx: &egui::Context, path: PathBuf) {
        self.sync_reading();
        self.files.load_run(ctx, path);
    }

    /// Starts a fresh run with the current settings (a run in progress is told to end; it
    /// finishes on its own within a step).
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
        let wake_ctx = ctx.clone();
        // A run's events are drawn at most LIVE_FRAME_INTERVAL apart: every frame a software
        // renderer draws takes CPU from the run (the user's own input draws at once).
        let wake = Box::new(move || wake_ctx.request_repaint_after(LIVE_FRAME_INTERVAL));
        match RunState::start(prep, self.state.config.clone(), wake) {
            Ok(run) => {
                self.run = run;
                self.error = None;
            }
            Err(e) => self.error = Some(e),
        }
    }

    /// Ends the run without waiting for it or taking any more of its events, and clears it: its
    /// worker is told to shut down and finishes on its own within a step.
    pub fn reset_run(&mut self) {
        self.run = RunState::default();
        self.applied = None;
        self.inspection = None;
        self.selection = None;
    }

    /// Stops the run and ends the worker thread; true when it ended within the timeout.
    pub fn shutdown_worker(&mut self, timeout: Duration) -> bool {
        self.run.shutdown(timeout)
    }

    /// Puts `config` (from `origin`, e.g. a tuning trial) in the controls between runs: the data
    /// is prepared for it and a finished run whose windows it changes is cleared; nothing trains.
    pub fn load_settings(&mut self, config: DonutConfig, origin: &str) {
        if self.is_running() {
            self.notice = Some(format!("Stop the run before loading {origin}'s settings"));
            return;
        }
        let before = std::mem::replace(&mut self.state.config, config);
        let reshaped = before.reshapes_data(&self.state.config);
        if reshaped && let Some(d) = self.data.as_mut() {
            d.prepare(&self.state.config);
        }
        let cleared = reshaped && self.run.record.is_some();
        if cleared {
            self.run = RunState::default();
        }
        self.notice = Some(format!(
            "{origin}'s settings are in the controls: Train to use them{}",
            if cleared {
                " (the finished run was cleared: its scores belong to the old windows)"
            } else {
                ""
            }
        ));
    }

    /// Called after a settings change: live settings go to the running worker; structural
    /// changes restart the run (and say so); the data is re-prepared when the window or split moved.
    pub fn settings_changed(&mut self, ctx: &egui::Context, before: &DonutConfig) {
        let after = self.state.config.clone();
        if after.validate().is_err() {
            return;
        }
        let reread = before
            .changes(&after)
            .iter()
            .any(|c| c.group == SettingGroup::Load);
        if reread && let Some(path) = self.state.last_file.clone() {
            // The file is read again with the new policy; once read, it replaces the data and
            // the run (as any newly loaded file does).
            self.notice = Some(format!(
                "Reading {} again (duplicates = {})",
                path.display(),
                after.duplicates.name()
            ));
            self.open_path(ctx, path);
            return;
        }
        let reshaped = before.reshapes_data(&after);
        if reshaped && let Some(d) = self.data.as_mut() {
            d.prepare(&after);
        }
        let Some(run) = self.run.config.clone() else {
            return;
        };
        if !self.is_running() {
            if reshaped && self.run.record.is_some() {
                // A finished run's scores and latent points belong to the old windows.
                self.run = RunState::default();
                self.notice = Some(
                    "The window or the split changed: the finished run was cleared (its scores belong to the old windows)".into(),
                );
            }
            return;
        }
        if run.needs_restart(&after) {
            if ctx.input(|i| i.pointer.any_down()) {
                self.restart_pending = true;
                return;
            }
            self.restart_pending = false;
            let changed: Vec<String> = run
                .changes(&after)
                .iter()
                .filter(|c| c.group != SettingGroup::Live)
                .map(ToString::to_string)
                .collect();
            self.notice = Some(format!("Restarted training: {}", changed.join(", ")));
            self.start_training(ctx);
        } else if run.live() != after.live() {
            self.run.send(Command::Live(after.live()));
            if let Some(r) = self.run.config.as_mut() {
                after.live().apply_to(r);
            }
        }
    }

    /// Takes what the file threads and the worker have sent, and acts on what launch options and
    /// held sliders left waiting. Cheap when nothing arrived; called by `logic()` every frame
    /// (even with the window hidden) and by `ui_frame` (for tests that drive only `ui`).
    pub fn pump(&mut self, ctx: &egui::Context) {
        self.first_frame(ctx);
        let had_data = self.data.as_ref().map(|d| Arc::as_ptr(&d.raw));
        self.handle_file_events();
        if self.autostart_pending
            && (self.data.as_ref().map(|d| Arc::as_ptr(&d.raw)) != had_data
                || self.files.pending == 0)
        {
            self.autostart_pending = false;
            self.start_training(ctx);
        }
        if let Some(message) = self.run.pump() {
            self.error = Some(message);
        }
        if self.restart_pending && !ctx.input(|i| i.pointer.any_down()) {
            self.restart_pending = false;
            let before = self.run.config.clone().unwrap_or_default();
            self.settings_changed(ctx, &before);
        }
        self.fleet.poll();
        self.tune.poll();
        if self.is_running() || self.sweeps.is_running() || self.fleet.is_busy() {
            ctx.request_repaint_after(LIVE_FRAME_INTERVAL);
        } else if self.tune.is_running() {
            // Trials wake the app as they report; between reports only the clock moves.
            ctx.request_repaint_after(TUNE_FRAME_INTERVAL);
        }
        if self.files.pending > 0 {
            ctx.request_repaint_after(Duration::from_millis(100));
        }
    }

    /// Applies one command from a panel or a bar.
    pub fn apply(&mut self, ctx: &egui::Context, command: AppCommand) {
        match command {
            AppCommand::StartTraining => self.start_training(ctx),
            AppCommand::Pause => self.run.set_paused(true),
            AppCommand::Step(steps) => {
                if !matches!(self.run.phase, Phase::Training | Phase::Paused) {
                    self.start_training(ctx);
                }
                self.run.step(steps);
            }
            AppCommand::Resume => self.run.set_paused(false),
            AppCommand::Stop => self.run.send(Command::Stop),
            AppCommand::Reset => self.reset_run(),
            AppCommand::SettingsChanged { before } => self.settings_changed(ctx, &before),
            AppCommand::LoadSettings { config, origin } => self.load_settings(*config, &origin),
            AppCommand::LoadSample => {
                if let Ok(raw) = data::load_sample() {
                    self.reset_run();
                    self.data = Some(Dataset::new(Arc::new(raw), &self.state.config));
                    self.state.last_file = None;
                }
            }
            AppCommand::PickCsv => self.choose_file(ctx, Purpose::Csv),
            AppCommand::OpenCsv(path) => self.open_path(ctx, path),
            AppCommand::LoadWithColumns { path, columns } => {
                self.state.column_choices.insert(path.clone(), columns);
                self.open_path(ctx, path);
            }
            AppCommand::PickRun => self.choose_file(ctx, Purpose::Run),
            AppCommand::OpenRun(path) => self.open_run_path(ctx, path),
            AppCommand::SaveRun => self.save_run(ctx),
            AppCommand::PinRun => self.pin_run(),
            AppCommand::PickPin => self.choose_file(ctx, Purpose::Pin),
            AppCommand::ApplyToSeries => match self.run.record.clone() {
                Some(record) => {
                    let threshold = self.run.threshold;
                    self.choose_file(ctx, Purpose::Apply(record, threshold))
                }
                None => self.error = Some("No finished run to apply yet.".into()),
            },
            AppCommand::ApplyTo(path) => match self.run.record.clone() {
                Some(record) => {
                    let threshold = self.run.threshold;
                    self.files
                        .finish(ctx, Purpose::Apply(record, threshold), path)
                }
                None => self.error = Some("No finished run to apply yet.".into()),
            },
            AppCommand::SetThreshold(threshold) => self.run.threshold = threshold,
            AppCommand::Select(ends) => self.selection = Some(Arc::new(ends)),
            AppCommand::ClearSelection => self.selection = None,
            AppCommand::Inspect(end) => match (self.prepared().cloned(), self.run.record.clone()) {
                (Some(prep), Some(record)) if end + 1 >= prep.window && end < prep.len() => {
                    self.files.reconstruct(ctx, record, prep, end);
                }
                (Some(_), Some(_)) => {
                    self.notice = Some(format!(
                        "Point {end} ends no full window: nothing to reconstruct"
                    ))
                }
                _ => {
                    self.notice = Some(
                        "Train a run (or open one) to see why a point scores as it does".into(),
                    )
                }
            },
            AppCommand::ExportDetections => self.export_detections(ctx),
            AppCommand::SaveText {
                suggested_name,
                text,
            } => self.save_as(
                ctx,
                suggested_name,
                Box::new(move |path| {
                    Ok(crate::fsio::write_atomically(path, |w| {
                        w.write_all(text.as_bytes())
                    })?)
                }),
            ),
            AppCommand::ToggleSweeps => self.sweeps.open = !self.sweeps.open,
            AppCommand::ToggleCompare => self.compare.open = !self.compare.open,
        }
    }

    /// The whole UI for one frame (also what the headless tests drive).
    pub fn ui_frame(&mut self, ui: &mut egui::Ui) {
        let frame_start = Instant::now();
        let ctx = ui.ctx().clone();
        // Input this frame: the run yields a core while the user interacts.
        if ctx.input(|i| i.pointer.any_down() || !i.events.is_empty()) {
            self.run.interacting.touch();
        }
        self.pump(&ctx);
        let dropped: Vec<PathBuf> = ui.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        // A dropped run opens; anything else is read as a CSV.
        let mut commands: Vec<AppCommand> = dropped
            .into_iter()
            .map(|p| {
                if p.extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("donut"))
                {
                    AppCommand::OpenRun(p)
                } else {
                    AppCommand::OpenCsv(p)
                }
            })
            .collect();
        self.panels_ui(ui, &mut commands);
        column_prompt_ui(&ctx, &mut self.column_prompt, &mut commands);
        if let Some((path, purpose)) = self.browser.show(&ctx) {
            self.files.finish(&ctx, purpose, path);
        }
        for command in commands {
            self.apply(&ctx, command);
        }
        if self.first_latent_secs.is_none() && self.run.latest_snapshot().is_some() {
            self.first_latent_secs = Some(self.started.elapsed().as_secs_f64());
        }
        if let Some(secs) = self.options.quit_after_secs {
            let left_secs = secs - self.started.elapsed().as_secs_f64();
            if left_secs <= 0.0 {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            } else {
                // Wake to close, and no sooner: a measurement draws the frames the app draws.
                ctx.request_repaint_after(Duration::from_secs_f64(left_secs));
            }
        }
        self.frame_times
            .push(frame_start.elapsed().as_secs_f32() * 1000.0);
    }

    /// Draws every panel and window, each from its own part of the state; what they ask of the
    /// app lands in `commands`.
    fn panels_ui(&mut self, ui: &mut egui::Ui, commands: &mut Vec<AppCommand>) {
        let ctx = ui.ctx().clone();
        egui::Panel::top("menu").show(ui, |ui| {
            let bar = TopBar {
                data: self.data.as_ref(),
                recent_files: &self.state.recent_files,
                recent_runs: &self.state.recent_runs,
                busy: self.files.pending > 0,
                error: &mut self.error,
            };
            top_bar_ui(ui, bar, commands);
        });
        egui::Panel::bottom("status").show(ui, |ui| {
            status_ui(ui, &self.run, self.notice.as_deref(), &self.frame_times)
        });
        let can_train = self.prepared().is_some();
        egui::Panel::left("controls")
            .default_size(self.state.controls_width)
            .resizable(true)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    super::controls::controls_ui(
                        ui,
                        &mut self.state.config,
                        self.state.teaching,
                        self.run.phase,
                        can_train,
                        &mut self.state.step_count,
                        commands,
                    )
                });
            });
        let prep = self.data.as_ref().and_then(|d| d.prepared.clone());
        self.sync_compare_tab();
        let source = self
            .data
            .as_ref()
            .map(|d| d.raw.source.clone())
            .unwrap_or_default();
        let training = self.is_running();
        let mut panes = MainPanes {
            prep: prep.as_ref(),
            source: &source,
            run: &mut self.run,
            state: &mut self.state,
            latent_cache: &mut self.latent_cache,
            highlight_end: &mut self.highlight_end,
            compare: &mut self.compare,
            applied: self.applied.as_deref(),
            detection: &mut self.detection,
            inspection: self.inspection.as_deref_mut(),
            series_hover: &mut self.series_hover,
            series_transform: &mut self.series_transform,
            sweeps: &mut self.sweeps,
            lessons: &mut self.lessons,
            data: self.data.as_ref().map(|d| (&d.raw, d.prepared.as_ref())),
            selection: self.selection.as_deref().map(Vec::as_slice),
            brush: &mut self.series_brush,
            fleet: &mut self.fleet,
            tune: &mut self.tune,
            training,
            commands,
        };
        egui::CentralPanel::default().show(ui, |ui| self.tree.ui(&mut panes, ui));
        self.compare.open = super::layout::tile_of(&self.tree, Pane::Compare)
            .is_some_and(|t| self.tree.is_visible(t));

        let mut sweeps_open = self.sweeps.open;
        egui::Window::new("Sweeps")
            .open(&mut sweeps_open)
            .default_size([760.0, 620.0])
            .vscroll(true)
            .show(&ctx, |ui| {
                let data = self.data.as_ref().map(|d| (&d.raw, d.prepared.as_ref()));
                super::sweeps::sweeps_ui(ui, &mut self.sweeps, data, &self.state.config, commands)
            });
        self.sweeps.open = sweeps_open;
        if !self.sweeps.open {
            self.sweeps.poll();
        }
    }

    fn handle_file_events(&mut self) {
        for event in self.files.poll() {
            match event {
                FileEvent::Loaded(path, Ok(raw)) => {
                    let dataset = Dataset::new(raw, &self.state.config);
                    self.error = dataset.problem.as_ref().map(|problem| {
                        format!(
                            "{problem} (the current settings do not fit this file; adjust the window or split)"
                        )
                    });
                    // The run on the old data is abandoned, not stopped: a stopped run would still
                    // score the old series and deliver results that do not fit the new one.
                    self.reset_run();
                    self.data = Some(dataset);
                    remember(&mut self.state.recent_files, &path);
                    self.state.last_file = Some(path);
                    self.notice = None;
                }
                FileEvent::Loaded(_, Err(e)) => {
                    self.error = Some(format!(
                        "Could not load: {e}. The previous data is still loaded."
                    ));
                }
                FileEvent::Previewed(path, Ok(preview), problem) => {
                    self.notice = Some(format!("{}: name its columns to load it", path.display()));
                    self.column_prompt = Some(ColumnPrompt::new(
                        path,
                        preview,
                        problem.problem.to_string(),
                    ));
                }
                FileEvent::Previewed(_, Err(e), _) => {
                    self.error = Some(format!(
                        "Could not load: {e}. The previous data is still loaded."
                    ));
                }
                FileEvent::PickerUnavailable(purpose) => {
                    let reason = "the system file dialog could not open (no xdg-desktop-portal or zenity on this desktop)";
                    self.notice = Some(format!("{reason}: using the built-in file browser"));
                    self.files.system_dialog_unavailable = Some(reason.to_string());
                    let folder = self.browse_folder();
                    self.browser.open(purpose, &folder);
                }
                FileEvent::Saved(Ok(path)) => {
                    if path.extension().is_some_and(|e| e == "donut") {
                        remember(&mut self.state.recent_runs, &path);
                    }
                    self.notice = Some(format!("Saved {}", path.display()));
                }
                FileEvent::Saved(Err(e)) => self.error = Some(format!("Could not save: {e}")),
                FileEvent::RunLoaded(Ok(loaded)) => self.open_saved_run(*loaded),
                FileEvent::RunLoaded(Err(e)) => {
                    self.error = Some(format!("Could not open the run: {e}"))
                }
                FileEvent::PinLoaded(Ok(run)) => {
                    let threshold = run.threshold.value;
                    self.compare.pinned = Some((Arc::from(run), threshold));
                    self.compare.open = true;
                }
                FileEvent::PinLoaded(Err(e)) => {
                    self.error = Some(format!("Could not pin the run: {e}"))
                }
                FileEvent::Applied(Ok(applied))
                    if !self
                        .run
                        .record
                        .as_ref()
                        .is_some_and(|r| Arc::ptr_eq(r, &applied.record)) =>
                {
                    self.notice = Some(
                        "The other series was scored with a run that has since been replaced: apply it again".into(),
                    );
                }
                FileEvent::Applied(Ok(applied)) => {
                    self.notice = Some(format!(
                        "Scored {} with this model: {} points flagged",
                        applied.path.display(),
                        applied.detection.flagged
                    ));
                    self.applied = Some(applied);
                }
                FileEvent::Reconstructed(Ok(inspection)) => {
                    let current = self
                        .run
                        .record
                        .as_ref()
                        .is_some_and(|r| Arc::ptr_eq(r, &inspection.record));
                    if current {
                        self.inspection = Some(inspection);
                        super::layout::bring_forward(&mut self.tree, Pane::Reconstruction);
                    }
                }
                FileEvent::Reconstructed(Err(e)) => {
                    self.error = Some(format!("Could not reconstruct the window: {e}"))
                }
                FileEvent::Applied(Err(e)) => {
                    self.error = Some(format!("Could not score the other series: {e}"))
                }
                FileEvent::Cancelled => {}
            }
        }
    }

    /// How many points of the latent cloud drawn last are marked as selected.
    pub fn latent_cache_marked(&self) -> usize {
        self.latent_cache.marked
    }

    /// Shows the Compare tab when `compare.open` asks for it (a pin, the top bar's button), and
    /// brings it forward when it was just asked for.
    fn sync_compare_tab(&mut self) {
        let Some(tile) = super::layout::tile_of(&self.tree, Pane::Compare) else {
            return;
        };
        if self.compare.open != self.tree.is_visible(tile) {
            self.tree.set_visible(tile, self.compare.open);
        }
        if self.compare.open && !self.compare_shown {
            super::layout::bring_forward(&mut self.tree, Pane::Compare);
        }
        self.compare_shown = self.compare.open;
    }

    /// The finished run's record, when there is one.
    pub fn saved_run(&self) -> Option<RunRecord> {
        self.run.record.as_deref().cloned()
    }

    /// Pins the finished run for comparison and opens the compare window.
    pub fn pin_run(&mut self) {
        match &self.run.record {
            Some(record) => {
                self.compare.pinned = Some((record.clone(), self.run.threshold.value));
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
        let Some(record) = self.run.record.clone() else {
            self.error = Some("No finished run to save yet.".into());
            return;
        };
        self.save_as(
            ctx,
            "run.donut",
            Box::new(move |path| Ok(crate::runfile::save(path, &record)?)),
        );
    }

    /// Writes the finished run's detections at the current threshold (picker and writing in the
    /// background).
    fn export_detections(&mut self, ctx: &egui::Context) {
        let (Some(prep), Some(record)) = (self.prepared().cloned(), self.run.record.clone()) else {
            self.error = Some("No finished run to export yet.".into());
            return;
        };
        let threshold = self.run.threshold;
        self.save_as(
            ctx,
            "detections.csv",
            Box::new(move |path| Ok(save_detections(path, &prep, &record, &threshold)?)),
        );
    }

    /// Shows a saved run: its settings, losses, latent snapshots and scores, on its own data.
    pub fn open_saved_run(&mut self, loaded: LoadedRun) {
        let LoadedRun {
            path,
            run: saved,
            data,
        } = loaded;
        self.state.config = saved.config.clone();
        if let Some(raw) = data {
            self.data = Some(Dataset::new(raw, &saved.config));
        } else if let Some(d) = self.data.as_mut() {
            d.prepare(&saved.config);
        }
        let fits = self
            .prepared()
            .is_some_and(|p| p.source == saved.source && p.len() == saved.scores.len());
        remember(&mut self.state.recent_runs, &path);
        if !fits {
            self.run = RunState::without_data(&saved);
            self.error = Some(format!(
                "Opened run {}: it was trained on {}, which could not be loaded, so its scores and latent points are hidden.",
                path.display(),
                saved.source
            ));
            return;
        }
        self.notice = Some(format!(
            "Opened run {} (trained on {})",
            path.display(),
            saved.source
        ));
        self.run = RunState::finished(Arc::new(saved));
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
        if let Some(folder) = self.options.fleet.clone() {
            self.fleet.open(ctx, folder, &self.state.config);
            super::layout::bring_forward(&mut self.tree, Pane::Fleet);
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
            "latent_points": self.run.latest_snapshot().map(|l| l.ends.len()),
            "steps": self.run.history().steps.len(),
            // Mean training windows/s over the run so far: every step's windows over the
            // seconds from the first step to the last (validations and snapshots included).
            "train_windows_per_sec": self.run.history().steps.first().zip(self.run.history().steps.last()).and_then(|(a, b)| {
                let secs = b.elapsed_secs - a.elapsed_secs;
                let windows = (b.step - a.step) * self.run.config.as_ref().map_or(256, |c| c.batch_size);
                (secs > 0.0).then(|| windows as f64 / secs)
            }),
            // The finished run's own figure (steps alone, as `train --json` reports it).
            "record_train_windows_per_sec": self.run.record.as_ref().map(|r| r.stats.train_windows_per_sec),
            "first_preview_secs": self.run.first_preview_secs,
            "phase_at_exit": format!("{:?}", self.run.phase),
        });
        let _ = std::fs::write(path, report.to_string());
    }
}

impl eframe::App for DonutApp {
    /// Called before every frame and, while the window is hidden, whenever the worker wakes the
    /// app: events are taken here so that training never waits on a hidden window.
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.pump(ctx);
    }

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
