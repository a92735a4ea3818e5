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

pub mod math;
pub mod matmul;

use super::Weight;
use super::latent::Latent;
use crate::config::{DonutConfig, EncoderKind};
use matmul::{MatRef, matmul};

const HALF_LN_2PI: f32 = 0.918_938_5;

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

/// Sums over one shard's windows of the three M-ELBO terms (not yet divided by the batch size).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TermSums {
    /// Sum of `sum_w alpha_w log p(x_w|z)`.
    pub recon: f64,
    /// Sum of `beta log p(z)`.
    pub prior: f64,
    /// Sum of `-lambda log q(z|x)`.
    pub entropy: f64,
}

impl std::ops::AddAssign for TermSums {
    fn add_assign(&mut self, other: Self) {
        self.recon += other.recon;
        self.prior += other.prior;
        self.entropy += other.entropy;
    }
}

/// One shard of a batch: row-major slices of its windows and their weights.
#[derive(Clone, Copy, Debug)]
pub struct Shard<'a> {
    /// Windows `[n, W]`.
    pub x: &'a [f32],
    /// Reconstruction weights `[n, W]`.
    pub alpha: &'a [f32],
    /// Prior weights `[n]`.
    pub beta: &'a [f32],
    /// Entropy weights `[n]`.
    pub lambda: &'a [f32],
    /// Standard latent noise `[n, K]`.
    pub noise: &'a [f32],
}

/// Buffers for one shard's forward and backward passes, kept between steps.
#[derive(Default)]
pub struct Workspace {
    /// Dense encoder: hidden outputs per layer. CNN: the padded input, conv1's output, pool1
    /// (padded), conv2's output, pool2, features.
    encoder: Vec<Vec<f32>>,
    mu_z: Vec<f32>,
    pre_std_z: Vec<f32>,
    std_z: Vec<f32>,
    z: Vec<f32>,
    decoder: Vec<Vec<f32>>,
    mu_x: Vec<f32>,
    pre_std_x: Vec<f32>,
    d_mu_x: Vec<f32>,
    d_pre_std_x: Vec<f32>,
    d_a: Vec<f32>,
    d_b: Vec<f32>,
    d_z: Vec<f32>,
    d_mu_z: Vec<f32>,
    d_pre_std_z: Vec<f32>,
    /// CNN kernels as im2col matrices `[(k, c_in), c_out]` and their gradients.
    kernel1: Vec<f32>,
    kernel2: Vec<f32>,
    d_kernel: Vec<f32>,
}

/// `v` resized to `len` (contents unspecified).
fn sized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    v.resize(len, 0.0);
    &mut v[..len]
}

fn sized_list(v: &mut Vec<Vec<f32>>, count: usize) -> &mut [Vec<f32>] {
    v.resize_with(count, Vec::new);
    &mut v[..count]
}

/// `softplus(s)` and `sigmoid(s)` (its derivative), sharing one exponential; stable for any `s`.
#[inline(always)]
fn softplus_sigmoid(s: f32) -> (f32, f32) {
    let e = math::exp(-s.abs());
    let softplus = s.max(0.0) + math::ln_1p_unit(e);
    let sigmoid = if s >= 0.0 { 1.0 } else { e } / (1.0 + e);
    (softplus, sigmoid)
}

/// What the reconstruction pass reads, each slice `[n * W]`.
struct ReconInput<'a> {
    alpha: &'a [f32],
    /// The std head before softplus.
    pre_std: &'a [f32],
    x: &'a [f32],
    eps: f32,
    scale: f32,
}

/// The reconstruction term point by point and its gradient at the decoder's two heads: on entry
/// `log_px` holds the mean head's output, on return `alpha log p(x|z)` of each point; `d_mu` and
/// `d_pre_std` receive `scale` times the gradient of the negated term. One branch-free pass, so
/// that it vectorises, compiled for AVX2 too and chosen at run time where the CPU has it.
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
fn recon_pass<'a>(
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
fn sum_f64(v: &[f32]) -> f64 {
    lane_sum(v, f64::from)
}

/// The sum of squares of `v` in f64.
pub fn sum_of_squares(v: &[f32]) -> f64 {
    lane_sum(v, |x| f64::from(x) * f64::from(x))
}

/// ReLU in place (NaN stays NaN, as in burn). Written as a select, not a branch, so that it
/// vectorises and does not mispredict on the random signs of activations.
fn relu(v: &mut [f32]) {
    for x in v {
        *x = if *x < 0.0 { 0.0 } else { *x };
    }
}

/// Zeroes the gradient `d` where the ReLU output `h` is not positive.
fn relu_backward(d: &mut [f32], h: &[f32]) {
    for (g, &h) in d.iter_mut().zip(h) {
        *g = if h <= 0.0 { 0.0 } else { *g };
    }
}

/// Adds the column sums of the row-major `[rows, cols]` matrix `d` to `out[cols]`.
fn add_column_sums(out: &mut [f32], d: &[f32]) {
    for row in d.chunks_exact(out.len()) {
        for (o, v) in out.iter_mut().zip(row) {
            *o += v;
        }
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
                let w = self.window;
                let c = conv2.c_out;
                let (half, quarter) = (w / 2, (w / 2) / 2);
                kernel_matrix(params, conv1, sized(&mut ws.kernel1, 3 * conv1.c_in * c));
                kernel_matrix(params, conv2, sized(&mut ws.kernel2, 3 * conv2.c_in * c));
                let [x_padded, out1, pool1, out2, pool2, feat] = sized_list(&mut ws.encoder, 6)
                else {
                    unreachable!("six buffers")
                };
                // Each window with a zero before and after it ("same" padding).
                let x_padded = sized(x_padded, n * (w + 2));
                for (dst, src) in x_padded.chunks_exact_mut(w + 2).zip(x.chunks_exact(w)) {
                    dst[0] = 0.0;
                    dst[1..=w].copy_from_slice(src);
                    dst[w + 1] = 0.0;
                }
                conv_forward(x_padded, n, w, conv1, params, &ws.kernel1, out1);
                let pool1 = sized(pool1, n * (half + 2) * c);
                pool_forward(out1, conv_out(w), pool1, padded(half), n, w, c);
                conv_forward(pool1, n, half, conv2, params, &ws.kernel2, out2);
                let pool2 = sized(pool2, n * quarter * c);
                pool_forward(out2, conv_out(half), pool2, dense_rows(quarter), n, half, c);
                // [n, L, C] -> [n, C * L], channel-major.
                let feat = sized(feat, n * c * quarter);
                for i in 0..n {
                    for t in 0..quarter {
                        for ch in 0..c {
                            feat[i * c * quarter + ch * quarter + t] =
                                pool2[(i * quarter + t) * c + ch];
                        }
                    }
                }
                c * quarter
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
                let w = self.window;
                let c = conv2.c_out;
                let (half, quarter) = (w / 2, (w / 2) / 2);
                let [x_padded, out1, pool1, out2, _pool2, _feat] = &ws.encoder[..6] else {
                    unreachable!("six buffers")
                };
                // Features [n, C * L] -> pool2 gradient [n, L, C].
                let d_pool2 = sized(&mut ws.d_b, n * quarter * c);
                for i in 0..n {
                    for t in 0..quarter {
                        for ch in 0..c {
                            d_pool2[(i * quarter + t) * c + ch] =
                                ws.d_a[i * c * quarter + ch * quarter + t];
                        }
                    }
                }
                let d_out2 = sized(&mut ws.d_a, n * (half + 2) * c);
                pool_backward(
                    d_pool2,
                    dense_rows(quarter),
                    out2,
                    conv_out(half),
                    d_out2,
                    n,
                    half,
                    c,
                );
                relu_backward(d_out2, out2);
                let d_pool1 = sized(&mut ws.d_b, n * (half + 2) * c);
                conv_backward(
                    grad,
                    conv2,
                    &ws.kernel2,
                    pool1,
                    d_out2,
                    n,
                    half,
                    &mut ws.d_kernel,
                    Some(d_pool1),
                );
                let d_out1 = sized(&mut ws.d_a, n * (w + 2) * c);
                pool_backward(d_pool1, padded(half), out1, conv_out(w), d_out1, n, w, c);
                relu_backward(d_out1, out1);
                conv_backward(
                    grad,
                    conv1,
                    &ws.kernel1,
                    x_padded,
                    d_out1,
                    n,
                    w,
                    &mut ws.d_kernel,
                    None,
                );
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

fn weight_of<'a>(params: &'a [f32], at: &LinearAt) -> MatRef<'a> {
    MatRef::new(
        &params[at.weight..at.weight + at.d_in * at.d_out],
        at.d_in,
        at.d_out,
    )
}

/// `out [n, d_out] = input [n, d_in] W + b`.
fn linear_forward(out: &mut [f32], input: MatRef<'_>, params: &[f32], at: &LinearAt) {
    let bias = &params[at.bias..at.bias + at.d_out];
    for row in out.chunks_exact_mut(at.d_out) {
        row.copy_from_slice(bias);
    }
    matmul(out, input, weight_of(params, at), true);
}

/// Adds the layer's kernel and bias gradients for output gradient `d_out [n, d_out]` to `grad`,
/// and writes (or, with `true`, adds) the input gradient `d_out W^T` into `d_input`.
fn linear_backward(
    grad: &mut [f32],
    params: &[f32],
    at: &LinearAt,
    input: MatRef<'_>,
    d_out: &[f32],
    d_input: Option<(&mut [f32], bool)>,
) {
    let n = input.rows();
    let d_out_m = MatRef::new(d_out, n, at.d_out);
    matmul(
        &mut grad[at.weight..at.weight + at.d_in * at.d_out],
        input.t(),
        d_out_m,
        true,
    );
    add_column_sums(&mut grad[at.bias..at.bias + at.d_out], d_out);
    if let Some((d_input, accumulate)) = d_input {
        matmul(d_input, d_out_m, weight_of(params, at).t(), accumulate);
    }
}

/// Dense layers with ReLU on `x: [n, d_in]`; each layer's output is kept in `outputs`.
fn dense_stack_forward(
    layers: &[LinearAt],
    params: &[f32],
    x: &[f32],
    n: usize,
    outputs: &mut Vec<Vec<f32>>,
) {
    let outputs = sized_list(outputs, layers.len());
    for (i, at) in layers.iter().enumerate() {
        let (done, rest) = outputs.split_at_mut(i);
        let input = if i == 0 { x } else { &done[i - 1] };
        let out = sized(&mut rest[0], n * at.d_out);
        linear_forward(out, MatRef::new(input, n, at.d_in), params, at);
        relu(out);
    }
}

/// Back-propagates the gradient at the stack's output (in `d_a`) through its layers (using `d_b`
/// as scratch), adding kernel and bias gradients to `grad`; writes the input gradient into
/// `d_input` when asked.
#[allow(clippy::too_many_arguments)]
fn dense_stack_backward(
    layers: &[LinearAt],
    params: &[f32],
    grad: &mut [f32],
    x: &[f32],
    n: usize,
    outputs: &[Vec<f32>],
    d_a: &mut Vec<f32>,
    d_b: &mut Vec<f32>,
    mut d_input: Option<&mut [f32]>,
) {
    for (i, at) in layers.iter().enumerate().rev() {
        let d_out = &mut d_a[..n * at.d_out];
        relu_backward(d_out, &outputs[i][..n * at.d_out]);
        let input = MatRef::new(if i == 0 { x } else { &outputs[i - 1] }, n, at.d_in);
        if i > 0 {
            let d_in = sized(d_b, n * at.d_in);
            linear_backward(grad, params, at, input, d_out, Some((d_in, false)));
            std::mem::swap(d_a, d_b);
        } else {
            let d_in = d_input.take().map(|d| (d, false));
            linear_backward(grad, params, at, input, d_out, d_in);
        }
    }
}

/// The convolution's kernel `[c_out, c_in, 3]` as an im2col matrix `[(k, c_in), c_out]`.
fn kernel_matrix(params: &[f32], at: &ConvAt, out: &mut [f32]) {
    let weight = &params[at.weight..at.weight + at.c_out * at.c_in * 3];
    for o in 0..at.c_out {
        for c in 0..at.c_in {
            for k in 0..3 {
                out[(k * at.c_in + c) * at.c_out + o] = weight[(o * at.c_in + c) * 3 + k];
            }
        }
    }
}

/// Where one window's rows sit in a channels-last buffer: `stride` rows per window, its first
/// data row at `offset`.
#[derive(Clone, Copy, Debug)]
struct Rows {
    stride: usize,
    offset: usize,
}

/// A convolution's input of `length` steps: a zero row before and after each window.
fn padded(length: usize) -> Rows {
    Rows {
        stride: length + 2,
        offset: 1,
    }
}

/// A convolution's output over a padded input of `length` steps: the window's rows first, then
/// two rows of no meaning (computed across the boundary to the next window, never read).
fn conv_out(length: usize) -> Rows {
    Rows {
        stride: length + 2,
        offset: 0,
    }
}

/// Windows of `length` rows back to back.
fn dense_rows(length: usize) -> Rows {
    Rows {
        stride: length,
        offset: 0,
    }
}

/// The im2col matrix of a "same"-padded kernel-3 convolution, without a copy: in the padded
/// channels-last `input` (`[n, L + 2, c_in]`, see [`padded`]), row `r` of the matrix is the three
/// input rows from `r` on, which is the view with row stride `c_in` and `3 c_in` columns. Row
/// `i (L + 2) + t` is output step `t` of window `i`; the last two rows of each window are the
/// meaningless ones of [`conv_out`], and the view stops before the last window's.
fn im2col(input: &[f32], n: usize, length: usize, c_in: usize) -> MatRef<'_> {
    MatRef::strided(input, n * (length + 2) - 2, 3 * c_in, c_in, 1)
}

/// Kernel-3 "same" convolution of the padded `input` (see [`padded`]), then ReLU, into `out`
/// (`[n, L + 2, c_out]`, see [`conv_out`]): one matrix product of the im2col view and the kernel.
fn conv_forward(
    input: &[f32],
    n: usize,
    length: usize,
    at: &ConvAt,
    params: &[f32],
    kernel: &[f32],
    out: &mut Vec<f32>,
) {
    let cols = im2col(input, n, length, at.c_in);
    let out = sized(out, n * (length + 2) * at.c_out);
    let bias = &params[at.bias..at.bias + at.c_out];
    for r in out.chunks_exact_mut(at.c_out) {
        r.copy_from_slice(bias);
    }
    let rows = cols.rows();
    matmul(
        &mut out[..rows * at.c_out],
        cols,
        MatRef::new(kernel, 3 * at.c_in, at.c_out),
        true,
    );
    relu(out);
}

/// The gradient of a convolution from its output gradient `d_out` (in the [`conv_out`] layout,
/// zero on the meaningless rows): kernel and bias into `grad`, and (when asked) the gradient of
/// the padded input into `d_input` (the [`padded`] layout; its pad rows get the pads' gradient,
/// which nothing reads).
#[allow(clippy::too_many_arguments)]
fn conv_backward(
    grad: &mut [f32],
    at: &ConvAt,
    kernel: &[f32],
    input: &[f32],
    d_out: &[f32],
    n: usize,
    length: usize,
    d_kernel: &mut Vec<f32>,
    d_input: Option<&mut [f32]>,
) {
    let c_in = at.c_in;
    let cols = im2col(input, n, length, c_in);
    let rows = cols.rows();
    let d_out_values = &d_out[..rows * at.c_out];
    let d_out = MatRef::new(d_out_values, rows, at.c_out);
    let d_kernel = sized(d_kernel, 3 * c_in * at.c_out);
    matmul(d_kernel, cols.t(), d_out, false);
    let weight = &mut grad[at.weight..at.weight + at.c_out * c_in * 3];
    for o in 0..at.c_out {
        for c in 0..c_in {
            for k in 0..3 {
                weight[(o * c_in + c) * 3 + k] += d_kernel[(k * c_in + c) * at.c_out + o];
            }
        }
    }
    add_column_sums(&mut grad[at.bias..at.bias + at.c_out], d_out_values);
    if let Some(d_input) = d_input {
        // Output row r read input rows r, r + 1, r + 2 through kernel taps 0, 1, 2: each tap's
        // share is one product into the input gradient shifted by the tap.
        d_input.fill(0.0);
        for k in 0..3 {
            let tap = MatRef::new(
                &kernel[k * c_in * at.c_out..(k + 1) * c_in * at.c_out],
                c_in,
                at.c_out,
            );
            matmul(
                &mut d_input[k * c_in..(k + rows) * c_in],
                d_out,
                tap.t(),
                true,
            );
        }
    }
}

/// Max-pooling of 2 along time, channels-last, from windows of `length` steps laid out as
/// `input_rows` to windows of `length / 2` laid out as `output_rows` (an odd last step dropped;
/// the output's other rows, such as pads, set to 0).
#[allow(clippy::too_many_arguments)]
fn pool_forward(
    input: &[f32],
    input_rows: Rows,
    out: &mut [f32],
    output_rows: Rows,
    n: usize,
    length: usize,
    c: usize,
) {
    let half = length / 2;
    for i in 0..n {
        let window = &input[i * input_rows.stride * c..];
        let dst = &mut out[i * output_rows.stride * c..(i + 1) * output_rows.stride * c];
        dst[..output_rows.offset * c].fill(0.0);
        dst[(output_rows.offset + half) * c..].fill(0.0);
        for t in 0..half {
            let pair =
                &window[(input_rows.offset + 2 * t) * c..(input_rows.offset + 2 * t + 2) * c];
            let (even, odd) = pair.split_at(c);
            let d = &mut dst[(output_rows.offset + t) * c..(output_rows.offset + t + 1) * c];
            for ((d, &e), &o) in d.iter_mut().zip(even).zip(odd) {
                *d = e.max(o);
            }
        }
    }
}

/// Routes the pooled gradient `d_out` (laid out as `output_rows`) to the larger of each pair of
/// `input` (laid out as `input_rows`; the even one on ties), writing every row of `d_input` in
/// the input's layout: 0 on a dropped odd step and on rows that are not data. Branch-free, so
/// that it vectorises and does not mispredict on the random order of each pair.
#[allow(clippy::too_many_arguments)]
fn pool_backward(
    d_out: &[f32],
    output_rows: Rows,
    input: &[f32],
    input_rows: Rows,
    d_input: &mut [f32],
    n: usize,
    length: usize,
    c: usize,
) {
    let half = length / 2;
    for i in 0..n {
        let window = &input[i * input_rows.stride * c..(i + 1) * input_rows.stride * c];
        let d_window = &mut d_input[i * input_rows.stride * c..(i + 1) * input_rows.stride * c];
        let d = &d_out[(i * output_rows.stride + output_rows.offset) * c..];
        d_window[..input_rows.offset * c].fill(0.0);
        d_window[(input_rows.offset + 2 * half) * c..].fill(0.0);
        for t in 0..half {
            let at = (input_rows.offset + 2 * t) * c;
            let (even, odd) = window[at..at + 2 * c].split_at(c);
            let (d_even, d_odd) = d_window[at..at + 2 * c].split_at_mut(c);
            let d = &d[t * c..(t + 1) * c];
            for ch in 0..c {
                let even_wins = even[ch] >= odd[ch];
                d_even[ch] = if even_wins { d[ch] } else { 0.0 };
                d_odd[ch] = if even_wins { 0.0 } else { d[ch] };
            }
        }
    }
}

#[cfg(test)]
mod tests {
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
}
