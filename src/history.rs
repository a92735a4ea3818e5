//! What a run leaves behind as plain data: loss terms, step and validation statistics, latent
//! snapshots, and the history that holds them.
//!
//! No tensors here: the training loop produces these, the worker sends them to the UI, run files
//! keep them, and the panels draw them.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most snapshots kept for replay; older ones are thinned evenly beyond this.
pub const MAX_KEPT_SNAPSHOTS: usize = 128;

/// The terms of the objective as numbers (means over a batch or a part).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossTerms {
    /// The loss minimised.
    pub total: f64,
    /// Reconstruction term (higher is better).
    pub recon: f64,
    /// beta * log p(z) (higher is better).
    pub prior: f64,
    /// -lambda * log q(z|x) (higher is better).
    pub entropy: f64,
    /// L2 penalty.
    pub l2: f64,
}

impl LossTerms {
    /// True when every term is a finite number.
    pub fn is_finite(&self) -> bool {
        [self.total, self.recon, self.prior, self.entropy, self.l2]
            .iter()
            .all(|v| v.is_finite())
    }

    /// Adds `other` weighted by `weight` to every term.
    pub fn add_weighted(&mut self, other: &LossTerms, weight: f64) {
        self.total += other.total * weight;
        self.recon += other.recon * weight;
        self.prior += other.prior * weight;
        self.entropy += other.entropy * weight;
        self.l2 += other.l2 * weight;
    }

    /// Every term divided by `n`.
    pub fn divided_by(&self, n: f64) -> LossTerms {
        LossTerms {
            total: self.total / n,
            recon: self.recon / n,
            prior: self.prior / n,
            entropy: self.entropy / n,
            l2: self.l2 / n,
        }
    }
}

/// Statistics of one optimisation step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    /// 1-based step.
    pub step: usize,
    /// 0-based epoch.
    pub epoch: usize,
    /// The loss terms of this batch.
    pub terms: LossTerms,
    /// Learning rate used (after decay).
    pub learning_rate: f64,
    /// Training throughput over the last steps.
    pub windows_per_sec: f64,
    /// Seconds since training began.
    pub elapsed_secs: f64,
}

/// The validation loss at a step.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ValidStats {
    /// Step after which it was measured.
    pub step: usize,
    /// Mean loss terms over all validation windows.
    pub terms: LossTerms,
    /// Whether this is the best so far (its parameters are kept).
    pub best: bool,
}

/// Latent means of a fixed sample of windows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentSnapshot {
    /// Step at which it was taken (0 = before training).
    pub step: usize,
    /// Epoch at which it was taken.
    pub epoch: usize,
    /// Latent dimension K.
    pub dim: usize,
    /// Window ends (point indices), shared by every snapshot of a run.
    pub ends: Arc<Vec<usize>>,
    /// Means, `[ends.len() * dim]`, row-major.
    pub means: Vec<f32>,
}

/// The step latent means are kept at: a 256th of a unit, a third of a pixel of the 3-D view
/// at its default zoom (about 6 units across 500 pixels), and exact in an f32 up to 2^15.
/// Saved runs store the means as integers of this step.
pub const LATENT_STEP: f32 = 1.0 / 256.0;

impl LatentSnapshot {
    /// Rounds the means to multiples of [`LATENT_STEP`], as saved runs keep them, so that a
    /// saved run loads exactly as it was.
    pub fn rounded(mut self) -> Self {
        for v in &mut self.means {
            *v = (*v / LATENT_STEP).round() * LATENT_STEP;
        }
        self
    }
}

/// A run's history: every step, every validation, and its latent snapshots (thinned to at most
/// [`MAX_KEPT_SNAPSHOTS`], the newest always kept). Saved compactly (see [`HistoryRepr`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "HistoryRepr", into = "HistoryRepr")]
pub struct History {
    /// Every training step.
    pub steps: Vec<StepStats>,
    /// Every validation.
    pub validations: Vec<ValidStats>,
    /// Latent snapshots, oldest first.
    pub snapshots: Vec<LatentSnapshot>,
}

impl History {
    /// Keeps a snapshot (thinning older ones past the cap); true when the thinning moved indices.
    pub fn push_snapshot(&mut self, snapshot: LatentSnapshot) -> bool {
        let before = self.snapshots.len();
        push_thinned(&mut self.snapshots, snapshot, MAX_KEPT_SNAPSHOTS);
        self.snapshots.len() < before + 1
    }

    /// The steps and validations without the snapshots (their bulk).
    pub fn without_snapshots(&self) -> History {
        History {
            steps: self.steps.clone(),
            validations: self.validations.clone(),
            snapshots: Vec::new(),
        }
    }

    /// The newest latent snapshot.
    pub fn latest_snapshot(&self) -> Option<&LatentSnapshot> {
        self.snapshots.last()
    }

    /// The validation whose parameters were kept (the last one marked best).
    pub fn best_validation(&self) -> Option<&ValidStats> {
        self.validations.iter().rev().find(|v| v.best)
    }
}

/// How a [`History`] is saved: the window ends once for all snapshots, and each snapshot's
/// means as integers of [`LATENT_STEP`], coordinate by coordinate, each the difference from the
/// window before (neighbouring windows overlap in all but one point, so their means are close),
/// zigzag varints, deflated (flate2). Histories saved before (each snapshot with its own `ends`
/// and f32 `means`) read as well.
#[derive(Serialize, Deserialize)]
struct HistoryRepr {
    steps: Vec<StepStats>,
    validations: Vec<ValidStats>,
    snapshots: Vec<SnapshotRepr>,
    /// The window ends shared by the snapshots that do not carry their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot_ends: Option<Arc<Vec<usize>>>,
}

/// A saved snapshot: `means_packed` now, `ends` and `means` in older files.
#[derive(Serialize, Deserialize)]
struct SnapshotRepr {
    step: usize,
    epoch: usize,
    dim: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ends: Option<Arc<Vec<usize>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    means: Option<Vec<f32>>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    means_packed: Option<Vec<u8>>,
}

/// Packs `[n * dim]` row-major means (see [`HistoryRepr`]).
fn pack_means(means: &[f32], dim: usize) -> Vec<u8> {
    use std::io::Write;
    let dim = dim.max(1);
    let rows = means.len() / dim;
    let mut varints = Vec::with_capacity(means.len() * 2);
    for d in 0..dim {
        let mut previous = 0i64;
        for r in 0..rows {
            let q = (means[r * dim + d] / LATENT_STEP).round() as i64;
            let delta = q - previous;
            previous = q;
            let mut zigzag = ((delta << 1) ^ (delta >> 63)) as u64;
            loop {
                let byte = (zigzag & 0x7f) as u8;
                zigzag >>= 7;
                if zigzag == 0 {
                    varints.push(byte);
                    break;
                }
                varints.push(byte | 0x80);
            }
        }
    }
    let mut encoder =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(&varints);
    encoder.finish().unwrap_or_default()
}

/// Unpacks what [`pack_means`] wrote for `rows` windows of `dim` coordinates; None when the
/// bytes do not hold that many.
fn unpack_means(packed: &[u8], rows: usize, dim: usize) -> Option<Vec<f32>> {
    use std::io::Read;
    let mut varints = Vec::new();
    flate2::read::DeflateDecoder::new(packed)
        .read_to_end(&mut varints)
        .ok()?;
    let dim = dim.max(1);
    let mut means = vec![0f32; rows * dim];
    let mut bytes = varints.iter();
    for d in 0..dim {
        let mut previous = 0i64;
        for r in 0..rows {
            let (mut value, mut shift) = (0u64, 0);
            loop {
                let byte = *bytes.next()?;
                value |= ((byte & 0x7f) as u64) << shift;
                shift += 7;
                if byte & 0x80 == 0 {
                    break;
                }
            }
            let delta = (value >> 1) as i64 ^ -((value & 1) as i64);
            previous += delta;
            means[r * dim + d] = previous as f32 * LATENT_STEP;
        }
    }
    Some(means)
}

impl From<History> for HistoryRepr {
    fn from(h: History) -> Self {
        let shared = h.snapshots.first().map(|s| s.ends.clone());
        let snapshots = h
            .snapshots
            .into_iter()
            .map(|s| SnapshotRepr {
                step: s.step,
                epoch: s.epoch,
                dim: s.dim,
                means_packed: Some(pack_means(&s.means, s.dim)),
                ends: (Some(&s.ends) != shared.as_ref()).then_some(s.ends),
                means: None,
            })
            .collect();
        HistoryRepr {
            steps: h.steps,
            validations: h.validations,
            snapshots,
            snapshot_ends: shared,
        }
    }
}

impl From<HistoryRepr> for History {
    fn from(r: HistoryRepr) -> Self {
        let shared = r.snapshot_ends.unwrap_or_default();
        let snapshots = r
            .snapshots
            .into_iter()
            .map(|s| {
                let ends = s.ends.unwrap_or_else(|| shared.clone());
                let means = match (s.means, s.means_packed) {
                    (Some(means), _) => means,
                    (None, Some(packed)) => {
                        unpack_means(&packed, ends.len(), s.dim).unwrap_or_default()
                    }
                    (None, None) => Vec::new(),
                };
                LatentSnapshot {
                    step: s.step,
                    epoch: s.epoch,
                    dim: s.dim,
                    ends,
                    means,
                }
            })
            .collect();
        History {
            steps: r.steps,
            validations: r.validations,
            snapshots,
        }
    }
}

/// Statistics of a finished training loop.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainStats {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Wall seconds of the whole loop (steps, validations, snapshots).
    pub train_secs: f64,
    /// Windows per second over the optimisation steps alone.
    pub train_windows_per_sec: f64,
    /// True when stopped on request before the last epoch.
    pub stopped: bool,
    /// The step at which training stopped because the validation loss had not improved for
    /// `patience` validations (None: it ran every epoch, or was stopped on request).
    #[serde(default)]
    pub stopped_early: Option<usize>,
    /// Seconds from the start of training to the first preview scores of the test part (None:
    /// no preview was taken).
    #[serde(default)]
    pub first_detections_secs: Option<f64>,
}

/// Appends `item`; past `cap` items, drops every other older one so the history stays evenly spread
/// and bounded in memory (the newest is always kept).
pub fn push_thinned<T>(history: &mut Vec<T>, item: T, cap: usize) {
    history.push(item);
    if history.len() > cap.max(2) {
        let last = history.len() - 1;
        let mut i = 0;
        history.retain(|_| {
            let keep = i % 2 == 0 || i == last;
            i += 1;
            keep
        });
    }
}

#[cfg(test)]
mod tests {
    use super::push_thinned;

    #[test]
    fn thinning_keeps_the_history_bounded_spread_and_newest() {
        let mut h = Vec::new();
        for i in 0..1000 {
            push_thinned(&mut h, i, 16);
            assert!(h.len() <= 16);
            assert_eq!(h.last(), Some(&i));
        }
        assert_eq!(h[0], 0);
        assert!(h.windows(2).all(|w| w[0] < w[1]));
        assert!(h.len() >= 8);
    }
}
