//! The F1 family on one score track: point-adjusted (DONUT), delayed (AIOps 2018), point-wise,
//! and PA%K (Kim et al., AAAI 2022), at one threshold or at the best of every threshold.
//!
//! Every variant is one rule for crediting a labelled segment (a maximal run of label 1) of `L`
//! points of which `c` are flagged:
//! - PA%K with K %: when more than K % of its points are flagged (`100 c > K L`; for K = 0, at
//!   least one), all `L` points are true positives; otherwise the `c` flagged points are. K = 0
//!   is DONUT's point adjustment, K = 100 is point-wise F1 (no segment can have more than all of
//!   its points flagged).
//! - Delay `k`: all `L` points when one of the segment's first `k + 1` points is flagged
//!   (`predict[start : start + k + 1]` in the AIOps-2018 scorer), else none.
//!
//! Flagged points outside segments are false positives. A point is flagged when it has a
//! score, is not missing and its score reaches the threshold; missing labelled points stay in
//! their segment's `L` (they can only be missed). A sweep over every threshold walks a
//! [`Ranking`] (the flaggable points, highest score first) once: O(n) after one O(n log n) sort.

use serde::{Deserialize, Serialize};

/// Which F1 a figure uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Adjust {
    /// Point-adjusted, no delay (the DONUT paper): PA%K with K = 0.
    Segment,
    /// Point-adjusted with a delay of `k` points (7 in the AIOps variant).
    Delay(usize),
    /// Every point on its own: PA%K with K = 100.
    PointWise,
    /// PA%K: a segment is credited whole when more than K % of its points are flagged.
    PaK(u32),
}

impl Adjust {
    /// A short label for tables.
    pub fn label(&self) -> String {
        match self {
            Adjust::Segment => "adjusted".into(),
            Adjust::Delay(k) => format!("delay {k}"),
            Adjust::PointWise => "point-wise".into(),
            Adjust::PaK(k) => format!("PA%K {k}"),
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

/// How a segment's points are credited (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Credit {
    /// Whole when more than `k_percent` % of its points are flagged, else its flagged points.
    Share { k_percent: u32 },
    /// Whole when one of its first `delay + 1` points is flagged, else nothing.
    Early { delay: usize },
}

impl From<Adjust> for Credit {
    fn from(adjust: Adjust) -> Self {
        match adjust {
            Adjust::Segment => Credit::Share { k_percent: 0 },
            Adjust::PointWise => Credit::Share { k_percent: 100 },
            Adjust::PaK(k) => Credit::Share {
                k_percent: k.min(100),
            },
            Adjust::Delay(delay) => Credit::Early { delay },
        }
    }
}

/// The labelled segments of a label track.
struct Segments {
    /// The segment of each point (`usize::MAX`: none).
    of: Vec<usize>,
    /// First point of each segment.
    start: Vec<usize>,
    /// Points of each segment.
    len: Vec<usize>,
}

/// The labelled anomaly segments of `labels` (runs of 1), as point ranges in order.
pub fn label_segments(labels: &[u8]) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < labels.len() {
        if labels[i] == 1 {
            let first = i;
            while i < labels.len() && labels[i] == 1 {
                i += 1;
            }
            out.push(first..i);
        } else {
            i += 1;
        }
    }
    out
}

impl Segments {
    fn new(labels: &[u8]) -> Self {
        let mut of = vec![usize::MAX; labels.len()];
        let (mut start, mut len) = (Vec::new(), Vec::new());
        for segment in label_segments(labels) {
            of[segment.clone()].fill(start.len());
            start.push(segment.start);
            len.push(segment.len());
        }
        Self { of, start, len }
    }

    fn positives(&self) -> f64 {
        self.len.iter().sum::<usize>() as f64
    }

    /// The flagged count at which segment `s` is credited whole under `k_percent`: the smallest
    /// `c` with `100 c > K L` (one more than the segment holds for K = 100).
    fn whole_at(&self, s: usize, k_percent: u32) -> usize {
        self.len[s] * k_percent as usize / 100 + 1
    }
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

fn score_of(tp: f64, fp: f64, positives: f64, threshold: f64) -> F1Score {
    let (f1, precision, recall) = f1_of(tp, fp, positives);
    F1Score {
        f1,
        precision,
        recall,
        threshold,
    }
}

/// The flaggable points of a score track (a score, not missing, not NaN), highest score first:
/// sorted once, walked by every sweep over thresholds.
#[derive(Clone, Debug)]
pub struct Ranking {
    /// Point indices, highest score first.
    order: Vec<usize>,
    /// The score of each entry of `order`.
    scores: Vec<f64>,
}

impl Ranking {
    /// Ranks `scores` (None: unscored); missing points are never flagged, so never ranked.
    pub fn new(scores: &[Option<f64>], missing: &[bool]) -> Self {
        let mut ranked: Vec<(f64, usize)> = scores
            .iter()
            .zip(missing)
            .enumerate()
            .filter_map(|(i, (s, &m))| s.filter(|s| !m && !s.is_nan()).map(|s| (s, i)))
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        Self {
            order: ranked.iter().map(|r| r.1).collect(),
            scores: ranked.iter().map(|r| r.0).collect(),
        }
    }

    /// A ranking in the given order with no ties (scores `n, n-1, ..., 1`): a random score
    /// track is a random order of its points.
    pub fn from_order(order: Vec<usize>) -> Self {
        let n = order.len();
        Self {
            scores: (0..n).map(|i| (n - i) as f64).collect(),
            order,
        }
    }

    /// Points ranked.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when nothing can be flagged.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The score of the `n`-th highest point (1-based), the threshold that flags the top `n`;
    /// None for 0 or more than are ranked.
    pub fn score_of_top(&self, n: usize) -> Option<f64> {
        n.checked_sub(1).and_then(|i| self.scores.get(i)).copied()
    }

    /// Walks every distinct threshold from the highest score down, calling `visit` with
    /// precision, recall and F1 there under `adjust` on `labels`.
    fn sweep(&self, labelled: &Labelled<'_>, adjust: Adjust, visit: &mut dyn FnMut(F1Score)) {
        let segments = &labelled.segments;
        let positives = segments.positives();
        let credit = Credit::from(adjust);
        let whole_at: Vec<usize> = match credit {
            Credit::Share { k_percent } => (0..segments.len.len())
                .map(|s| segments.whole_at(s, k_percent))
                .collect(),
            Credit::Early { .. } => vec![1; segments.len.len()],
        };
        let mut flagged = vec![0usize; segments.len.len()];
        let (mut tp, mut fp) = (0usize, 0usize);
        let mut at = 0;
        while at < self.order.len() {
            let threshold = self.scores[at];
            while at < self.order.len() && self.scores[at] == threshold {
                let i = self.order[at];
                at += 1;
                let s = segments.of[i];
                if s == usize::MAX {
                    fp += 1;
                    continue;
                }
                match credit {
                    Credit::Share { .. } => {
                        flagged[s] += 1;
                        let c = flagged[s];
                        if c < whole_at[s] {
                            tp += 1;
                        } else if c == whole_at[s] {
                            tp += segments.len[s] + 1 - c;
                        }
                    }
                    Credit::Early { delay } => {
                        if i - segments.start[s] <= delay {
                            flagged[s] += 1;
                            if flagged[s] == 1 {
                                tp += segments.len[s];
                            }
                        }
                    }
                }
            }
            visit(score_of(tp as f64, fp as f64, positives, threshold));
        }
    }

    /// The best F1 over every threshold under `adjust`.
    pub fn best(&self, labels: &[u8], adjust: Adjust) -> F1Score {
        self.best_of(&Labelled::new(labels), adjust)
    }

    /// [`Ranking::best`] on labels whose segments are already found.
    pub fn best_of(&self, labelled: &Labelled<'_>, adjust: Adjust) -> F1Score {
        // With no F1 above 0, the highest score (nothing flagged below it matters).
        let mut best = F1Score {
            threshold: self.scores.first().copied().unwrap_or(f64::INFINITY),
            ..Default::default()
        };
        self.sweep(labelled, adjust, &mut |point| {
            if point.f1 > best.f1 {
                best = point;
            }
        });
        best
    }

    /// Precision, recall and F1 with the top `n` points flagged (n = 0: none).
    pub fn top(&self, labels: &[u8], adjust: Adjust, n: usize) -> F1Score {
        self.top_of(&Labelled::new(labels), [adjust], n)[0]
    }

    /// [`Ranking::top`] under each of `adjusts`, on labels whose segments are already found.
    pub fn top_of<const N: usize>(
        &self,
        labelled: &Labelled<'_>,
        adjusts: [Adjust; N],
        n: usize,
    ) -> [F1Score; N] {
        let labels = labelled.labels;
        let mut flagged = vec![false; labels.len()];
        for &i in self.order.iter().take(n) {
            flagged[i] = true;
        }
        let threshold = self.score_of_top(n).unwrap_or(f64::INFINITY);
        adjusts.map(|adjust| credit_flags(&labelled.segments, labels, &flagged, adjust, threshold))
    }
}

/// Labels with their segments found once, for many figures on the same labels.
pub struct Labelled<'a> {
    labels: &'a [u8],
    segments: Segments,
}

impl<'a> Labelled<'a> {
    /// `labels` (1 = anomalous) and their segments.
    pub fn new(labels: &'a [u8]) -> Self {
        Self {
            labels,
            segments: Segments::new(labels),
        }
    }
}

/// Precision, recall and F1 of the flags `flagged` under `adjust`.
fn credit_flags(
    segments: &Segments,
    labels: &[u8],
    flagged: &[bool],
    adjust: Adjust,
    threshold: f64,
) -> F1Score {
    let mut tp = 0usize;
    for (s, (&start, &len)) in segments.start.iter().zip(&segments.len).enumerate() {
        let points = &flagged[start..start + len];
        tp += match Credit::from(adjust) {
            Credit::Share { k_percent } => {
                let c = points.iter().filter(|&&f| f).count();
                if c >= segments.whole_at(s, k_percent) {
                    len
                } else {
                    c
                }
            }
            Credit::Early { delay } => {
                if points[..len.min(delay + 1)].iter().any(|&f| f) {
                    len
                } else {
                    0
                }
            }
        };
    }
    let fp = flagged
        .iter()
        .zip(labels)
        .filter(|&(&f, &l)| f && l == 0)
        .count();
    score_of(tp as f64, fp as f64, segments.positives(), threshold)
}

/// The best F1 over all thresholds. `scores[i]` is the anomaly score of point i (None: unscored).
pub fn best_f1(scores: &[Option<f64>], labels: &[u8], missing: &[bool], adjust: Adjust) -> F1Score {
    Ranking::new(scores, missing).best(labels, adjust)
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
    Ranking::new(scores, missing).sweep(&Labelled::new(labels), adjust, &mut |point| {
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
    let flagged = super::flags(scores, missing, threshold);
    credit_flags(&Segments::new(labels), labels, &flagged, adjust, threshold)
}

/// F1 of points already flagged (`flagged`, one per point, at `threshold`) on `labels`, under
/// each of `adjusts`: the segments are found once for all of them.
pub fn f1_of_flags<const N: usize>(
    labels: &[u8],
    flagged: &[bool],
    adjusts: [Adjust; N],
    threshold: f64,
) -> [F1Score; N] {
    let segments = Segments::new(labels);
    adjusts.map(|adjust| credit_flags(&segments, labels, flagged, adjust, threshold))
}

/// The K (in %) of a PA%K curve: 0, 10, ..., 100.
pub const PA_K_PERCENTS: [u32; 11] = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100];

/// F1 under PA%K at each K of [`PA_K_PERCENTS`], and the area under that curve (trapezoids
/// over K from 0 to 1): 1 for a perfect detector; close to the point-wise F1 for one that
/// flags a single point per segment.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PaKCurve {
    /// K, in percent.
    pub k_percent: Vec<u32>,
    /// F1 at each K.
    pub f1: Vec<f64>,
    /// Area under F1 over K in [0, 1].
    pub area: f64,
}

impl PaKCurve {
    /// The curve of F1 values `f1[i]` at `PA_K_PERCENTS[i]`.
    pub fn new(f1: Vec<f64>) -> Self {
        let area = f1
            .windows(2)
            .map(|pair| (pair[0] + pair[1]) / 2.0 * 0.1)
            .sum();
        Self {
            k_percent: PA_K_PERCENTS.to_vec(),
            f1,
            area,
        }
    }

    /// The pointwise mean of several curves (all on [`PA_K_PERCENTS`]).
    pub fn mean(curves: &[PaKCurve]) -> Self {
        let n = curves.len().max(1) as f64;
        Self::new(
            (0..PA_K_PERCENTS.len())
                .map(|i| curves.iter().map(|c| c.f1[i]).sum::<f64>() / n)
                .collect(),
        )
    }
}

/// PA%K F1 at one threshold, over every K.
pub fn pa_k_curve_at(
    scores: &[Option<f64>],
    labels: &[u8],
    missing: &[bool],
    threshold: f64,
) -> PaKCurve {
    let flagged = super::flags(scores, missing, threshold);
    pa_k_curve_of_flags(labels, &flagged, threshold)
}

/// [`pa_k_curve_at`] of points already flagged.
pub fn pa_k_curve_of_flags(labels: &[u8], flagged: &[bool], threshold: f64) -> PaKCurve {
    let adjusts = PA_K_PERCENTS.map(Adjust::PaK);
    PaKCurve::new(
        f1_of_flags(labels, flagged, adjusts, threshold)
            .iter()
            .map(|f| f.f1)
            .collect(),
    )
}

/// The best PA%K F1 over every threshold, for each K (each K may pick its own threshold: an
/// upper bound, as the best F1 is).
pub fn pa_k_curve_best(ranking: &Ranking, labels: &[u8]) -> PaKCurve {
    pa_k_curve_best_of(ranking, &Labelled::new(labels))
}

/// [`pa_k_curve_best`] on labels whose segments are already found.
pub fn pa_k_curve_best_of(ranking: &Ranking, labelled: &Labelled<'_>) -> PaKCurve {
    PaKCurve::new(
        PA_K_PERCENTS
            .iter()
            .map(|&k| ranking.best_of(labelled, Adjust::PaK(k)).f1)
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn some(values: &[f64]) -> Vec<Option<f64>> {
        values.iter().map(|&v| Some(v)).collect()
    }

    #[test]
    fn pa_k_runs_from_point_adjusted_to_point_wise() {
        // Two segments: 4 points with 1 flagged at 0.5 (25 %), 2 points with both flagged.
        let labels = [0, 1, 1, 1, 1, 0, 0, 1, 1, 0];
        let scores = some(&[0.1, 0.9, 0.2, 0.1, 0.3, 0.7, 0.1, 0.8, 0.6, 0.1]);
        let missing = [false; 10];
        let at = |adjust| f1_at(&scores, &labels, &missing, adjust, 0.5);
        // Flagged: 1, 5 (a false positive), 7, 8.
        // Point-adjusted: tp 6, fp 1, positives 6.
        let adjusted = at(Adjust::Segment);
        assert_eq!(at(Adjust::PaK(0)), adjusted);
        assert!((adjusted.precision - 6.0 / 7.0).abs() < 1e-12);
        assert_eq!(adjusted.recall, 1.0);
        // Point-wise: tp 3, fp 1.
        let pointwise = at(Adjust::PointWise);
        assert_eq!(at(Adjust::PaK(100)), pointwise);
        assert_eq!((pointwise.precision, pointwise.recall), (0.75, 0.5));
        // K = 20: 25 % > 20 %, both segments whole, as adjusted. K = 30: the first segment
        // keeps its 1 point: tp 1 + 2 = 3... plus the second whole (100 % > 30 %): tp 3.
        assert_eq!(at(Adjust::PaK(20)), adjusted);
        let k30 = at(Adjust::PaK(30));
        assert_eq!((k30.precision, k30.recall), (0.75, 0.5));
        // The curve is non-increasing in K and its area lies between the ends.
        let curve = pa_k_curve_at(&scores, &labels, &missing, 0.5);
        assert!(curve.f1.windows(2).all(|w| w[0] >= w[1]));
        assert!((curve.f1[0] - adjusted.f1).abs() < 1e-12);
        assert!((curve.f1[10] - pointwise.f1).abs() < 1e-12);
        assert!(curve.area < adjusted.f1 && curve.area > pointwise.f1);
    }

    #[test]
    fn the_top_n_flags_what_the_threshold_of_the_nth_score_flags() {
        let labels = [0, 1, 1, 0, 0, 1, 0];
        let scores = some(&[0.3, 0.9, 0.1, 0.8, 0.2, 0.5, 0.4]);
        let missing = [false, false, false, false, false, false, true];
        let ranking = Ranking::new(&scores, &missing);
        assert_eq!(ranking.len(), 6, "the missing point is not ranked");
        for n in 0..=6 {
            let threshold = ranking.score_of_top(n).unwrap_or(f64::INFINITY);
            for adjust in [Adjust::Segment, Adjust::Delay(0), Adjust::PointWise] {
                let top = ranking.top(&labels, adjust, n);
                let at = f1_at(&scores, &labels, &missing, adjust, threshold);
                assert_eq!(
                    (top.f1, top.precision),
                    (at.f1, at.precision),
                    "{n} {adjust:?}"
                );
            }
        }
    }
}
