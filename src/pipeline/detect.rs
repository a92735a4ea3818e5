//! A trained run on new data: standardise with the training data's statistics, score every point
//! that ends a full window, flag by a threshold that was fixed before the new data was seen.

use super::RunRecord;
use crate::config::{DonutConfig, ThresholdChoice};
use crate::data::{
    ColumnChoice, DataError, LoadOptions, Part, Prepared, RawSeries, Standardisation,
};
use crate::eval::{
    Adjust, ChanceEvaluation, F1Score, Metrics, PaKCurve, Threshold, ThresholdRule, evaluate,
    f1_at, pa_k_curve_at, quantile_of_sorted, quantile_threshold,
};
use crate::model::{DonutModel, device_for};
use crate::score::{Stopped, rescore_masking_flags, score_series};
use serde::Serialize;
use std::time::Instant;

/// Which threshold flags the new data.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ThresholdWanted {
    /// The one the run flags at (its `threshold_rule`).
    Run,
    /// The run's threshold for a rule.
    Rule(ThresholdChoice),
    /// The score that this share of the run's validation windows reach.
    AlarmRate(f64),
    /// A value.
    Value(f64),
}

/// Why new data could not be scored with a run.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The data could not be read or prepared.
    #[error(transparent)]
    Data(#[from] DataError),
    /// The run has no threshold for the rule asked for.
    #[error("{0}")]
    NoThreshold(String),
    /// Scoring was stopped.
    #[error(transparent)]
    Stopped(#[from] Stopped),
}

/// The threshold `wanted` of `record`, fixed from its training data alone, and a note when
/// another rule stood in for the one asked for ([`crate::eval::pick_threshold`], the one
/// resolver of rules).
pub fn resolve_threshold(
    record: &RunRecord,
    wanted: ThresholdWanted,
) -> Result<(Threshold, Option<String>), DetectError> {
    match wanted {
        ThresholdWanted::Run => Ok((record.threshold, None)),
        ThresholdWanted::Value(value) => Ok((
            Threshold {
                value,
                rule: ThresholdRule::Chosen,
            },
            None,
        )),
        ThresholdWanted::Rule(choice) => crate::eval::pick_threshold(&record.thresholds, choice)
            .map(|picked| (picked.threshold, picked.fallback))
            .ok_or_else(|| {
                DetectError::NoThreshold(format!(
                    "the run has no `{}` threshold, nor one to stand in for it: it kept no scores (use --threshold)",
                    choice.name()
                ))
            }),
        ThresholdWanted::AlarmRate(alarm_rate) => alarm_rate_threshold(record, alarm_rate).map(|t| (t, None)),
    }
}

/// The score that `alarm_rate` of the run's normal validation points reach.
fn alarm_rate_threshold(record: &RunRecord, alarm_rate: f64) -> Result<Threshold, DetectError> {
    if !record.reference_scores.is_empty() {
        let part = record
            .thresholds
            .iter()
            .find_map(|t| match t.rule {
                ThresholdRule::AlarmRate { part, .. } => Some(part),
                _ => None,
            })
            .unwrap_or(Part::Valid);
        let value =
            quantile_of_sorted(&record.reference_scores, alarm_rate).unwrap_or(f64::INFINITY);
        return Ok(Threshold {
            value,
            rule: ThresholdRule::AlarmRate { alarm_rate, part },
        });
    }
    // Runs saved before the reference scores were kept: every validation score.
    let split = record.data.as_ref().map(|d| d.split).unwrap_or_default();
    let valid = split[0]..split[0] + split[1];
    let train = 0..split[0];
    let scored = |r: &std::ops::Range<usize>| {
        record
            .scores
            .get(r.clone())
            .filter(|s| s.iter().any(Option::is_some))
    };
    let (part, scores) = match (scored(&valid), scored(&train)) {
        (Some(s), _) => (Part::Valid, s),
        (None, Some(s)) => (Part::Train, s),
        (None, None) => {
            return Err(DetectError::NoThreshold(
                "the run kept no validation scores to take an alarm rate of (it was saved before they were kept: save it again with this version, or use --threshold)".into(),
            ));
        }
    };
    let value = quantile_threshold(scores, alarm_rate)
        .ok_or_else(|| DetectError::NoThreshold("the run's validation part has no score".into()))?;
    Ok(Threshold {
        value,
        rule: ThresholdRule::AlarmRate { alarm_rate, part },
    })
}

/// The statistics new data is standardised with: the run's training statistics, or, for a run
/// saved before they were kept, the new data's own (and a note saying so).
pub fn standardisation_for(
    record: &RunRecord,
    raw: &RawSeries,
) -> (Standardisation, Option<String>) {
    if let Some(stats) = record.standardisation {
        return (stats, None);
    }
    let present: Vec<f64> = raw
        .values
        .iter()
        .zip(&raw.labels)
        .filter(|(v, l)| !v.is_nan() && **l == 0)
        .map(|(v, _)| *v)
        .collect();
    // No normal point: only centre at 0; values too large to sum: refused when applied.
    let Standardisation { mean, std } = if present.is_empty() {
        Standardisation {
            mean: 0.0,
            std: 1.0,
        }
    } else {
        Standardisation::fit(&present).unwrap_or(Standardisation {
            mean: f64::NAN,
            std: f64::NAN,
        })
    };
    (
        Standardisation { mean, std },
        Some(format!(
            "the run was saved before its training statistics were kept: {} is standardised with its own mean {mean:.4} and std {std:.4} (a shift of level will not show)",
            raw.source
        )),
    )
}

/// New data scored with a run.
#[derive(Clone, Debug, Serialize)]
pub struct Detection {
    /// Where the data came from.
    pub source: String,
    /// The statistics it was standardised with.
    pub standardisation: Standardisation,
    /// Anomaly score per point (None for the first W-1 points, which end no full window).
    pub scores: Vec<Option<f64>>,
    /// The threshold points are flagged at.
    pub threshold: Threshold,
    /// Points flagged.
    pub flagged: usize,
    /// Points scored.
    pub scored_windows: usize,
    /// Seconds of scoring.
    pub score_secs: f64,
    /// With labels: precision, recall and F1 at the threshold (point-adjusted, with the run's
    /// delay, point-wise).
    pub at_threshold: Option<[F1Score; 3]>,
    /// With labels: the best F1 over every threshold (an upper bound, it uses the labels).
    pub best: Option<Metrics>,
    /// With labels: F1 under PA%K at the threshold, over K.
    pub pa_k: Option<PaKCurve>,
    /// With labels: random scores on the same labels, flagging as many points.
    pub chance: Option<ChanceEvaluation>,
    /// What to know about the data (notes of loading, warnings, the statistics used).
    pub notes: Vec<String>,
}

/// Prepares `raw` for `record`'s model (training statistics, every full window scored).
pub fn prepare(
    record: &RunRecord,
    raw: &RawSeries,
) -> Result<(Prepared, Option<String>), DataError> {
    let (stats, note) = standardisation_for(record, raw);
    let prep = Prepared::for_detection(raw, record.config.window, stats)?;
    Ok((prep, note))
}

/// Scores every full window of `prep` (from [`prepare`]) with `model` (its run's settings, or
/// their scoring settings changed: `config`) and flags at
/// `threshold`; with labels, evaluates there and over every threshold.
pub fn detect(
    model: &DonutModel,
    prep: &Prepared,
    config: &DonutConfig,
    threshold: Threshold,
    keep_going: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Detection, Stopped> {
    let ends: Vec<usize> = prep.window_ends(Part::Test).collect();
    let started = Instant::now();
    let device = device_for(config.backend);
    let mut scores = score_series(model, prep, &ends, config, &device, keep_going)?;
    if config.mask_flagged {
        rescore_masking_flags(
            model,
            prep,
            &ends,
            config,
            &device,
            threshold.value,
            &mut scores,
        );
    }
    let score_secs = started.elapsed().as_secs_f64();
    let flagged = crate::eval::flags(&scores, &prep.missing, threshold.value)
        .iter()
        .filter(|&&f| f)
        .count();
    let labelled = prep.has_labels && prep.labels.contains(&1);
    let (l, m) = (&prep.labels, &prep.missing);
    let at_threshold = labelled.then(|| {
        [
            Adjust::Segment,
            Adjust::Delay(config.eval_delay),
            Adjust::PointWise,
        ]
        .map(|a| f1_at(&scores, l, m, a, threshold.value))
    });
    let best = labelled.then(|| evaluate(&scores, l, m, config.eval_delay));
    let pa_k = labelled.then(|| pa_k_curve_at(&scores, l, m, threshold.value));
    let chance = labelled.then(|| {
        let flaggable: Vec<bool> = scores
            .iter()
            .zip(m)
            .map(|(s, &missing)| s.is_some() && !missing)
            .collect();
        crate::eval::chance(l, &flaggable, flagged, config.eval_delay, config.seed)
    });
    let mut notes: Vec<String> = prep.notes.iter().map(ToString::to_string).collect();
    notes.extend(prep.warnings.iter().map(ToString::to_string));
    Ok(Detection {
        source: prep.source.clone(),
        standardisation: prep.standardisation(),
        scores,
        threshold,
        flagged,
        scored_windows: ends.len(),
        score_secs,
        at_threshold,
        best,
        pa_k,
        chance,
        notes,
    })
}

/// How new data is read for a run's model: the file's columns as chosen, the run's duplicate
/// policy, and (unless `strict`) going on past bad rows, each reported in the series' notes.
pub fn load_options(record: &RunRecord, columns: ColumnChoice, strict: bool) -> LoadOptions {
    LoadOptions {
        columns,
        duplicates: record.config.duplicates,
        lenient: !strict,
    }
}

/// The one detection path (`detect`, the app's Apply to another series, `fleet detect`): `raw`
/// prepared with `record`'s training statistics, scored by `model` with `config` (the run's
/// settings, scoring ones changed), flagged at `threshold`; the notes say how the statistics
/// were chosen when the run did not keep them.
pub fn detect_series(
    record: &RunRecord,
    model: &DonutModel,
    config: &DonutConfig,
    raw: &RawSeries,
    threshold: Threshold,
    keep_going: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<(Prepared, Detection), DetectError> {
    let (prep, stats_note) = prepare(record, raw)?;
    let mut found = detect(model, &prep, config, threshold, keep_going)?;
    found.notes.extend(stats_note);
    Ok((prep, found))
}

/// Writes the alerts CSV: one row per point with its time, value (empty where missing), score
/// (empty for the first W-1 points), flag, and label when the file has labels.
pub fn write_alerts(
    out: &mut dyn std::io::Write,
    prep: &Prepared,
    detection: &Detection,
) -> std::io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let mut header = vec!["timestamp", "value", "score", "flagged"];
    if prep.has_labels {
        header.push("label");
    }
    w.write_record(&header)?;
    let flags = crate::eval::flags(&detection.scores, &prep.missing, detection.threshold.value);
    for (i, flagged) in flags.iter().enumerate() {
        let mut row = vec![
            prep.timestamps[i].to_string(),
            if prep.missing[i] {
                String::new()
            } else {
                super::number_text(prep.raw_values[i])
            },
            detection.scores[i]
                .map(crate::pipeline::score_text)
                .unwrap_or_default(),
            (*flagged as u8).to_string(),
        ];
        if prep.has_labels {
            row.push(prep.labels[i].to_string());
        }
        w.write_record(&row)?;
    }
    w.flush()?;
    Ok(())
}
