//! The series panel: values with labels, parts, missing and flagged points; the anomaly score on a
//! linked plot below; the threshold control with live precision / recall / F1; export.

use super::app::DonutApp;
use crate::data::{Part, Prepared};
use crate::eval::flags;
use crate::run::write_detections;
use egui::{Color32, Ui};
use egui_plot::{HLine, Line, MarkerShape, Plot, PlotPoints, Points, Span, VLine};

const LABEL_FILL: Color32 = Color32::from_rgba_premultiplied(120, 20, 20, 60);
const NO_SCORE_FILL: Color32 = Color32::from_rgba_premultiplied(60, 60, 60, 40);

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
pub(super) fn runs(n: usize, pred: impl Fn(usize) -> bool) -> Vec<(usize, usize)> {
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

/// Indices to draw for a line of `n` points: all of them, or an even subsample for long series.
fn stride(n: usize) -> usize {
    (n / 20_000).max(1)
}

/// Draws the series panel.
pub fn series_ui(app: &mut DonutApp, ui: &mut Ui) {
    let Some(prep) = app.prepared().cloned() else {
        ui.label("No data prepared for these settings.");
        return;
    };
    threshold_ui(app, ui, &prep);
    let n = prep.len();
    // A result belongs to the data it was scored on: never index this series with another's.
    let result = app.result.clone().filter(|r| r.scores.len() == n);
    let step = stride(n);
    let flagged = result
        .as_ref()
        .map(|r| flags(&r.scores, &prep.missing, app.threshold));
    let link = egui::Id::unique("series-link");
    let x_fmt = {
        let prep = prep.clone();
        move |mark: egui_plot::GridMark, _range: &std::ops::RangeInclusive<f64>| {
            let i = mark.value.round();
            if i < 0.0 || i as usize >= prep.len() {
                String::new()
            } else {
                format_time(&prep, i as usize)
            }
        }
    };
    let height = (ui.available_height() - 8.0).max(160.0);
    let highlight = app.highlight_end;

    Plot::new("series")
        .height(height * 0.62)
        .link_axis(link, [true, false])
        .link_cursor(link, [true, false])
        .x_axis_formatter(x_fmt.clone())
        .legend(egui_plot::Legend::default())
        .y_axis_label("value")
        .show(ui, |plot| {
            for (a, b) in runs(n, |i| prep.labels[i] == 1) {
                plot.span(
                    Span::new("labelled anomaly", a as f64 - 0.5..=b as f64 - 0.5)
                        .fill(LABEL_FILL)
                        .border_width(0.0),
                );
            }
            for part in [Part::Valid, Part::Test] {
                let start = prep.part(part).start as f64;
                plot.vline(
                    VLine::new(format!("{} starts", part.name()), start)
                        .color(Color32::GRAY)
                        .width(1.0),
                );
            }
            for (a, b) in runs(n, |i| !prep.missing[i]) {
                let pts: PlotPoints = (a..b)
                    .step_by(step)
                    .map(|i| [i as f64, prep.raw_values[i]])
                    .collect();
                plot.line(
                    Line::new("value", pts)
                        .color(Color32::from_rgb(90, 150, 230))
                        .width(1.0),
                );
            }
            let missing: PlotPoints = (0..n)
                .filter(|&i| prep.missing[i])
                .map(|i| [i as f64, prep.mean])
                .collect();
            plot.points(
                Points::new("missing", missing)
                    .shape(MarkerShape::Cross)
                    .radius(2.5)
                    .color(Color32::from_rgb(200, 200, 80)),
            );
            if let Some(flagged) = &flagged {
                let pts: PlotPoints = (0..n)
                    .filter(|&i| flagged[i])
                    .map(|i| [i as f64, prep.raw_values[i]])
                    .collect();
                plot.points(
                    Points::new("flagged", pts)
                        .radius(2.5)
                        .color(Color32::from_rgb(240, 60, 60)),
                );
            }
            if let Some(end) = highlight {
                let start = end + 1 - prep.window;
                plot.span(
                    Span::new("hovered window", start as f64..=end as f64)
                        .fill(Color32::from_rgba_unmultiplied(250, 250, 120, 40)),
                );
            }
        });

    Plot::new("scores")
        .height(height * 0.33)
        .link_axis(link, [true, false])
        .link_cursor(link, [true, false])
        .x_axis_formatter(x_fmt)
        .y_axis_label("anomaly score")
        .show(ui, |plot| {
            for part in Part::ALL {
                let r = prep.part(part);
                let end = (r.start + prep.window - 1).min(r.end);
                plot.span(
                    Span::new(
                        format!("no score: first W-1 points of {}", part.name()),
                        r.start as f64 - 0.5..=end as f64 - 0.5,
                    )
                    .fill(NO_SCORE_FILL)
                    .border_width(0.0),
                );
            }
            if let Some(r) = &result {
                for (a, b) in runs(n, |i| r.scores[i].is_some()) {
                    let pts: PlotPoints = (a..b)
                        .step_by(step)
                        .filter_map(|i| r.scores[i].map(|s| [i as f64, s]))
                        .collect();
                    plot.line(
                        Line::new("anomaly score", pts)
                            .color(Color32::from_rgb(220, 120, 60))
                            .width(1.0),
                    );
                }
                plot.hline(
                    HLine::new("threshold", app.threshold)
                        .color(Color32::from_rgb(240, 60, 60))
                        .width(1.0),
                );
                plot.hline(
                    HLine::new("best-F1 threshold", r.metrics.best_f1.threshold)
                        .color(Color32::from_rgb(60, 200, 90))
                        .style(egui_plot::LineStyle::dashed_loose())
                        .width(1.0),
                );
            } else {
                plot.text(egui_plot::Text::new(
                    "hint",
                    egui_plot::PlotPoint::new(n as f64 / 2.0, 0.0),
                    "scores appear when training finishes",
                ));
            }
        });
}

fn threshold_ui(app: &mut DonutApp, ui: &mut Ui, prep: &std::sync::Arc<Prepared>) {
    let Some(result) = app.result.clone().filter(|r| r.scores.len() == prep.len()) else {
        ui.horizontal(|ui| {
            ui.strong("Series");
            ui.label("· shaded red: labelled anomalies · crosses: missing points · grey bands below: points with no score (the first W-1 of each part)");
        });
        return;
    };
    let (lo, hi) = result
        .scores
        .iter()
        .flatten()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &s| {
            (lo.min(s), hi.max(s))
        });
    ui.horizontal(|ui| {
        ui.strong("Threshold");
        if lo.is_finite() && hi > lo {
            ui.add(egui::Slider::new(&mut app.threshold, lo..=hi).text("anomaly score ≥"))
                .on_hover_text("Points whose anomaly score reaches this are flagged (red dots)");
        }
        if ui
            .button("Best F1")
            .on_hover_text("Jump to the threshold of the best (no-delay) F1 on the test part")
            .clicked()
        {
            app.threshold = result.metrics.best_f1.threshold;
        }
        if let Some([adj, delay, point]) = app.metrics_at_threshold() {
            ui.label(format!(
                "test: P {:.3} R {:.3} F1 {:.3} · delay {}: F1 {:.3} · point-wise: F1 {:.3}",
                adj.precision, adj.recall, adj.f1, result.config.eval_delay, delay.f1, point.f1
            ));
        }
        if ui
            .button("Export detections…")
            .on_hover_text("Write every point with its score and flag to a CSV")
            .clicked()
        {
            let prep = prep.clone();
            let scores = result.scores.clone();
            let threshold = app.threshold;
            let ctx = ui.ctx().clone();
            app.files
                .pick_and_save(&ctx, "detections.csv", move |path| {
                    crate::cli::write_atomically(path, |w| {
                        write_detections(w, &prep, &scores, threshold)
                    })
                });
        }
    });
}
