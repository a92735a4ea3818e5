//! The reconstruction view: why a point scored as it did. The window ending at the point beside
//! the decoder's reconstruction of it (its mean with 1 and 3 sigma bands over the z samples),
//! each point's log-likelihood, and the last point's score against the threshold; missing
//! points and what MCMC imputed for them, iteration by iteration.

use super::loader::Inspection;
use super::widgets::{format_time, legend_ui};
use crate::data::Prepared;
use egui::{Color32, Ui};
use egui_plot::{Bar, BarChart, Line, MarkerShape, Plot, PlotPoints, Points, Polygon};

const INPUT_COLOR: Color32 = super::palette::SKY_BLUE;
const MEAN_COLOR: Color32 = super::palette::BLUISH_GREEN;
const BAND_1: Color32 = Color32::from_rgba_premultiplied(0, 70, 50, 90);
const BAND_3: Color32 = Color32::from_rgba_premultiplied(0, 40, 30, 50);
const MISSING_COLOR: Color32 = super::palette::YELLOW;
const LAST_COLOR: Color32 = super::palette::VERMILLION;

/// Draws the reconstruction view of `inspection` (a window of `prep`), flagged at `threshold`.
pub fn reconstruction_ui(
    ui: &mut Ui,
    inspection: Option<&mut Inspection>,
    prep: Option<&Prepared>,
    threshold: f64,
) {
    let (Some(inspection), Some(prep)) = (inspection, prep) else {
        ui.label("Click a point of the series (or of the latent space) after a run to see its window beside the model's reconstruction of it: why it scored as it did.");
        return;
    };
    let r = &inspection.window;
    let w = r.input.len();
    if r.end >= prep.len() || w != prep.window {
        ui.label("This reconstruction belongs to other data than the series loaded now.");
        return;
    }
    let start = r.end + 1 - w;
    let flagged = !r.missing[w - 1] && r.score >= threshold;
    ui.horizontal_wrapped(|ui| {
        ui.strong(format!(
            "Window ending {} (point {})",
            format_time(prep, r.end),
            r.end
        ));
        ui.label(format!(
            "score {:.3} {} threshold {:.3}: {}",
            r.score,
            if r.score >= threshold { "≥" } else { "<" },
            threshold,
            if flagged { "flagged" } else { "not flagged" }
        ));
        ui.label(if prep.labels[r.end] == 1 {
            "· labelled anomaly"
        } else {
            "· labelled normal"
        });
    });
    ui.label(format!(
        "The score is -log p(x_last | z) averaged over {} samples of z ~ q(z|x): the last point's bar below. Points far outside the bands cost log-likelihood.",
        inspection.record.config.n_z
    ));
    // The window as MCMC left it after the chosen iteration (0: as given).
    let iterations = r.imputed.len();
    if iterations > 0 {
        ui.add(
            egui::Slider::new(&mut inspection.mcmc_shown, 0..=iterations)
                .text("MCMC iteration (0: as given)"),
        );
    }
    let shown: &[f32] = match inspection.mcmc_shown {
        0 => &r.input,
        i => &r.imputed[i.min(iterations) - 1],
    };
    let x = |i: usize| (start + i) as f64;
    // Back to the file's units.
    let raw = |v: f32| v as f64 * prep.std + prep.mean;
    legend_ui(
        ui,
        &[
            ("input", INPUT_COLOR),
            ("missing (imputed value)", MISSING_COLOR),
            ("reconstruction mean", MEAN_COLOR),
            ("±1 σ", Color32::from_rgb(0, 110, 80)),
            ("±3 σ", Color32::from_rgb(0, 70, 50)),
            ("last point", LAST_COLOR),
        ],
    );
    let height = (ui.available_height() * 0.6).max(140.0);
    let link = egui::Id::unique("reconstruction-link");
    Plot::new("reconstruction")
        .height(height)
        .link_axis(link, [true, false])
        .y_axis_label("value")
        .allow_scroll(false)
        .show(ui, |plot| {
            // A band is drawn as one quad per step (each convex, as egui fills polygons).
            for (k, color) in [(3.0, BAND_3), (1.0, BAND_1)] {
                let upper = |i: usize| [x(i), raw(r.mean[i] + k * r.std[i])];
                let lower = |i: usize| [x(i), raw(r.mean[i] - k * r.std[i])];
                for i in 0..w.saturating_sub(1) {
                    let quad = vec![upper(i), upper(i + 1), lower(i + 1), lower(i)];
                    plot.polygon(
                        Polygon::new(format!("±{k} σ"), PlotPoints::new(quad))
                            .fill_color(color)
                            .stroke(egui::Stroke::NONE),
                    );
                }
            }
            let mean: PlotPoints = (0..w).map(|i| [x(i), raw(r.mean[i])]).collect();
            plot.line(
                Line::new("reconstruction mean", mean)
                    .color(MEAN_COLOR)
                    .width(1.5),
            );
            let input: PlotPoints = (0..w).map(|i| [x(i), raw(shown[i])]).collect();
            plot.line(Line::new("input", input).color(INPUT_COLOR).width(1.0));
            let missing: PlotPoints = (0..w)
                .filter(|&i| r.missing[i])
                .map(|i| [x(i), raw(shown[i])])
                .collect();
            plot.points(
                Points::new("missing", missing)
                    .shape(MarkerShape::Cross)
                    .radius(4.0)
                    .color(MISSING_COLOR),
            );
            plot.points(
                Points::new("last point", vec![[x(w - 1), raw(shown[w - 1])]])
                    .radius(5.0)
                    .color(LAST_COLOR),
            );
        });
    Plot::new("reconstruction-loglik")
        .height((ui.available_height() - 4.0).max(100.0))
        .link_axis(link, [true, false])
        .y_axis_label("log p(x|z)")
        .allow_scroll(false)
        .show(ui, |plot| {
            let bars: Vec<Bar> = (0..w)
                .map(|i| {
                    let color = if i == w - 1 {
                        LAST_COLOR
                    } else if r.missing[i] {
                        MISSING_COLOR
                    } else {
                        INPUT_COLOR
                    };
                    Bar::new(x(i), r.log_likelihood[i] as f64)
                        .width(0.8)
                        .fill(color)
                })
                .collect();
            plot.bar_chart(BarChart::new("log-likelihood per point", bars));
        });
}
