//! The one place every hyperparameter lives.
//!
//! [`DonutConfig`] is shared by the sliders, the command line (`--config FILE`, `--set key=value`)
//! and saved runs. Defaults follow the original DONUT code (see `docs` in the README); every field
//! is validated in one step by [`DonutConfig::validate`].

use serde::{Deserialize, Serialize};
use std::path::Path;

/// Which burn backend runs the model.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn's pure-Rust CPU backend (the default).
    #[default]
    Flex,
    /// burn's `ndarray` CPU backend (deprecated upstream, kept for comparison).
    Ndarray,
    /// burn's wgpu GPU backend (only with the `wgpu` cargo feature).
    #[cfg(feature = "wgpu")]
    Wgpu,
}

impl BackendKind {
    /// True for a GPU backend.
    pub fn is_gpu(self) -> bool {
        match self {
            BackendKind::Flex | BackendKind::Ndarray => false,
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => true,
        }
    }

    /// Every backend compiled into this binary.
    pub const ALL: &'static [BackendKind] = &[
        BackendKind::Flex,
        BackendKind::Ndarray,
        #[cfg(feature = "wgpu")]
        BackendKind::Wgpu,
    ];

    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Flex => "flex",
            BackendKind::Ndarray => "ndarray",
            #[cfg(feature = "wgpu")]
            BackendKind::Wgpu => "wgpu",
        }
    }
}

/// How a training step computes the gradient of the loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum GradientEngine {
    /// The forward and backward passes derived by hand for DONUT's networks, on the CPU
    /// (`model::fused`; checked against burn's autodiff): several times faster. A GPU backend
    /// uses autodiff whatever this says.
    #[default]
    Fused,
    /// burn's autodiff on the chosen backend.
    Autodiff,
}

impl GradientEngine {
    /// Both engines.
    pub const ALL: [GradientEngine; 2] = [GradientEngine::Fused, GradientEngine::Autodiff];

    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            GradientEngine::Fused => "fused",
            GradientEngine::Autodiff => "autodiff",
        }
    }
}

/// The encoder network q(z|x).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    /// Fully connected layers (DONUT's own).
    #[default]
    Dense,
    /// Two 1-D convolutions (kernel 3) with max-pooling.
    Cnn,
}

/// The family of the latent distributions (prior and posterior).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatentDist {
    /// Diagonal Gaussian posterior, standard normal prior (DONUT).
    #[default]
    Gaussian,
    /// Location-scale Student-t posterior and standard Student-t prior, `student_t_df` degrees of freedom.
    StudentT,
}

/// Which evidence lower bound training maximises.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Objective {
    /// DONUT's modified ELBO: anomalous and missing points are left out of the reconstruction
    /// term (alpha = 0) and beta follows `beta_mode`.
    #[default]
    MElbo,
    /// The plain ELBO of a VAE: every point counts (alpha = 1, missing ones as the zeros they were
    /// filled with) and beta = 1; lambda still follows `entropy_mode`.
    Elbo,
}

/// How beta, the weight of log p(z), is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BetaMode {
    /// M-ELBO: per window, the fraction of points that are neither anomalous nor missing.
    #[default]
    Mean,
    /// A fixed value, `beta_value`.
    Fixed,
}

/// How lambda, the weight of the entropy term -log q(z|x), is chosen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntropyMode {
    /// lambda = 1 (DONUT).
    #[default]
    One,
    /// A fixed value, `entropy_value`.
    Fixed,
    /// lambda = beta: the KL term becomes beta * KL(q || p).
    Beta,
}

/// What to do with rows that share a timestamp (setting `duplicates`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DuplicatePolicy {
    /// Keep the first row (the default).
    #[default]
    First,
    /// Keep the last row.
    Last,
    /// Average the values that are present; the point is anomalous if any row says so.
    Mean,
    /// Refuse the file, naming the line.
    Error,
}

impl DuplicatePolicy {
    /// Every policy.
    pub const ALL: [DuplicatePolicy; 4] = [Self::First, Self::Last, Self::Mean, Self::Error];

    /// The setting's value as text.
    pub fn name(self) -> &'static str {
        match self {
            Self::First => "first",
            Self::Last => "last",
            Self::Mean => "mean",
            Self::Error => "error",
        }
    }
}

/// Which threshold a run flags points at (each rule's threshold is kept in the run).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdChoice {
    /// The best-F1 threshold on the validation part's labels; the alarm rate when the
    /// validation part has no labelled anomaly.
    #[default]
    Validation,
    /// The score that `alarm_rate` of the validation windows reach (needs no labels).
    AlarmRate,
    /// The best-F1 threshold on the test part's labels: the paper's upper bound, picked with
    /// the answers; the validation rule when the test part has no labelled anomaly.
    BestF1Test,
}

impl ThresholdChoice {
    /// All three, for menus.
    pub const ALL: [ThresholdChoice; 3] = [Self::Validation, Self::AlarmRate, Self::BestF1Test];

    /// The name used in settings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::AlarmRate => "alarm_rate",
            Self::BestF1Test => "best_f1_test",
        }
    }
}

/// Every hyperparameter of a DONUT run: data preparation, model, objective, training, scoring.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DonutConfig {
    // --- data ---
    /// What to do with rows of a file that share a timestamp.
    pub duplicates: DuplicatePolicy,
    /// Window length W (points).
    pub window: usize,
    /// Fraction of the series (at its end) held out for testing.
    pub test_fraction: f64,
    /// Fraction of the remainder (at its end) used for validation.
    pub valid_fraction: f64,

    // --- model ---
    /// Encoder architecture.
    pub encoder: EncoderKind,
    /// Width of each hidden dense layer.
    pub hidden_width: usize,
    /// Number of hidden dense layers in the encoder and the decoder.
    pub hidden_depth: usize,
    /// Channels of each convolution of the CNN encoder.
    pub cnn_channels: usize,
    /// Latent dimension K.
    pub latent_dim: usize,
    /// Latent distribution family.
    pub latent_dist: LatentDist,
    /// Degrees of freedom of the Student-t latent.
    pub student_t_df: f64,
    /// Epsilon added to every softplus standard deviation.
    pub std_epsilon: f64,
    /// L2 weight on the hidden kernels (not heads, not biases).
    pub l2_weight: f64,

    // --- objective ---
    /// M-ELBO (DONUT) or the plain ELBO.
    pub objective: Objective,
    /// How beta is chosen (M-ELBO only).
    pub beta_mode: BetaMode,
    /// beta when `beta_mode` is `fixed`, in [0, 1].
    pub beta_value: f64,
    /// How the entropy weight lambda is chosen.
    pub entropy_mode: EntropyMode,
    /// lambda when `entropy_mode` is `fixed`, in [0, 1].
    pub entropy_value: f64,
    /// Rate of missing-point injection, redrawn every epoch, in [0, 1].
    pub injection_rate: f64,

    // --- training ---
    /// Passes over the training windows.
    pub epochs: usize,
    /// Windows per step.
    pub batch_size: usize,
    /// Initial Adam learning rate.
    pub learning_rate: f64,
    /// Factor applied to the learning rate every `lr_decay_epochs` epochs.
    pub lr_decay: f64,
    /// Epochs between learning-rate decays.
    pub lr_decay_epochs: usize,
    /// Gradient clipping: maximum L2 norm of each parameter tensor's gradient.
    pub grad_clip_norm: f64,
    /// Steps between validations (the best parameters by validation loss are kept).
    pub valid_every_steps: usize,
    /// Seed of every random draw of the run.
    pub seed: u64,
    /// burn backend.
    pub backend: BackendKind,
    /// How training steps compute gradients: hand-derived CPU passes (`fused`) or burn's autodiff
    /// on `backend`. Both give the same gradient up to rounding; scoring always runs on `backend`.
    pub gradients: GradientEngine,
    /// CPU threads for training and scoring (0 = every core). Each training batch is split into
    /// this many shards whose gradients are summed, so a seed reproduces a run exactly for the
    /// same thread count; other counts differ in the last bits of the sums.
    pub threads: usize,

    // --- scoring and evaluation ---
    /// MCMC imputation iterations for missing points (0 = off).
    pub mcmc_iterations: usize,
    /// z samples averaged into each reconstruction probability.
    pub n_z: usize,
    /// Delay (points) of the delayed point-adjusted F1.
    pub eval_delay: usize,
    /// The share of validation windows that the label-free threshold flags (it is their
    /// `1 - alarm_rate` quantile).
    pub alarm_rate: f64,
    /// Which threshold flags points: `validation` (best F1 on the validation labels, else the
    /// alarm rate), `alarm_rate`, or `best_f1_test` (the upper bound).
    pub threshold_rule: ThresholdChoice,
}

impl Default for DonutConfig {
    fn default() -> Self {
        Self {
            duplicates: DuplicatePolicy::First,
            window: 120,
            test_fraction: 0.3,
            valid_fraction: 0.3,
            encoder: EncoderKind::Dense,
            hidden_width: 100,
            hidden_depth: 2,
            cnn_channels: 16,
            latent_dim: 5,
            latent_dist: LatentDist::Gaussian,
            student_t_df: 10.0,
            std_epsilon: 1e-4,
            l2_weight: 1e-3,
            objective: Objective::MElbo,
            beta_mode: BetaMode::Mean,
            beta_value: 1.0,
            entropy_mode: EntropyMode::One,
            entropy_value: 1.0,
            injection_rate: 0.01,
            epochs: 256,
            batch_size: 256,
            learning_rate: 1e-3,
            lr_decay: 0.75,
            lr_decay_epochs: 10,
            grad_clip_norm: 10.0,
            valid_every_steps: 100,
            seed: 0,
            backend: BackendKind::Flex,
            gradients: GradientEngine::Fused,
            threads: 0,
            mcmc_iterations: 10,
            n_z: 1024,
            eval_delay: 7,
            alarm_rate: 0.01,
            threshold_rule: ThresholdChoice::Validation,
        }
    }
}

/// A setting that is out of range, unknown, or of the wrong type.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value outside its allowed range.
    #[error("setting `{key}` = {value} is invalid: {reason}")]
    Invalid {
        /// The setting's name.
        key: &'static str,
        /// The offending value, as text.
        value: String,
        /// What is allowed.
        reason: &'static str,
    },
    /// `--set` named no setting.
    #[error("unknown setting `{0}` (see the settings table in README.md)")]
    Unknown(String),
    /// `--set` without `=`.
    #[error("`{0}` is not of the form key=value")]
    NotKeyValue(String),
    /// A `key=value` whose value does not parse as the setting's type.
    #[error("--set {key}={raw}: {source}")]
    Value {
        /// The setting.
        key: String,
        /// The value as given.
        raw: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A config file that cannot be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file.
        path: String,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// A TOML config file that does not parse.
    #[error("{path}: {source}")]
    Toml {
        /// The file.
        path: String,
        /// The parser's error (boxed: it is large).
        #[source]
        source: Box<toml::de::Error>,
    },
    /// A JSON config file that does not parse.
    #[error("{path}: {source}")]
    Json {
        /// The file.
        path: String,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
}

fn check(
    ok: bool,
    key: &'static str,
    value: impl ToString,
    reason: &'static str,
) -> Result<(), ConfigError> {
    if ok {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            key,
            value: value.to_string(),
            reason,
        })
    }
}

fn unit(x: f64) -> bool {
    (0.0..=1.0).contains(&x)
}

impl DonutConfig {
    /// Checks every setting's range; the one validation step before a run.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check(
            self.alarm_rate > 0.0 && self.alarm_rate <= 0.5,
            "alarm_rate",
            self.alarm_rate,
            "must be in (0, 0.5]",
        )?;
        check(
            self.window >= 2 && self.window <= 4096,
            "window",
            self.window,
            "must be in 2..=4096",
        )?;
        check(
            self.test_fraction > 0.0 && self.test_fraction < 1.0,
            "test_fraction",
            self.test_fraction,
            "must be in (0, 1)",
        )?;
        check(
            self.valid_fraction >= 0.0 && self.valid_fraction < 1.0,
            "valid_fraction",
            self.valid_fraction,
            "must be in [0, 1)",
        )?;
        check(
            (1..=4096).contains(&self.hidden_width),
            "hidden_width",
            self.hidden_width,
            "must be in 1..=4096",
        )?;
        check(
            (1..=8).contains(&self.hidden_depth),
            "hidden_depth",
            self.hidden_depth,
            "must be in 1..=8",
        )?;
        check(
            (1..=256).contains(&self.cnn_channels),
            "cnn_channels",
            self.cnn_channels,
            "must be in 1..=256",
        )?;
        check(
            self.encoder != EncoderKind::Cnn || self.window >= 4,
            "window",
            self.window,
            "the CNN encoder needs a window of at least 4",
        )?;
        check(
            (1..=16).contains(&self.latent_dim),
            "latent_dim",
            self.latent_dim,
            "must be in 1..=16",
        )?;
        check(
            self.student_t_df.is_finite() && self.student_t_df > 2.0,
            "student_t_df",
            self.student_t_df,
            "must be finite and > 2",
        )?;
        check(
            self.std_epsilon.is_finite() && self.std_epsilon > 0.0,
            "std_epsilon",
            self.std_epsilon,
            "must be > 0",
        )?;
        check(
            self.l2_weight.is_finite() && self.l2_weight >= 0.0,
            "l2_weight",
            self.l2_weight,
            "must be >= 0",
        )?;
        check(
            unit(self.beta_value),
            "beta_value",
            self.beta_value,
            "must be in [0, 1]",
        )?;
        check(
            unit(self.entropy_value),
            "entropy_value",
            self.entropy_value,
            "must be in [0, 1]",
        )?;
        check(
            unit(self.injection_rate),
            "injection_rate",
            self.injection_rate,
            "must be in [0, 1]",
        )?;
        check(
            self.epochs >= 1 && self.epochs <= 100_000,
            "epochs",
            self.epochs,
            "must be in 1..=100000",
        )?;
        check(
            (1..=65_536).contains(&self.batch_size),
            "batch_size",
            self.batch_size,
            "must be in 1..=65536",
        )?;
        check(
            self.learning_rate.is_finite()
                && self.learning_rate > 0.0
                && self.learning_rate <= 100.0,
            "learning_rate",
            self.learning_rate,
            "must be in (0, 100]",
        )?;
        check(
            self.lr_decay.is_finite() && self.lr_decay > 0.0 && self.lr_decay <= 1.0,
            "lr_decay",
            self.lr_decay,
            "must be in (0, 1]",
        )?;
        check(
            self.lr_decay_epochs >= 1,
            "lr_decay_epochs",
            self.lr_decay_epochs,
            "must be >= 1",
        )?;
        check(
            self.grad_clip_norm.is_finite() && self.grad_clip_norm > 0.0,
            "grad_clip_norm",
            self.grad_clip_norm,
            "must be > 0",
        )?;
        check(
            self.valid_every_steps >= 1,
            "valid_every_steps",
            self.valid_every_steps,
            "must be >= 1",
        )?;
        check(
            self.threads <= 256,
            "threads",
            self.threads,
            "must be in 0..=256 (0 = every core)",
        )?;
        check(
            self.mcmc_iterations <= 1000,
            "mcmc_iterations",
            self.mcmc_iterations,
            "must be in 0..=1000",
        )?;
        check(
            (1..=65_536).contains(&self.n_z),
            "n_z",
            self.n_z,
            "must be in 1..=65536",
        )?;
        check(
            self.eval_delay <= 100_000,
            "eval_delay",
            self.eval_delay,
            "must be in 0..=100000",
        )?;
        Ok(())
    }

    /// Reads a config from a TOML (`.toml`) or JSON (any other extension) file; missing keys take
    /// their defaults, unknown keys are an error.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: name.clone(),
            source,
        })?;
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
        {
            toml::from_str::<Self>(&text).map_err(|source| ConfigError::Toml {
                path: name,
                source: Box::new(source),
            })
        } else {
            serde_json::from_str::<Self>(&text)
                .map_err(|source| ConfigError::Json { path: name, source })
        }
    }

    /// Applies one `key=value` override. The value is read as JSON when it parses as such
    /// (numbers, booleans), else as a string (enum names such as `cnn`).
    pub fn set(&mut self, assignment: &str) -> Result<(), ConfigError> {
        let (key, raw) = assignment
            .split_once('=')
            .ok_or_else(|| ConfigError::NotKeyValue(assignment.to_string()))?;
        let (key, raw) = (key.trim(), raw.trim());
        let mut object = self.as_object();
        if !object.contains_key(key) {
            return Err(ConfigError::Unknown(key.to_string()));
        }
        let value = serde_json::from_str::<serde_json::Value>(raw)
            .unwrap_or_else(|_| serde_json::Value::String(raw.to_string()));
        object.insert(key.to_string(), value);
        *self = serde_json::from_value(serde_json::Value::Object(object)).map_err(|source| {
            ConfigError::Value {
                key: key.to_string(),
                raw: raw.to_string(),
                source,
            }
        })?;
        Ok(())
    }

    /// Applies `key=value` overrides in order, then validates the result: the one step that
    /// turns `--set` flags (of the app, `train`, `sweep` and sweep variants) into a config.
    /// On an error the config is left as it was.
    pub fn with_overrides<S: AsRef<str>>(&self, assignments: &[S]) -> Result<Self, ConfigError> {
        let mut config = self.clone();
        for assignment in assignments {
            config.set(assignment.as_ref())?;
        }
        config.validate()?;
        Ok(config)
    }

    /// The settings as a JSON object, in declaration order.
    fn as_object(&self) -> serde_json::Map<String, serde_json::Value> {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => serde_json::Map::new(),
        }
    }

    /// The names of every setting, in declaration order.
    pub fn keys() -> Vec<String> {
        Self::default().as_object().keys().cloned().collect()
    }

    /// Every setting as `(name, value as text)`, in declaration order.
    pub fn entries(&self) -> Vec<(String, String)> {
        self.as_object()
            .into_iter()
            .map(|(k, v)| (k, value_text(&v)))
            .collect()
    }

    /// The settings that differ between `self` (before) and `other` (after), in declaration
    /// order, each with what its change does to a run.
    pub fn changes(&self, other: &DonutConfig) -> Vec<SettingChange> {
        setting_pairs(self, other)
            .into_iter()
            .filter(SettingPair::differs)
            .map(|pair| SettingChange {
                group: SettingGroup::of(&pair.key),
                pair,
            })
            .collect()
    }

    /// The settings that a running training loop can change without a restart.
    pub fn live(&self) -> LiveSettings {
        LiveSettings {
            objective: self.objective,
            beta_mode: self.beta_mode,
            beta_value: self.beta_value,
            entropy_mode: self.entropy_mode,
            entropy_value: self.entropy_value,
            injection_rate: self.injection_rate,
            learning_rate: self.learning_rate,
        }
    }

    /// True when going from `self` to `other` needs a new model (architecture, window, data split,
    /// backend, gradient engine or seed changed), false when the difference is only in live
    /// settings or in scoring / schedule settings.
    pub fn needs_restart(&self, other: &DonutConfig) -> bool {
        self.changes(other).iter().any(|c| c.group.restarts())
    }

    /// True when going from `self` to `other` changes how the data is prepared (window, split).
    pub fn reshapes_data(&self, other: &DonutConfig) -> bool {
        self.changes(other)
            .iter()
            .any(|c| c.group == SettingGroup::Split)
    }
}

/// What changing a setting does to a run: the one table behind [`DonutConfig::needs_restart`],
/// [`DonutConfig::reshapes_data`] and the app's reaction to a change (a test holds
/// [`LiveSettings`] to the `Live` group).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SettingGroup {
    /// How a file is read: the file is read again, which replaces the data and the run.
    Load,
    /// How the data is windowed and split: the data is prepared again and a run restarts.
    Split,
    /// The network, its seed and where it runs: a run restarts.
    Model,
    /// Loss weights, injection and learning rate: a run takes them at its next step.
    Live,
    /// The schedule and the rest of training: taken by the next run.
    NextRun,
    /// Scoring and evaluation: taken when a run scores.
    Scoring,
}

impl SettingGroup {
    /// The group of the setting named `key`.
    pub fn of(key: &str) -> Self {
        match key {
            "window" | "test_fraction" | "valid_fraction" => Self::Split,
            "encoder" | "hidden_width" | "hidden_depth" | "cnn_channels" | "latent_dim"
            | "latent_dist" | "student_t_df" | "backend" | "gradients" | "seed" => Self::Model,
            "objective" | "beta_mode" | "beta_value" | "entropy_mode" | "entropy_value"
            | "injection_rate" | "learning_rate" => Self::Live,
            "mcmc_iterations" | "n_z" | "eval_delay" | "alarm_rate" | "threshold_rule" => {
                Self::Scoring
            }
            "duplicates" => Self::Load,
            _ => Self::NextRun,
        }
    }

    /// True when a change in this group needs a new model.
    pub fn restarts(self) -> bool {
        matches!(self, Self::Load | Self::Split | Self::Model)
    }
}

/// One setting that differs between two configs.
#[derive(Clone, Debug, PartialEq)]
pub struct SettingChange {
    /// The setting, before (`left`) and after (`right`).
    pub pair: SettingPair,
    /// What its change does to a run.
    pub group: SettingGroup,
}

impl std::fmt::Display for SettingChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} -> {}",
            self.pair.key, self.pair.left, self.pair.right
        )
    }
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One setting of two configs side by side (for comparing runs).
#[derive(Clone, Debug, PartialEq)]
pub struct SettingPair {
    /// The setting's key (as in the settings table and `--set`).
    pub key: String,
    /// Its value in the first config.
    pub left: String,
    /// Its value in the second.
    pub right: String,
}

impl SettingPair {
    /// True when the two values differ.
    pub fn differs(&self) -> bool {
        self.left != self.right
    }
}

/// Every setting of `left` and `right`, in declaration order.
pub fn setting_pairs(left: &DonutConfig, right: &DonutConfig) -> Vec<SettingPair> {
    let (l, r) = (left.as_object(), right.as_object());
    l.iter()
        .map(|(key, value)| SettingPair {
            key: key.clone(),
            left: value_text(value),
            right: r.get(key).map(value_text).unwrap_or_default(),
        })
        .collect()
}

/// The loss weights, injection rate and learning rate: what changes mid-run without a reset.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LiveSettings {
    /// M-ELBO or the plain ELBO.
    pub objective: Objective,
    /// How beta is chosen.
    pub beta_mode: BetaMode,
    /// beta when fixed.
    pub beta_value: f64,
    /// How lambda is chosen.
    pub entropy_mode: EntropyMode,
    /// lambda when fixed.
    pub entropy_value: f64,
    /// Missing-injection rate.
    pub injection_rate: f64,
    /// Base learning rate (before decay).
    pub learning_rate: f64,
}

impl LiveSettings {
    /// Writes these settings into `config`.
    pub fn apply_to(&self, config: &mut DonutConfig) {
        config.objective = self.objective;
        config.beta_mode = self.beta_mode;
        config.beta_value = self.beta_value;
        config.entropy_mode = self.entropy_mode;
        config.entropy_value = self.entropy_value;
        config.injection_rate = self.injection_rate;
        config.learning_rate = self.learning_rate;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_follow_donut() {
        let c = DonutConfig::default();
        c.validate().unwrap();
        assert_eq!(
            (c.window, c.hidden_width, c.hidden_depth, c.latent_dim),
            (120, 100, 2, 5)
        );
        assert_eq!(
            (c.epochs, c.batch_size, c.n_z, c.mcmc_iterations),
            (256, 256, 1024, 10)
        );
    }

    #[test]
    fn set_parses_numbers_and_enum_names() {
        let mut c = DonutConfig::default();
        c.set("latent_dim=3").unwrap();
        c.set("encoder=cnn").unwrap();
        c.set("beta_mode = fixed").unwrap();
        c.set("beta_value=0.25").unwrap();
        c.set("objective=elbo").unwrap();
        assert_eq!(c.objective, Objective::Elbo);
        assert!(c.set("objective=vae").is_err());
        assert_eq!(c.latent_dim, 3);
        assert_eq!(c.encoder, EncoderKind::Cnn);
        assert_eq!(c.beta_mode, BetaMode::Fixed);
        assert_eq!(c.beta_value, 0.25);
    }

    #[test]
    fn set_rejects_unknown_keys_and_bad_values() {
        let mut c = DonutConfig::default();
        assert!(matches!(c.set("nope=1"), Err(ConfigError::Unknown(k)) if k == "nope"));
        assert!(matches!(
            c.set("latent_dim"),
            Err(ConfigError::NotKeyValue(_))
        ));
        assert!(matches!(
            c.set("latent_dim=abc"),
            Err(ConfigError::Value { .. })
        ));
        assert!(matches!(
            c.set("encoder=rnn"),
            Err(ConfigError::Value { .. })
        ));
        assert_eq!(
            c,
            DonutConfig::default(),
            "a failed set leaves the config unchanged"
        );
    }

    #[test]
    fn validate_names_the_bad_setting() {
        let c = DonutConfig {
            latent_dim: 0,
            ..Default::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("latent_dim"), "{err}");
        let c = DonutConfig {
            injection_rate: 1.5,
            ..Default::default()
        };
        assert!(
            c.validate()
                .unwrap_err()
                .to_string()
                .contains("injection_rate")
        );
    }

    #[test]
    fn toml_round_trip_and_partial_files() {
        let c = DonutConfig {
            latent_dim: 7,
            encoder: EncoderKind::Cnn,
            ..Default::default()
        };
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<DonutConfig>(&text).unwrap(), c);
        let partial: DonutConfig = toml::from_str("latent_dim = 3\n").unwrap();
        assert_eq!(partial.latent_dim, 3);
        assert_eq!(partial.window, 120);
        assert!(toml::from_str::<DonutConfig>("bogus = 3\n").is_err());
    }

    #[test]
    fn restart_only_for_structural_changes() {
        let a = DonutConfig::default();
        let mut b = a.clone();
        b.beta_value = 0.3;
        b.injection_rate = 0.2;
        b.learning_rate = 1e-2;
        assert!(!a.needs_restart(&b));
        b.latent_dim = 3;
        assert!(a.needs_restart(&b));
        let engine = DonutConfig {
            gradients: GradientEngine::Autodiff,
            ..a.clone()
        };
        assert!(
            a.needs_restart(&engine),
            "the engine changes the run's arithmetic"
        );
    }

    #[test]
    fn setting_pairs_list_every_key_and_flag_only_the_differences() {
        let a = DonutConfig::default();
        let b = DonutConfig {
            latent_dim: 3,
            encoder: EncoderKind::Cnn,
            ..Default::default()
        };
        let pairs = setting_pairs(&a, &b);
        let keys = serde_json::to_value(&a).unwrap().as_object().unwrap().len();
        assert_eq!(pairs.len(), keys);
        let differing: Vec<&str> = pairs
            .iter()
            .filter(|p| p.differs())
            .map(|p| p.key.as_str())
            .collect();
        assert_eq!(differing, ["encoder", "latent_dim"]);
        let latent = pairs.iter().find(|p| p.key == "latent_dim").unwrap();
        assert_eq!((latent.left.as_str(), latent.right.as_str()), ("5", "3"));
        let encoder = pairs.iter().find(|p| p.key == "encoder").unwrap();
        assert_eq!(
            (encoder.left.as_str(), encoder.right.as_str()),
            ("dense", "cnn")
        );
    }

    #[test]
    fn the_live_group_is_exactly_what_live_settings_carry() {
        let live = match serde_json::to_value(DonutConfig::default().live()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect::<Vec<_>>(),
            _ => unreachable!("a struct serialises to an object"),
        };
        let mut grouped: Vec<String> = DonutConfig::keys()
            .into_iter()
            .filter(|k| SettingGroup::of(k) == SettingGroup::Live)
            .collect();
        grouped.sort();
        assert_eq!(grouped, live);
        // And applying them back restores every one.
        let mut changed = DonutConfig {
            learning_rate: 0.5,
            beta_value: 0.25,
            ..Default::default()
        };
        DonutConfig::default().live().apply_to(&mut changed);
        assert_eq!(changed, DonutConfig::default());
    }
}
