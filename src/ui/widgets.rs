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

/// A legend drawn above a plot, off its data: a coloured swatch and a name per entry, wrapped.
pub fn legend_ui(ui: &mut egui::Ui, entries: &[(&str, egui::Color32)]) {
    ui.horizontal_wrapped(|ui| {
        ui.spacing_mut().item_spacing.x = 4.0;
        for (name, color) in entries {
            let (rect, _) = ui.allocate_exact_size(egui::vec2(12.0, 12.0), egui::Sense::hover());
            ui.painter().rect_filled(rect, 2.0, *color);
            ui.label(*name);
            ui.add_space(8.0);
        }
    });
}

/// The points of a line of `n` values (`value(i)`, None where there is none) to draw at most
/// about `max_points` of: all of them when they fit; else, for each bucket of consecutive
/// indices, its lowest and its highest point in index order (min-max decimation), so that no
/// spike, however short, disappears from the line.
pub fn min_max_points(
    n: usize,
    max_points: usize,
    value: impl Fn(usize) -> Option<f64>,
) -> Vec<[f64; 2]> {
    let per_bucket = n.div_ceil((max_points / 2).max(1)).max(1);
    if per_bucket <= 2 {
        return (0..n)
            .filter_map(|i| value(i).map(|v| [i as f64, v]))
            .collect();
    }
    let mut out = Vec::with_capacity(2 * n.div_ceil(per_bucket));
    for start in (0..n).step_by(per_bucket) {
        let mut lo: Option<(usize, f64)> = None;
        let mut hi: Option<(usize, f64)> = None;
        for i in start..(start + per_bucket).min(n) {
            if let Some(v) = value(i).filter(|v| !v.is_nan()) {
                if lo.is_none_or(|(_, l)| v < l) {
                    lo = Some((i, v));
                }
                if hi.is_none_or(|(_, h)| v > h) {
                    hi = Some((i, v));
                }
            }
        }
        match (lo, hi) {
            (Some(a), Some(b)) if a.0 == b.0 => out.push([a.0 as f64, a.1]),
            (Some(a), Some(b)) => {
                let (first, second) = if a.0 < b.0 { (a, b) } else { (b, a) };
                out.push([first.0 as f64, first.1]);
                out.push([second.0 as f64, second.1]);
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::min_max_points;

    #[test]
    fn decimation_keeps_a_one_point_spike_and_dip() {
        let n = 100_000;
        let value = |i: usize| match i {
            31_337 => Some(50.0),
            77_001 => Some(-40.0),
            _ => Some((i as f64 * 0.01).sin()),
        };
        let points = min_max_points(n, 2_000, value);
        assert!(points.len() <= 2_002, "{}", points.len());
        assert!(points.contains(&[31_337.0, 50.0]), "the spike is drawn");
        assert!(points.contains(&[77_001.0, -40.0]), "the dip is drawn");
        assert!(
            points.windows(2).all(|w| w[0][0] < w[1][0]),
            "in index order"
        );
        // Every-k-th thinning, which this replaces, loses the spike.
        assert!((0..n).step_by(n / 2_000).all(|i| i != 31_337));
        // Short lines are drawn whole.
        assert_eq!(min_max_points(500, 2_000, value).len(), 500);
    }
}
