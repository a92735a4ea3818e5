//! Latent points as the panels draw them, shared by the latent panel, the sweep gallery and
//! Compare: which axes (or principal components) to show, and the colour of each point.

use super::latent3d::{cyclic, pca, ramp};
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
    let normal = Color32::from_rgb(120, 160, 200);
    match color_by {
        ColorBy::TimeOfDay => snap
            .ends
            .iter()
            .map(|&e| {
                let secs = prep.timestamps[e].rem_euclid(86_400);
                if prep.has_timestamps {
                    cyclic(secs as f32 / 86_400.0)
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
                        Color32::from_rgb(230, 40, 40)
                    } else if prep.labels[e + 1 - w..=e].contains(&1) {
                        Color32::from_rgb(240, 170, 60)
                    } else {
                        normal.gamma_multiply(0.8)
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
                        .map_or(Color32::GRAY, |s| ramp(rank(s)))
                })
                .collect()
        }
        ColorBy::Split => snap
            .ends
            .iter()
            .map(|&e| match prep.part_of(e) {
                Part::Train => Color32::from_rgb(80, 140, 230),
                Part::Valid => Color32::from_rgb(240, 160, 50),
                Part::Test => Color32::from_rgb(90, 190, 100),
            })
            .collect(),
    }
}
