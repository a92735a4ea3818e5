//! What chance gets: the figures of random scores on the same labels, so that every figure of a
//! model comes with the floor it must clear. Point adjustment credits a whole segment for one
//! flagged point, so random scores reach a high point-adjusted F1 on series with long segments
//! (Kim et al., AAAI 2022).
//!
//! A random score track ranks the points a detector could flag in a uniformly random order (the
//! order is all that F1 sees), drawn from a seeded generator. The figures are means over draws,
//! drawn until the standard error of each is below [`TARGET_STANDARD_ERROR`] (stable to two
//! decimals) or [`MAX_DRAWS`] are made.

use super::metric::{Adjust, Labelled, PaKCurve, Ranking, pa_k_curve_best_of};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rayon::iter::{IntoParallelIterator, ParallelIterator};
use serde::{Deserialize, Serialize};

/// Draws are made until every mean's standard error is below this.
pub const TARGET_STANDARD_ERROR: f64 = 0.002;

/// Draws made at least.
pub const MIN_DRAWS: usize = 32;

/// Draws made at most.
pub const MAX_DRAWS: usize = 2_000;

/// The mean figures of random scores on a part's labels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ChanceEvaluation {
    /// Random score tracks drawn.
    pub draws: usize,
    /// The seed of the first.
    pub seed: u64,
    /// The largest standard error of the means below.
    pub standard_error: f64,
    /// Mean best F1, point-adjusted (every threshold: an upper bound, like the model's).
    pub best_f1: f64,
    /// Mean best F1 with the delay.
    pub best_f1_delay: f64,
    /// Mean best point-wise F1.
    pub best_f1_pointwise: f64,
    /// Mean of the best PA%K F1 at each K.
    pub best_pa_k: PaKCurve,
    /// Points flagged in each draw: as many as the model flags at its threshold.
    pub flagged_points: usize,
    /// Mean point-adjusted F1 with that many points flagged.
    pub flagged_f1: f64,
    /// Mean point-wise F1 with that many points flagged.
    pub flagged_f1_pointwise: f64,
    /// Mean PA%K F1 with that many points flagged.
    pub flagged_pa_k: PaKCurve,
}

/// Running mean and variance (Welford).
#[derive(Clone, Copy, Default)]
struct Running {
    n: f64,
    mean: f64,
    m2: f64,
}

impl Running {
    fn push(&mut self, x: f64) {
        self.n += 1.0;
        let d = x - self.mean;
        self.mean += d / self.n;
        self.m2 += d * (x - self.mean);
    }

    fn standard_error(&self) -> f64 {
        if self.n < 2.0 {
            return f64::INFINITY;
        }
        (self.m2 / (self.n - 1.0) / self.n).sqrt()
    }
}

/// The chance figures on `labels` for a detector that can flag the points `flaggable` and
/// flags `flagged_points` of them; `delay` as the run's. Deterministic for a seed.
pub fn chance(
    labels: &[u8],
    flaggable: &[bool],
    flagged_points: usize,
    delay: usize,
    seed: u64,
) -> ChanceEvaluation {
    let mut order: Vec<usize> = (0..labels.len()).filter(|&i| flaggable[i]).collect();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed ^ 0xC4A2_CE00_0000_0001);
    let mut tracked = [Running::default(); 5];
    let mut best_curves = Vec::new();
    let mut flagged_curves = Vec::new();
    let labelled = Labelled::new(labels);
    let mut draws = 0;
    // Draws are made in the order of the generator and their figures computed a batch at a
    // time in parallel (on the pool the caller installed), then taken one by one until settled:
    // the same figures as one draw at a time, at most a batch of wasted work.
    let batch = 4 * rayon::current_num_threads().max(1);
    loop {
        let orders: Vec<Vec<usize>> = (0..batch)
            .map(|_| {
                order.shuffle(&mut rng);
                order.clone()
            })
            .collect();
        let drawn: Vec<Draw> = orders
            .into_par_iter()
            .map(|order| Draw::of(Ranking::from_order(order), &labelled, delay, flagged_points))
            .collect();
        for draw in drawn {
            for (t, x) in tracked.iter_mut().zip(draw.figures) {
                t.push(x);
            }
            best_curves.push(draw.best_curve);
            flagged_curves.push(draw.flagged_curve);
            draws += 1;
            let areas = |curves: &[PaKCurve]| {
                let mut r = Running::default();
                curves.iter().for_each(|c| r.push(c.area));
                r
            };
            let error = tracked
                .iter()
                .copied()
                .chain([areas(&best_curves), areas(&flagged_curves)])
                .map(|r| r.standard_error())
                .fold(0.0, f64::max);
            let settled = draws >= MIN_DRAWS && error < TARGET_STANDARD_ERROR;
            if settled || draws >= MAX_DRAWS || order.is_empty() {
                return ChanceEvaluation {
                    draws,
                    seed,
                    standard_error: if error.is_finite() { error } else { 0.0 },
                    best_f1: tracked[0].mean,
                    best_f1_delay: tracked[1].mean,
                    best_f1_pointwise: tracked[2].mean,
                    best_pa_k: PaKCurve::mean(&best_curves),
                    flagged_points,
                    flagged_f1: tracked[3].mean,
                    flagged_f1_pointwise: tracked[4].mean,
                    flagged_pa_k: PaKCurve::mean(&flagged_curves),
                };
            }
        }
    }
}

/// One random track's figures: best F1 (point-adjusted, delayed, point-wise), F1 of its top
/// `flagged_points` (point-adjusted, point-wise), and its two PA%K curves.
struct Draw {
    figures: [f64; 5],
    best_curve: PaKCurve,
    flagged_curve: PaKCurve,
}

impl Draw {
    fn of(ranking: Ranking, labelled: &Labelled<'_>, delay: usize, flagged_points: usize) -> Self {
        let best = |adjust| ranking.best_of(labelled, adjust).f1;
        let [adjusted, pointwise] = ranking
            .top_of(
                labelled,
                [Adjust::Segment, Adjust::PointWise],
                flagged_points,
            )
            .map(|f| f.f1);
        let flagged_curve = ranking
            .top_of(
                labelled,
                super::PA_K_PERCENTS.map(Adjust::PaK),
                flagged_points,
            )
            .iter()
            .map(|f| f.f1)
            .collect();
        Self {
            figures: [
                best(Adjust::Segment),
                best(Adjust::Delay(delay)),
                best(Adjust::PointWise),
                adjusted,
                pointwise,
            ],
            best_curve: pa_k_curve_best_of(&ranking, labelled),
            flagged_curve: PaKCurve::new(flagged_curve),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case() -> (Vec<u8>, Vec<bool>) {
        // 2,000 points, five 40-point segments: long segments, where point adjustment flatters.
        let labels: Vec<u8> = (0..2000)
            .map(|i| u8::from(i % 400 >= 200 && i % 400 < 240))
            .collect();
        let flaggable = (0..2000).map(|i| i % 97 != 0).collect();
        (labels, flaggable)
    }

    #[test]
    fn the_same_seed_gives_the_same_figures_and_another_close_ones() {
        let (labels, flaggable) = case();
        let a = chance(&labels, &flaggable, 20, 7, 0);
        let b = chance(&labels, &flaggable, 20, 7, 0);
        assert_eq!(a, b);
        let c = chance(&labels, &flaggable, 20, 7, 1);
        assert_ne!(a.best_f1, c.best_f1, "another seed draws other tracks");
        assert!(a.draws >= MIN_DRAWS, "{}", a.draws);
        assert!(
            a.standard_error < TARGET_STANDARD_ERROR || a.draws == MAX_DRAWS,
            "drawn until settled or at the cap: {} draws, standard error {}",
            a.draws,
            a.standard_error
        );
        assert!(
            a.standard_error < 0.005,
            "stable to two decimals: {}",
            a.standard_error
        );
        assert!(
            (a.best_f1 - c.best_f1).abs() < 0.01,
            "{} vs {}",
            a.best_f1,
            c.best_f1
        );
    }

    #[test]
    fn point_adjustment_flatters_random_scores() {
        let (labels, flaggable) = case();
        let r = chance(&labels, &flaggable, 20, 7, 0);
        // 10 % of the points are anomalous: random point-wise F1 is near 2 * 0.1 / 1.1 at best,
        // while point adjustment lifts it far higher.
        assert!(r.best_f1_pointwise < 0.25, "{}", r.best_f1_pointwise);
        assert!(r.best_f1 > 0.5, "{}", r.best_f1);
        assert!(r.best_pa_k.f1[0] > r.best_pa_k.f1[10]);
        assert!((r.best_pa_k.f1[0] - r.best_f1).abs() < 1e-9);
        assert!((r.best_pa_k.f1[10] - r.best_f1_pointwise).abs() < 1e-9);
    }
}
