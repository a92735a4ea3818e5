//! The loss panel: total loss (training and validation) and each ELBO term over steps, on plots
//! that share their x axis.

use super::widgets::legend_ui;
use super::widgets::{MAX_POINTS, bucketed};
use crate::history::{History, StepStats};
use egui::{Color32, Ui};
use egui_plot::{FilledArea, Line, Plot, PlotPoints, Points};

/// Colours of the terms, shared with the teaching chart.
pub const RECON_COLOR: Color32 = super::palette::SKY_BLUE;
/// beta * log p(z).
pub const PRIOR_COLOR: Color32 = super::palette::ORANGE;
/// -lambda * log q(z|x).
pub const ENTROPY_COLOR: Color32 = super::palette::BLUISH_GREEN;

/// The validation loss (Okabe-Ito reddish purple).
const VALID_COLOR: Color32 = super::palette::REDDISH_PURPLE;

/// Bucket averages of the three ELBO terms: (steps, recon, prior, entropy).
fn term_buckets(steps: &[StepStats]) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let bucket = steps.len().div_ceil(MAX_POINTS / 4).max(1);
    let mut out = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for c in steps.chunks(bucket) {
        let n = c.len() as f64;
        out.0.push(c.iter().map(|s| s.step as f64).sum::<f64>() / n);
        out.1.push(c.iter().map(|s| s.terms.recon).sum::<f64>() / n);
        out.2.push(c.iter().map(|s| s.terms.prior).sum::<f64>() / n);
        out.3
            .push(c.iter().map(|s| s.terms.entropy).sum::<f64>() / n);
    }
    out
}

/// The teaching chart: the ELBO stacked from its terms, so its top edge is L itself.
fn stacked_elbo_ui(steps: &[StepStats], ui: &mut Ui) {
    let (x, recon, prior, entropy) = term_buckets(steps);
    let zero = vec![0.0; x.len()];
    let after_prior: Vec<f64> = recon.iter().zip(&prior).map(|(r, p)| r + p).collect();
    let elbo: Vec<f64> = after_prior
        .iter()
        .zip(&entropy)
        .map(|(a, e)| a + e)
        .collect();
    ui.label(
        "Stacked from 0: the reconstruction term, then β·log p(z) (negative: the pull towards the prior), then \
         −λ·log q(z|x) (the entropy that keeps each posterior wide). The top edge is the ELBO L, which training raises.",
    );
    let edge = ui.visuals().strong_text_color();
    legend_ui(
        ui,
        &[
            ("reconstruction Σα log p(x|z)", RECON_COLOR),
            ("β log p(z)", PRIOR_COLOR),
            ("−λ log q(z|x)", ENTROPY_COLOR),
            ("ELBO L (top edge)", edge),
        ],
    );
    Plot::new("elbo-stack")
        .height((ui.available_height() - 8.0).max(200.0))
        .x_axis_label("step")
        .y_axis_label("ELBO, stacked")
        .show(ui, |plot| {
            plot.add(
                FilledArea::new("reconstruction Σα log p(x|z)", &x, &zero, &recon)
                    .fill_color(RECON_COLOR.gamma_multiply(0.5)),
            );
            plot.add(
                FilledArea::new("β log p(z)", &x, &recon, &after_prior)
                    .fill_color(PRIOR_COLOR.gamma_multiply(0.6)),
            );
            plot.add(
                FilledArea::new("−λ log q(z|x)", &x, &after_prior, &elbo)
                    .fill_color(ENTROPY_COLOR.gamma_multiply(0.6)),
            );
            let top: PlotPoints = x.iter().zip(&elbo).map(|(&x, &y)| [x, y]).collect();
            plot.line(Line::new("ELBO L", top).color(edge).width(1.5));
        });
}

/// Draws the loss panel for a run's `history`; `teaching` switches to the stacked ELBO chart.
pub fn loss_ui(ui: &mut Ui, history: &History, teaching: &mut bool) {
    ui.horizontal(|ui| {
        ui.strong("Loss");
        ui.checkbox(teaching, "teaching view").on_hover_text(
            "Show the ELBO as a stacked chart of its terms, and explanations beside the controls",
        );
    });
    let steps = &history.steps;
    if *teaching && !steps.is_empty() {
        stacked_elbo_ui(steps, ui);
        return;
    }
    if steps.is_empty() {
        ui.label("The total loss and each ELBO term stream in here while training.");
        return;
    }
    if let Some(last) = steps.last() {
        let t = last.terms;
        ui.label(format!(
            "step {}: loss {:.2} = −(recon {:.2} + prior {:.2} + entropy {:.2}) + L2 {:.3}",
            last.step, t.total, t.recon, t.prior, t.entropy, t.l2
        ));
    }
    let link = egui::Id::unique("loss-link");
    let train_color = ui.visuals().text_color();
    legend_ui(
        ui,
        &[
            ("train loss", train_color),
            ("validation loss", VALID_COLOR),
            ("new best (kept)", VALID_COLOR),
        ],
    );
    let h = (ui.available_height() - 40.0).max(200.0) / 2.0;
    Plot::new("loss-total")
        .height(h)
        .link_axis(link, [true, false])
        .link_cursor(link, [true, false])
        .y_axis_label("loss")
        .show(ui, |plot| {
            plot.line(Line::new("train loss", bucketed(steps, |t| t.total)).color(train_color));
            let valid: PlotPoints = history
                .validations
                .iter()
                .map(|v| [v.step as f64, v.terms.total])
                .collect();
            plot.line(Line::new("validation loss", valid).color(VALID_COLOR));
            let best: PlotPoints = history
                .validations
                .iter()
                .filter(|v| v.best)
                .map(|v| [v.step as f64, v.terms.total])
                .collect();
            plot.points(
                Points::new("new best (kept)", best)
                    .radius(3.0)
                    .color(VALID_COLOR),
            );
        });
    legend_ui(
        ui,
        &[
            ("reconstruction Σα log p(x|z)", RECON_COLOR),
            ("β log p(z)", PRIOR_COLOR),
            ("−λ log q(z|x)", ENTROPY_COLOR),
        ],
    );
    Plot::new("loss-terms")
        .height(h)
        .link_axis(link, [true, false])
        .link_cursor(link, [true, false])
        .x_axis_label("step")
        .y_axis_label("ELBO terms")
        .show(ui, |plot| {
            plot.line(
                Line::new("reconstruction Σα log p(x|z)", bucketed(steps, |t| t.recon))
                    .color(RECON_COLOR),
            );
            plot.line(Line::new("β log p(z)", bucketed(steps, |t| t.prior)).color(PRIOR_COLOR));
            plot.line(
                Line::new("−λ log q(z|x)", bucketed(steps, |t| t.entropy)).color(ENTROPY_COLOR),
            );
        });
}
