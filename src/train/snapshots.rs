//! Latent snapshots: the latent means of a fixed, evenly spread sample of windows, taken while a
//! run trains (for the 3-D panel and the replay) and after it (for the sweep gallery).

use crate::data::{Part, Prepared};
use crate::model::DonutModel;
use burn::prelude::*;
use burn::tensor::TensorData;

/// Most latent points in a snapshot.
pub const LATENT_MAX_POINTS: usize = 20_000;

/// Evenly spaced window ends over the whole series (every part), at most `max` of them.
pub fn latent_sample_ends(prep: &Prepared, max: usize) -> Vec<usize> {
    let all: Vec<usize> = Part::ALL
        .iter()
        .flat_map(|&p| prep.window_ends(p))
        .collect();
    if all.len() <= max {
        return all;
    }
    (0..max).map(|i| all[i * all.len() / max]).collect()
}

/// Latent means of the windows ending at `ends`, `[ends.len() * K]`.
pub fn latent_means(
    model: &DonutModel,
    prep: &Prepared,
    ends: &[usize],
    device: &Device,
) -> Vec<f32> {
    let w = prep.window;
    let mut out = Vec::with_capacity(ends.len() * model.latent_dim());
    for chunk in ends.chunks(4096) {
        let x: Vec<f32> = chunk
            .iter()
            .flat_map(|&e| prep.window_values(e).iter().copied())
            .collect();
        let x = Tensor::<2>::from_data(TensorData::new(x, [chunk.len(), w]), device); // [n, W]
        let q = model.encode(x); // mean: [n, K]
        out.extend(q.mean.into_data().try_to_vec::<f32>().unwrap_or_default());
    }
    out
}
