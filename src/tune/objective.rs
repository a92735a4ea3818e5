//! What a trial of `tune` is judged by: the validation part alone, never the test part. The
//! best point-adjusted F1 on the validation labels when they hold enough labelled segments
//! ([`MIN_VALIDATION_SEGMENTS`]); the mean log-likelihood of the normal validation points
//! (their reconstruction probability, `-score`) otherwise, and as the tie-break between equal
//! F1s.

use crate::config::DonutConfig;
use crate::data::{Part, Prepared};
use crate::eval::{Adjust, best_f1};
use crate::model::{DonutModel, device_for};
use crate::score::{Stopped, score_series};
use serde::{Deserialize, Serialize};

/// Labelled anomaly segments the validation part needs before its F1 is the objective: with
/// fewer, one segment found or missed swings the F1 between 0 and 1.
pub const MIN_VALIDATION_SEGMENTS: usize = 2;

/// z samples per window when a trial is scored, when the preview's count is 0 (off).
pub const TRIAL_N_Z: usize = 16;

/// Which figure a search maximises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ObjectiveKind {
    /// Best point-adjusted F1 on the validation labels.
    ValidationF1,
    /// Mean log-likelihood of the normal validation points.
    ValidationLogLikelihood,
}

impl ObjectiveKind {
    /// The objective for `prep`: F1 when its validation labels hold enough segments.
    pub fn for_data(prep: &Prepared) -> Self {
        if validation_segments(prep) >= MIN_VALIDATION_SEGMENTS {
            Self::ValidationF1
        } else {
            Self::ValidationLogLikelihood
        }
    }

    /// In words, for tables and the app.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ValidationF1 => "best F1 on the validation labels",
            Self::ValidationLogLikelihood => "log-likelihood of the normal validation points",
        }
    }
}

/// Labelled anomaly segments (runs of label 1) in the validation part of `prep`.
pub fn validation_segments(prep: &Prepared) -> usize {
    if !prep.has_labels {
        return 0;
    }
    crate::eval::label_segments(&prep.labels[prep.part(Part::Valid)]).len()
}

/// A model's figures on the validation part.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationFigures {
    /// The objective (of the search's kind).
    pub objective: f64,
    /// Mean log-likelihood of the normal validation points (the tie-break).
    pub log_likelihood: f64,
}

impl ValidationFigures {
    /// Figures that lose to any other (a failed trial's).
    pub const WORST: Self = Self {
        objective: f64::NEG_INFINITY,
        log_likelihood: f64::NEG_INFINITY,
    };

    /// Orders figures best first: objective, then log-likelihood.
    pub fn better_than(&self, other: &Self) -> std::cmp::Ordering {
        other
            .objective
            .total_cmp(&self.objective)
            .then(other.log_likelihood.total_cmp(&self.log_likelihood))
    }
}

/// `config` as a trial scores with it: the preview's z samples and MCMC rounds.
pub fn scoring_config(config: &DonutConfig) -> DonutConfig {
    DonutConfig {
        n_z: if config.preview_n_z > 0 {
            config.preview_n_z
        } else {
            TRIAL_N_Z
        },
        mcmc_iterations: config.preview_mcmc_iterations,
        ..config.clone()
    }
}

/// Scores the validation part of `prep` with `model` and returns its figures. Reads the
/// validation part's labels only.
pub fn validation_figures(
    model: &DonutModel,
    prep: &Prepared,
    config: &DonutConfig,
    kind: ObjectiveKind,
    keep_going: &mut dyn FnMut(usize) -> bool,
) -> Result<ValidationFigures, Stopped> {
    let config = scoring_config(config);
    let ends: Vec<usize> = prep.window_ends(Part::Valid).collect();
    let device = device_for(config.backend);
    let scores = score_series(model, prep, &ends, &config, &device, keep_going)?;
    let valid = prep.part(Part::Valid);
    let normal: Vec<f64> = valid
        .clone()
        .filter(|&i| !prep.missing[i] && (!prep.has_labels || prep.labels[i] == 0))
        .filter_map(|i| scores[i])
        .collect();
    let log_likelihood = if normal.is_empty() {
        f64::NEG_INFINITY
    } else {
        -normal.iter().sum::<f64>() / normal.len() as f64
    };
    let objective = match kind {
        ObjectiveKind::ValidationLogLikelihood => log_likelihood,
        ObjectiveKind::ValidationF1 => {
            best_f1(
                &scores[valid.clone()],
                &prep.labels[valid.clone()],
                &prep.missing[valid],
                Adjust::Segment,
            )
            .f1
        }
    };
    Ok(ValidationFigures {
        objective,
        log_likelihood,
    })
}
