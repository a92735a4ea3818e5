//! The latent panel: the 3-D scatter of latent means, its colouring, axes choice, legend and hover.

use super::app::DonutApp;
use super::latent3d::{Cloud, cyclic, normalise, principal_axes, ramp, scatter_ui};
use crate::data::{Part, Prepared};
use crate::train::LatentSnapshot;
use egui::{Color32, Ui};
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
    key: Option<(usize, usize, Projection, ColorBy, usize)>,
    /// Normalised 3-D points.
    pub points: Vec<[f32; 3]>,
    /// Colours.
    pub colors: Vec<Color32>,
    /// Axis names.
    pub axis_names: [String; 3],
}

pub(super) fn project(
    snap: &LatentSnapshot,
    projection: Projection,
) -> (Vec<[f32; 3]>, [String; 3]) {
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
            (pts, ["z1".into(), "z2".into(), "z3".into()])
        }
        Projection::Axes(a) => {
            let a = a.map(|i| i.min(k - 1));
            let pts = rows
                .chunks_exact(k)
                .map(|r| [r[a[0]], r[a[1]], r[a[2]]])
                .collect();
            (pts, a.map(|i| format!("z{}", i + 1)))
        }
        Projection::Pca => {
            let axes = principal_axes(rows, k);
            let pts = rows
                .chunks_exact(k)
                .map(|r| {
                    let dot = |v: &Vec<f32>| r.iter().zip(v).map(|(x, y)| x * y).sum::<f32>();
                    [dot(&axes[0]), dot(&axes[1]), dot(&axes[2])]
                })
                .collect();
            (pts, ["PC1".into(), "PC2".into(), "PC3".into()])
        }
    }
}

pub(super) fn colors(
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

fn legend_ui(ui: &mut Ui, color_by: ColorBy, has_scores: bool) {
    let swatch = |ui: &mut Ui, c: Color32, text: &str| {
        let (rect, _) = ui.allocate_exact_size(egui::vec2(10.0, 10.0), egui::Sense::hover());
        ui.painter().rect_filled(rect, 2.0, c);
        ui.small(text);
    };
    ui.horizontal_wrapped(|ui| match color_by {
        ColorBy::TimeOfDay => {
            for h in [0, 6, 12, 18] {
                swatch(ui, cyclic(h as f32 / 24.0), &format!("{h:02}:00"));
            }
        }
        ColorBy::Label => {
            swatch(ui, Color32::from_rgb(96, 128, 160), "normal");
            swatch(ui, Color32::from_rgb(240, 170, 60), "anomaly inside window");
            swatch(ui, Color32::from_rgb(230, 40, 40), "anomalous last point");
        }
        ColorBy::Score => {
            if has_scores {
                swatch(ui, ramp(0.0), "low anomaly score");
                swatch(ui, ramp(0.6), "");
                swatch(ui, ramp(1.0), "high (rank)");
            } else {
                ui.small("scores appear when a run finishes");
            }
        }
        ColorBy::Split => {
            swatch(ui, Color32::from_rgb(80, 140, 230), "train");
            swatch(ui, Color32::from_rgb(240, 160, 50), "validation");
            swatch(ui, Color32::from_rgb(90, 190, 100), "test");
        }
    });
}

/// Draws the latent panel.
pub fn latent_ui(app: &mut DonutApp, ui: &mut Ui) {
    ui.horizontal(|ui| {
        ui.strong("Latent space");
        egui::ComboBox::from_label("colour by")
            .selected_text(format!("{:?}", app.state.latent.color_by))
            .show_ui(ui, |ui| {
                for c in [
                    ColorBy::TimeOfDay,
                    ColorBy::Label,
                    ColorBy::Score,
                    ColorBy::Split,
                ] {
                    ui.selectable_value(&mut app.state.latent.color_by, c, format!("{c:?}"));
                }
            });
    });
    let k = app
        .latent
        .as_ref()
        .map_or(app.state.config.latent_dim, |s| s.dim);
    if k > 3 {
        ui.horizontal(|ui| {
            let pca = app.state.latent.projection == Projection::Pca;
            if ui
                .selectable_label(pca, "PCA")
                .on_hover_text("Show the three directions of largest spread")
                .clicked()
            {
                app.state.latent.projection = Projection::Pca;
            }
            let mut axes = match app.state.latent.projection {
                Projection::Axes(a) => a,
                Projection::Pca => [0, 1, 2],
            };
            let mut changed = false;
            for (slot, name) in axes.iter_mut().zip(["x", "y", "z"]) {
                egui::ComboBox::from_label(format!("{name} axis"))
                    .selected_text(format!("z{}", *slot + 1))
                    .width(48.0)
                    .show_ui(ui, |ui| {
                        for d in 0..k {
                            changed |= ui
                                .selectable_value(slot, d, format!("z{}", d + 1))
                                .changed();
                        }
                    });
            }
            if changed {
                app.state.latent.projection = Projection::Axes(axes);
            }
        });
    }
    legend_ui(ui, app.state.latent.color_by, app.result.is_some());

    let Some(prep) = app.prepared().cloned() else {
        ui.label("No data.");
        return;
    };
    if app.snapshots.len() > 1 {
        ui.horizontal(|ui| {
            let last = app.snapshots.len() - 1;
            let mut index = app.replay.unwrap_or(last).min(last);
            let mut live = app.replay.is_none();
            if ui
                .checkbox(&mut live, "live")
                .on_hover_text("Follow the newest snapshot")
                .changed()
            {
                app.replay = if live { None } else { Some(index) };
            }
            let snap = &app.snapshots[index];
            let text = format!("epoch {} · step {}", snap.epoch, snap.step);
            if ui
                .add(
                    egui::Slider::new(&mut index, 0..=last)
                        .text("replay")
                        .custom_formatter(move |_, _| text.clone()),
                )
                .on_hover_text(
                    "Scrub through the latent snapshots of this run to watch the space take shape",
                )
                .changed()
            {
                app.replay = Some(index);
            }
        });
    }
    let chosen = match app.replay {
        Some(i) => app.snapshots.get(i).cloned(),
        None => app.latent.clone(),
    };
    let Some(snap) = chosen else {
        ui.label("Press Train: the latent means of the windows appear here and move as the model learns.");
        return;
    };
    if snap.ends.iter().any(|&e| e >= prep.len()) {
        ui.label("These latent points belong to other data than the series loaded now.");
        return;
    }
    let scores = app.result.as_ref().map(|r| r.scores.clone());
    let key = (
        snap.step,
        snap.ends.len(),
        app.state.latent.projection,
        app.state.latent.color_by,
        app.result
            .as_ref()
            .map_or(0, |r| std::sync::Arc::as_ptr(r) as usize),
    );
    if app.latent_cache.key != Some(key) {
        let (raw, names) = project(&snap, app.state.latent.projection);
        app.latent_cache.points = normalise(&raw);
        app.latent_cache.colors =
            colors(&snap, &prep, app.state.latent.color_by, scores.as_deref());
        app.latent_cache.axis_names = names;
        app.latent_cache.key = Some(key);
    }
    let size = egui::vec2(ui.available_width(), ui.available_height().max(200.0));
    let highlight = app
        .highlight_end
        .and_then(|e| snap.ends.iter().position(|&x| x == e));
    let cloud = Cloud {
        points: &app.latent_cache.points,
        colors: &app.latent_cache.colors,
        axis_names: app.latent_cache.axis_names.clone(),
        highlight,
    };
    let out = scatter_ui(
        ui,
        &mut app.state.camera,
        &cloud,
        size,
        app.state.latent.point_px,
    );
    app.highlight_end = None;
    if let Some(i) = out.hovered {
        let end = snap.ends[i];
        app.highlight_end = Some(end);
        let score = scores.as_ref().and_then(|s| s[end]);
        out.response.on_hover_ui_at_pointer(|ui| {
            ui.label(format!(
                "window ending {}",
                super::series::format_time(&prep, end)
            ));
            ui.label(format!(
                "value {:.4} · label {} · {}",
                prep.raw_values[end],
                prep.labels[end],
                prep.part_of(end).name()
            ));
            ui.label(match score {
                Some(s) => format!("anomaly score {s:.3}"),
                None => "no score yet".into(),
            });
        });
    }
}
