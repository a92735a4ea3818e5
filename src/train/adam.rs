//! Adam on a flat parameter vector, computing what burn's `AdamConfig` (with per-tensor
//! gradient-norm clipping) computes, for the fused engine, whose parameters are not burn tensors
//! while training. A test steps both side by side.

use std::ops::Range;

/// Adam's settings and state for one flat parameter vector.
pub struct FlatAdam {
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    clip_norm: Option<f32>,
    moment_1: Vec<f32>,
    moment_2: Vec<f32>,
    steps: i32,
}

impl FlatAdam {
    /// Adam with zero moments for `len` parameters; `clip_norm` bounds the L2 norm of each
    /// tensor's gradient.
    pub fn new(len: usize, beta_1: f32, beta_2: f32, epsilon: f32, clip_norm: Option<f32>) -> Self {
        Self {
            beta_1,
            beta_2,
            epsilon,
            clip_norm,
            moment_1: vec![0.0; len],
            moment_2: vec![0.0; len],
            steps: 0,
        }
    }

    /// One step: clips each tensor's part of `grad` (the ranges in `tensors`) to the norm bound,
    /// updates the moments and moves `params` by `learning_rate` times the bias-corrected ratio.
    pub fn step(
        &mut self,
        learning_rate: f64,
        params: &mut [f32],
        grad: &mut [f32],
        tensors: impl Iterator<Item = Range<usize>>,
    ) {
        assert!(params.len() == self.moment_1.len() && grad.len() == params.len());
        self.steps += 1;
        let (b1, b2) = (self.beta_1, self.beta_2);
        let bias_correction_2 = (1.0 - b2.powi(self.steps)).sqrt();
        let factor = bias_correction_2 / (1.0 - b1.powi(self.steps));
        let epsilon = self.epsilon * bias_correction_2;
        let lr = learning_rate as f32;
        for range in tensors {
            let g = &mut grad[range.clone()];
            if let Some(bound) = self.clip_norm {
                let norm = sum_of_squares(g).sqrt() as f32;
                let coefficient = (bound / (norm + f32::MIN_POSITIVE)).min(1.0);
                for x in g.iter_mut() {
                    *x *= coefficient;
                }
            }
            adam_update(
                AdamFactors {
                    b1,
                    b2,
                    factor,
                    epsilon,
                    lr,
                },
                &mut self.moment_1[range.clone()],
                &mut self.moment_2[range.clone()],
                &mut params[range],
                g,
            );
        }
    }
}

/// The per-step constants of the update.
#[derive(Clone, Copy)]
struct AdamFactors {
    b1: f32,
    b2: f32,
    /// sqrt(1 - b2^t) / (1 - b1^t).
    factor: f32,
    /// epsilon * sqrt(1 - b2^t).
    epsilon: f32,
    lr: f32,
}

/// The moments' and parameters' update for one tensor, in one pass that vectorises (compiled for
/// AVX2 too, chosen at run time).
#[multiversion::multiversion(targets("x86_64+avx2+fma", "x86_64+sse4.1"))]
fn adam_update(f: AdamFactors, m: &mut [f32], v: &mut [f32], p: &mut [f32], g: &[f32]) {
    let len = g.len();
    let (m, v, p, g) = (&mut m[..len], &mut v[..len], &mut p[..len], &g[..len]);
    for i in 0..len {
        m[i] = m[i] * f.b1 + g[i] * (1.0 - f.b1);
        v[i] = v[i] * f.b2 + g[i] * g[i] * (1.0 - f.b2);
        p[i] -= (m[i] * f.factor / (v[i].sqrt() + f.epsilon)) * f.lr;
    }
}

/// The sum of squares of `v` in f64, in eight interleaved partial sums (so that it vectorises).
fn sum_of_squares(v: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail: f64 = chunks.remainder().iter().map(|&x| f64::from(x * x)).sum();
    for chunk in chunks {
        for (l, &x) in lanes.iter_mut().zip(chunk) {
            *l += f64::from(x) * f64::from(x);
        }
    }
    lanes.iter().sum::<f64>() + tail
}
