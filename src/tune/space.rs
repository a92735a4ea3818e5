//! The search space of `tune`: the settings a search varies, each over a range or a list of
//! values, and the seeded sampler that draws a trial's settings from it. A TOML file narrows or
//! widens the default space:
//!
//! ```toml
//! defaults = true            # start from the default space (false: from an empty one)
//!
//! [latent_dim]               # a range (integers for integer settings)
//! min = 3
//! max = 8
//!
//! [learning_rate]            # a range drawn on a log scale
//! min = 1e-4
//! max = 1e-2
//! log = true
//!
//! [encoder]                  # a list of values
//! values = ["dense", "cnn"]
//!
//! [entropy_value]            # with settings that go with it in every trial
//! min = 0.0
//! max = 1.0
//! with = ["entropy_mode=fixed"]
//!
//! [latent_dist]              # taken out of the search (the base settings apply)
//! off = true
//! ```

use crate::config::{ConfigError, DonutConfig};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// What values a setting takes in a search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Domain {
    /// A number in `[min, max]`, uniform or (`log`) log-uniform; rounded for integer settings.
    Range {
        /// Lowest value.
        min: f64,
        /// Highest value.
        max: f64,
        /// Drawn on a log scale.
        log: bool,
        /// The setting takes integers.
        integer: bool,
    },
    /// One of these values (as a `key=value` assignment writes them).
    Choice {
        /// The values.
        values: Vec<String>,
    },
}

/// One setting of a search.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dimension {
    /// The setting's key (as `--set` names it).
    pub key: String,
    /// Its values.
    pub domain: Domain,
    /// Assignments that go with it in every trial (`entropy_mode=fixed` for `entropy_value`).
    #[serde(default)]
    pub with: Vec<String>,
}

/// A trial's value of a dimension.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    /// A number (of a range).
    Number(f64),
    /// A choice.
    Choice(String),
}

impl Value {
    /// As a `key=value` assignment writes it.
    pub fn text(&self) -> String {
        match self {
            Value::Number(x) => format_number(*x),
            Value::Choice(s) => s.clone(),
        }
    }
}

/// `x` with 3 significant digits, as plain text (`0.00123`, `120`).
fn format_number(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let digits = 3 - 1 - x.abs().log10().floor() as i32;
    let scale = 10f64.powi(digits);
    let rounded = (x * scale).round() / scale;
    format!("{rounded}")
}

impl Dimension {
    /// Draws a value.
    fn sample(&self, rng: &mut Xoshiro256PlusPlus) -> Value {
        match &self.domain {
            Domain::Range {
                min,
                max,
                log,
                integer,
            } => {
                let u: f64 = rng.random();
                let x = if *log {
                    (min.ln() + u * (max.ln() - min.ln())).exp()
                } else {
                    min + u * (max - min)
                };
                if *integer {
                    Value::Number(x.round().clamp(*min, *max))
                } else {
                    Value::Number(x.clamp(*min, *max))
                }
            }
            Domain::Choice { values } => {
                Value::Choice(values[rng.random_range(0..values.len())].clone())
            }
        }
    }

    /// Where `value` lies in the domain, from 0 to 1 (log scale for a log range; a choice's
    /// index): the axis of a parallel-coordinates plot.
    pub fn position(&self, value: &Value) -> f64 {
        match (&self.domain, value) {
            (Domain::Range { min, max, log, .. }, Value::Number(x)) => {
                let (a, b, x) = if *log {
                    (min.ln(), max.ln(), x.max(f64::MIN_POSITIVE).ln())
                } else {
                    (*min, *max, *x)
                };
                if b > a { (x - a) / (b - a) } else { 0.5 }
            }
            (Domain::Choice { values }, Value::Choice(s)) => {
                let i = values.iter().position(|v| v == s).unwrap_or(0);
                if values.len() > 1 {
                    i as f64 / (values.len() - 1) as f64
                } else {
                    0.5
                }
            }
            _ => 0.5,
        }
    }

    /// The domain in words: `3 to 8`, `1e-4 to 1e-2 (log)`, `dense | cnn`.
    pub fn describe(&self) -> String {
        match &self.domain {
            Domain::Range { min, max, log, .. } => format!(
                "{} to {}{}",
                format_number(*min),
                format_number(*max),
                if *log { " (log)" } else { "" }
            ),
            Domain::Choice { values } => values.join(" | "),
        }
    }
}

/// The settings a search varies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SearchSpace {
    /// The dimensions, in the order trials list them.
    pub dimensions: Vec<Dimension>,
}

/// Why a search space was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not TOML of the expected shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A dimension names no setting.
    #[error("{path}: `{key}` is not a setting (the settings are the keys of `--set`)")]
    Unknown {
        /// The file.
        path: String,
        /// The key.
        key: String,
    },
    /// A dimension's range or list is empty.
    #[error("{path}: `{key}`: {why}")]
    Empty {
        /// The file.
        path: String,
        /// The setting.
        key: String,
        /// What is empty.
        why: String,
    },
    /// A value of a dimension is not allowed for its setting.
    #[error("{path}: `{key}`: {source}")]
    BadValue {
        /// The file.
        path: String,
        /// The setting.
        key: String,
        /// What the settings say.
        #[source]
        source: ConfigError,
    },
    /// The space varies nothing.
    #[error("{path}: the search space varies no setting")]
    Nothing {
        /// The file.
        path: String,
    },
}

fn range(key: &str, min: f64, max: f64, log: bool, integer: bool) -> Dimension {
    Dimension {
        key: key.into(),
        domain: Domain::Range {
            min,
            max,
            log,
            integer,
        },
        with: Vec::new(),
    }
}

fn choice(key: &str, values: &[&str]) -> Dimension {
    Dimension {
        key: key.into(),
        domain: Domain::Choice {
            values: values.iter().map(|v| v.to_string()).collect(),
        },
        with: Vec::new(),
    }
}

impl Default for SearchSpace {
    /// The settings that shape DONUT's detections: latent dimension, window, beta (mode and
    /// value), entropy weight, injection rate, encoder, latent distribution, learning rate and
    /// hidden width, over the spans the literature and the sliders try.
    fn default() -> Self {
        let mut entropy = range("entropy_value", 0.0, 1.0, false, false);
        entropy.with = vec!["entropy_mode=fixed".into()];
        Self {
            dimensions: vec![
                range("latent_dim", 3.0, 10.0, false, true),
                range("window", 60.0, 240.0, false, true),
                choice("beta_mode", &["mean", "fixed"]),
                range("beta_value", 0.1, 1.0, false, false),
                entropy,
                range("injection_rate", 0.0, 0.1, false, false),
                choice("encoder", &["dense", "cnn"]),
                choice("latent_dist", &["gaussian", "studentt"]),
                range("learning_rate", 3e-4, 3e-3, true, false),
                range("hidden_width", 32.0, 256.0, true, true),
            ],
        }
    }
}

/// One dimension of a space file, as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DimensionSpec {
    min: Option<f64>,
    max: Option<f64>,
    #[serde(default)]
    log: bool,
    values: Option<Vec<toml::Value>>,
    #[serde(default)]
    with: Vec<String>,
    #[serde(default)]
    off: bool,
}

fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl SearchSpace {
    /// Reads a space file (see the module's doc) over the default space.
    pub fn from_file(path: &Path) -> Result<Self, SpaceError> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SpaceError::Read {
            path: name.clone(),
            source,
        })?;
        Self::from_toml(&text, &name)
    }

    /// Reads a space from TOML text (`name` says where it came from in messages).
    pub fn from_toml(text: &str, name: &str) -> Result<Self, SpaceError> {
        let parse = |message: String| SpaceError::Parse {
            path: name.into(),
            message,
        };
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| parse(e.to_string()))?;
        let mut space = match table.get("defaults") {
            None => Self::default(),
            Some(toml::Value::Boolean(true)) => Self::default(),
            Some(toml::Value::Boolean(false)) => Self {
                dimensions: Vec::new(),
            },
            Some(other) => {
                return Err(parse(format!(
                    "`defaults` must be true or false, not {other}"
                )));
            }
        };
        let keys = DonutConfig::keys();
        let base = serde_json::to_value(DonutConfig::default()).unwrap_or_default();
        for (key, value) in &table {
            if key == "defaults" {
                continue;
            }
            if !keys.contains(key) {
                return Err(SpaceError::Unknown {
                    path: name.into(),
                    key: key.clone(),
                });
            }
            let spec: DimensionSpec = value
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| parse(format!("`{key}`: {}", e.message())))?;
            space.dimensions.retain(|d| &d.key != key);
            if spec.off {
                continue;
            }
            let empty = |why: &str| SpaceError::Empty {
                path: name.into(),
                key: key.clone(),
                why: why.into(),
            };
            let domain = match (spec.values, spec.min, spec.max) {
                (Some(values), None, None) => {
                    if values.is_empty() {
                        return Err(empty("the list of values is empty"));
                    }
                    Domain::Choice {
                        values: values.iter().map(toml_text).collect(),
                    }
                }
                (None, Some(min), Some(max)) => {
                    if min.is_nan() || max.is_nan() || min > max {
                        return Err(empty(&format!(
                            "the range is empty (min {min} > max {max})"
                        )));
                    }
                    if spec.log && min <= 0.0 {
                        return Err(empty("a log range needs min > 0"));
                    }
                    let integer = base.get(key).is_some_and(|v| v.is_u64() || v.is_i64());
                    if integer && min.ceil() > max.floor() {
                        return Err(empty(&format!("no integer lies in {min} to {max}")));
                    }
                    Domain::Range {
                        min,
                        max,
                        log: spec.log,
                        integer,
                    }
                }
                _ => {
                    return Err(parse(format!(
                        "`{key}` needs either `min` and `max` or `values` (or `off = true`)"
                    )));
                }
            };
            space.dimensions.push(Dimension {
                key: key.clone(),
                domain,
                with: spec.with,
            });
        }
        space.check(name)?;
        Ok(space)
    }

    /// Refuses a space that varies nothing, or whose values (the ends of each range, every
    /// listed value, with its companions) the settings do not allow.
    pub fn check(&self, name: &str) -> Result<(), SpaceError> {
        if self.dimensions.is_empty() {
            return Err(SpaceError::Nothing { path: name.into() });
        }
        let base = DonutConfig::default();
        for d in &self.dimensions {
            let values: Vec<String> = match &d.domain {
                Domain::Range { min, max, .. } => vec![format_number(*min), format_number(*max)]
                    .into_iter()
                    .chain([format!("{min}"), format!("{max}")])
                    .collect(),
                Domain::Choice { values } => values.clone(),
            };
            for v in values {
                let mut assignments = d.with.clone();
                assignments.push(format!("{}={v}", d.key));
                base.with_overrides(&assignments)
                    .map_err(|source| SpaceError::BadValue {
                        path: name.into(),
                        key: d.key.clone(),
                        source,
                    })?;
            }
        }
        Ok(())
    }

    /// The settings of `count` trials drawn with `seed`: each a value per dimension.
    pub fn sample(&self, count: usize, seed: u64) -> Vec<Vec<Value>> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..count)
            .map(|_| self.dimensions.iter().map(|d| d.sample(&mut rng)).collect())
            .collect()
    }

    /// The values `config` holds for each dimension (a number, or a choice as `--set` writes
    /// it), for a trial of the base settings themselves; None when a dimension's key is not a
    /// setting of `config` (never after [`SearchSpace::check`]).
    pub fn values_of(&self, config: &crate::config::DonutConfig) -> Option<Vec<Value>> {
        let settings = serde_json::to_value(config).ok()?;
        self.dimensions
            .iter()
            .map(|d| match settings.get(&d.key)? {
                serde_json::Value::Number(n) => n.as_f64().map(Value::Number),
                serde_json::Value::String(s) => Some(Value::Choice(s.clone())),
                serde_json::Value::Bool(b) => Some(Value::Choice(b.to_string())),
                _ => None,
            })
            .collect()
    }

    /// The `key=value` assignments of a trial's `values` (companions first).
    pub fn assignments(&self, values: &[Value]) -> Vec<String> {
        let mut out = Vec::new();
        for (d, v) in self.dimensions.iter().zip(values) {
            out.extend(d.with.iter().cloned());
            out.push(format!("{}={}", d.key, v.text()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_space_is_valid_and_its_samples_make_valid_configs() {
        let space = SearchSpace::default();
        space.check("default").unwrap();
        for values in space.sample(50, 7) {
            let config = DonutConfig::default()
                .with_overrides(&space.assignments(&values))
                .unwrap();
            assert!((3..=10).contains(&config.latent_dim));
            assert!((60..=240).contains(&config.window));
            assert!((3e-4..=3e-3).contains(&config.learning_rate));
        }
        assert_eq!(space.sample(5, 1), space.sample(5, 1));
        assert_ne!(space.sample(5, 1), space.sample(5, 2));
    }

    #[test]
    fn a_file_narrows_widens_and_switches_off() {
        let space = SearchSpace::from_toml(
            "[latent_dim]\nmin = 4\nmax = 4\n[batch_size]\nvalues = [64, 128]\n[encoder]\noff = true\n",
            "space.toml",
        )
        .unwrap();
        let keys: Vec<&str> = space.dimensions.iter().map(|d| d.key.as_str()).collect();
        assert!(!keys.contains(&"encoder"));
        assert!(keys.contains(&"batch_size"));
        for values in space.sample(10, 3) {
            let c = DonutConfig::default()
                .with_overrides(&space.assignments(&values))
                .unwrap();
            assert_eq!(c.latent_dim, 4);
            assert!(c.batch_size == 64 || c.batch_size == 128);
        }
        let only = SearchSpace::from_toml("defaults = false\n[window]\nmin = 30\nmax = 60\n", "s")
            .unwrap();
        assert_eq!(only.dimensions.len(), 1);
    }

    #[test]
    fn unknown_settings_empty_ranges_and_bad_values_are_refused_by_name() {
        let err = SearchSpace::from_toml("[latent_size]\nmin = 1\nmax = 2\n", "space.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("space.toml") && err.contains("`latent_size`"),
            "{err}"
        );
        let err = SearchSpace::from_toml("[window]\nmin = 200\nmax = 100\n", "space.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`window`") && err.contains("empty"), "{err}");
        let err = SearchSpace::from_toml("[encoder]\nvalues = []\n", "s")
            .unwrap_err()
            .to_string();
        assert!(err.contains("`encoder`") && err.contains("empty"), "{err}");
        let err = SearchSpace::from_toml("[latent_dim]\nmin = 1\nmax = 99\n", "s")
            .unwrap_err()
            .to_string();
        assert!(err.contains("latent_dim") && err.contains("99"), "{err}");
        let err = SearchSpace::from_toml("[encoder]\nvalues = [\"rnn\"]\n", "s")
            .unwrap_err()
            .to_string();
        assert!(err.contains("encoder") && err.contains("rnn"), "{err}");
        let err = SearchSpace::from_toml("defaults = false\n", "s")
            .unwrap_err()
            .to_string();
        assert!(err.contains("varies no setting"), "{err}");
    }

    #[test]
    fn numbers_are_written_with_three_significant_digits() {
        assert_eq!(format_number(0.0012345), "0.00123");
        assert_eq!(format_number(120.0), "120");
        assert_eq!(format_number(0.5), "0.5");
    }
}
