//! The forward passes that scoring needs, on flat parameters: q(z|x) of windows, p(x|z) of every
//! point (MCMC imputation), and the mean log-density of each window's last point over its z
//! samples. The same numbers as [`crate::model::DonutModel`]'s `encode`, `decode` and
//! `decode_last` to rounding, without a tensor allocated per operation: on a CPU, scoring with
//! 1024 samples per window spends its time in the decoder's hidden layers, and burn's separate
//! passes for the bias, the ReLU and each element-wise step of the density cost a third more.

use super::dense::{dense_stack_forward, linear_forward};
use super::matmul::MatRef;
use super::recon::softplus_sigmoid;
use super::workspace::sized;
use super::{Layout, Workspace, features_of};
use crate::config::DonutConfig;
use crate::model::DonutModel;
use crate::model::latent::HALF_LN_2PI;

/// A trained network's parameters laid out for the fused forward passes.
#[derive(Clone, Debug)]
pub struct ScoringNet {
    layout: Layout,
    params: Vec<f32>,
    /// The last column of the two output heads' kernels, one after the other (mean, std).
    last_kernel: Vec<f32>,
    /// The last entry of the two heads' biases (mean, std).
    last_bias: [f32; 2],
}

/// Rows (window x sample) of the decoder run at once by [`ScoringNet::last_log_density`]: its
/// activations (`rows x width` floats) stay in the core's L2 cache.
const ROWS_PER_PASS: usize = 1024;

impl ScoringNet {
    /// The network of `model`, laid out as `config` describes it; `None` when its tensors do not
    /// fit that layout (a model built for other settings).
    pub fn new(config: &DonutConfig, model: &DonutModel) -> Option<Self> {
        Self::from_params(config, Layout::new(config).flatten(&model.weights())?)
    }

    /// The network of the flat parameters `params` (the fused engine's order for `config`);
    /// `None` when there are not as many as that layout has.
    pub fn from_params(config: &DonutConfig, params: Vec<f32>) -> Option<Self> {
        let layout = Layout::new(config);
        if params.len() != layout.len() {
            return None;
        }
        let (mean, std) = (&layout.x_mean, &layout.x_std);
        let (width, w) = (mean.d_in, mean.d_out);
        let last_kernel: Vec<f32> = [mean, std]
            .iter()
            .flat_map(|at| (0..width).map(|r| params[at.weight + r * w + w - 1]))
            .collect();
        let last_bias = [params[mean.bias + w - 1], params[std.bias + w - 1]];
        Some(Self {
            layout,
            params,
            last_kernel,
            last_bias,
        })
    }

    /// Window length W.
    pub fn window(&self) -> usize {
        self.layout.window
    }

    /// Latent dimension K.
    pub fn latent_dim(&self) -> usize {
        self.layout.latent_dim
    }

    /// q(z|x) of the windows `x: [n, W]`: its mean and std, each `[n, K]`, into `mean` and
    /// `std`.
    pub fn encode(
        &self,
        x: &[f32],
        n: usize,
        ws: &mut Workspace,
        mean: &mut Vec<f32>,
        std: &mut Vec<f32>,
    ) {
        let l = &self.layout;
        let k = l.latent_dim;
        assert_eq!(x.len(), n * l.window, "{n} windows");
        let features = l.encoder_forward(&self.params, x, n, ws);
        let feat = MatRef::new(features_of(&l.encoder, &ws.encoder), n, features);
        self.gaussian_heads(feat, (&l.z_mean, &l.z_std), n * k, mean, std);
    }

    /// A Gaussian's two heads on `input`: the mean head's output into `mean`, the std head's
    /// softplus (plus the std floor) into `std`, each of `len` values.
    fn gaussian_heads(
        &self,
        input: MatRef<'_>,
        (mean_at, std_at): (&super::LinearAt, &super::LinearAt),
        len: usize,
        mean: &mut Vec<f32>,
        std: &mut Vec<f32>,
    ) {
        linear_forward(sized(mean, len), input, &self.params, mean_at);
        let std = sized(std, len);
        linear_forward(std, input, &self.params, std_at);
        for s in std.iter_mut() {
            *s = softplus_sigmoid(*s).0 + self.layout.std_epsilon;
        }
    }

    /// p(x|z) of every point for the latent samples `z: [n, K]`: its mean and std, each
    /// `[n, W]`, into `mean` and `std`.
    pub fn decode(
        &self,
        z: &[f32],
        n: usize,
        ws: &mut Workspace,
        mean: &mut Vec<f32>,
        std: &mut Vec<f32>,
    ) {
        let l = &self.layout;
        let (w, width) = (l.window, l.x_mean.d_in);
        assert_eq!(z.len(), n * l.latent_dim, "{n} samples");
        dense_stack_forward(&l.decoder, &self.params, z, n, &mut ws.decoder);
        let h = MatRef::new(&ws.decoder[l.decoder.len() - 1], n, width);
        self.gaussian_heads(h, (&l.x_mean, &l.x_std), n * w, mean, std);
    }

    /// For each window `i` of `last` (its last point's value), the mean over its `n_z` latent
    /// samples (rows `i * n_z .. (i + 1) * n_z` of `z: [n * n_z, K]`) of log N(last[i]; mu_x(z),
    /// sigma_x(z)) at the window's last point; the decoder's heads are evaluated for that point
    /// only.
    pub fn last_log_density(
        &self,
        z: &[f32],
        last: &[f32],
        n_z: usize,
        ws: &mut Workspace,
    ) -> Vec<f32> {
        let l = &self.layout;
        let (k, width) = (l.latent_dim, l.x_mean.d_in);
        let rows = last.len() * n_z;
        assert_eq!(z.len(), rows * k, "{} windows of {n_z} samples", last.len());
        let mut sums = vec![0f64; last.len()];
        let mut heads = std::mem::take(&mut ws.mu_x);
        let mut start = 0;
        while start < rows {
            let m = ROWS_PER_PASS.min(rows - start);
            dense_stack_forward(
                &l.decoder,
                &self.params,
                &z[start * k..(start + m) * k],
                m,
                &mut ws.decoder,
            );
            let h = &ws.decoder[l.decoder.len() - 1][..m * width];
            // The two heads' last column row by row, in a fixed order (eight interleaved
            // partial sums, so that it vectorises): a window's score does not depend on how
            // many rows are decoded with it.
            let out = sized(&mut heads, 2 * m);
            let (col_mu, col_pre) = self.last_kernel.split_at(width);
            for (pair, row) in out.chunks_exact_mut(2).zip(h.chunks_exact(width)) {
                pair[0] = self.last_bias[0] + dot(row, col_mu);
                pair[1] = self.last_bias[1] + dot(row, col_pre);
            }
            for (r, pair) in out.chunks_exact(2).enumerate() {
                let window = (start + r) / n_z;
                let sigma = softplus_sigmoid(pair[1]).0 + l.std_epsilon;
                let u = (last[window] - pair[0]) / sigma;
                sums[window] += (-0.5 * u * u - sigma.ln()) as f64 - HALF_LN_2PI;
            }
            start += m;
        }
        ws.mu_x = heads;
        sums.iter().map(|s| (s / n_z as f64) as f32).collect()
    }
}

/// The dot product of `a` and `b` in eight interleaved partial sums, added in a fixed order.
#[inline(always)]
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            lanes[l] += x[l] * y[l];
        }
    }
    let [a0, a1, a2, a3, a4, a5, a6, a7] = lanes;
    ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)) + tail
}
