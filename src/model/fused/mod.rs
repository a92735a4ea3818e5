//! The M-ELBO and its gradient derived by hand, for training on the CPU.
//!
//! burn's autodiff records each operation of a step in a graph (behind one lock shared by every
//! thread) and runs each element-wise operation as its own pass over memory. For DONUT's small
//! networks that bookkeeping costs more than the arithmetic. This module computes the same loss
//! and gradient as [`super::loss::m_elbo`] followed by `backward`, for the dense and the CNN
//! encoder, in one forward and one backward pass over buffers that are reused from step to step:
//! the matrix products through `gemm` (the kernels flex runs), the element-wise parts fused into
//! single loops. Parameters and gradients are flat vectors in the module order of
//! [`super::DonutModel::weights`]. A test checks every gradient against burn's autodiff.
//!
//! [`Layout`] (here) places each parameter tensor in the flat vector and runs the passes over the
//! whole network; the layers they go through are split by kind: `dense` (linear layers and stacks
//! of them), `conv` (the CNN encoder), `recon` (the reconstruction term). `workspace` holds a
//! shard's inputs, the sums of its terms and the buffers kept between steps.

pub mod math;
pub mod matmul;

mod conv;
mod dense;
mod recon;
mod scoring;
mod workspace;

#[cfg(test)]
mod tests;

pub use recon::sum_of_squares;
pub use scoring::ScoringNet;
pub use workspace::{Shard, TermSums, Workspace};

use super::Weight;
use super::latent::Latent;
use crate::config::{DonutConfig, EncoderKind};
use dense::{dense_stack_backward, dense_stack_forward, linear_backward, linear_forward};
use matmul::MatRef;
use recon::{ReconInput, recon_pass, softplus_sigmoid, sum_f64};
use workspace::sized;

/// Where a dense layer's kernel `[d_in, d_out]` and bias `[d_out]` start in the flat vector.
#[derive(Clone, Copy, Debug)]
struct LinearAt {
    weight: usize,
    bias: usize,
    d_in: usize,
    d_out: usize,
}

/// Where a kernel-3 convolution's kernel `[c_out, c_in, 3]` and bias `[c_out]` start.
#[derive(Clone, Copy, Debug)]
struct ConvAt {
    weight: usize,
    bias: usize,
    c_in: usize,
    c_out: usize,
}

#[derive(Clone, Debug)]
enum EncoderAt {
    Dense(Vec<LinearAt>),
    Cnn { conv1: ConvAt, conv2: ConvAt },
}

/// The network's shape, and where each parameter tensor sits in the flat parameter vector.
#[derive(Clone, Debug)]
pub struct Layout {
    shapes: Vec<Vec<usize>>,
    offsets: Vec<usize>,
    len: usize,
    encoder: EncoderAt,
    z_mean: LinearAt,
    z_std: LinearAt,
    decoder: Vec<LinearAt>,
    x_mean: LinearAt,
    x_std: LinearAt,
    window: usize,
    latent_dim: usize,
    latent: Latent,
    /// The latent family's log normalising constant per dimension.
    log_constant: f32,
    std_epsilon: f32,
}

#[derive(Default)]
struct Builder {
    shapes: Vec<Vec<usize>>,
    offsets: Vec<usize>,
    len: usize,
}

impl Builder {
    fn push(&mut self, shape: Vec<usize>) -> usize {
        let offset = self.len;
        self.len += shape.iter().product::<usize>();
        self.shapes.push(shape);
        self.offsets.push(offset);
        offset
    }

    fn linear(&mut self, d_in: usize, d_out: usize) -> LinearAt {
        LinearAt {
            weight: self.push(vec![d_in, d_out]),
            bias: self.push(vec![d_out]),
            d_in,
            d_out,
        }
    }

    fn conv(&mut self, c_in: usize, c_out: usize) -> ConvAt {
        ConvAt {
            weight: self.push(vec![c_out, c_in, 3]),
            bias: self.push(vec![c_out]),
            c_in,
            c_out,
        }
    }

    fn stack(&mut self, d_in: usize, width: usize, depth: usize) -> Vec<LinearAt> {
        (0..depth)
            .map(|i| self.linear(if i == 0 { d_in } else { width }, width))
            .collect()
    }
}

impl Layout {
    /// The layout of the network that [`super::DonutModel::new`] builds for `config`.
    pub fn new(config: &DonutConfig) -> Self {
        let (w, width, depth, k) = (
            config.window,
            config.hidden_width,
            config.hidden_depth,
            config.latent_dim,
        );
        let mut b = Builder::default();
        let (encoder, features) = match config.encoder {
            EncoderKind::Dense => (EncoderAt::Dense(b.stack(w, width, depth)), width),
            EncoderKind::Cnn => {
                let c = config.cnn_channels;
                let conv1 = b.conv(1, c);
                let conv2 = b.conv(c, c);
                (EncoderAt::Cnn { conv1, conv2 }, c * ((w / 2) / 2))
            }
        };
        let z_mean = b.linear(features, k);
        let z_std = b.linear(features, k);
        let decoder = b.stack(k, width, depth);
        let x_mean = b.linear(width, w);
        let x_std = b.linear(width, w);
        let latent = Latent::of(config);
        Self {
            shapes: b.shapes,
            offsets: b.offsets,
            len: b.len,
            encoder,
            z_mean,
            z_std,
            decoder,
            x_mean,
            x_std,
            window: w,
            latent_dim: k,
            latent,
            log_constant: latent.log_constant() as f32,
            std_epsilon: config.std_epsilon as f32,
        }
    }

    /// Values in the flat parameter vector.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a network without parameters (never built by [`Layout::new`]).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Shapes of the parameter tensors, in module order.
    pub fn shapes(&self) -> &[Vec<usize>] {
        &self.shapes
    }

    /// `weights` (from [`super::DonutModel::weights`]) as one flat vector, or `None` when their
    /// shapes are not this layout's.
    pub fn flatten(&self, weights: &[Weight]) -> Option<Vec<f32>> {
        let fits = weights.len() == self.shapes.len()
            && weights
                .iter()
                .zip(&self.shapes)
                .all(|(w, s)| &w.shape == s && w.values.len() == s.iter().product::<usize>());
        fits.then(|| {
            weights
                .iter()
                .flat_map(|w| w.values.iter().copied())
                .collect()
        })
    }

    /// The flat vector `flat` cut into one slice per parameter tensor, in module order.
    pub fn tensors<'a>(
        &'a self,
        flat: &'a [f32],
    ) -> impl Iterator<Item = (&'a [usize], &'a [f32])> {
        self.shapes.iter().zip(&self.offsets).map(move |(s, &o)| {
            let len = s.iter().product::<usize>();
            (s.as_slice(), &flat[o..o + len])
        })
    }

    /// The range of each parameter tensor in the flat vector, in module order.
    pub fn ranges(&self) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        self.shapes
            .iter()
            .zip(&self.offsets)
            .map(|(s, &o)| o..o + s.iter().product::<usize>())
    }

    /// The flat vector `flat` as [`Weight`]s (what [`super::DonutModel::with_weights`] takes).
    pub fn unflatten(&self, flat: &[f32]) -> Vec<Weight> {
        self.tensors(flat)
            .map(|(shape, values)| Weight {
                shape: shape.to_vec(),
                values: values.to_vec(),
            })
            .collect()
    }

    /// Ranges of the hidden kernels (encoder and decoder bodies), which the L2 penalty covers.
    fn hidden_kernels(&self) -> Vec<std::ops::Range<usize>> {
        let mut ranges = Vec::new();
        match &self.encoder {
            EncoderAt::Dense(layers) => {
                ranges.extend(layers.iter().map(|l| l.weight..l.weight + l.d_in * l.d_out))
            }
            EncoderAt::Cnn { conv1, conv2 } => {
                for c in [conv1, conv2] {
                    ranges.push(c.weight..c.weight + c.c_out * c.c_in * 3);
                }
            }
        }
        ranges.extend(
            self.decoder
                .iter()
                .map(|l| l.weight..l.weight + l.d_in * l.d_out),
        );
        ranges
    }

    /// For each parameter tensor (module order), whether it is a hidden kernel, which the L2
    /// penalty covers.
    pub fn penalised(&self) -> Vec<bool> {
        let hidden: Vec<usize> = self.hidden_kernels().iter().map(|r| r.start).collect();
        self.offsets.iter().map(|o| hidden.contains(o)).collect()
    }

    /// The L2 penalty `l2_weight / 2 * sum(hidden kernels^2)`.
    pub fn l2_penalty(&self, params: &[f32], l2_weight: f64) -> f64 {
        let squares: f64 = self
            .hidden_kernels()
            .into_iter()
            .map(|range| sum_of_squares(&params[range]))
            .sum();
        0.5 * l2_weight * squares
    }

    /// Forward and backward pass of one shard: adds `scale` times the gradient of the negated
    /// sum of the shard's three M-ELBO terms to `grad` (use `scale = 1 / batch size` for the
    /// batch mean) and returns the sums of the terms. The L2 penalty is not included
    /// (see [`Layout::l2_penalty`] and [`Layout::penalised`]: it is added once per batch).
    ///
    /// # Panics
    /// When `params` or `grad` do not have [`Layout::len`] values or the shard's slices
    /// disagree on the number of windows.
    pub fn accumulate_gradient(
        &self,
        params: &[f32],
        shard: &Shard<'_>,
        scale: f32,
        ws: &mut Workspace,
        grad: &mut [f32],
    ) -> TermSums {
        assert_eq!(grad.len(), self.len, "gradient vector");
        let (sums, features) = self.forward(params, shard, scale, ws);
        self.backward(params, shard, scale, features, ws, grad);
        sums
    }

    /// The sums of the shard's three M-ELBO terms (a forward pass only: validation).
    ///
    /// # Panics
    /// As [`Layout::accumulate_gradient`].
    pub fn loss_sums(&self, params: &[f32], shard: &Shard<'_>, ws: &mut Workspace) -> TermSums {
        self.forward(params, shard, 0.0, ws).0
    }

    /// The forward pass: every activation into `ws`, the gradient at the decoder's heads (times
    /// `scale`), and the sums of the terms; also returns the encoder's output width.
    fn forward(
        &self,
        params: &[f32],
        shard: &Shard<'_>,
        scale: f32,
        ws: &mut Workspace,
    ) -> (TermSums, usize) {
        assert_eq!(params.len(), self.len, "parameter vector");
        let (w, k) = (self.window, self.latent_dim);
        let n = shard.beta.len();
        assert!(
            shard.x.len() == n * w
                && shard.alpha.len() == n * w
                && shard.lambda.len() == n
                && shard.noise.len() == n * k,
            "shard of {n} windows"
        );
        let features = self.encoder_forward(params, shard.x, n, ws);

        // q(z|x) and the reparameterised sample.
        let feat = MatRef::new(features_of(&self.encoder, &ws.encoder), n, features);
        linear_forward(sized(&mut ws.mu_z, n * k), feat, params, &self.z_mean);
        linear_forward(sized(&mut ws.pre_std_z, n * k), feat, params, &self.z_std);
        let std_z = sized(&mut ws.std_z, n * k);
        for (s, &pre) in std_z.iter_mut().zip(&ws.pre_std_z) {
            *s = softplus_sigmoid(pre).0 + self.std_epsilon;
        }
        let z = sized(&mut ws.z, n * k);
        for (((z, &mu), &std), &eps) in z.iter_mut().zip(&ws.mu_z).zip(&ws.std_z).zip(shard.noise) {
            *z = mu + std * eps;
        }

        // p(x|z).
        let width = self.x_mean.d_in;
        dense_stack_forward(&self.decoder, params, &ws.z, n, &mut ws.decoder);
        let hx = MatRef::new(&ws.decoder[self.decoder.len() - 1], n, width);
        linear_forward(sized(&mut ws.mu_x, n * w), hx, params, &self.x_mean);
        linear_forward(sized(&mut ws.pre_std_x, n * w), hx, params, &self.x_std);

        // Reconstruction term and its gradient with respect to the decoder's two heads.
        let len = n * w;
        let log_px = &mut ws.mu_x[..len];
        recon_pass(
            ReconInput {
                alpha: &shard.alpha[..len],
                pre_std: &ws.pre_std_x[..len],
                x: &shard.x[..len],
                eps: self.std_epsilon,
                scale,
            },
            log_px,
            &mut sized(&mut ws.d_mu_x, len)[..len],
            &mut sized(&mut ws.d_pre_std_x, len)[..len],
        );
        let mut sums = TermSums {
            recon: sum_f64(log_px),
            ..TermSums::default()
        };

        // The prior and entropy terms.
        let k_constant = k as f32 * self.log_constant;
        for i in 0..n {
            let (beta, lambda) = (shard.beta[i], shard.lambda[i]);
            let mut log_prior = k_constant;
            let mut log_posterior = k_constant;
            for j in i * k..(i + 1) * k {
                log_prior += self.latent.log_kernel_and_slope(ws.z[j]).0;
                log_posterior +=
                    self.latent.log_kernel_and_slope(shard.noise[j]).0 - ws.std_z[j].ln();
            }
            sums.prior += (beta * log_prior) as f64;
            sums.entropy -= (lambda * log_posterior) as f64;
        }
        (sums, features)
    }

    /// The backward pass after [`Layout::forward`]: adds the gradient to `grad`.
    fn backward(
        &self,
        params: &[f32],
        shard: &Shard<'_>,
        scale: f32,
        features: usize,
        ws: &mut Workspace,
        grad: &mut [f32],
    ) {
        let k = self.latent_dim;
        let n = shard.beta.len();
        let width = self.x_mean.d_in;
        let hx = MatRef::new(&ws.decoder[self.decoder.len() - 1], n, width);
        // Back through the decoder's heads and body, to z.
        let d_hx = sized(&mut ws.d_a, n * width);
        linear_backward(
            grad,
            params,
            &self.x_mean,
            hx,
            &ws.d_mu_x,
            Some((d_hx, false)),
        );
        linear_backward(
            grad,
            params,
            &self.x_std,
            hx,
            &ws.d_pre_std_x,
            Some((d_hx, true)),
        );
        let d_z = sized(&mut ws.d_z, n * k);
        dense_stack_backward(
            &self.decoder,
            params,
            grad,
            &ws.z,
            n,
            &ws.decoder,
            &mut ws.d_a,
            &mut ws.d_b,
            Some(d_z),
        );

        // The gradient at q(z|x)'s two heads, the prior and entropy terms' share included.
        let d_mu_z = sized(&mut ws.d_mu_z, n * k);
        let d_pre_std_z = sized(&mut ws.d_pre_std_z, n * k);
        for i in 0..n {
            let (beta, lambda) = (shard.beta[i], shard.lambda[i]);
            for j in i * k..(i + 1) * k {
                let (z, eps, std) = (ws.z[j], shard.noise[j], ws.std_z[j]);
                let d_log_z = self.latent.log_kernel_and_slope(z).1;
                let dz = ws.d_z[j] - scale * beta * d_log_z;
                d_mu_z[j] = dz;
                let d_std = dz * eps - scale * lambda / std;
                d_pre_std_z[j] = d_std * softplus_sigmoid(ws.pre_std_z[j]).1;
            }
        }

        // Back through q(z|x)'s heads and the encoder.
        let feat = MatRef::new(features_of(&self.encoder, &ws.encoder), n, features);
        let d_feat = sized(&mut ws.d_a, n * features);
        linear_backward(
            grad,
            params,
            &self.z_mean,
            feat,
            &ws.d_mu_z,
            Some((d_feat, false)),
        );
        linear_backward(
            grad,
            params,
            &self.z_std,
            feat,
            &ws.d_pre_std_z,
            Some((d_feat, true)),
        );
        self.encoder_backward(params, grad, shard.x, n, ws);
    }

    /// Runs the encoder body on `x: [n, W]`; returns its number of output features (the
    /// output itself is `features_of` the workspace's encoder buffers).
    fn encoder_forward(&self, params: &[f32], x: &[f32], n: usize, ws: &mut Workspace) -> usize {
        match &self.encoder {
            EncoderAt::Dense(layers) => {
                dense_stack_forward(layers, params, x, n, &mut ws.encoder);
                layers[layers.len() - 1].d_out
            }
            EncoderAt::Cnn { conv1, conv2 } => {
                conv::encoder_forward(conv1, conv2, self.window, params, x, n, ws)
            }
        }
    }

    /// Back-propagates the gradient at the encoder's output (in `ws.d_a`) into `grad`.
    fn encoder_backward(
        &self,
        params: &[f32],
        grad: &mut [f32],
        x: &[f32],
        n: usize,
        ws: &mut Workspace,
    ) {
        match &self.encoder {
            EncoderAt::Dense(layers) => dense_stack_backward(
                layers,
                params,
                grad,
                x,
                n,
                &ws.encoder,
                &mut ws.d_a,
                &mut ws.d_b,
                None,
            ),
            EncoderAt::Cnn { conv1, conv2 } => {
                conv::encoder_backward(conv1, conv2, self.window, grad, n, ws)
            }
        }
    }
}

/// The encoder's output in the workspace.
fn features_of<'a>(encoder: &EncoderAt, buffers: &'a [Vec<f32>]) -> &'a [f32] {
    match encoder {
        EncoderAt::Dense(layers) => &buffers[layers.len() - 1],
        EncoderAt::Cnn { .. } => &buffers[5],
    }
}
