//! Latent points as the panels draw them, shared by the latent panel, the sweep gallery and
//! Compare: which axes (or principal components) to show, and the colour of each point.

use super::colormap;
use super::latent3d::pca;
use crate::data::{Part, Prepared};
use crate::history::LatentSnapshot;
use egui::Color32;
use serde::{Deserialize, Serialize};

/// What colours the points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ColorBy {
    /// Hour of the day of the window's last point (the study's choice).
    TimeOfDay,
    /// Labelled anomaly or not.
    Label,
    /// Anomaly score of the last run.
    Score,
    /// Train / validation / test.
    Split,
}

/// Which three coordinates are shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Projection {
    /// Three chosen latent dimensions.
    Axes([usize; 3]),
    /// The top three principal components.
    Pca,
}

/// The panel's saved choices.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LatentView {
    /// Colouring.
    pub color_by: ColorBy,
    /// Projection when K > 3.
    pub projection: Projection,
    /// Point size in pixels.
    pub point_px: f32,
}

impl Default for LatentView {
    fn default() -> Self {
        Self {
            color_by: ColorBy::TimeOfDay,
            projection: Projection::Pca,
            point_px: 3.0,
        }
    }
}

/// Projected points and colours, recomputed only when their inputs change.
#[derive(Default)]
pub struct LatentCache {
    /// What the points were computed from: (snapshot step, points, projection, colouring,
    /// the record whose scores coloured them).
    pub(super) key: Option<(usize, usize, Projection, ColorBy, usize)>,
    /// Normalised 3-D points.
    pub points: Vec<[f32; 3]>,
    /// Colours.
    pub colors: Vec<Color32>,
    /// Axis names.
    pub axis_names: [String; 3],
    /// The principal axes last shown: the next snapshot's keep their signs.
    pub pca_axes: Option<Axes>,
    /// Points of the last snapshot drawn that belong to the selection.
    pub marked: usize,
}

/// Principal axes, by decreasing variance.
pub type Axes = [Vec<f32>; 3];

/// The three coordinates to draw of each point of `snap`, their axis names and, for PCA, the
/// axes (signed along `reference`, the axes shown before: see [`pca`]).
pub fn project(
    snap: &LatentSnapshot,
    projection: Projection,
    reference: Option<&Axes>,
) -> (Vec<[f32; 3]>, [String; 3], Option<Axes>) {
    let k = snap.dim;
    let rows = &snap.means;
    match projection {
        _ if k <= 3 => {
            let pts = rows
                .chunks_exact(k)
                .map(|r| {
                    [
                        r[0],
                        if k > 1 { r[1] } else { 0.0 },
                        if k > 2 { r[2] } else { 0.0 },
                    ]
                })
                .collect();
            (pts, ["z1".into(), "z2".into(), "z3".into()], None)
        }
        Projection::Axes(a) => {
            let a = a.map(|i| i.min(k - 1));
            let pts = rows
                .chunks_exact(k)
                .map(|r| [r[a[0]], r[a[1]], r[a[2]]])
                .collect();
            (pts, a.map(|i| format!("z{}", i + 1)), None)
        }
        Projection::Pca => {
            let p = pca(rows, k, reference);
            let pts = rows
                .chunks_exact(k)
                .map(|r| {
                    let dot = |v: &Vec<f32>| r.iter().zip(v).map(|(x, y)| x * y).sum::<f32>();
                    [dot(&p.axes[0]), dot(&p.axes[1]), dot(&p.axes[2])]
                })
                .collect();
            let names = [0, 1, 2].map(|i| format!("PC{} {:.0}%", i + 1, p.explained[i] * 100.0));
            (pts, names, Some(p.axes))
        }
    }
}

pub fn colors(
    snap: &LatentSnapshot,
    prep: &Prepared,
    color_by: ColorBy,
    scores: Option<&[Option<f64>]>,
) -> Vec<Color32> {
    let normal = colormap::NORMAL;
    match color_by {
        ColorBy::TimeOfDay => snap
            .ends
            .iter()
            .map(|&e| {
                let secs = prep.timestamps[e].rem_euclid(86_400);
                if prep.has_timestamps {
                    colormap::time_of_day(secs as f32 / 86_400.0)
                } else {
                    normal
                }
            })
            .collect(),
        ColorBy::Label => {
            let w = prep.window;
            snap.ends
                .iter()
                .map(|&e| {
                    if prep.labels[e] == 1 {
                        colormap::ANOMALOUS_LAST_POINT
                    } else if prep.labels[e + 1 - w..=e].contains(&1) {
                        colormap::ANOMALY_IN_WINDOW
                    } else {
                        normal
                    }
                })
                .collect()
        }
        ColorBy::Score => {
            let Some(scores) = scores else {
                return vec![Color32::GRAY; snap.ends.len()];
            };
            let vals: Vec<f64> = snap
                .ends
                .iter()
                .filter_map(|&e| scores.get(e).copied().flatten())
                .collect();
            let mut sorted = vals.clone();
            sorted.sort_by(f64::total_cmp);
            let rank =
                |s: f64| sorted.partition_point(|&v| v < s) as f32 / sorted.len().max(1) as f32;
            snap.ends
                .iter()
                .map(|&e| {
                    scores
                        .get(e)
                        .copied()
                        .flatten()
                        .map_or(Color32::GRAY, |s| colormap::score(rank(s)))
                })
                .collect()
        }
        ColorBy::Split => snap
            .ends
            .iter()
            .map(|&e| match prep.part_of(e) {
                Part::Train => colormap::TRAIN,
                Part::Valid => colormap::VALIDATION,
                Part::Test => colormap::TEST,
            })
            .collect(),
    }
}

/// The key to the colours of `color_by` (`has_scores`: whether score colours can be shown).
pub fn legend_ui(ui: &mut egui::Ui, color_by: ColorBy, has_scores: bool) {
    let swatch = |ui: &mut egui::Ui, c: Color32, text: &str| {
        let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
        ui.painter().rect_filled(rect, 2.0, c);
        // A rim, so that the maps' black and white ends show on either theme.
        let rim = egui::Stroke::new(1.0, ui.visuals().weak_text_color());
        ui.painter()
            .rect_stroke(rect, 2.0, rim, egui::StrokeKind::Outside);
        ui.small(text);
    };
    ui.horizontal_wrapped(|ui| match color_by {
        ColorBy::TimeOfDay => {
            for h in (0..24).step_by(3) {
                swatch(
                    ui,
                    colormap::time_of_day(h as f32 / 24.0),
                    &format!("{h:02}:00"),
                );
            }
        }
        ColorBy::Label => {
            swatch(ui, colormap::NORMAL, "normal");
            swatch(ui, colormap::ANOMALY_IN_WINDOW, "anomaly inside window");
            swatch(ui, colormap::ANOMALOUS_LAST_POINT, "anomalous last point");
        }
        ColorBy::Score => {
            if has_scores {
                swatch(ui, colormap::score(0.0), "low anomaly score");
                swatch(ui, colormap::score(0.5), "");
                swatch(ui, colormap::score(1.0), "high (rank)");
            } else {
                ui.small("scores appear when a run finishes");
            }
        }
        ColorBy::Split => {
            swatch(ui, colormap::TRAIN, "train");
            swatch(ui, colormap::VALIDATION, "validation");
            swatch(ui, colormap::TEST, "test");
        }
    });
}

/// The name of a colouring, as the menus show it.
pub fn color_by_name(c: ColorBy) -> &'static str {
    match c {
        ColorBy::TimeOfDay => "time of day",
        ColorBy::Label => "labels",
        ColorBy::Score => "score",
        ColorBy::Split => "split",
    }
}

/// For each window of `ends`, whether it is in `selection` (window ends, ascending); empty with
/// no selection.
pub fn marked_windows(ends: &[usize], selection: Option<&[usize]>) -> Vec<bool> {
    match selection {
        Some(selected) => ends
            .iter()
            .map(|e| selected.binary_search(e).is_ok())
            .collect(),
        None => Vec::new(),
    }
}
