//! Saved runs: one file holding a [`RunRecord`] (settings, trained weights, metrics, loss
//! history, latent snapshots and scores), so that a run opens later with nothing lost.
//!
//! Layout: the magic bytes `DONUTRUN`, the format version (u32, little-endian), the payload length
//! (u64), the payload (postcard-encoded), and a CRC-32 of the payload (u32). A file cut short at
//! any byte, or altered, is rejected before anything is decoded; a file from a newer format says
//! so. Format 1 (donut-explorer 0.1 before the run record) is read and converted. Files are
//! written atomically (a temporary file, then a rename).

use crate::config::DonutConfig;
use crate::eval::Metrics;
use crate::history::{History, LatentSnapshot, StepStats, TrainStats, ValidStats};
use crate::model::{DonutModel, Weight};
use crate::pipeline::RunRecord;
use serde::Deserialize;
use std::path::Path;

/// The format this build writes; it reads this one and every earlier one.
pub const FORMAT_VERSION: u32 = 2;
const MAGIC: &[u8; 8] = b"DONUTRUN";
const HEADER_LEN: usize = 8 + 4 + 8;

/// Format 1's payload, as postcard laid it out: read and converted to a [`RunRecord`].
#[derive(Deserialize)]
struct RecordV1 {
    app_version: String,
    source: String,
    config: DonutConfig,
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
        RunRecord {
            app_version: v1.app_version,
            source: v1.source,
            config: v1.config,
            data: None,
            stats: TrainStats {
                epochs_done: v1.epochs_done,
                train_secs: v1.train_secs,
                train_windows_per_sec: v1.train_windows_per_sec,
                stopped: false,
            },
            score_secs: v1.score_secs,
            scored_windows: v1.scores.iter().flatten().count(),
            weights: v1.weights,
            history: History {
                steps: v1.steps,
                validations: v1.validations,
                snapshots: v1.snapshots,
            },
            scores: v1.scores,
            metrics: v1.metrics,
        }
    }
}

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
    /// The payload does not decode (a broken writer).
    #[error("{path}: the contents do not decode: {source}")]
    Decode {
        /// The file.
        path: String,
        /// The decoder's error.
        #[source]
        source: postcard::Error,
    },
    /// The run cannot be encoded.
    #[error("{path}: the run cannot be encoded: {source}")]
    Encode {
        /// The file.
        path: String,
        /// The encoder's error.
        #[source]
        source: postcard::Error,
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
pub fn encode(run: &RunRecord) -> Result<Vec<u8>, postcard::Error> {
    let payload = postcard::to_stdvec(run)?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() + 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    Ok(out)
}

/// Decodes the file layout; `name` is used in errors.
pub fn decode(bytes: &[u8], name: &str) -> Result<RunRecord, RunFileError> {
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
    let decoded = if version == 1 {
        postcard::from_bytes::<RecordV1>(payload).map(RunRecord::from)
    } else {
        postcard::from_bytes::<RunRecord>(payload)
    };
    decoded.map_err(|source| RunFileError::Decode { path: name, source })
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
