//! Loading and preparing data: accepted forms, edge cases, and every bad input named in the issues.

use super::fixture;
use donut_explorer::config::DonutConfig;
use donut_explorer::data::load::Problem;
use donut_explorer::data::{DataError, Part, Prepared, load_csv, load_sample, parse_csv};

fn parse(text: &str) -> Result<donut_explorer::data::RawSeries, DataError> {
    parse_csv(text.as_bytes(), "test.csv")
}

fn fixture_error(name: &str) -> DataError {
    load_csv(&fixture(name)).expect_err(name)
}

/// The error of a fixture read with `duplicates = error` (today's strict reading).
fn strict_fixture_error(name: &str) -> DataError {
    let options = donut_explorer::data::LoadOptions {
        duplicates: donut_explorer::config::DuplicatePolicy::Error,
        ..Default::default()
    };
    donut_explorer::data::load_csv_with(&fixture(name), &options).expect_err(name)
}

#[test]
fn empty_file() {
    let e = fixture_error("empty.csv");
    assert_eq!(e.problem, Problem::Empty);
    assert!(e.to_string().contains("empty.csv"), "{e}");
}

#[test]
fn header_only() {
    let e = fixture_error("header_only.csv");
    assert_eq!((e.problem.clone(), e.line), (Problem::NoRows, Some(1)));
}

#[test]
fn no_header() {
    let e = fixture_error("no_header.csv");
    assert!(matches!(e.problem, Problem::NoHeader(_)), "{e}");
    assert_eq!(e.line, Some(1));
}

#[test]
fn text_in_a_number_column() {
    let e = fixture_error("text_in_number.csv");
    assert_eq!(e.line, Some(3));
    assert!(
        matches!(&e.problem, Problem::NotANumber { text, .. } if text == "abc"),
        "{e}"
    );
    let msg = e.to_string();
    assert!(
        msg.contains("text_in_number.csv") && msg.contains("line 3") && msg.contains("abc"),
        "{msg}"
    );
}

#[test]
fn nan_and_infinite_values() {
    for name in ["nan_value.csv", "inf_value.csv"] {
        let e = fixture_error(name);
        assert_eq!(e.line, Some(3), "{name}");
        assert!(matches!(e.problem, Problem::NotFinite(_)), "{name}: {e}");
    }
}

#[test]
fn duplicate_timestamps() {
    let e = strict_fixture_error("duplicate_ts.csv");
    assert_eq!(e.line, Some(4));
    assert_eq!(
        e.problem,
        Problem::Duplicate {
            ts: 1469376300,
            first_line: 3
        }
    );
}

#[test]
fn unsorted_timestamps() {
    let e = fixture_error("unsorted_ts.csv");
    assert_eq!(e.line, Some(4));
    assert!(matches!(e.problem, Problem::Unsorted { .. }), "{e}");
}

#[test]
fn off_grid_intervals() {
    let e = fixture_error("off_grid.csv");
    assert_eq!(e.line, Some(4));
    assert_eq!(
        e.problem,
        Problem::OffGrid {
            gap: 450,
            interval: 300
        }
    );
}

#[test]
fn labels_other_than_0_and_1() {
    let e = fixture_error("bad_label.csv");
    assert_eq!(e.line, Some(3));
    assert_eq!(e.problem, Problem::BadLabel("2".into()));
}

#[test]
fn a_file_that_does_not_exist() {
    let e = load_csv(std::path::Path::new("/no/such/file.csv")).unwrap_err();
    assert!(matches!(e.problem, Problem::Io(_)));
    assert!(e.to_string().starts_with("/no/such/file.csv"), "{e}");
}

#[test]
fn a_series_shorter_than_the_window() {
    let text: String = std::iter::once("timestamp,value\n".to_string())
        .chain((0..100).map(|i| format!("{},{}\n", 1000 + 60 * i, i % 7)))
        .collect();
    let raw = parse(&text).unwrap();
    let e = Prepared::new(&raw, &DonutConfig::default()).unwrap_err();
    assert!(
        matches!(e.problem, Problem::TooShort { window: 120, .. }),
        "{e}"
    );
    assert!(e.to_string().contains("window"), "{e}");
    // The same series fits a window of 10.
    let ok = Prepared::new(
        &raw,
        &DonutConfig {
            window: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(ok.len(), 100);
}

#[test]
fn missing_timestamps_are_filled_and_marked() {
    let raw = parse("timestamp,value,label\n0,1,0\n60,2,1\n240,5,0\n300,,0\n").unwrap();
    assert_eq!(raw.interval, 60);
    let prep = Prepared::new(
        &raw,
        &DonutConfig {
            window: 2,
            test_fraction: 0.34,
            valid_fraction: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(prep.timestamps, vec![0, 60, 120, 180, 240, 300]);
    assert_eq!(prep.missing, vec![false, false, true, true, false, true]);
    assert_eq!(prep.labels, vec![0, 1, 0, 0, 0, 0]);
    assert_eq!(prep.raw_values[2], 0.0);
    // Mean/std over normal, present train+valid points only: points 0 (1.0) and 4 (5.0)... in the
    // first 4 points only point 0 is normal and present -> std 0 -> a constant fit (std 1).
    assert_eq!(prep.parts, [0..4, 4..4, 4..6]);
    assert_eq!(prep.mean, 1.0);
    assert_eq!(prep.std, 1.0);
}

#[test]
fn standardisation_uses_normal_train_and_validation_points() {
    let mut text = String::from("timestamp,value,label\n");
    for i in 0..100 {
        let (v, l) = if i == 10 {
            (1000.0, 1)
        } else {
            ((i % 2) as f64 * 2.0, 0)
        };
        text.push_str(&format!("{},{},{}\n", i * 60, v, l));
    }
    let prep = Prepared::new(
        &parse(&text).unwrap(),
        &DonutConfig {
            window: 5,
            ..Default::default()
        },
    )
    .unwrap();
    // Values alternate 0, 2 -> mean 1, std 1, the anomaly excluded.
    assert!((prep.mean - 1.0).abs() < 0.03, "{}", prep.mean);
    assert!((prep.std - 1.0).abs() < 0.01, "{}", prep.std);
    assert_eq!(prep.part(Part::Test).len(), 30);
    assert_eq!(prep.part(Part::Valid).len(), 21);
    assert_eq!(prep.window_ends(Part::Train), 4..49);
}

#[test]
fn accepted_forms_timestamps_delimiters_bom_crlf_no_timestamp() {
    let a = parse("timestamp,value,label\n2016-07-24 16:00:00,1.5,0\n2016-07-24 16:05:00,2.5,1\n")
        .unwrap();
    assert_eq!(
        (a.timestamps.clone(), a.interval),
        (vec![1469376000, 1469376300], 300)
    );
    let b = parse("\u{feff}timestamp;value;label\r\n1469376000000;1,5;0\r\n1469376300000;2;0\r\n")
        .unwrap();
    // `1,5` in a `;` file is a decimal comma.
    assert_eq!(b.values, vec![1.5, 2.0]);
    assert_eq!(b.notes.len(), 1, "{:?}", b.notes);
    let c = parse("\u{feff}value\tlabel\r\n1.0\t0\r\n2.0\t1\r\n").unwrap();
    assert!(!c.has_timestamps && c.has_labels);
    assert_eq!(c.timestamps, vec![0, 1]);
    let d = parse("\"timestamp\",\"value\",\"extra\"\n\"1469376000\",\"3\",\"x\"\n").unwrap();
    assert_eq!(d.values, vec![3.0]);
    assert!(!d.has_labels);
}

#[test]
fn roughness_of_a_line_is_zero_and_of_noise_is_positive() {
    use donut_explorer::data::roughness;
    let line: Vec<f32> = (0..50).map(|i| i as f32 * 0.1).collect();
    assert!(roughness(&line, &[false; 50]) < 1e-10);
    let zigzag: Vec<f32> = (0..50)
        .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
        .collect();
    assert!((roughness(&zigzag, &[false; 50]) - 16.0).abs() < 1e-9);
}

#[test]
fn the_checked_in_sample_is_what_the_generator_makes() {
    use donut_explorer::data::sample::{SampleSpec, generate, to_csv};
    let text = to_csv(&generate(&SampleSpec::default()));
    assert_eq!(
        text,
        donut_explorer::data::SAMPLE_CSV,
        "run `donut-explorer generate-sample` to refresh sample_data/sample.csv"
    );
    let raw = load_sample().unwrap();
    let prep = Prepared::new(&raw, &DonutConfig::default()).unwrap();
    assert_eq!(prep.len(), 28 * 288);
    assert!(prep.missing_count() > 10, "the sample shows missing points");
    assert!(
        prep.anomaly_count() > 20,
        "the sample has labelled anomalies"
    );
    assert!(
        prep.labels[prep.part(Part::Test)].contains(&1),
        "the test part has anomalies to find"
    );
}

mod fuzz {
    //! The loader on arbitrary and on CSV-shaped random input: an error or a valid series, never a panic.
    use super::parse;
    use proptest::prelude::*;

    fn csv_like() -> impl Strategy<Value = String> {
        let cell = prop_oneof![
            Just(String::new()),
            "-?[0-9]{1,12}(\\.[0-9]{0,4})?",
            "(NaN|inf|-inf|1e308|-1e308|1e-320)",
            "20[0-9]{2}-[01][0-9]-[0-3][0-9]( [0-2][0-9]:[0-5][0-9](:[0-5][0-9])?)?",
            "[a-z\"; \t]{0,6}",
        ];
        let row = proptest::collection::vec(cell, 0..5).prop_map(|cells| cells.join(","));
        let header = prop_oneof![
            Just("timestamp,value,label"),
            Just("value"),
            Just("value,label"),
            Just("label;value;timestamp"),
            Just("x,y")
        ];
        (
            header,
            proptest::collection::vec(row, 0..30),
            prop_oneof![Just("\n"), Just("\r\n")],
        )
            .prop_map(|(h, rows, nl)| format!("{h}{nl}{}", rows.join(nl)))
    }

    /// Cases per fuzz test: 1,500 in the plain test run; CI runs a longer pass with
    /// `DONUT_FUZZ_CASES` set (see `.ci/run`).
    fn cases() -> u32 {
        std::env::var("DONUT_FUZZ_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1500)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(cases()))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = donut_explorer::data::parse_csv(&bytes[..], "fuzz.csv");
        }

        #[test]
        fn csv_shaped_input_loads_or_names_a_line(text in csv_like()) {
            match parse(&text) {
                Ok(raw) => {
                    prop_assert!(!raw.timestamps.is_empty());
                    prop_assert!(raw.timestamps.windows(2).all(|w| w[0] < w[1]));
                    prop_assert!(raw.values.iter().all(|v| v.is_nan() || v.is_finite()));
                    prop_assert!(raw.labels.iter().all(|&l| l <= 1));
                    // Whatever loads also prepares or says why, without panicking.
                    let config = donut_explorer::config::DonutConfig { window: 2, ..Default::default() };
                    if let Ok(prep) = donut_explorer::data::Prepared::new(&raw, &config) {
                        prop_assert!(prep.values.iter().all(|v| v.is_finite()));
                        prop_assert!(prep.std.is_finite() && prep.std > 0.0);
                    }
                }
                Err(e) => prop_assert!(e.to_string().starts_with("test.csv")),
            }
        }
    }
}

mod odd_inputs {
    //! The rest of the hostile-input corpus: each input gets a clear error or a documented handling.
    use super::parse;
    use donut_explorer::config::DonutConfig;
    use donut_explorer::data::Prepared;
    use donut_explorer::data::load::Problem;

    fn series(values: impl Iterator<Item = String>) -> String {
        std::iter::once("timestamp,value,label\n".to_string())
            .chain(
                values
                    .enumerate()
                    .map(|(i, v)| format!("{},{v}\n", 1_600_000_000 + 60 * i as i64)),
            )
            .collect()
    }

    #[test]
    fn huge_values_are_an_error_when_they_cannot_be_standardised() {
        let text = series((0..300).map(|i| {
            if i % 2 == 0 {
                "1e308,0".to_string()
            } else {
                "-1e308,0".to_string()
            }
        }));
        let raw = parse(&text).unwrap();
        let e = Prepared::new(
            &raw,
            &DonutConfig {
                window: 10,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.problem, Problem::Unstandardisable, "{e}");
    }

    #[test]
    fn a_constant_series_is_centred_with_std_1() {
        let raw = parse(&series((0..300).map(|_| "42,0".to_string()))).unwrap();
        let prep = Prepared::new(
            &raw,
            &DonutConfig {
                window: 10,
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!((prep.mean, prep.std), (42.0, 1.0));
        assert!(prep.values.iter().all(|&v| v == 0.0));
    }

    #[test]
    fn all_points_anomalous_is_an_error() {
        let raw = parse(&series((0..300).map(|i| format!("{i},1")))).unwrap();
        let e = Prepared::new(
            &raw,
            &DonutConfig {
                window: 10,
                ..Default::default()
            },
        )
        .unwrap_err();
        assert_eq!(e.problem, Problem::NoNormalPoints);
        assert!(e.to_string().contains("labelled anomalous"), "{e}");
    }

    #[test]
    fn invalid_utf8_names_the_line() {
        let mut bytes = b"timestamp,value\n1,2\n2,".to_vec();
        bytes.extend([0xff, 0xfe]);
        bytes.extend(b"\n");
        let e = donut_explorer::data::parse_csv(&bytes[..], "bad.csv").unwrap_err();
        assert_eq!((e.problem.clone(), e.line), (Problem::InvalidUtf8, Some(3)));
    }

    #[test]
    fn a_100_mb_line_is_an_error_not_a_hang_or_crash() {
        let mut text = String::with_capacity(101 << 20);
        text.push_str("timestamp,value\n1,2\n2,");
        text.extend(std::iter::repeat_n('9', 100 << 20));
        text.push_str("x\n");
        let e = parse(&text).unwrap_err();
        assert_eq!(e.line, Some(3));
        let msg = e.to_string();
        assert!(
            msg.len() < 300,
            "the message shortens the cell: {} bytes",
            msg.len()
        );
        assert!(matches!(e.problem, Problem::NotANumber { .. }));
    }

    #[test]
    fn semicolon_files_and_millisecond_timestamps_are_understood() {
        let raw =
            parse("timestamp;value;label\n1469376000000;1.5;0\n1469376300000;2.5;1\n").unwrap();
        assert_eq!(raw.timestamps, vec![1469376000, 1469376300]);
        assert_eq!(raw.labels, vec![0, 1]);
    }

    #[test]
    fn negative_and_far_future_timestamps_are_errors() {
        let e = parse("timestamp,value\n-60,1\n0,2\n").unwrap_err();
        assert!(
            matches!(e.problem, Problem::TimestampOutOfRange(_)) && e.line == Some(2),
            "{e}"
        );
        let e = parse("timestamp,value\n3000-01-01 00:00:00,1\n99999-01-01,2\n").unwrap_err();
        assert!(
            matches!(
                e.problem,
                Problem::TimestampOutOfRange(_) | Problem::BadTimestamp(_)
            ) && e.line == Some(3),
            "{e}"
        );
        let e = parse("timestamp,value\n1969-12-31 23:00:00,1\n").unwrap_err();
        assert!(matches!(e.problem, Problem::TimestampOutOfRange(_)), "{e}");
    }

    #[test]
    fn a_row_with_too_few_fields_names_the_column() {
        let e = parse("timestamp,value,label\n1,2,0\n2,3\n").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(
            matches!(&e.problem, Problem::MissingField { column, .. } if column == "label"),
            "{e}"
        );
    }
}
