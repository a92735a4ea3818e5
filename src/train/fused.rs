//! The data-parallel training step on the hand-derived gradient of [`crate::model::fused`]: the
//! batch is cut into one shard per thread, each shard's gradient is computed in its own reused
//! buffers and the gradients are summed; Adam then updates the flat parameter vector.

use super::adam::{AdamSettings, FlatAdam};
use super::batch::HostBatch;
use crate::config::{DonutConfig, GradientEngine};
use crate::history::LossTerms;
use crate::model::DonutModel;
use crate::model::fused::{Layout, Shard, TermSums, Workspace};
use rayon::prelude::*;

/// True when training with `config` uses the fused engine: it asks for it and its backend is a
/// CPU backend.
pub fn uses_fused(config: &DonutConfig) -> bool {
    config.gradients == GradientEngine::Fused && !config.backend.is_gpu()
}

/// The fused engine's buffers: the network layout, and one workspace and gradient buffer per
/// shard.
pub struct FusedStep {
    layout: Layout,
    /// The weight of the L2 penalty on the hidden kernels.
    l2_weight: f64,
    workspaces: Vec<Workspace>,
    grads: Vec<Vec<f32>>,
    /// Shards of the last step.
    shards_used: usize,
}

impl FusedStep {
    /// Buffers for `shards` shards of the network `config` describes, with its L2 weight.
    pub fn new(config: &DonutConfig, shards: usize) -> Self {
        let layout = Layout::new(config);
        let shards = shards.max(1);
        Self {
            workspaces: (0..shards).map(|_| Workspace::default()).collect(),
            grads: vec![vec![0.0; layout.len()]; shards],
            shards_used: 0,
            l2_weight: config.l2_weight,
            layout,
        }
    }

    /// The loss terms of `host` (with latent noise `noise: [n, K]`) at `params`; the shards'
    /// gradients stay in their buffers until they are summed tensor by tensor.
    pub fn step(
        &mut self,
        pool: &rayon::ThreadPool,
        params: &[f32],
        host: &HostBatch,
        noise: &[f32],
    ) -> LossTerms {
        let scale = 1.0 / host.n as f32;
        let layout = &self.layout;
        self.shards_used = self.workspaces.len().min(host.n).max(1);
        let sums = run_shards(
            pool,
            &mut self.workspaces,
            &mut self.grads,
            host,
            noise,
            |shard, ws, grad| {
                grad.fill(0.0);
                layout.accumulate_gradient(params, shard, scale, ws, grad)
            },
        );
        terms(sums, host.n, layout.l2_penalty(params, self.l2_weight))
    }

    /// The loss terms of `host` at `params` (forward passes only; no gradient is touched).
    pub fn loss(
        &mut self,
        pool: &rayon::ThreadPool,
        params: &[f32],
        host: &HostBatch,
        noise: &[f32],
    ) -> LossTerms {
        let layout = &self.layout;
        let sums = run_shards(
            pool,
            &mut self.workspaces,
            &mut self.grads,
            host,
            noise,
            |shard, ws, _| layout.loss_sums(params, shard, ws),
        );
        terms(sums, host.n, layout.l2_penalty(params, self.l2_weight))
    }

    /// The gradient of the last [`FusedStep::step`] (the shards' gradients summed, plus the L2
    /// penalty's), handed tensor by tensor to `update(parameters, gradient,
    /// state)` with that tensor's item of `states`, the tensors in parallel on `pool`.
    fn for_each_tensor_gradient<T: Send>(
        &mut self,
        pool: &rayon::ThreadPool,
        params: &mut [f32],
        states: Vec<T>,
        update: impl Fn(&mut [f32], &mut [f32], T) + Sync,
    ) {
        let sizes: Vec<usize> = self.layout.ranges().map(|r| r.len()).collect();
        let penalised = self.layout.penalised();
        let (first, rest) = self.grads.split_at_mut(1);
        let others = &rest[..self.shards_used.max(1) - 1];
        let l2 = self.l2_weight as f32;
        let tensors: Vec<_> = cut(params, &sizes)
            .into_iter()
            .zip(cut(&mut first[0], &sizes))
            .zip(self.layout.ranges().zip(penalised))
            .zip(states)
            .collect();
        pool.install(|| {
            tensors
                .into_par_iter()
                .for_each(|(((p, g), (range, penalised)), state)| {
                    for other in others {
                        for (g, o) in g.iter_mut().zip(&other[range.clone()]) {
                            *g += o;
                        }
                    }
                    if penalised {
                        for (g, &p) in g.iter_mut().zip(p.iter()) {
                            *g += l2 * p;
                        }
                    }
                    update(p, g, state);
                })
        });
    }
}

/// Runs `work(shard, workspace, gradient buffer)` on each of up to `workspaces.len()` contiguous
/// shards of `host` (and of its latent noise), in parallel on `pool`; returns the sum of the
/// results.
fn run_shards(
    pool: &rayon::ThreadPool,
    workspaces: &mut [Workspace],
    grads: &mut [Vec<f32>],
    host: &HostBatch,
    noise: &[f32],
    work: impl Fn(&Shard<'_>, &mut Workspace, &mut Vec<f32>) -> TermSums + Sync,
) -> TermSums {
    let n = host.n;
    let w = host.x.len() / n.max(1);
    let k = noise.len() / n.max(1);
    let shards = workspaces.len().min(n).max(1);
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
    let run = |(s, (ws, grad)): (usize, (&mut Workspace, &mut Vec<f32>))| work(&shard(s), ws, grad);
    let parts = workspaces[..shards]
        .iter_mut()
        .zip(grads[..shards].iter_mut());
    let sums: Vec<TermSums> = if shards == 1 {
        parts.enumerate().map(run).collect()
    } else {
        pool.install(|| {
            parts
                .collect::<Vec<_>>()
                .into_par_iter()
                .enumerate()
                .map(run)
                .collect()
        })
    };
    let mut total = TermSums::default();
    for s in sums {
        total += s;
    }
    total
}

/// The batch means of the summed terms over `n` windows, with the L2 penalty `l2`.
fn terms(sums: TermSums, n: usize, l2: f64) -> LossTerms {
    let (recon, prior, entropy) = (
        sums.recon / n as f64,
        sums.prior / n as f64,
        sums.entropy / n as f64,
    );
    LossTerms {
        total: -(recon + prior + entropy) + l2,
        recon,
        prior,
        entropy,
        l2,
    }
}

/// `v` cut into consecutive pieces of the given sizes.
fn cut<'a>(mut v: &'a mut [f32], sizes: &[usize]) -> Vec<&'a mut [f32]> {
    sizes
        .iter()
        .map(|&n| {
            let (head, tail) = std::mem::take(&mut v).split_at_mut(n);
            v = tail;
            head
        })
        .collect()
}

/// Training with the fused engine: flat parameters, the hand-derived gradient, and Adam on flat
/// vectors. The burn model is rebuilt from the parameters when asked for.
pub struct FusedLearner {
    step: FusedStep,
    params: Vec<f32>,
    adam: FlatAdam,
    model: DonutModel,
    model_is_current: bool,
}

impl FusedLearner {
    /// Starts from `model`'s parameters (a model on a CPU backend without autodiff); `None` when
    /// its tensors do not fit the layout of `config` (never expected).
    pub fn new(
        config: &DonutConfig,
        model: DonutModel,
        shards: usize,
        adam: AdamSettings,
    ) -> Option<Self> {
        let step = FusedStep::new(config, shards);
        let params = step.layout.flatten(&model.weights())?;
        Some(Self {
            adam: FlatAdam::new(params.len(), adam),
            step,
            params,
            model,
            model_is_current: true,
        })
    }

    /// Forward and backward pass; the gradient waits for [`FusedLearner::apply`].
    pub fn gradient(
        &mut self,
        pool: &rayon::ThreadPool,
        host: &HostBatch,
        noise: &[f32],
    ) -> LossTerms {
        self.step.step(pool, &self.params, host, noise)
    }

    /// The loss terms of `host` at the current parameters (validation; no gradient is touched).
    pub fn loss(&mut self, pool: &rayon::ThreadPool, host: &HostBatch, noise: &[f32]) -> LossTerms {
        self.step.loss(pool, &self.params, host, noise)
    }

    /// One Adam step along the last gradient, tensor by tensor in parallel on `pool`.
    pub fn apply(&mut self, pool: &rayon::ThreadPool, learning_rate: f64) {
        let sizes: Vec<usize> = self.step.layout.ranges().map(|r| r.len()).collect();
        let (adam, moment_1, moment_2) = self.adam.next_step(learning_rate);
        let moments: Vec<_> = cut(moment_1, &sizes)
            .into_iter()
            .zip(cut(moment_2, &sizes))
            .collect();
        self.step.for_each_tensor_gradient(
            pool,
            &mut self.params,
            moments,
            |params, grad, (m1, m2)| adam.update(params, grad, m1, m2),
        );
        self.model_is_current = false;
    }

    /// The current parameters, flat (the layout's order).
    pub fn params(&self) -> &[f32] {
        &self.params
    }

    /// The current parameters as a burn model.
    pub fn model(&mut self) -> &DonutModel {
        if !self.model_is_current {
            let weights = self.step.layout.unflatten(&self.params);
            let model = self.model.clone();
            self.model = model
                .with_weights(&weights)
                .unwrap_or_else(|e| unreachable!("the layout was checked at the start: {e}"));
            self.model_is_current = true;
        }
        &self.model
    }
}
