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

impl LatentSnapshot {
    /// Rounds the means to half precision, as saved runs keep them (a snapshot is for the
    /// eye: 3 significant digits), so that a saved run loads exactly as it was.
    pub fn rounded_to_f16(mut self) -> Self {
        for v in &mut self.means {
            *v = half::f16::from_f32(*v).to_f32();
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
/// means as little-endian f16 bytes (2 bytes a value instead of CBOR's 5 for an f32). Histories
/// saved before (each snapshot with its own `ends` and f32 `means`) read as well.
#[derive(Serialize, Deserialize)]
struct HistoryRepr {
    steps: Vec<StepStats>,
    validations: Vec<ValidStats>,
    snapshots: Vec<SnapshotRepr>,
    /// The window ends shared by the snapshots that do not carry their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot_ends: Option<Arc<Vec<usize>>>,
}

/// A saved snapshot: `means_f16` now, `ends` and `means` in older files.
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
    means_f16: Option<Vec<u8>>,
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
                ends: (Some(&s.ends) != shared.as_ref()).then_some(s.ends),
                means: None,
                means_f16: Some(
                    s.means
                        .iter()
                        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
                        .collect(),
                ),
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
                let means = match (s.means, s.means_f16) {
                    (Some(means), _) => means,
                    (None, Some(bytes)) => bytes
                        .chunks_exact(2)
                        .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32())
                        .collect(),
                    (None, None) => Vec::new(),
                };
                LatentSnapshot {
                    step: s.step,
                    epoch: s.epoch,
                    dim: s.dim,
                    ends: s.ends.unwrap_or_else(|| shared.clone()),
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
