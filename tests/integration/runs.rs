//! Saved runs: the round trip is exact, and damaged, truncated or newer files are refused clearly.

use super::quick_config;
use donut_explorer::data::{Part, Prepared, load_sample};
use donut_explorer::model::device_for;
use donut_explorer::pipeline::{RunRecord, run};
use donut_explorer::runfile::{FORMAT_VERSION, RunFileError, decode, encode, load, model_of, save};
use donut_explorer::train::NoHooks;

fn saved_run() -> (RunRecord, Prepared) {
    let config = quick_config();
    let prep = Prepared::new(&load_sample().unwrap(), &config).unwrap();
    let saved = run(&prep, &config, &[Part::Test], &mut NoHooks).unwrap();
    (saved, prep)
}

#[test]
fn save_and_load_round_trip_is_bit_identical_and_scores_the_same() {
    let (saved, prep) = saved_run();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("run.donut");
    save(&path, &saved).unwrap();
    let loaded = load(&path).unwrap();
    assert_eq!(loaded, saved, "every field survives");
    let bits = |r: &RunRecord| {
        r.weights
            .iter()
            .flat_map(|w| w.values.iter().map(|v| v.to_bits()))
            .collect::<Vec<u32>>()
    };
    assert_eq!(bits(&loaded), bits(&saved));
    // The rebuilt model scores exactly like the original weights.
    let model = model_of(&loaded, "run.donut").unwrap();
    assert_eq!(model.weights(), saved.weights);
    let ends: Vec<usize> = prep.window_ends(Part::Test).take(40).collect();
    let device = device_for(saved.config.backend);
    let a = donut_explorer::score::score_windows(
        &model,
        &prep,
        &ends,
        &saved.config,
        &device,
        &mut |_| true,
    )
    .unwrap();
    let original = model_of(&saved, "again").unwrap();
    let b = donut_explorer::score::score_windows(
        &original,
        &prep,
        &ends,
        &saved.config,
        &device,
        &mut |_| true,
    )
    .unwrap();
    assert_eq!(a, b);
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn a_file_truncated_at_any_byte_is_rejected() {
    let (saved, _) = saved_run();
    let bytes = encode(&saved).unwrap();
    for cut in 0..bytes.len() {
        match decode(&bytes[..cut], "cut.donut") {
            Err(RunFileError::Truncated { .. }) => {}
            Err(RunFileError::NotARunFile(_)) if cut == 0 => {}
            other => panic!(
                "cut at {cut} of {}: {:?}",
                bytes.len(),
                other.map(|_| "loaded")
            ),
        }
    }
    assert!(decode(&bytes, "whole.donut").is_ok());
}

#[test]
fn damaged_newer_and_foreign_files_get_clear_messages() {
    let (saved, _) = saved_run();
    let mut bytes = encode(&saved).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x40;
    let e = decode(&bytes, "flip.donut").unwrap_err();
    assert!(matches!(e, RunFileError::Damaged(_)), "{e}");

    let mut newer = encode(&saved).unwrap();
    newer[8..12].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
    let e = decode(&newer, "new.donut").unwrap_err().to_string();
    assert!(
        e.contains("newer donut-explorer") && e.contains("new.donut"),
        "{e}"
    );

    let e = decode(b"timestamp,value\n1,2\n", "data.csv").unwrap_err();
    assert!(matches!(e, RunFileError::NotARunFile(_)), "{e}");
}

#[test]
fn a_run_file_of_the_first_release_loads_and_scores() {
    // Written by donut-explorer 0.1 (format 1, commit 04533bb): `train --data
    // run-format1-data.csv --set window=24 --set hidden_width=16 --set epochs=3 ... --save`,
    // whose --json printed best_f1 {f1 0.8571428571428571, threshold 9.623384475708008}.
    let path = super::fixture("run-format1.donut");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 1);
    let run = load(&path).unwrap();
    let m = run.metrics.unwrap();
    assert_eq!(
        (m.best_f1.f1, m.best_f1.threshold),
        (0.8571428571428571, 9.623384475708008)
    );
    assert_eq!(run.threshold.value, 9.623384475708008);
    assert_eq!(
        (
            run.stats.epochs_done,
            run.config.window,
            run.config.hidden_width
        ),
        (3, 24, 16)
    );
    assert_eq!(
        run.config.duplicates,
        donut_explorer::config::DuplicatePolicy::First,
        "settings added since take their defaults"
    );
    assert!(!run.history.steps.is_empty() && !run.history.snapshots.is_empty());
    // Its weights score the series again.
    let model = model_of(&run, "run-format1.donut").unwrap();
    let raw = donut_explorer::data::load_csv(&super::fixture("run-format1-data.csv")).unwrap();
    let prep = Prepared::new(&raw, &run.config).unwrap();
    let again = donut_explorer::pipeline::rescore(
        &run,
        &model,
        &prep,
        &run.config,
        &[Part::Test],
        &mut NoHooks,
    )
    .unwrap();
    assert!(
        again.scores[prep.part(Part::Test)]
            .iter()
            .all(|s| s.is_some_and(f64::is_finite))
    );
    assert!(again.metrics.unwrap().best_f1.f1 >= 0.5);
    // Saved again, it is written in today's format and reads back whole.
    let dir = tempfile::tempdir().unwrap();
    let resaved = dir.path().join("again.donut");
    save(&resaved, &run).unwrap();
    assert_eq!(
        u32::from_le_bytes(std::fs::read(&resaved).unwrap()[8..12].try_into().unwrap()),
        FORMAT_VERSION
    );
    assert_eq!(load(&resaved).unwrap(), run);
}
