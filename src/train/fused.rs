//! The data-parallel training step on the hand-derived gradient of [`crate::model::fused`]: the
//! batch is cut into one shard per thread, each shard's gradient is computed in its own reused
//! buffers, and the sums become burn gradients for the optimiser.

use super::batch::HostBatch;
use crate::config::{DonutConfig, GradientEngine};
use crate::model::DonutModel;
use crate::model::fused::{Layout, Shard, TermSums, Workspace};
use crate::model::loss::LossTerms;
use burn::module::ParamId;
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

/// The fused engine's state: the network layout, the parameter ids in module order, and one
/// workspace and gradient buffer per shard.
pub struct FusedStep {
    layout: Layout,
    ids: Vec<ParamId>,
    workspaces: Vec<Workspace>,
    grads: Vec<Vec<f32>>,
}

impl FusedStep {
    /// The fused step for `model` with `shards` shards, or `None` when `config` asks for autodiff,
    /// its backend is a GPU, or (never expected) the model's tensors do not fit the layout.
    pub fn new(config: &DonutConfig, model: &DonutModel, shards: usize) -> Option<Self> {
        if config.gradients != GradientEngine::Fused || config.backend.is_gpu() {
            return None;
        }
        let layout = Layout::new(config);
        layout.flatten(&model.weights())?;
        let shards = shards.max(1);
        Some(Self {
            ids: model.param_ids(),
            workspaces: (0..shards).map(|_| Workspace::default()).collect(),
            grads: vec![vec![0.0; layout.len()]; shards],
            layout,
        })
    }

    /// The loss terms of `host` (with latent noise `noise: [n, K]`) and the gradient of its mean
    /// loss with respect to `model`'s parameters, as tensors on `device` (the model's device
    /// without autodiff), ready for the optimiser.
    pub fn step(
        &mut self,
        pool: &rayon::ThreadPool,
        model: &DonutModel,
        host: &HostBatch,
        noise: &[f32],
        l2_weight: f64,
        device: &Device,
    ) -> (LossTerms, GradientsParams) {
        let n = host.n;
        let layout = &self.layout;
        let Some(params) = layout.flatten(&model.weights()) else {
            // `new` checked the layout against this model's shapes, which training keeps.
            unreachable!("the model's parameters changed shape during training")
        };
        let w = host.x.len() / n.max(1);
        let k = noise.len() / n.max(1);
        let shards = self.workspaces.len().min(n).max(1);
        let scale = 1.0 / n as f32;
        let shard = |s: usize| {
            let (a, b) = (s * n / shards, (s + 1) * n / shards);
            Shard {
                x: &host.x[a * w..b * w],
                alpha: &host.alpha[a * w..b * w],
                beta: &host.beta[a..b],
                lambda: &host.lambda[a..b],
                noise: &noise[a * k..b * k],
            }
        };
        let work = |(s, (ws, grad)): (usize, (&mut Workspace, &mut Vec<f32>))| {
            grad.fill(0.0);
            layout.accumulate_gradient(&params, &shard(s), scale, ws, grad)
        };
        let parts = self.workspaces[..shards]
            .iter_mut()
            .zip(self.grads[..shards].iter_mut());
        let sums: Vec<TermSums> = if shards == 1 {
            parts.enumerate().map(work).collect()
        } else {
            pool.install(|| {
                parts
                    .collect::<Vec<_>>()
                    .into_par_iter()
                    .enumerate()
                    .map(work)
                    .collect()
            })
        };

        let (first, rest) = self.grads.split_at_mut(1);
        let grad = &mut first[0];
        for other in &rest[..shards - 1] {
            for (g, o) in grad.iter_mut().zip(other) {
                *g += o;
            }
        }
        let l2 = layout.add_l2(&params, l2_weight, grad);
        let mut total = TermSums::default();
        for s in sums {
            total += s;
        }
        let (recon, prior, entropy) = (
            total.recon / n as f64,
            total.prior / n as f64,
            total.entropy / n as f64,
        );
        let terms = LossTerms {
            total: -(recon + prior + entropy) + l2,
            recon,
            prior,
            entropy,
            l2,
        };

        let mut grads = GradientsParams::new();
        for ((shape, values), id) in layout.tensors(grad).zip(&self.ids) {
            let data = TensorData::new(values.to_vec(), shape.to_vec());
            match shape.len() {
                1 => grads.register(*id, Tensor::<1>::from_data(data, device)),
                2 => grads.register(*id, Tensor::<2>::from_data(data, device)),
                _ => grads.register(*id, Tensor::<3>::from_data(data, device)),
            }
        }
        (terms, grads)
    }
}
