//! Saved runs: one file holding a run's settings, trained weights, metrics, loss history, latent
//! snapshots and scores, so that it opens later with nothing lost.
//!
//! Layout: the magic bytes `DONUTRUN`, the format version (u32, little-endian), the payload length
//! (u64), the payload (postcard-encoded [`SavedRun`]), and a CRC-32 of the payload (u32). A file cut
//! short at any byte, or altered, is rejected before anything is decoded; a file from a newer format
//! says so. Files are written atomically (a temporary file, then a rename).

use crate::config::DonutConfig;
use crate::eval::Metrics;
use crate::model::{DonutModel, Weight, device_for};
use crate::train::{LatentSnapshot, StepStats, ValidStats};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// The format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const MAGIC: &[u8; 8] = b"DONUTRUN";
const HEADER_LEN: usize = 8 + 4 + 8;

/// Everything a finished run leaves behind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SavedRun {
    /// The donut-explorer version that wrote it.
    pub app_version: String,
    /// The data it was trained on (a path or a name).
    pub source: String,
    /// Every setting (live changes included).
    pub config: DonutConfig,
    /// Trained parameters, in module order.
    pub weights: Vec<Weight>,
    /// Best-F1 figures on the test part, when scored.
    pub metrics: Option<Metrics>,
    /// Every training step.
    pub steps: Vec<StepStats>,
    /// Every validation.
    pub validations: Vec<ValidStats>,
    /// Latent snapshots (thinned).
    pub snapshots: Vec<LatentSnapshot>,
    /// Anomaly score per point of the series (None where not scored).
    pub scores: Vec<Option<f64>>,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Training wall seconds.
    pub train_secs: f64,
    /// Training throughput.
    pub train_windows_per_sec: f64,
    /// Scoring seconds.
    pub score_secs: f64,
}

/// Why a run file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RunFileError {
    /// The file system said no.
    #[error("{path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
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
    #[error("{path}: the contents do not decode: {message}")]
    Decode {
        /// The file.
        path: String,
        /// The decoder's message.
        message: String,
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
pub fn encode(run: &SavedRun) -> Result<Vec<u8>, postcard::Error> {
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
pub fn decode(bytes: &[u8], name: &str) -> Result<SavedRun, RunFileError> {
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
    postcard::from_bytes(payload).map_err(|e| RunFileError::Decode {
        path: name,
        message: e.to_string(),
    })
}

/// Writes a file atomically: a temporary file beside it, synced, then renamed over the target.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        {
            let mut writer = std::io::BufWriter::new(&mut file);
            write(&mut writer)?;
            writer.flush()?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Saves a run to `path`, atomically.
pub fn save(path: &Path, run: &SavedRun) -> Result<(), RunFileError> {
    let io = |message: String| RunFileError::Io {
        path: path.display().to_string(),
        message,
    };
    let bytes = encode(run).map_err(|e| io(e.to_string()))?;
    write_atomically(path, |w| w.write_all(&bytes)).map_err(|e| io(e.to_string()))
}

/// Loads a run from `path`.
pub fn load(path: &Path) -> Result<SavedRun, RunFileError> {
    let bytes = std::fs::read(path).map_err(|e| RunFileError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    })?;
    decode(&bytes, &path.display().to_string())
}

impl SavedRun {
    /// Rebuilds the trained model (inference device of the run's backend).
    pub fn model(&self, name: &str) -> Result<DonutModel, RunFileError> {
        let device = device_for(self.config.backend);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(self.config.seed);
        DonutModel::new(&self.config, &mut rng, &device)
            .with_weights(&self.weights)
            .map_err(|message| RunFileError::Weights {
                path: name.to_string(),
                message,
            })
    }
}
