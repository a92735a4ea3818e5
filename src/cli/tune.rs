//! `tune`: a search over many settings at once, judged on the validation part, then the chosen
//! settings against the base ones on the test part.

use super::interrupt::{INTERRUPTED, interrupted, stop_on_ctrl_c};
use super::{RunArgs, bar_style, say_summary, write_file};
use crate::tune::{
    Comparison, ObjectiveKind, SearchSpace, Trial, TrialState, TuneOutcome, TuneSpec, best_first,
    compare, run_search,
};
use anyhow::{Context, Result};
use clap::Args;
use indicatif::ProgressBar;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// `tune`'s arguments.
#[derive(Args, Debug)]
pub struct TuneArgs {
    /// Data and the base settings (every trial starts from them; `--seed` also seeds the
    /// sampler).
    #[command(flatten)]
    pub run: RunArgs,
    /// Trials to draw.
    #[arg(long, default_value_t = 32)]
    pub trials: usize,
    /// Wall-clock budget of the search in seconds: when spent, running trials stop and the best
    /// finished one is taken.
    #[arg(long, value_name = "S")]
    pub budget_secs: Option<f64>,
    /// A TOML file that narrows or widens the default space (see docs/TUNING.md).
    #[arg(long, value_name = "TOML")]
    pub space: Option<PathBuf>,
    /// Trials training at once (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// What trials are judged by, never the test part (default: f1 on the validation labels
    /// where they hold at least 2 anomaly segments, log-likelihood elsewhere; fit-f1: the F1 on
    /// the training and validation labels together).
    #[arg(long, value_enum)]
    pub objective: Option<ObjectiveKind>,
    /// Validations before the first rung of successive halving.
    #[arg(long, default_value_t = 2)]
    pub first_rung: usize,
    /// Each rung keeps 1/eta of its trials.
    #[arg(long, default_value_t = 3)]
    pub eta: usize,
    /// Seeds of the comparison on the test part (tuned and default, the same seeds); 0 skips it.
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Write the chosen settings here as a config file (TOML) for `--config`.
    #[arg(long, value_name = "TOML")]
    pub out: Option<PathBuf>,
    /// Print one JSON object (every trial, the best, the comparison) as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// The trials as a Markdown table, best objective first.
fn trials_markdown(outcome: &TuneOutcome) -> String {
    let mut out = format!(
        "| trial | state | objective ({}) | F1 | PA%K area | log-likelihood | validations | steps | s | settings |\n|---|---|---|---|---|---|---|---|---|---|\n",
        outcome.objective.describe()
    );
    let mut trials: Vec<&Trial> = outcome.trials.iter().collect();
    trials.sort_by(|a, b| best_first(a, b));
    for t in trials {
        let figure = |v: f64| {
            if v.is_finite() {
                format!("{v:.3}")
            } else {
                "-".into()
            }
        };
        let [objective, f1, area, ll, validations] = match t.latest() {
            Some(c) => [
                figure(c.figures.objective),
                figure(c.figures.f1),
                figure(c.figures.pa_k_area),
                figure(c.figures.log_likelihood),
                c.validations.to_string(),
            ],
            None => ["-".into(), "-".into(), "-".into(), "-".into(), "-".into()],
        };
        let best = if outcome.best == Some(t.index) {
            " **best**"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "| {}{best} | {} | {objective} | {f1} | {area} | {ll} | {validations} | {} | {:.1} | {} |",
            t.index,
            t.state.label(),
            t.steps,
            t.secs,
            t.settings_text()
        );
    }
    out
}

/// The importance table as Markdown.
fn importance_markdown(outcome: &TuneOutcome) -> String {
    let mut out = String::from(
        "| setting | importance (share of the first rung's variance) | a setting that does nothing |\n|---|---|---|\n",
    );
    for i in &outcome.importance {
        let _ = writeln!(out, "| {} | {:.2} | {:.2} |", i.key, i.share, i.chance);
    }
    out
}

/// One line for a trial that reached a final state.
fn trial_line(t: &Trial) -> String {
    let figures = t
        .latest()
        .map(|c| {
            format!(
                "objective {:.3} (log-likelihood {:.3}) after {} validations",
                c.figures.objective, c.figures.log_likelihood, c.validations
            )
        })
        .unwrap_or_default();
    let why = match &t.state {
        TrialState::Failed { message } => format!(": {message}"),
        _ => String::new(),
    };
    format!(
        "trial {} {}{why} | {figures} | {:.1} s | {}",
        t.index,
        t.state.label(),
        t.secs,
        t.settings_text()
    )
}

pub(super) fn tune_command(args: &TuneArgs) -> Result<()> {
    let base = args.run.config()?;
    let space = match &args.space {
        Some(path) => SearchSpace::from_file(path)?,
        None => SearchSpace::default(),
    };
    anyhow::ensure!(args.trials >= 1, "--trials must be at least 1");
    let raw = args.run.load(&base)?;
    if let Ok(prep) = crate::data::Prepared::new(&raw, &base) {
        super::warn_about(&prep);
    }
    let mut spec = TuneSpec::new(space, args.trials, base.clone(), base.seed);
    if let Some(jobs) = args.jobs {
        spec.jobs = jobs.max(1);
    }
    spec.first_rung_validations = args.first_rung;
    spec.eta = args.eta;
    spec.budget_secs = args.budget_secs;
    spec.objective = args.objective;
    let bar = ProgressBar::new(args.trials as u64);
    bar.set_style(bar_style(
        "tune [{elapsed_precise}] {wide_bar} {pos}/{len} trials {msg}",
    ));
    let say = |line: String| super::say_above(&bar, line);
    stop_on_ctrl_c("tune", "the search's summary");
    eprintln!(
        "tune: {} trials over {} settings, rungs at {:?} validations (keeping 1/{} at each), {} at once",
        spec.trials,
        spec.space.dimensions.len(),
        spec.rungs(),
        spec.eta(),
        spec.jobs
    );
    let outcome = run_search(&raw, &spec, &INTERRUPTED, &|t| {
        if t.state.is_final() {
            say(trial_line(t));
            bar.inc(1);
        }
    })?;
    bar.finish_and_clear();
    say_summary(args.json, trials_markdown(&outcome));
    say_summary(args.json, importance_markdown(&outcome));
    say_summary(
        args.json,
        format!(
            "search: {:.1} s for {} trials ({} completed, {} pruned, {} failed){}; objective: {} (a trial replaces the base settings only by more than {:.3})",
            outcome.secs,
            outcome.trials.len(),
            count(&outcome, |s| matches!(s, TrialState::Completed)),
            count(&outcome, |s| matches!(s, TrialState::Pruned { .. })),
            count(&outcome, |s| matches!(s, TrialState::Failed { .. })),
            if interrupted() {
                ", stopped by Ctrl-C"
            } else if outcome.cancelled {
                ", stopped by the budget"
            } else {
                ""
            },
            outcome.objective.describe(),
            outcome.base_margin
        ),
    );
    let best = outcome
        .best_trial()
        .context("no trial finished, so there are no settings to choose")?;
    say_summary(
        args.json,
        format!("best: trial {}: {}", best.index, best.settings_text()),
    );
    let tuned = base.with_overrides(&best.assignments)?;
    if let Some(path) = &args.out {
        let text = toml::to_string(&tuned).context("writing the settings as TOML")?;
        write_file(path, |w| w.write_all(text.as_bytes()))?;
        eprintln!("wrote {} (use it with --config)", path.display());
    }
    // After a Ctrl-C the finished trials and the choice are reported; the comparison is skipped.
    let comparison = if args.seeds > 0 && !interrupted() {
        Some(run_comparison(
            &raw,
            &spec,
            &best.assignments,
            args.seeds,
            &say,
        )?)
    } else {
        None
    };
    if let Some(c) = &comparison {
        if c.same_runs {
            say_summary(
                args.json,
                "the search kept the base settings: the tuned and default rows are the same runs, trained once".into(),
            );
        }
        say_summary(
            args.json,
            crate::sweep::to_markdown(&c.rows, base.eval_delay),
        );
        if c.default_run_secs > 0.0 {
            say_summary(
                args.json,
                format!(
                    "the search took {:.1} s: {:.1} default runs ({:.1} s each, one at a time on every core); {} full default runs would take {:.0} s",
                    outcome.secs,
                    outcome.secs / c.default_run_secs,
                    c.default_run_secs,
                    outcome.trials.len(),
                    c.default_run_secs * outcome.trials.len() as f64
                ),
            );
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "search": outcome,
                "best_settings": best.assignments,
                "comparison": comparison.as_ref().map(|c| serde_json::json!({
                    "rows": c.rows,
                    "same_runs": c.same_runs,
                    "secs": c.secs,
                    "default_run_secs": c.default_run_secs,
                    "runs": c.runs.iter().map(crate::sweep::SweepRun::to_json).collect::<Vec<_>>(),
                })),
            }))?
        );
    }
    Ok(())
}

/// Trains the tuned and the base settings over `seeds` seeds and evaluates them on the test part.
fn run_comparison(
    raw: &crate::data::RawSeries,
    spec: &TuneSpec,
    tuned: &[String],
    seeds: u64,
    say: &(dyn Fn(String) + Sync),
) -> Result<Comparison> {
    let cancel = Arc::new(AtomicBool::new(false));
    let comparison = compare(raw, spec, tuned, seeds, cancel, &|outcome| match outcome {
        Ok(r) => say(format!(
            "{} seed {}: {}",
            if r.variant == 0 { "tuned" } else { "default" },
            r.seed,
            super::f1_line(&r.record)
        )),
        Err(e) => say(format!("comparison run failed: {e}")),
    })?;
    Ok(comparison)
}

fn count(outcome: &TuneOutcome, f: impl Fn(&TrialState) -> bool) -> usize {
    outcome.trials.iter().filter(|t| f(&t.state)).count()
}
