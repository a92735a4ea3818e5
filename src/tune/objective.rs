//! What a trial of `tune` is judged by: never the test part. By default the validation part
//! alone. With
//! enough labelled segments in the validation part ([`MIN_VALIDATION_SEGMENTS`]), the best
//! point-adjusted F1 on its labels, or the area under its PA%K curve (the best F1 when a segment
//! counts as found only once K % of its points are flagged, K from 0 to 100): an F1 of 1.0 is
//! common on a validation part with few segments, where the area still tells detectors apart.
//! Without labels, the mean log-likelihood of the normal validation points (their
//! reconstruction probability, `-score`). Ties are broken by the log-likelihood, then the area,
//! then the F1: over 32 trials each trained to its end, the log-likelihood ranked the trials'
//! test best F1 best of the three (Spearman 0.685 on curve_61, 0.727 on cpu4, against 0.477 /
//! 0.283 for the F1 and 0.352 / -0.313 for the area; docs/TUNING.md, session 11). `fit-f1`
//! reads the labels of the training part too (more segments, on points the model trained on).

use crate::config::DonutConfig;
use crate::data::{Part, Prepared};
use crate::eval::{Adjust, Labelled, Ranking, pa_k_curve_best_of};
use crate::model::{DonutModel, device_for};
use crate::score::{Stopped, score_series};
use serde::{Deserialize, Serialize};

/// Labelled anomaly segments the validation part needs before a figure of its labels is the
/// objective: with fewer, one segment found or missed swings the F1 between 0 and 1.
pub const MIN_VALIDATION_SEGMENTS: usize = 2;

/// z samples per window when a trial is scored, when the preview's count is 0 (off).
pub const TRIAL_N_Z: usize = 16;

/// Which figure a search maximises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "kebab-case")]
pub enum ObjectiveKind {
    /// Best point-adjusted F1 on the validation labels.
    #[value(name = "f1")]
    ValidationF1,
    /// Area under the PA%K curve of best F1 on the validation labels.
    #[value(name = "pa-k")]
    ValidationPaKArea,
    /// Mean log-likelihood of the normal validation points.
    #[value(name = "log-likelihood")]
    ValidationLogLikelihood,
    /// Best point-adjusted F1 on the labels of the training and validation parts together:
    /// more segments than the validation part alone, though the model has trained on the
    /// training part's normal points (its labelled anomalies are left out of the M-ELBO).
    #[value(name = "fit-f1")]
    FitF1,
}

/// The objective a search uses when none is asked for (on data whose validation labels allow
/// it).
pub const DEFAULT_LABELLED_OBJECTIVE: ObjectiveKind = ObjectiveKind::ValidationF1;

/// An objective of the validation labels asked for where the validation part has too few
/// labelled segments.
#[derive(Debug, thiserror::Error)]
#[error(
    "the objective \"{}\" needs at least {MIN_VALIDATION_SEGMENTS} labelled anomaly segments in {}, and it has {segments}: use log-likelihood",
    kind.describe(),
    kind.labelled_parts()
)]
pub struct TooFewSegments {
    /// The objective asked for.
    pub kind: ObjectiveKind,
    /// The segments the part it reads has.
    pub segments: usize,
}

impl ObjectiveKind {
    /// The objective for `prep`: `wanted`, or when None, [`DEFAULT_LABELLED_OBJECTIVE`] where
    /// its validation labels hold enough segments and the log-likelihood elsewhere. Refuses an
    /// objective of the labels where they hold too few segments.
    pub fn for_data(prep: &Prepared, wanted: Option<Self>) -> Result<Self, TooFewSegments> {
        let enough = |kind: Self| kind.segments(prep) >= MIN_VALIDATION_SEGMENTS;
        match wanted {
            None if enough(DEFAULT_LABELLED_OBJECTIVE) => Ok(DEFAULT_LABELLED_OBJECTIVE),
            None => Ok(Self::ValidationLogLikelihood),
            Some(Self::ValidationLogLikelihood) => Ok(Self::ValidationLogLikelihood),
            Some(kind) if enough(kind) => Ok(kind),
            Some(kind) => Err(TooFewSegments {
                kind,
                segments: kind.segments(prep),
            }),
        }
    }

    /// The labelled anomaly segments of the parts this objective reads (0 for the
    /// log-likelihood, which reads no label).
    pub fn segments(self, prep: &Prepared) -> usize {
        match self {
            Self::ValidationLogLikelihood => 0,
            Self::ValidationF1 | Self::ValidationPaKArea => validation_segments(prep),
            Self::FitF1 => fit_segments(prep),
        }
    }

    /// The parts whose labels it reads, in words.
    pub fn labelled_parts(self) -> &'static str {
        match self {
            Self::FitF1 => "the training and validation parts",
            _ => "the validation part",
        }
    }

    /// How much a drawn trial's objective must exceed the base settings' before it replaces
    /// them, on a validation part with `segments` labelled segments: one segment's worth of F1
    /// for the figures of the labels (finding or missing one of n segments moves the F1 by
    /// about 1 / (2n), which the validation part cannot tell from chance); 0 for the
    /// log-likelihood.
    pub fn base_margin(self, segments: usize) -> f64 {
        match self {
            Self::ValidationLogLikelihood => 0.0,
            Self::ValidationF1 | Self::ValidationPaKArea | Self::FitF1 => {
                0.5 / segments.max(1) as f64
            }
        }
    }

    /// In words, for tables and the app.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ValidationF1 => "best F1 on the validation labels",
            Self::ValidationPaKArea => "PA%K area on the validation labels",
            Self::ValidationLogLikelihood => "log-likelihood of the normal validation points",
            Self::FitF1 => "best F1 on the training and validation labels",
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

/// The points of the training and validation parts together (all but the test part).
fn fit_range(prep: &Prepared) -> std::ops::Range<usize> {
    prep.part(Part::Train).start..prep.part(Part::Valid).end
}

/// Labelled anomaly segments in the training and validation parts together (a segment across
/// their boundary counts once).
pub fn fit_segments(prep: &Prepared) -> usize {
    if !prep.has_labels {
        return 0;
    }
    crate::eval::label_segments(&prep.labels[fit_range(prep)]).len()
}

/// A model's figures on the validation part.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidationFigures {
    /// The objective (of the search's kind).
    pub objective: f64,
    /// Area under the PA%K curve of best F1 on the validation labels (-inf without labels).
    #[serde(default = "neg_infinity")]
    pub pa_k_area: f64,
    /// Best point-adjusted F1 on the validation labels (-inf without labels).
    #[serde(default = "neg_infinity")]
    pub f1: f64,
    /// Mean log-likelihood of the normal validation points.
    pub log_likelihood: f64,
    /// Best point-adjusted F1 on the training and validation labels (-inf unless the objective
    /// is [`ObjectiveKind::FitF1`]: it scores the training part too).
    #[serde(default = "neg_infinity")]
    pub fit_f1: f64,
}

fn neg_infinity() -> f64 {
    f64::NEG_INFINITY
}

impl ValidationFigures {
    /// Figures that lose to any other (a failed trial's).
    pub const WORST: Self = Self {
        objective: f64::NEG_INFINITY,
        pa_k_area: f64::NEG_INFINITY,
        f1: f64::NEG_INFINITY,
        log_likelihood: f64::NEG_INFINITY,
        fit_f1: f64::NEG_INFINITY,
    };

    /// Orders figures best first: the objective, then the log-likelihood, the PA%K area and the
    /// F1.
    pub fn better_than(&self, other: &Self) -> std::cmp::Ordering {
        let key = |f: &Self| [f.objective, f.log_likelihood, f.pa_k_area, f.f1];
        key(other)
            .iter()
            .zip(&key(self))
            .fold(std::cmp::Ordering::Equal, |order, (theirs, mine)| {
                order.then(theirs.total_cmp(mine))
            })
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

/// Scores the validation part of `prep` with `model` (and the training part, for
/// [`ObjectiveKind::FitF1`]) and returns its figures. Reads no label of the test part.
pub fn validation_figures(
    model: &DonutModel,
    prep: &Prepared,
    config: &DonutConfig,
    kind: ObjectiveKind,
    keep_going: &mut dyn FnMut(usize) -> bool,
) -> Result<ValidationFigures, Stopped> {
    let config = scoring_config(config);
    let fit = kind == ObjectiveKind::FitF1;
    let ends: Vec<usize> = if fit {
        prep.window_ends(Part::Train)
            .chain(prep.window_ends(Part::Valid))
            .collect()
    } else {
        prep.window_ends(Part::Valid).collect()
    };
    let device = device_for(config.backend);
    let scores = score_series(model, prep, &ends, &config, &device, &mut |done, _| {
        keep_going(done)
    })?;
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
    let (f1, pa_k_area) = if validation_segments(prep) > 0 {
        let labelled = Labelled::new(&prep.labels[valid.clone()]);
        let ranking = Ranking::new(&scores[valid.clone()], &prep.missing[valid]);
        (
            ranking.best_of(&labelled, Adjust::Segment).f1,
            pa_k_curve_best_of(&ranking, &labelled).area,
        )
    } else {
        (f64::NEG_INFINITY, f64::NEG_INFINITY)
    };
    let fit_f1 = if fit && fit_segments(prep) > 0 {
        let range = fit_range(prep);
        let labelled = Labelled::new(&prep.labels[range.clone()]);
        Ranking::new(&scores[range.clone()], &prep.missing[range])
            .best_of(&labelled, Adjust::Segment)
            .f1
    } else {
        f64::NEG_INFINITY
    };
    let objective = match kind {
        ObjectiveKind::ValidationLogLikelihood => log_likelihood,
        ObjectiveKind::ValidationF1 => f1,
        ObjectiveKind::ValidationPaKArea => pa_k_area,
        ObjectiveKind::FitF1 => fit_f1,
    };
    Ok(ValidationFigures {
        objective,
        pa_k_area,
        f1,
        log_likelihood,
        fit_f1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    fn figures(objective: f64, log_likelihood: f64, pa_k_area: f64) -> ValidationFigures {
        ValidationFigures {
            objective,
            pa_k_area,
            f1: objective,
            log_likelihood,
            fit_f1: f64::NEG_INFINITY,
        }
    }

    /// The objective decides; on a tie the log-likelihood does, before the PA%K area.
    #[test]
    fn ties_of_the_objective_go_to_the_higher_log_likelihood() {
        let likely = figures(1.0, 0.7, 0.5);
        let wide_area = figures(1.0, 0.4, 0.9);
        assert_eq!(likely.better_than(&wide_area), Ordering::Less);
        assert_eq!(wide_area.better_than(&likely), Ordering::Greater);
        let higher = figures(0.9, 0.9, 0.9);
        let lower = figures(0.8, 1.0, 1.0);
        assert_eq!(higher.better_than(&lower), Ordering::Less);
        assert_eq!(
            figures(1.0, 0.5, 0.6).better_than(&figures(1.0, 0.5, 0.4)),
            Ordering::Less,
            "then the area"
        );
        assert_eq!(likely.better_than(&likely), Ordering::Equal);
    }
}
