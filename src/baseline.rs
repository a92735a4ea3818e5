//! A training-free baseline scored beside every run: Spectral Residual (Ren et al., "Time-Series
//! Anomaly Detection Service at Microsoft", KDD 2019), so that a user sees at once whether the
//! VAE earns its training time on their KPI.
//!
//! The saliency map of a series `x` of `n` points, as the paper defines it:
//!
//! ```text
//! A(f) = |FFT(x)|,  L(f) = log A(f),  R(f) = L(f) - (h_q * L)(f),
//! S(x) = |IFFT(exp(R(f) + i P(f)))|,  score_i = |S_i - mean(S_{i-z+1..=i})| / mean(S_{i-z+1..=i})
//! ```
//!
//! with `h_q` the mean over `q` = [`SpectralResidual::mag_window`] (3) neighbouring
//! frequencies and `z` = [`SpectralResidual::score_window`] (40) points. Both means are
//! trailing, as in Microsoft's published implementation (`msanomalydetector`): a point's mean
//! covers it and the `q - 1` (`z - 1`) before it, fewer at the start of the series. The end of
//! the series, where the saliency map is least reliable, is extended by
//! [`SpectralResidual::extend_points`] (5) copies of a value predicted from the slopes of the
//! last points to it (the paper's section 3.2 and `extend_series`), and those points are
//! dropped again. Frequencies whose amplitude is below 1e-8 are left out (as there). The whole
//! series is transformed at once (the published default, `batch_size = -1`): the map sees
//! points after the one it scores, which favours the baseline. Missing points are filled by
//! linear interpolation between the present points around them (the paper does not say; a
//! filled 0 would make every gap a spike) and are never flagged. The score is the published
//! code's `|S - mean| / mean` (the paper writes it signed; a saliency below its local mean
//! scores at most 1, which no anomaly threshold reaches); the published code then divides it by
//! 10 and clips it to [0, 1], which ties every point above 10 at 1: this keeps it unclipped,
//! so the strongest anomalies stay ordered. Everywhere else the two agree to rounding (a test
//! holds this port to the published code's output).

use rustfft::FftPlanner;
use rustfft::num_complex::Complex;
use serde::{Deserialize, Serialize};

/// Amplitudes at or below this are treated as zero (the published implementation's `EPS`).
const EPS: f64 = 1e-8;

/// Spectral Residual's settings (the paper's and the published implementation's defaults).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SpectralResidual {
    /// `q`: frequencies in the mean the log-amplitude spectrum is compared with.
    pub mag_window: usize,
    /// `z`: points in the mean the saliency map is compared with.
    pub score_window: usize,
    /// Predicted points appended before the transform.
    pub extend_points: usize,
    /// Points before the last whose slopes predict the appended value.
    pub look_ahead: usize,
}

impl Default for SpectralResidual {
    fn default() -> Self {
        Self {
            mag_window: 3,
            score_window: 40,
            extend_points: 5,
            look_ahead: 5,
        }
    }
}

/// The mean of `values[i + 1 - n ..= i]` at each `i`, over fewer points at the start.
fn trailing_mean(values: &[f64], n: usize) -> Vec<f64> {
    let n = n.clamp(1, values.len().max(1));
    let mut out = Vec::with_capacity(values.len());
    let mut sum = 0.0;
    for i in 0..values.len() {
        sum += values[i];
        if i >= n {
            sum -= values[i - n];
        }
        out.push(sum / (i + 1).min(n) as f64);
    }
    out
}

/// The value after `values` predicted from the slopes between each of them and the last
/// (`predict_next` of the published implementation: `values[1] + sum of the slopes`).
fn predict_next(values: &[f64]) -> f64 {
    let n = values.len();
    let last = values[n - 1];
    let slopes: f64 = values[..n - 1]
        .iter()
        .enumerate()
        .map(|(i, v)| (last - v) / (n - 1 - i) as f64)
        .sum();
    values[1] + slopes
}

/// `values` with missing points linearly interpolated from the present points around them
/// (held level before the first and after the last); None when no point is present.
pub fn interpolate_missing(values: &[f64], missing: &[bool]) -> Option<Vec<f64>> {
    let present: Vec<usize> = (0..values.len()).filter(|&i| !missing[i]).collect();
    let (&first, &last) = (present.first()?, present.last()?);
    let mut out = values.to_vec();
    out[..first].fill(values[first]);
    out[last..].fill(values[last]);
    for pair in present.windows(2) {
        let (a, b) = (pair[0], pair[1]);
        for (i, v) in out.iter_mut().enumerate().take(b).skip(a + 1) {
            let t = (i - a) as f64 / (b - a) as f64;
            *v = values[a] + t * (values[b] - values[a]);
        }
    }
    Some(out)
}

impl SpectralResidual {
    /// The saliency map of `values` (see the module docs), before the score.
    pub fn saliency(&self, values: &[f64]) -> Vec<f64> {
        let n = values.len();
        let mut buffer: Vec<Complex<f64>> = values.iter().map(|&v| Complex::new(v, 0.0)).collect();
        let mut planner = FftPlanner::new();
        planner.plan_fft_forward(n).process(&mut buffer);
        let amplitude: Vec<f64> = buffer.iter().map(|c| c.norm()).collect();
        let zero: Vec<bool> = amplitude.iter().map(|&a| a <= EPS).collect();
        let log_amplitude: Vec<f64> = amplitude
            .iter()
            .zip(&zero)
            .map(|(&a, &z)| if z { 0.0 } else { a.ln() })
            .collect();
        let averaged = trailing_mean(&log_amplitude, self.mag_window);
        for (i, c) in buffer.iter_mut().enumerate() {
            *c = if zero[i] {
                Complex::new(0.0, 0.0)
            } else {
                // exp(R) with the phase of the original: c / |c| * exp(L - mean L).
                *c / amplitude[i] * (log_amplitude[i] - averaged[i]).exp()
            };
        }
        planner.plan_fft_inverse(n).process(&mut buffer);
        // rustfft does not normalise: divide by n as numpy's ifft does.
        buffer.iter().map(|c| c.norm() / n as f64).collect()
    }

    /// The anomaly score of every point of `values` (higher = more anomalous); `missing`
    /// points are interpolated first. None when the series has fewer than
    /// `look_ahead + 2` present points.
    pub fn scores(&self, values: &[f64], missing: &[bool]) -> Option<Vec<f64>> {
        let filled = interpolate_missing(values, missing)?;
        let n = filled.len();
        let look = self.look_ahead.max(1);
        if n < look + 2 {
            return None;
        }
        let mut extended = filled.clone();
        let next = predict_next(&filled[n - look - 2..n - 1]);
        extended.extend(std::iter::repeat_n(next, self.extend_points));
        let saliency = self.saliency(&extended);
        let mean = trailing_mean(&saliency, self.score_window);
        let max_mean = mean.iter().copied().fold(EPS, f64::max);
        Some(
            saliency
                .iter()
                .zip(&mean)
                .take(n)
                .map(|(&s, &m)| (s - m).abs() / m.clamp(EPS, max_mean))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spike_on_a_seasonal_series_scores_highest() {
        let mut values: Vec<f64> = (0..400)
            .map(|i| (i as f64 * std::f64::consts::TAU / 48.0).sin())
            .collect();
        values[250] += 4.0;
        let missing = vec![false; 400];
        let scores = SpectralResidual::default()
            .scores(&values, &missing)
            .unwrap();
        let top = (0..400)
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap();
        assert_eq!(top, 250);
        assert!(scores.iter().all(|s| s.is_finite()));
    }

    /// Scores of Microsoft's published implementation (microsoft/anomalydetector,
    /// `msanomalydetector/spectral_residual.py` at 6d84d14, `SpectralResidual(series,
    /// threshold=0.3, mag_window=3, score_window=40, sensitivity=99,
    /// detect_mode=anomaly_only, batch_size=-1).detect()`) on a seeded 200-point sine with noise
    /// and a spike at 150 (numpy's `default_rng(42)`): the published score is this port's
    /// divided by 10 and clipped to [0, 1].
    #[test]
    fn scores_equal_the_published_implementation_divided_by_ten() {
        let text = include_str!("../tests/integration/fixtures/sr-msanomalydetector-synthetic.csv");
        let rows: Vec<(f64, f64)> = text
            .lines()
            .skip(1)
            .map(|line| {
                let cells: Vec<f64> = line.split(',').map(|c| c.parse().unwrap()).collect();
                (cells[1], cells[2])
            })
            .collect();
        let values: Vec<f64> = rows.iter().map(|r| r.0).collect();
        let ours = SpectralResidual::default()
            .scores(&values, &vec![false; values.len()])
            .unwrap();
        assert_eq!(ours.len(), 200);
        for (i, (&score, &(_, published))) in ours.iter().zip(&rows).enumerate() {
            let expected = (score / 10.0).clamp(0.0, 1.0);
            assert!(
                (expected - published).abs() < 1e-9,
                "point {i}: ours / 10 = {expected}, published {published}"
            );
        }
        let top = (0..200)
            .max_by(|&a, &b| ours[a].total_cmp(&ours[b]))
            .unwrap();
        assert_eq!(top, 150);
        assert!((ours[150] - 16.4058).abs() < 1e-3, "{}", ours[150]);
    }

    #[test]
    fn the_trailing_mean_averages_what_there_is_at_the_start() {
        assert_eq!(
            trailing_mean(&[3.0, 1.0, 2.0, 6.0], 3),
            vec![3.0, 2.0, 2.0, 3.0]
        );
        // Slopes of 1, 2 to the last point of 1, 2, 4: 2 + (4 - 1) / 2 + (4 - 2) / 1.
        assert_eq!(predict_next(&[1.0, 2.0, 4.0]), 2.0 + 1.5 + 2.0);
    }

    #[test]
    fn gaps_are_interpolated_not_filled_with_zero() {
        let values = [0.0, 2.0, 0.0, 0.0, 8.0, 0.0];
        let missing = [true, false, true, true, false, true];
        assert_eq!(
            interpolate_missing(&values, &missing).unwrap(),
            vec![2.0, 2.0, 4.0, 6.0, 8.0, 8.0]
        );
        assert_eq!(interpolate_missing(&values, &[true; 6]), None);
    }
}
