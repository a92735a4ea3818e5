//! Latent snapshots: the latent means of a fixed, evenly spread sample of windows, taken while a
//! run trains (for the 3-D panel and the replay) and after it (for the sweep gallery).

use super::fused::uses_fused;
use crate::config::DonutConfig;
use crate::data::{Part, Prepared};
use crate::model::DonutModel;
use crate::model::fused::{ScoringNet, Workspace};
use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

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

/// Windows the fused encoder takes at once (a chunk's activations stay in the core's cache).
const FUSED_WINDOWS_PER_CHUNK: usize = 256;

/// Latent means of the windows ending at `ends` under `model` (trained with `config`),
/// `[ends.len() * K]`: on the fused engine's forward passes, in parallel on the current rayon
/// pool, when `config` trains with that engine; else on burn's modules on `device`. The two give
/// the same means to rounding.
pub fn latent_means(
    model: &DonutModel,
    config: &DonutConfig,
    prep: &Prepared,
    ends: &[usize],
    device: &Device,
) -> Vec<f32> {
    match uses_fused(config)
        .then(|| ScoringNet::new(config, model))
        .flatten()
    {
        Some(net) => latent_means_fused(&net, prep, ends),
        None => latent_means_burn(model, prep, ends, device),
    }
}

/// [`latent_means`] on the fused engine's encoder, chunks of windows in parallel on the current
/// rayon pool.
pub fn latent_means_fused(net: &ScoringNet, prep: &Prepared, ends: &[usize]) -> Vec<f32> {
    let chunks: Vec<Vec<f32>> = ends
        .par_chunks(FUSED_WINDOWS_PER_CHUNK)
        .map_init(
            || (Workspace::default(), Vec::new()),
            |(ws, std), chunk| {
                let x: Vec<f32> = chunk
                    .iter()
                    .flat_map(|&e| prep.window_values(e).iter().copied())
                    .collect(); // [n, W]
                let mut mean = Vec::new(); // [n, K]
                net.encode(&x, chunk.len(), ws, &mut mean, std);
                mean
            },
        )
        .collect();
    chunks.concat()
}

/// [`latent_means`] on burn's modules.
fn latent_means_burn(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EncoderKind, LatentDist};
    use rand::SeedableRng;

    /// The fused encoder gives the latent means burn's modules give, dense and CNN.
    #[test]
    fn fused_latent_means_match_burns() {
        let raw = crate::data::load_sample().expect("the bundled sample");
        for encoder in [EncoderKind::Dense, EncoderKind::Cnn] {
            let config = DonutConfig {
                window: 30,
                latent_dim: 4,
                encoder,
                latent_dist: LatentDist::StudentT,
                ..DonutConfig::default()
            };
            let prep = Prepared::new(&raw, &config).expect("prepared");
            let device = crate::model::device_for(config.backend);
            let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(3);
            let model = DonutModel::new(&config, &mut rng, &device);
            let ends = latent_sample_ends(&prep, 500);
            let net = ScoringNet::new(&config, &model).expect("fits its layout");
            let fused = latent_means_fused(&net, &prep, &ends);
            let burn = latent_means_burn(&model, &prep, &ends, &device);
            assert_eq!(fused.len(), ends.len() * 4);
            assert_eq!(fused.len(), burn.len());
            for (a, b) in fused.iter().zip(&burn) {
                assert!((a - b).abs() < 1e-4, "{encoder:?}: {a} vs {b}");
            }
        }
    }
}
