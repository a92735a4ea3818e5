//! `tune`: the search never reads the test labels, is the same for a seed, records a diverging
//! trial as failed and goes on, and refuses a bad space by name.

use super::{bin, quick_config};
use donut_explorer::config::DonutConfig;
use donut_explorer::data::{Part, Prepared, RawSeries, load_sample};
use donut_explorer::tune::objective::{fit_segments, validation_segments};
use donut_explorer::tune::{
    ObjectiveKind, SearchSpace, TrialState, TuneOutcome, TuneSpec, ValidationFigures, compare,
    run_search,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// A small space (two settings that change the model, one that does not touch the data) and a
/// quick schedule: 6 trials, rungs at 1 and 3 validations, two trials at once.
fn quick_spec(space: &str) -> TuneSpec {
    let base = DonutConfig {
        window: 30,
        hidden_width: 24,
        patience: 4,
        ..quick_config()
    };
    let space = SearchSpace::from_toml(space, "space.toml").unwrap();
    let mut spec = TuneSpec::new(space, 6, base, 11);
    spec.first_rung_validations = 1;
    spec.jobs = 2;
    spec
}

/// The quick settings of the command-line tests (those of `quick_spec`), as flags.
const QUICK_FLAGS: &[&str] = &[
    "--set",
    "valid_every_steps=5",
    "--set",
    "window=30",
    "--set",
    "hidden_width=24",
    "--set",
    "n_z=8",
    "--set",
    "mcmc_iterations=1",
];

const SPACE: &str = "defaults = false\n[latent_dim]\nmin = 2\nmax = 6\n[learning_rate]\nmin = 1e-3\nmax = 1e-2\nlog = true\n[injection_rate]\nmin = 0.0\nmax = 0.1\n";

fn search(raw: &RawSeries, spec: &TuneSpec) -> TuneOutcome {
    run_search(raw, spec, &AtomicBool::new(false), &|_| {}).unwrap()
}

/// A trial's state and its figures (objective, PA%K area, F1, log-likelihood) at each rung and at
/// its end.
type TrialFigures = (
    TrialState,
    Vec<ValidationFigures>,
    Option<ValidationFigures>,
);

/// Each trial's figures.
fn figures(outcome: &TuneOutcome) -> Vec<TrialFigures> {
    outcome
        .trials
        .iter()
        .map(|t| {
            (
                t.state.clone(),
                t.rungs.iter().map(|c| c.figures).collect(),
                t.result.map(|c| c.figures),
            )
        })
        .collect()
}

#[test]
fn the_search_reads_no_test_label_and_is_the_same_for_a_seed() {
    let raw = load_sample().unwrap();
    let spec = quick_spec(SPACE);
    // Never more trials training than `jobs`: a paused or pruned trial holds no slot.
    let states = std::sync::Mutex::new(vec![TrialState::Waiting; spec.trials]);
    let most_running = std::sync::atomic::AtomicUsize::new(0);
    let first = run_search(&raw, &spec, &AtomicBool::new(false), &|t| {
        let mut states = states.lock().unwrap();
        states[t.index] = t.state.clone();
        let running = states.iter().filter(|s| **s == TrialState::Running).count();
        most_running.fetch_max(running, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    assert_eq!(most_running.into_inner(), spec.jobs);
    assert_eq!(first.objective, ObjectiveKind::ValidationF1);
    assert_eq!(first.rungs, vec![1, 3]);
    // Successive halving: 6 trials at the first rung, the best 2 at the second, the best 1 to
    // its end, and with them the base settings (trial 0), which are never pruned.
    let pruned_at = |rung: usize| {
        first
            .trials
            .iter()
            .filter(|t| t.state == TrialState::Pruned { rung })
            .count()
    };
    let completed = first
        .trials
        .iter()
        .filter(|t| t.state == TrialState::Completed)
        .count();
    assert_eq!(
        first.trials[0].state,
        TrialState::Completed,
        "the base settings"
    );
    // The first rung keeps 2 of 6 (3 when the base was not among them), the second 1 of those
    // (and the base): everything else is pruned where it stood.
    assert!(
        (3..=4).contains(&pruned_at(0))
            && (1..=2).contains(&completed)
            && pruned_at(0) + pruned_at(1) + completed == 6,
        "{:#?}",
        first.trials
    );
    let best = first.best_trial().expect("a trial completed");
    assert_eq!(best.state, TrialState::Completed);
    assert!(best.result.unwrap().validations > 3);

    // The same seed: the same trials, figure for figure.
    let again = search(&raw, &spec);
    assert_eq!(figures(&again), figures(&first));
    assert_eq!(again.best, first.best);

    // The test part's labels scrambled: nothing about the search changes.
    let blind = search(&with_test_labels_scrambled(&raw, &spec), &spec);
    assert_eq!(figures(&blind), figures(&first));
    assert_eq!(blind.best, first.best);

    // Trial 0 is the base settings; a different seed draws different trials after it.
    assert!(first.trials[0].assignments.is_empty());
    let mut other = spec.clone();
    other.seed = 12;
    let other = search(&raw, &other);
    assert!(other.trials[0].assignments.is_empty());
    assert_ne!(other.trials[1].assignments, first.trials[1].assignments);
}

/// The index of the first point of `raw` at or after `time`.
fn test_starts_at(raw: &RawSeries, time: i64) -> usize {
    raw.timestamps.iter().position(|&t| t >= time).unwrap()
}

/// `raw` with the labels of the test part of `spec`'s split scrambled: every other point
/// anomalous, none where there were.
fn with_test_labels_scrambled(raw: &RawSeries, spec: &TuneSpec) -> RawSeries {
    let prep = Prepared::new(raw, &spec.base).unwrap();
    let test = test_starts_at(raw, prep.timestamps[prep.part(Part::Test).start])..raw.values.len();
    let mut scrambled = raw.clone();
    for i in test.clone() {
        scrambled.labels[i] = u8::from(raw.labels[i] == 0 && i % 2 == 0);
    }
    assert_ne!(scrambled.labels[test.clone()], raw.labels[test]);
    scrambled
}

#[test]
fn a_diverging_trial_is_recorded_as_failed_and_the_search_goes_on() {
    let raw = load_sample().unwrap();
    let spec = quick_spec("defaults = false\n[learning_rate]\nvalues = [0.001, 100]\n");
    let outcome = search(&raw, &spec);
    let failed: Vec<_> = outcome
        .trials
        .iter()
        .filter(|t| matches!(t.state, TrialState::Failed { .. }))
        .collect();
    assert!(!failed.is_empty(), "{:#?}", outcome.trials);
    for t in &failed {
        assert_eq!(t.assignments, ["learning_rate=100"]);
        let TrialState::Failed { message } = &t.state else {
            unreachable!()
        };
        assert!(message.contains("diverged"), "{message}");
    }
    let best = outcome
        .best_trial()
        .unwrap_or_else(|| panic!("the sane trials go on: {:#?}", outcome.trials));
    // The sane trials: the base settings (trial 0, learning rate 0.001) and the drawn 0.001.
    assert!(
        best.assignments.is_empty() || best.assignments == ["learning_rate=0.001"],
        "{:?}",
        best.assignments
    );
}

#[test]
fn cancelling_keeps_the_finished_trials() {
    let raw = load_sample().unwrap();
    let spec = quick_spec(SPACE);
    let cancel = AtomicBool::new(false);
    let outcome = run_search(&raw, &spec, &cancel, &|t| {
        if t.state == (TrialState::Paused { rung: 0 }) {
            cancel.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    })
    .unwrap();
    assert!(outcome.cancelled);
    // The trial that reached the rung keeps its figures; the others say they were cancelled.
    assert!(outcome.trials.iter().any(|t| !t.rungs.is_empty()));
    assert!(outcome.trials.iter().all(|t| t.state.is_final()));
    assert!(
        outcome
            .trials
            .iter()
            .any(|t| t.state == TrialState::Cancelled)
    );
}

#[test]
fn a_comparison_of_the_base_settings_with_themselves_trains_them_once() {
    let raw = load_sample().unwrap();
    let mut spec = quick_spec(SPACE);
    spec.base.epochs = 1;
    let trained = AtomicUsize::new(0);
    let on_run = |outcome: Result<&donut_explorer::sweep::SweepRun, String>| {
        let run = outcome.unwrap();
        assert_eq!(
            run.variant, 1,
            "a run of the base settings is the default's"
        );
        trained.fetch_add(1, Ordering::Relaxed);
    };
    let kept = compare(
        &raw,
        &spec,
        &[],
        2,
        Arc::new(AtomicBool::new(false)),
        &on_run,
    )
    .unwrap();
    assert!(kept.same_runs);
    assert_eq!(trained.load(Ordering::Relaxed), 2, "one run a seed");
    assert_eq!(kept.runs.len(), 4, "both rows hold every seed");
    let (tuned, default) = (&kept.rows[0], &kept.rows[1]);
    assert_eq!((tuned.best_f1.n, default.best_f1.n), (2, 2));
    assert_eq!(tuned.best_f1.mean, default.best_f1.mean);
    assert_eq!(tuned.flagged_f1.mean, default.flagged_f1.mean);

    // Other settings are trained as a variant of their own.
    trained.store(0, Ordering::Relaxed);
    let on_any = |_: Result<&donut_explorer::sweep::SweepRun, String>| {
        trained.fetch_add(1, Ordering::Relaxed);
    };
    let other = ["latent_dim=2".to_string()];
    let changed = compare(
        &raw,
        &spec,
        &other,
        1,
        Arc::new(AtomicBool::new(false)),
        &on_any,
    )
    .unwrap();
    assert!(!changed.same_runs);
    assert_eq!(trained.load(Ordering::Relaxed), 2);
    assert_eq!(changed.runs.len(), 2);
}

#[test]
fn tune_on_the_command_line_writes_every_trial_the_comparison_and_a_config() {
    let dir = tempfile::tempdir().unwrap();
    let space = dir.path().join("space.toml");
    std::fs::write(&space, SPACE).unwrap();
    let best = dir.path().join("best.toml");
    let out = bin()
        .args([
            "tune",
            "--trials",
            "3",
            "--seeds",
            "1",
            "--first-rung",
            "1",
            "--epochs",
            "2",
        ])
        .args(QUICK_FLAGS)
        .arg("--json")
        .arg("--space")
        .arg(&space)
        .arg("--out")
        .arg(&best)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let json = super::last_json_line(&out.stdout);
    let trials = json["search"]["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3);
    // Trial 0 is the base settings (no assignment), the others assign the space's three.
    for t in trials {
        let assigned = t["assignments"].as_array().unwrap().len();
        assert_eq!(assigned, if t["index"] == 0 { 0 } else { 3 }, "{t}");
        assert!(t["steps"].as_u64().unwrap() > 0, "{t}");
        assert!(t["secs"].as_f64().unwrap() > 0.0, "{t}");
    }
    assert_eq!(json["search"]["objective"], "validation_f1");
    let rows = json["comparison"]["rows"].as_array().unwrap();
    assert_eq!(rows[0]["variant"]["label"], "tuned");
    assert_eq!(rows[1]["variant"]["label"], "default");
    assert!(
        rows[0]["flagged_f1"]["n"].as_u64() == Some(1),
        "{}",
        rows[0]
    );
    // The written config is the base settings with the chosen ones, and reads back.
    let chosen = DonutConfig::from_file(&best).unwrap();
    let settings: Vec<String> = json["best_settings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let expected = DonutConfig {
        epochs: 2,
        valid_every_steps: 5,
        window: 30,
        hidden_width: 24,
        n_z: 8,
        mcmc_iterations: 1,
        ..DonutConfig::default()
    }
    .with_overrides(&settings)
    .unwrap();
    assert_eq!(chosen, expected);
}

/// Runs `tune` with `args`, checks that it fails, and returns its stderr.
fn tune_refuses(args: &[&std::ffi::OsStr]) -> String {
    let out = bin().arg("tune").args(args).output().unwrap();
    assert!(!out.status.success());
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_space_with_an_unknown_setting_or_an_empty_range_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    for (text, named) in [
        (
            "[latent_size]\nmin = 2\nmax = 4\n",
            "`latent_size` is not a setting",
        ),
        (
            "[window]\nmin = 90\nmax = 60\n",
            "`window`: the range is empty",
        ),
    ] {
        let space = dir.path().join("space.toml");
        std::fs::write(&space, text).unwrap();
        let stderr = tune_refuses(&["--space".as_ref(), space.as_os_str()]);
        assert!(
            stderr.contains("space.toml") && stderr.contains(named),
            "{stderr}"
        );
    }
}

#[test]
fn the_pa_k_objective_judges_trials_by_their_pa_k_area() {
    let raw = load_sample().unwrap();
    let mut spec = quick_spec(SPACE);
    spec.trials = 3;
    spec.objective = Some(ObjectiveKind::ValidationPaKArea);
    let outcome = search(&raw, &spec);
    assert_eq!(outcome.objective, ObjectiveKind::ValidationPaKArea);
    for t in &outcome.trials {
        for c in t.rungs.iter().chain(&t.result) {
            let f = c.figures;
            assert_eq!(f.objective, f.pa_k_area, "trial {}", t.index);
            // The area runs from the point-adjusted F1 (K = 0) down towards the point-wise one.
            assert!(
                f.pa_k_area > 0.0 && f.pa_k_area <= f.f1,
                "trial {}: {f:?}",
                t.index
            );
        }
    }
}

#[test]
fn the_fit_objective_reads_the_training_and_validation_labels_and_no_test_label() {
    let raw = load_sample().unwrap();
    let mut spec = quick_spec(SPACE);
    spec.trials = 3;
    spec.objective = Some(ObjectiveKind::FitF1);
    let outcome = search(&raw, &spec);
    assert_eq!(outcome.objective, ObjectiveKind::FitF1);
    for t in &outcome.trials {
        for c in t.rungs.iter().chain(&t.result) {
            let f = c.figures;
            assert_eq!(f.objective, f.fit_f1, "trial {}", t.index);
            assert!(
                f.fit_f1 > 0.0 && f.fit_f1 <= 1.0,
                "trial {}: {f:?}",
                t.index
            );
        }
    }
    // Its margin is one segment's worth of the two parts' segments, more than the validation
    // part's alone.
    let prep = Prepared::new(&raw, &spec.base).unwrap();
    let (fit, valid) = (fit_segments(&prep), validation_segments(&prep));
    assert!(fit > valid && valid > 0, "{fit} against {valid}");
    assert_eq!(outcome.base_margin, 0.5 / fit as f64);

    // The test part's labels scrambled: the same figures.
    let blind = search(&with_test_labels_scrambled(&raw, &spec), &spec);
    assert_eq!(figures(&blind), figures(&outcome));
    assert_eq!(blind.best, outcome.best);
}

#[test]
fn an_objective_of_the_labels_is_refused_where_the_validation_part_has_none() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("unlabelled.csv");
    let rows: String = (0..2000)
        .map(|i| format!("{},{}\n", 1_600_000_000 + 60 * i, (i as f64 * 0.3).sin()))
        .collect();
    std::fs::write(&csv, format!("timestamp,value\n{rows}")).unwrap();
    let stderr = tune_refuses(&[
        "--objective".as_ref(),
        "pa-k".as_ref(),
        "--data".as_ref(),
        csv.as_os_str(),
    ]);
    assert!(
        stderr.contains("PA%K area on the validation labels")
            && stderr.contains("needs at least 2 labelled anomaly segments")
            && stderr.contains("it has 0"),
        "{stderr}"
    );
    let stderr = tune_refuses(&[
        "--objective".as_ref(),
        "fit-f1".as_ref(),
        "--data".as_ref(),
        csv.as_os_str(),
    ]);
    assert!(
        stderr.contains("in the training and validation parts, and it has 0"),
        "{stderr}"
    );
}

#[test]
fn ctrl_c_stops_the_search_and_reports_the_finished_trials() {
    let out = super::interrupted_after(
        bin()
            .args([
                "tune",
                "--trials",
                "6",
                "--first-rung",
                "1",
                "--epochs",
                "2000",
            ])
            .args(QUICK_FLAGS)
            .args(["--set", "patience=0"]),
        4,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stdout.contains("stopped by Ctrl-C"), "{stdout}\n{stderr}");
    assert!(stdout.contains("best: trial"), "{stdout}");
    assert!(stdout.contains("pruned at rung 0"), "{stdout}");
    // The comparison on the test part is skipped after an interruption.
    assert!(!stdout.contains("| tuned |"), "{stdout}");
}
