//! `tune`: a search over many settings at once that never reads the test labels. Trial 0 is the
//! base settings themselves, never pruned, so that a search replaces them only with settings that
//! beat them on the validation part at the end of training; the others are drawn at random from a [`SearchSpace`] (seeded), trained
//! side by side with it, and thinned by successive
//! halving: every trial trains until its [`TuneSpec::first_rung_validations`]-th validation and
//! is scored on the validation part ([`objective`]); the best third (`eta` = 3) goes on to three
//! times as many validations, and so on, until one is left; survivors and trials their patience
//! stopped first run to their own end. A paused trial waits for its rung without holding a
//! core, so the decisions (and the trials) are the same for a seed however the threads are
//! scheduled. The best completed trial's settings are then compared with the base settings on
//! the test part over the same seeds ([`compare`]).

pub mod importance;
pub mod objective;
pub mod space;

use crate::config::DonutConfig;
use crate::data::{Part, Prepared, RawSeries};
use crate::model::DonutModel;
use crate::sweep::{SweepRow, SweepRun, SweepSpec, Variant, run_sweep, table};
use crate::threads::Host;
use crate::train::{Flow, TrainEvent, TrainHooks, train};
pub use importance::Importance;
pub use objective::{ObjectiveKind, ValidationFigures};
use serde::{Deserialize, Serialize};
pub use space::{SearchSpace, Value};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What a search needs.
#[derive(Clone, Debug)]
pub struct TuneSpec {
    /// The settings it varies.
    pub space: SearchSpace,
    /// Trials to draw.
    pub trials: usize,
    /// The settings every trial starts from (and the default it is compared with).
    pub base: DonutConfig,
    /// Seed of the sampler (each trial's model uses the base config's seed).
    pub seed: u64,
    /// Trials training at once.
    pub jobs: usize,
    /// Where it runs (what an automatic thread count means).
    pub host: Host,
    /// Validations before the first rung.
    pub first_rung_validations: usize,
    /// Each rung keeps 1 / eta of its trials and gives them eta times the validations.
    pub eta: usize,
    /// Wall-clock budget: when spent, running trials stop and no new one starts.
    pub budget_secs: Option<f64>,
    /// The objective asked for; None: [`objective::DEFAULT_LABELLED_OBJECTIVE`] where the
    /// validation labels allow it, the log-likelihood elsewhere.
    pub objective: Option<ObjectiveKind>,
}

impl TuneSpec {
    /// A search of `trials` trials over `space` from `base`, with the default schedule (first
    /// rung after 2 validations, eta 3, a trial per core).
    pub fn new(space: SearchSpace, trials: usize, base: DonutConfig, seed: u64) -> Self {
        Self {
            space,
            trials,
            base,
            seed,
            jobs: crate::threads::cores(),
            host: Host::Cli,
            first_rung_validations: 2,
            eta: 3,
            budget_secs: None,
            objective: None,
        }
    }

    /// The share kept at each rung, 1 / eta (at least 2: a rung that keeps every trial is none).
    pub fn eta(&self) -> usize {
        self.eta.max(2)
    }

    /// The rungs' validation counts: a rung while more than one trial would reach it.
    pub fn rungs(&self) -> Vec<usize> {
        let mut out = Vec::new();
        let (mut alive, mut validations) = (self.trials, self.first_rung_validations.max(1));
        while alive > 1 {
            out.push(validations);
            alive = alive.div_ceil(self.eta());
            validations *= self.eta();
        }
        out
    }
}

/// Where a trial is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TrialState {
    /// Not started.
    Waiting,
    /// Training.
    Running,
    /// Waiting for the other trials of a rung.
    Paused {
        /// The rung.
        rung: usize,
    },
    /// Stopped at a rung by successive halving.
    Pruned {
        /// The rung.
        rung: usize,
    },
    /// Trained to its end (epochs or patience) and scored.
    Completed,
    /// Its settings were refused or its training failed (diverged).
    Failed {
        /// Why.
        message: String,
    },
    /// Stopped by a cancel or the budget.
    Cancelled,
}

impl TrialState {
    /// True once nothing more will happen to the trial.
    pub fn is_final(&self) -> bool {
        matches!(
            self,
            Self::Pruned { .. } | Self::Completed | Self::Failed { .. } | Self::Cancelled
        )
    }

    /// In a word or two.
    pub fn label(&self) -> String {
        match self {
            Self::Waiting => "waiting".into(),
            Self::Running => "running".into(),
            Self::Paused { rung } => format!("paused at rung {rung}"),
            Self::Pruned { rung } => format!("pruned at rung {rung}"),
            Self::Completed => "completed".into(),
            Self::Failed { .. } => "failed".into(),
            Self::Cancelled => "cancelled".into(),
        }
    }
}

/// A trial's figures at a point of its training.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Validations done.
    pub validations: usize,
    /// Steps done.
    pub steps: usize,
    /// Its figures on the validation part.
    pub figures: ValidationFigures,
}

/// One trial of a search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Its number (0-based, in the order drawn).
    pub index: usize,
    /// Its value of each dimension of the space.
    pub values: Vec<Value>,
    /// The `key=value` assignments over the base settings.
    pub assignments: Vec<String>,
    /// Where it is.
    pub state: TrialState,
    /// Its figures at each rung it reached.
    pub rungs: Vec<Checkpoint>,
    /// Its figures at its end (completed trials).
    pub result: Option<Checkpoint>,
    /// Steps trained.
    pub steps: usize,
    /// Epochs begun.
    pub epochs: usize,
    /// Seconds it trained and scored (not counting its waits).
    pub secs: f64,
}

impl Trial {
    /// Its settings as a line: the `key=value` assignments, or "the base settings" for trial 0.
    pub fn settings_text(&self) -> String {
        if self.assignments.is_empty() {
            "the base settings".into()
        } else {
            self.assignments.join(" ")
        }
    }

    /// Its latest figures: the final ones, or those of the last rung it reached.
    pub fn latest(&self) -> Option<&Checkpoint> {
        self.result.as_ref().or(self.rungs.last())
    }

    /// Its latest objective, if finite.
    pub fn objective(&self) -> Option<f64> {
        self.latest()
            .map(|c| c.figures.objective)
            .filter(|o| o.is_finite())
    }
}

/// A search's outcome.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TuneOutcome {
    /// What the trials were judged by.
    pub objective: ObjectiveKind,
    /// The space searched.
    pub space: SearchSpace,
    /// The rungs' validation counts.
    pub rungs: Vec<usize>,
    /// Every trial, in order drawn.
    pub trials: Vec<Trial>,
    /// The chosen trial ([`best_trial`]): the best completed one by its final figures, unless
    /// the base settings come within `base_margin` of it; when none completed, the best of those
    /// that reached the highest rung.
    pub best: Option<usize>,
    /// How much a trial's final objective had to exceed the base settings' to replace them
    /// ([`ObjectiveKind::base_margin`]).
    #[serde(default)]
    pub base_margin: f64,
    /// Each setting's importance ([`importance`]).
    pub importance: Vec<Importance>,
    /// Wall-clock seconds of the search.
    pub secs: f64,
    /// Whether it was cancelled or ran out of budget (finished trials are kept).
    pub cancelled: bool,
}

impl TuneOutcome {
    /// The best trial.
    pub fn best_trial(&self) -> Option<&Trial> {
        self.best.map(|i| &self.trials[i])
    }
}

/// Why a search could not start.
#[derive(Debug, thiserror::Error)]
pub enum TuneError {
    /// The base settings do not fit the data.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// The objective asked for needs labels the validation part lacks.
    #[error(transparent)]
    Objective(#[from] objective::TooFewSegments),
    /// No validation part to judge trials by.
    #[error(
        "tune judges trials on the validation part, and this split leaves it no window (valid_fraction = {0})"
    )]
    NoValidation(f64),
}

/// The shared state of a search.
struct Search {
    trials: Vec<Trial>,
    /// Trials holding a run slot.
    running: usize,
    rungs: Vec<Rung>,
}

/// A rung of successive halving: the trials expected at it, their figures as they arrive,
/// and (once all have arrived) those promoted.
#[derive(Default)]
struct Rung {
    expected: BTreeSet<usize>,
    reported: Vec<(usize, ValidationFigures)>,
    promoted: Option<BTreeSet<usize>>,
}

struct Context<'a> {
    raw: &'a RawSeries,
    spec: &'a TuneSpec,
    kind: ObjectiveKind,
    rungs: Vec<usize>,
    state: Mutex<Search>,
    changed: Condvar,
    cancel: &'a AtomicBool,
    /// Set when the budget is spent (the driver's `cancel` is left as it was).
    out_of_budget: AtomicBool,
    started: Instant,
    on_trial: &'a (dyn Fn(&Trial) + Sync),
}

/// How often a waiting trial looks at the cancel flag and the budget.
const WAIT_TICK: Duration = Duration::from_millis(100);

impl Context<'_> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Search> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// True when cancelled or out of budget.
    fn cancelled(&self) -> bool {
        if let Some(budget) = self.spec.budget_secs
            && self.started.elapsed().as_secs_f64() >= budget
        {
            self.out_of_budget.store(true, Ordering::Relaxed);
        }
        self.cancel.load(Ordering::Relaxed) || self.out_of_budget.load(Ordering::Relaxed)
    }

    /// Updates trial `index` with `f` and tells the driver.
    fn update(&self, search: &mut Search, index: usize, f: impl FnOnce(&mut Trial)) {
        f(&mut search.trials[index]);
        (self.on_trial)(&search.trials[index]);
    }

    /// Waits for a run slot; false when cancelled first.
    fn acquire(&self) -> bool {
        let mut search = self.lock();
        loop {
            if self.cancelled() {
                return false;
            }
            if search.running < self.spec.jobs.max(1) {
                search.running += 1;
                return true;
            }
            search = self
                .changed
                .wait_timeout(search, WAIT_TICK)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }

    fn release(&self, search: &mut Search) {
        search.running = search.running.saturating_sub(1);
        self.changed.notify_all();
    }

    /// Records `figures` of trial `index` at `rung`, deciding the rung when it is complete.
    fn report(&self, search: &mut Search, rung: usize, index: usize, figures: ValidationFigures) {
        let Some(r) = search.rungs.get_mut(rung) else {
            return;
        };
        if !r.expected.contains(&index) || r.reported.iter().any(|(i, _)| *i == index) {
            return;
        }
        r.reported.push((index, figures));
        if r.reported.len() == r.expected.len() {
            self.decide(search, rung);
        }
    }

    /// Promotes the best 1 / eta of a complete rung (failed trials never); trials that have
    /// already completed go on to the next rung with their final figures.
    fn decide(&self, search: &mut Search, rung: usize) {
        // The base settings (trial 0) go on whatever their rank: early rungs favour settings
        // that learn fast, and the search must beat the base where it ends, not where it starts.
        let base = search.trials.iter().position(|t| t.assignments.is_empty());
        let r = &mut search.rungs[rung];
        let mut ranked: Vec<(usize, ValidationFigures)> = r
            .reported
            .iter()
            .copied()
            .filter(|(_, f)| f.objective.is_finite())
            .collect();
        ranked.sort_by(|a, b| a.1.better_than(&b.1).then(a.0.cmp(&b.0)));
        let keep = r.expected.len().div_ceil(self.spec.eta());
        let mut promoted: BTreeSet<usize> = ranked.iter().take(keep).map(|(i, _)| *i).collect();
        promoted.extend(base.filter(|b| ranked.iter().any(|(i, _)| i == b)));
        r.promoted = Some(promoted.clone());
        self.changed.notify_all();
        if let Some(next) = search.rungs.get_mut(rung + 1) {
            next.expected = promoted.clone();
            let done: Vec<(usize, ValidationFigures)> = promoted
                .iter()
                .filter_map(|&i| {
                    let t = &search.trials[i];
                    (t.state == TrialState::Completed)
                        .then(|| t.result.map(|c| (i, c.figures)))
                        .flatten()
                })
                .collect();
            for (i, figures) in done {
                self.report(search, rung + 1, i, figures);
            }
        }
    }

    /// Runs trial `index` to its end.
    fn run_trial(&self, index: usize, config: Result<DonutConfig, String>) {
        if !self.acquire() {
            let mut search = self.lock();
            self.update(&mut search, index, |t| t.state = TrialState::Cancelled);
            return;
        }
        {
            let mut search = self.lock();
            self.update(&mut search, index, |t| t.state = TrialState::Running);
        }
        let started = Instant::now();
        // A trial pruned or cancelled at a rung has already given its slot back.
        let mut holds_slot = true;
        let end = match config {
            Ok(config) => self.train_trial(index, &config, &mut holds_slot),
            Err(message) => TrialEnd::Failed(message),
        };
        let mut search = self.lock();
        match end {
            TrialEnd::Stopped => {
                if !search.trials[index].state.is_final() {
                    self.update(&mut search, index, |t| t.state = TrialState::Cancelled);
                }
            }
            TrialEnd::Done {
                checkpoint,
                epochs,
                rung,
                secs,
            } => {
                let elapsed = started.elapsed().as_secs_f64();
                self.update(&mut search, index, |t| {
                    t.state = TrialState::Completed;
                    t.result = Some(checkpoint);
                    t.steps = checkpoint.steps;
                    t.epochs = epochs;
                    t.secs = secs.min(elapsed);
                });
                self.report(&mut search, rung, index, checkpoint.figures);
            }
            TrialEnd::Failed(message) => {
                let rung = search.trials[index].rungs.len();
                self.update(&mut search, index, |t| {
                    t.state = TrialState::Failed { message };
                    t.secs = started.elapsed().as_secs_f64();
                });
                self.report(&mut search, rung, index, ValidationFigures::WORST);
            }
        }
        if holds_slot {
            self.release(&mut search);
        }
    }

    /// Prepares, trains (through the rungs) and scores trial `index` with `config`;
    /// `holds_slot` says afterwards whether it still holds its run slot.
    fn train_trial(&self, index: usize, config: &DonutConfig, holds_slot: &mut bool) -> TrialEnd {
        let config = crate::threads::resolved(config, self.spec.host, self.spec.jobs);
        let prep = match Prepared::new(self.raw, &config) {
            Ok(prep) => prep,
            Err(e) => return TrialEnd::Failed(e.to_string()),
        };
        let mut hooks = TrialHooks {
            context: self,
            index,
            prep: &prep,
            config: &config,
            rung: 0,
            validations: 0,
            steps: 0,
            epochs: 0,
            best: None,
            compute_secs: 0.0,
            resumed: Instant::now(),
            holds_slot: true,
        };
        let trained = train(&prep, &config, &mut hooks);
        *holds_slot = hooks.holds_slot;
        let trained = match trained {
            Ok(trained) if trained.stats.stopped => return TrialEnd::Stopped,
            Ok(trained) => trained,
            Err(e) => return TrialEnd::Failed(e.to_string()),
        };
        let secs = hooks.compute_secs + hooks.resumed.elapsed().as_secs_f64();
        let (validations, steps, epochs, rung) =
            (hooks.validations, hooks.steps, hooks.epochs, hooks.rung);
        drop(hooks);
        let keep_going = &mut |_| !self.cancelled();
        match objective::validation_figures(&trained.model, &prep, &config, self.kind, keep_going) {
            Ok(figures) => TrialEnd::Done {
                checkpoint: Checkpoint {
                    validations,
                    steps,
                    figures,
                },
                epochs,
                rung,
                secs,
            },
            Err(_) => TrialEnd::Stopped,
        }
    }
}

/// How a trial's training ended.
enum TrialEnd {
    /// Pruned or cancelled (a pruned trial's state already says so).
    Stopped,
    /// Trained to its end and scored.
    Done {
        /// Its final figures.
        checkpoint: Checkpoint,
        /// Epochs begun.
        epochs: usize,
        /// The rung it was expected at next.
        rung: usize,
        /// Seconds it trained and scored, waits excluded.
        secs: f64,
    },
    /// Its settings or its training failed.
    Failed(String),
}

/// A trial's training hooks: counts validations, keeps the best parameters' model, and at each
/// rung scores it, reports, gives its slot back and waits for the rung's decision.
struct TrialHooks<'a, 'c> {
    context: &'a Context<'c>,
    index: usize,
    prep: &'a Prepared,
    config: &'a DonutConfig,
    rung: usize,
    validations: usize,
    steps: usize,
    epochs: usize,
    best: Option<DonutModel>,
    compute_secs: f64,
    resumed: Instant,
    /// Whether it holds a run slot (not while paused, nor after a prune or cancel at a rung).
    holds_slot: bool,
}

impl TrialHooks<'_, '_> {
    /// At a rung: score, report, wait. `Flow::Stop` when pruned or cancelled.
    fn at_rung(&mut self) -> Flow {
        let ctx = self.context;
        let Some(model) = &self.best else {
            return Flow::Continue;
        };
        let Ok(figures) =
            objective::validation_figures(model, self.prep, self.config, ctx.kind, &mut |_| {
                !ctx.cancelled()
            })
        else {
            return Flow::Stop;
        };
        let rung = self.rung;
        self.compute_secs += self.resumed.elapsed().as_secs_f64();
        let mut search = ctx.lock();
        let checkpoint = Checkpoint {
            validations: self.validations,
            steps: self.steps,
            figures,
        };
        let (steps, epochs, secs) = (self.steps, self.epochs, self.compute_secs);
        ctx.update(&mut search, self.index, |t| {
            t.rungs.push(checkpoint);
            t.state = TrialState::Paused { rung };
            t.steps = steps;
            t.epochs = epochs;
            t.secs = secs;
        });
        ctx.release(&mut search);
        self.holds_slot = false;
        ctx.report(&mut search, rung, self.index, figures);
        loop {
            if ctx.cancelled() {
                ctx.update(&mut search, self.index, |t| t.state = TrialState::Cancelled);
                return Flow::Stop;
            }
            if let Some(promoted) = &search.rungs[rung].promoted {
                if !promoted.contains(&self.index) {
                    ctx.update(&mut search, self.index, |t| {
                        t.state = TrialState::Pruned { rung }
                    });
                    return Flow::Stop;
                }
                break;
            }
            search = ctx
                .changed
                .wait_timeout(search, WAIT_TICK)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        drop(search);
        if !ctx.acquire() {
            let mut search = ctx.lock();
            ctx.update(&mut search, self.index, |t| t.state = TrialState::Cancelled);
            return Flow::Stop;
        }
        self.holds_slot = true;
        let mut search = ctx.lock();
        ctx.update(&mut search, self.index, |t| t.state = TrialState::Running);
        self.rung += 1;
        self.resumed = Instant::now();
        Flow::Continue
    }
}

impl TrainHooks for TrialHooks<'_, '_> {
    fn event(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Step(s) => self.steps = s.step,
            TrainEvent::Valid(_) => self.validations += 1,
            TrainEvent::Epoch { epoch, .. } => self.epochs = epoch + 1,
            _ => {}
        }
    }

    fn poll(&mut self, _live: &mut crate::config::LiveSettings) -> Flow {
        if self.context.cancelled() {
            return Flow::Stop;
        }
        match self.context.rungs.get(self.rung) {
            Some(&due) if self.validations >= due => self.at_rung(),
            _ => Flow::Continue,
        }
    }

    fn new_best(&mut self, _step: usize, model: &mut dyn FnMut() -> DonutModel) {
        self.best = Some(model());
    }
}

/// Runs the search of `spec` on `raw`, calling `on_trial` with a trial each time it changes.
/// Stops (keeping every finished trial) when `cancel` is set or the budget is spent; the
/// outcome says it was cancelled in both cases.
pub fn run_search(
    raw: &RawSeries,
    spec: &TuneSpec,
    cancel: &AtomicBool,
    on_trial: &(dyn Fn(&Trial) + Sync),
) -> Result<TuneOutcome, TuneError> {
    let started = Instant::now();
    let prep = Prepared::new(raw, &spec.base)?;
    if prep.window_ends(Part::Valid).is_empty() {
        return Err(TuneError::NoValidation(spec.base.valid_fraction));
    }
    let kind = ObjectiveKind::for_data(&prep, spec.objective)?;
    let base_margin = kind.base_margin(kind.segments(&prep));
    drop(prep);
    // Trial 0 is the base settings themselves (a search replaces them only with settings that
    // beat them on the validation part); the others are drawn.
    let base_values = spec.space.values_of(&spec.base);
    let drawn: Vec<(Vec<Value>, Vec<String>)> = base_values
        .map(|values| (values, Vec::new()))
        .into_iter()
        .chain(
            spec.space
                .sample(spec.trials, spec.seed)
                .into_iter()
                .map(|values| {
                    let assignments = spec.space.assignments(&values);
                    (values, assignments)
                }),
        )
        .take(spec.trials)
        .collect();
    let trials: Vec<Trial> = drawn
        .into_iter()
        .enumerate()
        .map(|(index, (values, assignments))| Trial {
            index,
            values,
            assignments,
            state: TrialState::Waiting,
            rungs: Vec::new(),
            result: None,
            steps: 0,
            epochs: 0,
            secs: 0.0,
        })
        .collect();
    let configs: Vec<Result<DonutConfig, String>> = trials
        .iter()
        .map(|t| {
            spec.base
                .with_overrides(&t.assignments)
                .map_err(|e| e.to_string())
        })
        .collect();
    let rungs = spec.rungs();
    let mut rung_states: Vec<Rung> = rungs.iter().map(|_| Rung::default()).collect();
    if let Some(first) = rung_states.first_mut() {
        first.expected = (0..trials.len()).collect();
    }
    for t in &trials {
        on_trial(t);
    }
    let context = Context {
        raw,
        spec,
        kind,
        rungs: rungs.clone(),
        state: Mutex::new(Search {
            trials,
            running: 0,
            rungs: rung_states,
        }),
        changed: Condvar::new(),
        cancel,
        out_of_budget: AtomicBool::new(false),
        started,
        on_trial,
    };
    std::thread::scope(|scope| {
        for (index, config) in configs.into_iter().enumerate() {
            let context = &context;
            let spawned = std::thread::Builder::new()
                .name(format!("tune-trial-{index}"))
                .spawn_scoped(scope, move || context.run_trial(index, config));
            if spawned.is_err() {
                let mut search = context.lock();
                context.update(&mut search, index, |t| {
                    t.state = TrialState::Failed {
                        message: "could not start its thread".into(),
                    }
                });
                context.report(&mut search, 0, index, ValidationFigures::WORST);
            }
        }
    });
    let cancelled = cancel.load(Ordering::Relaxed) || context.out_of_budget.load(Ordering::Relaxed);
    let search = context
        .state
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    let trials = search.trials;
    let best = best_trial(&trials, base_margin);
    Ok(TuneOutcome {
        objective: kind,
        base_margin,
        importance: importance_of(&spec.space, &trials),
        space: spec.space.clone(),
        rungs,
        trials,
        best,
        secs: started.elapsed().as_secs_f64(),
        cancelled,
    })
}

/// Each setting's importance over `trials`, from each trial's first figures (its first rung,
/// or its end when it ended before it): the one budget every trial had.
pub fn importance_of(space: &SearchSpace, trials: &[Trial]) -> Vec<Importance> {
    let first: Vec<(Vec<Value>, f64)> = trials
        .iter()
        .filter_map(|t| {
            t.rungs
                .first()
                .or(t.result.as_ref())
                .map(|c| (t.values.clone(), c.figures.objective))
        })
        .collect();
    importance::importance(space, &first)
}

/// Orders trials best first by their latest figures; trials without figures last, in order.
pub fn best_first(a: &Trial, b: &Trial) -> std::cmp::Ordering {
    match (a.latest(), b.latest()) {
        (Some(x), Some(y)) => x.figures.better_than(&y.figures),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.index.cmp(&b.index),
    }
}

/// The best completed trial, except that the base settings (trial 0, when completed) stay unless
/// it beats their final objective by more than `base_margin`; when none completed, the best of
/// those that reached the highest rung.
pub fn best_trial(trials: &[Trial], base_margin: f64) -> Option<usize> {
    let best = best_by_figures(trials)?;
    let final_objective = |t: &Trial| {
        (t.state == TrialState::Completed)
            .then_some(t.result.as_ref())
            .flatten()
            .map(|c| c.figures.objective)
    };
    let base = trials
        .first()
        .filter(|t| t.assignments.is_empty())
        .and_then(|t| final_objective(t).filter(|o| o.is_finite()));
    match (base, final_objective(&trials[best])) {
        (Some(base), Some(found)) if found - base <= base_margin => Some(0),
        _ => Some(best),
    }
}

/// The best completed trial by its figures alone; when none completed, the best of those that
/// reached the highest rung.
fn best_by_figures(trials: &[Trial]) -> Option<usize> {
    let pick = |candidates: Vec<(usize, ValidationFigures)>| {
        candidates
            .into_iter()
            .filter(|(_, f)| f.objective.is_finite())
            .min_by(|a, b| a.1.better_than(&b.1).then(a.0.cmp(&b.0)))
            .map(|(i, _)| i)
    };
    let completed: Vec<(usize, ValidationFigures)> = trials
        .iter()
        .filter(|t| t.state == TrialState::Completed)
        .filter_map(|t| t.result.map(|c| (t.index, c.figures)))
        .collect();
    if !completed.is_empty() {
        return pick(completed);
    }
    let highest = trials.iter().map(|t| t.rungs.len()).max().unwrap_or(0);
    pick(
        trials
            .iter()
            .filter(|t| highest > 0 && t.rungs.len() == highest)
            .filter_map(|t| t.rungs.last().map(|c| (t.index, c.figures)))
            .collect(),
    )
}

/// The tuned settings against the base settings on the test part.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Comparison {
    /// Rows: the tuned settings, then the base settings, each over the same seeds.
    pub rows: Vec<SweepRow>,
    /// Each run.
    #[serde(skip)]
    pub runs: Vec<SweepRun>,
    /// Whether the tuned settings are the base settings (the search kept them), so that both
    /// rows are the same runs, trained once.
    #[serde(default)]
    pub same_runs: bool,
    /// Wall-clock seconds of the comparison.
    pub secs: f64,
    /// Mean seconds of one run of the base settings (training and scoring), one at a time:
    /// what a default run costs, for the search's budget in default runs.
    pub default_run_secs: f64,
}

/// Trains the `tuned` assignments and the base settings of `spec` over `seeds` seeds (one run
/// at a time, each on every core) and evaluates both on the test part: the one place a search's
/// result meets the test labels. Where `tuned` is empty (the search kept the base settings) the
/// base settings are trained once and their runs fill both rows.
pub fn compare(
    raw: &RawSeries,
    spec: &TuneSpec,
    tuned: &[String],
    seeds: u64,
    cancel: Arc<AtomicBool>,
    on_run: &(dyn Fn(Result<&SweepRun, String>) + Sync),
) -> Result<Comparison, crate::sweep::SweepError> {
    let started = Instant::now();
    let variants = vec![
        Variant {
            label: "tuned".into(),
            settings: tuned.to_vec(),
        },
        Variant {
            label: "default".into(),
            settings: Vec::new(),
        },
    ];
    let same_runs = tuned.is_empty();
    let sweep = SweepSpec {
        // Only the base settings' variant is trained when it is also the tuned one.
        variants: if same_runs {
            variants[1..].to_vec()
        } else {
            variants.clone()
        },
        seeds: seeds.max(1),
        base: spec.base.clone(),
        jobs: 1,
        host: spec.host,
    };
    let runs = if same_runs {
        // The one variant trained is index 0 of `sweep`; it is reported as the default (1).
        let base_runs = run_sweep(raw, &sweep, cancel, &|outcome| match outcome {
            Ok(r) => on_run(Ok(&SweepRun {
                variant: 1,
                ..r.clone()
            })),
            Err(e) => on_run(Err(e)),
        })?;
        let tuned_copies: Vec<SweepRun> = base_runs
            .iter()
            .map(|r| SweepRun {
                variant: 0,
                ..r.clone()
            })
            .collect();
        let defaults = base_runs.into_iter().map(|r| SweepRun { variant: 1, ..r });
        tuned_copies.into_iter().chain(defaults).collect()
    } else {
        run_sweep(raw, &sweep, cancel, on_run)?
    };
    let default_secs: Vec<f64> = runs
        .iter()
        .filter(|r| r.variant == 1)
        .map(|r| r.record.stats.train_secs + r.record.score_secs)
        .collect();
    Ok(Comparison {
        rows: table(&variants, &runs),
        default_run_secs: crate::sweep::MeanStd::of(&default_secs).mean,
        same_runs,
        runs,
        secs: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn completed(index: usize, objective: f64, log_likelihood: f64) -> Trial {
        let figures = ValidationFigures {
            objective,
            pa_k_area: objective / 2.0,
            f1: objective,
            log_likelihood,
            fit_f1: f64::NEG_INFINITY,
        };
        Trial {
            index,
            values: Vec::new(),
            assignments: if index == 0 {
                Vec::new()
            } else {
                vec![format!("latent_dim={}", index + 2)]
            },
            state: TrialState::Completed,
            rungs: Vec::new(),
            result: Some(Checkpoint {
                validations: 6,
                steps: 600,
                figures,
            }),
            steps: 600,
            epochs: 10,
            secs: 1.0,
        }
    }

    /// The base settings stay unless a drawn trial beats them by more than the margin; by
    /// figures alone (margin 0) a tie goes to the base, a better log-likelihood does not count.
    #[test]
    fn the_base_settings_stay_unless_a_trial_beats_them_by_more_than_the_margin() {
        let trials = [completed(0, 0.85, 0.5), completed(1, 0.90, 0.9)];
        assert_eq!(
            best_trial(&trials, 0.07),
            Some(0),
            "0.05 better is within 0.07"
        );
        assert_eq!(
            best_trial(&trials, 0.04),
            Some(1),
            "0.05 better is more than 0.04"
        );
        let tied = [completed(0, 1.0, 0.5), completed(1, 1.0, 0.9)];
        assert_eq!(
            best_by_figures(&tied),
            Some(1),
            "the tie-break alone prefers trial 1"
        );
        assert_eq!(best_trial(&tied, 0.0), Some(0));
        // Without a completed base (a search whose space cannot express the base settings, or a
        // base that failed), the best by figures.
        let mut failed_base = trials.clone();
        failed_base[0].state = TrialState::Failed {
            message: "diverged".into(),
        };
        assert_eq!(best_trial(&failed_base, 0.07), Some(1));
    }
}
