//! Adam on a flat parameter vector, computing what burn's `AdamConfig` (with per-tensor
//! gradient-norm clipping) computes, for the fused engine, whose parameters are not burn tensors
//! while training. A test steps both side by side.

/// Adam's settings, shared by both engines.
#[derive(Clone, Copy, Debug)]
pub struct AdamSettings {
    /// First-moment decay.
    pub beta_1: f32,
    /// Second-moment decay.
    pub beta_2: f32,
    /// Added to the root of the second moment.
    pub epsilon: f32,
    /// Bound on each parameter tensor's gradient norm.
    pub clip_norm: Option<f32>,
}

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
    /// Adam with zero moments for `len` parameters.
    pub fn new(len: usize, settings: AdamSettings) -> Self {
        Self {
            beta_1: settings.beta_1,
            beta_2: settings.beta_2,
            epsilon: settings.epsilon,
            clip_norm: settings.clip_norm,
            moment_1: vec![0.0; len],
            moment_2: vec![0.0; len],
            steps: 0,
        }
    }

    /// Starts step `t + 1` at `learning_rate`: its constants, and the two moment vectors (to be
    /// cut per tensor like the parameters and handed to [`AdamStep::update`]).
    pub fn next_step(&mut self, learning_rate: f64) -> (AdamStep, &mut [f32], &mut [f32]) {
        self.steps += 1;
        let (b1, b2) = (self.beta_1, self.beta_2);
        let bias_correction_2 = (1.0 - b2.powi(self.steps)).sqrt();
        let step = AdamStep {
            factors: AdamFactors {
                b1,
                b2,
                factor: bias_correction_2 / (1.0 - b1.powi(self.steps)),
                epsilon: self.epsilon * bias_correction_2,
                lr: learning_rate as f32,
            },
            clip_norm: self.clip_norm,
        };
        (step, &mut self.moment_1, &mut self.moment_2)
    }
}

/// One step's constants; [`AdamStep::update`] applies them to one tensor.
#[derive(Clone, Copy)]
pub struct AdamStep {
    factors: AdamFactors,
    clip_norm: Option<f32>,
}

impl AdamStep {
    /// Clips the tensor's gradient `grad` to the norm bound, updates its moments `moment_1`,
    /// `moment_2` and moves its parameters `params` by the bias-corrected ratio.
    pub fn update(
        &self,
        params: &mut [f32],
        grad: &mut [f32],
        moment_1: &mut [f32],
        moment_2: &mut [f32],
    ) {
        assert!(
            params.len() == grad.len()
                && moment_1.len() == grad.len()
                && moment_2.len() == grad.len()
        );
        if let Some(bound) = self.clip_norm {
            let norm = crate::model::fused::sum_of_squares(grad).sqrt() as f32;
            let coefficient = (bound / (norm + f32::MIN_POSITIVE)).min(1.0);
            for x in grad.iter_mut() {
                *x *= coefficient;
            }
        }
        adam_update(self.factors, moment_1, moment_2, params, grad);
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
