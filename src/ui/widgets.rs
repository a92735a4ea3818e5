//! Small drawing helpers and text formats that several panels share.

use crate::data::Prepared;
use crate::history::{LossTerms, StepStats};
use egui_plot::PlotPoints;
use std::path::{Path, PathBuf};

/// A point's time as text: a UTC date when the file had timestamps, else the row index.
pub fn format_time(prep: &Prepared, index: usize) -> String {
    let Some(&ts) = prep.timestamps.get(index) else {
        return String::new();
    };
    if !prep.has_timestamps {
        return format!("row {ts}");
    }
    chrono::DateTime::from_timestamp(ts, 0).map_or_else(
        || ts.to_string(),
        |d| d.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// Runs of consecutive indices where `pred` holds, as (start, end-exclusive).
pub fn runs(n: usize, pred: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < n {
        if pred(i) {
            let s = i;
            while i < n && pred(i) {
                i += 1;
            }
            out.push((s, i));
        } else {
            i += 1;
        }
    }
    out
}

/// At most this many points per line (long runs are averaged into buckets).
pub const MAX_POINTS: usize = 2_000;

/// Bucket-averaged (step, value) pairs.
pub fn bucketed(steps: &[StepStats], value: impl Fn(&LossTerms) -> f64) -> PlotPoints<'static> {
    let bucket = steps.len().div_ceil(MAX_POINTS).max(1);
    steps
        .chunks(bucket)
        .map(|c| {
            let x = c.iter().map(|s| s.step as f64).sum::<f64>() / c.len() as f64;
            let y = c.iter().map(|s| value(&s.terms)).sum::<f64>() / c.len() as f64;
            [x, y]
        })
        .collect()
}

/// The file name of a source path (the whole text when it has none).
pub fn short_name(source: &str) -> String {
    Path::new(source)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| source.to_string())
}

/// A sampling interval as text (`5 min`, `1 h`, `30 s`), or the row when there are no timestamps.
pub fn format_interval(secs: i64, has_timestamps: bool) -> String {
    if !has_timestamps {
        return "1 row (no timestamps)".into();
    }
    match secs {
        s if s % 3600 == 0 => format!("{} h", s / 3600),
        s if s % 60 == 0 => format!("{} min", s / 60),
        s => format!("{s} s"),
    }
}

/// A drop-down of recent files (nothing when the list is empty); returns the one clicked.
pub fn recent_ui(ui: &mut egui::Ui, label: &str, files: &[PathBuf]) -> Option<PathBuf> {
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
pub fn remember(list: &mut Vec<PathBuf>, path: &Path) {
    list.retain(|p| p != path);
    list.insert(0, path.to_path_buf());
    list.truncate(8);
}
