//! Scoring: the reconstruction probability of each window's last point.
//!
//! For each window (named by its last point): MCMC imputation of the points known to be missing
//! (`mcmc_iterations` rounds of z ~ q(z|x_r), x' ~ p(x|z), x_r = where(missing, x', x_r)), then
//! the mean over `n_z` samples z ~ q(z|x_r) of log N(x_last; mu_x(z), sigma_x(z)), on the original
//! x. The encoder runs once per window for all its samples, and the decoder heads are evaluated
//! for the last column only. Higher is more normal; the anomaly score is its negation.

use crate::config::{DonutConfig, GradientEngine};
use crate::data::{Part, Prepared};
use crate::model::DonutModel;
use crate::model::fused::{ScoringNet, Workspace};
use crate::model::latent::{Latent, gaussian_log_density};
use burn::prelude::*;
use burn::tensor::TensorData;
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use rand_distr::{Distribution, StandardNormal};
use rayon::iter::{IntoParallelRefIterator, ParallelIterator};

/// Rows (window x sample) fed to the decoder at once on a GPU backend.
const GPU_ROWS_PER_CHUNK: usize = 16_384;

/// Rows (window x sample) fed to the decoder at once on a CPU backend.
const ROWS_PER_CHUNK: usize = 2_048;

/// Scoring was stopped on request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("scoring was stopped")]
pub struct Stopped;

/// The points windows are cut from: standardised values and missing flags, the first of them
/// point `offset` of the series (a stream keeps only its last points). A window is named by the
/// series index of its last point, which also seeds its samples.
#[derive(Clone, Copy, Debug)]
pub struct WindowSource<'a> {
    /// Standardised values (0 where missing before standardisation).
    pub values: &'a [f32],
    /// True where a point is missing.
    pub missing: &'a [bool],
    /// Series index of `values[0]`.
    pub offset: usize,
    /// Window length W.
    pub window: usize,
}

impl<'a> WindowSource<'a> {
    /// Every point of a prepared series.
    pub fn of(prep: &'a Prepared) -> Self {
        Self {
            values: &prep.values,
            missing: &prep.missing,
            offset: 0,
            window: prep.window,
        }
    }

    /// The range in `values` of the window ending at series index `end`.
    fn range(&self, end: usize) -> std::ops::RangeInclusive<usize> {
        let last = end - self.offset;
        last + 1 - self.window..=last
    }

    /// Which points of the window ending at `end` MCMC treats as missing: those missing from
    /// the data and, but for the window's last point, those further than `extreme_sigmas`
    /// (0 = no bound) from the training mean, so that one extreme value does not blind the
    /// windows after it. When more than a tenth of the window's points lie beyond the bound,
    /// the series has moved to another level and they are kept as they are: masking a new
    /// level would impute the old one and keep every later window alarmed.
    fn window_missing(&self, end: usize, extreme_sigmas: f64) -> impl Iterator<Item = bool> + '_ {
        let range = self.range(end);
        let last = *range.end();
        let beyond = move |i: usize| {
            extreme_sigmas > 0.0
                && i != last
                && !self.missing[i]
                && self.values[i].abs() as f64 > extreme_sigmas
        };
        let extreme = range.clone().filter(|&i| beyond(i)).count();
        let mask = extreme > 0 && extreme <= (self.window / 10).max(1);
        range.map(move |i| self.missing[i] || (mask && beyond(i)))
    }

    /// The values MCMC starts from for the window ending at `end`: as they are, but an extreme
    /// point taken as missing ([`Self::window_missing`]) starts at the training mean (0), not
    /// at its own value, which would throw the first encoding far off.
    fn window_start(&self, end: usize, extreme_sigmas: f64) -> Vec<f32> {
        let range = self.range(end);
        let values = &self.values[range.clone()];
        range
            .zip(self.window_missing(end, extreme_sigmas))
            .zip(values)
            .map(|((i, taken), &v)| if taken && !self.missing[i] { 0.0 } else { v })
            .collect()
    }
}

/// The anomaly score of a reconstruction log-probability, always a finite number that orders
/// as the probability does: -inf (or NaN, a numerical failure) becomes the largest finite
/// score, +inf the smallest, so that an extreme point is flagged and nothing is silently
/// unflaggable.
pub fn anomaly_score(log_p: f32) -> f64 {
    let score = -(log_p as f64);
    if score.is_nan() {
        f64::MAX
    } else {
        score.clamp(f64::MIN, f64::MAX)
    }
}

/// Reconstruction log-probabilities (higher = more normal) of the windows ending at `ends`.
/// `keep_going` is asked between groups of chunks; returning false stops with [`Stopped`].
///
/// Chunks of windows are scored in parallel (the run's threads on a CPU backend, one on a GPU).
/// Each window draws its samples from generators seeded by the run's seed and the window's last
/// point, so a window's score depends on the model, the seed and the window only: not on the
/// thread count, nor on which other windows are scored with it.
pub fn score_windows(
    model: &DonutModel,
    prep: &Prepared,
    ends: &[usize],
    config: &DonutConfig,
    device: &Device,
    keep_going: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<f32>, Stopped> {
    let threads = crate::threads::for_backend(config);
    let pool = crate::threads::pool(threads);
    let source = WindowSource::of(prep);
    let scorer = Scorer::new(model, config, device);
    score_in_pool(&pool, &scorer, &source, ends, config, keep_going)
}

/// [`score_windows`] over `source` in `pool` (see there).
fn score_in_pool(
    pool: &rayon::ThreadPool,
    scorer: &Scorer<'_>,
    source: &WindowSource<'_>,
    ends: &[usize],
    config: &DonutConfig,
    keep_going: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<f32>, Stopped> {
    let n_z = config.n_z.max(1);
    let threads = pool.current_num_threads().max(1);
    // Small chunks keep the CPU's caches warm; a GPU wants one large launch per chunk.
    let rows = if config.backend.is_gpu() {
        GPU_ROWS_PER_CHUNK
    } else {
        ROWS_PER_CHUNK
    };
    let windows_per_chunk = (rows / n_z).clamp(1, 1024);
    let chunks: Vec<&[usize]> = ends.chunks(windows_per_chunk).collect();
    let mut out = Vec::with_capacity(ends.len());
    // A few chunks per thread between stop checks: small enough to stop within a fraction of a
    // second, large enough to keep every thread busy.
    for group in chunks.chunks(2 * threads) {
        if !keep_going(out.len()) {
            return Err(Stopped);
        }
        let scored: Vec<Vec<f32>> = pool.install(|| {
            group
                .par_iter()
                .map_init(Workspace::default, |ws, chunk| {
                    scorer.score_chunk(source, chunk, config, ws)
                })
                .collect()
        });
        out.extend(scored.into_iter().flatten());
    }
    Ok(out)
}

/// The generator of the window ending at point `end`, one of several independent `stream`s:
/// a window's samples depend on the run's seed and the window alone, not on which other windows
/// are scored with it or on how many threads score them.
fn window_rng(seed: u64, stream: u64, end: usize) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(
        seed ^ stream ^ (end as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

/// `count` samples for each window of `rngs`, one window after another.
fn per_window(
    rngs: &mut [Xoshiro256PlusPlus],
    count: usize,
    draw: impl Fn(&mut Xoshiro256PlusPlus, usize) -> Vec<f32>,
) -> Vec<f32> {
    let mut out = Vec::with_capacity(rngs.len() * count);
    for rng in rngs {
        out.extend(draw(rng, count));
    }
    out
}

/// Reconstruction log-probabilities of the windows of `source` ending at `ends`, on the calling
/// thread (a stream scores a few windows at a time; no pool to start). The same numbers as
/// [`score_windows`] gives for those windows.
pub fn score_windows_here(
    scorer: &Scorer<'_>,
    source: &WindowSource<'_>,
    ends: &[usize],
    config: &DonutConfig,
) -> Vec<f32> {
    let windows_per_chunk = (ROWS_PER_CHUNK / config.n_z.max(1)).clamp(1, 1024);
    let mut ws = Workspace::default();
    ends.chunks(windows_per_chunk)
        .flat_map(|chunk| scorer.score_chunk(source, chunk, config, &mut ws))
        .collect()
}

/// What scoring a chunk of windows starts from: their values and missing flags, and each
/// window's two generators (separate streams, so that imputation never shifts the samples of
/// the score itself).
struct ChunkInputs {
    /// Windows `[n, W]`, as MCMC starts from them.
    x: Vec<f32>,
    /// Each window's last value, `[n]`.
    last: Vec<f32>,
    /// Where MCMC imputes, `[n, W]`.
    missing: Vec<bool>,
    rngs: Vec<Xoshiro256PlusPlus>,
    mcmc_rngs: Vec<Xoshiro256PlusPlus>,
}

impl ChunkInputs {
    fn of(source: &WindowSource<'_>, chunk: &[usize], config: &DonutConfig) -> Self {
        Self {
            x: chunk
                .iter()
                .flat_map(|&e| source.window_start(e, config.extreme_sigmas))
                .collect(),
            last: chunk
                .iter()
                .map(|&e| source.values[e - source.offset])
                .collect(),
            missing: chunk
                .iter()
                .flat_map(|&e| source.window_missing(e, config.extreme_sigmas))
                .collect(),
            rngs: chunk
                .iter()
                .map(|&e| window_rng(config.seed, 0x0005_C09E, e))
                .collect(),
            mcmc_rngs: chunk
                .iter()
                .map(|&e| window_rng(config.seed, 0x3C3C_0001, e))
                .collect(),
        }
    }

    /// True when MCMC has points to impute.
    fn imputes(&self, config: &DonutConfig) -> bool {
        config.mcmc_iterations > 0 && self.missing.contains(&true)
    }
}

/// The network a scoring pass runs: the fused engine's forward passes on flat parameters (a CPU
/// backend with `gradients = fused`, the default), or burn's modules (a GPU, or `gradients =
/// autodiff`). Both give the same scores to rounding (a test holds them together).
pub struct Scorer<'a>(Engine<'a>);

enum Engine<'a> {
    Fused(Box<ScoringNet>),
    Burn(&'a DonutModel, Device),
}

impl<'a> Scorer<'a> {
    /// The scorer of `model` (trained with `config`) on `device`.
    pub fn new(model: &'a DonutModel, config: &DonutConfig, device: &Device) -> Self {
        let fused = config.gradients == GradientEngine::Fused && !config.backend.is_gpu();
        Self(
            match fused.then(|| ScoringNet::new(config, model)).flatten() {
                Some(net) => Engine::Fused(Box::new(net)),
                None => Engine::Burn(model, device.clone()),
            },
        )
    }

    /// True when it runs the fused engine's passes.
    pub fn is_fused(&self) -> bool {
        matches!(self.0, Engine::Fused(_))
    }

    /// Scores one chunk of windows (see the module docs); the fused passes keep their buffers
    /// in `ws` from chunk to chunk.
    fn score_chunk(
        &self,
        source: &WindowSource<'_>,
        chunk: &[usize],
        config: &DonutConfig,
        ws: &mut Workspace,
    ) -> Vec<f32> {
        let inputs = ChunkInputs::of(source, chunk, config);
        match &self.0 {
            Engine::Fused(net) => score_chunk_fused(net, inputs, config, ws),
            Engine::Burn(model, device) => score_chunk_burn(model, inputs, config, device),
        }
    }
}

/// [`Scorer::score_chunk`] on the fused engine's forward passes.
fn score_chunk_fused(
    net: &ScoringNet,
    inputs: ChunkInputs,
    config: &DonutConfig,
    ws: &mut Workspace,
) -> Vec<f32> {
    let (w, k, n_z) = (net.window(), net.latent_dim(), config.n_z.max(1));
    let latent = Latent::of(config);
    let imputes = inputs.imputes(config);
    let ChunkInputs {
        mut x,
        last,
        missing,
        mut rngs,
        mut mcmc_rngs,
    } = inputs;
    let n = last.len();
    let (mut mean, mut std) = (Vec::new(), Vec::new());
    if imputes {
        let (mut x_mean, mut x_std) = (Vec::new(), Vec::new());
        for _ in 0..config.mcmc_iterations {
            net.encode(&x, n, ws, &mut mean, &mut std);
            let eps = per_window(&mut mcmc_rngs, k, |rng, count| {
                latent.sample_noise(rng, count)
            });
            let z: Vec<f32> = (0..n * k).map(|j| mean[j] + std[j] * eps[j]).collect();
            net.decode(&z, n, ws, &mut x_mean, &mut x_std);
            let noise = per_window(&mut mcmc_rngs, w, |rng, count| {
                (0..count).map(|_| StandardNormal.sample(rng)).collect()
            });
            for (j, &taken) in missing.iter().enumerate() {
                if taken {
                    x[j] = x_mean[j] + x_std[j] * noise[j]; // x' ~ p(x|z)
                }
            }
        }
    }
    net.encode(&x, n, ws, &mut mean, &mut std); // [n, K]
    // Window i's samples are rows i * n_z .. (i + 1) * n_z: [n * n_z, K].
    let mut z = per_window(&mut rngs, n_z * k, |rng, count| {
        latent.sample_noise(rng, count)
    });
    for (row, sample) in z.chunks_exact_mut(k).enumerate() {
        let at = (row / n_z) * k;
        for (d, e) in sample.iter_mut().enumerate() {
            *e = mean[at + d] + std[at + d] * *e;
        }
    }
    net.last_log_density(&z, &last, n_z, ws)
}

/// [`Scorer::score_chunk`] on burn's modules.
fn score_chunk_burn(
    model: &DonutModel,
    inputs: ChunkInputs,
    config: &DonutConfig,
    device: &Device,
) -> Vec<f32> {
    let imputes = inputs.imputes(config);
    let ChunkInputs {
        x,
        last,
        missing,
        mut rngs,
        mut mcmc_rngs,
    } = inputs;
    let (w, k, n_z) = (
        x.len() / last.len().max(1),
        model.latent_dim(),
        config.n_z.max(1),
    );
    let latent = model.latent();
    let n = last.len();
    let mut x = Tensor::<2>::from_data(TensorData::new(x, [n, w]), device);

    if imputes {
        let missing: Vec<f32> = missing.iter().map(|&m| m as u8 as f32).collect();
        let missing = Tensor::<2>::from_data(TensorData::new(missing, [n, w]), device);
        let present = missing.clone().neg().add_scalar(1.0);
        for _ in 0..config.mcmc_iterations {
            let q = model.encode(x.clone());
            let eps = per_window(&mut mcmc_rngs, k, |rng, count| {
                latent.sample_noise(rng, count)
            });
            let eps = Tensor::<2>::from_data(TensorData::new(eps, [n, k]), device);
            let z = q.mean + q.std * eps; // [n, K]
            let p = model.decode(z); // [n, W]
            let noise = per_window(&mut mcmc_rngs, w, |rng, count| {
                (0..count).map(|_| StandardNormal.sample(rng)).collect()
            });
            let noise = Tensor::<2>::from_data(TensorData::new(noise, [n, w]), device);
            let sample = p.mean + p.std * noise; // x' ~ p(x|z)
            x = x * present.clone() + sample * missing.clone();
        }
    }

    let q = model.encode(x); // [n, K]
    // Each window's posterior repeated for its n_z samples: [n * n_z, K].
    let mean = q
        .mean
        .unsqueeze_dim::<3>(1)
        .repeat_dim(1, n_z)
        .reshape([n * n_z, k]);
    let std = q
        .std
        .unsqueeze_dim::<3>(1)
        .repeat_dim(1, n_z)
        .reshape([n * n_z, k]);
    // Window i's samples are rows i * n_z .. (i + 1) * n_z.
    let eps = per_window(&mut rngs, n_z * k, |rng, count| {
        latent.sample_noise(rng, count)
    });
    let eps = Tensor::<2>::from_data(TensorData::new(eps, [n * n_z, k]), device);
    let p = model.decode_last(mean + std * eps); // [n * n_z, 1]
    let last = Tensor::<2>::from_data(TensorData::new(last, [n, 1]), device)
        .unsqueeze_dim::<3>(1)
        .repeat_dim(1, n_z)
        .reshape([n * n_z, 1]);
    let log_p = gaussian_log_density(last, p.mean, p.std)
        .reshape([n, n_z])
        .mean_dim(1); // [n, 1]
    log_p
        .into_data()
        .try_to_vec::<f32>()
        .unwrap_or_else(|_| vec![f32::NAN; n])
}

/// Anomaly scores (negated log-probabilities) for every point of the series: `Some` at the end
/// point of each window in `ends`, `None` elsewhere. `keep_going` hears (windows scored, windows
/// in all) between groups of chunks, as [`score_windows`] asks it.
pub fn score_series(
    model: &DonutModel,
    prep: &Prepared,
    ends: &[usize],
    config: &DonutConfig,
    device: &Device,
    keep_going: &mut dyn FnMut(usize, usize) -> bool,
) -> Result<Vec<Option<f64>>, Stopped> {
    let total = ends.len();
    let log_p = score_windows(model, prep, ends, config, device, &mut |done| {
        keep_going(done, total)
    })?;
    let mut scores = vec![None; prep.len()];
    for (&end, lp) in ends.iter().zip(log_p) {
        scores[end] = Some(anomaly_score(lp));
    }
    Ok(scores)
}

/// Scores `ends` (ascending) of `prep` as a detector running in time order does with
/// `mask_flagged`: a point flagged at `threshold` is taken as missing in the windows after it
/// (MCMC imputes it there), so its alarm does not trail it. `scores` holds the scores without
/// that masking (as [`score_series`] gives them); a window is scored again only when a flag
/// fell inside it, and only once it is reached, after every flag before it: every window's
/// score is the one a stream (`detect --follow`) gives it. Windows are rescored in chunks that
/// grow while no flag interrupts them (one at a time in a run of flags, up to
/// [`MAX_RESCORE_CHUNK`] in parallel between them), so the cost is about one more pass over
/// the windows after flags, however many there are.
pub fn rescore_masking_flags(
    model: &DonutModel,
    prep: &Prepared,
    ends: &[usize],
    config: &DonutConfig,
    device: &Device,
    threshold: f64,
    scores: &mut [Option<f64>],
) {
    let w = prep.window;
    let mut masked = prep.missing.clone();
    // stale[k]: a flag fell inside window k after its score was computed.
    let mut stale = vec![false; ends.len()];
    let pool = crate::threads::pool(crate::threads::for_backend(config));
    let scorer = Scorer::new(model, config, device);
    let mut chunk = 1usize;
    let mut i = 0;
    while i < ends.len() {
        if stale[i] {
            // The next stale windows, scored with the mask as it is now; a flag among them
            // makes those after it stale again.
            let batch: Vec<usize> = (i..ends.len())
                .take(chunk)
                .take_while(|&k| stale[k])
                .collect();
            let picked: Vec<usize> = batch.iter().map(|&k| ends[k]).collect();
            let source = WindowSource {
                values: &prep.values,
                missing: &masked,
                offset: 0,
                window: w,
            };
            let log_p = score_in_pool(&pool, &scorer, &source, &picked, config, &mut |_| true)
                .unwrap_or_default();
            for (&k, lp) in batch.iter().zip(log_p) {
                scores[ends[k]] = Some(anomaly_score(lp));
                stale[k] = false;
            }
            chunk = (chunk * 2).min(MAX_RESCORE_CHUNK);
        }
        let end = ends[i];
        if !prep.missing[end] && scores[end].is_some_and(|s| s >= threshold) {
            masked[end] = true;
            for (k, is_stale) in stale.iter_mut().enumerate().skip(i + 1) {
                if ends[k] >= end + w {
                    break;
                }
                *is_stale = true;
            }
            chunk = 1;
        }
        i += 1;
    }
}

/// The most windows rescored at once by [`rescore_masking_flags`].
pub const MAX_RESCORE_CHUNK: usize = 256;

/// Anomaly scores (negated log-probabilities) for every point of `part`: `None` for the first
/// W-1 points of the part, which end no window.
pub fn score_part(
    model: &DonutModel,
    prep: &Prepared,
    part: Part,
    config: &DonutConfig,
    device: &Device,
    keep_going: &mut dyn FnMut(usize) -> bool,
) -> Result<Vec<Option<f64>>, Stopped> {
    let range = prep.part(part);
    let ends: Vec<usize> = prep.window_ends(part).collect();
    let log_p = score_windows(model, prep, &ends, config, device, keep_going)?;
    let mut scores = vec![None; range.len()];
    for (&end, lp) in ends.iter().zip(log_p) {
        scores[end - range.start] = Some(anomaly_score(lp));
    }
    Ok(scores)
}

/// Why a window scored as it did: the window, what MCMC imputed for its missing points, and the
/// decoder's reconstruction of every point over the same z samples as its score.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowReconstruction {
    /// Series index of the window's last point.
    pub end: usize,
    /// The standardised input (missing points hold their filled value).
    pub input: Vec<f32>,
    /// True where a point is missing.
    pub missing: Vec<bool>,
    /// The window after each MCMC iteration (empty without missing points or with MCMC off).
    pub imputed: Vec<Vec<f32>>,
    /// Per point, the mean over the z samples of the decoder's mean.
    pub mean: Vec<f32>,
    /// Per point, the spread of the reconstruction over the z samples: sqrt(E[sigma^2] +
    /// Var[mu]), the standard deviation of the mixture the samples make.
    pub std: Vec<f32>,
    /// Per point, the mean over the z samples of log N(x; mu, sigma) of the point as given.
    pub log_likelihood: Vec<f32>,
    /// The anomaly score of the window (-log p of its last point): the run's score for it.
    pub score: f64,
}

/// Reconstructs the window of `source` ending at `end` with the run's `config` (its n_z and
/// MCMC iterations), drawing the same samples as [`score_windows`] does for it, so that its
/// last point's log-likelihood is that window's score.
pub fn reconstruct(
    model: &DonutModel,
    source: &WindowSource<'_>,
    end: usize,
    config: &DonutConfig,
    device: &Device,
) -> WindowReconstruction {
    let w = source.window;
    let k = model.latent_dim();
    let n_z = config.n_z.max(1);
    let latent = model.latent();
    let mut rng = window_rng(config.seed, 0x0005_C09E, end);
    let mut mcmc_rng = window_rng(config.seed, 0x3C3C_0001, end);
    let input: Vec<f32> = source.values[source.range(end)].to_vec();
    let missing: Vec<bool> = source.window_missing(end, config.extreme_sigmas).collect();
    let mut x = Tensor::<2>::from_data(
        TensorData::new(source.window_start(end, config.extreme_sigmas), [1, w]),
        device,
    );
    let mut imputed = Vec::new();
    if missing.iter().any(|&m| m) && config.mcmc_iterations > 0 {
        let mask: Vec<f32> = missing.iter().map(|&m| m as u8 as f32).collect();
        let missing_t = Tensor::<2>::from_data(TensorData::new(mask, [1, w]), device);
        let present = missing_t.clone().neg().add_scalar(1.0);
        for _ in 0..config.mcmc_iterations {
            let q = model.encode(x.clone());
            let eps = latent.sample_noise(&mut mcmc_rng, k);
            let eps = Tensor::<2>::from_data(TensorData::new(eps, [1, k]), device);
            let p = model.decode(q.mean + q.std * eps);
            let noise: Vec<f32> = (0..w)
                .map(|_| StandardNormal.sample(&mut mcmc_rng))
                .collect();
            let noise = Tensor::<2>::from_data(TensorData::new(noise, [1, w]), device);
            x = x * present.clone() + (p.mean + p.std * noise) * missing_t.clone();
            imputed.push(
                x.clone()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap_or_default(),
            );
        }
    }
    let q = model.encode(x);
    let mean = q.mean.repeat_dim(0, n_z); // [n_z, K]
    let std = q.std.repeat_dim(0, n_z);
    let eps = latent.sample_noise(&mut rng, n_z * k);
    let eps = Tensor::<2>::from_data(TensorData::new(eps, [n_z, k]), device);
    let p = model.decode(mean + std * eps); // [n_z, W]
    let x_in =
        Tensor::<2>::from_data(TensorData::new(input.clone(), [1, w]), device).repeat_dim(0, n_z);
    let log_p = gaussian_log_density(x_in, p.mean.clone(), p.std.clone()).mean_dim(0); // [1, W]
    let mu_mean = p.mean.clone().mean_dim(0); // [1, W]
    let second = (p.std.square() + p.mean.square()).mean_dim(0); // E[sigma^2 + mu^2]
    let spread = (second - mu_mean.clone().square()).clamp_min(0.0).sqrt();
    let host = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap_or_default();
    let log_likelihood = host(log_p);
    let score = anomaly_score(log_likelihood.last().copied().unwrap_or(f32::NAN));
    WindowReconstruction {
        end,
        input,
        missing,
        imputed,
        mean: host(mu_mean),
        std: host(spread),
        log_likelihood,
        score,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{EncoderKind, LatentDist};
    use crate::model::device_for;

    /// The fused passes and burn's modules score every window alike, with and without missing
    /// points to impute, for each encoder and latent family.
    #[test]
    fn the_fused_passes_score_as_burns_modules_do() {
        let mut raw = crate::data::load_sample().unwrap();
        for i in (0..raw.values.len()).step_by(37) {
            raw.values[i] = f64::NAN;
        }
        for (encoder, latent_dist) in [
            (EncoderKind::Dense, LatentDist::Gaussian),
            (EncoderKind::Cnn, LatentDist::StudentT),
        ] {
            let config = DonutConfig {
                encoder,
                latent_dist,
                window: 40,
                n_z: 24,
                mcmc_iterations: 3,
                ..Default::default()
            };
            let prep = Prepared::new(&raw, &config).unwrap();
            let device = device_for(config.backend);
            let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
            let model = DonutModel::new(&config, &mut rng, &device);
            let ends: Vec<usize> = prep.window_ends(Part::Test).take(300).collect();
            assert!(
                ends.iter()
                    .any(|&e| prep.missing[e + 1 - config.window..=e].contains(&true)),
                "some windows have points to impute"
            );
            let burn_config = DonutConfig {
                gradients: GradientEngine::Autodiff,
                ..config.clone()
            };
            let source = WindowSource::of(&prep);
            let fused = Scorer::new(&model, &config, &device);
            let burn = Scorer::new(&model, &burn_config, &device);
            assert!(fused.is_fused() && !burn.is_fused());
            let a = score_windows_here(&fused, &source, &ends, &config);
            let b = score_windows_here(&burn, &source, &ends, &burn_config);
            assert_eq!(a.len(), ends.len());
            for ((end, a), b) in ends.iter().zip(&a).zip(&b) {
                assert!(
                    (a - b).abs() <= 1e-4 * b.abs().max(1.0),
                    "{encoder:?} / {latent_dist:?}, window {end}: fused {a}, burn {b}"
                );
            }
            let spread = a.iter().fold(f32::INFINITY, |m, &x| m.min(x))
                - a.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x));
            assert!(spread.abs() > 1e-3, "the scores vary: {spread}");
        }
    }
}
