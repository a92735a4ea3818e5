//! The latent panel: the rotatable 3-D cloud of latent means, its colouring and projection
//! choices, and the replay slider.

use super::latent3d::{Camera, Cloud, normalise, scatter_ui};
use super::projection::{
    ColorBy, LatentCache, LatentView, Projection, color_by_name, colors, legend_ui, marked_windows,
    project,
};
use super::widgets::format_time;
use crate::data::Prepared;
use crate::history::LatentSnapshot;
use crate::pipeline::RunRecord;
use egui::Ui;
use std::sync::Arc;

/// What the latent panel draws and edits.
pub struct LatentPanel<'a> {
    /// The panel's saved choices (colouring, projection, point size).
    pub view: &'a mut LatentView,
    /// The 3-D camera.
    pub camera: &'a mut Camera,
    /// Projected points and colours of the snapshot shown.
    pub cache: &'a mut LatentCache,
    /// The run's snapshots, oldest first.
    pub snapshots: &'a [LatentSnapshot],
    /// The snapshot shown when replaying (None: the newest).
    pub replay: &'a mut Option<usize>,
    /// The data.
    pub prep: Option<&'a Arc<Prepared>>,
    /// The finished run, when there is one (its scores colour the points).
    pub record: Option<&'a Arc<RunRecord>>,
    /// K of the settings, for the axis choice before the first snapshot.
    pub latent_dim: usize,
    /// The window (its end point) marked in the series panel; set while a point is hovered.
    pub highlight_end: &'a mut Option<usize>,
    /// The window hovered on the series, marked in the cloud.
    pub series_hover: Option<usize>,
    /// Set to the window clicked in the cloud (its reconstruction opens).
    pub clicked_end: &'a mut Option<usize>,
    /// The selected windows (ends, ascending), marked in the cloud.
    pub selection: Option<&'a [usize]>,
    /// Set to the windows of a box just drawn in the cloud (ends, ascending).
    pub boxed_ends: &'a mut Option<Vec<usize>>,
}

/// Draws the latent panel.
pub fn latent_ui(ui: &mut Ui, p: LatentPanel<'_>) {
    ui.horizontal(|ui| {
        egui::ComboBox::from_label("colour by")
            .selected_text(color_by_name(p.view.color_by))
            .show_ui(ui, |ui| {
                for c in [
                    ColorBy::TimeOfDay,
                    ColorBy::Label,
                    ColorBy::Score,
                    ColorBy::Split,
                ] {
                    ui.selectable_value(&mut p.view.color_by, c, color_by_name(c));
                }
            });
    });
    let k = p.snapshots.last().map_or(p.latent_dim, |s| s.dim);
    if k > 3 {
        ui.horizontal(|ui| {
            let pca = p.view.projection == Projection::Pca;
            if ui
                .selectable_label(pca, "PCA")
                .on_hover_text("Show the three directions of largest spread")
                .clicked()
            {
                p.view.projection = Projection::Pca;
            }
            let mut axes = match p.view.projection {
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
                p.view.projection = Projection::Axes(axes);
            }
        });
    }
    legend_ui(ui, p.view.color_by, p.record.is_some());

    let Some(prep) = p.prep else {
        ui.label("No data.");
        return;
    };
    if p.snapshots.len() > 1 {
        ui.horizontal(|ui| {
            let last = p.snapshots.len() - 1;
            let mut index = p.replay.unwrap_or(last).min(last);
            let mut live = p.replay.is_none();
            if ui
                .checkbox(&mut live, "live")
                .on_hover_text("Follow the newest snapshot")
                .changed()
            {
                *p.replay = if live { None } else { Some(index) };
            }
            let snap = &p.snapshots[index];
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
                *p.replay = Some(index);
            }
        });
    }
    let chosen = match *p.replay {
        Some(i) => p.snapshots.get(i),
        None => p.snapshots.last(),
    };
    let Some(snap) = chosen else {
        ui.label("Press Train: the latent means of the windows appear here and move as the model learns.");
        return;
    };
    if snap.ends.iter().any(|&e| e >= prep.len()) {
        ui.label("These latent points belong to other data than the series loaded now.");
        return;
    }
    let scores = p.record.map(|r| r.scores.as_slice());
    let key = (
        snap.step,
        snap.ends.len(),
        p.view.projection,
        p.view.color_by,
        p.record.map_or(0, |r| Arc::as_ptr(r) as usize),
    );
    if p.cache.key != Some(key) {
        let (raw, names, axes) = project(snap, p.view.projection, p.cache.pca_axes.as_ref());
        p.cache.pca_axes = axes;
        p.cache.points = normalise(&raw);
        p.cache.colors = colors(snap, prep, p.view.color_by, scores);
        p.cache.axis_names = names;
        p.cache.key = Some(key);
    }
    let size = egui::vec2(ui.available_width(), ui.available_height().max(200.0));
    // A window hovered on the series: the nearest window of the sample.
    let highlight = p.series_hover.and_then(|e| {
        let i = snap.ends.partition_point(|&x| x < e);
        [i.checked_sub(1), Some(i)]
            .into_iter()
            .flatten()
            .filter(|&i| i < snap.ends.len())
            .min_by_key(|&i| snap.ends[i].abs_diff(e))
    });
    // The selection, marked on the points of this snapshot that belong to it.
    let selected = marked_windows(&snap.ends, p.selection);
    p.cache.marked = selected.iter().filter(|&&s| s).count();
    let cloud = Cloud {
        points: &p.cache.points,
        colors: &p.cache.colors,
        axis_names: p.cache.axis_names.clone(),
        highlight,
        selected: &selected,
    };
    let out = scatter_ui(ui, p.camera, &cloud, size, p.view.point_px);
    *p.highlight_end = None;
    if let Some(boxed) = &out.boxed {
        let mut ends: Vec<usize> = boxed.iter().map(|&i| snap.ends[i]).collect();
        ends.sort_unstable();
        *p.boxed_ends = Some(ends);
    }
    if let Some(i) = out.hovered {
        let end = snap.ends[i];
        *p.highlight_end = Some(end);
        if out.response.clicked() {
            *p.clicked_end = Some(end);
        }
        let score = scores.and_then(|s| s[end]);
        out.response.on_hover_ui_at_pointer(|ui| {
            ui.label(format!(
                "window ending {} (click: its reconstruction)",
                format_time(prep, end)
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
