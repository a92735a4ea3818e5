//! The DONUT variational auto-encoder as burn modules, and its objective.
//!
//! q(z|x): an encoder (dense stack or 1-D CNN) and two heads, `mu_z` and
//! `std_z = softplus(.) + eps`. p(x|z): a dense stack and two heads, `mu_x` and
//! `std_x = softplus(.) + eps`. Kernels are Glorot-uniform, biases zero, drawn from the run's own
//! seeded generator so that a seed gives the same network on every backend.

pub mod fused;
pub mod latent;
pub mod loss;

use crate::config::{BackendKind, DonutConfig, EncoderKind};
use burn::module::Param;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig1d};
use burn::prelude::*;
use burn::tensor::TensorData;
use burn::tensor::activation::{relu, softplus};
use rand::RngExt;
use rand::rngs::Xoshiro256PlusPlus;

pub use latent::Latent;

/// The burn device for a backend choice (without autodiff).
pub fn device_for(backend: BackendKind) -> Device {
    match backend {
        BackendKind::Flex => Device::flex(),
        // Deprecated upstream in favour of flex; kept selectable for comparison.
        #[allow(deprecated)]
        BackendKind::Ndarray => Device::ndarray(),
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu => Device::wgpu(Default::default()),
    }
}

fn glorot(rng: &mut Xoshiro256PlusPlus, fan_in: usize, fan_out: usize, count: usize) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    (0..count)
        .map(|_| rng.random_range(-limit..limit) as f32)
        .collect()
}

/// A dense layer with Glorot-uniform kernel `[d_in, d_out]` and zero bias.
fn dense(rng: &mut Xoshiro256PlusPlus, d_in: usize, d_out: usize, device: &Device) -> Linear {
    let mut layer = LinearConfig::new(d_in, d_out).init(device);
    layer.weight = Param::from_data(
        TensorData::new(glorot(rng, d_in, d_out, d_in * d_out), [d_in, d_out]),
        device,
    );
    layer.bias = Some(Param::from_data(
        TensorData::new(vec![0f32; d_out], [d_out]),
        device,
    ));
    layer
}

/// A 1-D convolution, kernel 3, "same" padding, Glorot-uniform kernel and zero bias.
fn conv(rng: &mut Xoshiro256PlusPlus, c_in: usize, c_out: usize, device: &Device) -> Conv1d {
    const KERNEL: usize = 3;
    let mut layer = Conv1dConfig::new(c_in, c_out, KERNEL)
        .with_padding(PaddingConfig1d::Same)
        .init(device);
    let w = glorot(rng, c_in * KERNEL, c_out * KERNEL, c_out * c_in * KERNEL);
    layer.weight = Param::from_data(TensorData::new(w, [c_out, c_in, KERNEL]), device);
    layer.bias = Some(Param::from_data(
        TensorData::new(vec![0f32; c_out], [c_out]),
        device,
    ));
    layer
}

fn sum_squares<const D: usize>(t: Tensor<D>) -> Tensor<1> {
    t.square().sum()
}

/// Hidden dense layers with ReLU.
#[derive(Module, Debug)]
pub struct DenseStack {
    /// The layers, input first.
    pub layers: Vec<Linear>,
}

impl DenseStack {
    fn new(
        rng: &mut Xoshiro256PlusPlus,
        d_in: usize,
        width: usize,
        depth: usize,
        device: &Device,
    ) -> Self {
        let layers = (0..depth)
            .map(|i| dense(rng, if i == 0 { d_in } else { width }, width, device))
            .collect();
        Self { layers }
    }

    /// `[n, d_in]` -> `[n, width]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        self.layers
            .iter()
            .fold(x, |h, layer| relu(layer.forward(h)))
    }

    fn kernel_squares(&self) -> Option<Tensor<1>> {
        self.layers
            .iter()
            .map(|l| sum_squares(l.weight.val()))
            .reduce(|a, b| a + b)
    }
}

/// Two convolutions (kernel 3, ReLU), each followed by max-pooling of 2.
///
/// The parameters are burn [`Conv1d`] modules (kernel `[C_out, C_in, 3]`), but the forward pass
/// is an im2col convolution in channels-last layout (`[n, L, C]`): three shifted slices of the
/// padded input side by side, one matrix product with the kernel, and pooling as the larger of
/// each pair of neighbours. It computes the same function as `Conv1d` + `MaxPool1d` (a test checks
/// it), several times faster on burn's CPU backends, whose general conv and pool kernels dominate
/// otherwise.
#[derive(Module, Debug)]
pub struct CnnStack {
    conv1: Conv1d,
    conv2: Conv1d,
}

/// A "same"-padded, kernel-3 convolution of channels-last input with `conv`'s parameters.
/// `x: [n, L, C_in]` -> `[n, L, C_out]`.
pub fn conv_same3(conv: &Conv1d, x: Tensor<3>) -> Tensor<3> {
    let [n, l, c_in] = x.dims();
    let weight = conv.weight.val(); // [C_out, C_in, 3]
    let [c_out, _, kernel] = weight.dims();
    let pad = kernel / 2;
    let zeros = Tensor::<3>::zeros([n, pad, c_in], &x.device());
    let padded = Tensor::cat(vec![zeros.clone(), x, zeros], 1); // [n, L + 2 pad, C_in]
    let columns = Tensor::cat(
        (0..kernel)
            .map(|k| padded.clone().narrow(1, k, l))
            .collect(),
        2,
    ); // [n, L, kernel * C_in], ordered (k, c)
    let kernel_matrix = weight.permute([2, 1, 0]).reshape([kernel * c_in, c_out]); // [(k, c), C_out]
    let out = columns
        .reshape([n * l, kernel * c_in])
        .matmul(kernel_matrix); // [n L, C_out]
    let out = match &conv.bias {
        Some(b) => out + b.val().unsqueeze_dim::<2>(0),
        None => out,
    };
    out.reshape([n, l, c_out])
}

/// Max-pooling of 2 along time (stride 2, an odd last step dropped), channels-last.
/// `x: [n, L, C]` -> `[n, L / 2, C]`.
pub fn max_pool2(x: Tensor<3>) -> Tensor<3> {
    let [n, l, c] = x.dims();
    let half = l / 2;
    let pairs = x.narrow(1, 0, 2 * half).reshape([n, half, 2, c]); // [n, L/2, 2, C]
    let even = pairs.clone().narrow(2, 0, 1);
    let odd = pairs.narrow(2, 1, 1);
    even.max_pair(odd).reshape([n, half, c])
}

impl CnnStack {
    fn new(rng: &mut Xoshiro256PlusPlus, channels: usize, device: &Device) -> Self {
        Self {
            conv1: conv(rng, 1, channels, device),
            conv2: conv(rng, channels, channels, device),
        }
    }

    /// Features after both convolutions for a window of `window` points.
    fn out_features(channels: usize, window: usize) -> usize {
        channels * ((window / 2) / 2)
    }

    /// `[n, W]` -> `[n, C * (W / 4)]`, flattened channel-major as `Conv1d`'s `[n, C, L]` output
    /// would be (so the first dense layer's weights mean the same as in runs saved before the
    /// im2col forward pass).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [n, _w] = x.dims();
        let h = x.unsqueeze_dim::<3>(2); // [n, W, 1]
        let h = max_pool2(relu(conv_same3(&self.conv1, h))); // [n, W/2, C]
        let h = max_pool2(relu(conv_same3(&self.conv2, h))); // [n, W/4, C]
        let [_, l, c] = h.dims();
        h.swap_dims(1, 2).reshape([n, c * l]) // [n, C, W/4] -> [n, C * W/4]
    }

    fn kernel_squares(&self) -> Tensor<1> {
        sum_squares(self.conv1.weight.val()) + sum_squares(self.conv2.weight.val())
    }
}

/// The encoder body of q(z|x). One lives per model, so the size difference of the variants is moot.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Encoder {
    /// Dense layers.
    Dense(DenseStack),
    /// Convolutions.
    Cnn(CnnStack),
}

impl Encoder {
    /// `[n, W]` -> `[n, features]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match self {
            Encoder::Dense(d) => d.forward(x),
            Encoder::Cnn(c) => c.forward(x),
        }
    }

    fn kernel_squares(&self) -> Option<Tensor<1>> {
        match self {
            Encoder::Dense(d) => d.kernel_squares(),
            Encoder::Cnn(c) => Some(c.kernel_squares()),
        }
    }
}

/// The whole variational auto-encoder.
#[derive(Module, Debug)]
pub struct DonutModel {
    encoder: Encoder,
    z_mean: Linear,
    z_std: Linear,
    decoder: DenseStack,
    x_mean: Linear,
    x_std: Linear,
    #[module(skip)]
    std_epsilon: f64,
    #[module(skip)]
    latent: Latent,
}

/// A window's posterior q(z|x): means and standard deviations, each `[n, K]`.
pub struct Posterior {
    /// Means `[n, K]`.
    pub mean: Tensor<2>,
    /// Standard deviations `[n, K]`.
    pub std: Tensor<2>,
}

/// The decoder's p(x|z): means and standard deviations, each `[n, W]` (or `[n, 1]` for the last point).
pub struct Reconstruction {
    /// Means.
    pub mean: Tensor<2>,
    /// Standard deviations.
    pub std: Tensor<2>,
}

impl DonutModel {
    /// Builds a freshly initialised model for `config` on `device` (use an autodiff device to train).
    pub fn new(config: &DonutConfig, rng: &mut Xoshiro256PlusPlus, device: &Device) -> Self {
        let (w, width, k) = (config.window, config.hidden_width, config.latent_dim);
        let (encoder, features) = match config.encoder {
            EncoderKind::Dense => (
                Encoder::Dense(DenseStack::new(rng, w, width, config.hidden_depth, device)),
                width,
            ),
            EncoderKind::Cnn => (
                Encoder::Cnn(CnnStack::new(rng, config.cnn_channels, device)),
                CnnStack::out_features(config.cnn_channels, w),
            ),
        };
        let z_mean = dense(rng, features, k, device);
        let z_std = dense(rng, features, k, device);
        let decoder = DenseStack::new(rng, k, width, config.hidden_depth, device);
        let x_mean = dense(rng, width, w, device);
        let x_std = dense(rng, width, w, device);
        let latent = Latent::of(config);
        Self {
            encoder,
            z_mean,
            z_std,
            decoder,
            x_mean,
            x_std,
            std_epsilon: config.std_epsilon,
            latent,
        }
    }

    /// The latent family.
    pub fn latent(&self) -> Latent {
        self.latent
    }

    /// q(z|x) for windows `x: [n, W]`.
    pub fn encode(&self, x: Tensor<2>) -> Posterior {
        let h = self.encoder.forward(x); // [n, features]
        let mean = self.z_mean.forward(h.clone()); // [n, K]
        let std = softplus(self.z_std.forward(h), 1.0).add_scalar(self.std_epsilon); // [n, K]
        Posterior { mean, std }
    }

    /// p(x|z) for latent samples `z: [n, K]`: every point of the window, `[n, W]`.
    pub fn decode(&self, z: Tensor<2>) -> Reconstruction {
        let h = self.decoder.forward(z); // [n, width]
        let mean = self.x_mean.forward(h.clone()); // [n, W]
        let std = softplus(self.x_std.forward(h), 1.0).add_scalar(self.std_epsilon); // [n, W]
        Reconstruction { mean, std }
    }

    /// p(x|z) of the window's last point only, `[n, 1]`: the heads are evaluated for one column,
    /// which is all that scoring needs.
    pub fn decode_last(&self, z: Tensor<2>) -> Reconstruction {
        let h = self.decoder.forward(z); // [n, width]
        let last = |layer: &Linear| {
            let weight = layer.weight.val(); // [width, W]
            let [width, w] = weight.dims();
            let column = weight.slice([0..width, w - 1..w]); // [width, 1]
            let out = h.clone().matmul(column); // [n, 1]
            match &layer.bias {
                Some(b) => out + b.val().narrow(0, w - 1, 1).unsqueeze_dim::<2>(0),
                None => out,
            }
        };
        let mean = last(&self.x_mean);
        let std = softplus(last(&self.x_std), 1.0).add_scalar(self.std_epsilon);
        Reconstruction { mean, std }
    }

    /// Sum of squares of the hidden kernels (encoder and decoder bodies; not the heads, not biases).
    pub fn hidden_kernel_squares(&self) -> Tensor<1> {
        let dec = self.decoder.kernel_squares();
        match (self.encoder.kernel_squares(), dec) {
            (Some(a), Some(b)) => a + b,
            (Some(a), None) | (None, Some(a)) => a,
            (None, None) => Tensor::zeros([1], &self.x_mean.weight.val().device()),
        }
    }

    /// The device the parameters live on.
    pub fn device(&self) -> Device {
        self.x_mean.weight.val().device()
    }

    /// Window length the model was built for.
    pub fn window(&self) -> usize {
        self.x_mean.weight.val().dims()[1]
    }

    /// Latent dimension K.
    pub fn latent_dim(&self) -> usize {
        self.z_mean.weight.val().dims()[1]
    }
}

/// One parameter tensor as plain data: its shape and its values, row-major.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Weight {
    /// Dimensions.
    pub shape: Vec<usize>,
    /// Values.
    pub values: Vec<f32>,
}

struct Collect(Vec<Weight>);

impl burn::module::ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let t = param.val();
        let shape = t.dims().to_vec();
        let values = t.into_data().try_to_vec::<f32>().unwrap_or_default();
        self.0.push(Weight { shape, values });
    }
}

struct Restore<'a> {
    weights: &'a [Weight],
    next: usize,
    error: Option<String>,
}

impl burn::module::ModuleMapper for Restore<'_> {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let index = self.next;
        self.next += 1;
        let Some(w) = self.weights.get(index) else {
            self.error.get_or_insert_with(|| {
                format!(
                    "the file has {} parameter tensors, the model needs more",
                    self.weights.len()
                )
            });
            return param;
        };
        let expected = param.val().dims().to_vec();
        if w.shape != expected || w.values.len() != expected.iter().product::<usize>() {
            self.error.get_or_insert_with(|| {
                format!(
                    "parameter {index}: shape {:?} in the file, {:?} in the model",
                    w.shape, expected
                )
            });
            return param;
        }
        let values = w.values.clone();
        // Keeps whether the parameter is trained, so a restored autodiff model still learns.
        param.map(|t| {
            let trained = t.is_require_grad();
            Tensor::from_data(TensorData::new(values, expected), &t.device())
                .set_require_grad(trained)
        })
    }
}

impl DonutModel {
    /// Every parameter tensor, in module order (what a saved run stores).
    pub fn weights(&self) -> Vec<Weight> {
        let mut c = Collect(Vec::new());
        self.visit(&mut c);
        c.0
    }

    /// Replaces every parameter with `weights` (from [`DonutModel::weights`] of a model built
    /// from the same config). Fails, naming the first mismatch, when the shapes differ.
    pub fn with_weights(self, weights: &[Weight]) -> Result<Self, String> {
        let mut r = Restore {
            weights,
            next: 0,
            error: None,
        };
        let model = self.map(&mut r);
        if let Some(e) = r.error {
            return Err(e);
        }
        if r.next != weights.len() {
            return Err(format!(
                "the file has {} parameter tensors, the model {}",
                weights.len(),
                r.next
            ));
        }
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use rand::SeedableRng;

    #[test]
    fn the_cnn_encoder_computes_what_burns_conv1d_and_max_pool_stack_computes() {
        // Runs saved before the im2col forward pass used Conv1d + MaxPool1d and flattened
        // [n, C, L] channel-major: the same weights must give the same features.
        let device = Device::flex();
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let stack = CnnStack::new(&mut rng, 4, &device);
        let x = Tensor::<2>::random([3, 16], Distribution::Normal(0.0, 1.0), &device);
        let pool = burn::nn::pool::MaxPool1dConfig::new(2).init();
        let h = x.clone().unsqueeze_dim::<3>(1); // [n, 1, W]
        let h = pool.forward(relu(stack.conv1.forward(h)));
        let h = pool.forward(relu(stack.conv2.forward(h))); // [n, C, W/4]
        let reference = h.reshape([3, 4 * 4]);
        let ours = stack.forward(x);
        let a = ours.into_data().try_to_vec::<f32>().unwrap_or_default();
        let b = reference
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        assert_eq!(a.len(), 48);
        assert_eq!(a.len(), b.len());
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-5, "{a:?}\nvs\n{b:?}");
        }
    }
}
