//! The detection panel: which threshold flags points (each rule the run kept, "best F1 on test"
//! labelled as the upper bound it is), the score tail the label-free rule is fitted to, the test
//! part's precision-recall curve with each rule's point on it, and another series scored with
//! this model ("Apply to another series…").

use super::commands::AppCommand;
use super::loader::Applied;
use super::widgets::{MAX_POINTS, min_max_points, short_name};
use crate::data::{Part, Prepared};
use crate::eval::{Adjust, F1Score, Threshold, f1_at, flags, pr_curve};
use crate::pipeline::RunRecord;
use egui::{Color32, Ui};
use egui_plot::{HLine, Line, MarkerShape, Plot, PlotPoints, Points};
use std::sync::Arc;

/// The precision-recall curve of the last record drawn (computed once per record).
#[derive(Default)]
pub struct DetectionCache {
    record: Option<Arc<RunRecord>>,
    curve: Vec<F1Score>,
    figures: super::baselines::FiguresCache,
    tail: super::tail::TailCache,
}

/// What the detection panel draws and edits.
pub struct DetectionPanel<'a> {
    /// The data of the run.
    pub prep: Option<&'a Arc<Prepared>>,
    /// The finished run.
    pub record: Option<&'a Arc<RunRecord>>,
    /// The threshold points are flagged at, and its rule.
    pub threshold: Threshold,
    /// Set while `record` holds preview scores: what to say over them.
    pub preview: Option<String>,
    /// Another series scored with this run's model.
    pub applied: Option<&'a Applied>,
    /// The cached curve.
    pub cache: &'a mut DetectionCache,
}

/// A colour per rule, from the Okabe-Ito palette (distinguishable with colour-blindness).
fn rule_color(index: usize) -> Color32 {
    const OKABE_ITO: [Color32; 5] = [
        super::palette::BLUE,
        super::palette::ORANGE,
        super::palette::BLUISH_GREEN,
        super::palette::REDDISH_PURPLE,
        super::palette::SKY_BLUE,
    ];
    OKABE_ITO[index % OKABE_ITO.len()]
}

/// Draws the detection panel.
pub fn detection_ui(ui: &mut Ui, p: DetectionPanel<'_>, commands: &mut Vec<AppCommand>) {
    let (Some(prep), Some(record)) = (p.prep, p.record) else {
        ui.label("Train a run (or open a saved one) to choose how its points are flagged and to apply its model to another series.");
        return;
    };
    if let Some(note) = &p.preview {
        ui.colored_label(ui.visuals().warn_fg_color, note);
    }
    ui.horizontal_wrapped(|ui| {
        egui::ComboBox::new("threshold-rule", "threshold rule")
            .selected_text(format!(
                "{} ({:.3})",
                p.threshold.rule.short_name(),
                p.threshold.value
            ))
            .show_ui(ui, |ui| {
                for t in &record.thresholds {
                    let text = format!("{} ({:.3})", t.rule.short_name(), t.value);
                    if ui
                        .selectable_label(*t == p.threshold, text)
                        .on_hover_text(t.rule.to_string())
                        .clicked()
                    {
                        commands.push(AppCommand::SetThreshold(*t));
                    }
                }
            });
        if ui
            .add_enabled(p.preview.is_none(), egui::Button::new("Apply to another series…"))
            .on_hover_text("Score a CSV with this model: standardised with the training data's mean and std, flagged at the threshold chosen here")
            .on_disabled_hover_text("When training has ended: the model is still learning")
            .clicked()
        {
            commands.push(AppCommand::ApplyToSeries);
        }
    });
    if p.threshold.rule.peeks_at_test_labels() {
        ui.colored_label(
            ui.visuals().warn_fg_color,
            "Best F1 on test was picked with the test labels: an upper bound, not a threshold one could set in advance.",
        );
    }
    egui::CollapsingHeader::new("Score tail (peaks over threshold)")
        .default_open(true)
        .show(ui, |ui| {
            super::tail::tail_ui(ui, prep, record, p.threshold, &mut p.cache.tail, commands);
        });
    if record.metrics.is_some() {
        super::baselines::baselines_ui(ui, prep, record, p.threshold, &mut p.cache.figures);
        ui.separator();
        pr_curve_ui(ui, prep, record, p.threshold.value, p.cache);
    } else {
        ui.label(format!(
            "No precision-recall curve: {}",
            record.no_f1_reason.as_deref().unwrap_or("no labels")
        ));
    }
    if let Some(applied) = p.applied {
        ui.separator();
        applied_ui(ui, applied);
    }
}

/// The test part's precision-recall curve (point-adjusted), each rule's threshold marked.
fn pr_curve_ui(
    ui: &mut Ui,
    prep: &Prepared,
    record: &Arc<RunRecord>,
    threshold: f64,
    cache: &mut DetectionCache,
) {
    let test = prep.part(Part::Test);
    let (scores, labels, missing) = (
        &record.scores[test.clone()],
        &prep.labels[test.clone()],
        &prep.missing[test],
    );
    if !cache
        .record
        .as_ref()
        .is_some_and(|r| Arc::ptr_eq(r, record))
    {
        cache.curve = pr_curve(scores, labels, missing, Adjust::Segment);
        cache.record = Some(record.clone());
    }
    let at = |value: f64| f1_at(scores, labels, missing, Adjust::Segment, value);
    let now = at(threshold);
    ui.label(format!(
        "Test part at {threshold:.3}: precision {:.3}, recall {:.3}, F1 {:.3} (point-adjusted)",
        now.precision, now.recall, now.f1
    ));
    // Interpolated precision (the best precision at this recall or more): the usual staircase.
    let mut staircase: Vec<[f64; 2]> = Vec::with_capacity(cache.curve.len());
    let mut best = 0.0f64;
    for s in cache.curve.iter().rev() {
        best = best.max(s.precision);
        staircase.push([s.recall, best]);
    }
    staircase.reverse();
    // Repeated points make zero-length segments, which egui's line tessellation turns into
    // spikes: keep each corner once.
    staircase.dedup();
    // Steps: the precision holds until the recall reaches the next corner.
    let steps: Vec<[f64; 2]> = staircase
        .iter()
        .enumerate()
        .flat_map(|(i, &[r, p])| {
            let previous = i.checked_sub(1).map(|j| staircase[j]);
            match previous {
                Some([pr, pp]) if pr < r && pp != p => vec![[r, pp], [r, p]],
                _ => vec![[r, p]],
            }
        })
        .collect::<Vec<_>>();
    // Keep the corners only: a point between two on the same vertical or horizontal is dropped.
    let steps: Vec<[f64; 2]> = steps
        .iter()
        .enumerate()
        .filter(|&(i, p)| {
            let (Some(a), Some(b)) = (i.checked_sub(1).map(|j| steps[j]), steps.get(i + 1)) else {
                return true;
            };
            !((a[0] == p[0] && p[0] == b[0]) || (a[1] == p[1] && p[1] == b[1]))
        })
        .map(|(_, p)| *p)
        .collect();
    let marks: Vec<(String, F1Score, Color32)> = record
        .thresholds
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let s = at(t.value);
            (
                format!("{}: F1 {:.3}", t.rule.short_name(), s.f1),
                s,
                rule_color(i),
            )
        })
        .collect();
    let mut legend: Vec<(&str, Color32)> = vec![("every threshold (test part)", CURVE_COLOR)];
    legend.extend(marks.iter().map(|(name, _, color)| (name.as_str(), *color)));
    legend.push(("flagging now", NOW_COLOR));
    super::widgets::legend_ui(ui, &legend);
    let height = ui.available_height().max(160.0);
    Plot::new("pr-curve")
        .height(height)
        .include_x(0.0)
        .include_x(1.02)
        .include_y(0.0)
        .include_y(1.05)
        .x_axis_label("recall")
        .y_axis_label("precision")
        .allow_scroll(false)
        .show(ui, |plot| {
            // One line per step: a single polyline of the staircase came out filled.
            for segment in steps.windows(2) {
                plot.line(
                    Line::new("every threshold", PlotPoints::new(segment.to_vec()))
                        .color(CURVE_COLOR)
                        .width(2.0),
                );
            }
            for (name, s, color) in &marks {
                plot.points(
                    Points::new(name.as_str(), vec![[s.recall, s.precision]])
                        .shape(MarkerShape::Diamond)
                        .radius(6.0)
                        .color(*color),
                );
            }
            plot.points(
                Points::new("flagging now", vec![[now.recall, now.precision]])
                    .shape(MarkerShape::Circle)
                    .filled(false)
                    .radius(9.0)
                    .color(NOW_COLOR),
            );
        });
}

/// The colour of values (Okabe-Ito blue).
const VALUE_COLOR: Color32 = super::palette::SKY_BLUE;

/// The colour of scores (Okabe-Ito orange).
const SCORE_COLOR: Color32 = super::palette::ORANGE;

/// The curve's colour.
const CURVE_COLOR: Color32 = Color32::from_gray(160);

/// The colour of the current threshold and of flagged points (Okabe-Ito vermillion).
const NOW_COLOR: Color32 = super::palette::VERMILLION;

/// Another series scored with this model: its figures, values and scores with the flags.
fn applied_ui(ui: &mut Ui, applied: &Applied) {
    let d = &applied.detection;
    let prep = &applied.prep;
    ui.strong(format!(
        "{}: {} points, {} scored, {} flagged at {:.3}",
        short_name(&applied.path.display().to_string()),
        prep.len(),
        d.scored_windows,
        d.flagged,
        d.threshold.value
    ));
    if let (Some([adj, _, point]), Some(best)) = (&d.at_threshold, &d.best) {
        ui.label(format!(
            "with its labels: P {:.3} R {:.3} F1 {:.3} (point-wise F1 {:.3}); best F1 over every threshold {:.3} (upper bound)",
            adj.precision, adj.recall, adj.f1, point.f1, best.best_f1.f1
        ));
    }
    for note in &d.notes {
        ui.label(egui::RichText::new(note).color(ui.visuals().warn_fg_color));
    }
    let flagged = flags(&d.scores, &prep.missing, d.threshold.value);
    super::widgets::legend_ui(
        ui,
        &[
            ("value", VALUE_COLOR),
            ("flagged", NOW_COLOR),
            ("anomaly score (below)", SCORE_COLOR),
        ],
    );
    let height = (ui.available_height() / 2.0 - 4.0).max(120.0);
    let link = egui::Id::unique("applied-link");
    Plot::new("applied-values")
        .height(height)
        .link_axis(link, [true, false])
        .show(ui, |plot| {
            let values = min_max_points(prep.len(), MAX_POINTS, |i| {
                (!prep.missing[i]).then_some(prep.raw_values[i])
            });
            plot.line(Line::new("value", PlotPoints::new(values)).color(VALUE_COLOR));
            let marks: Vec<[f64; 2]> = (0..prep.len())
                .filter(|&i| flagged[i])
                .map(|i| [i as f64, prep.raw_values[i]])
                .collect();
            plot.points(
                Points::new("flagged", marks)
                    .shape(MarkerShape::Circle)
                    .radius(3.0)
                    .color(NOW_COLOR),
            );
        });
    Plot::new("applied-scores")
        .height(height)
        .link_axis(link, [true, false])
        .show(ui, |plot| {
            let scores = min_max_points(d.scores.len(), MAX_POINTS, |i| d.scores[i]);
            plot.line(Line::new("anomaly score", PlotPoints::new(scores)).color(SCORE_COLOR));
            plot.hline(HLine::new("threshold", d.threshold.value).color(NOW_COLOR));
        });
}
