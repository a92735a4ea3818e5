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
    /// The best-F1 threshold on the validation part's labels; peaks over threshold (then the
    /// alarm rate) when the validation part has no labelled anomaly.
    Validation,
    /// The validation labels where they hold enough segments to mean something (5, the
    /// evaluation's `MIN_VALIDATION_SEGMENTS`), else peaks over threshold (the default:
    /// chosen on the development corpus, docs/ACCURACY.md).
    #[default]
    Auto,
    /// Peaks over threshold: the score a normal validation point exceeds with probability
    /// `pot_risk`, from a tail fitted to the validation scores (needs no labels).
    Pot,
    /// The score that `alarm_rate` of the validation windows reach (needs no labels).
    AlarmRate,
    /// The best-F1 threshold on the test part's labels: the paper's upper bound, picked with
    /// the answers; the validation rule when the test part has no labelled anomaly.
    BestF1Test,
}

impl ThresholdChoice {
    /// Every choice, for menus.
    pub const ALL: [ThresholdChoice; 5] = [
        Self::Validation,
        Self::Auto,
        Self::Pot,
        Self::AlarmRate,
        Self::BestF1Test,
    ];

    /// The name used in settings.
    pub fn name(self) -> &'static str {
        match self {
            Self::Validation => "validation",
            Self::Auto => "auto",
            Self::Pot => "pot",
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
    /// Validations in a row without a new best validation loss after which training stops
    /// (the best parameters are kept, as at the end); 0 = off, every epoch is run as DONUT
    /// runs them.
    pub patience: usize,
    /// Patience ends no run before this many epochs are done (0: none).
    pub min_epochs: usize,
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
    /// Peaks over threshold: the probability that a normal point reaches the threshold.
    pub pot_risk: f64,
    /// Peaks over threshold: the quantile of the normal validation scores above which the tail
    /// is fitted.
    pub pot_level: f64,
    /// Which threshold flags points: `validation` (best F1 on the validation labels, else peaks
    /// over threshold), `auto` (the validation labels only where they hold enough segments),
    /// `pot`, `alarm_rate`, or `best_f1_test` (the upper bound).
    pub threshold_rule: ThresholdChoice,
    /// A value further than this from the training mean, in training standard deviations, is
    /// taken as missing in the windows that follow it (MCMC imputes it there), so that one
    /// extreme point does not blind the next W-1 windows; its own window scores it as it is.
    /// When more than a tenth of a window lies beyond it, the series has moved to a new level,
    /// and those points are kept. 0 = off.
    pub extreme_sigmas: f64,
    /// z samples of the preview scores taken while a run trains (at each new best validation
    /// loss, at most about once a second); 0 = no preview.
    pub preview_n_z: usize,
    /// MCMC iterations of the preview scores.
    pub preview_mcmc_iterations: usize,
    /// Where the test part or new data is scored in time order (the test part of a run, `detect`,
    /// `detect --follow`, Apply to another series): a point flagged at the run's threshold is
    /// taken as missing in the windows that follow it, so that the alarms of a short anomaly
    /// end with it instead of trailing it for up to W-1 points. Off by default: after a level
    /// shift it keeps imputing the old level.
    pub mask_flagged: bool,
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
            patience: 5,
            min_epochs: 0,
            seed: 0,
            backend: BackendKind::Flex,
            gradients: GradientEngine::Fused,
            threads: 0,
            mcmc_iterations: 10,
            n_z: 1024,
            eval_delay: 7,
            alarm_rate: 0.01,
            pot_risk: 3e-3,
            pot_level: 0.98,
            threshold_rule: ThresholdChoice::Auto,
            preview_n_z: 16,
            preview_mcmc_iterations: 2,
            extreme_sigmas: 10.0,
            mask_flagged: false,
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
        reason: String,
    },
    /// A setting other than a scoring one changed where a trained model is only scored.
    #[error(
        "{settings} cannot change: the model was trained with the run's value (only {scoring} can)"
    )]
    NotScoring {
        /// The settings that changed, comma-separated.
        settings: String,
        /// The settings that may change.
        scoring: String,
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

/// One end of a setting's allowed range.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Bound {
    /// The value itself is allowed.
    Closed(f64),
    /// Only values beyond it are.
    Open(f64),
    /// No bound (on this side).
    Unbounded,
}

/// The allowed range of a numeric setting and the span its slider shows: the one table read by
/// [`DonutConfig::validate`] and by every slider of the app. A slider never moves a value the
/// user did not touch: a value outside its span (any value the range allows) is shown as it is.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SettingRange {
    /// The setting.
    pub key: &'static str,
    /// The lowest value allowed.
    pub min: Bound,
    /// The highest value allowed.
    pub max: Bound,
    /// The span of its slider: the values usually worth trying.
    pub slider: (f64, f64),
    /// Whether the slider is logarithmic.
    pub logarithmic: bool,
    /// What a special value means, if any (for the message).
    pub note: &'static str,
}

impl SettingRange {
    /// True when `value` is allowed.
    pub fn contains(&self, value: f64) -> bool {
        let above = match self.min {
            Bound::Closed(m) => value >= m,
            Bound::Open(m) => value > m,
            Bound::Unbounded => true,
        };
        let below = match self.max {
            Bound::Closed(m) => value <= m,
            Bound::Open(m) => value < m,
            Bound::Unbounded => true,
        };
        value.is_finite() && above && below
    }

    /// The range in words, as the error message gives it: "must be in (0, 0.5]".
    pub fn describe(&self) -> String {
        let number = |x: f64| {
            if x.fract() == 0.0 && x.abs() < 1e15 {
                format!("{}", x as i64)
            } else {
                format!("{x}")
            }
        };
        let text = match (self.min, self.max) {
            (Bound::Closed(a), Bound::Unbounded) => format!("must be >= {}", number(a)),
            (Bound::Open(a), Bound::Unbounded) => format!("must be > {}", number(a)),
            (Bound::Unbounded, Bound::Unbounded) => "must be finite".into(),
            (min, max) => {
                let (open, a) = match min {
                    Bound::Closed(a) => ("[", number(a)),
                    Bound::Open(a) => ("(", number(a)),
                    Bound::Unbounded => ("(", "-inf".into()),
                };
                let (close, b) = match max {
                    Bound::Closed(b) => ("]", number(b)),
                    Bound::Open(b) => (")", number(b)),
                    Bound::Unbounded => (")", "inf".into()),
                };
                format!("must be in {open}{a}, {b}{close}")
            }
        };
        if self.note.is_empty() {
            text
        } else {
            format!("{text} ({})", self.note)
        }
    }
}

const fn range(
    key: &'static str,
    min: Bound,
    max: Bound,
    slider: (f64, f64),
    logarithmic: bool,
) -> SettingRange {
    SettingRange {
        key,
        min,
        max,
        slider,
        logarithmic,
        note: "",
    }
}

const fn noted(mut r: SettingRange, note: &'static str) -> SettingRange {
    r.note = note;
    r
}

use Bound::{Closed, Open, Unbounded};

/// Every numeric setting's range (a test holds every numeric field of [`DonutConfig`] to an
/// entry, and every default to its range and its slider's span).
pub const SETTING_RANGES: &[SettingRange] = &[
    range("window", Closed(2.0), Closed(4096.0), (4.0, 480.0), false),
    range("test_fraction", Open(0.0), Open(1.0), (0.05, 0.7), false),
    range("valid_fraction", Closed(0.0), Open(1.0), (0.0, 0.5), false),
    range(
        "hidden_width",
        Closed(1.0),
        Closed(4096.0),
        (8.0, 512.0),
        true,
    ),
    range("hidden_depth", Closed(1.0), Closed(8.0), (1.0, 4.0), false),
    range(
        "cnn_channels",
        Closed(1.0),
        Closed(256.0),
        (2.0, 64.0),
        false,
    ),
    range("latent_dim", Closed(1.0), Closed(16.0), (1.0, 16.0), false),
    range("student_t_df", Open(2.0), Unbounded, (2.5, 100.0), true),
    range("std_epsilon", Open(0.0), Unbounded, (1e-6, 1e-1), true),
    range("l2_weight", Closed(0.0), Unbounded, (0.0, 0.1), true),
    range("beta_value", Closed(0.0), Closed(1.0), (0.0, 1.0), false),
    range("entropy_value", Closed(0.0), Closed(1.0), (0.0, 1.0), false),
    range(
        "injection_rate",
        Closed(0.0),
        Closed(1.0),
        (0.0, 1.0),
        false,
    ),
    range(
        "epochs",
        Closed(1.0),
        Closed(100_000.0),
        (1.0, 512.0),
        false,
    ),
    range(
        "batch_size",
        Closed(1.0),
        Closed(65_536.0),
        (16.0, 1024.0),
        true,
    ),
    range(
        "learning_rate",
        Open(0.0),
        Closed(100.0),
        (1e-5, 1e-1),
        true,
    ),
    range("lr_decay", Open(0.0), Closed(1.0), (0.1, 1.0), false),
    range(
        "lr_decay_epochs",
        Closed(1.0),
        Unbounded,
        (1.0, 100.0),
        false,
    ),
    range("grad_clip_norm", Open(0.0), Unbounded, (0.1, 100.0), true),
    range(
        "valid_every_steps",
        Closed(1.0),
        Unbounded,
        (10.0, 1000.0),
        true,
    ),
    noted(
        range(
            "patience",
            Closed(0.0),
            Closed(100_000.0),
            (0.0, 50.0),
            false,
        ),
        "0 = off",
    ),
    noted(
        range(
            "min_epochs",
            Closed(0.0),
            Closed(100_000.0),
            (0.0, 256.0),
            false,
        ),
        "0 = none",
    ),
    range("seed", Closed(0.0), Unbounded, (0.0, 99.0), false),
    noted(
        range("threads", Closed(0.0), Closed(256.0), (0.0, 16.0), false),
        "0 = every core",
    ),
    range(
        "mcmc_iterations",
        Closed(0.0),
        Closed(1000.0),
        (0.0, 50.0),
        false,
    ),
    range("n_z", Closed(1.0), Closed(65_536.0), (1.0, 2048.0), true),
    range(
        "eval_delay",
        Closed(0.0),
        Closed(100_000.0),
        (0.0, 120.0),
        false,
    ),
    range("alarm_rate", Open(0.0), Closed(0.5), (0.001, 0.5), true),
    range("pot_risk", Open(0.0), Open(0.5), (1e-6, 0.1), true),
    range("pot_level", Open(0.5), Open(1.0), (0.8, 0.999), false),
    noted(
        range(
            "preview_n_z",
            Closed(0.0),
            Closed(65_536.0),
            (0.0, 256.0),
            false,
        ),
        "0 = no preview",
    ),
    range(
        "preview_mcmc_iterations",
        Closed(0.0),
        Closed(1000.0),
        (0.0, 50.0),
        false,
    ),
    noted(
        range(
            "extreme_sigmas",
            Closed(0.0),
            Closed(1e6),
            (0.0, 100.0),
            false,
        ),
        "0 = off",
    ),
];

/// The range of the numeric setting `key`, if it is one.
pub fn setting_range(key: &str) -> Option<&'static SettingRange> {
    SETTING_RANGES.iter().find(|r| r.key == key)
}

impl DonutConfig {
    /// Checks every setting's range ([`SETTING_RANGES`]) and the settings that depend on each
    /// other; the one validation step before a run.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let object = self.as_object();
        for r in SETTING_RANGES {
            let value = object.get(r.key).and_then(serde_json::Value::as_f64);
            if !value.is_some_and(|v| r.contains(v)) {
                return Err(ConfigError::Invalid {
                    key: r.key,
                    value: object.get(r.key).map(value_text).unwrap_or_default(),
                    reason: r.describe(),
                });
            }
        }
        if self.encoder == EncoderKind::Cnn && self.window < 4 {
            return Err(ConfigError::Invalid {
                key: "window",
                value: self.window.to_string(),
                reason: "the CNN encoder needs a window of at least 4".into(),
            });
        }
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

    /// The one check behind `train --load` and `detect`: a trained model may be scored with
    /// other scoring settings (and another thread count), nothing else. The error names every
    /// other setting that differs.
    pub fn scoring_only(&self, other: &DonutConfig) -> Result<(), ConfigError> {
        let fixed: Vec<String> = self
            .changes(other)
            .into_iter()
            .filter(|c| c.group != SettingGroup::Scoring && c.pair.key != "threads")
            .map(|c| c.pair.key)
            .collect();
        if fixed.is_empty() {
            return Ok(());
        }
        let free: Vec<String> = Self::keys()
            .into_iter()
            .filter(|k| SettingGroup::of(k) == SettingGroup::Scoring || k == "threads")
            .collect();
        Err(ConfigError::NotScoring {
            settings: fixed.join(", "),
            scoring: free.join(", "),
        })
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
            "mcmc_iterations"
            | "n_z"
            | "eval_delay"
            | "alarm_rate"
            | "pot_risk"
            | "pot_level"
            | "threshold_rule"
            | "extreme_sigmas"
            | "mask_flagged"
            | "preview_n_z"
            | "preview_mcmc_iterations" => Self::Scoring,
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
    fn every_numeric_setting_has_a_range_that_holds_its_default() {
        let defaults = DonutConfig::default().as_object();
        for (key, value) in &defaults {
            let Some(v) = value.as_f64() else { continue };
            let r = setting_range(key).unwrap_or_else(|| panic!("{key} has no range"));
            assert!(r.contains(v), "{key} = {v} outside its range");
            assert!(
                (r.slider.0..=r.slider.1).contains(&v),
                "{key} = {v} outside its slider"
            );
            assert!(
                r.contains(r.slider.0) && r.contains(r.slider.1),
                "{key}'s slider leaves its range"
            );
        }
        assert_eq!(
            SETTING_RANGES.len(),
            defaults.values().filter(|v| v.is_number()).count()
        );
    }

    #[test]
    fn validate_reads_the_ranges_table() {
        let wide = DonutConfig {
            seed: 1234,
            window: 720,
            epochs: 1000,
            learning_rate: 0.5,
            ..Default::default()
        };
        wide.validate().unwrap();
        let err = DonutConfig {
            alarm_rate: 0.0,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("alarm_rate") && err.contains("(0, 0.5]"),
            "{err}"
        );
        let err = DonutConfig {
            threads: 300,
            ..Default::default()
        }
        .validate()
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("[0, 256]") && err.contains("0 = every core"),
            "{err}"
        );
    }

    #[test]
    fn only_scoring_settings_may_change_for_a_trained_model() {
        let trained = DonutConfig::default();
        let scoring = trained.with_overrides(&["n_z=64", "threads=1"]).unwrap();
        trained.scoring_only(&scoring).unwrap();
        let retrained = trained
            .with_overrides(&["learning_rate=0.5", "n_z=64", "latent_dim=3"])
            .unwrap();
        let err = trained.scoring_only(&retrained).unwrap_err().to_string();
        assert!(
            err.starts_with("latent_dim, learning_rate cannot change"),
            "{err}"
        );
        assert!(
            err.contains("n_z") && err.contains("threshold_rule"),
            "{err}"
        );
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
