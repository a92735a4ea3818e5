//! The score tail of the Detection tab: the histogram of the normal scores the label-free
//! thresholds are taken on, the generalised Pareto tail fitted above their initial quantile
//! (peaks over threshold), and the risk q as a control that moves the POT threshold at once
//! (the same fit, no retraining).

use super::commands::AppCommand;
use crate::data::{Part, Prepared};
use crate::eval::pot::{self, PotFit};
use crate::eval::{Threshold, ThresholdRule};
use crate::pipeline::RunRecord;
use egui::{Color32, Ui};
use egui_plot::{Bar, BarChart, Line, Plot, PlotPoints, VLine};
use std::sync::Arc;

/// Bins of the histogram.
const BINS: usize = 48;

/// The histogram starts at this quantile of the normal scores: the body below it is one tall bar
/// that would flatten the tail.
const FROM_QUANTILE: f64 = 0.9;

/// The fitted tail of one record and its histogram (computed once per record).
#[derive(Default)]
pub struct TailCache {
    record: Option<Arc<RunRecord>>,
    view: Option<Result<TailView, String>>,
    /// The risk of the control (None: the run's own).
    risk: Option<f64>,
}

/// What the tail panel draws.
struct TailView {
    fit: PotFit,
    /// The initial quantile (POT's level) and the part the scores come from.
    level: f64,
    part: Part,
    /// Left edge, width and count of each bin.
    bins: Vec<(f64, f64, usize)>,
    /// Normal scores above the histogram's start.
    shown: usize,
}

impl TailView {
    /// The fit and histogram of `record`'s normal scores on the part its label-free rules use.
    fn new(prep: &Prepared, record: &RunRecord) -> Result<Self, String> {
        let defaults = crate::config::DonutConfig::default();
        let (level, risk) = record
            .thresholds
            .iter()
            .find_map(|t| match t.rule {
                ThresholdRule::Pot { risk, level, .. } => Some((level, risk)),
                _ => None,
            })
            .unwrap_or((defaults.pot_level, defaults.pot_risk));
        // The run keeps the normal scores its label-free rules were taken on (sorted), with
        // their part in those rules; a run without them has them computed once here.
        let rules_part = record.thresholds.iter().find_map(|t| match t.rule {
            ThresholdRule::Pot { part, .. } | ThresholdRule::AlarmRate { part, .. } => Some(part),
            _ => None,
        });
        let computed;
        let (part, normal): (Part, &[f64]) = match rules_part {
            Some(part) if !record.reference_scores.is_empty() => (part, &record.reference_scores),
            _ => {
                computed = crate::pipeline::alarm_rate_scores(prep, &record.scores);
                (computed.0, &computed.1)
            }
        };
        let fit = pot::fit(normal, level, risk)
            .map_err(|e| format!("No tail of the {} part's normal scores: {e}.", part.name()))?;
        let start = normal[((normal.len() as f64 * FROM_QUANTILE) as usize).min(normal.len() - 1)];
        let end = normal[normal.len() - 1].max(fit.threshold);
        let width = ((end - start) / BINS as f64).max(f64::EPSILON);
        let mut counts = vec![0usize; BINS];
        let mut shown = 0;
        for &s in normal.iter().filter(|&&s| s >= start) {
            counts[(((s - start) / width) as usize).min(BINS - 1)] += 1;
            shown += 1;
        }
        let bins = counts
            .into_iter()
            .enumerate()
            .map(|(i, c)| (start + i as f64 * width, width, c))
            .collect();
        Ok(Self {
            fit,
            level,
            part,
            bins,
            shown,
        })
    }

    /// The rule of the threshold at `risk`.
    fn rule(&self, risk: f64) -> ThresholdRule {
        ThresholdRule::Pot {
            risk,
            level: self.level,
            part: self.part,
        }
    }
}

/// The colour of the fitted tail (Okabe-Ito bluish green).
const TAIL_COLOR: Color32 = super::palette::BLUISH_GREEN;

/// The colour of the POT threshold (Okabe-Ito vermillion, as the threshold flagging now).
const THRESHOLD_COLOR: Color32 = super::palette::VERMILLION;

/// Draws the score tail of `record`; moving q (or "flag here") sends the POT threshold at that
/// risk.
pub fn tail_ui(
    ui: &mut Ui,
    prep: &Prepared,
    record: &Arc<RunRecord>,
    flagging: Threshold,
    cache: &mut TailCache,
    commands: &mut Vec<AppCommand>,
) {
    if !cache
        .record
        .as_ref()
        .is_some_and(|r| Arc::ptr_eq(r, record))
    {
        cache.view = Some(TailView::new(prep, record));
        cache.record = Some(record.clone());
        cache.risk = None;
    }
    let view = match cache.view.as_ref() {
        Some(Ok(view)) => view,
        Some(Err(why)) => {
            ui.label(why.as_str());
            return;
        }
        None => return,
    };
    let fit = view.fit;
    let mut risk = cache.risk.unwrap_or(fit.risk);
    ui.label(format!(
        "Peaks over threshold on the {} part: {} normal scores, {} above their {:.1} % quantile {:.3}; the tail fitted to them has shape {:.3} and scale {:.3}.",
        view.part.name(),
        fit.n,
        fit.peaks,
        view.level * 100.0,
        fit.initial_threshold,
        fit.gamma,
        fit.sigma
    ));
    let moved = ui
        .horizontal(|ui| {
            let slider = ui
                .add(
                    egui::Slider::new(&mut risk, 1e-6..=0.1)
                        .logarithmic(true)
                        .text("risk q")
                        .custom_formatter(|v, _| format!("{v:.1e}")),
                )
                .on_hover_text(
                    "The share of normal scores the fitted tail expects above the threshold: smaller flags less",
                );
            let flag = ui
                .button("Flag at this tail")
                .on_hover_text("Flag points at the POT threshold of this risk");
            slider.changed() || flag.clicked()
        })
        .inner;
    let at = fit.at_risk(risk).ok();
    if moved {
        cache.risk = Some(risk);
        if let Some(at) = at {
            commands.push(AppCommand::SetThreshold(Threshold {
                value: at.threshold,
                rule: view.rule(risk),
            }));
        }
    }
    match at {
        Some(at) => ui.label(format!(
            "At q = {risk:.1e} the tail puts the threshold at {:.3} (about {:.1} of every 10,000 normal points above it).",
            at.threshold,
            risk * 1e4
        )),
        None => ui.label("No finite threshold at this risk."),
    };
    let legend = [
        ("normal scores (the top 10 %)", super::palette::SKY_BLUE),
        ("fitted tail (expected count per bin)", TAIL_COLOR),
        ("initial quantile", Color32::from_gray(150)),
        ("POT threshold at q", THRESHOLD_COLOR),
        ("flagging now", super::palette::ORANGE),
    ];
    super::widgets::legend_ui(ui, &legend);
    let bars: Vec<Bar> = view
        .bins
        .iter()
        .map(|&(left, width, count)| {
            Bar::new(left + width / 2.0, count as f64)
                .width(width * 0.95)
                .fill(super::palette::SKY_BLUE)
        })
        .collect();
    // The tail's expected count in each bin above the initial quantile.
    let expected: Vec<[f64; 2]> = view
        .bins
        .iter()
        .filter(|&&(left, width, _)| left + width > fit.initial_threshold)
        .map(|&(left, width, _)| {
            let from = left.max(fit.initial_threshold);
            let count = (fit.tail_share(from) - fit.tail_share(left + width)) * fit.n as f64;
            [left + width / 2.0, count]
        })
        .collect();
    let height = ui.available_height().clamp(120.0, 220.0);
    Plot::new("score-tail")
        .height(height)
        .x_axis_label("anomaly score")
        .y_axis_label(format!("points (of {})", view.shown))
        .include_y(0.0)
        .allow_scroll(false)
        .show(ui, |plot| {
            plot.bar_chart(BarChart::new("normal scores", bars));
            plot.line(
                Line::new("fitted tail", PlotPoints::new(expected))
                    .color(TAIL_COLOR)
                    .width(2.0),
            );
            plot.vline(
                VLine::new("initial quantile", fit.initial_threshold)
                    .color(Color32::from_gray(150))
                    .style(egui_plot::LineStyle::dashed_loose()),
            );
            if let Some(at) = at {
                plot.vline(VLine::new("POT threshold", at.threshold).color(THRESHOLD_COLOR));
            }
            if flagging.value.is_finite() {
                plot.vline(
                    VLine::new("flagging now", flagging.value)
                        .color(super::palette::ORANGE)
                        .style(egui_plot::LineStyle::dotted_dense()),
                );
            }
        });
}
