//! The M-ELBO objective, term by term.
//!
//! Per window, with one reparameterised sample `z ~ q(z|x)`:
//! `L = sum_w alpha_w log p(x_w|z) + beta log p(z) - lambda log q(z|x)`.
//! The loss is `-mean(L) + l2 / 2 * sum(hidden kernels^2)` (TensorFlow's `l2_regularizer`, as in
//! DONUT). Each term is reported on its own so the explorer can show how they trade off.

use super::DonutModel;
use super::latent::gaussian_log_density;
use crate::history::LossTerms;
use burn::prelude::*;

/// One batch as the objective reads it. All tensors on the model's device.
pub struct Batch {
    /// Standardised windows `[n, W]` (injected points already set to 0).
    pub x: Tensor<2>,
    /// Reconstruction weights `[n, W]`: 0 where labelled anomalous, missing or injected, else 1.
    pub alpha: Tensor<2>,
    /// Weight of log p(z) per window `[n]`.
    pub beta: Tensor<1>,
    /// Weight of -log q(z|x) per window `[n]`.
    pub lambda: Tensor<1>,
    /// Standard latent noise `[n, K]`.
    pub noise: Tensor<2>,
}

/// The terms of the objective as scalar tensors (means over the batch).
pub struct LossTensors {
    /// The loss to minimise: `-(recon + prior + entropy) + l2`.
    pub total: Tensor<1>,
    /// Mean of `sum_w alpha_w log p(x_w|z)`.
    pub recon: Tensor<1>,
    /// Mean of `beta log p(z)`.
    pub prior: Tensor<1>,
    /// Mean of `-lambda log q(z|x)`.
    pub entropy: Tensor<1>,
    /// The L2 penalty.
    pub l2: Tensor<1>,
}

impl LossTensors {
    /// Reads the scalars back (one synchronisation).
    pub fn to_terms(&self) -> LossTerms {
        let all = Tensor::cat(
            vec![
                self.total.clone(),
                self.recon.clone(),
                self.prior.clone(),
                self.entropy.clone(),
                self.l2.clone(),
            ],
            0,
        );
        let v = all
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_else(|_| vec![f32::NAN; 5]);
        LossTerms {
            total: v[0] as f64,
            recon: v[1] as f64,
            prior: v[2] as f64,
            entropy: v[3] as f64,
            l2: v[4] as f64,
        }
    }
}

/// Computes the M-ELBO loss of `batch`; `l2_weight` scales the penalty on hidden kernels.
pub fn m_elbo(model: &DonutModel, batch: Batch, l2_weight: f64) -> LossTensors {
    let latent = model.latent();
    let q = model.encode(batch.x.clone()); // mean, std: [n, K]
    let z = q.mean + q.std.clone() * batch.noise.clone(); // [n, K]
    let p = model.decode(z.clone()); // mean, std: [n, W]

    let log_px = gaussian_log_density(batch.x, p.mean, p.std); // [n, W]
    let recon = (log_px * batch.alpha).sum_dim(1).squeeze_dim::<1>(1); // [n]
    let prior = latent.log_prior(z) * batch.beta; // [n]
    let entropy = latent.log_posterior(batch.noise, q.std).neg() * batch.lambda; // [n]

    let recon = recon.mean();
    let prior = prior.mean();
    let entropy = entropy.mean();
    let l2 = model.hidden_kernel_squares().mul_scalar(0.5 * l2_weight);
    let total = (recon.clone() + prior.clone() + entropy.clone()).neg() + l2.clone();
    LossTensors {
        total,
        recon,
        prior,
        entropy,
        l2,
    }
}
