//! Training, scoring and the settings: each test checks an effect that a bug would break.

use super::quick_config;
use donut_explorer::config::{
    BackendKind, BetaMode, DonutConfig, EncoderKind, EntropyMode, LatentDist, LiveSettings,
    Objective,
};
use donut_explorer::data::{Part, Prepared, load_sample};
use donut_explorer::model::DonutModel;
use donut_explorer::model::device_for;
use donut_explorer::model::loss::m_elbo;
use donut_explorer::train::batch::host_batch;
use donut_explorer::train::{Flow, NoHooks, TrainEvent, TrainHooks, train};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;

fn sample(config: &DonutConfig) -> Prepared {
    Prepared::new(&load_sample().unwrap(), config).unwrap()
}

/// The loss terms of one fixed batch under `config`, on a fresh model.
fn batch_terms(config: &DonutConfig) -> donut_explorer::history::LossTerms {
    let prep = sample(config);
    let device = device_for(config.backend);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(1);
    let model = DonutModel::new(config, &mut rng, &device);
    let ends: Vec<usize> = prep.window_ends(Part::Train).take(64).collect();
    let host = host_batch(&prep, &ends, &[], &config.live());
    let noise = model
        .latent()
        .sample_noise(&mut rng, ends.len() * config.latent_dim);
    m_elbo(
        &model,
        host.upload(noise, config.latent_dim, config.window, &device),
        config.l2_weight,
    )
    .to_terms()
}

#[test]
fn training_lowers_the_loss() {
    let config = DonutConfig {
        epochs: 8,
        ..quick_config()
    };
    let prep = sample(&config);
    let out = train(&prep, &config, &mut NoHooks).unwrap();
    let first: f64 = out.history.steps[..5]
        .iter()
        .map(|s| s.terms.total)
        .sum::<f64>()
        / 5.0;
    let last: f64 = out.history.steps[out.history.steps.len() - 5..]
        .iter()
        .map(|s| s.terms.total)
        .sum::<f64>()
        / 5.0;
    assert!(
        last < first - 10.0,
        "loss went from {first:.1} to {last:.1}"
    );
    assert_eq!(out.stats.epochs_done, 8);
    assert!(!out.history.validations.is_empty());
}

#[test]
fn a_seed_reproduces_a_run_and_another_seed_does_not() {
    let config = DonutConfig {
        epochs: 2,
        ..quick_config()
    };
    let prep = sample(&config);
    let a = train(&prep, &config, &mut NoHooks).unwrap();
    let b = train(&prep, &config, &mut NoHooks).unwrap();
    let losses = |o: &donut_explorer::train::TrainOutcome| {
        o.history
            .steps
            .iter()
            .map(|s| s.terms.total)
            .collect::<Vec<_>>()
    };
    assert_eq!(losses(&a), losses(&b));
    let c = train(
        &prep,
        &DonutConfig {
            seed: 7,
            ..config.clone()
        },
        &mut NoHooks,
    )
    .unwrap();
    assert_ne!(losses(&a), losses(&c));
    // And the scores of the two identical runs agree exactly.
    let device = device_for(config.backend);
    let ends: Vec<usize> = prep.window_ends(Part::Test).take(50).collect();
    let sa =
        donut_explorer::score::score_windows(&a.model, &prep, &ends, &config, &device, &mut |_| {
            true
        })
        .unwrap();
    let sb =
        donut_explorer::score::score_windows(&b.model, &prep, &ends, &config, &device, &mut |_| {
            true
        })
        .unwrap();
    assert_eq!(sa, sb);
}

#[test]
fn data_parallel_steps_do_not_depend_on_the_thread_count_up_to_four() {
    let config = DonutConfig {
        epochs: 1,
        ..quick_config()
    };
    let prep = sample(&config);
    let run = |threads: usize| {
        let c = DonutConfig {
            threads,
            ..config.clone()
        };
        let out = train(&prep, &c, &mut NoHooks).unwrap();
        let totals: Vec<f64> = out
            .history
            .steps
            .iter()
            .take(8)
            .map(|s| s.terms.total)
            .collect();
        let weights: Vec<Vec<f32>> = out.model.weights().into_iter().map(|w| w.values).collect();
        (totals, weights)
    };
    // Up to four threads, a batch is cut into the same four shards (64 windows each) and their
    // gradients summed in the same order: the same run on a laptop, a fleet's one thread per
    // KPI and the command line's every core.
    let one = run(1);
    for threads in [2, 3, 4] {
        assert_eq!(
            run(threads),
            one,
            "{threads} threads, the same seed: identical"
        );
    }
    // Six threads cut six shards, whose sums differ in the last bits only.
    let six = run(6).0;
    assert_ne!(one.0, six, "the shards really ran");
    for (a, b) in one.0.iter().zip(&six) {
        assert!(
            (a - b).abs() < 1e-3 * a.abs().max(1.0),
            "four shards {:?}\nsix shards {six:?}",
            one.0
        );
    }
}

#[test]
fn beta_zero_removes_the_prior_term() {
    let base = DonutConfig {
        latent_dim: 3,
        ..Default::default()
    };
    let with = batch_terms(&base);
    assert!(with.prior.abs() > 0.1, "{with:?}");
    let without = batch_terms(&DonutConfig {
        beta_mode: BetaMode::Fixed,
        beta_value: 0.0,
        ..base.clone()
    });
    assert_eq!(without.prior, 0.0);
    assert_eq!(without.recon, with.recon, "the other terms are untouched");
}

#[test]
fn entropy_weight_zero_removes_the_entropy_term_and_beta_mode_ties_it_to_beta() {
    let base = DonutConfig {
        latent_dim: 3,
        ..Default::default()
    };
    let one = batch_terms(&base);
    let zero = batch_terms(&DonutConfig {
        entropy_mode: EntropyMode::Fixed,
        entropy_value: 0.0,
        ..base.clone()
    });
    assert!(one.entropy.abs() > 0.1);
    assert_eq!(zero.entropy, 0.0);
    let half = batch_terms(&DonutConfig {
        entropy_mode: EntropyMode::Fixed,
        entropy_value: 0.5,
        ..base.clone()
    });
    assert!((half.entropy - 0.5 * one.entropy).abs() < 1e-3 * one.entropy.abs().max(1.0));
    let tied = batch_terms(&DonutConfig {
        entropy_mode: EntropyMode::Beta,
        beta_mode: BetaMode::Fixed,
        beta_value: 0.5,
        ..base.clone()
    });
    assert!((tied.entropy - half.entropy).abs() < 1e-4 * half.entropy.abs().max(1.0));
}

#[test]
fn alpha_masks_anomalies_missing_and_injected_points() {
    let config = DonutConfig::default();
    let prep = sample(&config);
    // A window that holds a labelled anomaly.
    let end = (prep.window - 1..prep.len())
        .find(|&e| prep.labels[e] == 1)
        .unwrap();
    let live = config.live();
    let host = host_batch(&prep, &[end], &[], &live);
    assert_eq!(
        host.alpha[prep.window - 1],
        0.0,
        "the anomalous last point is masked"
    );
    let normal = host.alpha.iter().sum::<f32>();
    assert!(
        (host.beta[0] - normal / prep.window as f32).abs() < 1e-6,
        "M-ELBO beta = fraction of alpha = 1"
    );
    let mut injected = vec![false; prep.len()];
    let target = end - 3;
    injected[target] = true;
    let inj = host_batch(&prep, &[end], &injected, &live);
    // What a gap holds: the standardised raw zero, as DONUT's injection sets it.
    let filled = ((0.0 - prep.mean) / prep.std) as f32;
    assert!(
        prep.mean.abs() > 0.1,
        "the sample's mean is not 0: {}",
        prep.mean
    );
    assert_eq!(
        inj.x[prep.window - 4],
        filled,
        "an injected point holds -mean / std, as a missing point does"
    );
    let gap = (0..prep.len())
        .find(|&i| prep.missing[i])
        .expect("the sample has gaps");
    assert_eq!(prep.values[gap], filled);
    assert_eq!(inj.alpha[prep.window - 4], 0.0);
}

#[test]
fn the_plain_elbo_counts_every_point_with_beta_one() {
    let config = DonutConfig {
        objective: Objective::Elbo,
        // Ignored by the plain ELBO, which fixes beta at 1.
        beta_mode: BetaMode::Fixed,
        beta_value: 0.3,
        entropy_mode: EntropyMode::Beta,
        ..DonutConfig::default()
    };
    let prep = sample(&config);
    let end = (prep.window - 1..prep.len())
        .find(|&e| prep.labels[e] == 1)
        .unwrap();
    let mut injected = vec![false; prep.len()];
    injected[end - 3] = true;
    let host = host_batch(&prep, &[end], &injected, &config.live());
    assert!(
        host.alpha.iter().all(|&a| a == 1.0),
        "anomalous and injected points count: {:?}",
        host.alpha
    );
    assert_eq!(
        host.x[prep.window - 4],
        ((0.0 - prep.mean) / prep.std) as f32,
        "an injected point still holds what a missing point does"
    );
    assert_eq!(host.beta, vec![1.0]);
    assert_eq!(host.lambda, vec![1.0], "lambda = beta = 1");
    // The same window under the M-ELBO masks the anomaly.
    let m = host_batch(&prep, &[end], &injected, &DonutConfig::default().live());
    assert_eq!(m.alpha[prep.window - 1], 0.0);
    assert!(m.beta[0] < 1.0);
}

#[test]
fn every_architecture_and_latent_family_trains() {
    for (encoder, latent_dist, backend) in [
        (EncoderKind::Cnn, LatentDist::Gaussian, BackendKind::Flex),
        (EncoderKind::Dense, LatentDist::StudentT, BackendKind::Flex),
        (
            EncoderKind::Dense,
            LatentDist::Gaussian,
            BackendKind::Ndarray,
        ),
    ] {
        let config = DonutConfig {
            epochs: 1,
            encoder,
            latent_dist,
            backend,
            latent_dim: 4,
            ..quick_config()
        };
        let prep = sample(&config);
        let out = train(&prep, &config, &mut NoHooks).unwrap();
        assert!(
            out.history.steps.iter().all(|s| s.terms.is_finite()),
            "{encoder:?} {latent_dist:?} {backend:?}"
        );
        assert_eq!(out.model.latent_dim(), 4);
    }
}

#[test]
fn both_backends_build_the_same_network_from_a_seed() {
    let config = DonutConfig {
        latent_dim: 3,
        ..Default::default()
    };
    let flex = batch_terms(&config);
    let nd = batch_terms(&DonutConfig {
        backend: BackendKind::Ndarray,
        ..config
    });
    assert!(
        (flex.total - nd.total).abs() < 1e-3 * flex.total.abs(),
        "{flex:?} vs {nd:?}"
    );
}

#[test]
fn the_im2col_convolution_and_pair_pooling_match_burns_conv1d_and_max_pool() {
    use burn::nn::PaddingConfig1d;
    use burn::nn::conv::Conv1dConfig;
    use burn::nn::pool::MaxPool1dConfig;
    use burn::prelude::*;
    use burn::tensor::Distribution;
    use donut_explorer::model::{conv_same3, max_pool2};

    let device = device_for(BackendKind::Flex);
    for (c_in, c_out, len) in [(1, 4, 12), (3, 5, 9)] {
        let conv = Conv1dConfig::new(c_in, c_out, 3)
            .with_padding(PaddingConfig1d::Same)
            .init(&device);
        let x = Tensor::<3>::random([2, c_in, len], Distribution::Normal(0.0, 1.0), &device);
        // burn: [n, C, L]; ours: channels-last [n, L, C].
        let reference = MaxPool1dConfig::new(2)
            .init()
            .forward(conv.forward(x.clone()))
            .permute([0, 2, 1]);
        let ours = max_pool2(conv_same3(&conv, x.permute([0, 2, 1])));
        assert_eq!(ours.dims(), reference.dims());
        let a = ours.into_data().try_to_vec::<f32>().unwrap();
        let b = reference.into_data().try_to_vec::<f32>().unwrap();
        for (u, v) in a.iter().zip(&b) {
            assert!((u - v).abs() < 1e-5, "{a:?}\nvs\n{b:?}");
        }
    }
}

struct Recorder {
    latent_dims: Vec<usize>,
    stop_after: usize,
    steps: usize,
    change_at: Option<(usize, LiveSettings)>,
}

impl TrainHooks for Recorder {
    fn event(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Step(_) => self.steps += 1,
            TrainEvent::Latent(s) => {
                assert_eq!(s.means.len(), s.ends.len() * s.dim);
                self.latent_dims.push(s.dim);
            }
            _ => {}
        }
    }
    fn poll(&mut self, live: &mut LiveSettings) -> Flow {
        if let Some((at, settings)) = self.change_at
            && self.steps == at
        {
            *live = settings;
        }
        if self.steps >= self.stop_after {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
    fn latent_every_steps(&self) -> Option<usize> {
        Some(5)
    }
}

#[test]
fn a_stop_request_during_validation_abandons_it_and_skips_the_final_one() {
    // quick_config validates every 5 steps: the first poll after step 5 comes from inside that
    // validation (between its chunks), and asks to stop.
    let config = DonutConfig {
        epochs: 50,
        ..quick_config()
    };
    assert_eq!(config.valid_every_steps, 5);
    let prep = sample(&config);
    let mut hooks = Recorder {
        latent_dims: vec![],
        stop_after: 5,
        steps: 0,
        change_at: None,
    };
    let out = train(&prep, &config, &mut hooks).unwrap();
    assert!(out.stats.stopped);
    assert_eq!(out.history.steps.len(), 5);
    assert!(
        out.history.validations.is_empty(),
        "the interrupted validation and the final one must not run: {:?}",
        out.history.validations
    );
}

/// Hooks that want previews and ask to stop from the first poll after the first validation.
struct StopInPreview {
    validated: bool,
    polls_after: usize,
    previews: usize,
}

impl TrainHooks for StopInPreview {
    fn event(&mut self, event: TrainEvent) {
        self.validated |= matches!(event, TrainEvent::Valid(_));
    }
    fn poll(&mut self, _live: &mut LiveSettings) -> Flow {
        if self.validated {
            self.polls_after += 1;
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

impl donut_explorer::pipeline::RunHooks for StopInPreview {
    fn wants_previews(&self) -> bool {
        true
    }
    fn preview(&mut self, _preview: donut_explorer::pipeline::preview::Preview) {
        self.previews += 1;
    }
}

#[test]
fn a_stop_request_during_a_preview_abandons_it_and_ends_the_run() {
    // The first validation is a new best, so a preview scores the validation and test parts
    // at once; its scoring polls the driver, which asks to stop.
    let config = DonutConfig {
        epochs: 50,
        ..quick_config()
    };
    let prep = sample(&config);
    let mut hooks = StopInPreview {
        validated: false,
        polls_after: 0,
        previews: 0,
    };
    let out = donut_explorer::pipeline::run(&prep, &config, &[Part::Test], &mut hooks).unwrap();
    assert!(out.stats.stopped);
    assert_eq!(
        out.history.steps.len(),
        config.valid_every_steps,
        "no step after the first validation"
    );
    assert!(hooks.polls_after >= 1, "the preview polled the driver");
    assert_eq!(
        hooks.previews, 0,
        "the abandoned preview is not handed over"
    );
}

#[test]
fn stop_request_ends_early_and_latent_snapshots_have_k_columns() {
    let config = DonutConfig {
        epochs: 50,
        latent_dim: 6,
        ..quick_config()
    };
    let prep = sample(&config);
    let mut hooks = Recorder {
        latent_dims: vec![],
        stop_after: 12,
        steps: 0,
        change_at: None,
    };
    let out = train(&prep, &config, &mut hooks).unwrap();
    assert!(out.stats.stopped);
    assert_eq!(out.history.steps.len(), 12);
    assert!(hooks.latent_dims.len() >= 3 && hooks.latent_dims.iter().all(|&k| k == 6));
}

#[test]
fn a_live_change_reaches_the_next_steps() {
    let config = DonutConfig {
        epochs: 50,
        ..quick_config()
    };
    let prep = sample(&config);
    let mut live = config.live();
    live.beta_mode = BetaMode::Fixed;
    live.beta_value = 0.0;
    let mut hooks = Recorder {
        latent_dims: vec![],
        stop_after: 10,
        steps: 0,
        change_at: Some((5, live)),
    };
    let out = train(&prep, &config, &mut hooks).unwrap();
    assert!(out.history.steps[..5].iter().all(|s| s.terms.prior != 0.0));
    assert!(out.history.steps[5..].iter().all(|s| s.terms.prior == 0.0));
    assert_eq!(
        out.config.beta_value, 0.0,
        "the outcome records the live settings"
    );
}

#[test]
fn a_diverging_run_stops_with_a_message_not_a_panic() {
    let config = DonutConfig {
        epochs: 30,
        learning_rate: 100.0,
        lr_decay: 1.0,
        grad_clip_norm: 1e30,
        ..quick_config()
    };
    let prep = sample(&config);
    match train(&prep, &config, &mut NoHooks) {
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("diverged") && msg.contains("learning rate"),
                "{msg}"
            );
        }
        Ok(out) => panic!(
            "expected divergence; final loss {:?}",
            out.history.steps.last().map(|s| s.terms)
        ),
    }
}

#[test]
fn scores_cover_every_point_of_the_test_part() {
    let config = quick_config();
    let prep = sample(&config);
    let out = train(&prep, &config, &mut NoHooks).unwrap();
    let device = device_for(config.backend);
    let scores = donut_explorer::score::score_part(
        &out.model,
        &prep,
        Part::Test,
        &config,
        &device,
        &mut |_| true,
    )
    .unwrap();
    assert_eq!(scores.len(), prep.part(Part::Test).len());
    // The first W-1 test points take their window's context from the validation part.
    assert!(scores.iter().all(|s| s.is_some_and(f64::is_finite)));
    let valid = donut_explorer::score::score_part(
        &out.model,
        &prep,
        Part::Valid,
        &config,
        &device,
        &mut |_| true,
    )
    .unwrap();
    assert!(valid[..config.window - 1].iter().all(|s| s.is_none()));
    // Stopping scoring returns at once.
    let mut calls = 0;
    let stopped = donut_explorer::score::score_part(
        &out.model,
        &prep,
        Part::Test,
        &config,
        &device,
        &mut |_| {
            calls += 1;
            calls < 2
        },
    );
    assert!(stopped.is_err());
}

#[test]
fn mcmc_changes_scores_only_of_windows_with_missing_points() {
    let config = DonutConfig {
        n_z: 4,
        ..quick_config()
    };
    let prep = sample(&config);
    let out = train(&prep, &config, &mut NoHooks).unwrap();
    let device = device_for(config.backend);
    let ends: Vec<usize> = (config.window - 1..prep.len()).collect();
    let with_missing: Vec<usize> = ends
        .iter()
        .copied()
        .filter(|&e| prep.missing[e + 1 - config.window..=e].contains(&true))
        .take(20)
        .collect();
    assert!(!with_missing.is_empty());
    let off = DonutConfig {
        mcmc_iterations: 0,
        ..config.clone()
    };
    let on = DonutConfig {
        mcmc_iterations: 10,
        ..config.clone()
    };
    let a = donut_explorer::score::score_windows(
        &out.model,
        &prep,
        &with_missing,
        &off,
        &device,
        &mut |_| true,
    )
    .unwrap();
    let b = donut_explorer::score::score_windows(
        &out.model,
        &prep,
        &with_missing,
        &on,
        &device,
        &mut |_| true,
    )
    .unwrap();
    assert_ne!(a, b, "MCMC imputation changes windows with missing points");
    let complete: Vec<usize> = ends
        .iter()
        .copied()
        .filter(|&e| !prep.missing[e + 1 - config.window..=e].contains(&true))
        .take(20)
        .collect();
    let a = donut_explorer::score::score_windows(
        &out.model,
        &prep,
        &complete,
        &off,
        &device,
        &mut |_| true,
    )
    .unwrap();
    let b = donut_explorer::score::score_windows(
        &out.model,
        &prep,
        &complete,
        &on,
        &device,
        &mut |_| true,
    )
    .unwrap();
    assert_eq!(a, b, "windows with no missing point are untouched by MCMC");
}

#[test]
fn a_windows_score_depends_on_the_model_the_seed_and_the_window_only() {
    let config = DonutConfig {
        n_z: 16,
        ..quick_config()
    };
    let prep = sample(&config);
    let out = train(&prep, &config, &mut NoHooks).unwrap();
    let device = device_for(config.backend);
    let score = |ends: &[usize], threads: usize| {
        let config = DonutConfig {
            threads,
            ..config.clone()
        };
        donut_explorer::score::score_windows(&out.model, &prep, ends, &config, &device, &mut |_| {
            true
        })
        .unwrap()
    };
    // Windows with missing points too, so that MCMC imputation draws samples as well.
    let all: Vec<usize> = prep.window_ends(Part::Test).collect();
    let some: Vec<usize> = all.iter().copied().skip(37).step_by(13).take(40).collect();
    let alone = score(&some, 1);
    let among_all = score(&all, 2);
    for (i, &end) in some.iter().enumerate() {
        let other = among_all[end - all[0]];
        assert!(
            (alone[i] - other).abs() <= 1e-4 * other.abs().max(1.0),
            "window ending at {end}: {} alone, {other} among all",
            alone[i]
        );
    }
    // Another seed draws other samples.
    let reseeded = DonutConfig {
        seed: config.seed + 1,
        ..config.clone()
    };
    let moved = donut_explorer::score::score_windows(
        &out.model,
        &prep,
        &some,
        &reseeded,
        &device,
        &mut |_| true,
    )
    .unwrap();
    assert_ne!(moved, alone);
}

/// Hooks that ask for a snapshot every step, at most one an hour.
struct RareSnapshots;

impl donut_explorer::train::TrainHooks for RareSnapshots {
    fn event(&mut self, _event: donut_explorer::train::TrainEvent) {}
    fn poll(
        &mut self,
        _live: &mut donut_explorer::config::LiveSettings,
    ) -> donut_explorer::train::Flow {
        donut_explorer::train::Flow::Continue
    }
    fn latent_every_steps(&self) -> Option<usize> {
        Some(1)
    }
    fn latent_min_interval(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_secs(3600))
    }
}

impl donut_explorer::pipeline::RunHooks for RareSnapshots {}

#[test]
fn a_run_keeps_its_drivers_least_interval_between_snapshots() {
    // The pipeline wraps the driver's hooks (for previews): the interval must reach the loop.
    let config = DonutConfig {
        epochs: 2,
        ..super::quick_config()
    };
    let prep = sample(&config);
    let record = donut_explorer::pipeline::run(
        &prep,
        &config,
        &[donut_explorer::data::Part::Test],
        &mut RareSnapshots,
    )
    .unwrap();
    assert!(record.history.steps.len() > 10);
    // The first, before any step, and the last, of the kept parameters.
    assert_eq!(
        record.history.snapshots.len(),
        2,
        "one an hour, not one a step"
    );
}
