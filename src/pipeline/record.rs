//! The run record: everything a finished run leaves behind, as plain data. The pipeline makes
//! it, the worker hands it to the app, run files keep it, the sweeps summarise it, and `train
//! --json` prints its report.

use crate::baseline::SpectralResidual;
use crate::config::DonutConfig;
use crate::data::{Part, Prepared, Standardisation};
use crate::eval::{
    AtThreshold, ChanceEvaluation, F1Score, Metrics, PaKCurve, Threshold, TrackEvaluation,
};
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

/// A baseline detector scored on the same series: its scores, its thresholds by the same rules
/// as the model's, and its figures on the test part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScoredBaseline {
    /// Its settings.
    pub settings: SpectralResidual,
    /// Its anomaly score for every point of the series (empty in a sweep's summaries).
    pub scores: Vec<Option<f64>>,
    /// Each rule's threshold on its scores.
    pub thresholds: Vec<Threshold>,
    /// The one it flags at (the run's `threshold_rule`).
    pub threshold: Threshold,
    /// Its figures on the test part, when that has labels.
    pub evaluation: Option<TrackEvaluation>,
    /// Seconds to score the series.
    pub secs: f64,
}

/// What a run's figures are measured against: a detector that costs nothing, and chance.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Baselines {
    /// Spectral Residual (None when the series is too short for it).
    pub spectral_residual: Option<ScoredBaseline>,
    /// Random scores on the test part's labels (None without labels).
    pub chance: Option<ChanceEvaluation>,
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
    /// The test part's figures at the threshold the run flags at and at each rule's, with
    /// PA%K (None without labels, and for runs saved before they were kept).
    #[serde(default)]
    pub evaluation: Option<TrackEvaluation>,
    /// Spectral Residual and chance on the same series and labels (empty for runs saved
    /// before they were kept).
    #[serde(default)]
    pub baselines: Baselines,
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

/// A baseline in the JSON report: the record's, without its scores.
#[derive(Serialize)]
struct BaselineReport<'a> {
    settings: SpectralResidual,
    threshold: Threshold,
    thresholds: &'a [Threshold],
    evaluation: &'a Option<TrackEvaluation>,
    secs: f64,
}

/// The baselines in the JSON report.
#[derive(Serialize)]
struct BaselinesReport<'a> {
    spectral_residual: Option<BaselineReport<'a>>,
    chance: &'a Option<ChanceEvaluation>,
}

/// Why and where a run stopped before its last epoch.
#[derive(Serialize)]
struct StoppedEarly {
    step: usize,
    why: String,
}

/// What the JSON report says of `best_f1`.
const BEST_F1_IS: &str = "an upper bound: the best F1 over every threshold, picked with the test labels; `flagged_at` is what the run's own threshold gets";

/// The JSON report of a run (`train --json`): a view of the record without its bulk.
#[derive(Serialize)]
struct Report<'a> {
    best_f1: Option<F1Score>,
    best_f1_delay: Option<DelayedF1>,
    best_f1_pointwise: Option<F1Score>,
    no_f1_reason: &'a Option<String>,
    best_f1_is: Option<&'static str>,
    threshold: Threshold,
    thresholds: &'a [Threshold],
    flagged_at: Option<&'a AtThreshold>,
    at_rules: Option<&'a [AtThreshold]>,
    best_pa_k: Option<&'a PaKCurve>,
    baselines: BaselinesReport<'a>,
    train_secs: f64,
    train_windows_per_sec: f64,
    score_secs: f64,
    scored_windows: usize,
    epochs: usize,
    steps: usize,
    latent_snapshots: usize,
    seed: u64,
    stopped: bool,
    stopped_early: Option<StoppedEarly>,
    first_detections_secs: Option<f64>,
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
            best_f1_is: self.metrics.map(|_| BEST_F1_IS),
            threshold: self.threshold,
            thresholds: &self.thresholds,
            flagged_at: self.evaluation.as_ref().map(|e| &e.flagged),
            at_rules: self.evaluation.as_ref().map(|e| e.rules.as_slice()),
            best_pa_k: self.evaluation.as_ref().map(|e| &e.best_pa_k),
            baselines: BaselinesReport {
                spectral_residual: self.baselines.spectral_residual.as_ref().map(|b| {
                    BaselineReport {
                        settings: b.settings,
                        threshold: b.threshold,
                        thresholds: &b.thresholds,
                        evaluation: &b.evaluation,
                        secs: b.secs,
                    }
                }),
                chance: &self.baselines.chance,
            },
            train_secs: self.stats.train_secs,
            train_windows_per_sec: self.stats.train_windows_per_sec,
            score_secs: self.score_secs,
            scored_windows: self.scored_windows,
            epochs: self.stats.epochs_done,
            steps: self.history.steps.len(),
            latent_snapshots: self.history.snapshots.len(),
            seed: self.config.seed,
            stopped: self.stats.stopped,
            stopped_early: self.stats.stopped_early.map(|step| StoppedEarly {
                step,
                why: format!(
                    "the validation loss had not improved for {} validations (setting `patience`); the parameters of step {} were kept",
                    self.config.patience,
                    best.map_or(step, |v| v.step)
                ),
            }),
            first_detections_secs: self.stats.first_detections_secs,
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
            evaluation: self.evaluation.clone(),
            baselines: Baselines {
                spectral_residual: self.baselines.spectral_residual.as_ref().map(|b| {
                    ScoredBaseline {
                        scores: Vec::new(),
                        ..b.clone()
                    }
                }),
                chance: self.baselines.chance.clone(),
            },
            no_f1_reason: self.no_f1_reason.clone(),
            threshold: self.threshold,
            thresholds: self.thresholds.clone(),
            reference_scores: self.reference_scores.clone(),
            standardisation: self.standardisation,
        }
    }
}
