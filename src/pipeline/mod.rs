//! One run, end to end: train -> score -> evaluate, leaving a [`RunRecord`]. The command line,
//! the app's worker and the sweeps all call [`run`]; `train --load` calls [`rescore`].

mod record;

pub use record::{DataSummary, RunRecord};

use crate::config::DonutConfig;
use crate::data::{Part, Prepared};
use crate::eval::{Metrics, Threshold, ThresholdRule, evaluate, quantile_threshold};
use crate::model::{DonutModel, device_for};
use crate::score::{Stopped, score_series};
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
    prep.has_labels && prep.labels[prep.part(Part::Test)].contains(&1)
}

/// The parts whose windows a run scores: those asked for, always the test part (the metrics
/// need it), and the validation part when the threshold must come from its scores; in series
/// order.
fn parts_to_score(parts: &[Part], validation_too: bool) -> Vec<Part> {
    let mut parts = parts.to_vec();
    parts.push(Part::Test);
    if validation_too {
        parts.push(Part::Valid);
    }
    parts.sort_by_key(|p| *p as usize);
    parts.dedup();
    parts
}

/// Scores for every point (None where not scored), the test part's best-F1 figures (None
/// without labels, and why), and the threshold.
struct Scored {
    scores: Vec<Option<f64>>,
    metrics: Option<Metrics>,
    no_f1_reason: Option<String>,
    threshold: Threshold,
    score_secs: f64,
    scored_windows: usize,
}

/// Scores the windows of `parts` (and the test part) with `model`, then evaluates the test part.
fn score_and_evaluate(
    model: &DonutModel,
    prep: &Prepared,
    config: &DonutConfig,
    parts: &[Part],
    hooks: &mut dyn RunHooks,
) -> Result<Scored, Stopped> {
    let labelled = test_is_labelled(prep);
    let ends: Vec<usize> = parts_to_score(parts, !labelled)
        .iter()
        .flat_map(|&p| prep.window_ends(p))
        .collect();
    let total = ends.len();
    let started = Instant::now();
    let device = device_for(config.backend);
    let scores = score_series(model, prep, &ends, config, &device, &mut |done| {
        hooks.scoring(done, total)
    })?;
    let score_secs = started.elapsed().as_secs_f64();
    let test = prep.part(Part::Test);
    let (metrics, no_f1_reason, threshold) = if labelled {
        let metrics = evaluate(
            &scores[test.clone()],
            &prep.labels[test.clone()],
            &prep.missing[test],
            config.eval_delay,
        );
        let threshold = Threshold {
            value: metrics.best_f1.threshold,
            rule: ThresholdRule::BestF1Test,
        };
        (Some(metrics), None, threshold)
    } else {
        let reason = if prep.has_labels {
            "the test part has no labelled anomaly, so precision, recall and F1 have no meaning"
        } else {
            "the file has no label column, so precision, recall and F1 have no meaning"
        };
        let valid = prep.part(Part::Valid);
        let value = quantile_threshold(&scores[valid], config.alarm_rate).unwrap_or(f64::INFINITY);
        let threshold = Threshold {
            value,
            rule: ThresholdRule::ValidationQuantile {
                alarm_rate: config.alarm_rate,
            },
        };
        (None, Some(reason.to_string()), threshold)
    };
    Ok(Scored {
        scores,
        metrics,
        no_f1_reason,
        threshold,
        score_secs,
        scored_windows: total,
    })
}

/// Trains on `prep`, scores `parts` (the test part always), evaluates on the test part.
pub fn run(
    prep: &Prepared,
    config: &DonutConfig,
    parts: &[Part],
    hooks: &mut dyn RunHooks,
) -> Result<RunRecord, RunError> {
    let trained = train(prep, config, hooks)?;
    if !hooks.score_after_training() {
        return Err(Stopped.into());
    }
    let scored = score_and_evaluate(&trained.model, prep, &trained.config, parts, hooks)?;
    Ok(RunRecord {
        app_version: RunRecord::current_version(),
        source: prep.source.clone(),
        weights: trained.model.weights(),
        config: trained.config,
        data: Some(DataSummary::of(prep)),
        stats: trained.stats,
        score_secs: scored.score_secs,
        scored_windows: scored.scored_windows,
        history: trained.history,
        scores: scored.scores,
        metrics: scored.metrics,
        no_f1_reason: scored.no_f1_reason,
        threshold: scored.threshold,
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
    let scored = score_and_evaluate(model, prep, config, parts, hooks)?;
    Ok(RunRecord {
        app_version: RunRecord::current_version(),
        source: trained.source.clone(),
        config: config.clone(),
        data: Some(DataSummary::of(prep)),
        stats: trained.stats,
        score_secs: scored.score_secs,
        scored_windows: scored.scored_windows,
        weights: trained.weights.clone(),
        history: trained.history.without_snapshots(),
        scores: scored.scores,
        metrics: scored.metrics,
        no_f1_reason: scored.no_f1_reason,
        threshold: scored.threshold,
    })
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
            prep.raw_values[i].to_string()
        };
        w.write_record([
            prep.timestamps[i].to_string(),
            prep.part_of(i).name().to_string(),
            value,
            prep.labels[i].to_string(),
            (prep.missing[i] as u8).to_string(),
            score.map(|s| format!("{s:.6}")).unwrap_or_default(),
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
