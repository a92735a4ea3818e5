//! What one shard's passes read and keep: the shard's windows and weights ([`Shard`]), the
//! sums of its M-ELBO terms ([`TermSums`]), and the buffers kept between steps ([`Workspace`]).

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
    pub(super) encoder: Vec<Vec<f32>>,
    pub(super) mu_z: Vec<f32>,
    pub(super) pre_std_z: Vec<f32>,
    pub(super) std_z: Vec<f32>,
    pub(super) z: Vec<f32>,
    pub(super) decoder: Vec<Vec<f32>>,
    pub(super) mu_x: Vec<f32>,
    pub(super) pre_std_x: Vec<f32>,
    pub(super) d_mu_x: Vec<f32>,
    pub(super) d_pre_std_x: Vec<f32>,
    pub(super) d_a: Vec<f32>,
    pub(super) d_b: Vec<f32>,
    pub(super) d_z: Vec<f32>,
    pub(super) d_mu_z: Vec<f32>,
    pub(super) d_pre_std_z: Vec<f32>,
    /// CNN kernels as im2col matrices `[(k, c_in), c_out]` and their gradients.
    pub(super) kernel1: Vec<f32>,
    pub(super) kernel2: Vec<f32>,
    pub(super) d_kernel: Vec<f32>,
}

/// `v` resized to `len` (contents unspecified).
pub(super) fn sized(v: &mut Vec<f32>, len: usize) -> &mut [f32] {
    v.resize(len, 0.0);
    &mut v[..len]
}

pub(super) fn sized_list(v: &mut Vec<Vec<f32>>, count: usize) -> &mut [Vec<f32>] {
    v.resize_with(count, Vec::new);
    &mut v[..count]
}
