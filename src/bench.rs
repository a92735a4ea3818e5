//! `donut-explorer bench`: throughput of the engine and the latent painter on this machine.
//!
//! Each figure is the median of several timed repetitions after a warm-up, on synthetic data of the
//! stated size (a seasonal series from the sample generator's recipe), so no file is needed.

use crate::config::{BackendKind, DonutConfig, EncoderKind, GradientEngine};
use crate::data::{Part, Prepared};
use crate::eval::{Adjust, best_f1};
use crate::model::Latent;
use crate::model::{DonutModel, device_for};
use crate::pipeline::stream::Stream;
use crate::score::score_windows;
use crate::train::batch::host_batch;
use crate::train::learner::Learner;
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

/// Training windows per second, batch 256, with the training loop's own step on
/// `crate::threads::requested(config)` threads: the median of 3 repetitions of as many steps as take about
/// `secs_per_repetition` (at least 10), after 5 warm-up steps.
pub fn train_throughput(prep: &Prepared, config: &DonutConfig, secs_per_repetition: f64) -> f64 {
    let device = device_for(config.backend);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0);
    let ends: Vec<usize> = prep
        .window_ends(Part::Train)
        .take(config.batch_size)
        .collect();
    let live = config.live();
    let threads = crate::threads::requested(config);
    let shards = crate::threads::shard_count(threads, ends.len());
    let pool = crate::threads::pool(threads);
    let mut learner = Learner::new(config, &mut rng, &device, shards);
    let latent = Latent::of(config);
    pool.install(|| {
        let mut run = |n: usize| -> f64 {
            let start = Instant::now();
            for _ in 0..n {
                let host = host_batch(prep, &ends, &[], &live);
                let noise = latent.sample_noise(&mut rng, ends.len() * config.latent_dim);
                let _terms = learner.gradient(&pool, host, noise);
                learner.apply(&pool, config.learning_rate);
            }
            start.elapsed().as_secs_f64()
        };
        let warm_up_secs = run(5);
        let steps = ((secs_per_repetition / (warm_up_secs / 5.0)) as usize).max(10);
        let rates: Vec<f64> = (0..3)
            .map(|_| (steps * ends.len()) as f64 / run(steps))
            .collect();
        median(rates)
    })
}

/// Seconds from a Stop command to the end of each phase of a worker run on `prep`: (training,
/// validation, scoring). Training: Stop after the first steps, until scoring starts. Validation:
/// every step validates (so the run is almost always validating), Stop after the first
/// validation, until scoring starts. Scoring: Stop after scoring has begun, until the worker is
/// idle.
pub fn stop_latency_secs(prep: &std::sync::Arc<Prepared>, config: &DonutConfig) -> [f64; 3] {
    use crate::history::ValidStats;
    use crate::train::TrainEvent;
    use crate::worker::{Command, Phase, Worker, WorkerEvent};
    use std::time::Duration;
    // When `done` holds for an event; None if the run failed, ended, or took 10 minutes first.
    let wait_for =
        |worker: &Worker, done: &mut dyn FnMut(&WorkerEvent) -> bool| -> Option<Instant> {
            let deadline = Instant::now() + Duration::from_secs(600);
            while Instant::now() < deadline {
                for e in worker.drain(Duration::from_millis(50)) {
                    if done(&e) {
                        return Some(Instant::now());
                    }
                    if matches!(e, WorkerEvent::Failed(_) | WorkerEvent::Phase(Phase::Idle)) {
                        return None;
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            None
        };
    let run = |config: DonutConfig,
               stop_when: &mut dyn FnMut(&WorkerEvent) -> bool,
               ended: &mut dyn FnMut(&WorkerEvent) -> bool|
     -> f64 {
        // Every core, as before the worker resolved automatic counts for the app.
        let config = crate::threads::resolved(&config, crate::threads::Host::Cli, 1);
        let Ok(mut worker) = Worker::spawn(prep.clone(), config, Box::new(|| {}), 1_000_000) else {
            return f64::NAN;
        };
        let mut secs = f64::NAN;
        if wait_for(&worker, stop_when).is_some() {
            let sent = Instant::now();
            worker.send(Command::Stop);
            if let Some(at) = wait_for(&worker, ended) {
                secs = (at - sent).as_secs_f64();
            }
        }
        worker.shutdown(Duration::from_secs(30));
        secs
    };
    let scoring_starts = |e: &WorkerEvent| matches!(e, WorkerEvent::Phase(Phase::Scoring));
    let mut steps_seen = 0;
    let training = run(
        DonutConfig {
            epochs: 1000,
            ..config.clone()
        },
        &mut |e| {
            if let WorkerEvent::Steps(s) = e {
                steps_seen += s.len();
            }
            steps_seen >= 20
        },
        &mut { scoring_starts },
    );
    let validation = run(
        DonutConfig {
            epochs: 1000,
            valid_every_steps: 1,
            ..config.clone()
        },
        &mut |e| matches!(e, WorkerEvent::Train(TrainEvent::Valid(ValidStats { .. }))),
        &mut { scoring_starts },
    );
    let scoring = run(
        DonutConfig {
            epochs: 1,
            ..config.clone()
        },
        &mut { scoring_starts },
        // A stopped scoring pass reports that it has no scores, then goes idle.
        &mut |e| matches!(e, WorkerEvent::Phase(Phase::Idle) | WorkerEvent::Failed(_)),
    );
    [training, validation, scoring]
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

/// `detect --follow`'s loop without the I/O: `points` points of `raw` (after a window to fill)
/// pushed one at a time into a [`Stream`] at n_z 1024 (untrained weights: the cost does not
/// depend on them), one point in 97 missing as in the MCMC case. Returns points per second and
/// the median milliseconds from a push to its score.
pub fn stream_rate(raw: &crate::data::RawSeries, base: &DonutConfig, points: usize) -> (f64, f64) {
    let config = DonutConfig {
        n_z: 1024,
        mcmc_iterations: 10,
        threads: 1,
        ..base.clone()
    };
    let device = device_for(config.backend);
    let model = DonutModel::new(&config, &mut Xoshiro256PlusPlus::seed_from_u64(0), &device);
    let stats = crate::data::Standardisation {
        mean: 0.0,
        std: 1.0,
    };
    let mut stream = Stream::new(&model, &config, stats, f64::INFINITY, raw.interval);
    let value = |i: usize| {
        if i.is_multiple_of(97) {
            f64::NAN
        } else {
            raw.values[i]
        }
    };
    let warm = config.window + 8;
    for i in 0..warm.min(raw.values.len()) {
        let _ = stream.push(raw.timestamps[i], value(i));
    }
    let end = (warm + points).min(raw.values.len());
    let started = Instant::now();
    let latencies: Vec<f64> = (warm..end)
        .map(|i| {
            let t = Instant::now();
            let _ = stream.push(raw.timestamps[i], value(i));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let rate = latencies.len() as f64 / started.elapsed().as_secs_f64();
    (rate, median(latencies))
}

/// The groups of benchmarks, as `--only` names them.
pub const GROUPS: [&str; 8] = [
    "train", "score", "stream", "metric", "csv", "stop", "paint", "preview",
];

/// Hooks that take previews and end the run at its first one.
struct FirstPreview {
    at_secs: Option<f64>,
}

impl crate::train::TrainHooks for FirstPreview {
    fn event(&mut self, _event: crate::train::TrainEvent) {}
    fn poll(&mut self, _live: &mut crate::config::LiveSettings) -> crate::train::Flow {
        if self.at_secs.is_some() {
            crate::train::Flow::Stop
        } else {
            crate::train::Flow::Continue
        }
    }
}

impl crate::pipeline::RunHooks for FirstPreview {
    fn wants_previews(&self) -> bool {
        true
    }
    fn preview(&mut self, preview: crate::pipeline::preview::Preview) {
        self.at_secs.get_or_insert(preview.elapsed_secs);
    }
    fn score_after_training(&mut self) -> bool {
        false
    }
}

/// Seconds from the start of a default run (every core) on `prep` to its first preview
/// detections of the test part: what a user waits after pressing Train before scores appear.
pub fn first_preview_secs(prep: &Prepared) -> f64 {
    let config = DonutConfig::default();
    let mut hooks = FirstPreview { at_secs: None };
    let _ = crate::pipeline::run(prep, &config, &[Part::Test], &mut hooks);
    hooks.at_secs.unwrap_or(f64::NAN)
}

/// Runs the benchmarks of the groups in `only` (every group when it is empty); `quick` shortens
/// each.
pub fn run_all(quick: bool, only: &[String], progress: &mut dyn FnMut(&BenchRow)) -> Vec<BenchRow> {
    let wants = |group: &str| only.is_empty() || only.iter().any(|g| g == group);
    let mut rows = Vec::new();
    let mut push = |name: String, value: f64, unit: &'static str| {
        let row = BenchRow { name, value, unit };
        progress(&row);
        rows.push(row);
    };
    let raw = crate::data::sample::synthetic(17_568);
    let base = DonutConfig {
        latent_dim: 3,
        batch_size: 256,
        ..Default::default()
    };
    let prep = match Prepared::new(&raw, &base) {
        Ok(p) => p,
        Err(_) => return rows,
    };
    let secs_per_repetition = if quick { 0.05 } else { 1.0 };
    let all_threads = crate::threads::requested(&base);
    // The fused engine (backend-independent) first, then burn's autodiff on each backend.
    let engines: Vec<(GradientEngine, BackendKind)> =
        std::iter::once((GradientEngine::Fused, BackendKind::Flex))
            .chain(
                BackendKind::ALL
                    .iter()
                    .map(|b| (GradientEngine::Autodiff, *b)),
            )
            .filter(|_| wants("train"))
            .collect();
    for (gradients, backend) in engines {
        for encoder in [EncoderKind::Dense, EncoderKind::Cnn] {
            let mut thread_counts = vec![1, all_threads];
            thread_counts.dedup();
            for threads in thread_counts {
                let config = DonutConfig {
                    backend,
                    gradients,
                    encoder,
                    threads,
                    ..base.clone()
                };
                let rate = train_throughput(&prep, &config, secs_per_repetition);
                let engine = match gradients {
                    GradientEngine::Fused => "fused gradients".to_string(),
                    GradientEngine::Autodiff => format!("autodiff on {}", backend.name()),
                };
                push(
                    format!(
                        "train {encoder:?} encoder, {engine}, {threads} thread{} (batch 256, W 120, K 3)",
                        if threads == 1 { "" } else { "s" }
                    ),
                    rate,
                    "windows/s",
                );
            }
        }
    }
    let windows = if quick { 256 } else { 2048 };
    let score_cases: &[(usize, usize)] = if wants("score") {
        &[(1, 0), (100, 0), (1024, 0), (1024, 10)]
    } else {
        &[]
    };
    for &(n_z, mcmc) in score_cases {
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
            format!("score n_z {n_z}, MCMC {mcmc} (flex, {all_threads} threads)"),
            rate,
            "windows/s",
        );
    }
    if wants("score") {
        // The target case of the performance issue: 5,151 test windows at n_z 1024 with MCMC 10.
        let config = DonutConfig {
            n_z: 1024,
            mcmc_iterations: 10,
            ..base.clone()
        };
        let ends: Vec<usize> = prep.window_ends(Part::Test).take(5_151).collect();
        let device = device_for(config.backend);
        let model = DonutModel::new(&config, &mut Xoshiro256PlusPlus::seed_from_u64(0), &device);
        let secs = median(
            (0..if quick { 1 } else { 3 })
                .map(|_| {
                    let start = Instant::now();
                    let _ = score_windows(&model, &prep, &ends, &config, &device, &mut |_| true);
                    start.elapsed().as_secs_f64()
                })
                .collect(),
        );
        push(
            format!("score {} test windows, n_z 1024, MCMC 10", ends.len()),
            secs,
            "s",
        );
    }

    if wants("stream") {
        let (points_per_sec, latency_ms) =
            stream_rate(&raw, &base, if quick { 200 } else { 2_000 });
        push(
            "stream: points scored one at a time, n_z 1024, MCMC 10 (1 thread)".into(),
            points_per_sec,
            "points/s",
        );
        push(
            "stream: latency per point (push to score), median, n_z 1024".into(),
            latency_ms,
            "ms",
        );
    }

    if wants("preview") {
        // A five-minute KPI of two months (cpu4's size) and a one-minute KPI of 104 days.
        for (points, interval_secs) in [(17_568usize, 300i64), (150_000, 60)] {
            let spec = crate::data::sample::SampleSpec {
                days: points * interval_secs as usize / 86_400,
                interval_secs,
                ..Default::default()
            };
            let text = crate::data::sample::to_csv(&crate::data::sample::generate(&spec));
            let Ok(raw) = crate::data::parse_csv(text.as_bytes(), "generated.csv") else {
                continue;
            };
            let Ok(prep) = Prepared::new(&raw, &DonutConfig::default()) else {
                continue;
            };
            let secs = median(
                (0..if quick { 1 } else { 3 })
                    .map(|_| first_preview_secs(&prep))
                    .collect(),
            );
            push(
                format!(
                    "first preview detections, default run, {} points every {interval_secs} s",
                    prep.len()
                ),
                secs,
                "s",
            );
        }
    }

    if wants("metric") {
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
    }

    if wants("csv") {
        // CSV loading of 1,000,000 rows.
        let big = crate::data::sample::synthetic(1_000_000);
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
    }

    if wants("stop") {
        // Stop latency on a 1,000,000-point series, where every phase is long.
        if let Ok(big_prep) = Prepared::new(&crate::data::sample::synthetic(1_000_000), &base) {
            let big_prep = std::sync::Arc::new(big_prep);
            let [training, validation, scoring] = stop_latency_secs(&big_prep, &base);
            for (phase, secs) in [
                ("training", training),
                ("validation", validation),
                ("scoring", scoring),
            ] {
                push(
                    format!("stop during {phase} (1,000,000 points): until the phase ends"),
                    secs * 1000.0,
                    "ms",
                );
            }
        }
    }

    if wants("paint") {
        // Painting latent points: layout + tessellation of one frame of the 3-D panel.
        for points in [10_000usize, 100_000] {
            push(
                format!("paint {points} latent points (one frame, CPU)"),
                paint_ms(points),
                "ms",
            );
        }
    }
    rows
}

/// CPU milliseconds of one frame that draws the 3-D scatter with `n` points (egui pass and
/// tessellation; the GPU upload is not included).
pub fn paint_ms(n: usize) -> f64 {
    use crate::ui::latent3d::{Camera, Cloud, scatter_ui};
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
    let colors: Vec<egui::Color32> = (0..n)
        .map(|i| egui::Color32::from_gray((i * 255 / n.max(1)) as u8))
        .collect();
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
                selected: &[],
            };
            scatter_ui(ui, &mut camera, &cloud, egui::vec2(780.0, 580.0), 3.0);
        });
        let _ = ctx.tessellate(output.shapes, output.pixels_per_point);
        start.elapsed().as_secs_f64() * 1000.0
    };
    frame();
    median((0..7).map(|_| frame()).collect())
}
