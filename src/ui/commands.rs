//! What the panels ask of the app. Panels draw from the narrow state they are given and queue
//! an [`AppCommand`] for anything beyond it; the app applies the queue after the panels are
//! drawn (as egui's demo app and rerun do), so no panel needs the whole app.

use crate::config::DonutConfig;
use crate::data::ColumnChoice;
use std::path::PathBuf;

/// A request from a panel or a bar.
#[derive(Clone, Debug, PartialEq)]
pub enum AppCommand {
    /// Start a fresh run with the current settings.
    StartTraining,
    /// Pause the run between steps.
    Pause,
    /// Take this many steps, then pause (a run starts paused when there is none).
    Step(usize),
    /// Resume a paused run.
    Resume,
    /// Stop training (the best parameters so far are scored).
    Stop,
    /// Abandon the run and clear it.
    Reset,
    /// The settings changed this frame (from `before`).
    SettingsChanged {
        /// The settings before the change.
        before: DonutConfig,
    },
    /// Put these settings in the controls (a tuning trial's); nothing retrains until Train.
    LoadSettings {
        /// The settings.
        config: Box<DonutConfig>,
        /// Whose they are, for the notice.
        origin: String,
    },
    /// Load the bundled sample series.
    LoadSample,
    /// Pick a CSV with the file dialog and load it.
    PickCsv,
    /// Load this CSV.
    OpenCsv(PathBuf),
    /// Load this CSV with these columns, and remember them for it.
    LoadWithColumns {
        /// The file.
        path: PathBuf,
        /// Which column is which.
        columns: ColumnChoice,
    },
    /// Pick a saved run with the file dialog and open it.
    PickRun,
    /// Open this saved run.
    OpenRun(PathBuf),
    /// Save the finished run (the file dialog asks where).
    SaveRun,
    /// Pin the finished run for comparison.
    PinRun,
    /// Pick a saved run to pin.
    PickPin,
    /// Write the detections of the finished run (the file dialog asks where).
    ExportDetections,
    /// Write this text to a file the dialog asks for.
    SaveText {
        /// The name the dialog proposes (its extension is the filter).
        suggested_name: &'static str,
        /// What to write.
        text: String,
    },
    /// Show or hide the sweeps window.
    ToggleSweeps,
    /// Show or hide the compare window.
    ToggleCompare,
    /// Pick another CSV and score it with the finished run's model.
    ApplyToSeries,
    /// Score this CSV with the finished run's model.
    ApplyTo(PathBuf),
    /// Flag the current run's points at this threshold.
    SetThreshold(crate::eval::Threshold),
    /// Open the reconstruction view of the window ending at this point.
    Inspect(usize),
    /// Select these windows (their ends, ascending): marked on the series and in the cloud.
    Select(Vec<usize>),
    /// Clear the selection.
    ClearSelection,
}
