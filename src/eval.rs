//! Evaluation: best F1 with DONUT's point adjustment.
//!
//! Segments are maximal runs of label 1. A segment counts as detected (all its points true
//! positives) when any of its points is flagged, or, with a delay `k`, any of its first `k + 1`
//! points (the AIOps-2018 scorer: `predict[start : start + k + 1]`); otherwise all its points are
//! false negatives. Point-wise F1 treats every point on its own. A point is flagged when it has a
//! score, is not missing, and its anomaly score is >= the threshold. The best F1 over all
//! thresholds sorts the scores once: O(n log n).

use crate::data::Part;
use serde::{Deserialize, Serialize};

/// Which F1 a figure uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Adjust {
    /// Point-adjusted, no delay (the DONUT paper).
    Segment,
    /// Point-adjusted with a delay of `k` points (7 in the AIOps variant).
    Delay(usize),
    /// Every point on its own.
    PointWise,
}

impl Adjust {
    /// A short label for tables.
    pub fn label(&self) -> String {
        match self {
            Adjust::Segment => "adjusted".into(),
            Adjust::Delay(k) => format!("delay {k}"),
            Adjust::PointWise => "point-wise".into(),
        }
    }
}

/// Precision, recall and F1 at a threshold.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct F1Score {
    /// F1.
    pub f1: f64,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// Anomaly-score threshold (flag when score >= threshold).
    pub threshold: f64,
}

/// A segment (or single labelled point) and its ranked points.
struct Segment {
    start: usize,
    end: usize,
}

fn segments(labels: &[u8], adjust: Adjust) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < labels.len() {
        if labels[i] == 1 {
            if adjust == Adjust::PointWise {
                out.push(Segment {
                    start: i,
                    end: i + 1,
                });
                i += 1;
                continue;
            }
            let start = i;
            while i < labels.len() && labels[i] == 1 {
                i += 1;
            }
            out.push(Segment { start, end: i });
        } else {
            i += 1;
        }
    }
    out
}

/// The score at which a segment becomes detected: the highest flaggable score among its
/// detecting points.
fn segment_score(
    seg: &Segment,
    scores: &[Option<f64>],
    missing: &[bool],
    adjust: Adjust,
) -> Option<f64> {
    let end = match adjust {
        Adjust::Delay(k) => seg.end.min(seg.start + k + 1),
        _ => seg.end,
    };
    (seg.start..end)
        .filter(|&i| !missing[i])
        .filter_map(|i| scores[i])
        .filter(|s| !s.is_nan())
        .fold(None, |best: Option<f64>, s| {
            Some(best.map_or(s, |b| b.max(s)))
        })
}

fn f1_of(tp: f64, fp: f64, positives: f64) -> (f64, f64, f64) {
    let precision = if tp + fp > 0.0 { tp / (tp + fp) } else { 0.0 };
    let recall = if positives > 0.0 { tp / positives } else { 0.0 };
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    (f1, precision, recall)
}

/// Walks every distinct threshold from the highest score down, calling `visit` with precision,
/// recall and F1 at each: O(n log n) for the sort, O(n) for the walk.
fn sweep_thresholds(
    scores: &[Option<f64>],
    labels: &[u8],
    missing: &[bool],
    adjust: Adjust,
    visit: &mut dyn FnMut(F1Score),
) {
    // Items: (score, true-positive weight, false-positive weight).
    let mut items: Vec<(f64, f64, f64)> = Vec::with_capacity(scores.len());
    let segs = segments(labels, adjust);
    let positives: f64 = segs.iter().map(|s| (s.end - s.start) as f64).sum();
    for seg in &segs {
        if let Some(s) = segment_score(seg, scores, missing, adjust) {
            items.push((s, (seg.end - seg.start) as f64, 0.0));
        }
    }
    for i in 0..scores.len() {
        if labels[i] == 0
            && !missing[i]
            && let Some(s) = scores[i]
            && !s.is_nan()
        {
            items.push((s, 0.0, 1.0));
        }
    }
    items.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < items.len() {
        let threshold = items[i].0;
        while i < items.len() && items[i].0 == threshold {
            tp += items[i].1;
            fp += items[i].2;
            i += 1;
        }
        let (f1, precision, recall) = f1_of(tp, fp, positives);
        visit(F1Score {
            f1,
            precision,
            recall,
            threshold,
        });
    }
}

/// The best F1 over all thresholds. `scores[i]` is the anomaly score of point i (None: unscored).
pub fn best_f1(scores: &[Option<f64>], labels: &[u8], missing: &[bool], adjust: Adjust) -> F1Score {
    // With no F1 above 0, the highest score (nothing flagged below it matters).
    let mut best = F1Score {
        threshold: f64::INFINITY,
        ..Default::default()
    };
    let mut first = true;
    sweep_thresholds(scores, labels, missing, adjust, &mut |point| {
        if first {
            best.threshold = point.threshold;
            first = false;
        }
        if point.f1 > best.f1 {
            best = point;
        }
    });
    best
}

/// The precision-recall curve: precision, recall and F1 at every distinct threshold, highest
/// threshold first (recall grows along it).
pub fn pr_curve(
    scores: &[Option<f64>],
    labels: &[u8],
    missing: &[bool],
    adjust: Adjust,
) -> Vec<F1Score> {
    let mut curve = Vec::new();
    sweep_thresholds(scores, labels, missing, adjust, &mut |point| {
        curve.push(point)
    });
    curve
}

/// Precision, recall and F1 at one threshold, O(n).
pub fn f1_at(
    scores: &[Option<f64>],
    labels: &[u8],
    missing: &[bool],
    adjust: Adjust,
    threshold: f64,
) -> F1Score {
    let flagged = |i: usize| !missing[i] && scores[i].is_some_and(|s| s >= threshold);
    let segs = segments(labels, adjust);
    let positives: f64 = segs.iter().map(|s| (s.end - s.start) as f64).sum();
    let tp: f64 = segs
        .iter()
        .filter(|s| segment_score(s, scores, missing, adjust).is_some_and(|v| v >= threshold))
        .map(|s| (s.end - s.start) as f64)
        .sum();
    let fp = (0..scores.len())
        .filter(|&i| labels[i] == 0 && flagged(i))
        .count() as f64;
    let (f1, precision, recall) = f1_of(tp, fp, positives);
    F1Score {
        f1,
        precision,
        recall,
        threshold,
    }
}

/// Precision, recall and F1 of the test part of `prep` with `scores` (one per point of the
/// series) at `threshold`: (point-adjusted, with `delay`, point-wise).
pub fn test_f1_at(
    prep: &crate::data::Prepared,
    scores: &[Option<f64>],
    delay: usize,
    threshold: f64,
) -> [F1Score; 3] {
    let test = prep.part(crate::data::Part::Test);
    let (s, l, m) = (
        &scores[test.clone()],
        &prep.labels[test.clone()],
        &prep.missing[test],
    );
    [
        f1_at(s, l, m, Adjust::Segment, threshold),
        f1_at(s, l, m, Adjust::Delay(delay), threshold),
        f1_at(s, l, m, Adjust::PointWise, threshold),
    ]
}

/// Flags: true where a point is flagged at `threshold`.
pub fn flags(scores: &[Option<f64>], missing: &[bool], threshold: f64) -> Vec<bool> {
    scores
        .iter()
        .zip(missing)
        .map(|(s, &m)| !m && s.is_some_and(|s| s >= threshold))
        .collect()
}

/// The three figures a run reports.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Point-adjusted, no delay.
    pub best_f1: F1Score,
    /// Point-adjusted with the configured delay.
    pub best_f1_delay: F1Score,
    /// Point-wise.
    pub best_f1_pointwise: F1Score,
}

/// Computes all three best-F1 figures.
pub fn evaluate(scores: &[Option<f64>], labels: &[u8], missing: &[bool], delay: usize) -> Metrics {
    Metrics {
        best_f1: best_f1(scores, labels, missing, Adjust::Segment),
        best_f1_delay: best_f1(scores, labels, missing, Adjust::Delay(delay)),
        best_f1_pointwise: best_f1(scores, labels, missing, Adjust::PointWise),
    }
}

/// How a flagging threshold was chosen. Only [`ThresholdRule::BestF1Test`] looks at the test
/// part's labels: it is the upper bound the DONUT paper reports, not a threshold one could
/// have picked in advance.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum ThresholdRule {
    /// The threshold of the best (no-delay, point-adjusted) F1 on the test part's labels.
    BestF1Test,
    /// The threshold of the best (no-delay, point-adjusted) F1 on the validation part's labels.
    BestF1Validation,
    /// Label-free: the `1 - alarm_rate` quantile of the scores of a part the model was not
    /// evaluated on (the validation part; the training part when there is no validation part),
    /// so that about `alarm_rate` of its windows are flagged.
    #[serde(alias = "validation_quantile")]
    AlarmRate {
        /// The share of that part's windows flagged.
        alarm_rate: f64,
        /// The part whose scores it is a quantile of.
        #[serde(default = "validation_part")]
        part: Part,
    },
    /// A value chosen by hand.
    Chosen,
}

fn validation_part() -> Part {
    Part::Valid
}

impl ThresholdRule {
    /// A short name for menus and tables.
    pub fn short_name(&self) -> String {
        match self {
            Self::BestF1Test => "best F1 on test (upper bound)".into(),
            Self::BestF1Validation => "best F1 on validation".into(),
            Self::AlarmRate { alarm_rate, .. } => format!("alarm rate {:.1} %", alarm_rate * 100.0),
            Self::Chosen => "chosen by hand".into(),
        }
    }

    /// True when the rule looked at the labels it is evaluated on.
    pub fn peeks_at_test_labels(&self) -> bool {
        matches!(self, Self::BestF1Test)
    }
}

impl std::fmt::Display for ThresholdRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::BestF1Test => write!(
                f,
                "the best-F1 threshold on the test labels (an upper bound: it was picked with the answers)"
            ),
            Self::BestF1Validation => {
                write!(f, "the best-F1 threshold on the validation labels")
            }
            Self::Chosen => write!(f, "a threshold chosen by hand"),
            Self::AlarmRate { alarm_rate, part } => write!(
                f,
                "the threshold that flags {:.1} % of the {} windows (needs no labels; setting `alarm_rate`)",
                alarm_rate * 100.0,
                part.name()
            ),
        }
    }
}

/// A flagging threshold and how it was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Threshold {
    /// Anomaly-score threshold (flag when score >= it).
    pub value: f64,
    /// How it was chosen.
    #[serde(flatten)]
    pub rule: ThresholdRule,
}

/// The anomaly score at the `1 - rate` quantile of `scores` (points without a score skipped):
/// about `rate` of them lie at or above it. None when nothing is scored.
pub fn quantile_threshold(scores: &[Option<f64>], rate: f64) -> Option<f64> {
    let mut s: Vec<f64> = scores
        .iter()
        .flatten()
        .copied()
        .filter(|v| v.is_finite())
        .collect();
    s.sort_by(f64::total_cmp);
    quantile_of_sorted(&s, rate)
}

/// As [`quantile_threshold`], on finite scores already in ascending order.
pub fn quantile_of_sorted(sorted: &[f64], rate: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let flagged = ((sorted.len() as f64 * rate).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[sorted.len() - flagged])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, applied literally at every distinct threshold: O(n^2).
    fn brute_force(scores: &[Option<f64>], labels: &[u8], missing: &[bool], adjust: Adjust) -> f64 {
        let mut thresholds: Vec<f64> = scores.iter().flatten().copied().collect();
        thresholds.sort_by(f64::total_cmp);
        thresholds.dedup();
        let mut best = 0.0f64;
        for &th in &thresholds {
            let mut predict: Vec<bool> = (0..scores.len())
                .map(|i| !missing[i] && scores[i].is_some_and(|s| s >= th))
                .collect();
            if adjust != Adjust::PointWise {
                let mut i = 0;
                while i < labels.len() {
                    if labels[i] == 1 {
                        let start = i;
                        while i < labels.len() && labels[i] == 1 {
                            i += 1;
                        }
                        let limit = match adjust {
                            Adjust::Delay(k) => i.min(start + k + 1),
                            _ => i,
                        };
                        let hit = predict[start..limit].iter().any(|&p| p);
                        predict[start..i].iter_mut().for_each(|p| *p = hit);
                    } else {
                        i += 1;
                    }
                }
            }
            let tp = (0..labels.len())
                .filter(|&i| labels[i] == 1 && predict[i])
                .count() as f64;
            let fp = (0..labels.len())
                .filter(|&i| labels[i] == 0 && predict[i])
                .count() as f64;
            let p = labels.iter().filter(|&&l| l == 1).count() as f64;
            let (f1, _, _) = f1_of(tp, fp, p);
            best = best.max(f1);
        }
        best
    }

    fn case() -> impl Strategy<Value = (Vec<Option<f64>>, Vec<u8>, Vec<bool>)> {
        (1usize..120).prop_flat_map(|n| {
            (
                proptest::collection::vec(
                    proptest::option::weighted(0.9, (0i32..25).prop_map(|v| v as f64 / 4.0)),
                    n,
                ),
                proptest::collection::vec(prop_oneof![3 => Just(0u8), 1 => Just(1u8)], n),
                proptest::collection::vec(proptest::bool::weighted(0.1), n),
            )
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn best_f1_matches_brute_force((scores, labels, missing) in case(), delay in 0usize..5) {
            for adjust in [Adjust::Segment, Adjust::Delay(delay), Adjust::PointWise] {
                let fast = best_f1(&scores, &labels, &missing, adjust);
                let slow = brute_force(&scores, &labels, &missing, adjust);
                prop_assert!((fast.f1 - slow).abs() < 1e-12, "{adjust:?}: fast {} slow {}", fast.f1, slow);
                // The reported threshold really gives the reported F1.
                if fast.f1 > 0.0 {
                    let at = f1_at(&scores, &labels, &missing, adjust, fast.threshold);
                    prop_assert!((at.f1 - fast.f1).abs() < 1e-12);
                    prop_assert!((at.precision - fast.precision).abs() < 1e-12);
                }
            }
        }
    }

    #[test]
    fn point_adjustment_credits_a_whole_segment() {
        // One 4-point segment; only its last point scores high.
        let labels = [0, 1, 1, 1, 1, 0, 0, 0];
        let scores: Vec<Option<f64>> = [0.1, 0.2, 0.2, 0.2, 0.9, 0.1, 0.5, 0.1]
            .iter()
            .map(|&s| Some(s))
            .collect();
        let missing = [false; 8];
        let adjusted = best_f1(&scores, &labels, &missing, Adjust::Segment);
        assert_eq!((adjusted.f1, adjusted.threshold), (1.0, 0.9));
        // With delay 1 only the first two points may detect it: the 0.9 is too late.
        let delayed = best_f1(&scores, &labels, &missing, Adjust::Delay(1));
        assert_eq!(delayed.threshold, 0.2);
        assert!(delayed.f1 < 1.0);
        let pointwise = best_f1(&scores, &labels, &missing, Adjust::PointWise);
        assert!(pointwise.f1 < adjusted.f1);
    }

    #[test]
    fn missing_and_unscored_points_are_never_flagged() {
        let labels = [0, 1, 0];
        let scores = [Some(5.0), Some(1.0), None];
        let missing = [true, false, false];
        let r = best_f1(&scores, &labels, &missing, Adjust::Segment);
        assert_eq!((r.f1, r.precision, r.recall), (1.0, 1.0, 1.0));
        assert_eq!(flags(&scores, &missing, 0.5), vec![false, true, false]);
    }

    #[test]
    fn the_quantile_threshold_flags_about_the_alarm_rate() {
        let scores: Vec<Option<f64>> = (0..1000).map(|i| Some(i as f64)).chain([None]).collect();
        let t = quantile_threshold(&scores, 0.01).unwrap();
        let flagged = scores.iter().flatten().filter(|&&s| s >= t).count();
        assert_eq!(flagged, 10);
        assert_eq!(
            quantile_threshold(&scores, 1e-9),
            Some(999.0),
            "at least one flagged"
        );
        assert_eq!(quantile_threshold(&[None, None], 0.01), None);
    }
}
