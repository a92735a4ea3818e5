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
            let (m, v, p) = (
                &mut self.moment_1[range.clone()],
                &mut self.moment_2[range.clone()],
                &mut params[range],
            );
            for (((m, v), p), &g) in m.iter_mut().zip(v.iter_mut()).zip(p.iter_mut()).zip(&*g) {
                *m = *m * b1 + g * (1.0 - b1);
                *v = *v * b2 + g * g * (1.0 - b2);
                *p -= (*m * factor / (v.sqrt() + epsilon)) * lr;
            }
        }
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
