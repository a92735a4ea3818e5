//! One optimisation step, whichever engine differentiates: the fused engine (flat parameters,
//! the hand-derived gradient, Adam on flat vectors) or burn's autodiff (a burn model on the
//! backend's autodiff device and burn's Adam). Both apply the same Adam settings.

use super::adam::AdamSettings;
use super::batch::HostBatch;
use super::fused::{FusedLearner, uses_fused};
use crate::config::DonutConfig;
use crate::history::LossTerms;
use crate::model::DonutModel;
use crate::model::loss::{Batch, m_elbo};
use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rayon::iter::{IntoParallelIterator, ParallelIterator};

/// DONUT's Adam: beta 0.9 / 0.999, epsilon 1e-8, each tensor's gradient clipped to
/// `config.grad_clip_norm`.
pub fn adam_settings(config: &DonutConfig) -> AdamSettings {
    AdamSettings {
        beta_1: 0.9,
        beta_2: 0.999,
        epsilon: 1e-8,
        clip_norm: Some(config.grad_clip_norm as f32),
    }
}

/// A model being trained and its optimiser.
#[allow(clippy::large_enum_variant)]
pub enum Learner {
    /// The fused engine.
    Fused(FusedLearner),
    /// burn's autodiff.
    Autodiff {
        /// The model, on the autodiff device (taken out only while the optimiser steps it).
        model: Option<DonutModel>,
        /// burn's Adam.
        optim: ModuleOptimizer,
        /// The gradient waiting for `apply`.
        grads: Option<GradientsParams>,
        /// Shards of a data-parallel step.
        shards: usize,
        /// The weight of the L2 penalty.
        l2_weight: f64,
        /// The autodiff device.
        device: Device,
    },
}

impl Learner {
    /// A freshly initialised model for `config` (drawn from `rng`) on `device` (a backend's
    /// device without autodiff), trained with `shards` shards per step.
    pub fn new(
        config: &DonutConfig,
        rng: &mut Xoshiro256PlusPlus,
        device: &Device,
        shards: usize,
    ) -> Self {
        let adam = adam_settings(config);
        if uses_fused(config) {
            let model = DonutModel::new(config, rng, device);
            match FusedLearner::new(config, model, shards, adam) {
                Some(learner) => return Learner::Fused(learner),
                None => unreachable!("the layout is built from the same config as the model"),
            }
        }
        let device = device.clone().autodiff();
        Learner::Autodiff {
            model: Some(DonutModel::new(config, rng, &device)),
            optim: AdamConfig::new()
                .with_beta_1(adam.beta_1)
                .with_beta_2(adam.beta_2)
                .with_epsilon(adam.epsilon)
                .with_grad_clipping(adam.clip_norm.map(GradientClippingConfig::Norm))
                .init(),
            grads: None,
            shards,
            l2_weight: config.l2_weight,
            device,
        }
    }

    /// The loss terms of `host` with latent noise `noise: [n, K]`; the gradient of its mean loss
    /// waits for [`Learner::apply`].
    pub fn gradient(
        &mut self,
        pool: &rayon::ThreadPool,
        host: HostBatch,
        noise: Vec<f32>,
    ) -> LossTerms {
        match self {
            Learner::Fused(f) => f.gradient(pool, &host, &noise),
            Learner::Autodiff {
                model,
                grads,
                shards,
                l2_weight,
                device,
                ..
            } => {
                let latent_dim = noise.len() / host.n.max(1);
                let window = host.x.len() / host.n.max(1);
                let Some(model) = model.as_ref() else {
                    unreachable!("the model is only taken out within `apply`")
                };
                let (terms, g) = sharded_step(
                    pool, model, host, noise, *shards, latent_dim, window, *l2_weight, device,
                );
                *grads = Some(g);
                terms
            }
        }
    }

    /// One Adam step along the last gradient (nothing when there is none); the fused engine
    /// updates its tensors in parallel on `pool`.
    pub fn apply(&mut self, pool: &rayon::ThreadPool, learning_rate: f64) {
        match self {
            Learner::Fused(f) => f.apply(pool, learning_rate),
            Learner::Autodiff {
                model,
                optim,
                grads,
                ..
            } => {
                if let (Some(g), Some(m)) = (grads.take(), model.take()) {
                    *model = Some(optim.step(learning_rate, m, g));
                }
            }
        }
    }

    /// The loss terms of `host` with latent noise `noise` at the current parameters, without
    /// gradients (validation). The fused engine runs its own forward pass; autodiff runs burn's
    /// on the model's non-autodiff form.
    pub fn loss(
        &mut self,
        pool: &rayon::ThreadPool,
        host: HostBatch,
        noise: Vec<f32>,
    ) -> LossTerms {
        match self {
            Learner::Fused(f) => f.loss(pool, &host, &noise),
            Learner::Autodiff { l2_weight, .. } => {
                let l2_weight = *l2_weight;
                let latent_dim = noise.len() / host.n.max(1);
                let window = host.x.len() / host.n.max(1);
                let model = self.model().valid();
                let device = model.device();
                m_elbo(
                    &model,
                    host.upload(noise, latent_dim, window, &device),
                    l2_weight,
                )
                .to_terms()
            }
        }
    }

    /// The current parameters, flat, when the fused engine trains them.
    pub fn fused_params(&self) -> Option<&[f32]> {
        match self {
            Learner::Fused(f) => Some(f.params()),
            Learner::Autodiff { .. } => None,
        }
    }

    /// The current parameters as a burn model (for the best parameters kept, latent snapshots and
    /// the result).
    pub fn model(&mut self) -> &DonutModel {
        match self {
            Learner::Fused(f) => f.model(),
            Learner::Autodiff { model, .. } => model
                .as_ref()
                .unwrap_or_else(|| unreachable!("the model is only taken out within `apply`")),
        }
    }
}

/// One data-parallel optimisation step's forward and backward passes: the batch is cut into
/// `shards` contiguous parts, each part's loss (scaled by its share of the batch) is
/// differentiated on its own thread against a fork of `model`, and the gradients are summed, which
/// gives the gradient of the whole batch's mean loss. Returns the batch's loss terms (the shards'
/// terms weighted by their share) and the summed gradients.
#[allow(clippy::too_many_arguments)]
fn sharded_step(
    pool: &rayon::ThreadPool,
    model: &DonutModel,
    host: HostBatch,
    noise: Vec<f32>,
    shards: usize,
    latent_dim: usize,
    window: usize,
    l2_weight: f64,
    device: &Device,
) -> (LossTerms, GradientsParams) {
    let n = host.n;
    if shards <= 1 {
        let loss = m_elbo(
            model,
            host.upload(noise, latent_dim, window, device),
            l2_weight,
        );
        let terms = loss.to_terms();
        let grads = GradientsParams::from_grads(loss.total.backward(), model);
        return (terms, grads);
    }
    let parts: Vec<(DonutModel, Batch, f64)> = host
        .split(&noise, shards, latent_dim)
        .into_iter()
        .map(|(part, noise)| {
            let share = part.n as f64 / n as f64;
            let batch = part.upload(noise, latent_dim, window, device);
            (model.clone().fork(device), batch, share)
        })
        .collect();
    let results: Vec<(LossTerms, GradientsParams, f64)> = pool.install(|| {
        parts
            .into_par_iter()
            .map(|(replica, batch, share)| {
                let loss = m_elbo(&replica, batch, l2_weight);
                let terms = loss.to_terms();
                let grads = loss.total.mul_scalar(share).backward();
                (terms, GradientsParams::from_grads(grads, &replica), share)
            })
            .collect()
    });
    let mut accumulator = GradientsAccumulator::<DonutModel>::new();
    let mut terms = LossTerms::default();
    for (t, grads, share) in results {
        accumulator.accumulate(model, grads);
        terms.add_weighted(&t, share);
    }
    (terms, accumulator.grads())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EncoderKind, GradientEngine};
    use crate::data::{Part, Prepared};
    use crate::model::Latent;
    use crate::train::batch::host_batch;
    use rand::SeedableRng;

    /// Both engines, started from the same seed and fed the same batches, stay together step
    /// after step: the same gradient (up to rounding) and the same Adam, clipping included.
    fn engines_agree(encoder: EncoderKind, grad_clip_norm: f64) {
        let raw = crate::data::sample::synthetic(3_000);
        let base = DonutConfig {
            encoder,
            grad_clip_norm,
            batch_size: 64,
            hidden_width: 20,
            cnn_channels: 4,
            threads: 2,
            ..Default::default()
        };
        let prep = Prepared::new(&raw, &base).expect("synthetic series prepares");
        let ends: Vec<usize> = prep.window_ends(Part::Train).take(64).collect();
        let device = Device::flex();
        let pool = crate::threads::pool(2);
        let learners: Vec<Learner> = [GradientEngine::Fused, GradientEngine::Autodiff]
            .into_iter()
            .map(|gradients| {
                let config = DonutConfig {
                    gradients,
                    ..base.clone()
                };
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
                Learner::new(&config, &mut rng, &device, 2)
            })
            .collect();
        let [mut fused, mut autodiff] = <[Learner; 2]>::try_from(learners).ok().expect("two");
        assert!(matches!(fused, Learner::Fused(_)));
        assert!(matches!(autodiff, Learner::Autodiff { .. }));
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(2);
        for step in 0..6 {
            let host = || host_batch(&prep, &ends, &[], &base.live());
            let noise = Latent::of(&base).sample_noise(&mut rng, 64 * base.latent_dim);
            let a = fused.gradient(&pool, host(), noise.clone());
            let b = autodiff.gradient(&pool, host(), noise);
            assert!(
                (a.total - b.total).abs() <= 1e-4 * (1.0 + b.total.abs()),
                "step {step}: {a:?} vs {b:?}"
            );
            fused.apply(&pool, 1e-2);
            autodiff.apply(&pool, 1e-2);
            // Validation's forward-only loss agrees too, and equals the step's loss at the same
            // parameters and noise.
            let noise = Latent::of(&base).sample_noise(&mut rng, 64 * base.latent_dim);
            let a = fused.loss(&pool, host(), noise.clone());
            let b = autodiff.loss(&pool, host(), noise.clone());
            assert!(
                (a.total - b.total).abs() <= 1e-4 * (1.0 + b.total.abs()),
                "validation after step {step}: {a:?} vs {b:?}"
            );
            let c = fused.gradient(&pool, host(), noise);
            assert_eq!(a, c, "a forward pass alone gives the step's terms");
        }
        for (i, (a, b)) in fused
            .model()
            .weights()
            .iter()
            .zip(autodiff.model().weights())
            .enumerate()
        {
            let peak = b.values.iter().fold(0f32, |m, v| m.max(v.abs()));
            for (x, y) in a.values.iter().zip(&b.values) {
                assert!(
                    (x - y).abs() <= 1e-3 * (1.0 + peak),
                    "tensor {i} after 6 steps: {x} vs {y}"
                );
            }
        }
    }

    #[test]
    fn the_fused_and_autodiff_engines_take_the_same_steps() {
        engines_agree(EncoderKind::Dense, 10.0);
        engines_agree(EncoderKind::Cnn, 10.0);
    }

    #[test]
    fn the_fused_engine_clips_gradients_like_burns_adam() {
        // A bound this small clips every tensor's gradient at every step.
        engines_agree(EncoderKind::Dense, 0.01);
    }
}
