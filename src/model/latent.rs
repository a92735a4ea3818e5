//! Latent distributions: the Gaussian of DONUT and the Student-t variant.
//!
//! The posterior is a location-scale family `z = mean + std * eps`, with `eps` drawn on the CPU
//! from the run's seeded generator (standard normal, or standard Student-t with `df` degrees of
//! freedom). The prior is the standard member of the same family.

use burn::prelude::*;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, StandardNormal, StudentT};

/// ln(2 pi) / 2, the Gaussian's log normalising constant per dimension.
pub(crate) const HALF_LN_2PI: f64 = 0.918_938_533_204_672_8;

/// The latent family.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Latent {
    /// Normal prior N(0, I), diagonal normal posterior.
    Gaussian,
    /// Student-t prior and posterior with `df` degrees of freedom.
    StudentT {
        /// Degrees of freedom.
        df: f64,
    },
}

impl Latent {
    /// The family `config` asks for.
    pub fn of(config: &crate::config::DonutConfig) -> Self {
        match config.latent_dist {
            crate::config::LatentDist::Gaussian => Latent::Gaussian,
            crate::config::LatentDist::StudentT => Latent::StudentT {
                df: config.student_t_df,
            },
        }
    }

    /// Draws `count` standard noise values.
    pub fn sample_noise(&self, rng: &mut Xoshiro256PlusPlus, count: usize) -> Vec<f32> {
        match *self {
            Latent::Gaussian => (0..count).map(|_| StandardNormal.sample(rng)).collect(),
            Latent::StudentT { df } => match StudentT::new(df) {
                Ok(t) => (0..count).map(|_| t.sample(rng) as f32).collect(),
                Err(_) => vec![0.0; count],
            },
        }
    }

    /// Log-density of the standard member at standardised `u`, elementwise, without the constant.
    fn log_kernel<const D: usize>(&self, u: Tensor<D>) -> Tensor<D> {
        match *self {
            Latent::Gaussian => u.square().mul_scalar(-0.5),
            Latent::StudentT { df } => u
                .square()
                .div_scalar(df)
                .log1p()
                .mul_scalar(-(df + 1.0) / 2.0),
        }
    }

    /// The standard member's log-density kernel at `u` (without the constant) and its slope
    /// (what the hand-derived gradient of [`super::fused`] needs).
    #[inline]
    pub(crate) fn log_kernel_and_slope(&self, u: f32) -> (f32, f32) {
        match *self {
            Latent::Gaussian => (-0.5 * u * u, -u),
            Latent::StudentT { df } => {
                let df = df as f32;
                (
                    -(df + 1.0) / 2.0 * (u * u / df).ln_1p(),
                    -(df + 1.0) * u / (df + u * u),
                )
            }
        }
    }

    /// The normalising constant of the standard member (per dimension).
    pub(crate) fn log_constant(&self) -> f64 {
        match *self {
            Latent::Gaussian => -HALF_LN_2PI,
            Latent::StudentT { df } => {
                libm::lgamma((df + 1.0) / 2.0)
                    - libm::lgamma(df / 2.0)
                    - 0.5 * (df * std::f64::consts::PI).ln()
            }
        }
    }

    /// log p(z), summed over the latent dimensions: `[n, K]` -> `[n]`.
    pub fn log_prior(&self, z: Tensor<2>) -> Tensor<1> {
        let k = z.dims()[1] as f64;
        self.log_kernel(z)
            .sum_dim(1)
            .squeeze_dim::<1>(1)
            .add_scalar(k * self.log_constant())
    }

    /// log q(z|x) at `z = mean + std * eps`, summed over the latent dimensions: `[n, K]` -> `[n]`.
    pub fn log_posterior(&self, eps: Tensor<2>, std: Tensor<2>) -> Tensor<1> {
        let k = eps.dims()[1] as f64;
        (self.log_kernel(eps) - std.log())
            .sum_dim(1)
            .squeeze_dim::<1>(1)
            .add_scalar(k * self.log_constant())
    }
}

/// log N(x; mean, std), elementwise.
pub fn gaussian_log_density<const D: usize>(
    x: Tensor<D>,
    mean: Tensor<D>,
    std: Tensor<D>,
) -> Tensor<D> {
    let u = (x - mean) / std.clone();
    (u.square().mul_scalar(-0.5) - std.log()).sub_scalar(HALF_LN_2PI)
}
