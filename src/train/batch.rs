//! Building batches on the CPU: window values, alpha masks, beta and lambda per window. The
//! M-ELBO's alpha leaves anomalous and missing points out; the plain ELBO's counts them all.

use crate::config::{BetaMode, EntropyMode, LiveSettings, Objective};
use crate::data::Prepared;
use crate::model::loss::Batch;
use burn::prelude::*;
use burn::tensor::TensorData;

/// The CPU-side contents of a batch before upload.
pub struct HostBatch {
    /// Windows `[n * W]`, row-major.
    pub x: Vec<f32>,
    /// Alpha `[n * W]`.
    pub alpha: Vec<f32>,
    /// Beta `[n]`.
    pub beta: Vec<f32>,
    /// Lambda `[n]`.
    pub lambda: Vec<f32>,
    /// Windows in the batch.
    pub n: usize,
}

/// Copies the windows ending at `ends`. `injected` (same length as the series, or empty) marks
/// points treated as missing for this epoch: their value is set to what a missing point holds,
/// the standardised raw zero `-mean / std` (DONUT's `MissingDataInjection`), and (M-ELBO) alpha
/// to 0.
pub fn host_batch(
    prep: &Prepared,
    ends: &[usize],
    injected: &[bool],
    live: &LiveSettings,
) -> HostBatch {
    let w = prep.window;
    let n = ends.len();
    let mut x = Vec::with_capacity(n * w);
    let mut alpha = Vec::with_capacity(n * w);
    let mut beta = Vec::with_capacity(n);
    let mut lambda = Vec::with_capacity(n);
    let plain = live.objective == Objective::Elbo;
    // What a missing point holds once standardised (the file's gaps are filled with raw 0).
    let filled = ((0.0 - prep.mean) / prep.std) as f32;
    for &end in ends {
        let window = end + 1 - w..end + 1;
        let labels = &prep.labels[window.clone()];
        let missing = &prep.missing[window.clone()];
        let first_alpha = alpha.len();
        x.extend_from_slice(&prep.values[window.clone()]);
        alpha.extend(
            labels
                .iter()
                .zip(missing)
                .map(|(&l, &m)| if plain || (l == 0 && !m) { 1.0 } else { 0.0 }),
        );
        if let Some(injected) = injected.get(window) {
            let (xs, alphas) = (&mut x[first_alpha..], &mut alpha[first_alpha..]);
            for ((v, a), _) in xs.iter_mut().zip(alphas).zip(injected).filter(|(_, i)| **i) {
                *v = filled;
                if !plain {
                    *a = 0.0;
                }
            }
        }
        let normal = alpha[first_alpha..].iter().filter(|&&a| a > 0.0).count();
        let b = match (live.objective, live.beta_mode) {
            (Objective::Elbo, _) => 1.0,
            (Objective::MElbo, BetaMode::Mean) => normal as f64 / w as f64,
            (Objective::MElbo, BetaMode::Fixed) => live.beta_value,
        };
        let l = match live.entropy_mode {
            EntropyMode::One => 1.0,
            EntropyMode::Fixed => live.entropy_value,
            EntropyMode::Beta => b,
        };
        beta.push(b as f32);
        lambda.push(l as f32);
    }
    HostBatch {
        x,
        alpha,
        beta,
        lambda,
        n,
    }
}

impl HostBatch {
    /// Cuts the batch (and its latent noise `[n * K]`) into `parts` contiguous pieces of nearly
    /// equal size, in order.
    pub fn split(
        self,
        noise: &[f32],
        parts: usize,
        latent_dim: usize,
    ) -> Vec<(HostBatch, Vec<f32>)> {
        let n = self.n;
        let w = self.x.len().checked_div(n).unwrap_or(0);
        let parts = parts.clamp(1, n.max(1));
        (0..parts)
            .map(|p| {
                let (a, b) = (p * n / parts, (p + 1) * n / parts);
                (
                    HostBatch {
                        x: self.x[a * w..b * w].to_vec(),
                        alpha: self.alpha[a * w..b * w].to_vec(),
                        beta: self.beta[a..b].to_vec(),
                        lambda: self.lambda[a..b].to_vec(),
                        n: b - a,
                    },
                    noise[a * latent_dim..b * latent_dim].to_vec(),
                )
            })
            .collect()
    }

    /// Uploads to `device` with the given latent noise `[n * K]`.
    pub fn upload(
        self,
        noise: Vec<f32>,
        latent_dim: usize,
        window: usize,
        device: &Device,
    ) -> Batch {
        let n = self.n;
        Batch {
            x: Tensor::from_data(TensorData::new(self.x, [n, window]), device),
            alpha: Tensor::from_data(TensorData::new(self.alpha, [n, window]), device),
            beta: Tensor::from_data(TensorData::new(self.beta, [n]), device),
            lambda: Tensor::from_data(TensorData::new(self.lambda, [n]), device),
            noise: Tensor::from_data(TensorData::new(noise, [n, latent_dim]), device),
        }
    }
}
