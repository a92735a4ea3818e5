//! One run, end to end: train -> score -> evaluate, leaving a [`RunRecord`]. The command line,
//! the app's worker and the sweeps all call [`run`]; `train --load` calls [`rescore`]. A run's
//! model on new data: [`detect`] (a file), [`stream`] (a point at a time).

pub mod detect;
pub mod preview;
mod record;
pub mod stream;

pub use record::{Baselines, DataSummary, RunRecord, ScoredBaseline};

use crate::baseline::SpectralResidual;
use crate::config::DonutConfig;
use crate::config::ThresholdChoice;
use crate::data::{Part, Prepared};
use crate::eval::{
    Adjust, F1Score, Metrics, Threshold, ThresholdRule, TrackEvaluation, best_f1, evaluate,
    quantile_of_sorted,
};
use crate::model::{DonutModel, device_for};
use crate::score::{Stopped, rescore_masking_flags, score_series};
use crate::train::{TrainError, TrainHooks, train};
use std::time::Instant;

/// A run's connection to its driver: the training loop's hooks, plus the hand-over to scoring
/// and scoring's progress.
pub trait RunHooks: TrainHooks {
    /// Called when training has ended: false ends the run there, without scoring.
    fn score_after_training(&mut self) -> bool {
        true
    }
    /// Scoring progress (windows scored of total); false stops scoring.
    fn scoring(&mut self, _done: usize, _total: usize) -> bool {
        true
    }
    /// Whether to take previews while training (at the cost of up to a tenth of its time).
    fn wants_previews(&self) -> bool {
        false
    }
    /// Preview scores of the run while it trains ([`preview::Preview`]).
    fn preview(&mut self, _preview: preview::Preview) {}
}

impl RunHooks for crate::train::NoHooks {}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// The run was stopped before its scores were complete.
    #[error(transparent)]
    Stopped(#[from] Stopped),
}

/// True when the test part holds a labelled anomaly (an F1 means something).
pub fn test_is_labelled(prep: &Prepared) -> bool {
    part_is_labelled(prep, Part::Test)
}

/// True when `part` of `prep` holds a labelled anomaly.
fn part_is_labelled(prep: &Prepared, part: Part) -> bool {
    prep.has_labels && prep.labels[prep.part(part)].contains(&1)
}

/// The part whose scores the alarm-rate threshold is a quantile of: the validation part, or
/// the training part when the validation part ends no window.
fn alarm_rate_part(prep: &Prepared) -> Part {
    if prep.window_ends(Part::Valid).is_empty() {
        Part::Train
    } else {
        Part::Valid
    }
}

/// The part the alarm rate is taken on, and the scores of its normal points (labelled
/// anomalies and missing points do not count), ascending.
pub fn alarm_rate_scores(prep: &Prepared, scores: &[Option<f64>]) -> (Part, Vec<f64>) {
    let part = alarm_rate_part(prep);
    let mut normal: Vec<f64> = prep
        .part(part)
        .filter(|&i| prep.labels[i] == 0 && !prep.missing[i])
        .filter_map(|i| scores[i].filter(|s| s.is_finite()))
        .collect();
    normal.sort_by(f64::total_cmp);
    (part, normal)
}

/// The parts whose windows a run scores: those asked for, always the test part (the metrics
/// need it) and the part the thresholds are picked on; in series order.
fn parts_to_score(prep: &Prepared, parts: &[Part]) -> Vec<Part> {
    let mut parts = parts.to_vec();
    parts.push(Part::Test);
    parts.push(Part::Valid);
    parts.push(alarm_rate_part(prep));
    parts.sort_by_key(|p| *p as usize);
    parts.dedup();
    parts
}

/// Each rule's threshold for `scores` (one per point of `prep`): the best F1 on the test labels
/// (`test_best`, from the test part's metrics), on the validation labels (where that part holds
/// a labelled anomaly), and two label-free ones on the normal points of a part the model is not
/// evaluated on (`alarm`: the part and its normal scores, from [`alarm_rate_scores`]): peaks over
/// threshold (where a tail can be fitted) and the score that `alarm_rate` of them reach.
pub fn thresholds(
    prep: &Prepared,
    scores: &[Option<f64>],
    test_best: Option<F1Score>,
    alarm: (Part, &[f64]),
    config: &DonutConfig,
) -> Vec<Threshold> {
    let mut out = Vec::new();
    if let Some(best) = test_best {
        out.push(Threshold {
            value: best.threshold,
            rule: ThresholdRule::BestF1Test,
        });
    }
    if part_is_labelled(prep, Part::Valid) {
        let r = prep.part(Part::Valid);
        let best = best_f1(
            &scores[r.clone()],
            &prep.labels[r.clone()],
            &prep.missing[r.clone()],
            Adjust::Segment,
        );
        if best.f1 > 0.0 {
            out.push(Threshold {
                value: best.threshold,
                rule: ThresholdRule::BestF1Validation {
                    segments: crate::eval::label_segments(&prep.labels[r]).len(),
                },
            });
        }
    }
    let (part, normal) = alarm;
    if let Ok(fit) = crate::eval::pot::fit(normal, config.pot_level, config.pot_risk) {
        out.push(Threshold {
            value: fit.threshold,
            rule: ThresholdRule::Pot {
                risk: config.pot_risk,
                level: config.pot_level,
                part,
            },
        });
    }
    if let Some(value) = quantile_of_sorted(normal, config.alarm_rate) {
        out.push(Threshold {
            value,
            rule: ThresholdRule::AlarmRate {
                alarm_rate: config.alarm_rate,
                part,
            },
        });
    }
    out
}

/// The threshold `choice` picks among a run's `thresholds` ([`crate::eval::pick_threshold`]:
/// the validation rule falls back to the alarm rate, the test rule to the validation rule).
/// Infinite (nothing flagged) when no rule applies (nothing was scored).
pub fn choose_threshold(thresholds: &[Threshold], choice: ThresholdChoice) -> Threshold {
    crate::eval::pick_threshold(thresholds, choice)
        .map(|picked| picked.threshold)
        .unwrap_or(Threshold {
            value: f64::INFINITY,
            rule: ThresholdRule::Chosen,
        })
}

/// Scores for every point (None where not scored), the test part's best-F1 figures (None
/// without labels, and why), each rule's threshold and the one flagged at, the test part's
/// figures at each of them, and the baselines.
struct Scored {
    scores: Vec<Option<f64>>,
    metrics: Option<Metrics>,
    no_f1_reason: Option<String>,
    thresholds: Vec<Threshold>,
    threshold: Threshold,
    reference_scores: Vec<f64>,
    score_secs: f64,
    scored_windows: usize,
    evaluation: Option<TrackEvaluation>,
    baselines: Baselines,
}

/// The test part of `scores` evaluated on `prep`'s labels at `flagged` and each of `rules`.
fn evaluate_test(
    prep: &Prepared,
    scores: &[Option<f64>],
    delay: usize,
    rules: &[Threshold],
    flagged: Threshold,
) -> TrackEvaluation {
    let test = prep.part(Part::Test);
    TrackEvaluation::of(
        &scores[test.clone()],
        &prep.labels[test.clone()],
        &prep.missing[test],
        delay,
        rules,
        flagged,
    )
}

/// The test part's best F1 (point-adjusted) of `scores`, when it has labels.
fn test_best(prep: &Prepared, scores: &[Option<f64>]) -> Option<F1Score> {
    test_is_labelled(prep).then(|| {
        let test = prep.part(Part::Test);
        best_f1(
            &scores[test.clone()],
            &prep.labels[test.clone()],
            &prep.missing[test],
            Adjust::Segment,
        )
    })
}

/// Spectral Residual on the whole series, its thresholds by the same rules as the model's (on
/// its own validation scores) and, with labels, its figures on the test part.
fn spectral_residual(prep: &Prepared, config: &DonutConfig) -> Option<ScoredBaseline> {
    let started = Instant::now();
    let settings = SpectralResidual::default();
    let scores: Vec<Option<f64>> = settings
        .scores(&prep.raw_values, &prep.missing)?
        .into_iter()
        .map(Some)
        .collect();
    let (part, normal) = alarm_rate_scores(prep, &scores);
    let rules = thresholds(
        prep,
        &scores,
        test_best(prep, &scores),
        (part, &normal),
        config,
    );
    let threshold = choose_threshold(&rules, config.threshold_rule);
    let evaluation = test_is_labelled(prep)
        .then(|| evaluate_test(prep, &scores, config.eval_delay, &rules, threshold));
    Some(ScoredBaseline {
        settings,
        scores,
        thresholds: rules,
        threshold,
        evaluation,
        secs: started.elapsed().as_secs_f64(),
    })
}

/// The baselines of a run: Spectral Residual, and chance on the test labels for a detector
/// that can flag the points the model scored and flags as many as it does.
fn baselines(
    prep: &Prepared,
    config: &DonutConfig,
    scores: &[Option<f64>],
    evaluation: Option<&TrackEvaluation>,
) -> Baselines {
    let test = prep.part(Part::Test);
    let chance = evaluation.map(|e| {
        let flaggable: Vec<bool> = test
            .clone()
            .map(|i| scores[i].is_some() && !prep.missing[i])
            .collect();
        // Its draws in parallel on the run's threads (the figures do not depend on how many).
        crate::threads::pool(crate::threads::for_backend(config)).install(|| {
            crate::eval::chance(
                &prep.labels[test.clone()],
                &flaggable,
                e.flagged.flagged_points,
                config.eval_delay,
                config.seed,
            )
        })
    });
    Baselines {
        spectral_residual: spectral_residual(prep, config),
        chance,
    }
}

/// Scores the windows of `parts` (and those the metrics and thresholds need) with `model`,
/// then evaluates the test part, and (`with_baselines`) scores the baselines beside it.
fn score_and_evaluate(
    model: &DonutModel,
    prep: &Prepared,
    config: &DonutConfig,
    parts: &[Part],
    hooks: &mut dyn RunHooks,
    with_baselines: bool,
) -> Result<Scored, Stopped> {
    let ends: Vec<usize> = parts_to_score(prep, parts)
        .iter()
        .flat_map(|&p| prep.window_ends(p))
        .collect();
    let total = ends.len();
    let started = Instant::now();
    let device = device_for(config.backend);
    let mut scores = score_series(model, prep, &ends, config, &device, &mut |done, windows| {
        hooks.scoring(done, windows)
    })?;
    let (part, reference_scores) = alarm_rate_scores(prep, &scores);
    // The rules' thresholds come from the scores as a batch gives them; then, with
    // `mask_flagged`, the test part is scored as a detector running in time order would score
    // it at the threshold flagged at (a flagged point missing in the windows after it), and
    // its figures (the test labels' best threshold too) are those of these scores.
    let mut thresholds = thresholds(
        prep,
        &scores,
        test_best(prep, &scores),
        (part, &reference_scores),
        config,
    );
    let threshold = choose_threshold(&thresholds, config.threshold_rule);
    if config.mask_flagged && threshold.value.is_finite() {
        let test_ends: Vec<usize> = prep.window_ends(Part::Test).collect();
        rescore_masking_flags(
            model,
            prep,
            &test_ends,
            config,
            &device,
            threshold.value,
            &mut scores,
        );
    }
    let score_secs = started.elapsed().as_secs_f64();
    let test = prep.part(Part::Test);
    let (metrics, no_f1_reason) = if test_is_labelled(prep) {
        let metrics = evaluate(
            &scores[test.clone()],
            &prep.labels[test.clone()],
            &prep.missing[test],
            config.eval_delay,
        );
        (Some(metrics), None)
    } else {
        let reason = if prep.has_labels {
            "the test part has no labelled anomaly, so precision, recall and F1 have no meaning"
        } else {
            "the file has no label column, so precision, recall and F1 have no meaning"
        };
        (None, Some(reason.to_string()))
    };
    // Masking rescores the test part only: the test labels' best threshold is that of the final
    // metrics, while the validation and alarm-rate thresholds stay as they are.
    if let Some(best) = metrics.map(|m| m.best_f1) {
        for t in thresholds
            .iter_mut()
            .filter(|t| t.rule == ThresholdRule::BestF1Test)
        {
            t.value = best.threshold;
        }
    }
    let evaluation = metrics
        .is_some()
        .then(|| evaluate_test(prep, &scores, config.eval_delay, &thresholds, threshold));
    let baselines = if with_baselines {
        baselines(prep, config, &scores, evaluation.as_ref())
    } else {
        Baselines::default()
    };
    Ok(Scored {
        scores,
        metrics,
        no_f1_reason,
        thresholds,
        threshold,
        reference_scores,
        score_secs,
        scored_windows: total,
        evaluation,
        baselines,
    })
}

/// Trains on `prep`, scores `parts` (the test part always), evaluates on the test part.
pub fn run(
    prep: &Prepared,
    config: &DonutConfig,
    parts: &[Part],
    hooks: &mut dyn RunHooks,
) -> Result<RunRecord, RunError> {
    let mut previewing = preview::Previewing::new(hooks, prep, config);
    let trained = train(prep, config, &mut previewing)?;
    let mut stats = trained.stats;
    stats.first_detections_secs = previewing.first_secs;
    let hooks = previewing.inner;
    if !hooks.score_after_training() {
        return Err(Stopped.into());
    }
    let scored = score_and_evaluate(&trained.model, prep, &trained.config, parts, hooks, true)?;
    Ok(RunRecord {
        app_version: RunRecord::current_version(),
        source: prep.source.clone(),
        weights: trained.model.weights(),
        config: trained.config,
        data: Some(DataSummary::of(prep)),
        stats,
        score_secs: scored.score_secs,
        scored_windows: scored.scored_windows,
        evaluation: scored.evaluation,
        baselines: scored.baselines,
        history: trained.history,
        scores: scored.scores,
        metrics: scored.metrics,
        no_f1_reason: scored.no_f1_reason,
        thresholds: scored.thresholds,
        threshold: scored.threshold,
        reference_scores: scored.reference_scores,
        standardisation: Some(prep.standardisation()),
    })
}

/// Scores `parts` of `prep` (the test part always) with the weights of `trained` under
/// `config` (its settings, scoring settings changed), without training: a new record on this
/// data that keeps the training statistics and history of `trained`.
pub fn rescore(
    trained: &RunRecord,
    model: &DonutModel,
    prep: &Prepared,
    config: &DonutConfig,
    parts: &[Part],
    hooks: &mut dyn RunHooks,
) -> Result<RunRecord, RunError> {
    let scored = score_and_evaluate(model, prep, config, parts, hooks, true)?;
    Ok(RunRecord {
        app_version: RunRecord::current_version(),
        source: trained.source.clone(),
        config: config.clone(),
        data: Some(DataSummary::of(prep)),
        stats: trained.stats,
        score_secs: scored.score_secs,
        scored_windows: scored.scored_windows,
        evaluation: scored.evaluation,
        baselines: scored.baselines,
        weights: trained.weights.clone(),
        history: trained.history.without_snapshots(),
        scores: scored.scores,
        metrics: scored.metrics,
        no_f1_reason: scored.no_f1_reason,
        thresholds: scored.thresholds,
        threshold: scored.threshold,
        reference_scores: scored.reference_scores,
        standardisation: trained.standardisation.or(Some(prep.standardisation())),
    })
}

/// A value as the output files and lines write it: plain decimals in the usual range, and
/// scientific notation for the very large and the very small (1e308 is `1e308`, not 309
/// digits).
pub fn number_text(value: f64) -> String {
    let magnitude = value.abs();
    if value == 0.0 || (1e-5..1e15).contains(&magnitude) || !value.is_finite() {
        value.to_string()
    } else {
        format!("{value:e}")
    }
}

/// An anomaly score as the output files write it: six decimals, or scientific notation past a
/// billion (an extreme point's score is finite but can be huge).
pub fn score_text(score: f64) -> String {
    if score.abs() < 1e9 {
        format!("{score:.6}")
    } else {
        format!("{score:.6e}")
    }
}

/// Writes the detections CSV, its header on line 1 (it loads with pandas' defaults and with
/// `donut-explorer train --data`): every point with its part, value, label, missing flag,
/// anomaly score (-log p of the window ending at the point; empty where no window ends or the
/// part was not scored) and whether it is flagged at `threshold` (missing points never are).
/// What the columns mean and where the threshold came from go in [`detections_provenance`].
pub fn write_detections(
    out: &mut dyn std::io::Write,
    prep: &Prepared,
    scores: &[Option<f64>],
    threshold: f64,
) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    w.write_record([
        "timestamp",
        "part",
        "value",
        "label",
        "missing",
        "score",
        "flagged",
    ])?;
    for (i, &score) in scores.iter().enumerate().take(prep.len()) {
        let flagged = !prep.missing[i] && score.is_some_and(|s| s >= threshold);
        let value = if prep.missing[i] {
            String::new()
        } else {
            number_text(prep.raw_values[i])
        };
        w.write_record([
            prep.timestamps[i].to_string(),
            prep.part_of(i).name().to_string(),
            value,
            prep.labels[i].to_string(),
            (prep.missing[i] as u8).to_string(),
            score.map(crate::pipeline::score_text).unwrap_or_default(),
            (flagged as u8).to_string(),
        ])?;
    }
    w.flush()?;
    Ok(())
}

/// Where a detections file's provenance goes: the same path with `.json` appended.
pub fn sidecar_path(path: &std::path::Path) -> std::path::PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".json");
    name.into()
}

/// Writes the detections CSV of `record` on `prep` flagged at `threshold`, and its provenance
/// beside it ([`sidecar_path`]), each atomically.
pub fn save_detections(
    path: &std::path::Path,
    prep: &Prepared,
    record: &RunRecord,
    threshold: &Threshold,
) -> std::io::Result<()> {
    crate::fsio::write_atomically(path, |w| {
        write_detections(w, prep, &record.scores, threshold.value)
    })?;
    let provenance = detections_provenance(prep, record, threshold);
    crate::fsio::write_atomically(&sidecar_path(path), |w| {
        serde_json::to_writer_pretty(&mut *w, &provenance).map_err(std::io::Error::other)
    })
}

/// The provenance of a detections file (its sidecar JSON): the data, the threshold and its rule,
/// the run's settings, and what the columns mean.
pub fn detections_provenance(
    prep: &Prepared,
    record: &RunRecord,
    threshold: &Threshold,
) -> serde_json::Value {
    serde_json::json!({
        "source": prep.source,
        "written_by": format!("donut-explorer {}", RunRecord::current_version()),
        "threshold": threshold,
        "threshold_rule": threshold.rule.to_string(),
        "columns": {
            "timestamp": "unix seconds (the row index when the file had none)",
            "part": "train, validation or test",
            "value": "the value as read (empty: missing)",
            "label": "1 = labelled anomaly",
            "missing": "1 = missing in the file (filled with 0)",
            "score": format!("anomaly score, -log p of the window of {} points ending here; empty for the first {} points of the train and validation parts, which end no window, and for parts not scored", prep.window, prep.window - 1),
            "flagged": "1 = score >= threshold (missing points are never flagged)",
        },
        "metrics": record.metrics,
        "no_f1_reason": record.no_f1_reason,
        "config": record.config,
    })
}
