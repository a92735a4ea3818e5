//! What the app keeps between launches and what it is launched with: the persisted state (one
//! `#[serde(default)]` struct, written atomically), the launch options, and frame timing.

use super::latent3d::Camera;
use super::projection::LatentView;
use crate::config::DonutConfig;
use crate::data::ColumnChoice;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;

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
    /// The columns chosen for files whose header was not recognised.
    pub column_choices: BTreeMap<PathBuf, ColumnChoice>,
    /// N of the "N steps" button.
    pub step_count: usize,
    /// Whether the series panel draws Spectral Residual's score under the model's.
    pub show_baseline: bool,
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
            column_choices: BTreeMap::new(),
            step_count: 10,
            show_baseline: false,
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
        crate::fsio::write_atomically(path, |w| w.write_all(text.as_bytes()))
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
    /// A folder of KPIs to show in the Fleet tab at launch.
    pub fleet: Option<PathBuf>,
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
    pub(super) fn push(&mut self, ms: f32) {
        self.samples_ms.push(ms);
    }

    pub(super) fn push_full(&mut self, ms: f32) {
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
