//! Lessons: the experiments of the DONUT study as guided lessons. Each states its question, runs
//! its variants through the sweep engine (the Sweeps window shows the same runs), says what to
//! watch, shows each variant's latent space as the runs finish, and when done sets the measured
//! best F1 beside the published one.

use super::projection::ColorBy;
use super::sweeps::{SweepPanel, gallery_ui};
use crate::config::DonutConfig;
use crate::data::{Prepared, RawSeries};
use crate::pipeline::RunRecord;
use crate::sweep::table;
use egui::{RichText, Ui};
use std::sync::Arc;

/// One lesson.
pub struct Lesson {
    /// Its title.
    pub title: &'static str,
    /// The question it answers.
    pub question: &'static str,
    /// The sweep preset that runs it.
    pub preset: &'static str,
    /// What to look at while and after it runs.
    pub watch: &'static str,
    /// The published best F1 (point-adjusted, DONUT "cpu" series, K = 3, DONUT.md section 7)
    /// of each variant, in the preset's order; None where the study gives no figure.
    pub published: &'static [Option<f64>],
    /// What colours the lesson's latent gallery at first.
    pub color_by: ColorBy,
}

/// The lessons, in teaching order.
pub const LESSONS: [Lesson; 8] = [
    Lesson {
        title: "M-ELBO or the plain ELBO",
        question: "A plain VAE maximises the ELBO over every point of a window, anomalies and gaps included. DONUT's M-ELBO leaves anomalous and missing points out of the reconstruction term and weighs the prior by the window's share of normal points. Does training on the normal points only make anomalies stand out?",
        preset: "objective",
        watch: "The table: on server_res_eth1out_curve_61 (197 labelled points in its training part; K = 3, 3 seeds) we measured M-ELBO .735 ± .027, plain ELBO .690 ± .015, plain VAE .694 ± .076; on cpu4, whose test part holds only 4 anomaly segments, the plain ELBO came out ahead (.791 vs .660), so run more seeds before you conclude. The gallery is coloured by labels: windows holding an anomaly (yellow) lie on the same surface as the normal ones under every objective; the difference is in what the decoder learns. Train one run of each in the main view, pin the first and open Compare: on curve_61 (128 epochs, K = 3) the plain ELBO ended at a training loss of -67.5 against the M-ELBO's -107.7, its reconstruction term lower all along: it must also explain the anomalies it cannot reconstruct. The study reports DONUT's figure only.",
        published: &[Some(0.642), None, None],
        color_by: ColorBy::Label,
    },
    Lesson {
        title: "What the M-ELBO's parts do",
        question: "DONUT trains with a modified ELBO: missing and anomalous points are left out of the reconstruction term, missing points are injected at random, and MCMC imputes missing points when scoring. How much does each part bring?",
        preset: "ablation",
        watch: "Watch the reconstruction term in the Loss tab (it is the part that moves) and, in the Sweeps gallery, how tightly the latent loops close when injection is on. The figures move little on a short, clean series: the study's gaps come from ten runs on a series with missing points.",
        published: &[Some(0.642), Some(0.613), Some(0.574), Some(0.588)],
        color_by: ColorBy::TimeOfDay,
    },
    Lesson {
        title: "Entropy weight: from a unit ball to a spread",
        question: "The entropy term -log q(z|x) keeps the posterior wide. With weight 0 nothing keeps it wide; with weight 1 it is the ELBO. What does the latent space look like in between?",
        preset: "entropy-weight",
        watch: "In the Sweeps gallery, weight 0 squeezes the windows onto a thin curve; as the weight rises they spread into a ball around the prior. The ELBO terms chart (teaching view) shows the entropy term's share.",
        published: &[
            Some(0.682),
            Some(0.657),
            Some(0.666),
            Some(0.700),
            Some(0.602),
            Some(0.640),
        ],
        color_by: ColorBy::TimeOfDay,
    },
    Lesson {
        title: "A fixed prior weight beta",
        question: "The M-ELBO weighs log p(z) by the share of normal points in each window. What if beta is fixed instead, from 0 (no prior) to 0.9?",
        preset: "fixed-beta",
        watch: "With beta 0 nothing pulls the latent means to the origin: watch the gallery's clouds drift and grow. The F1 barely depends on it: the study's figures scatter between .59 and .69 with no trend.",
        published: &[Some(0.648), Some(0.686), Some(0.623), Some(0.646)],
        color_by: ColorBy::TimeOfDay,
    },
    Lesson {
        title: "Missing-point injection rate",
        question: "Injection hides a share of the training points each epoch so the model learns to reconstruct without them. How far can it go?",
        preset: "injection-rate",
        watch: "The reconstruction loss rises with the rate (less to reconstruct from); at 0.5 and more the model can no longer tell normal from abnormal. The study reports F1 falling to .06 at 0.8.",
        published: &[None, None, None, None, None, Some(0.06)],
        color_by: ColorBy::TimeOfDay,
    },
    Lesson {
        title: "Latent dimension K",
        question: "How many latent dimensions does a daily-seasonal KPI need? The study found 3 too few for a wider, deeper network.",
        preset: "latent-dim",
        watch: "The PCA axes' explained variance (in the axis names) shows how many directions the model really uses; with K = 3 the daily loop is squeezed.",
        published: &[Some(0.637), Some(0.833), Some(0.826), Some(0.797)],
        color_by: ColorBy::TimeOfDay,
    },
    Lesson {
        title: "Gaussian or Student-t latent",
        question: "A heavy-tailed latent (Student-t, 10 degrees of freedom) lets rare windows sit far out. Does it help detection?",
        preset: "latent-dist",
        watch: "Compare the two galleries: the Student-t cloud has a denser core and a few far points. The study found it slightly worse (.593 vs .642).",
        published: &[Some(0.642), Some(0.593)],
        color_by: ColorBy::TimeOfDay,
    },
    Lesson {
        title: "Dense or 1-D CNN encoder",
        question: "A convolutional encoder sees local shapes (a spike, a step) wherever they sit in the window. Does it detect better than DONUT's fully connected one?",
        preset: "encoder",
        watch: "The CNN trains slower per window (the status bar's windows/s). The study found it better on cpu: .714 vs .642.",
        published: &[Some(0.714), Some(0.642)],
        color_by: ColorBy::TimeOfDay,
    },
];

/// The lesson panel's state.
#[derive(Default)]
pub struct LessonPanel {
    /// The lesson shown.
    pub chosen: usize,
    /// The lesson whose runs the sweep engine holds, if any.
    pub running: Option<usize>,
    /// Seeds per variant.
    pub seeds: u64,
    /// The point-adjustment lesson's figures.
    pub point_adjustment: super::pa_lesson::PaLessonCache,
}

/// The index of the point-adjustment lesson, after the sweep lessons.
pub const POINT_ADJUSTMENT_LESSON: usize = LESSONS.len();

/// Draws the lessons: the list, the chosen lesson's story, its runs and the figures.
pub fn lessons_ui(
    ui: &mut Ui,
    panel: &mut LessonPanel,
    sweeps: &mut SweepPanel,
    data: Option<(&Arc<RawSeries>, Option<&Arc<Prepared>>)>,
    base: &DonutConfig,
    record: Option<&Arc<RunRecord>>,
) {
    sweeps.poll();
    panel.seeds = panel.seeds.max(1);
    ui.horizontal_wrapped(|ui| {
        for (i, lesson) in LESSONS.iter().enumerate() {
            ui.selectable_value(&mut panel.chosen, i, lesson.title);
        }
        ui.selectable_value(
            &mut panel.chosen,
            POINT_ADJUSTMENT_LESSON,
            "How point adjustment flatters F1",
        );
    });
    ui.separator();
    if panel.chosen == POINT_ADJUSTMENT_LESSON {
        let prep = data.and_then(|(_, prep)| prep);
        super::pa_lesson::pa_lesson_ui(ui, &mut panel.point_adjustment, prep, record);
        return;
    }
    let lesson = &LESSONS[panel.chosen.min(LESSONS.len() - 1)];
    ui.label(RichText::new(lesson.title).heading());
    ui.label(lesson.question);
    ui.label(
        RichText::new(format!("What to watch: {}", lesson.watch))
            .color(ui.visuals().weak_text_color()),
    );
    let mine = panel.running == Some(panel.chosen);
    let running = sweeps.is_running();
    ui.horizontal(|ui| {
        ui.add(egui::Slider::new(&mut panel.seeds, 1..=10).text("seeds"));
        let start = ui
            .add_enabled(!running && data.is_some(), egui::Button::new("Run lesson"))
            .on_hover_text("Run every variant over the seeds with the current settings (epochs included) as the base, in the background");
        if start.clicked()
            && let Some((raw, prep)) = data
        {
            sweeps.preset = Some(lesson.preset);
            sweeps.seeds = panel.seeds;
            sweeps.gallery_color = lesson.color_by;
            sweeps.start(ui.ctx(), raw.clone(), prep.cloned(), base.clone());
            panel.running = Some(panel.chosen);
        }
        if ui
            .add_enabled(running && mine, egui::Button::new("Cancel"))
            .clicked()
        {
            sweeps.cancel();
        }
    });
    if !mine {
        ui.label("Not run yet in this session. The study's figures are for the DONUT \"cpu\" series, K = 3 (set the latent dimension to 3 to compare like with like), 10 runs.");
        return;
    }
    let done = sweeps.runs.len();
    if running {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label(format!("{done} of {} runs done", sweeps.planned));
        });
    } else {
        ui.label(format!("Done: {done} runs."));
    }
    for e in &sweeps.errors {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
    let rows = table(&sweeps.variants, &sweeps.runs);
    egui::Grid::new("lesson-figures")
        .striped(true)
        .show(ui, |ui| {
            ui.strong("variant");
            ui.strong("measured best F1 (mean ± std, runs)");
            ui.strong("published");
            ui.end_row();
            for (i, row) in rows.iter().enumerate() {
                ui.label(&row.variant.label);
                if row.best_f1.n > 0 {
                    ui.label(format!(
                        "{:.3} ± {:.3} ({})",
                        row.best_f1.mean, row.best_f1.std, row.best_f1.n
                    ));
                } else {
                    ui.weak("…");
                }
                match lesson.published.get(i).copied().flatten() {
                    Some(f) => ui.label(format!("{f:.3}")),
                    None => ui.weak("—"),
                };
                ui.end_row();
            }
        });
    ui.separator();
    // As many plots across as fit, each between 160 and 280 points wide.
    let across = sweeps.variants.len().max(1) as f32;
    let side = ((ui.available_width() - 12.0 * across) / across).clamp(160.0, 280.0);
    gallery_ui(sweeps, ui, egui::vec2(side, side * 0.85));
}
