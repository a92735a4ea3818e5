//! The test part's figures beside what they must beat: DONUT at the threshold flagging now,
//! Spectral Residual (no training) at its own threshold by the run's rule, and random scores
//! (chance) flagging as many points as the run's threshold does; a table, and the PA%K curves
//! of all three (F1 as a segment needs more and more of its points flagged to count whole).

use crate::data::{Part, Prepared};
use crate::eval::{AtThreshold, PA_K_PERCENTS, PaKCurve, Threshold};
use crate::pipeline::RunRecord;
use egui::{Color32, Ui};
use egui_plot::{Line, LineStyle, Plot, PlotPoints};
use std::sync::Arc;

const DONUT_COLOR: Color32 = super::palette::VERMILLION;
const BASELINE_COLOR: Color32 = super::palette::BLUE;
const CHANCE_COLOR: Color32 = Color32::from_gray(150);

/// The model's figures at the threshold flagging now, computed once per record and threshold.
#[derive(Default)]
pub struct FiguresCache {
    key: Option<(usize, u64)>,
    at: Option<AtThreshold>,
}

impl FiguresCache {
    /// The figures of `record`'s test part at `threshold`.
    fn at(
        &mut self,
        prep: &Prepared,
        record: &Arc<RunRecord>,
        threshold: Threshold,
    ) -> &AtThreshold {
        let key = (Arc::as_ptr(record) as usize, threshold.value.to_bits());
        if self.key != Some(key) {
            self.at = None;
            self.key = Some(key);
        }
        self.at.get_or_insert_with(|| {
            let test = prep.part(Part::Test);
            AtThreshold::of(
                &record.scores[test.clone()],
                &prep.labels[test.clone()],
                &prep.missing[test],
                record.config.eval_delay,
                threshold,
            )
        })
    }
}

/// One row of the table.
struct Row<'a> {
    name: &'static str,
    detail: String,
    color: Color32,
    best: f64,
    flagged: f64,
    pointwise: f64,
    pa_k: &'a PaKCurve,
    best_pa_k: &'a PaKCurve,
}

/// The table's columns: a short header and what it means.
const COLUMNS: [(&str, &str); 5] = [
    (
        "best F1",
        "The best point-adjusted F1 over every threshold: an upper bound, picked with the test labels",
    ),
    (
        "F1",
        "Point-adjusted F1 at the detector's own threshold (DONUT: the one flagging now)",
    ),
    ("point-wise", "Point-wise F1 at that threshold"),
    (
        "PA%K",
        "Area under F1 over K = 0..100 % at that threshold (PA%K: a segment counts whole only when more than K % of its points are flagged)",
    ),
    (
        "best PA%K",
        "Area under the best F1 for each K (each K at its own threshold: an upper bound)",
    ),
];

/// Draws the figures and the PA%K curves (nothing without labels).
pub fn baselines_ui(
    ui: &mut Ui,
    prep: &Prepared,
    record: &Arc<RunRecord>,
    threshold: Threshold,
    cache: &mut FiguresCache,
) {
    let Some(model) = &record.evaluation else {
        ui.label("This run was saved before its figures at each threshold and its baselines were kept: train it again to see them.");
        return;
    };
    let now = cache.at(prep, record, threshold).clone();
    let mut rows = vec![Row {
        name: "DONUT",
        detail: format!("flagging at {:.3}: {}", threshold.value, threshold.rule),
        color: DONUT_COLOR,
        best: model.best.best_f1.f1,
        flagged: now.adjusted.f1,
        pointwise: now.pointwise.f1,
        pa_k: &now.pa_k,
        best_pa_k: &model.best_pa_k,
    }];
    if let Some(sr) = record
        .baselines
        .spectral_residual
        .as_ref()
        .and_then(|b| b.evaluation.as_ref())
    {
        rows.push(Row {
            name: "Spectral Residual",
            detail: format!(
                "needs no training; flagging at {:.3}, {}",
                sr.flagged.threshold.value, sr.flagged.threshold.rule
            ),
            color: BASELINE_COLOR,
            best: sr.best.best_f1.f1,
            flagged: sr.flagged.adjusted.f1,
            pointwise: sr.flagged.pointwise.f1,
            pa_k: &sr.flagged.pa_k,
            best_pa_k: &sr.best_pa_k,
        });
    }
    if let Some(c) = &record.baselines.chance {
        rows.push(Row {
            name: "chance",
            detail: format!(
                "the mean of {} random score tracks on the same labels, each flagging {} points as the run's threshold does",
                c.draws, c.flagged_points
            ),
            color: CHANCE_COLOR,
            best: c.best_f1,
            flagged: c.flagged_f1,
            pointwise: c.flagged_f1_pointwise,
            pa_k: &c.flagged_pa_k,
            best_pa_k: &c.best_pa_k,
        });
    }
    ui.strong("Against the baselines (test part; hover a name or a header for what it is)");
    egui::Grid::new("baselines-table")
        .striped(true)
        .show(ui, |ui| {
            ui.strong("detector");
            for (header, meaning) in COLUMNS {
                ui.strong(header).on_hover_text(meaning);
            }
            ui.end_row();
            for row in &rows {
                ui.colored_label(row.color, row.name)
                    .on_hover_text(&row.detail);
                for value in [
                    row.best,
                    row.flagged,
                    row.pointwise,
                    row.pa_k.area,
                    row.best_pa_k.area,
                ] {
                    ui.label(format!("{value:.3}"));
                }
                ui.end_row();
            }
        });
    ui.add(
        egui::Label::new(
            "Point adjustment counts a whole labelled segment as found when one of its points is flagged, so even random scores reach a high F1 on long segments. PA%K (Kim et al., AAAI 2022) counts a segment whole only when more than K % of its points are flagged: K = 0 is the point-adjusted F1, K = 100 the point-wise one. A detector worth its training stays above chance, and above Spectral Residual, along the whole curve.",
        )
        .wrap(),
    );
    let mut legend: Vec<(&str, Color32)> = rows.iter().map(|r| (r.name, r.color)).collect();
    legend.push((
        "dashed: best over every threshold (upper bound)",
        Color32::GRAY,
    ));
    super::widgets::legend_ui(ui, &legend);
    pa_k_plot("pa-k-curves", 200.0).show(ui, |plot| {
        for row in &rows {
            plot.line(
                Line::new(row.name, pa_k_points(row.pa_k))
                    .color(row.color)
                    .width(2.0),
            );
            plot.line(
                Line::new(format!("{} (best)", row.name), pa_k_points(row.best_pa_k))
                    .color(row.color)
                    .style(LineStyle::dashed_loose())
                    .width(1.0),
            );
        }
    });
}

/// A PA%K curve's points: F1 against K (percent).
pub fn pa_k_points(curve: &PaKCurve) -> PlotPoints<'static> {
    PA_K_PERCENTS
        .iter()
        .zip(&curve.f1)
        .map(|(&k, &f1)| [k as f64, f1])
        .collect()
}

/// The plot PA%K curves are drawn in: K from 0 to 100 %, F1 from 0 to 1.
pub fn pa_k_plot(id: &str, height: f32) -> Plot<'static> {
    Plot::new(id)
        .height(height)
        .include_x(0.0)
        .include_x(100.0)
        .include_y(0.0)
        .include_y(1.0)
        .x_axis_label("K: % of a segment's points that must be flagged")
        .y_axis_label("F1 under PA%K")
        .allow_scroll(false)
}
