//! The series panel: values with labels, parts, missing and flagged points; the anomaly score on a
//! linked plot below; the threshold control with live precision / recall / F1; export.

use super::commands::AppCommand;
use super::widgets::{format_time, legend_ui, min_max_points, runs};
use crate::data::{Part, Prepared};
use crate::eval::{Threshold, ThresholdRule, flags, test_f1_at};
use crate::pipeline::{RunRecord, ScoredBaseline};
use egui::{Color32, Ui};
use egui_plot::{HLine, Line, MarkerShape, Plot, PlotPoints, Points, Span, VLine};
use std::sync::Arc;

// Colours from the Okabe-Ito palette, told apart with any colour vision: labelled anomalies
// (reddish purple bands) against flagged points (vermillion dots).
const LABEL_COLOR: Color32 = super::palette::REDDISH_PURPLE;
const LABEL_FILL: Color32 = Color32::from_rgba_premultiplied(82, 48, 67, 100);
const VALUE_COLOR: Color32 = super::palette::SKY_BLUE;
const FLAGGED_COLOR: Color32 = super::palette::VERMILLION;
const MISSING_COLOR: Color32 = super::palette::YELLOW;
const SCORE_COLOR: Color32 = super::palette::ORANGE;
const TEST_BEST_COLOR: Color32 = super::palette::BLUISH_GREEN;
const SELECTED_COLOR: Color32 = super::palette::BLUE;
const SELECTED_FILL: Color32 = Color32::from_rgba_premultiplied(0, 46, 71, 90);
const NO_SCORE_FILL: Color32 = Color32::from_rgba_premultiplied(60, 60, 60, 40);
const BASELINE_COLOR: Color32 = super::palette::BLUE;

/// Points per line across the plot (min-max decimation keeps every spike within it).
const LINE_POINTS: usize = 8_000;

/// The points of `range` of a line, decimated to its share of [`LINE_POINTS`] of a series of
/// `n` points.
fn line_points(
    n: usize,
    range: std::ops::Range<usize>,
    value: impl Fn(usize) -> Option<f64>,
) -> PlotPoints<'static> {
    let budget = (LINE_POINTS * range.len()).div_ceil(n.max(1)).max(4);
    let start = range.start;
    min_max_points(range.len(), budget, |j| value(start + j))
        .into_iter()
        .map(|[x, y]| [x + start as f64, y])
        .collect()
}

/// What the series panel draws and edits.
pub struct SeriesPanel<'a> {
    /// The data.
    pub prep: Option<&'a Arc<Prepared>>,
    /// The finished run on this data, when there is one.
    pub record: Option<&'a Arc<RunRecord>>,
    /// The threshold points are flagged at; moving the slider asks for another
    /// ([`AppCommand::SetThreshold`]).
    pub threshold: Threshold,
    /// The window (its end point) to mark, hovered in the latent panel.
    pub highlight_end: Option<usize>,
    /// Set to the point under the pointer (its window is marked in the latent cloud).
    pub hovered: &'a mut Option<usize>,
    /// Set to where the values plot was drawn (plot to screen), for tests and tools.
    pub transform: &'a mut Option<egui_plot::PlotTransform>,
    /// The selected windows (ends, ascending), shaded on the series.
    pub selection: Option<&'a [usize]>,
    /// Where a shift + drag brush started (plot x), while it is drawn.
    pub brush: &'a mut Option<f64>,
    /// Where the brush was last seen (plot x).
    pub brush_end: &'a mut Option<f64>,
    /// Whether Spectral Residual's score is drawn under the model's.
    pub show_baseline: &'a mut bool,
    /// Set while `record` holds preview scores: what to say over them.
    pub preview: Option<String>,
}

/// Draws the series panel; the export button queues its command.
pub fn series_ui(ui: &mut Ui, p: SeriesPanel<'_>, commands: &mut Vec<AppCommand>) {
    let Some(prep) = p.prep else {
        ui.label("No data prepared for these settings.");
        return;
    };
    let n = prep.len();
    let result = p.record;
    data_notes_ui(ui, prep);
    if let Some(note) = &p.preview {
        ui.colored_label(ui.visuals().warn_fg_color, note);
    }
    threshold_ui(ui, prep, result, p.threshold, commands);
    if result.is_some_and(|r| r.baselines.spectral_residual.is_some()) {
        ui.checkbox(
            p.show_baseline,
            "Show Spectral Residual's score (a baseline that needs no training)",
        );
    }
    let threshold = p.threshold.value;
    let flagged = result
        .as_ref()
        .map(|r| flags(&r.scores, &prep.missing, threshold));
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
    let highlight = p.highlight_end;

    let mut legend = vec![
        ("value", VALUE_COLOR),
        ("labelled anomaly", LABEL_COLOR),
        ("missing", MISSING_COLOR),
        ("validation / test start", Color32::GRAY),
    ];
    if flagged.is_some() {
        legend.insert(2, ("flagged", FLAGGED_COLOR));
    }
    if let Some(ends) = p.selection {
        legend.push(("selected windows", SELECTED_COLOR));
        ui.horizontal(|ui| {
            ui.label(format!(
                "{} windows selected (shift + drag on the series or in the latent space to select)",
                ends.len()
            ));
            if ui.button("Clear selection").clicked() {
                commands.push(AppCommand::ClearSelection);
            }
        });
    }
    legend_ui(ui, &legend);
    let height = (ui.available_height() - 8.0).max(160.0);
    // Shares of the height: values, then each plot of scores under them.
    let with_baseline =
        *p.show_baseline && result.is_some_and(|r| r.baselines.spectral_residual.is_some());
    let (values_share, scores_share) = if with_baseline {
        (0.44, 0.2)
    } else {
        (0.58, 0.3)
    };
    let shift = ui.input(|i| i.modifiers.shift);
    let brush_start = *p.brush;
    let selection = p.selection;
    let values_plot = Plot::new("series")
        .allow_drag(!shift && brush_start.is_none())
        .height(height * values_share)
        .link_axis(link, [true, false])
        .link_cursor(link, [true, false])
        .x_axis_formatter(x_fmt.clone())
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
                let pts = line_points(n, a..b, |i| Some(prep.raw_values[i]));
                plot.line(Line::new("value", pts).color(VALUE_COLOR).width(1.0));
            }
            let missing: PlotPoints = (0..n)
                .filter(|&i| prep.missing[i])
                .map(|i| [i as f64, prep.mean])
                .collect();
            plot.points(
                Points::new("missing", missing)
                    .shape(MarkerShape::Cross)
                    .radius(2.5)
                    .color(MISSING_COLOR),
            );
            if let Some(flagged) = &flagged {
                let pts: PlotPoints = (0..n)
                    .filter(|&i| flagged[i])
                    .map(|i| [i as f64, prep.raw_values[i]])
                    .collect();
                plot.points(Points::new("flagged", pts).radius(2.5).color(FLAGGED_COLOR));
            }
            if let Some(ends) = selection {
                // Each selected window is its last point: shade the runs of them.
                let mut i = 0;
                while i < ends.len() {
                    let start = ends[i];
                    while i + 1 < ends.len() && ends[i + 1] == ends[i] + 1 {
                        i += 1;
                    }
                    plot.span(
                        Span::new(
                            "selected windows",
                            start as f64 - 0.5..=ends[i] as f64 + 0.5,
                        )
                        .fill(SELECTED_FILL)
                        .border_width(0.0),
                    );
                    i += 1;
                }
            }
            if let (Some(start), Some(now)) = (brush_start, plot.pointer_coordinate()) {
                plot.span(
                    Span::new("brush", start.min(now.x)..=start.max(now.x)).fill(SELECTED_FILL),
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
    *p.transform = Some(values_plot.transform);
    // Shift + drag brushes a stretch: its windows become the selection.
    let pointer_x = values_plot
        .response
        .interact_pointer_pos()
        .map(|pos| values_plot.transform.value_from_position(pos).x);
    if values_plot.response.drag_started() && shift {
        // From where the button went down (a drag starts only after the pointer has moved).
        let origin = ui.input(|i| i.pointer.press_origin());
        *p.brush = origin
            .map(|pos| values_plot.transform.value_from_position(pos).x)
            .or(pointer_x);
    }
    if let Some(start) = *p.brush {
        if let Some(x) = pointer_x {
            *p.brush_end = Some(x);
        }
        if values_plot.response.drag_stopped() || !values_plot.response.dragged() {
            let end = p.brush_end.take().unwrap_or(start);
            let first = start.min(end).round().max((prep.window - 1) as f64) as usize;
            let last = (start.max(end).round() as usize).min(n - 1);
            *p.brush = None;
            if first <= last {
                commands.push(AppCommand::Select((first..=last).collect()));
            }
        }
    }
    // Hovering marks the window ending at the point in the latent cloud; a click opens its
    // reconstruction.
    *p.hovered = values_plot
        .response
        .hover_pos()
        .map(|pos| values_plot.transform.value_from_position(pos).x.round())
        .filter(|&x| x >= (prep.window - 1) as f64 && x < n as f64)
        .map(|x| x as usize);
    if values_plot.response.clicked()
        && let Some(end) = *p.hovered
    {
        // A click lands on the highest-scoring point within a few pixels: the spike one aimed at.
        let per_px = values_plot.transform.dvalue_dpos()[0].abs();
        let reach = (6.0 * per_px).round() as usize;
        let near = end.saturating_sub(reach).max(prep.window - 1)..=(end + reach).min(n - 1);
        let snapped = result
            .and_then(|r| {
                near.filter_map(|i| r.scores[i].map(|s| (i, s)))
                    .max_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|(i, _)| i)
            })
            .unwrap_or(end);
        commands.push(AppCommand::Inspect(snapped));
    }

    let scores = ScorePlot {
        prep,
        record: result,
        threshold,
        height: height * scores_share,
        link,
        x_fmt: &x_fmt,
    };
    scores_ui(ui, &scores);
    if with_baseline && let Some(sr) = result.and_then(|r| r.baselines.spectral_residual.as_ref()) {
        baseline_ui(ui, &scores, sr);
    }
}

/// The shared frame of the plots under the series: its data and run, the flagging threshold,
/// the height, the x-axis link and formatter.
struct ScorePlot<'a, F> {
    prep: &'a Prepared,
    record: Option<&'a Arc<RunRecord>>,
    threshold: f64,
    height: f32,
    link: egui::Id,
    x_fmt: &'a F,
}

impl<F> ScorePlot<'_, F>
where
    F: Fn(egui_plot::GridMark, &std::ops::RangeInclusive<f64>) -> String + Clone + 'static,
{
    /// A plot of the whole series' width, its x axis linked to the series'.
    fn plot(&self, id: &str, y_label: &str) -> Plot<'static> {
        Plot::new(id)
            .height(self.height)
            // The whole series, also before there is a score to bound the axis (otherwise
            // every tick of the empty plot names the same instant).
            .include_x(0.0)
            .include_x(self.prep.len() as f64)
            .link_axis(self.link, [true, false])
            .link_cursor(self.link, [true, false])
            .x_axis_formatter(self.x_fmt.clone())
            .y_axis_label(y_label.to_string())
    }
}

/// The model's anomaly score under the series, with the threshold and the test labels' best.
fn scores_ui<F>(ui: &mut Ui, p: &ScorePlot<'_, F>)
where
    F: Fn(egui_plot::GridMark, &std::ops::RangeInclusive<f64>) -> String + Clone + 'static,
{
    let (prep, n) = (p.prep, p.prep.len());
    if p.record.is_some() {
        legend_ui(
            ui,
            &[
                ("anomaly score", SCORE_COLOR),
                ("threshold", FLAGGED_COLOR),
                ("best F1 on test (upper bound)", TEST_BEST_COLOR),
            ],
        );
    }
    p.plot("scores", "anomaly score").show(ui, |plot| {
        // The first W-1 points of the train and validation parts end no window (every test
        // point does: its first windows reach back into the validation part).
        for part in [Part::Train, Part::Valid] {
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
        if let Some(r) = p.record {
            for (a, b) in runs(n, |i| r.scores[i].is_some()) {
                let pts = line_points(n, a..b, |i| r.scores[i]);
                plot.line(
                    Line::new("anomaly score", pts)
                        .color(SCORE_COLOR)
                        .width(1.0),
                );
            }
            plot.hline(
                HLine::new("threshold", p.threshold)
                    .color(FLAGGED_COLOR)
                    .width(1.0),
            );
            if let Some(m) = r.metrics {
                plot.hline(
                    HLine::new("best F1 on test (upper bound)", m.best_f1.threshold)
                        .color(TEST_BEST_COLOR)
                        .style(egui_plot::LineStyle::dashed_loose())
                        .width(1.0),
                );
            }
        } else {
            plot.text(egui_plot::Text::new(
                "hint",
                egui_plot::PlotPoint::new(n as f64 / 2.0, 0.0),
                "scores appear when training finishes",
            ));
        }
    });
}

/// Spectral Residual's score under the model's (the baseline that needs no training), with
/// its own threshold by the run's rule and its test figures.
fn baseline_ui<F>(ui: &mut Ui, p: &ScorePlot<'_, F>, sr: &ScoredBaseline)
where
    F: Fn(egui_plot::GridMark, &std::ops::RangeInclusive<f64>) -> String + Clone + 'static,
{
    let n = p.prep.len();
    if sr.scores.len() != n {
        return;
    }
    let figures = sr.evaluation.as_ref().map_or_else(
        || "no labels in the test part".to_string(),
        |e| {
            format!(
                "test F1 {:.3} at its threshold, best {:.3} (upper bound)",
                e.flagged.adjusted.f1, e.best.best_f1.f1
            )
        },
    );
    legend_ui(
        ui,
        &[
            ("Spectral Residual score (no training)", BASELINE_COLOR),
            ("its threshold", FLAGGED_COLOR),
        ],
    );
    ui.label(format!(
        "Spectral Residual, flagged at {:.2} ({}): {figures}",
        sr.threshold.value,
        sr.threshold.rule.short_name()
    ));
    p.plot("baseline-scores", "SR score").show(ui, |plot| {
        for (a, b) in runs(n, |i| !p.prep.missing[i]) {
            let pts = line_points(n, a..b, |i| sr.scores[i]);
            plot.line(
                Line::new("Spectral Residual score", pts)
                    .color(BASELINE_COLOR)
                    .width(1.0),
            );
        }
        plot.hline(
            HLine::new("its threshold", sr.threshold.value)
                .color(FLAGGED_COLOR)
                .width(1.0),
        );
    });
}

/// The loading policies applied to the data and its warnings, one line each.
fn data_notes_ui(ui: &mut Ui, prep: &Prepared) {
    for note in &prep.notes {
        ui.label(format!("note: {note}"));
    }
    for warning in &prep.warnings {
        ui.colored_label(ui.visuals().warn_fg_color, format!("warning: {warning}"));
    }
}

fn threshold_ui(
    ui: &mut Ui,
    prep: &Prepared,
    record: Option<&Arc<RunRecord>>,
    threshold: Threshold,
    commands: &mut Vec<AppCommand>,
) {
    let Some(result) = record else {
        ui.horizontal(|ui| {
            ui.strong("Series");
            ui.label("· crosses: missing points · grey bands below: points with no score (the first W-1 of the train and validation parts)");
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
            let mut value = threshold.value;
            let moved = ui
                .add(
                    egui::Slider::new(&mut value, lo..=hi)
                        .clamping(egui::SliderClamping::Never)
                        .text("anomaly score ≥"),
                )
                .on_hover_text(format!(
                    "Points whose anomaly score reaches this are flagged (red dots); now {}",
                    threshold.rule
                ))
                .changed();
            if moved {
                commands.push(AppCommand::SetThreshold(Threshold {
                    value,
                    rule: ThresholdRule::Chosen,
                }));
            }
        }
        if ui
            .button("Run's threshold")
            .on_hover_text(format!("Back to {}", result.threshold.rule))
            .clicked()
        {
            commands.push(AppCommand::SetThreshold(result.threshold));
        }
        if result.metrics.is_some() {
            let [adj, delay, point] = test_f1_at(
                prep,
                &result.scores,
                result.config.eval_delay,
                threshold.value,
            );
            ui.label(format!(
                "test: P {:.3} R {:.3} F1 {:.3} · delay {}: F1 {:.3} · point-wise: F1 {:.3}",
                adj.precision, adj.recall, adj.f1, result.config.eval_delay, delay.f1, point.f1
            ));
        } else {
            let reason = result.no_f1_reason.as_deref().unwrap_or("no labels");
            ui.label(format!("no F1: {reason}"))
                .on_hover_text(format!("The run's threshold is {}", result.threshold.rule));
        }
        if ui
            .button("Export detections…")
            .on_hover_text("Write every point with its score and flag to a CSV")
            .clicked()
        {
            commands.push(AppCommand::ExportDetections);
        }
    });
}
