//! The fused passes held to burn's autodiff (terms and every gradient, for each encoder and
//! latent family), and a reused workspace to a fresh one.

use super::*;
use crate::config::LatentDist;
use crate::model::DonutModel;
use crate::model::loss::{Batch, m_elbo};
use burn::optim::GradientsParams;
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};

/// burn's autodiff and the hand-derived pass give the same terms and gradients.
fn check(encoder: EncoderKind, latent_dist: LatentDist, window: usize) {
    let config = DonutConfig {
        window,
        hidden_width: 9,
        hidden_depth: 2,
        latent_dim: 3,
        cnn_channels: 4,
        encoder,
        latent_dist,
        ..Default::default()
    };
    let device = Device::flex().autodiff();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(11);
    let model = DonutModel::new(&config, &mut rng, &device);
    // Non-zero biases and varied kernels, so every parameter's gradient is exercised.
    let weights: Vec<_> = model
        .weights()
        .into_iter()
        .map(|mut w| {
            for v in &mut w.values {
                *v += 0.3 * Distribution::<f32>::sample(&StandardNormal, &mut rng);
            }
            w
        })
        .collect();
    let model = model.with_weights(&weights).expect("same shapes");
    let n = 5;
    let k = config.latent_dim;
    let x: Vec<f32> = (0..n * window)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let alpha: Vec<f32> = (0..n * window)
        .map(|_| f32::from(u8::from(rng.random_bool(0.8))))
        .collect();
    let beta: Vec<f32> = (0..n).map(|_| rng.random_range(0.2..1.0)).collect();
    let lambda: Vec<f32> = (0..n).map(|_| rng.random_range(0.2..1.0)).collect();
    let noise = model.latent().sample_noise(&mut rng, n * k);
    let l2_weight = 0.01;

    let tensor = |v: &Vec<f32>, shape: Vec<usize>| {
        Tensor::<2>::from_data(TensorData::new(v.clone(), shape), &device)
    };
    let batch = Batch {
        x: tensor(&x, vec![n, window]),
        alpha: tensor(&alpha, vec![n, window]),
        beta: Tensor::from_data(TensorData::new(beta.clone(), [n]), &device),
        lambda: Tensor::from_data(TensorData::new(lambda.clone(), [n]), &device),
        noise: tensor(&noise, vec![n, k]),
    };
    let loss = m_elbo(&model, batch, l2_weight);
    let terms = loss.to_terms();
    let grads = GradientsParams::from_grads(loss.total.backward(), &model);

    let layout = Layout::new(&config);
    let params = layout
        .flatten(&model.weights())
        .expect("layout fits the model");
    let mut grad = vec![0.0; layout.len()];
    let shard = Shard {
        x: &x,
        alpha: &alpha,
        beta: &beta,
        lambda: &lambda,
        noise: &noise,
    };
    let sums = layout.accumulate_gradient(
        &params,
        &shard,
        1.0 / n as f32,
        &mut Workspace::default(),
        &mut grad,
    );
    // The L2 penalty as the training step adds it: once, on the penalised tensors.
    for (range, penalised) in layout.ranges().zip(layout.penalised()) {
        if penalised {
            for i in range {
                grad[i] += l2_weight as f32 * params[i];
            }
        }
    }
    let l2 = layout.l2_penalty(&params, l2_weight);

    let close = |a: f64, b: f64| (a - b).abs() <= 1e-4 * (1.0 + b.abs());
    assert!(
        close(sums.recon / n as f64, terms.recon),
        "{sums:?} {terms:?}"
    );
    assert!(
        close(sums.prior / n as f64, terms.prior),
        "{sums:?} {terms:?}"
    );
    assert!(
        close(sums.entropy / n as f64, terms.entropy),
        "{sums:?} {terms:?}"
    );
    assert!(close(l2, terms.l2), "{l2} {terms:?}");

    // Parameter ids in module order, the order of `weights()` and of the layout.
    struct Ids(Vec<burn::module::ParamId>);
    impl burn::module::ModuleVisitor for Ids {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0.push(param.id);
        }
    }
    let mut ids = Ids(Vec::new());
    model.visit(&mut ids);
    let ids = ids.0;
    assert_eq!(ids.len(), layout.shapes().len());
    for (i, ((shape, ours), id)) in layout.tensors(&grad).zip(ids).enumerate() {
        let theirs: Vec<f32> = match shape.len() {
            1 => grads.get::<1>(id).map(|t| t.into_data()),
            2 => grads.get::<2>(id).map(|t| t.into_data()),
            _ => grads.get::<3>(id).map(|t| t.into_data()),
        }
        .and_then(|d| d.try_to_vec::<f32>().ok())
        .unwrap_or_else(|| panic!("burn has no gradient for tensor {i}"));
        let peak = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(peak > 0.0, "tensor {i} {shape:?}: zero gradient");
        for (a, b) in ours.iter().zip(&theirs) {
            assert!(
                (a - b).abs() <= 1e-4 * (1.0 + peak),
                "{encoder:?} {latent_dist:?}: tensor {i} {shape:?}\nours   {ours:?}\nautodiff {theirs:?}"
            );
        }
    }
}

#[test]
fn a_reused_workspace_gives_what_a_fresh_one_gives_for_another_shard_size() {
    // Buffers keep their contents between steps; pads and other rows that no pass writes must
    // not carry values from a step with another number of windows into the next.
    for encoder in [EncoderKind::Dense, EncoderKind::Cnn] {
        let window = 14;
        let config = DonutConfig {
            window,
            hidden_width: 6,
            latent_dim: 2,
            cnn_channels: 3,
            encoder,
            ..Default::default()
        };
        let layout = Layout::new(&config);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
        let mut normal = |count: usize| -> Vec<f32> {
            (0..count)
                .map(|_| Distribution::<f32>::sample(&StandardNormal, &mut rng))
                .collect()
        };
        let params = normal(layout.len());
        let gradient = |n: usize, data: &[Vec<f32>], ws: &mut Workspace| {
            let mut grad = vec![0.0; layout.len()];
            let ones = vec![1.0; n * window];
            let shard = Shard {
                x: &data[0][..n * window],
                alpha: &ones,
                beta: &ones[..n],
                lambda: &ones[..n],
                noise: &data[1][..n * 2],
            };
            layout.accumulate_gradient(&params, &shard, 0.1, ws, &mut grad);
            grad
        };
        let big = [normal(7 * window), normal(7 * 2)];
        let small = [normal(4 * window), normal(4 * 2)];
        let mut reused = Workspace::default();
        gradient(7, &big, &mut reused);
        let after_big = gradient(4, &small, &mut reused);
        let fresh = gradient(4, &small, &mut Workspace::default());
        assert_eq!(after_big, fresh, "{encoder:?}");
    }
}

#[test]
fn dense_gaussian_gradients_equal_burns_autodiff() {
    check(EncoderKind::Dense, LatentDist::Gaussian, 12);
}

#[test]
fn dense_student_t_gradients_equal_burns_autodiff() {
    check(EncoderKind::Dense, LatentDist::StudentT, 12);
}

#[test]
fn cnn_gradients_equal_burns_autodiff_for_even_and_odd_windows() {
    check(EncoderKind::Cnn, LatentDist::Gaussian, 16);
    check(EncoderKind::Cnn, LatentDist::StudentT, 15);
}
