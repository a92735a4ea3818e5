//! A trained run on new data: training statistics, threshold rules, the stream, `detect`.

use super::{bin, fixture, quick_config};
use donut_explorer::config::{DonutConfig, ThresholdChoice};
use donut_explorer::data::{DataWarning, Part, Prepared, RawSeries, load_sample};
use donut_explorer::eval::{Threshold, ThresholdRule, flags};
use donut_explorer::pipeline::detect::{
    ThresholdWanted, detect, prepare, resolve_threshold, write_alerts,
};
use donut_explorer::pipeline::stream::Stream;
use donut_explorer::pipeline::{RunRecord, choose_threshold, run};
use donut_explorer::train::NoHooks;

fn trained(config: &DonutConfig) -> (RunRecord, Prepared) {
    let prep = Prepared::new(&load_sample().unwrap(), config).unwrap();
    let record = run(&prep, config, &[Part::Test], &mut NoHooks).unwrap();
    (record, prep)
}

/// The points `range` of a raw series, as a file of their own would read.
fn cut(raw: &RawSeries, range: std::ops::Range<usize>) -> RawSeries {
    RawSeries {
        source: format!("{}[{}..{}]", raw.source, range.start, range.end),
        timestamps: raw.timestamps[range.clone()].to_vec(),
        values: raw.values[range.clone()].to_vec(),
        labels: raw.labels[range].to_vec(),
        ..raw.clone()
    }
}

#[test]
fn new_data_is_standardised_with_the_training_statistics() {
    let config = quick_config();
    let (record, prep) = trained(&config);
    let stats = record
        .standardisation
        .expect("a run keeps its training statistics");
    assert_eq!((stats.mean, stats.std), (prep.mean, prep.std));

    let raw = load_sample().unwrap();
    let n = raw.values.len();
    let tail = cut(&raw, n * 7 / 10..n);
    let (new, note) = prepare(&record, &tail).unwrap();
    assert!(note.is_none());
    assert_eq!((new.mean, new.std), (stats.mean, stats.std));
    let model = record.model().unwrap();
    let threshold = record.threshold;
    let base = detect(&model, &new, &config, threshold, &mut |_, _| true).unwrap();
    assert_eq!(base.scored_windows, new.len() - config.window + 1);
    assert!(base.scores[..config.window - 1].iter().all(Option::is_none));

    // The same file a few training standard deviations higher: its own statistics would hide
    // the shift; the training statistics show it in every score.
    let mut shifted = tail.clone();
    for v in &mut shifted.values {
        *v += 4.0 * stats.std;
    }
    let (high, _) = prepare(&record, &shifted).unwrap();
    assert!(
        high.warnings
            .iter()
            .any(|w| matches!(w, DataWarning::LevelShiftFromTraining { sigmas } if *sigmas > 3.0)),
        "{:?}",
        high.warnings
    );
    let moved = detect(&model, &high, &config, threshold, &mut |_, _| true).unwrap();
    let mean = |s: &[Option<f64>]| {
        let v: Vec<f64> = s.iter().flatten().copied().collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    assert!(
        mean(&moved.scores) > mean(&base.scores) + 1.5,
        "a level shift raises the scores: {} -> {}",
        mean(&base.scores),
        mean(&moved.scores)
    );
    assert!(
        moved.flagged > base.flagged,
        "{} vs {}",
        moved.flagged,
        base.flagged
    );
}

#[test]
fn each_threshold_rule_is_kept_and_chosen() {
    let config = DonutConfig {
        alarm_rate: 0.05,
        ..quick_config()
    };
    let (record, prep) = trained(&config);
    let rules: Vec<ThresholdRule> = record.thresholds.iter().map(|t| t.rule).collect();
    assert!(rules.contains(&ThresholdRule::BestF1Test), "{rules:?}");
    let validation = rules
        .iter()
        .copied()
        .find(|r| matches!(r, ThresholdRule::BestF1Validation { .. }))
        .expect("a validation threshold");
    let ThresholdRule::BestF1Validation { segments } = validation else {
        unreachable!()
    };
    let valid_labels = &prep.labels[prep.part(Part::Valid)];
    assert_eq!(
        segments,
        donut_explorer::eval::label_segments(valid_labels).len()
    );
    assert!(segments > 0);
    // A tail is fitted to the normal validation scores (peaks over threshold), above the
    // alarm rate's 5 % quantile.
    let pot = record
        .thresholds
        .iter()
        .find(|t| matches!(t.rule, ThresholdRule::Pot { .. }))
        .expect("a POT threshold");
    let alarm = ThresholdRule::AlarmRate {
        alarm_rate: 0.05,
        part: Part::Valid,
    };
    assert!(rules.contains(&alarm), "{rules:?}");
    // The default (`auto`) flags at the validation labels' best F1, not the test labels': the
    // sample's validation part holds enough labelled segments.
    assert_eq!(record.threshold.rule, validation);
    // The test rule's threshold is the test part's best F1.
    let test = record
        .thresholds
        .iter()
        .find(|t| t.rule == ThresholdRule::BestF1Test)
        .unwrap();
    assert_eq!(test.value, record.metrics.unwrap().best_f1.threshold);
    // The alarm rate flags about that share of the normal validation points.
    let at = |choice| choose_threshold(&record.thresholds, choice);
    let a = at(ThresholdChoice::AlarmRate);
    assert_eq!(a.rule, alarm);
    assert!(pot.value > a.value, "POT {} alarm {}", pot.value, a.value);
    assert_eq!(at(ThresholdChoice::Pot), *pot);
    let valid = prep.part(Part::Valid);
    let normal: Vec<f64> = valid
        .clone()
        .filter(|&i| prep.labels[i] == 0 && !prep.missing[i])
        .filter_map(|i| record.scores[i])
        .collect();
    let share = normal.iter().filter(|&&s| s >= a.value).count() as f64 / normal.len() as f64;
    assert!(
        (0.03..=0.06).contains(&share),
        "alarm rate 0.05 flagged {share}"
    );
    // Choices and their fallbacks.
    assert_eq!(
        at(ThresholdChoice::BestF1Test).rule,
        ThresholdRule::BestF1Test
    );
    let without_test: Vec<Threshold> = record
        .thresholds
        .iter()
        .copied()
        .filter(|t| t.rule != ThresholdRule::BestF1Test)
        .collect();
    assert_eq!(
        choose_threshold(&without_test, ThresholdChoice::BestF1Test).rule,
        validation
    );
    // Without validation labels, the validation rule falls back to the tail, then the alarm
    // rate.
    let label_free: Vec<Threshold> = vec![*pot, a];
    assert_eq!(
        choose_threshold(&label_free, ThresholdChoice::Validation),
        *pot
    );
    let only_alarm: Vec<Threshold> = vec![a];
    assert_eq!(
        choose_threshold(&only_alarm, ThresholdChoice::Validation).rule,
        alarm
    );
    assert!(
        choose_threshold(&[], ThresholdChoice::Validation)
            .value
            .is_infinite()
    );
    // `detect` resolves each rule from the run alone.
    for (wanted, rule) in [
        (
            ThresholdWanted::Rule(ThresholdChoice::Validation),
            validation,
        ),
        (
            ThresholdWanted::Rule(ThresholdChoice::BestF1Test),
            ThresholdRule::BestF1Test,
        ),
        (ThresholdWanted::AlarmRate(0.05), alarm),
        (ThresholdWanted::Rule(ThresholdChoice::Pot), pot.rule),
        (ThresholdWanted::Value(3.5), ThresholdRule::Chosen),
        (ThresholdWanted::Run, record.threshold.rule),
    ] {
        let (t, fallback) = resolve_threshold(&record, wanted).unwrap();
        assert_eq!(fallback, None, "{wanted:?}");
        assert_eq!(t.rule, rule);
        if wanted == ThresholdWanted::AlarmRate(0.05) {
            assert_eq!(t.value, a.value);
        }
    }
}

#[test]
fn a_stream_scores_each_point_as_a_batch_detection_does() {
    let config = quick_config();
    let (record, _) = trained(&config);
    let model = record.model().unwrap();
    let raw = load_sample().unwrap();
    let n = raw.values.len();
    let mut tail = cut(&raw, n - 400..n);
    // A gap of three points and an empty value, as a live feed has them.
    let gap: Vec<i64> = tail.timestamps.drain(200..203).collect();
    tail.values.drain(200..203);
    tail.labels.drain(200..203);
    tail.values[250] = f64::NAN;
    let emptied = tail.timestamps[250];
    let (prep, _) = prepare(&record, &tail).unwrap();
    let mut progress = Vec::new();
    let batch = detect(
        &model,
        &prep,
        &config,
        record.threshold,
        &mut |done, total| {
            progress.push((done, total));
            true
        },
    )
    .unwrap();
    // Progress counts windows (the completed series' points less the window's first W-1),
    // not the file's rows.
    let windows = prep.len() - config.window + 1;
    assert_ne!(windows, tail.values.len());
    assert_eq!(batch.scored_windows, windows);
    assert_eq!(progress.first(), Some(&(0, windows)));
    assert!(
        progress
            .iter()
            .all(|&(done, total)| done <= total && total == windows)
    );

    let stats = record.standardisation.unwrap();
    let mut stream = Stream::new(
        &model,
        &config,
        stats,
        record.threshold.value,
        tail.interval,
    );
    let mut points = Vec::new();
    for (&ts, &v) in tail.timestamps.iter().zip(&tail.values) {
        points.extend(stream.push(ts, v).unwrap());
    }
    // A late row is skipped.
    assert!(stream.push(tail.timestamps[10], 1.0).unwrap().is_empty());
    assert_eq!(stream.notes.skipped, 1);
    assert_eq!(stream.notes.filled, prep.len() - tail.timestamps.len());
    assert!(stream.notes.filled >= 3);
    assert_eq!(points.len(), prep.len());
    let streamed: Vec<Option<f64>> = points.iter().map(|p| p.score).collect();
    assert_eq!(streamed, batch.scores, "the same score for every point");
    let flagged: Vec<bool> = points.iter().map(|p| p.flagged).collect();
    assert_eq!(
        flagged,
        flags(&batch.scores, &prep.missing, record.threshold.value)
    );
    let value_at = |ts: i64| points.iter().find(|p| p.timestamp == ts).unwrap().value;
    assert!(
        gap.iter()
            .chain([&emptied])
            .all(|&ts| value_at(ts).is_none())
    );
}

/// `--follow` with a tail (SPOT): the scores are the batch's, the threshold starts at the run's
/// POT threshold and follows the points it does not flag; a point flagged is one whose score
/// reached the threshold in force when it came.
#[test]
fn a_streamed_tail_follows_the_normal_scores_and_keeps_the_batch_scores() {
    let config = DonutConfig {
        threshold_rule: ThresholdChoice::Pot,
        ..quick_config()
    };
    let (record, _) = trained(&config);
    assert!(
        matches!(record.threshold.rule, ThresholdRule::Pot { .. }),
        "{:?}",
        record.threshold
    );
    let model = record.model().unwrap();
    let raw = load_sample().unwrap();
    let n = raw.values.len();
    let tail = cut(&raw, n - 400..n);
    let (prep, _) = prepare(&record, &tail).unwrap();
    let batch = detect(&model, &prep, &config, record.threshold, &mut |_, _| true).unwrap();
    let spot = donut_explorer::eval::pot::Spot::new(
        &record.reference_scores,
        config.pot_level,
        config.pot_risk,
    )
    .unwrap();
    assert_eq!(spot.fit().threshold, record.threshold.value);
    let mut stream = Stream::new(
        &model,
        &config,
        record.standardisation.unwrap(),
        record.threshold.value,
        tail.interval,
    )
    .with_tail(spot);
    let mut points = Vec::new();
    let mut thresholds = Vec::new();
    for (&ts, &v) in tail.timestamps.iter().zip(&tail.values) {
        let before = stream.threshold();
        for p in stream.push(ts, v).unwrap() {
            thresholds.push((p, before));
            points.push(p);
        }
    }
    let streamed: Vec<Option<f64>> = points.iter().map(|p| p.score).collect();
    assert_eq!(streamed, batch.scores, "the same score for every point");
    for (p, before) in &thresholds {
        if let (Some(score), Some(_)) = (p.score, p.value) {
            assert_eq!(p.flagged, score >= *before, "{p:?} at {before}");
        }
    }
    assert_ne!(
        stream.threshold(),
        record.threshold.value,
        "the threshold moved with the stream"
    );
}

#[test]
fn alerts_csv_has_one_row_per_point_with_the_label_when_there_is_one() {
    let config = quick_config();
    let (record, _) = trained(&config);
    let raw = load_sample().unwrap();
    let n = raw.values.len();
    let tail = cut(&raw, n - 300..n);
    let (prep, _) = prepare(&record, &tail).unwrap();
    let model = record.model().unwrap();
    let found = detect(&model, &prep, &config, record.threshold, &mut |_, _| true).unwrap();
    let mut out = Vec::new();
    write_alerts(&mut out, &prep, &found).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("timestamp,value,score,flagged,label"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), prep.len());
    let flagged = rows
        .iter()
        .filter(|r| r.split(',').nth(3) == Some("1"))
        .count();
    assert_eq!(flagged, found.flagged);
    assert!(
        rows[0].split(',').nth(2) == Some(""),
        "no score before a full window"
    );
}

/// Trains the format-1 fixture's small model and saves it; returns the run file.
fn saved_run(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("run.donut");
    let out = bin()
        .args(["train", "--data"])
        .arg(fixture("run-format1-data.csv"))
        .args([
            "--set",
            "window=24",
            "--set",
            "hidden_width=16",
            "--epochs",
            "3",
        ])
        .args(["--set", "n_z=8", "--set", "mcmc_iterations=1", "--save"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

#[test]
fn detect_command_writes_alerts_and_follow_streams_the_same_scores() {
    let dir = tempfile::tempdir().unwrap();
    let run = saved_run(dir.path());
    let data = fixture("run-format1-data.csv");
    let alerts = dir.path().join("alerts.csv");
    let out = bin()
        .args(["detect", "--json", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(&alerts)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        report["at_threshold"]["adjusted"]["f1"].is_f64(),
        "{report}"
    );
    assert!(
        report["best_f1"]["f1"].as_f64().unwrap()
            >= report["at_threshold"]["adjusted"]["f1"].as_f64().unwrap()
    );
    let batch: Vec<String> = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(4).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(
        report["flagged"].as_u64().unwrap() as usize,
        batch.iter().filter(|l| l.ends_with(",1")).count()
    );

    // The same file on standard input, followed: one line per point, the same scores.
    let mut child = bin()
        .args(["detect", "--follow", "--run"])
        .arg(&run)
        .args(["--data", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(&std::fs::read(&data).unwrap()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let streamed: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    assert_eq!(streamed, batch);

    // A file that grows while it is followed.
    let growing = dir.path().join("growing.csv");
    let text = std::fs::read_to_string(&data).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let half = lines.len() / 2;
    std::fs::write(&growing, lines[..half].join("\n") + "\n").unwrap();
    let child = follow(&run, &growing);
    std::thread::sleep(std::time::Duration::from_millis(500));
    append(&growing, &lines[half..]);
    let (followed, _) = followed_points(child);
    assert_eq!(followed, batch, "the points written later are read too");

    // A followed file rotated twice: renamed away with a new file made at its path (with its own
    // header), then cut back and written on (no header).
    let rotating = dir.path().join("rotating.csv");
    let (header, rows) = (lines[0], &lines[1..]);
    let (a, b) = (rows.len() * 2 / 5, rows.len() * 4 / 5);
    let with_header = |part: &[&str]| format!("{header}\n{}\n", part.join("\n"));
    std::fs::write(&rotating, with_header(&rows[..a])).unwrap();
    let child = follow(&run, &rotating);
    std::thread::sleep(std::time::Duration::from_millis(700));
    std::fs::rename(&rotating, dir.path().join("rotating.csv.1")).unwrap();
    std::fs::write(&rotating, with_header(&rows[a..b])).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&rotating)
        .unwrap()
        .set_len(0)
        .unwrap();
    append(&rotating, &rows[b..]);
    let (followed, stderr) = followed_points(child);
    assert_eq!(
        followed, batch,
        "every row is read once, across both rotations: {stderr}"
    );
    assert!(
        stderr.contains("rotated (a new file stands at its path)")
            && stderr.contains("rotated (it was cut back)"),
        "{stderr}"
    );
}

/// `detect --follow --idle-exit 3` on `path` with the saved `run`, its output piped.
fn follow(run: &std::path::Path, path: &std::path::Path) -> std::process::Child {
    bin()
        .args(["detect", "--follow", "--idle-exit", "3", "--run"])
        .arg(run)
        .arg("--data")
        .arg(path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Appends `lines` (each ended by a newline) to the file at `path`.
fn append(path: &std::path::Path, lines: &[&str]) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all((lines.join("\n") + "\n").as_bytes()).unwrap();
}

/// The point lines a successful `follow` printed (its header line left out), and its stderr.
fn followed_points(child: std::process::Child) -> (Vec<String>, String) {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    let points = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(str::to_string)
        .collect();
    (points, stderr)
}

#[test]
fn detect_refuses_changed_model_settings_and_missing_rules_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let run = saved_run(dir.path());
    let out = bin()
        .args(["detect", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(fixture("run-format1-data.csv"))
        .args(["--set", "latent_dim=2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("latent_dim cannot change"), "{err}");
    let out = bin()
        .args(["detect", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(fixture("header_only.csv"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("header_only.csv"));
}

#[test]
fn a_window_reconstruction_explains_its_score() {
    use donut_explorer::score::{WindowSource, reconstruct};
    let config = quick_config();
    let (record, prep) = trained(&config);
    let model = record.model().unwrap();
    let device = donut_explorer::model::device_for(config.backend);
    let test = prep.part(Part::Test);
    // A window with missing points (MCMC imputes them) and the highest-scoring test window.
    let with_gap = test
        .clone()
        .find(|&e| prep.missing[e + 1 - prep.window..=e].contains(&true))
        .expect("the sample has gaps in its test part");
    let top = test
        .clone()
        .max_by(|&a, &b| {
            record.scores[a]
                .unwrap()
                .total_cmp(&record.scores[b].unwrap())
        })
        .unwrap();
    for end in [with_gap, top, test.start + 5] {
        let r = reconstruct(&model, &WindowSource::of(&prep), end, &config, &device);
        assert_eq!(r.input, prep.window_values(end));
        assert_eq!(r.missing, prep.missing[end + 1 - prep.window..=end]);
        assert_eq!(
            (r.mean.len(), r.std.len(), r.log_likelihood.len()),
            (prep.window, prep.window, prep.window)
        );
        assert!(r.std.iter().all(|s| *s > 0.0));
        let run_score = record.scores[end].unwrap();
        assert!(
            (r.score - run_score).abs() < 1e-3 * run_score.abs().max(1.0),
            "window {end}: reconstruction says {}, the run scored {run_score}",
            r.score
        );
        if end == with_gap {
            assert_eq!(r.imputed.len(), config.mcmc_iterations);
            let last = r.imputed.last().unwrap();
            for ((kept, given), missing) in last.iter().zip(&r.input).zip(&r.missing) {
                if !missing {
                    assert_eq!(kept, given, "present points are kept");
                }
            }
            assert!((0..prep.window).any(|i| r.missing[i] && last[i] != r.input[i]));
        }
    }
}

#[test]
fn a_stream_goes_on_past_bad_rows_naming_each_once_and_matches_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let run = saved_run(dir.path());
    let text = std::fs::read_to_string(fixture("run-format1-data.csv")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let ts = |i: usize| lines[i].split(',').next().unwrap().to_string();
    // Line numbers of the file written below: the header is line 1, rows follow in order.
    let mut out: Vec<String> = vec![lines[0].to_string()];
    let mut bad_lines = Vec::new();
    for (i, line) in lines.iter().enumerate().skip(1) {
        let row = match i {
            300 => format!("{},abc,0", ts(i)),
            320 => format!("{},NaN,0", ts(i)),
            340 => format!("{},inf,0", ts(i)),
            400 => format!("{},1e308,0", ts(i)),
            420 => ts(i), // a short row: no value field
            _ => line.to_string(),
        };
        if [300, 320, 340, 420].contains(&i) {
            bad_lines.push(out.len() + 1);
        }
        out.push(row);
        if i == 500 {
            // A row back in time, then a repeated timestamp.
            bad_lines.push(out.len() + 1);
            out.push(lines[450].to_string());
            bad_lines.push(out.len() + 1);
            out.push(lines[500].to_string());
        }
    }
    let messy = dir.path().join("messy.csv");
    std::fs::write(&messy, out.join("\n") + "\n").unwrap();

    // Followed on standard input: the watch goes on to the end, each problem named once.
    let mut child = bin()
        .args(["detect", "--follow", "--run"])
        .arg(&run)
        .args(["--data", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(std::fs::read(&messy).unwrap().as_slice())
            .unwrap();
    }
    let (streamed, stderr) = followed_points(child);
    for line in &bad_lines {
        let named = stderr.matches(&format!("line {line}:")).count();
        assert_eq!(named, 1, "line {line} named {named} times: {stderr}");
    }
    assert!(stderr.contains("6 bad rows"), "{stderr}");
    let last_ts = ts(lines.len() - 1);
    assert!(
        streamed.last().unwrap().starts_with(&last_ts),
        "the stream reached the file's end"
    );
    // The extreme point is flagged with a finite score, its value written readably.
    let extreme = streamed
        .iter()
        .find(|l| l.starts_with(&format!("{},", ts(400))))
        .unwrap();
    let cells: Vec<&str> = extreme.split(',').collect();
    assert_eq!(cells[1], "1e308", "{extreme}");
    let score: f64 = cells[2].parse().unwrap();
    assert!(score.is_finite() && score > 0.0, "{extreme}");
    assert_eq!(
        cells[3], "1",
        "the most extreme point is flagged: {extreme}"
    );
    // Every score is a finite number.
    for l in &streamed {
        let s = l.split(',').nth(2).unwrap();
        assert!(s.is_empty() || s.parse::<f64>().unwrap().is_finite(), "{l}");
    }

    // The batch reads the same file the same way (notes instead of lines on stderr): the same
    // points, scores and flags.
    let alerts = dir.path().join("alerts.csv");
    let out = bin()
        .args(["detect", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(&messy)
        .arg("--out")
        .arg(&alerts)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    // Four bad rows; the two rows that repeat a time (one back in time to it) are the duplicate
    // policy's: the first row of each time is kept, as the stream keeps it.
    assert!(err.contains("4 bad row(s)"), "{err}");
    assert!(
        err.contains("2 row(s) repeat an earlier timestamp"),
        "{err}"
    );
    let batch: Vec<String> = std::fs::read_to_string(&alerts)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(4).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(streamed, batch);
    // --strict stops at the first bad row, as before.
    let out = bin()
        .args(["detect", "--strict", "--run"])
        .arg(&run)
        .arg("--data")
        .arg(&messy)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 301") && err.contains("abc"), "{err}");
}

/// Flags at `threshold` of `record`'s model on `raw` with `mask_flagged` and `extreme_sigmas`
/// set as given.
fn flags_after_a_spike(
    record: &RunRecord,
    raw: &RawSeries,
    mask_flagged: bool,
    extreme_sigmas: f64,
) -> (Vec<bool>, Vec<Option<f64>>) {
    let model = record.model().unwrap();
    let config = DonutConfig {
        mask_flagged,
        extreme_sigmas,
        ..record.config.clone()
    };
    let (prep, _) = prepare(record, raw).unwrap();
    let found = detect(&model, &prep, &config, record.threshold, &mut |_, _| true).unwrap();
    (
        flags(&found.scores, &prep.missing, record.threshold.value),
        found.scores,
    )
}

/// The model both spike tests run (trained once, 8 epochs of the quick settings), its
/// preparation, and the sample's last 600 points without labels: new data to put a spike in.
fn spike_fixture() -> &'static (RunRecord, Prepared, RawSeries) {
    static FIXTURE: std::sync::OnceLock<(RunRecord, Prepared, RawSeries)> =
        std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let config = DonutConfig {
            epochs: 8,
            ..quick_config()
        };
        let (record, prep) = trained(&config);
        let raw = load_sample().unwrap();
        let n = raw.values.len();
        let mut tail = cut(&raw, n - 600..n);
        tail.labels.iter_mut().for_each(|l| *l = 0);
        (record, prep, tail)
    })
}

/// Where the spike tests put their spike in the fixture's new data.
const SPIKE_AT: usize = 300;

/// Points flagged after the spike.
fn trailing(flags: &[bool]) -> usize {
    (SPIKE_AT + 1..flags.len()).filter(|&i| flags[i]).count()
}

#[test]
fn a_flagged_spike_does_not_blind_the_windows_after_it() {
    let (record, prep, fresh) = spike_fixture();
    let mut tail = fresh.clone();
    // One point 25 training standard deviations up (the extreme bound is off here: the flag
    // alone masks it).
    let at = SPIKE_AT;
    tail.values[at] = prep.mean + 25.0 * prep.std;
    let (with_mask, _) = flags_after_a_spike(record, &tail, true, 0.0);
    let (without, _) = flags_after_a_spike(record, &tail, false, 0.0);
    assert!(
        with_mask[at] && without[at],
        "the spike is flagged either way"
    );
    let w = record.config.window;
    assert!(
        trailing(&without) >= w / 4,
        "without masking the spike's windows are flagged after it: {} of the next {}",
        trailing(&without),
        w
    );
    assert!(
        trailing(&with_mask) <= 3,
        "with masking the alarms end with the spike: {} after it",
        trailing(&with_mask)
    );
}

#[test]
fn one_extreme_value_does_not_blind_the_windows_after_it() {
    let (record, _, fresh) = spike_fixture();
    let mut tail = fresh.clone();
    let at = SPIKE_AT;
    tail.values[at] = 1e6;
    // The default: the extreme bound on, flagged points not masked.
    assert!(!record.config.mask_flagged && record.config.extreme_sigmas == 10.0);
    let (bounded, scores) = flags_after_a_spike(record, &tail, false, 10.0);
    let (unbounded, _) = flags_after_a_spike(record, &tail, false, 0.0);
    assert!(bounded[at], "the extreme point is flagged");
    assert!(scores.iter().flatten().all(|s| s.is_finite()));
    let w = record.config.window;
    assert!(
        trailing(&unbounded) >= w / 2,
        "without the bound its windows are flagged after it: {} of the next {w}",
        trailing(&unbounded)
    );
    assert!(
        trailing(&bounded) <= 3,
        "with the bound the alarms end with it: {} after it",
        trailing(&bounded)
    );
    // A new level beyond the bound (a tenth of a window and more) is kept as it is: its
    // windows are not imputed back to the old level.
    let mut shifted = fresh.clone();
    for v in &mut shifted.values[SPIKE_AT..] {
        *v += 1e6;
    }
    let (moved, _) = flags_after_a_spike(record, &shifted, false, 10.0);
    let (moved_unbounded, _) = flags_after_a_spike(record, &shifted, false, 0.0);
    assert_eq!(
        moved[SPIKE_AT + w..],
        moved_unbounded[SPIKE_AT + w..],
        "once the window is at the new level the bound changes nothing"
    );
}
