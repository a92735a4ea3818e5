//! Saved runs: the round trip is exact, and damaged, truncated or newer files are refused clearly.

use super::quick_config;
use donut_explorer::config::DonutConfig;
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

/// The file layout around a CBOR record (magic, format, length, deflated payload, CRC-32).
fn with_payload(cbor: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut deflate =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    deflate.write_all(cbor).unwrap();
    let payload = &deflate.finish().unwrap()[..];
    let mut out = b"DONUTRUN".to_vec();
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(payload);
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out
}

/// The record of an encoded run as a CBOR value, edited by `edit`, encoded again.
fn edited(
    saved: &RunRecord,
    edit: impl FnOnce(&mut Vec<(ciborium::Value, ciborium::Value)>),
) -> Vec<u8> {
    let bytes = encode(saved).unwrap();
    let payload = &bytes[20..bytes.len() - 4];
    let mut value: ciborium::Value =
        ciborium::from_reader(flate2::read::DeflateDecoder::new(payload)).unwrap();
    edit(match &mut value {
        ciborium::Value::Map(m) => m,
        _ => panic!("a record is a map"),
    });
    let mut again = Vec::new();
    ciborium::into_writer(&value, &mut again).unwrap();
    with_payload(&again)
}

#[test]
fn unknown_settings_are_refused_by_name_and_unknown_record_fields_are_read() {
    let (saved, _) = saved_run();
    // A setting of a newer version: refused, naming it and the version that wrote it.
    let bytes = edited(&saved, |record| {
        for (k, v) in record.iter_mut() {
            if k.as_text() == Some("config")
                && let ciborium::Value::Map(config) = v
            {
                config.push(("warp_factor".into(), 9.into()));
            }
            if k.as_text() == Some("app_version") {
                *v = "9.9.0".into();
            }
        }
    });
    let e = decode(&bytes, "future.donut").unwrap_err();
    assert!(matches!(e, RunFileError::UnknownSettings { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("future.donut") && text.contains("warp_factor") && text.contains("9.9.0"),
        "{text}"
    );
    // A field of the record itself that this build does not know: read, and ignored.
    let bytes = edited(&saved, |record| {
        record.push(("energy_used_joules".into(), 12.5.into()));
    });
    assert_eq!(decode(&bytes, "extra.donut").unwrap(), saved);
}

#[test]
fn latent_snapshots_are_saved_in_about_a_byte_a_value_and_load_exactly() {
    let (mut saved, _) = saved_run();
    let windows = 2_000;
    let dim = 3;
    let ends = std::sync::Arc::new((0..windows).collect::<Vec<usize>>());
    saved.history.snapshots = (0..128)
        .map(|s| {
            donut_explorer::history::LatentSnapshot {
                step: s * 10,
                epoch: s,
                dim,
                ends: ends.clone(),
                // Neighbouring windows overlap: their means move smoothly along the series.
                means: (0..windows * dim)
                    .map(|i| {
                        let (window, coordinate) = (i / dim, i % dim);
                        (window as f32 * 0.01 + coordinate as f32 + s as f32 * 0.1).sin() * 3.0
                    })
                    .collect(),
            }
            .rounded()
        })
        .collect();
    let without = {
        let mut r = saved.clone();
        r.history.snapshots.clear();
        encode(&r).unwrap().len()
    };
    let bytes = encode(&saved).unwrap();
    let per_value = (bytes.len() - without) as f64 / (128 * windows * dim) as f64;
    assert!(per_value < 1.0, "{per_value} bytes per snapshot value");
    assert_eq!(decode(&bytes, "snaps.donut").unwrap(), saved);
}

/// Scores the fixture series with a loaded run, as `detect` does: every full window scored.
fn detects(run: &RunRecord) -> donut_explorer::pipeline::detect::Detection {
    use donut_explorer::pipeline::detect;
    let raw = donut_explorer::data::load_csv(&super::fixture("run-format1-data.csv")).unwrap();
    let (prep, _) = detect::prepare(run, &raw).unwrap();
    let model = model_of(run, "fixture").unwrap();
    let found =
        detect::detect(&model, &prep, &run.config, run.threshold, &mut |_, _| true).unwrap();
    assert_eq!(found.scored_windows, prep.len() - run.config.window + 1);
    assert!(found.scores.iter().flatten().all(|s| s.is_finite()));
    found
}

#[test]
fn a_run_file_of_the_second_release_loads_and_scores() {
    // Written by donut-explorer at d5a3864 (format 2, CBOR): `train --data
    // run-format1-data.csv --set window=24 --set hidden_width=16 --epochs 3 --set n_z=16
    // --set mcmc_iterations=1 --set valid_every_steps=5 --save`, whose --json printed best_f1
    // {f1 0.8571428571428571, threshold 9.958353042602539}.
    let path = super::fixture("run-format2.donut");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 2);
    let run = load(&path).unwrap();
    let m = run.metrics.unwrap();
    assert_eq!(
        (m.best_f1.f1, m.best_f1.threshold),
        (0.8571428571428571, 9.958353042602539)
    );
    assert_eq!(run.threshold.value, 9.958353042602539);
    assert_eq!(
        run.config.threshold_rule,
        donut_explorer::config::DonutConfig::default().threshold_rule,
        "settings added since take their defaults"
    );
    assert!(run.standardisation.is_none() && run.thresholds.is_empty());
    assert!(!run.history.snapshots.is_empty() && !run.history.snapshots[0].means.is_empty());
    // Without training statistics, new data is standardised with its own (and told so).
    let raw = donut_explorer::data::load_csv(&super::fixture("run-format1-data.csv")).unwrap();
    let (_, note) = donut_explorer::pipeline::detect::prepare(&run, &raw).unwrap();
    assert!(
        note.unwrap()
            .contains("before its training statistics were kept")
    );
    detects(&run);
}

#[test]
fn a_run_file_of_this_release_loads_and_scores() {
    // Written by this release (format 3, deflated CBOR, packed snapshots) with the command of
    // the format-2 fixture; its --json printed best_f1 {f1 0.8571428571428571, threshold
    // 9.958353042602539} and flagged at the alarm rate's 3.0772669315338135 (no labelled
    // anomaly in its validation part).
    let path = super::fixture("run-format3.donut");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(u32::from_le_bytes(bytes[8..12].try_into().unwrap()), 3);
    let run = load(&path).unwrap();
    assert_eq!(run.metrics.unwrap().best_f1.f1, 0.8571428571428571);
    assert_eq!(run.threshold.value, 3.0772669315338135);
    assert!(matches!(
        run.threshold.rule,
        donut_explorer::eval::ThresholdRule::AlarmRate { .. }
    ));
    assert_eq!(run.thresholds.len(), 2);
    assert!(run.standardisation.is_some() && !run.reference_scores.is_empty());
    assert_eq!(run.history.snapshots.len(), 5);
    let found = detects(&run);
    // The same points score the same with the run file's model as in the run (the fixture
    // data is the run's data; a window's score depends on the model, the seed and the window);
    // the settings this release added take their defaults, which score it as it was scored.
    let model = model_of(&run, "fixture").unwrap();
    let raw = donut_explorer::data::load_csv(&super::fixture("run-format1-data.csv")).unwrap();
    let prep = Prepared::new_with(&raw, &run.config, run.standardisation).unwrap();
    assert!(!run.config.mask_flagged, "an older file takes the default");
    let rescored = donut_explorer::pipeline::rescore(
        &run,
        &model,
        &prep,
        &run.config,
        &[Part::Test],
        &mut NoHooks,
    )
    .unwrap();
    // The file was scored through burn's modules; this release scores on the fused engine's
    // forward passes, which sum in another order: equal to rounding.
    let test = prep.part(Part::Test);
    let close = |scores: &[Option<f64>]| {
        scores
            .iter()
            .zip(&run.scores[test.clone()])
            .all(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                (a, b) => a == b,
            })
    };
    assert!(
        close(&rescored.scores[test.clone()]),
        "rescored as it was scored"
    );
    assert!(
        close(&found.scores[test.clone()]),
        "detected as it was scored"
    );
    // Masking flagged points, the scores agree up to the first flagged point, and the windows
    // after it differ (its value is imputed there).
    let masked = DonutConfig {
        mask_flagged: true,
        ..run.config.clone()
    };
    let again = donut_explorer::pipeline::rescore(
        &run,
        &model,
        &prep,
        &masked,
        &[Part::Test],
        &mut NoHooks,
    )
    .unwrap();
    let first_flag = test
        .clone()
        .find(|&i| run.scores[i].is_some_and(|s| s >= run.threshold.value))
        .unwrap();
    assert_eq!(
        again.scores[test.start..=first_flag],
        rescored.scores[test.start..=first_flag]
    );
    assert_ne!(again.scores[test.clone()], rescored.scores[test]);
}
