//! The development corpus: settings judged on folders of labelled KPIs over several seeds.
//!
//! Every (KPI, variant, seed) is one run of the pipeline, on a pool of named threads
//! (`corpus-N`). Each run keeps only its figures ([`CorpusRun`]): the best F1 (the upper bound),
//! the F1 at the threshold it flags at and at each rule's, with the AIOps delay, the PA%K area,
//! the same for Spectral Residual, and chance at the flagged count. [`summarise`] turns the runs
//! into per-KPI rows, means per group of KPIs (the folder each came from) and over all, and, for
//! every variant beside the first, the paired difference per KPI and seed with its standard
//! error: the one table a change of default is judged by (docs/ACCURACY.md).

use crate::config::{DonutConfig, ThresholdChoice};
use crate::data::{LoadOptions, Part, Prepared, RawSeries};
use crate::eval::{AtThreshold, Threshold, ThresholdRule, TrackEvaluation, pick_threshold};
use crate::pipeline::{RunError, RunRecord};
use crate::sweep::{CancelHooks, Variant};
use crate::threads::Host;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// The risks at which every run's tail is also probed (peaks over threshold at the run's
/// `pot_level`), so that one corpus run shows which risk to default to.
pub const POT_RISK_PROBES: [f64; 5] = [1e-2, 3e-3, 1e-3, 3e-4, 1e-4];

/// The rules every run is evaluated at, beside the one it flags at.
const CHOICES: [ThresholdChoice; 4] = [
    ThresholdChoice::Validation,
    ThresholdChoice::Auto,
    ThresholdChoice::Pot,
    ThresholdChoice::AlarmRate,
];

/// One KPI of the corpus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorpusKpi {
    /// Its name (the file's stem).
    pub name: String,
    /// Its group: the name of the folder it came from.
    pub group: String,
    /// The CSV.
    pub path: PathBuf,
}

/// Why a corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A folder could not be read.
    #[error(transparent)]
    Folder(#[from] crate::fleet::FleetError),
    /// No CSV was found.
    #[error("no CSV file in {0}")]
    Empty(String),
    /// A KPI could not be loaded.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A variant's settings are invalid.
    #[error(transparent)]
    Variant(#[from] crate::sweep::SweepError),
}

/// The CSVs of `paths` (each a CSV, or a folder whose CSVs are taken, not its subfolders, as
/// [`crate::fleet::kpis_in_dir`] lists them), in the order given, each folder's by name.
pub fn kpis(paths: &[PathBuf]) -> Result<Vec<CorpusKpi>, CorpusError> {
    let mut out = Vec::new();
    for path in paths {
        let files = if path.is_dir() {
            match crate::fleet::kpis_in_dir(path) {
                Ok(kpis) => kpis,
                // A folder without CSVs adds nothing; no CSV at all is refused below.
                Err(crate::fleet::FleetError::Empty(_)) => Vec::new(),
                Err(e) => return Err(e.into()),
            }
        } else {
            vec![crate::fleet::Kpi {
                name: path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: path.clone(),
            }]
        };
        for kpi in files {
            let group = kpi
                .path
                .parent()
                .and_then(Path::file_name)
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| ".".into());
            out.push(CorpusKpi {
                name: kpi.name,
                group,
                path: kpi.path,
            });
        }
    }
    if out.is_empty() {
        let names: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(CorpusError::Empty(names.join(", ")));
    }
    Ok(out)
}

/// What a corpus run needs.
#[derive(Clone, Debug)]
pub struct CorpusSpec {
    /// The variants; the first is the base the others are paired with.
    pub variants: Vec<Variant>,
    /// Seeds 0..seeds (offset by the base config's seed).
    pub seeds: u64,
    /// Settings shared by every run.
    pub base: DonutConfig,
    /// Runs at once.
    pub jobs: usize,
    /// Keep only the last this many points of each KPI (a quicker inner loop; None: whole).
    pub max_points: Option<usize>,
}

/// A track's figures on a run's test part at one threshold.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RuleFigures {
    /// The rule asked for (`validation`, `auto`, `pot`, `alarm_rate`, or `pot 1e-3` for a probe).
    pub rule: String,
    /// The rule that gave the threshold (another one when it fell back).
    pub used: String,
    /// Point-adjusted F1.
    pub f1: f64,
    /// With the delay.
    pub f1_delay: f64,
    /// PA%K area.
    pub pa_k_area: f64,
    /// Test points flagged.
    pub flagged_points: usize,
}

/// A score track's figures on a run's test part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackFigures {
    /// Best point-adjusted F1 (an upper bound).
    pub best_f1: f64,
    /// Best F1 with the delay.
    pub best_f1_delay: f64,
    /// Best PA%K area.
    pub best_pa_k_area: f64,
    /// At the threshold the run flags at (its `threshold_rule`).
    pub flagged: RuleFigures,
    /// At each rule's, and at each probe of the tail.
    pub rules: Vec<RuleFigures>,
}

impl TrackFigures {
    /// The figures at `rule` (a name of [`RuleFigures::rule`]).
    pub fn at(&self, rule: &str) -> Option<&RuleFigures> {
        self.rules.iter().find(|r| r.rule == rule)
    }
}

/// One run of the corpus, its figures only.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CorpusRun {
    /// The KPI.
    pub kpi: String,
    /// Its group.
    pub group: String,
    /// The variant's index.
    pub variant: usize,
    /// The seed.
    pub seed: u64,
    /// Points of the series as run (after `max_points`).
    pub points: usize,
    /// Labelled segments of the validation and test parts.
    pub segments: [usize; 2],
    /// The model's figures.
    pub model: TrackFigures,
    /// Spectral Residual's, by the same rules.
    pub spectral_residual: Option<TrackFigures>,
    /// Chance: mean point-adjusted F1 of random scores flagging as many points as the model.
    pub chance_flagged_f1: f64,
    /// Training seconds.
    pub train_secs: f64,
    /// Scoring seconds.
    pub score_secs: f64,
    /// Steps trained (to the last validation).
    pub steps: usize,
    /// The step whose parameters were kept.
    pub best_step: usize,
}

/// Every run of a corpus, and what it was run with: what `--json` writes and `--summarise`
/// reads back.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CorpusResult {
    /// The variants.
    pub variants: Vec<Variant>,
    /// Seeds per variant.
    pub seeds: u64,
    /// `max_points`, if the KPIs were cut.
    pub max_points: Option<usize>,
    /// The runs, in (KPI, variant, seed) order.
    pub runs: Vec<CorpusRun>,
    /// Runs that failed, with why.
    pub failures: Vec<String>,
}

/// `raw` cut to its last `max_points` points.
fn cut(mut raw: RawSeries, max_points: Option<usize>) -> RawSeries {
    if let Some(n) = max_points.filter(|&n| n < raw.timestamps.len()) {
        let from = raw.timestamps.len() - n;
        raw.timestamps.drain(..from);
        raw.values.drain(..from);
        raw.labels.drain(..from);
    }
    raw
}

/// The figures of `scores` on `prep`'s test part at `threshold`, asked for as `rule`.
fn figures(
    prep: &Prepared,
    scores: &[Option<f64>],
    delay: usize,
    rule: String,
    threshold: Threshold,
) -> RuleFigures {
    let test = prep.part(Part::Test);
    let at = AtThreshold::of(
        &scores[test.clone()],
        &prep.labels[test.clone()],
        &prep.missing[test],
        delay,
        threshold,
    );
    RuleFigures {
        rule,
        used: rule_name(&threshold.rule),
        f1: at.adjusted.f1,
        f1_delay: at.delay.f1,
        pa_k_area: at.pa_k.area,
        flagged_points: at.flagged_points,
    }
}

/// The short name of a rule, as the tables print it.
fn rule_name(rule: &ThresholdRule) -> String {
    match rule {
        ThresholdRule::BestF1Test => "best_f1_test".into(),
        ThresholdRule::BestF1Validation { .. } => "validation".into(),
        ThresholdRule::Pot { risk, .. } => format!("pot {risk:e}"),
        ThresholdRule::AlarmRate { .. } => "alarm_rate".into(),
        ThresholdRule::Chosen => "chosen".into(),
    }
}

/// A track's figures: its evaluation's best, at `flagged`, at each of [`CHOICES`] among its
/// `thresholds`, and at each probe of the tail of `alarm` (the part the label-free rules use and
/// its normal scores, ascending, as [`crate::pipeline::alarm_rate_scores`] gives them).
#[allow(clippy::too_many_arguments)]
fn track(
    prep: &Prepared,
    config: &DonutConfig,
    scores: &[Option<f64>],
    evaluation: &TrackEvaluation,
    thresholds: &[Threshold],
    flagged: Threshold,
    alarm: (Part, &[f64]),
) -> TrackFigures {
    let delay = config.eval_delay;
    let mut rules: Vec<RuleFigures> = CHOICES
        .iter()
        .filter_map(|&choice| {
            let picked = pick_threshold(thresholds, choice)?;
            Some(figures(
                prep,
                scores,
                delay,
                choice.name().into(),
                picked.threshold,
            ))
        })
        .collect();
    // One fit of the tail; each probe only moves its risk.
    let (part, normal) = alarm;
    if let Ok(fit) = crate::eval::pot::fit(normal, config.pot_level, config.pot_risk) {
        for risk in POT_RISK_PROBES {
            let Ok(at) = fit.at_risk(risk) else { continue };
            let threshold = Threshold {
                value: at.threshold,
                rule: ThresholdRule::Pot {
                    risk,
                    level: config.pot_level,
                    part,
                },
            };
            rules.push(figures(
                prep,
                scores,
                delay,
                format!("pot {risk:e}"),
                threshold,
            ));
        }
    }
    TrackFigures {
        best_f1: evaluation.best.best_f1.f1,
        best_f1_delay: evaluation.best.best_f1_delay.f1,
        best_pa_k_area: evaluation.best_pa_k.area,
        flagged: figures(
            prep,
            scores,
            delay,
            config.threshold_rule.name().into(),
            flagged,
        ),
        rules,
    }
}

/// The figures of a finished run.
fn run_figures(
    kpi: &CorpusKpi,
    variant: usize,
    prep: &Prepared,
    config: &DonutConfig,
    record: &RunRecord,
) -> Option<CorpusRun> {
    let evaluation = record.evaluation.as_ref()?;
    // The part of the run's label-free rules (its reference scores are that part's).
    let model_part = record
        .thresholds
        .iter()
        .find_map(|t| match t.rule {
            ThresholdRule::Pot { part, .. } | ThresholdRule::AlarmRate { part, .. } => Some(part),
            _ => None,
        })
        .unwrap_or(Part::Valid);
    let model = track(
        prep,
        config,
        &record.scores,
        evaluation,
        &record.thresholds,
        record.threshold,
        (model_part, &record.reference_scores),
    );
    let spectral_residual = record.baselines.spectral_residual.as_ref().and_then(|sr| {
        let (part, normal) = crate::pipeline::alarm_rate_scores(prep, &sr.scores);
        Some(track(
            prep,
            config,
            &sr.scores,
            sr.evaluation.as_ref()?,
            &sr.thresholds,
            sr.threshold,
            (part, &normal),
        ))
    });
    let segments = [Part::Valid, Part::Test]
        .map(|p| crate::eval::label_segments(&prep.labels[prep.part(p)]).len());
    Some(CorpusRun {
        kpi: kpi.name.clone(),
        group: kpi.group.clone(),
        variant,
        seed: config.seed,
        points: prep.len(),
        segments,
        model,
        spectral_residual,
        chance_flagged_f1: record
            .baselines
            .chance
            .as_ref()
            .map_or(0.0, |c| c.flagged_f1),
        train_secs: record.stats.train_secs,
        score_secs: record.score_secs,
        steps: record
            .history
            .validations
            .last()
            .map_or(0, |v| v.step)
            .max(record.stats.stopped_early.unwrap_or(0)),
        best_step: record
            .history
            .validations
            .iter()
            .rfind(|v| v.best)
            .map_or(0, |v| v.step),
    })
}

/// Runs every (KPI, variant, seed) of `spec` on `kpis`, `spec.jobs` at a time, the largest KPIs
/// first, calling `on_run` as each finishes or fails; stops starting runs once `cancel` is set.
/// KPIs whose test part has no labelled anomaly are run but give no figures (a failure saying
/// so).
pub fn run_corpus(
    kpis: &[CorpusKpi],
    spec: &CorpusSpec,
    cancel: &AtomicBool,
    on_run: &(dyn Fn(Result<&CorpusRun, &str>) + Sync),
) -> Result<CorpusResult, CorpusError> {
    let configs = crate::sweep::job_configs(&crate::sweep::SweepSpec {
        variants: spec.variants.clone(),
        seeds: spec.seeds,
        base: spec.base.clone(),
        jobs: spec.jobs,
        host: Host::Cli,
    })?;
    let options = LoadOptions {
        duplicates: spec.base.duplicates,
        ..Default::default()
    };
    let mut series = Vec::new();
    for kpi in kpis {
        let raw = crate::data::load_csv_with(&kpi.path, &options)?;
        series.push(cut(raw, spec.max_points));
    }
    let mut jobs: Vec<(usize, usize)> = (0..kpis.len())
        .flat_map(|k| (0..configs.len()).map(move |c| (k, c)))
        .collect();
    // The longest runs first, so that the pool does not end on one.
    jobs.sort_by_key(|&(k, c)| (std::cmp::Reverse(series[k].timestamps.len()), k, c));
    let threads = spec.jobs.clamp(1, jobs.len().max(1));
    let failures = std::sync::Mutex::new(Vec::new());
    let ran = crate::threads::run_pool("corpus", threads, &jobs, cancel, |&(k, c)| {
        let (variant, _, config) = &configs[c];
        let config = crate::threads::resolved(config, Host::Cli, threads);
        let outcome = Prepared::new(&series[k], &config)
            .map_err(|e| e.to_string())
            .and_then(|prep| {
                let mut hooks = CancelHooks { cancel };
                match crate::pipeline::run(&prep, &config, &[Part::Test], &mut hooks) {
                    Ok(record) => Ok((prep, record)),
                    Err(RunError::Stopped(_)) => Err(String::new()),
                    Err(e) => Err(e.to_string()),
                }
            })
            .and_then(|(prep, record)| {
                run_figures(&kpis[k], *variant, &prep, &config, &record)
                    .ok_or_else(|| record.no_f1_reason.unwrap_or_else(|| "no figures".into()))
            });
        match outcome {
            Ok(run) => {
                on_run(Ok(&run));
                Some((k, c, run))
            }
            Err(why) if why.is_empty() => None,
            Err(why) => {
                let line = format!(
                    "{} ({} seed {}): {why}",
                    kpis[k].name, spec.variants[*variant].label, config.seed
                );
                on_run(Err(&line));
                if let Ok(mut f) = failures.lock() {
                    f.push(line);
                }
                None
            }
        }
    });
    let mut runs = ran.results;
    runs.sort_by_key(|&(k, c, _)| (k, c));
    Ok(CorpusResult {
        variants: spec.variants.clone(),
        seeds: spec.seeds,
        max_points: spec.max_points,
        runs: runs.into_iter().map(|(_, _, r)| r).collect(),
        failures: failures.into_inner().unwrap_or_default(),
    })
}

/// One figure of a run, by name, for the tables.
pub type Figure = fn(&CorpusRun) -> Option<f64>;

/// The figures the tables show, by column name.
pub const FIGURES: &[(&str, Figure)] = &[
    ("best F1", |r| Some(r.model.best_f1)),
    ("best d7", |r| Some(r.model.best_f1_delay)),
    ("flagged F1", |r| Some(r.model.flagged.f1)),
    ("flagged d7", |r| Some(r.model.flagged.f1_delay)),
    ("POT F1", |r| r.model.at("pot").map(|f| f.f1)),
    ("POT d7", |r| r.model.at("pot").map(|f| f.f1_delay)),
    ("PA%K area", |r| Some(r.model.flagged.pa_k_area)),
    ("SR best", |r| {
        r.spectral_residual.as_ref().map(|s| s.best_f1)
    }),
    ("SR flagged", |r| {
        r.spectral_residual.as_ref().map(|s| s.flagged.f1)
    }),
    ("chance", |r| Some(r.chance_flagged_f1)),
];

/// Mean and standard error of `values` (0 for fewer than two).
pub fn mean_se(values: &[f64]) -> (f64, f64) {
    let n = values.len() as f64;
    if values.is_empty() {
        return (f64::NAN, 0.0);
    }
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (var / n).sqrt())
}

/// The mean of `figure` over `runs` (those that have it).
fn mean_of(runs: &[&CorpusRun], figure: Figure) -> f64 {
    let values: Vec<f64> = runs.iter().filter_map(|r| figure(r)).collect();
    mean_se(&values).0
}

fn cell(v: f64) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.3}")
    }
}

/// The Markdown tables of a corpus: for each variant, a row per KPI (means over seeds), the
/// means per group and over all; each rule's F1 over all runs; then, for each variant beside
/// the first, the paired differences (variant minus base, per KPI and seed) with their
/// standard errors, per group and over all.
pub fn summarise(result: &CorpusResult) -> String {
    let mut out = String::new();
    let header: Vec<&str> = FIGURES.iter().map(|(name, _)| *name).collect();
    // The groups in the order their runs come.
    let mut groups: Vec<&str> = Vec::new();
    for r in &result.runs {
        if !groups.contains(&r.group.as_str()) {
            groups.push(&r.group);
        }
    }
    for (v, variant) in result.variants.iter().enumerate() {
        let runs: Vec<&CorpusRun> = result.runs.iter().filter(|r| r.variant == v).collect();
        let _ = writeln!(
            out,
            "### {} ({})\n",
            variant.label,
            if variant.settings.is_empty() {
                "the settings as given".to_string()
            } else {
                variant.settings.join(", ")
            }
        );
        let _ = writeln!(
            out,
            "| KPI | group | points | seg v/t | runs | {} | 0 flagged | train s |",
            header.join(" | ")
        );
        let _ = writeln!(out, "|{}", "---|".repeat(header.len() + 7));
        let mut kpis: Vec<&str> = runs.iter().map(|r| r.kpi.as_str()).collect();
        kpis.dedup();
        for kpi in kpis {
            let of: Vec<&CorpusRun> = runs.iter().copied().filter(|r| r.kpi == kpi).collect();
            let first = of[0];
            let zero = flagging_nothing(&of);
            let cells: Vec<String> = FIGURES
                .iter()
                .map(|(_, f)| cell(mean_of(&of, *f)))
                .collect();
            let _ = writeln!(
                out,
                "| {kpi} | {} | {} | {}/{} | {} | {} | {zero} | {:.1} |",
                first.group,
                first.points,
                first.segments[0],
                first.segments[1],
                of.len(),
                cells.join(" | "),
                mean_se(&of.iter().map(|r| r.train_secs).collect::<Vec<_>>()).0
            );
        }
        for (name, members) in groups
            .iter()
            .map(|g| {
                (
                    format!("**mean, {g}**"),
                    runs.iter()
                        .copied()
                        .filter(|r| r.group == *g)
                        .collect::<Vec<_>>(),
                )
            })
            .chain(std::iter::once(("**mean, all**".to_string(), runs.clone())))
        {
            if members.is_empty() {
                continue;
            }
            let kpis = {
                let mut k: Vec<&str> = members.iter().map(|r| r.kpi.as_str()).collect();
                k.dedup();
                k.len()
            };
            let zero = flagging_nothing(&members);
            // Each KPI weighs the same: the mean of the KPIs' means.
            let cells: Vec<String> = FIGURES
                .iter()
                .map(|(_, f)| cell(kpi_weighted_mean(&members, *f)))
                .collect();
            let _ = writeln!(
                out,
                "| {name} | | | {kpis} KPIs | {} | {} | {zero} | |",
                members.len(),
                cells.join(" | ")
            );
        }
        out.push('\n');
        // Each rule's F1 over every run (each KPI weighing the same).
        let mut rules: Vec<String> = Vec::new();
        for r in &runs {
            for f in &r.model.rules {
                if !rules.contains(&f.rule) {
                    rules.push(f.rule.clone());
                }
            }
        }
        let _ = writeln!(
            out,
            "| rule | model F1 | model d7 | model 0 flagged | SR F1 | SR d7 |\n|---|---|---|---|---|---|"
        );
        for rule in rules {
            let model = |r: &CorpusRun, f: fn(&RuleFigures) -> f64| r.model.at(&rule).map(f);
            let sr = |r: &CorpusRun, f: fn(&RuleFigures) -> f64| {
                r.spectral_residual
                    .as_ref()
                    .and_then(|s| s.at(&rule))
                    .map(f)
            };
            let mean = |g: &dyn Fn(&CorpusRun) -> Option<f64>| kpi_weighted_mean_with(&runs, g);
            let zero = runs
                .iter()
                .filter(|r| r.model.at(&rule).is_some_and(|f| f.flagged_points == 0))
                .count();
            let _ = writeln!(
                out,
                "| {rule} | {} | {} | {zero} | {} | {} |",
                cell(mean(&|r| model(r, |f| f.f1))),
                cell(mean(&|r| model(r, |f| f.f1_delay))),
                cell(mean(&|r| sr(r, |f| f.f1))),
                cell(mean(&|r| sr(r, |f| f.f1_delay))),
            );
        }
        out.push('\n');
    }
    for (v, variant) in result.variants.iter().enumerate().skip(1) {
        let _ = writeln!(
            out,
            "### {} minus {} (paired per KPI and seed: mean ± standard error)\n",
            variant.label, result.variants[0].label
        );
        let _ = writeln!(out, "| group | pairs | {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len() + 2));
        for group in groups.iter().map(|g| Some(*g)).chain([None]) {
            let pairs: Vec<(&CorpusRun, &CorpusRun)> = result
                .runs
                .iter()
                .filter(|r| r.variant == v && group.is_none_or(|g| r.group == g))
                .filter_map(|r| {
                    result
                        .runs
                        .iter()
                        .find(|b| b.variant == 0 && b.kpi == r.kpi && b.seed == r.seed)
                        .map(|b| (r, b))
                })
                .collect();
            if pairs.is_empty() {
                continue;
            }
            let cells: Vec<String> = FIGURES
                .iter()
                .map(|(_, f)| {
                    let d: Vec<f64> = pairs
                        .iter()
                        .filter_map(|(a, b)| Some(f(a)? - f(b)?))
                        .collect();
                    let (m, se) = mean_se(&d);
                    if m.is_nan() {
                        "-".into()
                    } else {
                        format!("{m:+.3} ± {se:.3}")
                    }
                })
                .collect();
            let _ = writeln!(
                out,
                "| {} | {} | {} |",
                group.unwrap_or("all"),
                pairs.len(),
                cells.join(" | ")
            );
        }
        out.push('\n');
    }
    if !result.failures.is_empty() {
        let _ = writeln!(out, "Runs without figures:\n");
        for f in &result.failures {
            let _ = writeln!(out, "- {f}");
        }
    }
    out
}

/// How many of `runs` flag no test point at the rule they flag at.
fn flagging_nothing(runs: &[&CorpusRun]) -> usize {
    runs.iter()
        .filter(|r| r.model.flagged.flagged_points == 0)
        .count()
}

/// The mean over KPIs of each KPI's mean of `figure` over `runs`.
fn kpi_weighted_mean(runs: &[&CorpusRun], figure: Figure) -> f64 {
    kpi_weighted_mean_with(runs, &|r| figure(r))
}

fn kpi_weighted_mean_with(runs: &[&CorpusRun], figure: &dyn Fn(&CorpusRun) -> Option<f64>) -> f64 {
    let mut kpis: Vec<&str> = runs.iter().map(|r| r.kpi.as_str()).collect();
    kpis.sort_unstable();
    kpis.dedup();
    let means: Vec<f64> = kpis
        .iter()
        .filter_map(|k| {
            let v: Vec<f64> = runs
                .iter()
                .filter(|r| r.kpi == *k)
                .filter_map(|r| figure(r))
                .collect();
            (!v.is_empty()).then(|| mean_se(&v).0)
        })
        .collect();
    mean_se(&means).0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(name: &str, f1: f64, flagged: usize) -> RuleFigures {
        RuleFigures {
            rule: name.into(),
            used: name.into(),
            f1,
            f1_delay: f1 / 2.0,
            pa_k_area: f1 / 4.0,
            flagged_points: flagged,
        }
    }

    fn run(
        kpi: &str,
        group: &str,
        variant: usize,
        seed: u64,
        best: f64,
        flagged: f64,
    ) -> CorpusRun {
        let flagged_points = if flagged > 0.0 { 10 } else { 0 };
        CorpusRun {
            kpi: kpi.into(),
            group: group.into(),
            variant,
            seed,
            points: 1000,
            segments: [2, 3],
            model: TrackFigures {
                best_f1: best,
                best_f1_delay: best,
                best_pa_k_area: best,
                flagged: rule("validation", flagged, flagged_points),
                rules: vec![
                    rule("validation", flagged, flagged_points),
                    rule("pot", 0.5, 3),
                ],
            },
            spectral_residual: None,
            chance_flagged_f1: 0.1,
            train_secs: 1.0,
            score_secs: 1.0,
            steps: 10,
            best_step: 5,
        }
    }

    #[test]
    fn means_weigh_each_kpi_the_same_and_pairs_match_kpi_and_seed() {
        let runs = vec![
            // KPI a: two seeds; KPI b: one. The variant is 0.1 better on every pair.
            run("a", "g1", 0, 0, 0.4, 0.2),
            run("a", "g1", 0, 1, 0.6, 0.0),
            run("b", "g2", 0, 0, 1.0, 0.8),
            run("a", "g1", 1, 0, 0.5, 0.3),
            run("a", "g1", 1, 1, 0.7, 0.1),
            run("b", "g2", 1, 0, 1.1, 0.9),
        ];
        let result = CorpusResult {
            variants: vec![
                Variant {
                    label: "base".into(),
                    settings: vec![],
                },
                Variant {
                    label: "new".into(),
                    settings: vec!["patience=0".into()],
                },
            ],
            seeds: 2,
            max_points: None,
            runs,
            failures: vec!["c (base seed 0): no labels".into()],
        };
        let md = summarise(&result);
        // KPI a's mean best F1 is 0.5, b's 1.0: the mean over KPIs is 0.75 (not 0.667).
        assert!(
            md.contains("| **mean, all** | | | 2 KPIs | 3 | 0.750 |"),
            "{md}"
        );
        assert!(md.contains("| a | g1 | 1000 | 2/3 | 2 | 0.500 |"), "{md}");
        // One of a's base runs flagged nothing.
        assert!(md.contains("| **mean, g1** | | | 1 KPIs | 2 | 0.500 | 0.500 | 0.100 | 0.050 | 0.500 | 0.250 | 0.025 | - | - | 0.100 | 1 |"), "{md}");
        // Paired: +0.1 everywhere, no spread.
        assert!(md.contains("| all | 3 | +0.100 ± 0.000 |"), "{md}");
        assert!(md.contains("| pot | 0.500 |"), "{md}");
        assert!(md.contains("- c (base seed 0): no labels"), "{md}");
    }

    #[test]
    fn the_standard_error_is_the_sample_std_over_root_n() {
        let (m, se) = mean_se(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m - 2.5).abs() < 1e-12);
        assert!((se - (1.666_666_666_666_666_7f64 / 4.0).sqrt()).abs() < 1e-12);
        assert_eq!(mean_se(&[2.0]), (2.0, 0.0));
        assert!(mean_se(&[]).0.is_nan());
    }

    #[test]
    fn a_folder_gives_its_csvs_by_name_and_its_name_as_group() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("aiops");
        std::fs::create_dir(&sub).unwrap();
        for name in ["b.csv", "a.csv", "notes.txt"] {
            std::fs::write(sub.join(name), "timestamp,value\n").unwrap();
        }
        let single = dir.path().join("one.csv");
        std::fs::write(&single, "timestamp,value\n").unwrap();
        let found = kpis(&[sub.clone(), single]).unwrap();
        let names: Vec<(&str, &str)> = found
            .iter()
            .map(|k| (k.name.as_str(), k.group.as_str()))
            .collect();
        let top = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert_eq!(
            names,
            [("a", "aiops"), ("b", "aiops"), ("one", top.as_str())]
        );
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let err = kpis(&[empty]).unwrap_err().to_string();
        assert!(err.contains("no CSV file"), "{err}");
    }
}
