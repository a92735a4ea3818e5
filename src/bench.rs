//! `donut-explorer bench`: throughput of the engine and the latent painter on this machine.
//!
//! Each figure is the median of several timed repetitions after a warm-up, on synthetic data of the
//! stated size (a seasonal series from the sample generator's recipe), so no file is needed.

use crate::config::{BackendKind, DonutConfig, EncoderKind};
use crate::data::{Part, Prepared, RawSeries};
use crate::eval::{Adjust, best_f1};
use crate::model::loss::m_elbo;
use crate::model::{DonutModel, device_for};
use crate::score::score_windows;
use crate::train::batch::host_batch;
use burn::optim::{AdamConfig, GradientsParams};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::time::Instant;

/// One line of the table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchRow {
    /// What was measured.
    pub name: String,
    /// The figure.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A synthetic seasonal series of `n` points at 5-minute steps, with 1 % labelled spikes.
pub fn synthetic(n: usize) -> RawSeries {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(7);
    let mut values = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let phase = (i % 288) as f64 / 288.0;
        let spike = rng.random_bool(0.01);
        values.push(
            (std::f64::consts::TAU * phase).sin() * 5.0
                + rng.random_range(-0.5..0.5)
                + if spike { 8.0 } else { 0.0 },
        );
        labels.push(spike as u8);
    }
    RawSeries {
        source: format!("synthetic ({n} points)"),
        timestamps: (0..n as i64).map(|i| 1_500_000_000 + 300 * i).collect(),
        values,
        labels,
        interval: 300,
        has_timestamps: true,
        has_labels: true,
    }
}

/// Training windows per second: `steps` optimisation steps (after 5 warm-up steps), batch 256.
pub fn train_throughput(prep: &Prepared, config: &DonutConfig, steps: usize) -> f64 {
    let device = device_for(config.backend).autodiff();
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let mut model = DonutModel::new(config, &mut rng, &device);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let ends: Vec<usize> = prep
        .window_ends(Part::Train)
        .take(config.batch_size)
        .collect();
    let live = config.live();
    let mut run = |n: usize, model: DonutModel| -> (DonutModel, f64) {
        let start = Instant::now();
        let mut model = model;
        for _ in 0..n {
            let host = host_batch(prep, &ends, &[], &live);
            let noise = model
                .latent()
                .sample_noise(&mut rng, ends.len() * config.latent_dim);
            let loss = m_elbo(
                &model,
                host.upload(noise, config.latent_dim, config.window, &device),
                config.l2_weight,
            );
            let _ = loss.to_terms();
            let grads = GradientsParams::from_grads(loss.total.backward(), &model);
            model = optim.step(config.learning_rate, model, grads);
        }
        (model, start.elapsed().as_secs_f64())
    };
    let (m, _) = run(5, model);
    model = m;
    let mut rates = Vec::new();
    for _ in 0..3 {
        let (m, secs) = run(steps, model);
        model = m;
        rates.push((steps * ends.len()) as f64 / secs);
    }
    median(rates)
}

/// Scoring windows per second on `windows` test windows.
pub fn score_throughput(prep: &Prepared, config: &DonutConfig, windows: usize) -> f64 {
    let device = device_for(config.backend);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let model = DonutModel::new(config, &mut rng, &device);
    let ends: Vec<usize> = prep.window_ends(Part::Test).take(windows).collect();
    let _ = score_windows(
        &model,
        prep,
        &ends[..ends.len().min(32)],
        config,
        &device,
        &mut |_| true,
    );
    let rates: Vec<f64> = (0..3)
        .map(|_| {
            let start = Instant::now();
            let _ = score_windows(&model, prep, &ends, config, &device, &mut |_| true);
            ends.len() as f64 / start.elapsed().as_secs_f64()
        })
        .collect();
    median(rates)
}

/// Runs every benchmark; `quick` shortens each.
pub fn run_all(quick: bool, progress: &mut dyn FnMut(&BenchRow)) -> Vec<BenchRow> {
    let mut rows = Vec::new();
    let mut push = |name: String, value: f64, unit: &'static str| {
        let row = BenchRow { name, value, unit };
        progress(&row);
        rows.push(row);
    };
    let raw = synthetic(17_568);
    let base = DonutConfig {
        latent_dim: 3,
        batch_size: 256,
        ..Default::default()
    };
    let prep = match Prepared::new(&raw, &base) {
        Ok(p) => p,
        Err(_) => return rows,
    };
    let steps = if quick { 10 } else { 60 };
    for backend in BackendKind::ALL {
        for encoder in [EncoderKind::Dense, EncoderKind::Cnn] {
            let config = DonutConfig {
                backend: *backend,
                encoder,
                ..base.clone()
            };
            let steps = if encoder == EncoderKind::Cnn && *backend == BackendKind::Ndarray {
                steps / 5
            } else {
                steps
            };
            let rate = train_throughput(&prep, &config, steps.max(2));
            push(
                format!(
                    "train {:?} encoder, {} (batch 256, W 120, K 3)",
                    encoder,
                    backend.name()
                ),
                rate,
                "windows/s",
            );
        }
    }
    let windows = if quick { 256 } else { 2048 };
    for (n_z, mcmc) in [(1, 0), (100, 0), (1024, 0), (1024, 10)] {
        let config = DonutConfig {
            n_z,
            mcmc_iterations: mcmc,
            ..base.clone()
        };
        // MCMC only runs on windows with missing points: give every window some.
        let prep_mcmc;
        let p = if mcmc > 0 {
            let mut with_gaps = raw.clone();
            for i in (0..with_gaps.values.len()).step_by(97) {
                with_gaps.values[i] = f64::NAN;
            }
            prep_mcmc = Prepared::new(&with_gaps, &config).ok();
            prep_mcmc.as_ref().unwrap_or(&prep)
        } else {
            &prep
        };
        let rate = score_throughput(p, &config, windows);
        push(
            format!("score n_z {n_z}, MCMC {mcmc} (flex)"),
            rate,
            "windows/s",
        );
    }

    // The metric on 1,000,000 points.
    let n = 1_000_000;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
    let scores: Vec<Option<f64>> = (0..n).map(|_| Some(rng.random::<f64>())).collect();
    let labels: Vec<u8> = (0..n).map(|i| ((i / 50) % 40 == 0) as u8).collect();
    let missing = vec![false; n];
    let secs = median(
        (0..3)
            .map(|_| {
                let start = Instant::now();
                let _ = best_f1(&scores, &labels, &missing, Adjust::Segment);
                start.elapsed().as_secs_f64()
            })
            .collect(),
    );
    push(
        "best F1 (point-adjusted) on 1,000,000 points".into(),
        secs * 1000.0,
        "ms",
    );

    // CSV loading of 1,000,000 rows.
    let big = synthetic(1_000_000);
    let mut text = String::from("timestamp,value,label\n");
    for i in 0..big.values.len() {
        use std::fmt::Write;
        let _ = writeln!(
            text,
            "{},{:.5},{}",
            big.timestamps[i], big.values[i], big.labels[i]
        );
    }
    let secs = median(
        (0..3)
            .map(|_| {
                let start = Instant::now();
                let _ = crate::data::parse_csv(text.as_bytes(), "bench.csv");
                start.elapsed().as_secs_f64()
            })
            .collect(),
    );
    push("load CSV of 1,000,000 rows".into(), secs * 1000.0, "ms");

    // Painting latent points: layout + tessellation of one frame of the 3-D panel.
    for points in [10_000usize, 100_000] {
        push(
            format!("paint {points} latent points (one frame, CPU)"),
            paint_ms(points),
            "ms",
        );
    }
    rows
}

/// CPU milliseconds of one frame that draws the 3-D scatter with `n` points (egui pass and
/// tessellation; the GPU upload is not included).
pub fn paint_ms(n: usize) -> f64 {
    use crate::ui::latent3d::{Camera, Cloud, cyclic, scatter_ui};
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(5);
    let points: Vec<[f32; 3]> = (0..n)
        .map(|_| {
            [
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
                rng.random_range(-1.0..1.0),
            ]
        })
        .collect();
    let colors: Vec<egui::Color32> = (0..n).map(|i| cyclic(i as f32 / n as f32)).collect();
    let ctx = egui::Context::default();
    let mut camera = Camera::default();
    let mut frame = || {
        let input = egui::RawInput {
            screen_rect: Some(egui::Rect::from_min_size(
                egui::Pos2::ZERO,
                egui::vec2(800.0, 600.0),
            )),
            ..Default::default()
        };
        let start = Instant::now();
        let output = ctx.run_ui(input, |ui| {
            let cloud = Cloud {
                points: &points,
                colors: &colors,
                axis_names: ["x".into(), "y".into(), "z".into()],
                highlight: None,
            };
            scatter_ui(ui, &mut camera, &cloud, egui::vec2(780.0, 580.0), 3.0);
        });
        let _ = ctx.tessellate(output.shapes, output.pixels_per_point);
        start.elapsed().as_secs_f64() * 1000.0
    };
    frame();
    median((0..7).map(|_| frame()).collect())
}
