//! Background file work for the UI: the system file dialog, reading CSVs and runs, writing files,
//! each on a named thread that reports back over a bounded channel and wakes the UI.
//!
//! Where the system dialog cannot open (a Linux desktop without xdg-desktop-portal or zenity:
//! rfd then returns at once, as if cancelled), the job comes back as
//! [`FileEvent::PickerUnavailable`] and the app finishes it with its in-app browser.

use crate::config::DuplicatePolicy;
use crate::data::{self, ColumnChoice, DataError, LoadOptions, Preview, RawSeries};
use crate::pipeline::RunRecord;
use crossbeam_channel::{Receiver, Sender, bounded};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A system dialog that answers faster than this without a file was not shown at all.
const NO_DIALOG_WITHIN: Duration = Duration::from_millis(250);

/// Writes a file to the path chosen for it.
pub type WriteJob = Box<dyn FnOnce(&Path) -> anyhow::Result<()> + Send>;

/// What a file is being chosen for.
pub enum Purpose {
    /// A CSV to load.
    Csv,
    /// A saved run to open.
    Run,
    /// A saved run to pin for comparison.
    Pin,
    /// A CSV to score with a finished run's model ("Apply to another series…"), flagged at a
    /// threshold.
    Apply(Arc<RunRecord>, crate::eval::Threshold),
    /// A file to write.
    Save {
        /// The name proposed (its extension is the filter).
        suggested_name: String,
        /// What to write there.
        write: WriteJob,
    },
}

impl std::fmt::Debug for Purpose {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Csv => write!(f, "Csv"),
            Self::Run => write!(f, "Run"),
            Self::Pin => write!(f, "Pin"),
            Self::Apply(..) => write!(f, "Apply"),
            Self::Save { suggested_name, .. } => write!(f, "Save({suggested_name})"),
        }
    }
}

impl Purpose {
    /// The title of a dialog for this purpose.
    pub fn title(&self) -> &'static str {
        match self {
            Self::Csv => "Open a KPI series (CSV)",
            Self::Run => "Open a saved run",
            Self::Pin => "Pin a saved run",
            Self::Apply(..) => "Score another series with this model (CSV)",
            Self::Save { .. } => "Save as",
        }
    }

    /// The file extensions this purpose reads or writes.
    pub fn extensions(&self) -> Vec<String> {
        match self {
            Self::Csv | Self::Apply(..) => vec!["csv".into(), "txt".into(), "tsv".into()],
            Self::Run | Self::Pin => vec!["donut".into()],
            Self::Save { suggested_name, .. } => {
                vec![
                    suggested_name
                        .rsplit('.')
                        .next()
                        .unwrap_or("csv")
                        .to_string(),
                ]
            }
        }
    }
}

/// How CSVs are read: the columns chosen for each file, and the duplicate policy.
#[derive(Clone, Debug, Default)]
pub struct Reading {
    /// Column choices remembered per file.
    pub choices: BTreeMap<PathBuf, ColumnChoice>,
    /// What to do with repeated timestamps.
    pub duplicates: DuplicatePolicy,
}

impl Reading {
    /// The options for `path`.
    pub fn options_for(&self, path: &Path) -> LoadOptions {
        LoadOptions {
            columns: self.choices.get(path).cloned().unwrap_or_default(),
            duplicates: self.duplicates,
            lenient: false,
        }
    }
}

/// A message from a file thread.
#[derive(Debug)]
pub enum FileEvent {
    /// A CSV was read (or failed to be): the path, and the series or the error.
    Loaded(PathBuf, Result<Arc<RawSeries>, DataError>),
    /// The first rows of a CSV whose columns were not recognised, with the error that said so.
    Previewed(PathBuf, Result<Preview, DataError>, DataError),
    /// The user closed the picker without choosing.
    Cancelled,
    /// The system dialog could not open: the in-app browser takes the job over.
    PickerUnavailable(Purpose),
    /// A file was written (Ok: where) or failed.
    Saved(Result<PathBuf, String>),
    /// A saved run was read, with the series it was trained on when that could be read too.
    RunLoaded(Result<Box<LoadedRun>, String>),
    /// A saved run was read to be pinned for comparison.
    PinLoaded(Result<Box<RunRecord>, String>),
    /// Another series was scored with a run's model.
    Applied(Result<Box<Applied>, String>),
    /// A window was reconstructed with the run's model (for the reconstruction view).
    Reconstructed(Result<Box<Inspection>, String>),
}

/// A window reconstructed with a run's model.
#[derive(Debug)]
pub struct Inspection {
    /// The run whose model reconstructed it.
    pub record: Arc<RunRecord>,
    /// The reconstruction.
    pub window: crate::score::WindowReconstruction,
    /// The MCMC iteration shown (0: the window as given).
    pub mcmc_shown: usize,
}

/// Another series scored with a finished run's model: its data, prepared with the training
/// statistics, and the detection.
#[derive(Debug)]
pub struct Applied {
    /// The file.
    pub path: PathBuf,
    /// The run whose model scored it.
    pub record: Arc<RunRecord>,
    /// The series, standardised with the run's training statistics.
    pub prep: Arc<crate::data::Prepared>,
    /// Scores, flags, and figures with labels.
    pub detection: crate::pipeline::detect::Detection,
}

/// A saved run and its data.
#[derive(Debug)]
pub struct LoadedRun {
    /// The run file.
    pub path: PathBuf,
    /// Its contents.
    pub run: RunRecord,
    /// The series it was trained on, when found (the bundled sample, or a file that still loads).
    pub data: Option<Arc<RawSeries>>,
}

/// Reads a CSV; an unrecognised header comes back with a preview for the column prompt.
fn read_csv(path: PathBuf, reading: &Reading) -> FileEvent {
    match data::load_csv_with(&path, &reading.options_for(&path)) {
        Ok(raw) => FileEvent::Loaded(path, Ok(Arc::new(raw))),
        Err(e) if e.asks_for_columns() => {
            let preview = data::preview_csv(&path, 8);
            FileEvent::Previewed(path, preview, e)
        }
        Err(e) => FileEvent::Loaded(path, Err(e)),
    }
}

fn read_run(path: PathBuf, reading: &Reading) -> FileEvent {
    let run = match crate::runfile::load(&path) {
        Ok(r) => r,
        Err(e) => return FileEvent::RunLoaded(Err(e.to_string())),
    };
    let data = if run.source == data::SAMPLE_NAME {
        data::load_sample().ok()
    } else {
        // The run's data, read as the run read it: its columns, its duplicate policy.
        let source = PathBuf::from(&run.source);
        let options = LoadOptions {
            duplicates: run.config.duplicates,
            ..reading.options_for(&source)
        };
        data::load_csv_with(&source, &options).ok()
    };
    FileEvent::RunLoaded(Ok(Box::new(LoadedRun {
        path,
        run,
        data: data.map(Arc::new),
    })))
}

fn read_pin(path: PathBuf) -> FileEvent {
    FileEvent::PinLoaded(
        crate::runfile::load(&path)
            .map(Box::new)
            .map_err(|e| e.to_string()),
    )
}

/// Reads `path` and scores it with `record`'s model, flagged at `threshold`.
fn apply_run(
    path: PathBuf,
    record: &Arc<RunRecord>,
    threshold: crate::eval::Threshold,
    reading: &Reading,
) -> FileEvent {
    use crate::pipeline::detect;
    let scored = (|| -> Result<Applied, String> {
        let columns = reading.options_for(&path).columns;
        let options = detect::load_options(record, columns, false);
        let raw = data::load_csv_with(&path, &options).map_err(|e| e.to_string())?;
        let model = record.model()?;
        let (prep, detection) = detect::detect_series(
            record,
            &model,
            &record.config,
            &raw,
            threshold,
            &mut |_, _| true,
        )
        .map_err(|e| e.to_string())?;
        Ok(Applied {
            path: path.clone(),
            record: record.clone(),
            prep: Arc::new(prep),
            detection,
        })
    })();
    FileEvent::Applied(scored.map(Box::new))
}

/// Does what `purpose` asks with the chosen `path` (on the calling file thread).
fn finish(purpose: Purpose, path: PathBuf, reading: &Reading) -> FileEvent {
    match purpose {
        Purpose::Csv => read_csv(path, reading),
        Purpose::Run => read_run(path, reading),
        Purpose::Pin => read_pin(path),
        Purpose::Apply(record, threshold) => apply_run(path, &record, threshold, reading),
        Purpose::Save { write, .. } => {
            FileEvent::Saved(write(&path).map(|()| path).map_err(|e| format!("{e:#}")))
        }
    }
}

/// The system dialog for `purpose`; None when closed without a file (or never shown).
fn system_dialog(purpose: &Purpose) -> Option<PathBuf> {
    let extensions = purpose.extensions();
    let filter: Vec<&str> = extensions.iter().map(String::as_str).collect();
    let dialog = rfd::FileDialog::new()
        .set_title(purpose.title())
        .add_filter(filter[0], &filter);
    match purpose {
        Purpose::Save { suggested_name, .. } => dialog.set_file_name(suggested_name).save_file(),
        _ => dialog.pick_file(),
    }
}

/// Runs file jobs off the UI thread.
pub struct FileJobs {
    tx: Sender<FileEvent>,
    rx: Receiver<FileEvent>,
    /// Jobs started and not yet reported.
    pub pending: usize,
    /// Why the system dialog cannot be used, once that is known (then the app's own browser is
    /// used at once).
    pub system_dialog_unavailable: Option<String>,
    /// How CSVs are read.
    pub reading: Reading,
}

impl Default for FileJobs {
    fn default() -> Self {
        let (tx, rx) = bounded(16);
        Self {
            tx,
            rx,
            pending: 0,
            system_dialog_unavailable: None,
            reading: Reading::default(),
        }
    }
}

impl FileJobs {
    fn spawn(
        &mut self,
        name: &str,
        ctx: egui::Context,
        job: impl FnOnce() -> FileEvent + Send + 'static,
    ) {
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let event = job();
                let _ = tx.send(event);
                ctx.request_repaint();
            });
        if spawned.is_ok() {
            self.pending += 1;
        }
    }

    /// Reconstructs the window of `prep` ending at `end` with `record`'s model, in the
    /// background.
    pub fn reconstruct(
        &mut self,
        ctx: &egui::Context,
        record: Arc<RunRecord>,
        prep: Arc<crate::data::Prepared>,
        end: usize,
    ) {
        self.spawn("reconstruct", ctx.clone(), move || {
            let window = record.model().map(|model| {
                let device = crate::model::device_for(record.config.backend);
                let source = crate::score::WindowSource::of(&prep);
                crate::score::reconstruct(&model, &source, end, &record.config, &device)
            });
            match window {
                Ok(window) => FileEvent::Reconstructed(Ok(Box::new(Inspection {
                    mcmc_shown: window.imputed.len(),
                    record,
                    window,
                }))),
                Err(e) => FileEvent::Reconstructed(Err(e)),
            }
        });
    }

    /// Loads `path` in the background (with the columns remembered for it).
    pub fn load(&mut self, ctx: &egui::Context, path: PathBuf) {
        let reading = self.reading.clone();
        self.spawn("csv-loader", ctx.clone(), move || read_csv(path, &reading));
    }

    /// Reads a saved run (and its data) in the background.
    pub fn load_run(&mut self, ctx: &egui::Context, path: PathBuf) {
        let reading = self.reading.clone();
        self.spawn("run-loader", ctx.clone(), move || read_run(path, &reading));
    }

    /// Reads a saved run to pin, in the background.
    pub fn load_pin(&mut self, ctx: &egui::Context, path: PathBuf) {
        self.spawn("run-loader", ctx.clone(), move || read_pin(path));
    }

    /// Does what `purpose` asks with `path` (chosen in the app's browser), in the background.
    pub fn finish(&mut self, ctx: &egui::Context, purpose: Purpose, path: PathBuf) {
        let reading = self.reading.clone();
        self.spawn("file-job", ctx.clone(), move || {
            finish(purpose, path, &reading)
        });
    }

    /// Opens the system file dialog for `purpose` and finishes the job with its file, in the
    /// background. A dialog that cannot open hands the job back
    /// ([`FileEvent::PickerUnavailable`]).
    pub fn pick(&mut self, ctx: &egui::Context, purpose: Purpose) {
        let reading = self.reading.clone();
        self.spawn("file-dialog", ctx.clone(), move || {
            let asked = Instant::now();
            match system_dialog(&purpose) {
                Some(path) => finish(purpose, path, &reading),
                None if asked.elapsed() < NO_DIALOG_WITHIN => FileEvent::PickerUnavailable(purpose),
                None => FileEvent::Cancelled,
            }
        });
    }

    /// Events that have arrived.
    pub fn poll(&mut self) -> Vec<FileEvent> {
        let events: Vec<FileEvent> = self.rx.try_iter().collect();
        self.pending = self.pending.saturating_sub(events.len());
        events
    }
}
