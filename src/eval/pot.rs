//! Peaks over threshold (POT): a label-free threshold from the tail of normal scores.
//!
//! Siffer et al., "Anomaly Detection in Streams with Extreme Value Theory" (KDD 2017): above an
//! initial threshold `t` (the `level` quantile of the calibration scores) the excesses
//! `Y = X - t` follow a generalised Pareto distribution (GPD) with shape `gamma` and scale
//! `sigma`, fitted by maximum likelihood with Grimshaw's trick (the likelihood's stationary
//! points are the roots of one function of `x = gamma / sigma`). The threshold at risk `q` is the
//! score that a normal point exceeds with probability `q`:
//!
//! ```text
//! z_q = t + sigma / gamma * ((q * n / N_t)^(-gamma) - 1)     (gamma != 0)
//! z_q = t - sigma * ln(q * n / N_t)                            (gamma == 0)
//! ```
//!
//! with `n` calibration scores of which `N_t` lie above `t`. [`Spot`] keeps the fit up to date
//! as normal scores stream in (the streaming variant of the paper).

use serde::{Deserialize, Serialize};

/// Fewest excesses over the initial threshold a fit is made from.
pub const MIN_PEAKS: usize = 10;

/// A fitted tail and the threshold it gives.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PotFit {
    /// The initial threshold `t` (the `level` quantile of the calibration scores).
    pub initial_threshold: f64,
    /// Calibration scores.
    pub n: usize,
    /// Of which above `t` (the peaks).
    pub peaks: usize,
    /// GPD shape.
    pub gamma: f64,
    /// GPD scale.
    pub sigma: f64,
    /// The risk asked for.
    pub risk: f64,
    /// The threshold `z_q`.
    pub threshold: f64,
}

impl PotFit {
    /// The same tail's threshold at another `risk` (in (0, 1)): no refit, so a control can move
    /// it freely.
    pub fn at_risk(&self, risk: f64) -> Result<PotFit, PotError> {
        if !(risk > 0.0 && risk < 1.0) {
            return Err(PotError::BadParameters {
                level: 1.0 - self.peaks as f64 / self.n.max(1) as f64,
                risk,
            });
        }
        tail_threshold(
            self.initial_threshold,
            self.gamma,
            self.sigma,
            self.n,
            self.peaks,
            risk,
        )
    }

    /// The share of all calibration scores the fitted tail expects above `score` (at or above
    /// the initial threshold; 1 - level there, falling to 0 at a bounded tail's end).
    pub fn tail_share(&self, score: f64) -> f64 {
        let above = self.peaks as f64 / self.n.max(1) as f64;
        let excess = (score - self.initial_threshold).max(0.0);
        let survival = if self.gamma.abs() < 1e-12 {
            (-excess / self.sigma).exp()
        } else {
            let base = 1.0 + self.gamma * excess / self.sigma;
            if base <= 0.0 {
                0.0
            } else {
                base.powf(-1.0 / self.gamma)
            }
        };
        above * survival
    }
}

/// Why no tail could be fitted.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum PotError {
    /// Too few scores above the initial quantile.
    #[error(
        "{peaks} of {n} scores lie above the initial {level_percent:.1} % quantile, and a tail needs at least {MIN_PEAKS}"
    )]
    TooFewPeaks {
        /// Scores above the initial threshold.
        peaks: usize,
        /// Scores in all.
        n: usize,
        /// The initial quantile, in percent.
        level_percent: f64,
    },
    /// A level or risk outside (0, 1).
    #[error("POT needs a level and a risk in (0, 1), got level {level} and risk {risk}")]
    BadParameters {
        /// The initial quantile asked for.
        level: f64,
        /// The risk asked for.
        risk: f64,
    },
    /// The fit gave no finite threshold.
    #[error("the fitted tail (shape {gamma:.3}, scale {sigma:.3}) gives no finite threshold")]
    NotFinite {
        /// GPD shape.
        gamma: f64,
        /// GPD scale.
        sigma: f64,
    },
}

/// Fits a GPD tail to the finite scores of `sorted` (ascending) above their `level` quantile and
/// returns the threshold at `risk`.
pub fn fit(sorted: &[f64], level: f64, risk: f64) -> Result<PotFit, PotError> {
    if !(level > 0.0 && level < 1.0 && risk > 0.0 && risk < 1.0) {
        return Err(PotError::BadParameters { level, risk });
    }
    let n = sorted.len();
    let index = ((n as f64 * level).floor() as usize).min(n.saturating_sub(1));
    let initial_threshold = sorted.get(index).copied().unwrap_or(0.0);
    let excesses: Vec<f64> = sorted
        .iter()
        .filter(|&&s| s > initial_threshold)
        .map(|&s| s - initial_threshold)
        .collect();
    fit_excesses(initial_threshold, &excesses, n, level, risk)
}

/// The fit of `excesses` (all > 0) over `initial_threshold`, of `n` scores in all.
fn fit_excesses(
    initial_threshold: f64,
    excesses: &[f64],
    n: usize,
    level: f64,
    risk: f64,
) -> Result<PotFit, PotError> {
    if excesses.len() < MIN_PEAKS {
        return Err(PotError::TooFewPeaks {
            peaks: excesses.len(),
            n,
            level_percent: level * 100.0,
        });
    }
    let (gamma, sigma) = grimshaw(excesses);
    tail_threshold(initial_threshold, gamma, sigma, n, excesses.len(), risk)
}

/// The threshold at `risk` of a tail (`gamma`, `sigma`) over `initial_threshold` holding `peaks`
/// of `n` scores.
fn tail_threshold(
    initial_threshold: f64,
    gamma: f64,
    sigma: f64,
    n: usize,
    peaks: usize,
    risk: f64,
) -> Result<PotFit, PotError> {
    let ratio = risk * n as f64 / peaks as f64;
    let threshold = if gamma.abs() < 1e-12 {
        initial_threshold - sigma * ratio.ln()
    } else {
        initial_threshold + sigma / gamma * (ratio.powf(-gamma) - 1.0)
    };
    if !threshold.is_finite() {
        return Err(PotError::NotFinite { gamma, sigma });
    }
    Ok(PotFit {
        initial_threshold,
        n,
        peaks,
        gamma,
        sigma,
        risk,
        threshold,
    })
}

/// The GPD log-likelihood of `y` (all > 0) with shape `gamma` and scale `sigma`.
fn log_likelihood(y: &[f64], gamma: f64, sigma: f64) -> f64 {
    let n = y.len() as f64;
    if sigma <= 0.0 || !sigma.is_finite() || !gamma.is_finite() {
        return f64::NEG_INFINITY;
    }
    if gamma.abs() < 1e-12 {
        return -n * sigma.ln() - y.iter().sum::<f64>() / sigma;
    }
    let mut sum = 0.0;
    for &v in y {
        let s = 1.0 + gamma * v / sigma;
        if s <= 0.0 {
            return f64::NEG_INFINITY;
        }
        sum += s.ln();
    }
    -n * sigma.ln() - (1.0 + 1.0 / gamma) * sum
}

/// Grimshaw's function of `x = gamma / sigma`, whose roots are the likelihood's stationary
/// points: `u(x) v(x) - 1`, with `u = mean(1 / (1 + x y))` and `v = 1 + mean(ln(1 + x y))`.
fn grimshaw_w(y: &[f64], x: f64) -> f64 {
    let (mut u, mut v) = (0.0, 0.0);
    for &yi in y {
        let s = 1.0 + x * yi;
        u += 1.0 / s;
        v += s.ln();
    }
    let n = y.len() as f64;
    (u / n) * (1.0 + v / n) - 1.0
}

/// The maximum-likelihood (gamma, sigma) of the GPD over excesses `y`: the best of the
/// exponential fit (gamma = 0) and of every root of [`grimshaw_w`] found on a grid of each of
/// Grimshaw's two intervals and refined by bisection.
fn grimshaw(y: &[f64]) -> (f64, f64) {
    let n = y.len() as f64;
    let (min, max) = y.iter().fold((f64::INFINITY, 0.0f64), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    let mean = y.iter().sum::<f64>() / n;
    let mut best = (0.0, mean);
    let mut best_ll = log_likelihood(y, 0.0, mean);
    let epsilon = 1e-8 / max.max(1e-300);
    // Left of zero: x in (-1 / max, 0); right: x in (0, 2 (mean - min) / min^2).
    let left = (-1.0 / max + epsilon, -epsilon);
    let right_end = 2.0 * (mean - min) / (min * min).max(1e-300);
    let mut roots = Vec::new();
    const STEPS: usize = 200;
    if left.0 < left.1 {
        let grid: Vec<f64> = (0..=STEPS)
            .map(|i| left.0 + (left.1 - left.0) * i as f64 / STEPS as f64)
            .collect();
        roots.extend(roots_on(y, &grid));
    }
    if right_end.is_finite() && right_end > epsilon {
        // Log-spaced: the interval can span many orders of magnitude.
        let (lo, hi) = (epsilon.max(right_end * 1e-12).ln(), right_end.ln());
        let grid: Vec<f64> = (0..=STEPS)
            .map(|i| (lo + (hi - lo) * i as f64 / STEPS as f64).exp())
            .collect();
        roots.extend(roots_on(y, &grid));
    }
    for x in roots {
        let gamma = y.iter().map(|&v| (1.0 + x * v).ln()).sum::<f64>() / n;
        let sigma = gamma / x;
        let ll = log_likelihood(y, gamma, sigma);
        if ll > best_ll {
            best_ll = ll;
            best = (gamma, sigma);
        }
    }
    best
}

/// The roots of [`grimshaw_w`] between consecutive points of `grid` where it changes sign.
fn roots_on(y: &[f64], grid: &[f64]) -> Vec<f64> {
    let values: Vec<f64> = grid.iter().map(|&x| grimshaw_w(y, x)).collect();
    let mut roots = Vec::new();
    for i in 1..grid.len() {
        let (fa, fb) = (values[i - 1], values[i]);
        if !(fa.is_finite() && fb.is_finite()) || fa.signum() == fb.signum() {
            continue;
        }
        let (mut a, mut b, mut fa) = (grid[i - 1], grid[i], fa);
        for _ in 0..100 {
            let mid = 0.5 * (a + b);
            let fm = grimshaw_w(y, mid);
            if fm.signum() == fa.signum() {
                a = mid;
                fa = fm;
            } else {
                b = mid;
            }
        }
        roots.push(0.5 * (a + b));
    }
    roots
}

/// Streaming POT (SPOT): the tail fitted on calibration scores, then updated with each normal
/// score that arrives; a score at or above the threshold is an anomaly and leaves the tail as
/// it is.
#[derive(Clone, Debug)]
pub struct Spot {
    /// The initial quantile (for the message of a refit with too few peaks).
    level: f64,
    /// Excesses over the fit's initial threshold.
    excesses: Vec<f64>,
    /// Normal scores taken in, calibration included.
    n: usize,
    fit: PotFit,
}

impl Spot {
    /// Calibrates on `sorted` (ascending, finite).
    pub fn new(sorted: &[f64], level: f64, risk: f64) -> Result<Self, PotError> {
        let fit = fit(sorted, level, risk)?;
        let excesses = sorted
            .iter()
            .filter(|&&s| s > fit.initial_threshold)
            .map(|&s| s - fit.initial_threshold)
            .collect();
        Ok(Self {
            level,
            excesses,
            n: sorted.len(),
            fit,
        })
    }

    /// The current fit.
    pub fn fit(&self) -> PotFit {
        self.fit
    }

    /// Takes a new normal score into the tail (a score at or above the threshold is not taken):
    /// above the initial threshold it becomes a peak and the tail is refitted. Returns whether
    /// the score was taken.
    pub fn observe(&mut self, score: f64) -> bool {
        if !score.is_finite() || score >= self.fit.threshold {
            return false;
        }
        self.n += 1;
        let f = self.fit;
        let refit = if score > f.initial_threshold {
            // A new peak: the tail is fitted again.
            self.excesses.push(score - f.initial_threshold);
            fit_excesses(
                f.initial_threshold,
                &self.excesses,
                self.n,
                self.level,
                f.risk,
            )
        } else {
            // The same tail, holding a smaller share of the scores.
            tail_threshold(
                f.initial_threshold,
                f.gamma,
                f.sigma,
                self.n,
                f.peaks,
                f.risk,
            )
        };
        if let Ok(fit) = refit {
            self.fit = fit;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::Xoshiro256PlusPlus;
    use rand::{RngExt, SeedableRng};

    fn sorted(mut v: Vec<f64>) -> Vec<f64> {
        v.sort_by(f64::total_cmp);
        v
    }

    /// Moving the risk of a fit gives the threshold a fit at that risk gives, and the tail's
    /// expected share above that threshold is the risk.
    #[test]
    fn a_fit_moved_to_another_risk_matches_a_new_fit() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        let scores = sorted(
            (0..50_000)
                .map(|_| -(1.0 - rng.random::<f64>()).ln())
                .collect(),
        );
        let fit3 = fit(&scores, 0.98, 1e-3).unwrap();
        let moved = fit3.at_risk(1e-5).unwrap();
        let fit5 = fit(&scores, 0.98, 1e-5).unwrap();
        assert!((moved.threshold - fit5.threshold).abs() < 1e-9);
        assert!(moved.threshold > fit3.threshold);
        assert!((moved.tail_share(moved.threshold) - 1e-5).abs() < 1e-9);
        assert!((fit3.tail_share(fit3.initial_threshold) - 0.02).abs() < 1e-3);
        assert!(fit3.at_risk(0.0).is_err());
    }

    /// Exponential scores have an exponential tail: gamma near 0, and the threshold at risk q is
    /// the exponential's own quantile, -ln(q) for rate 1.
    #[test]
    fn an_exponential_tail_gives_the_exponential_quantile() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
        let scores = sorted(
            (0..200_000)
                .map(|_| -(1.0 - rng.random::<f64>()).ln())
                .collect(),
        );
        let fit = fit(&scores, 0.98, 1e-4).unwrap();
        assert!(fit.gamma.abs() < 0.05, "{fit:?}");
        let exact = -(1e-4f64).ln();
        assert!((fit.threshold - exact).abs() < 0.4, "{fit:?} vs {exact}");
        // About q of the scores lie above it.
        let above = scores.iter().filter(|&&s| s >= fit.threshold).count();
        assert!((5..=40).contains(&above), "{above}");
    }

    /// A Pareto tail (shape 0.5) is found as such, and the threshold matches its quantile.
    #[test]
    fn a_heavy_tail_is_fitted_with_a_positive_shape() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        // GPD(gamma 0.5, sigma 1) by inversion.
        let gamma = 0.5;
        let scores = sorted(
            (0..100_000)
                .map(|_| {
                    let u: f64 = rng.random();
                    ((1.0 - u).powf(-gamma) - 1.0) / gamma
                })
                .collect(),
        );
        let fit = fit(&scores, 0.9, 1e-3).unwrap();
        assert!((fit.gamma - 0.5).abs() < 0.15, "{fit:?}");
        let exact = ((1e-3f64).powf(-gamma) - 1.0) / gamma;
        assert!(
            (fit.threshold - exact).abs() / exact < 0.25,
            "{fit:?} vs {exact}"
        );
    }

    /// A bounded tail (GPD quantiles of shape -0.3, bound 1 / 0.3) has a negative shape, and
    /// the threshold lands near the exact quantile, below the bound. (Uniform scores, shape -1,
    /// sit on the edge where the likelihood has no maximum; the fit falls back to an
    /// exponential tail there.)
    #[test]
    fn a_bounded_tail_has_a_negative_shape() {
        let gamma = -0.3;
        let n = 20_000;
        let scores: Vec<f64> = (0..n)
            .map(|i| {
                let p = (i as f64 + 0.5) / n as f64;
                ((1.0 - p).powf(-gamma) - 1.0) / gamma
            })
            .collect();
        let fit = fit(&scores, 0.9, 1e-3).unwrap();
        assert!(fit.gamma < -0.15, "{fit:?}");
        let exact = ((1e-3f64).powf(-gamma) - 1.0) / gamma;
        assert!(
            (fit.threshold - exact).abs() / exact < 0.1,
            "{fit:?} vs {exact}"
        );
        assert!(fit.threshold < -1.0 / gamma, "{fit:?}");
    }

    #[test]
    fn too_few_scores_or_a_constant_part_are_refused_by_name() {
        let few: Vec<f64> = (0..100).map(f64::from).collect();
        let err = fit(&few, 0.98, 1e-3).unwrap_err();
        assert!(
            matches!(err, PotError::TooFewPeaks { peaks: 1, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("at least 10"), "{err}");
        let constant = vec![3.0; 10_000];
        assert!(matches!(
            fit(&constant, 0.98, 1e-3),
            Err(PotError::TooFewPeaks { peaks: 0, .. })
        ));
        assert!(matches!(
            fit(&few, 1.0, 1e-3),
            Err(PotError::BadParameters { .. })
        ));
    }

    /// Streaming: normal scores keep the tail; anomalies do not move it.
    #[test]
    fn spot_takes_normal_scores_into_the_tail_and_leaves_out_anomalies() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
        let mut draw = || -(1.0 - rng.random::<f64>()).ln();
        let calibration = sorted((0..20_000).map(|_| draw()).collect());
        let mut spot = Spot::new(&calibration, 0.98, 1e-3).unwrap();
        let start = spot.fit();
        assert!(
            !spot.observe(start.threshold + 100.0),
            "an anomaly is left out"
        );
        assert_eq!(spot.fit(), start);
        for _ in 0..20_000 {
            spot.observe(draw());
        }
        let after = spot.fit();
        // Every draw but the few at or above the threshold was taken.
        assert!((39_950..=40_000).contains(&after.n), "{after:?}");
        assert!(after.peaks > start.peaks, "{after:?}");
        // The same distribution: the threshold stays near -ln(1e-3) = 6.9.
        assert!((after.threshold - 6.9).abs() < 0.8, "{after:?}");
    }
}
