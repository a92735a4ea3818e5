//! Saved runs: one file holding a [`RunRecord`] (settings, trained weights, metrics, loss
//! history, latent snapshots and scores), so that a run opens later with nothing lost.
//!
//! Layout: the magic bytes `DONUTRUN`, the format version (u32, little-endian), the payload length
//! (u64), the payload, and a CRC-32 of the payload (u32). A file cut short at any byte, or
//! altered, is rejected before anything is decoded; a file from a newer format says so. Since
//! format 2 the payload is CBOR, which names every field, so a setting added later does not move
//! the others; format 3 deflates that CBOR (flate2), which takes the field names repeated in the
//! loss history down to almost nothing (latent snapshots are packed by [`History`] itself).
//! Format 1 (postcard, fields by position: the first release) is read through frozen
//! copies of its structs and converted. Files are written atomically (a temporary file, then a
//! rename).

use crate::config::{
    BackendKind, BetaMode, DonutConfig, EncoderKind, EntropyMode, GradientEngine, LatentDist,
};
use crate::eval::{Metrics, Threshold, ThresholdRule};
use crate::history::{History, LatentSnapshot, StepStats, TrainStats, ValidStats};
use crate::model::{DonutModel, Weight};
use crate::pipeline::RunRecord;
use serde::Deserialize;
use std::path::Path;

/// The format this build writes; it reads this one and every earlier one.
pub const FORMAT_VERSION: u32 = 3;
const MAGIC: &[u8; 8] = b"DONUTRUN";
const HEADER_LEN: usize = 8 + 4 + 8;

/// Format 1's settings, in the order postcard laid them out (format 1 stores no field names):
/// frozen here so that new settings never change how a format-1 file decodes.
#[derive(Deserialize)]
struct ConfigV1 {
    window: usize,
    test_fraction: f64,
    valid_fraction: f64,
    encoder: EncoderKind,
    hidden_width: usize,
    hidden_depth: usize,
    cnn_channels: usize,
    latent_dim: usize,
    latent_dist: LatentDist,
    student_t_df: f64,
    std_epsilon: f64,
    l2_weight: f64,
    beta_mode: BetaMode,
    beta_value: f64,
    entropy_mode: EntropyMode,
    entropy_value: f64,
    injection_rate: f64,
    epochs: usize,
    batch_size: usize,
    learning_rate: f64,
    lr_decay: f64,
    lr_decay_epochs: usize,
    grad_clip_norm: f64,
    valid_every_steps: usize,
    seed: u64,
    backend: BackendKind,
    gradients: GradientEngine,
    threads: usize,
    mcmc_iterations: usize,
    n_z: usize,
    eval_delay: usize,
}

impl From<ConfigV1> for DonutConfig {
    /// Format 1's settings, and today's defaults for every setting added since.
    fn from(v1: ConfigV1) -> Self {
        DonutConfig {
            window: v1.window,
            test_fraction: v1.test_fraction,
            valid_fraction: v1.valid_fraction,
            encoder: v1.encoder,
            hidden_width: v1.hidden_width,
            hidden_depth: v1.hidden_depth,
            cnn_channels: v1.cnn_channels,
            latent_dim: v1.latent_dim,
            latent_dist: v1.latent_dist,
            student_t_df: v1.student_t_df,
            std_epsilon: v1.std_epsilon,
            l2_weight: v1.l2_weight,
            beta_mode: v1.beta_mode,
            beta_value: v1.beta_value,
            entropy_mode: v1.entropy_mode,
            entropy_value: v1.entropy_value,
            injection_rate: v1.injection_rate,
            epochs: v1.epochs,
            batch_size: v1.batch_size,
            learning_rate: v1.learning_rate,
            lr_decay: v1.lr_decay,
            lr_decay_epochs: v1.lr_decay_epochs,
            grad_clip_norm: v1.grad_clip_norm,
            valid_every_steps: v1.valid_every_steps,
            seed: v1.seed,
            backend: v1.backend,
            gradients: v1.gradients,
            threads: v1.threads,
            mcmc_iterations: v1.mcmc_iterations,
            n_z: v1.n_z,
            eval_delay: v1.eval_delay,
            ..DonutConfig::default()
        }
    }
}

/// Format 1's payload, as postcard laid it out: read and converted to a [`RunRecord`].
#[derive(Deserialize)]
struct RecordV1 {
    app_version: String,
    source: String,
    config: ConfigV1,
    weights: Vec<Weight>,
    metrics: Option<Metrics>,
    steps: Vec<StepStats>,
    validations: Vec<ValidStats>,
    snapshots: Vec<LatentSnapshot>,
    scores: Vec<Option<f64>>,
    epochs_done: usize,
    train_secs: f64,
    train_windows_per_sec: f64,
    score_secs: f64,
}

impl From<RecordV1> for RunRecord {
    fn from(v1: RecordV1) -> Self {
        let threshold = Threshold {
            value: v1.metrics.map_or(f64::INFINITY, |m| m.best_f1.threshold),
            rule: ThresholdRule::BestF1Test,
        };
        RunRecord {
            app_version: v1.app_version,
            source: v1.source,
            config: v1.config.into(),
            data: None,
            stats: TrainStats {
                epochs_done: v1.epochs_done,
                train_secs: v1.train_secs,
                train_windows_per_sec: v1.train_windows_per_sec,
                stopped: false,
                ..Default::default()
            },
            score_secs: v1.score_secs,
            scored_windows: v1.scores.iter().flatten().count(),
            weights: v1.weights,
            history: History {
                steps: v1.steps,
                validations: v1.validations,
                // Kept at the saved precision since format 2: rounded once, so that saving the
                // converted run again loads the same run.
                snapshots: v1
                    .snapshots
                    .into_iter()
                    .map(LatentSnapshot::rounded)
                    .collect(),
            },
            scores: v1.scores,
            thresholds: v1.metrics.map(|_| threshold).into_iter().collect(),
            reference_scores: Vec::new(),
            threshold,
            metrics: v1.metrics,
            evaluation: None,
            baselines: Default::default(),
            no_f1_reason: None,
            standardisation: None,
        }
    }
}

/// Why a payload does not decode: postcard's error for format 1, CBOR's since.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Format 1.
    #[error(transparent)]
    Postcard(#[from] postcard::Error),
    /// Formats 2 and 3.
    #[error(transparent)]
    Cbor(#[from] ciborium::de::Error<std::io::Error>),
    /// Format 3's deflated payload does not inflate.
    #[error("the compressed payload does not inflate: {0}")]
    Inflate(#[source] std::io::Error),
}

/// Why a run does not encode.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct EncodeError(#[from] ciborium::ser::Error<std::io::Error>);

/// Why a run file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    /// The file system said no.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: std::io::Error,
    },
    /// Not a run file at all.
    #[error("{0}: not a donut-explorer run file (it does not start with DONUTRUN)")]
    NotARunFile(String),
    /// Written by a newer version.
    #[error(
        "{path}: written by a newer donut-explorer (run format {found}); this version reads format {supported}. Update donut-explorer to open it."
    )]
    Newer {
        /// The file.
        path: String,
        /// Its format.
        found: u32,
        /// What this build reads.
        supported: u32,
    },
    /// Cut short.
    #[error(
        "{path}: the file is truncated ({found} bytes, {expected} expected): it was not written completely"
    )]
    Truncated {
        /// The file.
        path: String,
        /// Bytes present.
        found: usize,
        /// Bytes the header promises.
        expected: usize,
    },
    /// The checksum does not match.
    #[error("{0}: the file is damaged (checksum mismatch)")]
    Damaged(String),
    /// The payload does not decode (a broken writer, or a field this build cannot read).
    #[error("{path}: the contents do not decode: {source}")]
    Decode {
        /// The file.
        path: String,
        /// The decoder's error.
        #[source]
        source: DecodeError,
    },
    /// The run holds settings this build does not know: refused, because a setting can change
    /// the network or how it scores, so ignoring one would score with a different model.
    #[error(
        "{path}: written by donut-explorer {written_by} with setting(s) this build ({this_version}) does not know: {}. A setting can change the network or how it scores, so the run is not opened without it: open it with donut-explorer {written_by} or newer",
        .keys.join(", ")
    )]
    UnknownSettings {
        /// The file.
        path: String,
        /// The version that wrote it.
        written_by: String,
        /// This build's version.
        this_version: String,
        /// The settings not known here.
        keys: Vec<String>,
    },
    /// The run cannot be encoded.
    #[error("{path}: the run cannot be encoded: {source}")]
    Encode {
        /// The file.
        path: String,
        /// The encoder's error.
        #[source]
        source: EncodeError,
    },
    /// The weights do not fit the model the settings describe.
    #[error("{path}: the weights do not fit the model of its settings: {message}")]
    Weights {
        /// The file.
        path: String,
        /// The first mismatch.
        message: String,
    },
}

/// Encodes a run into the file layout.
pub fn encode(run: &RunRecord) -> Result<Vec<u8>, EncodeError> {
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    ciborium::into_writer(run, &mut encoder)?;
    let payload = encoder.finish().map_err(ciborium::ser::Error::Io)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    Ok(out)
}

/// The format version and payload of a run file's bytes, once its magic, length and checksum
/// hold (a truncated, damaged or newer file is refused).
fn unframe<'b>(bytes: &'b [u8], name: &str) -> Result<(u32, &'b [u8]), RunFileError> {
    let name = name.to_string();
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        // A prefix of the magic is a run file cut inside its header.
        if !bytes.is_empty() && MAGIC.starts_with(bytes) {
            return Err(RunFileError::Truncated {
                path: name,
                found: bytes.len(),
                expected: HEADER_LEN,
            });
        }
        return Err(RunFileError::NotARunFile(name));
    }
    if bytes.len() < HEADER_LEN {
        return Err(RunFileError::Truncated {
            path: name,
            found: bytes.len(),
            expected: HEADER_LEN,
        });
    }
    let word = |at: usize, n: usize| {
        bytes[at..at + n]
            .iter()
            .rev()
            .fold(0u64, |acc, &b| (acc << 8) | b as u64)
    };
    let version = word(8, 4) as u32;
    if version > FORMAT_VERSION {
        return Err(RunFileError::Newer {
            path: name,
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    let len = word(12, 8);
    let expected = (HEADER_LEN as u64).saturating_add(len).saturating_add(4);
    if (bytes.len() as u64) < expected {
        return Err(RunFileError::Truncated {
            path: name,
            found: bytes.len(),
            expected: expected as usize,
        });
    }
    if bytes.len() as u64 > expected {
        return Err(RunFileError::Damaged(name));
    }
    let payload = &bytes[HEADER_LEN..HEADER_LEN + len as usize];
    let crc = word(HEADER_LEN + len as usize, 4) as u32;
    if crc32fast::hash(payload) != crc {
        return Err(RunFileError::Damaged(name));
    }
    Ok((version, payload))
}

/// Checks that `path` holds a whole run file (magic, length and checksum) without decoding it:
/// what a resumed fleet checks before it skips a KPI.
pub fn verify(path: &Path) -> Result<(), RunFileError> {
    let bytes = std::fs::read(path).map_err(|source| RunFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    unframe(&bytes, &path.display().to_string()).map(|_| ())
}

/// Decodes the file layout; `name` is used in errors.
pub fn decode(bytes: &[u8], name: &str) -> Result<RunRecord, RunFileError> {
    let (version, payload) = unframe(bytes, name)?;
    let name = name.to_string();
    if version == 1 {
        return postcard::from_bytes::<RecordV1>(payload)
            .map(RunRecord::from)
            .map_err(|e| RunFileError::Decode {
                path: name,
                source: e.into(),
            });
    }
    let inflated;
    let cbor = if version >= 3 {
        use std::io::Read;
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(payload)
            .read_to_end(&mut out)
            .map_err(|e| RunFileError::Decode {
                path: name.clone(),
                source: DecodeError::Inflate(e),
            })?;
        inflated = out;
        &inflated[..]
    } else {
        payload
    };
    ciborium::from_reader::<RunRecord, _>(cbor).map_err(|e| {
        unknown_settings(cbor, &name).unwrap_or(RunFileError::Decode {
            path: name,
            source: e.into(),
        })
    })
}

/// When a payload that does not decode holds settings this build does not know (a run of a
/// newer version), the error that names them. Fields of the record itself that this build
/// does not know (a newer summary, say) are skipped on reading: they do not change the model.
fn unknown_settings(payload: &[u8], name: &str) -> Option<RunFileError> {
    use ciborium::Value;
    let value: Value = ciborium::from_reader(payload).ok()?;
    let field = |map: &Value, key: &str| -> Option<Value> {
        map.as_map()?
            .iter()
            .find(|(k, _)| k.as_text() == Some(key))
            .map(|(_, v)| v.clone())
    };
    let config = field(&value, "config")?;
    let known = crate::config::DonutConfig::keys();
    let keys: Vec<String> = config
        .as_map()?
        .iter()
        .filter_map(|(k, _)| k.as_text())
        .filter(|k| !known.iter().any(|known| known == k))
        .map(str::to_string)
        .collect();
    if keys.is_empty() {
        return None;
    }
    let written_by = field(&value, "app_version")
        .and_then(|v| v.as_text().map(str::to_string))
        .unwrap_or_else(|| "an unknown version".into());
    Some(RunFileError::UnknownSettings {
        path: name.to_string(),
        written_by,
        this_version: RunRecord::current_version(),
        keys,
    })
}

/// Saves a run to `path`, atomically.
pub fn save(path: &Path, run: &RunRecord) -> Result<(), RunFileError> {
    let name = || path.display().to_string();
    let bytes = encode(run).map_err(|source| RunFileError::Encode {
        path: name(),
        source,
    })?;
    crate::fsio::write_atomically(path, |w| w.write_all(&bytes)).map_err(|source| {
        RunFileError::Io {
            path: name(),
            source,
        }
    })
}

/// Loads a run from `path`.
pub fn load(path: &Path) -> Result<RunRecord, RunFileError> {
    let bytes = std::fs::read(path).map_err(|source| RunFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    decode(&bytes, &path.display().to_string())
}

/// Rebuilds a loaded run's model; `name` (the file) is used in errors.
pub fn model_of(run: &RunRecord, name: &str) -> Result<DonutModel, RunFileError> {
    run.model().map_err(|message| RunFileError::Weights {
        path: name.to_string(),
        message,
    })
}
