//! The reconstruction term `alpha log p(x|z)` point by point and its gradient at the decoder's
//! two heads in one vectorised pass, with the softplus it shares with the latent std head and
//! the f64 sums that reduce the terms.

use super::math;

const HALF_LN_2PI: f32 = 0.918_938_5;

/// `softplus(s)` and `sigmoid(s)` (its derivative), sharing one exponential; stable for any `s`.
#[inline(always)]
pub(super) fn softplus_sigmoid(s: f32) -> (f32, f32) {
    let e = math::exp(-s.abs());
    let softplus = s.max(0.0) + math::ln_1p_unit(e);
    let sigmoid = if s >= 0.0 { 1.0 } else { e } / (1.0 + e);
    (softplus, sigmoid)
}

/// What the reconstruction pass reads, each slice `[n * W]`.
pub(super) struct ReconInput<'a> {
    pub(super) alpha: &'a [f32],
    /// The std head before softplus.
    pub(super) pre_std: &'a [f32],
    pub(super) x: &'a [f32],
    pub(super) eps: f32,
    pub(super) scale: f32,
}

/// The reconstruction term point by point and its gradient at the decoder's two heads: on entry
/// `log_px` holds the mean head's output, on return `alpha log p(x|z)` of each point; `d_mu` and
/// `d_pre_std` receive `scale` times the gradient of the negated term. One branch-free pass, so
/// that it vectorises, compiled for AVX2 too and chosen at run time where the CPU has it.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
pub(super) fn recon_pass<'a>(
    input: ReconInput<'a>,
    log_px: &mut [f32],
    d_mu: &mut [f32],
    d_pre_std: &mut [f32],
) {
    let len = log_px.len();
    // Every slice re-cut to `len`, so that the loop carries no bounds checks.
    let (alpha, pre_std, x) = (&input.alpha[..len], &input.pre_std[..len], &input.x[..len]);
    let (d_mu, d_pre_std) = (&mut d_mu[..len], &mut d_pre_std[..len]);
    let (eps, scale) = (input.eps, input.scale);
    for idx in 0..len {
        let a = alpha[idx];
        let (softplus, sigmoid) = softplus_sigmoid(pre_std[idx]);
        let std = softplus + eps;
        let inv_std = 1.0 / std;
        let u = (x[idx] - log_px[idx]) * inv_std;
        log_px[idx] = a * (-0.5 * u * u - math::ln(std) - HALF_LN_2PI);
        d_mu[idx] = -scale * a * u * inv_std;
        d_pre_std[idx] = -scale * a * (u * u - 1.0) * inv_std * sigmoid;
    }
}

/// The sum of `term(x)` over `v` in f64, in eight interleaved partial sums (so that it
/// vectorises).
#[inline(always)]
fn lane_sum(v: &[f32], term: impl Fn(f32) -> f64) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&x| term(x)).sum();
    for chunk in chunks {
        for (l, &x) in lanes.iter_mut().zip(chunk) {
            *l += term(x);
        }
    }
    lanes.iter().sum::<f64>() + tail
}

/// The sum of `v` in f64.
pub(super) fn sum_f64(v: &[f32]) -> f64 {
    lane_sum(v, f64::from)
}

/// The sum of squares of `v` in f64.
pub fn sum_of_squares(v: &[f32]) -> f64 {
    lane_sum(v, |x| f64::from(x) * f64::from(x))
}
