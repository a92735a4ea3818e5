//! One complete experiment, headless: train, score, evaluate, and the report the CLI prints.

use crate::config::DonutConfig;
use crate::data::{Part, Prepared};
use crate::eval::{Adjust, F1Score, Metrics, best_f1};
use crate::model::device_for;
use crate::score::{Stopped, score_series};
use crate::train::{TrainError, TrainHooks, TrainOutcome, train};
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// Facts about the data a run used.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataSummary {
    /// Where it came from.
    pub source: String,
    /// Points on the complete grid.
    pub points: usize,
    /// Seconds between points (1 for an index).
    pub interval_secs: i64,
    /// Points missing from the file.
    pub missing: usize,
    /// Labelled anomalous points.
    pub anomalies: usize,
    /// Fraction of points labelled anomalous.
    pub anomaly_ratio: f64,
    /// Roughness of the standardised series.
    pub roughness: f64,
    /// Points in the train, validation and test parts.
    pub split: [usize; 3],
}

impl DataSummary {
    /// Summarises a prepared series.
    pub fn of(prep: &Prepared) -> Self {
        let anomalies = prep.anomaly_count();
        Self {
            source: prep.source.clone(),
            points: prep.len(),
            interval_secs: prep.interval,
            missing: prep.missing_count(),
            anomalies,
            anomaly_ratio: anomalies as f64 / prep.len().max(1) as f64,
            roughness: prep.roughness(),
            split: Part::ALL.map(|p| prep.part(p).len()),
        }
    }
}

/// What a finished run reports (the JSON object of `train --json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunReport {
    /// Point-adjusted best F1, no delay.
    pub best_f1: F1Score,
    /// Point-adjusted best F1 with `config.eval_delay` (serialised as `best_f1_delay7` etc. by the CLI).
    pub best_f1_delay: F1Score,
    /// Point-wise best F1.
    pub best_f1_pointwise: F1Score,
    /// Wall seconds of training (steps, validation).
    pub train_secs: f64,
    /// Windows per second over the optimisation steps.
    pub train_windows_per_sec: f64,
    /// Seconds of scoring.
    pub score_secs: f64,
    /// Windows scored.
    pub scored_windows: usize,
    /// Epochs completed.
    pub epochs: usize,
    /// Optimisation steps.
    pub steps: usize,
    /// The run's seed.
    pub seed: u64,
    /// Whether training was stopped early.
    pub stopped: bool,
    /// Step whose parameters were kept (the lowest validation loss), if any validation ran.
    pub best_valid_step: Option<usize>,
    /// That validation loss.
    pub best_valid_loss: Option<f64>,
    /// The data.
    pub data: DataSummary,
    /// Every setting used.
    pub config: DonutConfig,
}

impl RunReport {
    /// The three F1 figures as a [`Metrics`].
    pub fn metrics(&self) -> Metrics {
        Metrics {
            best_f1: self.best_f1,
            best_f1_delay: self.best_f1_delay,
            best_f1_pointwise: self.best_f1_pointwise,
        }
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Training failed.
    #[error(transparent)]
    Train(#[from] TrainError),
    /// Scoring was stopped.
    #[error(transparent)]
    Stopped(#[from] Stopped),
}

/// A finished run: the report, the trained model, and the anomaly score of every scored point.
pub struct Finished {
    /// The report.
    pub report: RunReport,
    /// The training outcome (model, histories).
    pub outcome: TrainOutcome,
    /// Anomaly score per point of the series (None where not scored).
    pub scores: Vec<Option<f64>>,
}

/// Trains on `prep`, scores `parts` (the test part is always scored), evaluates on the test part.
pub fn run(
    prep: &Prepared,
    config: &DonutConfig,
    parts: &[Part],
    hooks: &mut dyn TrainHooks,
    score_progress: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Finished, RunError> {
    let outcome = train(prep, config, hooks)?;
    let config = outcome.config.clone();
    let mut to_score: Vec<Part> = parts.to_vec();
    if !to_score.contains(&Part::Test) {
        to_score.push(Part::Test);
    }
    to_score.sort_by_key(|p| *p as usize);
    to_score.dedup();
    let ends: Vec<usize> = to_score.iter().flat_map(|&p| prep.window_ends(p)).collect();
    let device = device_for(config.backend);
    let started = Instant::now();
    let total = ends.len();
    let scores = score_series(&outcome.model, prep, &ends, &config, &device, &mut |done| {
        score_progress(done, total)
    })?;
    let score_secs = started.elapsed().as_secs_f64();
    let test = prep.part(Part::Test);
    let (s, l, m) = (
        &scores[test.clone()],
        &prep.labels[test.clone()],
        &prep.missing[test],
    );
    let report = RunReport {
        best_f1: best_f1(s, l, m, Adjust::Segment),
        best_f1_delay: best_f1(s, l, m, Adjust::Delay(config.eval_delay)),
        best_f1_pointwise: best_f1(s, l, m, Adjust::PointWise),
        train_secs: outcome.train_secs,
        train_windows_per_sec: outcome.train_windows_per_sec,
        score_secs,
        scored_windows: total,
        epochs: outcome.epochs_done,
        steps: outcome.steps.len(),
        seed: config.seed,
        stopped: outcome.stopped,
        best_valid_step: outcome
            .validations
            .iter()
            .rev()
            .find(|v| v.best)
            .map(|v| v.step),
        best_valid_loss: outcome
            .validations
            .iter()
            .rev()
            .find(|v| v.best)
            .map(|v| v.terms.total),
        data: DataSummary::of(prep),
        config,
    };
    Ok(Finished {
        report,
        outcome,
        scores,
    })
}

/// Writes the detections CSV: every point with its part, value, label, missing flag, anomaly
/// score and whether it is flagged at `threshold`. Points that end no window have an empty score;
/// a comment line at the top says so.
pub fn write_detections(
    out: &mut dyn std::io::Write,
    prep: &Prepared,
    scores: &[Option<f64>],
    threshold: f64,
) -> std::io::Result<()> {
    writeln!(
        out,
        "# donut-explorer detections for {}. score = anomaly score (-log p of the window ending at the point); \
         it is empty for the first {} points of each part (train/validation/test), which end no window, and for parts \
         not scored. flagged = score >= {threshold} (the best-F1 threshold on the test part); missing points are never flagged.",
        prep.source,
        prep.window - 1
    )?;
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
