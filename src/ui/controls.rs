//! The controls panel: run buttons, the M-ELBO with its current weights, and a labelled,
//! explained control for every setting.

use super::commands::AppCommand;
use crate::config::setting_range;
use crate::config::{
    BackendKind, BetaMode, DonutConfig, DuplicatePolicy, EncoderKind, EntropyMode, GradientEngine,
    LatentDist, Objective, ThresholdChoice,
};
use crate::worker::Phase;
use egui::{RichText, Slider, Ui};

/// A slider over the numeric setting `key`: its span and scale from the one ranges table
/// ([`crate::config::SETTING_RANGES`]), and no clamping, so that a value outside the span
/// (any value `validate()` allows, from `--set`, a config file or a saved run) is shown as it
/// is and never rewritten; an edit outside the allowed range is undone by [`controls_ui`].
fn setting_slider<'a, N: egui::emath::Numeric>(value: &'a mut N, key: &str) -> Slider<'a> {
    let range = setting_range(key);
    let (lo, hi) = range.map_or((0.0, 1.0), |r| r.slider);
    Slider::new(value, N::from_f64(lo)..=N::from_f64(hi))
        .logarithmic(range.is_some_and(|r| r.logarithmic))
        .clamping(egui::SliderClamping::Never)
}

/// Undoes every edit of `c` (since `before`) that leaves its setting's allowed range.
fn undo_edits_out_of_range(c: &mut DonutConfig, before: &DonutConfig) {
    for change in before.changes(c) {
        let value: Option<f64> = change.pair.right.parse().ok();
        let allowed = match (setting_range(&change.pair.key), value) {
            (Some(r), Some(v)) => r.contains(v),
            _ => true,
        };
        if !allowed {
            let _ = c.set(&format!("{}={}", change.pair.key, change.pair.left));
        }
    }
}

/// Draws the controls over `config`; a change queues [`AppCommand::SettingsChanged`] after the
/// frame's edits. `phase` is the current run's, `can_train` whether the settings fit the data.
pub fn controls_ui(
    ui: &mut Ui,
    c: &mut DonutConfig,
    teaching: bool,
    phase: Phase,
    can_train: bool,
    step_count: &mut usize,
    commands: &mut Vec<AppCommand>,
) {
    let before = c.clone();
    run_buttons_ui(ui, phase, can_train, commands);
    step_buttons_ui(ui, can_train, step_count, commands);
    ui.separator();
    formula_ui(c, ui);
    ui.separator();
    objective_ui(c, ui, teaching);
    ui.separator();
    model_ui(c, ui);
    ui.separator();
    training_ui(c, ui);
    ui.separator();
    scoring_ui(c, ui);
    ui.separator();
    if ui
        .button("Default settings")
        .on_hover_text("Every setting back to DONUT's defaults")
        .clicked()
    {
        *c = DonutConfig::default();
    }
    undo_edits_out_of_range(c, &before);
    if *c != before {
        commands.push(AppCommand::SettingsChanged { before });
    }
}

fn run_buttons_ui(ui: &mut Ui, phase: Phase, can_train: bool, commands: &mut Vec<AppCommand>) {
    ui.horizontal(|ui| {
        if ui
            .add_enabled(
                can_train,
                egui::Button::new(RichText::new("Train").strong()),
            )
            .on_hover_text("Train a fresh model with these settings (restarts a run in progress)")
            .clicked()
        {
            commands.push(AppCommand::StartTraining);
        }
        let running = matches!(phase, Phase::Training | Phase::Paused);
        let paused = phase == Phase::Paused;
        if ui
            .add_enabled(
                running,
                egui::Button::new(if paused { "Resume" } else { "Pause" }),
            )
            .on_hover_text("Pause or resume between steps")
            .clicked()
        {
            commands.push(if paused {
                AppCommand::Resume
            } else {
                AppCommand::Pause
            });
        }
        if ui
            .add_enabled(phase != Phase::Idle, egui::Button::new("Stop"))
            .on_hover_text("Stop training: the best parameters so far are scored")
            .clicked()
        {
            commands.push(AppCommand::Stop);
        }
        if ui
            .button("Reset")
            .on_hover_text("Stop and clear the run: losses, latent space and scores")
            .clicked()
        {
            commands.push(AppCommand::Reset);
        }
    });
}

/// One step, or N steps, then a pause: to watch what a single batch does to the losses and the
/// latent space. With no run, a run starts (paused after its steps).
fn step_buttons_ui(
    ui: &mut Ui,
    can_train: bool,
    step_count: &mut usize,
    commands: &mut Vec<AppCommand>,
) {
    ui.horizontal(|ui| {
        if ui
            .add_enabled(can_train, egui::Button::new("1 step"))
            .on_hover_text("Take one optimisation step (one batch), then pause")
            .clicked()
        {
            commands.push(AppCommand::Step(1));
        }
        if ui
            .add_enabled(can_train, egui::Button::new("N steps"))
            .on_hover_text("Take N optimisation steps, then pause")
            .clicked()
        {
            commands.push(AppCommand::Step((*step_count).max(1)));
        }
        ui.add(
            egui::DragValue::new(step_count)
                .range(1..=10_000)
                .prefix("N = "),
        );
    });
}

fn weight_text(c: &DonutConfig) -> String {
    match (c.objective, c.beta_mode) {
        (Objective::Elbo, _) => "1".into(),
        (Objective::MElbo, BetaMode::Mean) => "β̄".into(),
        (Objective::MElbo, BetaMode::Fixed) => format!("{:.2}", c.beta_value),
    }
}

/// The objective with the current weights filled in.
fn formula_ui(c: &DonutConfig, ui: &mut Ui) {
    let beta = weight_text(c);
    let lambda = match c.entropy_mode {
        EntropyMode::One => "1".to_string(),
        EntropyMode::Fixed => format!("{:.2}", c.entropy_value),
        EntropyMode::Beta => format!("β ({beta})"),
    };
    let injected = c.injection_rate * 100.0;
    let (name, alpha, note) = match c.objective {
        Objective::MElbo => (
            "M-ELBO",
            "α_w ",
            format!(
                "α_w = 0 on anomalies, missing and injected points ({injected:.0} % injected per epoch); β̄ = the window's fraction of α = 1."
            ),
        ),
        Objective::Elbo => (
            "plain ELBO",
            "",
            format!(
                "Every point counts: anomalies, and missing and injected points ({injected:.0} % per epoch) as zeros."
            ),
        ),
    };
    ui.label(RichText::new(format!("Objective ({name}), per window")).strong());
    ui.label(
        RichText::new(format!(
            "L = Σ_w {alpha}log p(x_w|z) + {beta} · log p(z) − {lambda} · log q(z|x)"
        ))
        .monospace(),
    );
    ui.small(note);
}

/// A visible explanation, shown in the teaching view.
fn explain(ui: &mut Ui, teaching: bool, text: &str) {
    if teaching {
        // Body size, not small italics: read at the default window size, and on a projector.
        ui.label(RichText::new(text).color(ui.visuals().weak_text_color()));
    }
}

fn objective_ui(c: &mut DonutConfig, ui: &mut Ui, teaching: bool) {
    ui.label(RichText::new("Objective").strong());
    ui.horizontal(|ui| {
        ui.label("objective");
        ui.selectable_value(&mut c.objective, Objective::MElbo, "M-ELBO (DONUT)")
            .on_hover_text("Anomalous and missing points are left out of the reconstruction term (alpha = 0) and beta follows the beta mode");
        ui.selectable_value(&mut c.objective, Objective::Elbo, "plain ELBO")
            .on_hover_text("A plain VAE: every point counts in the reconstruction term, missing ones as the zeros they were filled with, and beta = 1");
    });
    explain(
        ui,
        teaching,
        "The plain ELBO asks the model to reconstruct anomalies and gaps too: it learns them, and they score as less anomalous. The M-ELBO trains on the normal points only.",
    );
    let melbo = c.objective == Objective::MElbo;
    ui.add_enabled_ui(melbo, |ui| {
    ui.horizontal(|ui| {
        ui.label("beta mode").on_hover_text("Weight of the prior term log p(z)");
        ui.selectable_value(&mut c.beta_mode, BetaMode::Mean, "M-ELBO (fraction normal)")
            .on_hover_text("beta = the window's fraction of normal points: windows full of anomalies pull less towards the prior");
        ui.selectable_value(&mut c.beta_mode, BetaMode::Fixed, "fixed beta");
    });
    ui.add_enabled(c.beta_mode == BetaMode::Fixed, setting_slider(&mut c.beta_value, "beta_value").text("beta"))
        .on_hover_text("Prior weight. 0: nothing pulls the latent means towards the origin, the cloud spreads out; 1: full pull towards N(0, I), a tighter ball");
    });
    explain(
        ui,
        teaching,
        "β·log p(z) pulls every latent code towards the origin. Lower β and watch the cloud expand and stretch; raise it and the cloud tightens into a ball around 0.",
    );
    ui.horizontal(|ui| {
        ui.label("entropy weight")
            .on_hover_text("Weight lambda of the entropy term -log q(z|x)");
        ui.selectable_value(&mut c.entropy_mode, EntropyMode::One, "1 (DONUT)");
        ui.selectable_value(&mut c.entropy_mode, EntropyMode::Fixed, "fixed lambda");
        ui.selectable_value(&mut c.entropy_mode, EntropyMode::Beta, "= beta")
            .on_hover_text("lambda = beta turns the KL term into beta * KL(q || p)");
    });
    ui.add_enabled(c.entropy_mode == EntropyMode::Fixed, setting_slider(&mut c.entropy_value, "entropy_value").text("lambda"))
        .on_hover_text("Entropy weight. Low values let q(z|x) shrink to a point: latent codes become sharp and the space fragments; 1 keeps each window's posterior wide and the space smooth");
    explain(
        ui,
        teaching,
        "−λ·log q(z|x) rewards uncertainty in each window's code. With λ near 0 the codes collapse to sharp points and neighbouring windows can land far apart; with λ = 1 they overlap into a smooth, ordered surface (the time-of-day ring).",
    );
    ui.add(setting_slider(&mut c.injection_rate, "injection_rate").text("missing injection rate"))
        .on_hover_text("Fraction of training points hidden (alpha = 0) each epoch. A little (0.01) teaches the decoder to fill gaps and sharpens detections; a lot (> 0.5) starves the model and F1 collapses");
    explain(
        ui,
        teaching,
        "Σ α·log p(x|z), the reconstruction term, only counts points with α = 1: injected points are hidden from it, so the model learns to reconstruct a window from its normal part.",
    );
}

fn model_ui(c: &mut DonutConfig, ui: &mut Ui) {
    ui.label(RichText::new("Model (changes restart the run)").strong());
    ui.horizontal(|ui| {
        ui.label("encoder").on_hover_text("Architecture of q(z|x)");
        ui.selectable_value(&mut c.encoder, EncoderKind::Dense, "dense")
            .on_hover_text("Fully connected layers, as in DONUT");
        ui.selectable_value(&mut c.encoder, EncoderKind::Cnn, "1-D CNN")
            .on_hover_text("Two convolutions (kernel 3) with max-pooling: sees local shapes, shift-tolerant; often a smoother latent space");
    });
    ui.horizontal(|ui| {
        ui.label("latent distribution").on_hover_text("Family of the prior and the posterior");
        ui.selectable_value(&mut c.latent_dist, LatentDist::Gaussian, "Gaussian");
        ui.selectable_value(&mut c.latent_dist, LatentDist::StudentT, "Student-t")
            .on_hover_text("Heavy tails (10 degrees of freedom): outlying windows can sit far from the origin at little cost");
    });
    ui.add(setting_slider(&mut c.latent_dim, "latent_dim").text("latent dimension K"))
        .on_hover_text("Size of z. 3 is what the 3-D panel shows directly; more dimensions capture more of the series (choose axes or PCA to view them)");
    ui.add(setting_slider(&mut c.window, "window").text("window W"))
        .on_hover_text("Points per window. 120 suits minutely/5-minute KPIs (10 h at 5 min); 24 suits hourly data. The first W-1 points of each part get no score");
    ui.add(setting_slider(&mut c.hidden_width, "hidden_width").text("hidden width"))
        .on_hover_text("Units of each hidden dense layer (100 in DONUT)");
    ui.add(setting_slider(&mut c.hidden_depth, "hidden_depth").text("hidden depth"))
        .on_hover_text("Hidden layers in the encoder and the decoder (2 in DONUT)");
    if c.encoder == EncoderKind::Cnn {
        ui.add(setting_slider(&mut c.cnn_channels, "cnn_channels").text("CNN channels"))
            .on_hover_text("Filters of each convolution");
    }
    ui.horizontal(|ui| {
        ui.label("backend").on_hover_text(
            "burn backend: flex (pure Rust, default) or ndarray (deprecated upstream)",
        );
        for b in BackendKind::ALL {
            ui.selectable_value(&mut c.backend, *b, b.name());
        }
    });
    ui.horizontal(|ui| {
        ui.label("gradients").on_hover_text(
            "How training differentiates the loss: fused (passes derived by hand for these networks, \
             several times faster on the CPU) or autodiff (burn's, on the backend above). Same \
             gradients up to rounding",
        );
        for g in GradientEngine::ALL {
            ui.selectable_value(&mut c.gradients, g, g.name());
        }
    });
}

fn training_ui(c: &mut DonutConfig, ui: &mut Ui) {
    ui.label(RichText::new("Training").strong());
    ui.add(setting_slider(&mut c.epochs, "epochs").text("epochs"))
        .on_hover_text("Passes over the training windows (256 in DONUT); applies to the next run");
    ui.add(setting_slider(&mut c.batch_size, "batch_size").text("batch size"))
        .on_hover_text("Windows per step (256 in DONUT); applies to the next run");
    ui.add(setting_slider(&mut c.learning_rate, "learning_rate").text("learning rate"))
        .on_hover_text(
            "Adam's step size before decay (1e-3); changes live. Too high and the loss diverges",
        );
    ui.add(
        setting_slider(&mut c.l2_weight, "l2_weight")
            .smallest_positive(1e-5)
            .text("L2 weight"),
    )
    .on_hover_text("Weight of the L2 penalty on the hidden layers' kernels (1e-3 in DONUT); applies to the next run");
    ui.add(setting_slider(&mut c.lr_decay, "lr_decay").text("learning-rate decay"))
        .on_hover_text("Factor applied to the learning rate every few epochs (0.75 in DONUT; 1 = no decay); applies to the next run");
    ui.add(setting_slider(&mut c.lr_decay_epochs, "lr_decay_epochs").text("epochs between decays"))
        .on_hover_text("Epochs between two decays of the learning rate (10 in DONUT)");
    ui.add(setting_slider(&mut c.seed, "seed").text("seed"))
        .on_hover_text("Seed of initialisation, shuffling, injection and sampling: the same seed and backend give the same run");
}

fn scoring_ui(c: &mut DonutConfig, ui: &mut Ui) {
    ui.label(RichText::new("Scoring").strong());
    ui.add(setting_slider(&mut c.mcmc_iterations, "mcmc_iterations").text("MCMC iterations"))
        .on_hover_text("Rounds of imputing missing points from the model before scoring (10; 0 = off): fewer false alarms next to gaps");
    ui.add(setting_slider(&mut c.n_z, "n_z").text("z samples (n_z)"))
        .on_hover_text("Samples of z averaged into each reconstruction probability (1024): more = smoother scores, slower scoring");
    ui.add(setting_slider(&mut c.alarm_rate, "alarm_rate").text("alarm rate"))
        .on_hover_text(
            "The label-free threshold flags this share of the normal validation points (0.01)",
        );
    ui.add(setting_slider(&mut c.pot_risk, "pot_risk").text("tail risk"))
        .on_hover_text(
            "Peaks over threshold: the probability that a normal point's score reaches the threshold, from a generalised Pareto tail fitted to the normal validation scores above their pot_level quantile",
        );
    ui.horizontal(|ui| {
        ui.label("flag at").on_hover_text(
            "Which threshold flags points after a run: best F1 on the validation labels (else peaks over threshold); auto (the validation labels only where they hold enough segments, else peaks over threshold); peaks over threshold (a tail fitted to the normal validation scores, no labels); the alarm rate; or best F1 on the test labels (the paper's upper bound: it uses the answers)",
        );
        for choice in ThresholdChoice::ALL {
            let name = match choice {
                ThresholdChoice::Validation => "validation",
                ThresholdChoice::Auto => "auto",
                ThresholdChoice::Pot => "tail (POT)",
                ThresholdChoice::AlarmRate => "alarm rate",
                ThresholdChoice::BestF1Test => "test (upper bound)",
            };
            ui.selectable_value(&mut c.threshold_rule, choice, name);
        }
    });
    ui.horizontal(|ui| {
        ui.label("duplicate timestamps").on_hover_text(
            "What to do with rows of a file that share a timestamp (a daylight-saving hour written twice, rows exported twice); the file is read again",
        );
        for p in DuplicatePolicy::ALL {
            ui.selectable_value(&mut c.duplicates, p, p.name());
        }
    });
}
