//! The Tune tab: a search over many settings at once (`crate::tune`) on a named background
//! thread while the rest of the app stays usable. Trials stream in and fill four views: the
//! objective over trials with the best so far as a line, a parallel-coordinates plot coloured by
//! objective, the objective against each setting, and each setting's importance. A click on a
//! trial (or "Use the best") loads its settings into the controls; nothing retrains until Train.

use super::commands::AppCommand;
use crate::config::DonutConfig;
use crate::data::RawSeries;
use crate::threads::Host;
use crate::tune::{
    Importance, ObjectiveKind, SearchSpace, Trial, TrialState, TuneOutcome, TuneSpec, run_search,
    space::Domain,
};
use crossbeam_channel::{Receiver, bounded};
use egui::{Color32, RichText, Ui};
use egui_plot::{Line, Plot, PlotPoints, Points};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// How long after a trial's report the app draws it (a burst of reports makes one frame).
const REPORT_FRAME_DELAY: std::time::Duration = std::time::Duration::from_millis(200);

/// What the search thread reports.
enum TuneMsg {
    /// A trial changed.
    Trial(Box<Trial>),
    /// The search ended (or could not start).
    Done(Result<Box<TuneOutcome>, String>),
}

struct Running {
    cancel: Arc<AtomicBool>,
    rx: Receiver<TuneMsg>,
    started: Instant,
}

/// The Tune tab's state.
pub struct TunePanel {
    /// Trials to draw.
    pub trials: usize,
    /// Trials training at once.
    pub jobs: usize,
    /// Wall-clock budget in seconds (0: none).
    pub budget_secs: f64,
    /// Seed of the sampler.
    pub seed: u64,
    /// The objective asked for (None: automatic).
    pub objective_wanted: Option<ObjectiveKind>,
    /// The space searched, each dimension with whether it is on.
    pub dimensions: Vec<(crate::tune::space::Dimension, bool)>,
    /// The space of the current (or last) search.
    pub space: Option<SearchSpace>,
    /// The settings it started from.
    pub base: Option<DonutConfig>,
    /// Its trials, as last reported.
    pub trials_seen: Vec<Trial>,
    /// The order in which trials reported figures: (trial, objective).
    pub history: Vec<(usize, f64)>,
    /// The finished search.
    pub outcome: Option<TuneOutcome>,
    /// Why a search failed.
    pub error: Option<String>,
    /// The trial shown highlighted (last clicked).
    pub selected: Option<usize>,
    /// Seconds the current (or last) search has run.
    pub elapsed_secs: f64,
    /// What the views draw, derived from the trials when a report arrives.
    derived: Derived,
    running: Option<Running>,
}

/// What the Tune tab's views draw, derived from the trials whenever a report arrives (not on
/// every frame).
#[derive(Default)]
struct Derived {
    /// Trial indices, best first.
    order: Vec<usize>,
    /// Each trial's rank by objective, 0 (worst) to 1 (best); None without figures.
    ranks: Vec<Option<f64>>,
    /// The lowest and the highest objective.
    range: (f64, f64),
    /// Each setting's importance.
    importance: Vec<Importance>,
    /// The best trial so far.
    best: Option<usize>,
    /// Its settings (the search's base with its assignments).
    best_config: Option<DonutConfig>,
}

impl Default for TunePanel {
    fn default() -> Self {
        Self {
            trials: 32,
            jobs: crate::threads::cores(),
            budget_secs: 0.0,
            seed: 0,
            objective_wanted: None,
            dimensions: SearchSpace::default()
                .dimensions
                .into_iter()
                .map(|d| (d, true))
                .collect(),
            space: None,
            base: None,
            trials_seen: Vec::new(),
            history: Vec::new(),
            outcome: None,
            error: None,
            selected: None,
            elapsed_secs: 0.0,
            derived: Derived::default(),
            running: None,
        }
    }
}

impl TunePanel {
    /// True while the search runs.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The space the checked dimensions make.
    pub fn chosen_space(&self) -> SearchSpace {
        SearchSpace {
            dimensions: self
                .dimensions
                .iter()
                .filter(|(_, on)| *on)
                .map(|(d, _)| d.clone())
                .collect(),
        }
    }

    /// Starts a search on `raw` from `base`, on a background thread.
    pub fn start(&mut self, ctx: &egui::Context, raw: Arc<RawSeries>, base: DonutConfig) {
        self.cancel();
        let space = self.chosen_space();
        if let Err(e) = space.check("the Tune tab") {
            self.error = Some(e.to_string());
            return;
        }
        let mut spec = TuneSpec::new(space.clone(), self.trials.max(1), base.clone(), self.seed);
        spec.jobs = self.jobs.max(1);
        spec.host = Host::App;
        spec.budget_secs = (self.budget_secs > 0.0).then_some(self.budget_secs);
        spec.objective = self.objective_wanted;
        self.space = Some(space);
        self.base = Some(base);
        self.trials_seen.clear();
        self.history.clear();
        self.outcome = None;
        self.error = None;
        self.selected = None;
        self.derived = Derived::default();
        let cancel = Arc::new(AtomicBool::new(false));
        // Every change of a trial is a message (a few per trial): the channel holds a search of
        // hundreds of trials, and the search waits rather than drop one.
        let (tx, rx) = bounded(4096);
        let (flag, wake) = (cancel.clone(), ctx.clone());
        let spawned = std::thread::Builder::new()
            .name("tune-search".into())
            .spawn(move || {
                crate::threads::run_in_background();
                let on_trial = |t: &Trial| {
                    let _ = tx.send(TuneMsg::Trial(Box::new(t.clone())));
                    // Reports come in bursts (a rung's decision moves every trial of it).
                    wake.request_repaint_after(REPORT_FRAME_DELAY);
                };
                let outcome = run_search(&raw, &spec, &flag, &on_trial)
                    .map(Box::new)
                    .map_err(|e| e.to_string());
                let _ = tx.send(TuneMsg::Done(outcome));
                wake.request_repaint();
            });
        match spawned {
            Ok(_) => {
                self.running = Some(Running {
                    cancel,
                    rx,
                    started: Instant::now(),
                })
            }
            Err(e) => self.error = Some(format!("cannot start the search thread: {e}")),
        }
    }

    /// Stops the search; finished trials stay.
    pub fn cancel(&mut self) {
        if let Some(r) = &self.running {
            r.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Takes in what the search thread sent.
    pub fn poll(&mut self) {
        let Some(running) = &self.running else { return };
        self.elapsed_secs = running.started.elapsed().as_secs_f64();
        let mut done = None;
        let mut changed = false;
        for msg in running.rx.try_iter() {
            changed = true;
            match msg {
                TuneMsg::Trial(t) => {
                    let t = *t;
                    let reported = self
                        .trials_seen
                        .get(t.index)
                        .map_or(0, |old| old.rungs.len() + usize::from(old.result.is_some()));
                    if t.rungs.len() + usize::from(t.result.is_some()) > reported
                        && let Some(objective) = t.objective()
                    {
                        self.history.push((t.index, objective));
                    }
                    if self.trials_seen.len() <= t.index {
                        self.trials_seen.resize_with(t.index + 1, || t.clone());
                    }
                    let index = t.index;
                    self.trials_seen[index] = t;
                }
                TuneMsg::Done(outcome) => done = Some(outcome),
            }
        }
        if let Some(outcome) = done {
            match outcome {
                Ok(o) => {
                    self.trials_seen = o.trials.clone();
                    self.outcome = Some(*o);
                }
                Err(e) => self.error = Some(e),
            }
            self.running = None;
        }
        if changed {
            self.derive();
        }
    }

    /// Recomputes what the views draw from the trials.
    fn derive(&mut self) {
        let trials = &self.trials_seen;
        let mut order: Vec<usize> = (0..trials.len()).collect();
        order.sort_by(|&a, &b| crate::tune::best_first(&trials[a], &trials[b]));
        let range = trials
            .iter()
            .filter_map(Trial::objective)
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), o| {
                (a.min(o), b.max(o))
            });
        let importance = match (&self.outcome, &self.space) {
            (Some(o), _) => o.importance.clone(),
            (None, Some(space)) => crate::tune::importance_of(space, trials),
            (None, None) => Vec::new(),
        };
        let best = match &self.outcome {
            Some(o) => o.best,
            // While it runs, the best by figures alone (the margin the base settings get is
            // the search's to apply at its end).
            None => crate::tune::best_trial(trials, 0.0),
        };
        self.derived = Derived {
            order,
            ranks: ranks(trials),
            range,
            importance,
            best,
            best_config: best.and_then(|i| self.settings_of(i)),
        };
    }

    /// What the search judged trials by, once it has ended.
    pub fn objective(&self) -> Option<ObjectiveKind> {
        self.outcome.as_ref().map(|o| o.objective)
    }

    /// The best trial so far: the search's choice once it has ended, else the best completed
    /// trial (or the best at the highest rung).
    pub fn best(&self) -> Option<&Trial> {
        self.derived.best.map(|i| &self.trials_seen[i])
    }

    /// The settings of trial `index`: the search's base with its assignments.
    pub fn settings_of(&self, index: usize) -> Option<DonutConfig> {
        let trial = self.trials_seen.get(index)?;
        self.base.as_ref()?.with_overrides(&trial.assignments).ok()
    }
}

/// The Tune tab: `panel`, over `raw` (the loaded series) with `base` (the controls' settings)
/// as every trial's start. `training`: a run is in progress (loading settings waits for it).
pub fn tune_ui(
    ui: &mut Ui,
    panel: &mut TunePanel,
    raw: Option<&Arc<RawSeries>>,
    base: &DonutConfig,
    training: bool,
    commands: &mut Vec<AppCommand>,
) {
    egui::ScrollArea::vertical()
        .id_salt("tune-scroll")
        .show(ui, |ui| {
            controls_ui(ui, panel, raw, base);
            if let Some(e) = &panel.error {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            if panel.trials_seen.is_empty() {
                ui.weak(
                    "A search trains many settings at once, stops poor ones early (successive halving) and judges them on the validation part (or, if asked, the training and validation parts together): the test labels are read only by the comparison after it (`donut-explorer tune`).",
                );
                return;
            }
            best_ui(ui, panel, training, commands);
            ui.separator();
            ui.horizontal_wrapped(|ui| {
                ui.vertical(|ui| history_ui(ui, panel));
                ui.vertical(|ui| importance_ui(ui, panel));
            });
            ui.strong("Parallel coordinates (a line per trial, coloured by objective)");
            parallel_ui(ui, panel);
            ui.strong("Objective against each setting");
            per_setting_ui(ui, panel);
            ui.separator();
            trials_table_ui(ui, panel, training, commands);
        });
}

/// The search's settings and its Search / Cancel buttons.
fn controls_ui(
    ui: &mut Ui,
    panel: &mut TunePanel,
    raw: Option<&Arc<RawSeries>>,
    base: &DonutConfig,
) {
    let running = panel.is_running();
    ui.add_enabled_ui(!running, |ui| {
        ui.horizontal_wrapped(|ui| {
            ui.add(egui::Slider::new(&mut panel.trials, 2..=128).text("trials"));
            let cores = crate::threads::cores();
            ui.add(egui::Slider::new(&mut panel.jobs, 1..=cores.max(1)).text("at once"));
            ui.add(
                egui::Slider::new(&mut panel.budget_secs, 0.0..=1800.0).text("budget s (0 = none)"),
            );
            ui.add(egui::DragValue::new(&mut panel.seed).prefix("seed "));
            objective_choice_ui(ui, &mut panel.objective_wanted);
        });
        egui::CollapsingHeader::new("Search space")
            .id_salt("tune-space")
            .show(ui, |ui| {
                egui::Grid::new("tune-space-grid").show(ui, |ui| {
                    for (d, on) in &mut panel.dimensions {
                        ui.checkbox(on, &d.key);
                        ui.weak(d.describe());
                        ui.end_row();
                    }
                });
            });
    });
    ui.horizontal(|ui| {
        let search = ui
            .add_enabled(!running, egui::Button::new("Search"))
            .on_hover_text("Search from the current settings on the loaded series");
        if search.clicked() {
            match raw {
                Some(raw) => panel.start(ui.ctx(), raw.clone(), base.clone()),
                None => panel.error = Some("no data loaded".into()),
            }
        }
        if ui
            .add_enabled(running, egui::Button::new("Cancel search"))
            .on_hover_text("Stop; finished trials stay")
            .clicked()
        {
            panel.cancel();
        }
        if running {
            ui.spinner();
        }
        let settled = panel
            .trials_seen
            .iter()
            .filter(|t| t.state.is_final())
            .count();
        let count = |f: fn(&TrialState) -> bool| {
            panel.trials_seen.iter().filter(|t| f(&t.state)).count()
        };
        let active = count(|s| *s == TrialState::Running);
        let paused = count(|s| matches!(s, TrialState::Paused { .. }));
        ui.label(format!(
            "{settled} of {} trials settled, {active} training, {paused} waiting at a rung, {:.0} s",
            panel.trials_seen.len(),
            panel.elapsed_secs
        ));
        if let Some(kind) = panel.objective() {
            ui.weak(format!("objective: {}", kind.describe()));
        }
    });
}

/// The objective a search asks for: automatic, or one of the validation part's figures.
fn objective_choice_ui(ui: &mut Ui, wanted: &mut Option<ObjectiveKind>) {
    let text = |w: Option<ObjectiveKind>| match w {
        None => "automatic".to_string(),
        Some(kind) => kind.describe().to_string(),
    };
    egui::ComboBox::from_id_salt("tune-objective")
        .selected_text(format!("judged by: {}", text(*wanted)))
        .show_ui(ui, |ui| {
            for choice in [
                None,
                Some(ObjectiveKind::ValidationF1),
                Some(ObjectiveKind::ValidationPaKArea),
                Some(ObjectiveKind::ValidationLogLikelihood),
                Some(ObjectiveKind::FitF1),
            ] {
                ui.selectable_value(wanted, choice, text(choice));
            }
        })
        .response
        .on_hover_text(format!(
            "What trials are judged by, never the test part. Automatic: the {} where the \
             validation labels hold at least {} anomaly segments, else the log-likelihood. The \
             F1 on the training and validation labels counts more segments, on points the \
             model trained on",
            crate::tune::objective::DEFAULT_LABELLED_OBJECTIVE.describe(),
            crate::tune::objective::MIN_VALIDATION_SEGMENTS,
        ));
}

/// The best trial so far, "Use the best" and the export.
fn best_ui(ui: &mut Ui, panel: &mut TunePanel, training: bool, commands: &mut Vec<AppCommand>) {
    let Some(best) = panel.best().cloned() else {
        return;
    };
    ui.horizontal_wrapped(|ui| {
        ui.strong(format!(
            "best: trial {} ({}, objective {:.3})",
            best.index,
            best.state.label(),
            best.objective().unwrap_or(f64::NAN)
        ));
        ui.weak(best.settings_text());
    });
    match &panel.outcome {
        Some(o) if o.best == Some(0) && o.base_margin > 0.0 && o.trials.len() > 1 => {
            ui.weak(format!(
                "No trial beat the base settings by more than {:.3} (one labelled segment's \
                 worth of F1), so they stay.",
                o.base_margin
            ));
        }
        None if panel.is_running() => {
            ui.weak(
                "Best so far; at the end a trial replaces the base settings only by more than \
                 one labelled segment's worth of F1.",
            );
        }
        _ => {}
    }
    ui.horizontal(|ui| {
        let config = panel.derived.best_config.clone();
        if ui
            .add_enabled(
                config.is_some() && !training,
                egui::Button::new("Use the best"),
            )
            .on_hover_text(if training {
                "Stop the run first: a loaded window or split would not fit its scores"
            } else {
                "Load the best trial's settings into the controls (Train to use them)"
            })
            .clicked()
            && let Some(config) = config.clone()
        {
            panel.selected = Some(best.index);
            commands.push(AppCommand::LoadSettings {
                config: Box::new(config),
                origin: format!("trial {}", best.index),
            });
        }
        if ui
            .add_enabled(config.is_some(), egui::Button::new("Export settings…"))
            .on_hover_text("Write the best trial's settings as a config file (TOML, for --config)")
            .clicked()
            && let Some(config) = config
        {
            match toml::to_string(&config) {
                Ok(text) => commands.push(AppCommand::SaveText {
                    suggested_name: "tuned.toml",
                    text,
                }),
                Err(e) => panel.error = Some(format!("cannot write the settings: {e}")),
            }
        }
    });
}

/// The colour of an objective at `rank` (0 = worst, 1 = best) among the trials.
fn objective_color(rank: f64) -> Color32 {
    super::colormap::score(1.0 - rank.clamp(0.0, 1.0) as f32)
}

/// Each trial's rank by objective, 0 (worst) to 1 (best); None without figures.
fn ranks(trials: &[Trial]) -> Vec<Option<f64>> {
    let mut values: Vec<f64> = trials.iter().filter_map(Trial::objective).collect();
    values.sort_by(f64::total_cmp);
    let n = values.len();
    trials
        .iter()
        .map(|t| {
            let o = t.objective()?;
            let below = values.partition_point(|v| *v < o);
            Some(if n > 1 {
                below as f64 / (n - 1) as f64
            } else {
                1.0
            })
        })
        .collect()
}

/// The objective of each report in order, and the best so far as a line.
fn history_ui(ui: &mut Ui, panel: &TunePanel) {
    ui.strong("Objective over trials");
    let points: Vec<[f64; 2]> = panel
        .history
        .iter()
        .enumerate()
        .map(|(i, (_, o))| [i as f64, *o])
        .collect();
    let mut best = f64::NEG_INFINITY;
    let best_line: Vec<[f64; 2]> = points
        .iter()
        .map(|p| {
            best = best.max(p[1]);
            [p[0], best]
        })
        .collect();
    Plot::new("tune-history")
        .width(360.0)
        .height(180.0)
        .x_axis_label("report (a trial at a rung or its end)")
        .y_axis_label("objective")
        .show(ui, |plot| {
            plot.points(
                Points::new("trials", PlotPoints::from(points))
                    .radius(3.0)
                    .color(Color32::from_rgb(90, 150, 230)),
            );
            plot.line(
                Line::new("best so far", PlotPoints::from(best_line))
                    .color(Color32::from_rgb(230, 150, 60))
                    .width(2.0),
            );
        });
}

/// Each setting's importance as a bar, beside what a setting that does nothing scores.
fn importance_ui(ui: &mut Ui, panel: &TunePanel) {
    ui.strong("Importance")
        .on_hover_text(crate::tune::importance::EXPLANATION);
    let importance = &panel.derived.importance;
    egui::Grid::new("tune-importance").show(ui, |ui| {
        for i in importance {
            ui.label(&i.key);
            let bar = egui::ProgressBar::new(i.share as f32)
                .desired_width(140.0)
                .text(format!("{:.2}", i.share));
            ui.add(bar).on_hover_text(format!(
                "a setting that does nothing scores about {:.2}",
                i.chance
            ));
            ui.end_row();
        }
    });
}

/// A line per trial across the settings' axes (each from its lowest to its highest value) and
/// the objective's.
fn parallel_ui(ui: &mut Ui, panel: &TunePanel) {
    let Some(space) = &panel.space else { return };
    let trials = &panel.trials_seen;
    let ranks = &panel.derived.ranks;
    let (lo, hi) = panel.derived.range;
    let mut names: Vec<String> = space.dimensions.iter().map(|d| d.key.clone()).collect();
    names.push("objective".into());
    let axes = names.len();
    Plot::new("tune-parallel")
        .height(220.0)
        .show_axes([true, false])
        .include_y(-0.05)
        .include_y(1.05)
        .allow_scroll(false)
        .x_axis_formatter(move |mark, _| {
            names
                .get(mark.value.round() as usize)
                .filter(|_| mark.value.fract() == 0.0)
                .cloned()
                .unwrap_or_default()
        })
        .show(ui, |plot| {
            for a in 0..axes {
                plot.line(
                    Line::new("axes", vec![[a as f64, 0.0], [a as f64, 1.0]])
                        .color(Color32::from_gray(110)),
                );
            }
            for (t, rank) in trials.iter().zip(ranks) {
                let (Some(rank), Some(o)) = (rank, t.objective()) else {
                    continue;
                };
                let mut pts: Vec<[f64; 2]> = space
                    .dimensions
                    .iter()
                    .zip(&t.values)
                    .enumerate()
                    .map(|(a, (d, v))| [a as f64, d.position(v)])
                    .collect();
                let y = if hi > lo { (o - lo) / (hi - lo) } else { 0.5 };
                pts.push([(axes - 1) as f64, y]);
                let selected = panel.selected == Some(t.index);
                plot.line(
                    Line::new(format!("trial {}", t.index), pts)
                        .color(objective_color(*rank))
                        .width(if selected { 3.0 } else { 1.2 }),
                );
            }
        });
}

/// A small scatter of the objective against each setting (pruned trials dimmer).
fn per_setting_ui(ui: &mut Ui, panel: &TunePanel) {
    let Some(space) = &panel.space else { return };
    let (done, pruned): (Vec<&Trial>, Vec<&Trial>) = panel
        .trials_seen
        .iter()
        .filter(|t| t.objective().is_some())
        .partition(|t| t.state == TrialState::Completed);
    ui.horizontal_wrapped(|ui| {
        for (d, dim) in space.dimensions.iter().enumerate() {
            ui.vertical(|ui| {
                ui.small(&dim.key);
                let choices = match &dim.domain {
                    Domain::Choice { values } => Some(values.clone()),
                    Domain::Range { .. } => None,
                };
                let log = matches!(dim.domain, Domain::Range { log: true, .. });
                let x_of = |t: &Trial| match (&t.values[d], &choices) {
                    (crate::tune::Value::Number(x), _) if log => x.log10(),
                    (crate::tune::Value::Number(x), _) => *x,
                    (crate::tune::Value::Choice(s), Some(values)) => {
                        values.iter().position(|v| v == s).unwrap_or(0) as f64
                    }
                    _ => 0.0,
                };
                let points = |list: &[&Trial]| -> PlotPoints {
                    list.iter()
                        .filter_map(|t| Some([x_of(t), t.objective()?]))
                        .collect()
                };
                let mut plot = Plot::new(("tune-per-setting", d))
                    .width(170.0)
                    .height(120.0)
                    .allow_drag(false)
                    .allow_scroll(false)
                    .allow_zoom(false);
                if let Some(values) = choices.clone() {
                    plot = plot.x_axis_formatter(move |mark, _| {
                        values
                            .get(mark.value.round() as usize)
                            .filter(|_| mark.value.fract() == 0.0)
                            .cloned()
                            .unwrap_or_default()
                    });
                } else if log {
                    plot =
                        plot.x_axis_formatter(|mark, _| format!("{:.0e}", 10f64.powf(mark.value)));
                }
                plot.show(ui, |plot| {
                    plot.points(
                        Points::new("pruned", points(&pruned))
                            .radius(2.5)
                            .color(Color32::from_gray(140)),
                    );
                    plot.points(
                        Points::new("completed", points(&done))
                            .radius(3.5)
                            .color(Color32::from_rgb(230, 150, 60)),
                    );
                });
            });
        }
    });
}

/// Every trial, best first: a click loads its settings into the controls.
fn trials_table_ui(
    ui: &mut Ui,
    panel: &mut TunePanel,
    training: bool,
    commands: &mut Vec<AppCommand>,
) {
    ui.strong("Trials (click one to load its settings into the controls)");
    let best = panel.derived.best;
    let mut clicked = None;
    egui::Grid::new("tune-trials").striped(true).show(ui, |ui| {
        for h in [
            "trial",
            "state",
            "objective",
            "validations",
            "s",
            "settings",
        ] {
            ui.strong(h);
        }
        ui.end_row();
        for &i in &panel.derived.order {
            let t = &panel.trials_seen[i];
            let mut name = RichText::new(format!("trial {i}"));
            if best == Some(i) {
                name = name.strong();
            }
            let response = ui
                .add_enabled(
                    !training,
                    egui::Button::selectable(panel.selected == Some(i), name),
                )
                .on_hover_text("Load this trial's settings into the controls")
                .on_disabled_hover_text("Stop the run first");
            if response.clicked() {
                clicked = Some(i);
            }
            ui.label(t.state.label());
            match t.latest() {
                Some(c) => {
                    ui.label(format!("{:.3}", c.figures.objective));
                    ui.label(c.validations.to_string());
                }
                None => {
                    ui.label("-");
                    ui.label("-");
                }
            }
            ui.label(format!("{:.1}", t.secs));
            ui.weak(t.settings_text());
            ui.end_row();
        }
    });
    if let Some(i) = clicked
        && let Some(config) = panel.settings_of(i)
    {
        panel.selected = Some(i);
        commands.push(AppCommand::LoadSettings {
            config: Box::new(config),
            origin: format!("trial {i}"),
        });
    }
}
