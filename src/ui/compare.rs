//! The compare window: a pinned finished run beside the current one. Settings side by side with
//! the differences highlighted, both runs' figures, both loss curves, both latent spaces (one
//! camera and one replay slider for the two), and both runs' detections on the test part.

use super::commands::AppCommand;
use super::latent3d::{Camera, Cloud, normalise, scatter_ui};
use super::palette;
use super::projection::{Axes, ColorBy, Projection, colors, marked_windows, project};
use super::widgets::{bucketed, runs, short_name};
use crate::config::{DonutConfig, setting_pairs};
use crate::data::{Part, Prepared};
use crate::eval::{Metrics, flags, test_f1_at};
use crate::history::{LatentSnapshot, StepStats};
use crate::pipeline::RunRecord;
use egui::{Color32, RichText, Ui};
use egui_plot::{Line, Plot, PlotPoints};
use std::sync::Arc;

/// Colour of the pinned run in every chart.
pub const PINNED_COLOR: Color32 = palette::ORANGE;
/// Colour of the current run.
pub const CURRENT_COLOR: Color32 = palette::SKY_BLUE;
const LABEL_COLOR: Color32 = palette::REDDISH_PURPLE;
const DIFF_BG: Color32 = Color32::from_rgba_premultiplied(120, 90, 10, 90);

/// The compare window's state. The pinned run is plain data (a saved-run record), so it stays
/// when the current run is replaced by a new one or by a run opened from a file.
pub struct ComparePanel {
    /// Whether the window is shown.
    pub open: bool,
    /// The pinned run, and the threshold chosen for it when it was pinned.
    pub pinned: Option<(Arc<RunRecord>, f64)>,
    /// The camera both latent plots share.
    pub camera: Camera,
    /// Replay position for both latent plots, as a fraction of training (None: the newest).
    pub progress: Option<f32>,
    /// Show only the settings that differ (the default; the full table on request).
    pub only_differences: bool,
    /// Projected points and colours of the two latent plots, kept while their snapshot is shown.
    latent_cache: [Option<LatentEntry>; 2],
    /// Points of each latent plot (pinned, current) last drawn that belong to the selection.
    pub marked: [usize; 2],
}

/// One latent plot's projection, and what it was computed from.
struct LatentEntry {
    /// (the run's shared window list, snapshot step, K, coloured by time of day).
    key: (usize, usize, usize, bool),
    points: Vec<[f32; 3]>,
    colors: Vec<Color32>,
    names: [String; 3],
    /// The principal axes shown: the run's next snapshot keeps their signs.
    axes: Option<Axes>,
}

impl Default for ComparePanel {
    fn default() -> Self {
        Self {
            open: false,
            pinned: None,
            camera: Camera::default(),
            progress: None,
            only_differences: true,
            latent_cache: [None, None],
            marked: [0, 0],
        }
    }
}

/// One run as the compare window reads it (borrowed: nothing is copied per frame).
pub struct RunView<'a> {
    /// "pinned" or "current".
    pub name: &'a str,
    /// Its colour in every plot.
    pub color: Color32,
    /// The data it was trained on.
    pub source: &'a str,
    /// Its settings.
    pub config: &'a DonutConfig,
    /// Its best-F1 figures, once scored.
    pub metrics: Option<&'a Metrics>,
    /// Its training steps.
    pub steps: &'a [StepStats],
    /// Its latent snapshots.
    pub snapshots: &'a [LatentSnapshot],
    /// Its scores, once scored.
    pub scores: Option<&'a [Option<f64>]>,
    /// The threshold chosen for it.
    pub threshold: f64,
    /// Its training seconds, once finished.
    pub train_secs: Option<f64>,
}

impl<'a> RunView<'a> {
    /// A finished run's record, flagged at `threshold`.
    pub fn of_record(name: &'a str, color: Color32, record: &'a RunRecord, threshold: f64) -> Self {
        Self {
            name,
            color,
            source: &record.source,
            config: &record.config,
            metrics: record.metrics.as_ref(),
            steps: &record.history.steps,
            snapshots: &record.history.snapshots,
            scores: Some(&record.scores),
            threshold,
            train_secs: Some(record.stats.train_secs),
        }
    }
}

/// The snapshot nearest to `progress` (a fraction of the run's last snapshot step), or the newest.
fn snapshot_at(snapshots: &[LatentSnapshot], progress: Option<f32>) -> Option<&LatentSnapshot> {
    let last = snapshots.last()?;
    let Some(p) = progress else {
        return Some(last);
    };
    let target = p.clamp(0.0, 1.0) as f64 * last.step as f64;
    snapshots.iter().min_by(|a, b| {
        (a.step as f64 - target)
            .abs()
            .total_cmp(&(b.step as f64 - target).abs())
    })
}

/// Draws the compare window's contents: the pinned run beside `current` on `prep`.
pub fn compare_ui(
    ui: &mut Ui,
    panel: &mut ComparePanel,
    prep: Option<&Prepared>,
    current: RunView<'_>,
    selection: Option<&[usize]>,
    commands: &mut Vec<AppCommand>,
) {
    let Some((pinned, pinned_threshold)) = panel.pinned.clone() else {
        ui.label(
            "Pin a finished run (\"Pin run\" in the top bar) or a saved one, then train another or \
             open a saved run: the two appear here side by side.",
        );
        if ui.button("Pin a saved run…").clicked() {
            commands.push(AppCommand::PickPin);
        }
        return;
    };
    ui.horizontal(|ui| {
        ui.colored_label(PINNED_COLOR, RichText::new("pinned").strong());
        ui.label(format!("trained on {}", short_name(&pinned.source)));
        ui.colored_label(CURRENT_COLOR, RichText::new("current").strong());
        if ui.button("Unpin").clicked() {
            panel.pinned = None;
        }
        if ui.button("Pin a saved run…").clicked() {
            commands.push(AppCommand::PickPin);
        }
    });
    if panel.pinned.is_none() {
        return;
    }
    let left = RunView::of_record("pinned", PINNED_COLOR, &pinned, pinned_threshold);
    let right = current;
    egui::CollapsingHeader::new("Settings")
        .default_open(true)
        .show(ui, |ui| {
            settings_ui(ui, &mut panel.only_differences, &left, &right)
        });
    figures_ui(ui, prep, &left, &right);
    ui.separator();
    ui.strong("Loss");
    losses_ui(ui, &left, &right);
    ui.separator();
    latents_ui(ui, panel, prep, selection, &left, &right);
    ui.separator();
    detections_ui(ui, prep, &left, &right);
}

fn settings_ui(ui: &mut Ui, only: &mut bool, left: &RunView<'_>, right: &RunView<'_>) {
    let pairs = setting_pairs(left.config, right.config);
    let differing: Vec<&str> = pairs
        .iter()
        .filter(|p| p.differs())
        .map(|p| p.key.as_str())
        .collect();
    ui.label(match differing.len() {
        0 => "The settings are identical.".to_string(),
        1 => format!("1 setting differs: {}", differing[0]),
        n => format!("{n} settings differ: {}", differing.join(", ")),
    });
    if left.source != right.source {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            format!(
                "The runs were trained on different data: {} and {}",
                short_name(left.source),
                short_name(right.source)
            ),
        );
    }
    ui.checkbox(only, "only the differences");
    let only = *only;
    egui::Grid::new("compare-settings")
        .striped(true)
        .num_columns(3)
        .show(ui, |ui| {
            ui.strong("setting");
            ui.colored_label(left.color, RichText::new(left.name).strong());
            ui.colored_label(right.color, RichText::new(right.name).strong());
            ui.end_row();
            for p in pairs.iter().filter(|p| !only || p.differs()) {
                if p.differs() {
                    let strong = |t: &str| RichText::new(t).strong().background_color(DIFF_BG);
                    ui.label(strong(&p.key))
                        .on_hover_text("This setting differs between the runs");
                    ui.label(strong(&p.left));
                    ui.label(strong(&p.right));
                } else {
                    ui.weak(&p.key);
                    ui.weak(&p.left);
                    ui.weak(&p.right);
                }
                ui.end_row();
            }
        });
}

/// Reads one figure from a run's metrics.
type MetricPick = fn(&Metrics) -> f64;

/// Precision, recall and F1 of a run on the test part at its threshold.
fn at_threshold(prep: &Prepared, run: &RunView<'_>) -> Option<crate::eval::F1Score> {
    let scores = run.scores?;
    if scores.len() != prep.len() || run.source != prep.source {
        return None;
    }
    let [adjusted, _, _] = test_f1_at(prep, scores, run.config.eval_delay, run.threshold);
    Some(adjusted)
}

fn figures_ui(ui: &mut Ui, prep: Option<&Prepared>, left: &RunView<'_>, right: &RunView<'_>) {
    egui::Grid::new("compare-figures")
        .striped(true)
        .num_columns(3)
        .show(ui, |ui| {
            ui.strong("figure");
            ui.colored_label(left.color, RichText::new(left.name).strong());
            ui.colored_label(right.color, RichText::new(right.name).strong());
            ui.end_row();
            let metric = |run: &RunView<'_>, pick: fn(&Metrics) -> f64| {
                run.metrics.map_or_else(
                    || "not scored yet".to_string(),
                    |m| format!("{:.3}", pick(m)),
                )
            };
            let rows: [(&str, MetricPick); 3] = [
                ("best F1", |m| m.best_f1.f1),
                ("best F1, delayed", |m| m.best_f1_delay.f1),
                ("best F1, point-wise", |m| m.best_f1_pointwise.f1),
            ];
            for (name, pick) in rows {
                ui.label(name);
                ui.label(metric(left, pick));
                ui.label(metric(right, pick));
                ui.end_row();
            }
            ui.label("P / R / F1 at the chosen threshold");
            for run in [left, right] {
                ui.label(prep.and_then(|p| at_threshold(p, run)).map_or_else(
                    || "—".to_string(),
                    |s| {
                        format!(
                            "{:.3} / {:.3} / {:.3} (threshold {:.2})",
                            s.precision, s.recall, s.f1, run.threshold
                        )
                    },
                ));
            }
            ui.end_row();
            ui.label("final training loss");
            for run in [left, right] {
                ui.label(
                    run.steps
                        .last()
                        .map_or_else(|| "—".to_string(), |s| format!("{:.2}", s.terms.total)),
                );
            }
            ui.end_row();
            ui.label("training seconds");
            for run in [left, right] {
                ui.label(
                    run.train_secs
                        .map_or_else(|| "—".into(), |s| format!("{s:.1}")),
                );
            }
            ui.end_row();
        });
}

fn losses_ui(ui: &mut Ui, left: &RunView<'_>, right: &RunView<'_>) {
    let link = egui::Id::unique("compare-loss-link");
    // Legends above the plots, off the curves.
    super::widgets::legend_ui(ui, &[(left.name, left.color), (right.name, right.color)]);
    ui.weak(
        "ELBO terms: solid reconstruction Σα log p(x|z), dashed β log p(z), dotted −λ log q(z|x)",
    );
    ui.columns(2, |cols| {
        Plot::new("compare-loss")
            .height(170.0)
            .link_axis(link, [true, false])
            .allow_scroll(false)
            .y_axis_label("total loss")
            .show(&mut cols[0], |plot| {
                for run in [left, right] {
                    plot.line(
                        Line::new(run.name, bucketed(run.steps, |t| t.total)).color(run.color),
                    );
                }
            });
        Plot::new("compare-terms")
            .height(170.0)
            .link_axis(link, [true, false])
            .allow_scroll(false)
            .y_axis_label("ELBO terms")
            .show(&mut cols[1], |plot| {
                for run in [left, right] {
                    let style = egui_plot::LineStyle::Solid;
                    plot.line(
                        Line::new(
                            format!("{} reconstruction", run.name),
                            bucketed(run.steps, |t| t.recon),
                        )
                        .color(run.color)
                        .style(style),
                    );
                    plot.line(
                        Line::new(
                            format!("{} β log p(z)", run.name),
                            bucketed(run.steps, |t| t.prior),
                        )
                        .color(run.color.gamma_multiply(0.7))
                        .style(egui_plot::LineStyle::dashed_loose()),
                    );
                    plot.line(
                        Line::new(
                            format!("{} −λ log q(z|x)", run.name),
                            bucketed(run.steps, |t| t.entropy),
                        )
                        .color(run.color.gamma_multiply(0.7))
                        .style(egui_plot::LineStyle::dotted_loose()),
                    );
                }
            });
    });
}

fn latents_ui(
    ui: &mut Ui,
    panel: &mut ComparePanel,
    prep: Option<&Prepared>,
    selection: Option<&[usize]>,
    left: &RunView<'_>,
    right: &RunView<'_>,
) {
    let ComparePanel {
        camera,
        progress,
        latent_cache: cache,
        marked,
        ..
    } = panel;
    ui.horizontal(|ui| {
        ui.strong("Latent spaces");
        let mut live = progress.is_none();
        if ui
            .checkbox(&mut live, "newest")
            .on_hover_text("Show each run's last snapshot")
            .changed()
        {
            *progress = if live { None } else { Some(1.0) };
        }
        let mut p = progress.unwrap_or(1.0);
        if ui
            .add(
                egui::Slider::new(&mut p, 0.0..=1.0)
                    .text("replay both")
                    .custom_formatter(|v, _| format!("{:.0} % of training", v * 100.0)),
            )
            .on_hover_text("Scrub both runs through their training at the same fraction")
            .changed()
        {
            *progress = Some(p);
        }
    });
    ui.small(match selection {
        Some(ends) => format!(
            "Coloured by time of day · drag either plot to turn both · the {} selected windows are marked, the rest faded",
            ends.len()
        ),
        None => "Coloured by time of day · drag either plot to turn both · shift + drag on the series or a cloud selects windows".into(),
    });
    let width = (ui.available_width() / 2.0 - 8.0).max(160.0);
    ui.horizontal(|ui| {
        for ((run, slot), marked) in [left, right]
            .into_iter()
            .zip(cache.iter_mut())
            .zip(marked.iter_mut())
        {
            *marked = 0;
            ui.vertical(|ui| {
                let Some(snap) = snapshot_at(run.snapshots, *progress) else {
                    ui.colored_label(run.color, format!("{}: no latent snapshots", run.name));
                    return;
                };
                ui.colored_label(
                    run.color,
                    format!(
                        "{} · K = {} · epoch {} · step {}",
                        run.name, snap.dim, snap.epoch, snap.step
                    ),
                );
                let fits = prep
                    .filter(|p| p.source == run.source && snap.ends.iter().all(|&e| e < p.len()));
                // Every snapshot of a run shares one `ends` list, so its address names the run.
                let key = (
                    Arc::as_ptr(&snap.ends) as usize,
                    snap.step,
                    snap.dim,
                    fits.is_some(),
                );
                if slot.as_ref().is_none_or(|e| e.key != key) {
                    // The same run's previous axes (same windows, same K) fix the signs.
                    let reference = slot
                        .as_ref()
                        .filter(|e| (e.key.0, e.key.2) == (key.0, key.2))
                        .and_then(|e| e.axes.as_ref());
                    let (raw, names, axes) = project(snap, Projection::Pca, reference);
                    let points = normalise(&raw);
                    let colors = match fits {
                        Some(p) => colors(snap, p, ColorBy::TimeOfDay, None),
                        None => vec![run.color; points.len()],
                    };
                    *slot = Some(LatentEntry {
                        key,
                        points,
                        colors,
                        names,
                        axes,
                    });
                }
                let Some(entry) = slot.as_ref() else {
                    return;
                };
                // The app's selection (window ends on the current data), where this run was
                // trained on the same data.
                let selected = marked_windows(&snap.ends, selection.filter(|_| fits.is_some()));
                *marked = selected.iter().filter(|&&s| s).count();
                let cloud = Cloud {
                    points: &entry.points,
                    colors: &entry.colors,
                    axis_names: entry.names.clone(),
                    highlight: None,
                    selected: &selected,
                };
                scatter_ui(ui, camera, &cloud, egui::vec2(width, 260.0), 2.5);
            });
        }
    });
}

/// Lanes over the test part: the series, the labelled anomalies, and each run's flagged points.
fn detections_ui(ui: &mut Ui, prep: Option<&Prepared>, left: &RunView<'_>, right: &RunView<'_>) {
    ui.strong("Detections on the test part (each run at its own threshold)");
    ui.small("Lanes from the top: the series, labelled anomalies, pinned run's flags, current run's flags");
    let Some(prep) = prep else {
        ui.label("No data loaded.");
        return;
    };
    let test = prep.part(Part::Test);
    let (lo, hi) = test.clone().fold((f64::MAX, f64::MIN), |(lo, hi), i| {
        if prep.missing[i] {
            (lo, hi)
        } else {
            (lo.min(prep.raw_values[i]), hi.max(prep.raw_values[i]))
        }
    });
    let span = (hi - lo).max(1e-12);
    super::widgets::legend_ui(
        ui,
        &[
            ("value (top)", Color32::GRAY),
            ("labelled anomalies", LABEL_COLOR),
            (&format!("{} flags", left.name), left.color),
            (&format!("{} flags (bottom)", right.name), right.color),
        ],
    );
    Plot::new("compare-detections")
        .height(200.0)
        .show_axes([true, false])
        .allow_scroll(false)
        .show(ui, |plot| {
            // The series, scaled into the band [3, 5].
            let stride = (test.len() / 5_000).max(1);
            let values: PlotPoints = test
                .clone()
                .step_by(stride)
                .filter(|&i| !prep.missing[i])
                .map(|i| [i as f64, 3.0 + 2.0 * (prep.raw_values[i] - lo) / span])
                .collect();
            plot.line(Line::new("value", values).color(Color32::GRAY).width(1.0));
            // Runs of flagged points at height y, one short line each (same name: one legend entry).
            // Runs of flagged test points as (start, end-exclusive) point indices.
            let runs = |flagged: &dyn Fn(usize) -> bool| -> Vec<(usize, usize)> {
                runs(test.len(), |j| flagged(test.start + j))
                    .into_iter()
                    .map(|(a, b)| (test.start + a, test.start + b))
                    .collect()
            };
            let mut lane = |name: &str, color: Color32, y: f64, segments: Vec<(usize, usize)>| {
                for (a, b) in segments {
                    let pts: PlotPoints = vec![[a as f64 - 0.5, y], [b as f64 - 0.5, y]].into();
                    plot.line(Line::new(name, pts).color(color).width(6.0));
                }
            };
            lane(
                "labelled anomalies",
                LABEL_COLOR,
                2.0,
                runs(&|i| prep.labels[i] == 1),
            );
            for (run, y) in [(left, 1.0), (right, 0.0)] {
                let Some(scores) = run.scores.filter(|s| s.len() == prep.len()) else {
                    continue;
                };
                if run.source != prep.source {
                    continue;
                }
                let flagged = flags(scores, &prep.missing, run.threshold);
                lane(
                    &format!("{} flags", run.name),
                    run.color,
                    y,
                    runs(&|i| flagged[i]),
                );
            }
        });
}

#[cfg(test)]
mod tests {
    use super::snapshot_at;
    use crate::history::LatentSnapshot;
    use std::sync::Arc;

    fn snap(step: usize) -> LatentSnapshot {
        LatentSnapshot {
            step,
            epoch: 0,
            dim: 1,
            ends: Arc::new(vec![0]),
            means: vec![0.0],
        }
    }

    #[test]
    fn replay_picks_the_snapshot_nearest_the_fraction_of_training() {
        let snaps: Vec<_> = [0, 10, 20, 40, 100].into_iter().map(snap).collect();
        assert_eq!(snapshot_at(&snaps, None).unwrap().step, 100);
        assert_eq!(snapshot_at(&snaps, Some(0.0)).unwrap().step, 0);
        assert_eq!(snapshot_at(&snaps, Some(0.33)).unwrap().step, 40);
        assert_eq!(snapshot_at(&snaps, Some(0.12)).unwrap().step, 10);
        assert_eq!(snapshot_at(&snaps, Some(7.0)).unwrap().step, 100);
        assert!(snapshot_at(&[], Some(0.5)).is_none());
    }
}
