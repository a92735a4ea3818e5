//! Evaluation: best F1 with DONUT's point adjustment.
//!
//! Segments are maximal runs of label 1. A segment counts as detected (all its points true
//! positives) when any of its points is flagged, or, with a delay `k`, any of its first `k + 1`
//! points (the AIOps-2018 scorer: `predict[start : start + k + 1]`); otherwise all its points are
//! false negatives. Point-wise F1 treats every point on its own. A point is flagged when it has a
//! score, is not missing, and its anomaly score is >= the threshold. The best F1 over all
//! thresholds sorts the scores once: O(n log n).

mod chance;
mod metric;
pub mod pot;

use crate::config::ThresholdChoice;
use crate::data::Part;
use serde::{Deserialize, Serialize};

pub use chance::{ChanceEvaluation, chance};
pub use metric::{
    Adjust, F1Score, Labelled, PA_K_PERCENTS, PaKCurve, Ranking, best_f1, f1_at, f1_of_flags,
    label_segments, pa_k_curve_at, pa_k_curve_best, pa_k_curve_best_of, pa_k_curve_of_flags,
    pr_curve,
};

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
    let ranking = Ranking::new(scores, missing);
    Metrics {
        best_f1: ranking.best(labels, Adjust::Segment),
        best_f1_delay: ranking.best(labels, Adjust::Delay(delay)),
        best_f1_pointwise: ranking.best(labels, Adjust::PointWise),
    }
}

/// How a score track does at one threshold: what a detector flagging there gets.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AtThreshold {
    /// The threshold and its rule.
    pub threshold: Threshold,
    /// Point-adjusted precision, recall and F1.
    pub adjusted: F1Score,
    /// With the delay.
    pub delay: F1Score,
    /// Point-wise.
    pub pointwise: F1Score,
    /// PA%K F1 over K, and its area.
    pub pa_k: PaKCurve,
    /// Points flagged.
    pub flagged_points: usize,
    /// How long the alarms run on after the labelled segments end.
    #[serde(default)]
    pub tail: AlarmTail,
}

/// How long alarms trail the labelled segments: the run of flagged points right after each
/// segment's last point (up to the next segment).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AlarmTail {
    /// Labelled segments.
    pub segments: usize,
    /// Mean run of flagged points after a segment (0 when the point after it is not flagged).
    pub mean_points: f64,
    /// The longest run.
    pub longest_points: usize,
}

/// The alarm tails of `flags` after the segments of `labels`.
pub fn alarm_tail(flags: &[bool], labels: &[u8]) -> AlarmTail {
    let runs: Vec<usize> = label_segments(labels)
        .into_iter()
        .map(|segment| {
            (segment.end..labels.len())
                .take_while(|&j| labels[j] == 0 && flags[j])
                .count()
        })
        .collect();
    AlarmTail {
        segments: runs.len(),
        mean_points: runs.iter().sum::<usize>() as f64 / runs.len().max(1) as f64,
        longest_points: runs.iter().copied().max().unwrap_or(0),
    }
}

impl AtThreshold {
    /// The figures of `scores` on `labels` at `threshold`.
    pub fn of(
        scores: &[Option<f64>],
        labels: &[u8],
        missing: &[bool],
        delay: usize,
        threshold: Threshold,
    ) -> Self {
        let flagged = flags(scores, missing, threshold.value);
        let adjusts = [Adjust::Segment, Adjust::Delay(delay), Adjust::PointWise];
        let [adjusted, delay, pointwise] = f1_of_flags(labels, &flagged, adjusts, threshold.value);
        Self {
            threshold,
            adjusted,
            delay,
            pointwise,
            pa_k: pa_k_curve_of_flags(labels, &flagged, threshold.value),
            flagged_points: flagged.iter().filter(|&&f| f).count(),
            tail: alarm_tail(&flagged, labels),
        }
    }
}

/// How one score track (the model's, a baseline's) does on a part's labels: the best over
/// every threshold (an upper bound: picked with those labels), and what it gets at the
/// threshold it flags at and at each rule's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrackEvaluation {
    /// Best F1 over every threshold: point-adjusted, with the delay, point-wise.
    pub best: Metrics,
    /// The best PA%K F1 for each K (each K at its own threshold: an upper bound).
    pub best_pa_k: PaKCurve,
    /// At the threshold the track flags at.
    pub flagged: AtThreshold,
    /// At each rule's threshold.
    pub rules: Vec<AtThreshold>,
}

impl TrackEvaluation {
    /// Evaluates `scores` on `labels` (one part), at `flagged` and at each of `rules`.
    pub fn of(
        scores: &[Option<f64>],
        labels: &[u8],
        missing: &[bool],
        delay: usize,
        rules: &[Threshold],
        flagged: Threshold,
    ) -> Self {
        let ranking = Ranking::new(scores, missing);
        let at = |t: Threshold| AtThreshold::of(scores, labels, missing, delay, t);
        Self {
            best: Metrics {
                best_f1: ranking.best(labels, Adjust::Segment),
                best_f1_delay: ranking.best(labels, Adjust::Delay(delay)),
                best_f1_pointwise: ranking.best(labels, Adjust::PointWise),
            },
            best_pa_k: pa_k_curve_best(&ranking, labels),
            flagged: at(flagged),
            rules: rules.iter().map(|&t| at(t)).collect(),
        }
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
    BestF1Validation {
        /// The labelled segments of the validation part it was picked on (0 in runs saved
        /// before they were counted).
        #[serde(default)]
        segments: usize,
    },
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
    /// Label-free: peaks over threshold ([`pot`]): a generalised Pareto tail fitted to the normal
    /// scores of the same part as the alarm rate above their `level` quantile; the score a
    /// normal point exceeds with probability `risk`.
    Pot {
        /// The probability that a normal point's score reaches the threshold.
        risk: f64,
        /// The initial quantile the tail is fitted above.
        level: f64,
        /// The part whose scores it was fitted on.
        part: Part,
    },
    /// A value chosen by hand.
    Chosen,
}

/// Fewest labelled segments in the validation part for its labels to pick the threshold of the
/// `auto` rule: with fewer, which threshold gives the best F1 there is decided by one or two
/// segments (docs/ACCURACY.md), and the label-free tail is used.
pub const MIN_VALIDATION_SEGMENTS: usize = 5;

fn validation_part() -> Part {
    Part::Valid
}

impl ThresholdRule {
    /// A short name for menus and tables.
    pub fn short_name(&self) -> String {
        match self {
            Self::BestF1Test => "best F1 on test (upper bound)".into(),
            Self::BestF1Validation { .. } => "best F1 on validation".into(),
            Self::AlarmRate { alarm_rate, .. } => format!("alarm rate {:.1} %", alarm_rate * 100.0),
            Self::Pot { risk, .. } => format!("POT at risk {risk:e}"),
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
            Self::BestF1Validation { segments } => write!(
                f,
                "the best-F1 threshold on the validation labels ({segments} labelled segments)"
            ),
            Self::Pot { risk, level, part } => write!(
                f,
                "the score a normal {} point exceeds with probability {risk:e}, from a tail fitted above its {:.1} % quantile (peaks over threshold; needs no labels; settings `pot_risk`, `pot_level`)",
                part.name(),
                level * 100.0
            ),
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

/// A threshold picked by rule, and what stood in when the rule asked for had none.
#[derive(Clone, Debug, PartialEq)]
pub struct Picked {
    /// The threshold.
    pub threshold: Threshold,
    /// When another rule stood in: which was asked for, and why it had no threshold.
    pub fallback: Option<String>,
}

/// The one threshold resolver: the threshold of rule `choice` among `thresholds` (a run's,
/// one per rule it could compute), or the first rule of its chain that has one:
///
/// - `validation`: the validation labels, then peaks over threshold, then the alarm rate;
/// - `auto`: the validation labels where they hold at least [`MIN_VALIDATION_SEGMENTS`]
///   segments, else peaks over threshold, then the alarm rate;
/// - `pot`: peaks over threshold, then the alarm rate;
/// - `alarm_rate`: the alarm rate;
/// - `best_f1_test`: the test labels, then the chain of `validation`.
///
/// [`Picked::fallback`] says when another rule stood in, and why. None when no rule has a
/// threshold (nothing was scored).
pub fn pick_threshold(thresholds: &[Threshold], choice: ThresholdChoice) -> Option<Picked> {
    use ThresholdChoice as C;
    #[derive(Clone, Copy, PartialEq)]
    enum Step {
        Test,
        Validation { min_segments: usize },
        Pot,
        Alarm,
    }
    let has = |step: Step, rule: ThresholdRule| match (step, rule) {
        (Step::Test, ThresholdRule::BestF1Test) => true,
        (Step::Validation { min_segments }, ThresholdRule::BestF1Validation { segments }) => {
            segments >= min_segments
        }
        (Step::Pot, ThresholdRule::Pot { .. }) => true,
        (Step::Alarm, ThresholdRule::AlarmRate { .. }) => true,
        _ => false,
    };
    let any_validation = Step::Validation { min_segments: 0 };
    let chain: &[Step] = match choice {
        C::Validation => &[any_validation, Step::Pot, Step::Alarm],
        C::Auto => &[
            Step::Validation {
                min_segments: MIN_VALIDATION_SEGMENTS,
            },
            Step::Pot,
            Step::Alarm,
        ],
        C::Pot => &[Step::Pot, Step::Alarm],
        C::AlarmRate => &[Step::Alarm],
        C::BestF1Test => &[Step::Test, any_validation, Step::Pot, Step::Alarm],
    };
    // Why a step had no threshold, for the note of the rule that stood in.
    let why = |step: Step| -> String {
        match step {
            Step::Test => "the test part has no labelled anomaly".into(),
            Step::Validation { min_segments } => {
                match thresholds.iter().find_map(|t| match t.rule {
                    ThresholdRule::BestF1Validation { segments } => Some(segments),
                    _ => None,
                }) {
                    Some(segments) => format!(
                        "the validation part holds {segments} labelled segments, fewer than the {min_segments} its labels need to pick a threshold"
                    ),
                    None => "the validation part has no labelled anomaly".into(),
                }
            }
            Step::Pot => "no tail could be fitted to the validation scores".into(),
            Step::Alarm => "no validation point was scored".into(),
        }
    };
    let (position, threshold) = chain.iter().enumerate().find_map(|(i, &step)| {
        thresholds
            .iter()
            .find(|t| has(step, t.rule))
            .map(|t| (i, *t))
    })?;
    let fallback = (position > 0).then(|| {
        let reasons: Vec<String> = chain[..position].iter().map(|&s| why(s)).collect();
        format!(
            "no `{}` threshold ({}): flagged at {} instead",
            choice.name(),
            reasons.join("; "),
            threshold.rule.short_name()
        )
    });
    Some(Picked {
        threshold,
        fallback,
    })
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

    /// `auto` takes the validation labels only from `MIN_VALIDATION_SEGMENTS` segments on;
    /// with fewer it flags at the tail and says how many segments there were.
    #[test]
    fn auto_needs_enough_validation_segments_and_says_why_it_fell_back() {
        let pot = Threshold {
            value: 7.0,
            rule: ThresholdRule::Pot {
                risk: 3e-3,
                level: 0.98,
                part: Part::Valid,
            },
        };
        let with = |segments| {
            vec![
                Threshold {
                    value: 3.0,
                    rule: ThresholdRule::BestF1Validation { segments },
                },
                pot,
            ]
        };
        let few =
            pick_threshold(&with(MIN_VALIDATION_SEGMENTS - 1), ThresholdChoice::Auto).unwrap();
        assert_eq!(few.threshold, pot);
        let note = few.fallback.unwrap();
        assert!(
            note.contains(&format!(
                "{} labelled segments",
                MIN_VALIDATION_SEGMENTS - 1
            )),
            "{note}"
        );
        let enough = with(MIN_VALIDATION_SEGMENTS);
        let picked = pick_threshold(&enough, ThresholdChoice::Auto).unwrap();
        assert_eq!(picked.threshold, enough[0]);
        assert!(picked.fallback.is_none());
        // `validation` takes the labels however few their segments.
        let any = pick_threshold(&with(1), ThresholdChoice::Validation).unwrap();
        assert_eq!(any.threshold.value, 3.0);
    }

    /// The definition, applied literally at every distinct threshold: O(n^2).
    fn brute_force(scores: &[Option<f64>], labels: &[u8], missing: &[bool], adjust: Adjust) -> f64 {
        let mut thresholds: Vec<f64> = scores.iter().flatten().copied().collect();
        thresholds.sort_by(f64::total_cmp);
        thresholds.dedup();
        thresholds
            .iter()
            .map(|&th| brute_force_at(scores, labels, missing, adjust, th).0)
            .fold(0.0, f64::max)
    }

    /// F1, precision and recall at one threshold, by flagging, adjusting and counting.
    fn brute_force_at(
        scores: &[Option<f64>],
        labels: &[u8],
        missing: &[bool],
        adjust: Adjust,
        th: f64,
    ) -> (f64, f64, f64) {
        {
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
                        if let Adjust::PaK(k) = adjust {
                            // Kim et al.: whole when more than K % of the points are flagged,
                            // else the flags as they are.
                            let flagged = predict[start..i].iter().filter(|&&p| p).count();
                            if 100 * flagged > k as usize * (i - start) {
                                predict[start..i].iter_mut().for_each(|p| *p = true);
                            }
                        } else {
                            let hit = predict[start..limit].iter().any(|&p| p);
                            predict[start..i].iter_mut().for_each(|p| *p = hit);
                        }
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
            let (precision, recall) = (tp / (tp + fp).max(1.0), tp / p.max(1.0));
            let f1 = if precision + recall > 0.0 {
                2.0 * precision * recall / (precision + recall)
            } else {
                0.0
            };
            (f1, precision, recall)
        }
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
        fn best_f1_matches_brute_force((scores, labels, missing) in case(), delay in 0usize..5, k in 0u32..=100) {
            for adjust in [Adjust::Segment, Adjust::Delay(delay), Adjust::PointWise, Adjust::PaK(k)] {
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn f1_at_a_threshold_matches_counting((scores, labels, missing) in case(), delay in 0usize..5, k in 0u32..=100, th in 0i32..25) {
            let th = th as f64 / 4.0;
            for adjust in [Adjust::Segment, Adjust::Delay(delay), Adjust::PointWise, Adjust::PaK(k)] {
                let fast = f1_at(&scores, &labels, &missing, adjust, th);
                let (f1, precision, recall) = brute_force_at(&scores, &labels, &missing, adjust, th);
                prop_assert!((fast.f1 - f1).abs() < 1e-12, "{adjust:?}: {} vs {f1}", fast.f1);
                prop_assert!((fast.precision - precision).abs() < 1e-12);
                prop_assert!((fast.recall - recall).abs() < 1e-12);
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
