//! The run record: everything a finished run leaves behind, as plain data. The pipeline makes
//! it, the worker hands it to the app, run files keep it, the sweeps summarise it, and `train
//! --json` prints its report.

use crate::config::DonutConfig;
use crate::data::{Part, Prepared, Standardisation};
use crate::eval::{F1Score, Metrics, Threshold};
use crate::history::{History, TrainStats};
use crate::model::{DonutModel, Weight, device_for};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// Facts about the data a run used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
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
    /// Whether the file had a label column.
    pub has_labels: bool,
    /// The loading policies that were applied (duplicates merged, timestamps snapped, ...).
    pub notes: Vec<String>,
    /// What makes results on this data doubtful, and how.
    pub warnings: Vec<String>,
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
            has_labels: prep.has_labels,
            notes: prep.notes.iter().map(ToString::to_string).collect(),
            warnings: prep.warnings.iter().map(ToString::to_string).collect(),
        }
    }
}

/// A finished run: settings, data, training statistics, weights, history, scores and metrics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The donut-explorer version that made it.
    pub app_version: String,
    /// The data it was trained on (a path or a name).
    pub source: String,
    /// Every setting (live changes included).
    pub config: DonutConfig,
    /// The data it was scored on (None for runs saved before this was kept).
    pub data: Option<DataSummary>,
    /// How training went.
    pub stats: TrainStats,
    /// Seconds of scoring.
    pub score_secs: f64,
    /// Windows scored.
    pub scored_windows: usize,
    /// Trained parameters, in module order.
    pub weights: Vec<Weight>,
    /// Every step, every validation, the latent snapshots.
    pub history: History,
    /// Anomaly score per point of the series (None where not scored).
    pub scores: Vec<Option<f64>>,
    /// Best-F1 figures on the test part, when scored and the test part has labels.
    pub metrics: Option<Metrics>,
    /// Why there are no metrics (no labels in the test part), when there are none.
    pub no_f1_reason: Option<String>,
    /// The threshold points are flagged at, and how it was chosen (setting `threshold_rule`).
    pub threshold: Threshold,
    /// Each rule's threshold on these scores (best F1 on the test and the validation labels,
    /// the alarm rate); empty for runs saved before they were kept.
    #[serde(default)]
    pub thresholds: Vec<Threshold>,
    /// The scores of the normal, present points of the part the alarm rate is taken on (the
    /// validation part), ascending: a new alarm rate's threshold is their quantile.
    #[serde(default)]
    pub reference_scores: Vec<f64>,
    /// The mean and standard deviation the training data was standardised with: new data is
    /// standardised with them (None for runs saved before they were kept).
    #[serde(default)]
    pub standardisation: Option<Standardisation>,
}

/// A best F1 with the delay it was computed with.
#[derive(Serialize)]
struct DelayedF1 {
    #[serde(flatten)]
    f1: F1Score,
    delay: usize,
}

/// The JSON report of a run (`train --json`): a view of the record without its bulk.
#[derive(Serialize)]
struct Report<'a> {
    best_f1: Option<F1Score>,
    best_f1_delay: Option<DelayedF1>,
    best_f1_pointwise: Option<F1Score>,
    no_f1_reason: &'a Option<String>,
    threshold: Threshold,
    thresholds: &'a [Threshold],
    train_secs: f64,
    train_windows_per_sec: f64,
    score_secs: f64,
    scored_windows: usize,
    epochs: usize,
    steps: usize,
    latent_snapshots: usize,
    seed: u64,
    stopped: bool,
    best_valid_step: Option<usize>,
    best_valid_loss: Option<f64>,
    data: &'a Option<DataSummary>,
    config: &'a DonutConfig,
}

impl RunRecord {
    /// The version of donut-explorer that this build stamps on records.
    pub fn current_version() -> String {
        env!("CARGO_PKG_VERSION").to_string()
    }

    /// Rebuilds the trained model (inference device of the run's backend); the error says which
    /// weight does not fit the model the settings describe.
    pub fn model(&self) -> Result<DonutModel, String> {
        let device = device_for(self.config.backend);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.config.seed);
        DonutModel::new(&self.config, &mut rng, &device).with_weights(&self.weights)
    }

    /// The figures of the run as one JSON object: `best_f1`, `best_f1_delay` (with its
    /// `delay`), `best_f1_pointwise` (each null without labels, `no_f1_reason` then says why),
    /// `threshold` (value and rule), timings, `epochs`, `steps`, `seed`, `stopped`, the kept
    /// validation, `data` (with its notes and warnings) and `config`.
    pub fn report(&self) -> serde_json::Value {
        let best = self.history.best_validation();
        let report = Report {
            best_f1: self.metrics.map(|m| m.best_f1),
            best_f1_delay: self.metrics.map(|m| DelayedF1 {
                f1: m.best_f1_delay,
                delay: self.config.eval_delay,
            }),
            best_f1_pointwise: self.metrics.map(|m| m.best_f1_pointwise),
            no_f1_reason: &self.no_f1_reason,
            threshold: self.threshold,
            thresholds: &self.thresholds,
            train_secs: self.stats.train_secs,
            train_windows_per_sec: self.stats.train_windows_per_sec,
            score_secs: self.score_secs,
            scored_windows: self.scored_windows,
            epochs: self.stats.epochs_done,
            steps: self.history.steps.len(),
            latent_snapshots: self.history.snapshots.len(),
            seed: self.config.seed,
            stopped: self.stats.stopped,
            best_valid_step: best.map(|v| v.step),
            best_valid_loss: best.map(|v| v.terms.total),
            data: &self.data,
            config: &self.config,
        };
        serde_json::to_value(report).unwrap_or_default()
    }

    /// The record without its bulk (weights, scores, steps and all but the last snapshot): what
    /// a sweep keeps of each run.
    pub fn summary(&self) -> RunRecord {
        RunRecord {
            app_version: self.app_version.clone(),
            source: self.source.clone(),
            config: self.config.clone(),
            data: self.data.clone(),
            stats: self.stats,
            score_secs: self.score_secs,
            scored_windows: self.scored_windows,
            weights: Vec::new(),
            history: History {
                steps: Vec::new(),
                validations: self.history.validations.clone(),
                snapshots: self.history.snapshots.last().cloned().into_iter().collect(),
            },
            scores: Vec::new(),
            metrics: self.metrics,
            no_f1_reason: self.no_f1_reason.clone(),
            threshold: self.threshold,
            thresholds: self.thresholds.clone(),
            reference_scores: self.reference_scores.clone(),
            standardisation: self.standardisation,
        }
    }
}
