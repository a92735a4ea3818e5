//! Background file work for the UI: the file pickers and CSV loading/writing, each on a named
//! thread that reports back over a channel and wakes the UI.

use crate::data::{self, DataError, RawSeries};
use crossbeam_channel::{Receiver, Sender, bounded};
use std::path::PathBuf;
use std::sync::Arc;

/// A message from a file thread.
#[derive(Debug)]
pub enum FileEvent {
    /// A CSV was read (or failed to be).
    Loaded(Result<Arc<RawSeries>, DataError>),
    /// The user closed the picker without choosing.
    Cancelled,
    /// A file was written (Ok: where) or failed.
    Saved(Result<PathBuf, String>),
    /// A saved run was read, with the series it was trained on when that could be read too.
    RunLoaded(Result<Box<LoadedRun>, String>),
    /// A saved run was read to be pinned for comparison.
    PinLoaded(Result<Box<crate::pipeline::RunRecord>, String>),
}

/// A saved run and its data.
#[derive(Debug)]
pub struct LoadedRun {
    /// The run file.
    pub path: PathBuf,
    /// Its contents.
    pub run: crate::pipeline::RunRecord,
    /// The series it was trained on, when found (the bundled sample, or a file that still loads).
    pub data: Option<Arc<RawSeries>>,
}

fn read_run(path: PathBuf) -> FileEvent {
    let run = match crate::runfile::load(&path) {
        Ok(r) => r,
        Err(e) => return FileEvent::RunLoaded(Err(e.to_string())),
    };
    let data = if run.source == data::SAMPLE_NAME {
        data::load_sample().ok()
    } else {
        data::load_csv(std::path::Path::new(&run.source)).ok()
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

/// Runs file jobs off the UI thread.
pub struct FileJobs {
    tx: Sender<FileEvent>,
    rx: Receiver<FileEvent>,
    /// Jobs started and not yet reported.
    pub pending: usize,
}

impl Default for FileJobs {
    fn default() -> Self {
        let (tx, rx) = bounded(16);
        Self { tx, rx, pending: 0 }
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

    /// Loads `path` in the background.
    pub fn load(&mut self, ctx: &egui::Context, path: PathBuf) {
        self.spawn("csv-loader", ctx.clone(), move || {
            FileEvent::Loaded(data::load_csv(&path).map(Arc::new))
        });
    }

    /// Opens the native file picker, then loads the chosen file, all in the background.
    pub fn pick_and_load(&mut self, ctx: &egui::Context) {
        self.spawn(
            "file-dialog",
            ctx.clone(),
            move || match rfd::FileDialog::new()
                .add_filter("CSV", &["csv", "txt", "tsv"])
                .set_title("Open a KPI series")
                .pick_file()
            {
                Some(path) => FileEvent::Loaded(data::load_csv(&path).map(Arc::new)),
                None => FileEvent::Cancelled,
            },
        );
    }

    /// Asks where to save (picker in the background), then writes with `write`.
    pub fn pick_and_save(
        &mut self,
        ctx: &egui::Context,
        default_name: &str,
        write: impl FnOnce(&std::path::Path) -> anyhow::Result<()> + Send + 'static,
    ) {
        let default_name = default_name.to_string();
        let extension = default_name.rsplit('.').next().unwrap_or("csv").to_string();
        self.spawn(
            "file-dialog",
            ctx.clone(),
            move || match rfd::FileDialog::new()
                .add_filter(&extension, &[extension.as_str()])
                .set_file_name(default_name)
                .save_file()
            {
                Some(path) => {
                    FileEvent::Saved(write(&path).map(|()| path).map_err(|e| format!("{e:#}")))
                }
                None => FileEvent::Cancelled,
            },
        );
    }

    /// Reads a saved run (and its data) in the background.
    pub fn load_run(&mut self, ctx: &egui::Context, path: PathBuf) {
        self.spawn("run-loader", ctx.clone(), move || read_run(path));
    }

    /// Reads a saved run to pin, in the background.
    pub fn load_pin(&mut self, ctx: &egui::Context, path: PathBuf) {
        self.spawn("run-loader", ctx.clone(), move || read_pin(path));
    }

    /// Opens the picker for a saved run to pin, then reads it, in the background.
    pub fn pick_and_load_pin(&mut self, ctx: &egui::Context) {
        self.pick_run_then(ctx, "Pin a saved run", read_pin);
    }

    /// Opens the picker for a saved run, then reads it, in the background.
    pub fn pick_and_load_run(&mut self, ctx: &egui::Context) {
        self.pick_run_then(ctx, "Open a saved run", read_run);
    }

    /// The picker for `.donut` files titled `title`, then `read` on the chosen path, on a thread.
    fn pick_run_then(
        &mut self,
        ctx: &egui::Context,
        title: &'static str,
        read: fn(PathBuf) -> FileEvent,
    ) {
        self.spawn(
            "file-dialog",
            ctx.clone(),
            move || match rfd::FileDialog::new()
                .add_filter("donut run", &["donut"])
                .set_title(title)
                .pick_file()
            {
                Some(path) => read(path),
                None => FileEvent::Cancelled,
            },
        );
    }

    /// Events that have arrived.
    pub fn poll(&mut self) -> Vec<FileEvent> {
        let events: Vec<FileEvent> = self.rx.try_iter().collect();
        self.pending = self.pending.saturating_sub(events.len());
        events
    }
}
