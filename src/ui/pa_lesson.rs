//! The lesson on how point adjustment inflates F1: on the current run's test part, a detector
//! that flags one point per labelled segment (and nothing else), random scores, and the model,
//! each under DONUT's point-adjusted F1, point-wise, and along the PA%K curve.

use crate::data::{Part, Prepared};
use crate::eval::{AtThreshold, PaKCurve, Threshold, ThresholdRule};
use crate::pipeline::RunRecord;
use egui::{Color32, RichText, Ui};
use egui_plot::Line;
use std::sync::Arc;

/// The one-point-per-segment detector's figures, computed once per run.
#[derive(Default)]
pub struct PaLessonCache {
    record: Option<usize>,
    one_per_segment: Option<AtThreshold>,
}

/// The figures of a detector that flags the first present point of every labelled segment of
/// the test part and nothing else.
fn one_point_per_segment(prep: &Prepared, delay: usize) -> AtThreshold {
    let test = prep.part(Part::Test);
    let (labels, missing) = (&prep.labels[test.clone()], &prep.missing[test]);
    let mut scores: Vec<Option<f64>> = missing.iter().map(|&m| (!m).then_some(0.0)).collect();
    for segment in crate::eval::label_segments(labels) {
        if let Some(first) = segment.into_iter().find(|&j| !missing[j]) {
            scores[first] = Some(1.0);
        }
    }
    AtThreshold::of(
        &scores,
        labels,
        missing,
        delay,
        Threshold {
            value: 1.0,
            rule: ThresholdRule::Chosen,
        },
    )
}

const ONE_COLOR: Color32 = super::palette::REDDISH_PURPLE;
const CHANCE_COLOR: Color32 = Color32::from_gray(150);
const MODEL_COLOR: Color32 = super::palette::VERMILLION;

/// Draws the lesson for the finished `record` on `prep` (a prompt without one).
pub fn pa_lesson_ui(
    ui: &mut Ui,
    cache: &mut PaLessonCache,
    prep: Option<&Arc<Prepared>>,
    record: Option<&Arc<RunRecord>>,
) {
    ui.label(RichText::new("How point adjustment flatters F1").heading());
    ui.label("DONUT's metric counts a whole labelled segment as detected when any one of its points is flagged. Kim et al. (AAAI 2022) showed that on benchmarks with long segments, random scores then reach a high F1. How much of this run's F1 is the model, and how much the metric?");
    ui.label(
        RichText::new("What to watch: the first row flags one point per segment and nothing else, a detector that knows nothing about the series' shape yet scores a perfect point-adjusted F1; random scores come next. Along the PA%K curve (a segment counts whole only when more than K % of its points are flagged) both fall away, and a model worth its training stays above them.")
            .color(ui.visuals().weak_text_color()),
    );
    let (Some(prep), Some(record)) = (prep, record) else {
        ui.label(
            "Train a run (or open a saved one) on labelled data: the lesson uses its test part.",
        );
        return;
    };
    let Some(model) = &record.evaluation else {
        ui.label("This run has no figures at its threshold (no labels in its test part, or it was saved before they were kept).");
        return;
    };
    let key = Arc::as_ptr(record) as usize;
    if cache.record != Some(key) {
        cache.one_per_segment = Some(one_point_per_segment(prep, record.config.eval_delay));
        cache.record = Some(key);
    }
    let Some(one) = &cache.one_per_segment else {
        return;
    };
    let mut rows: Vec<(String, Color32, f64, f64, &PaKCurve)> = vec![(
        "one point per labelled segment".into(),
        ONE_COLOR,
        one.adjusted.f1,
        one.pointwise.f1,
        &one.pa_k,
    )];
    if let Some(c) = &record.baselines.chance {
        rows.push((
            format!("random scores (best of every threshold, {} draws)", c.draws),
            CHANCE_COLOR,
            c.best_f1,
            c.best_f1_pointwise,
            &c.best_pa_k,
        ));
    }
    rows.push((
        "this model (best of every threshold)".into(),
        MODEL_COLOR,
        model.best.best_f1.f1,
        model.best.best_f1_pointwise.f1,
        &model.best_pa_k,
    ));
    egui::Grid::new("pa-lesson").striped(true).show(ui, |ui| {
        for h in [
            "detector",
            "point-adjusted F1",
            "point-wise F1",
            "PA%K area",
        ] {
            ui.strong(h);
        }
        ui.end_row();
        for (name, color, adjusted, pointwise, curve) in &rows {
            ui.colored_label(*color, name);
            ui.label(format!("{adjusted:.3}"));
            ui.label(format!("{pointwise:.3}"));
            ui.label(format!("{:.3}", curve.area));
            ui.end_row();
        }
    });
    let legend: Vec<(&str, Color32)> = rows.iter().map(|r| (r.0.as_str(), r.1)).collect();
    super::widgets::legend_ui(ui, &legend);
    super::baselines::pa_k_plot("pa-lesson-curves", 220.0).show(ui, |plot| {
        for (name, color, _, _, curve) in &rows {
            let points = super::baselines::pa_k_points(curve);
            plot.line(Line::new(name.clone(), points).color(*color).width(2.0));
        }
    });
}
