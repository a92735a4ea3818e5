//! `detect`: a saved run's model on new data, a whole file or (`--follow`) a point at a time.

use super::follow::{FollowedFile, Rotation};
use super::{ColumnArgs, ProgressHooks, say_summary, warn_about, write_file};
use crate::config::{DonutConfig, ThresholdChoice};
use crate::data::{self, LenientRow, RawSeries, RowReader};
use crate::eval::{F1Score, Threshold};
use crate::pipeline::RunRecord;
use crate::pipeline::detect::{self as detection, Detection, ThresholdWanted};
use crate::pipeline::stream::{Stream, StreamPoint};
use anyhow::{Context, Result};
use clap::Args;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// `detect`'s arguments.
#[derive(Args, Debug)]
pub struct DetectArgs {
    /// The saved run (`train --save`) whose model scores the data.
    #[arg(long, value_name = "RUN_FILE")]
    pub run: PathBuf,
    /// The new data: a CSV (`timestamp,value[,label]`), or `-` for standard input.
    #[arg(long, value_name = "CSV")]
    pub data: PathBuf,
    /// Flag points whose anomaly score reaches this value.
    #[arg(long, group = "rule")]
    pub threshold: Option<f64>,
    /// Flag at the score that this share of the run's validation windows reach (needs no
    /// labels).
    #[arg(long, value_name = "RATE", group = "rule")]
    pub alarm_rate: Option<f64>,
    /// Flag at the run's threshold of this rule (default: the one the run flags at).
    #[arg(long, value_enum, value_name = "RULE", group = "rule")]
    pub threshold_from: Option<ThresholdChoice>,
    /// Write every point (timestamp, value, score, flagged, and label when the file has one)
    /// to this CSV.
    #[arg(long, value_name = "CSV")]
    pub out: Option<PathBuf>,
    /// Print one JSON object (the figures) as the last line of stdout; with --follow, one JSON
    /// object per point instead of CSV lines.
    #[arg(long)]
    pub json: bool,
    /// Read the file as it grows (or standard input as it comes) and print one line per point
    /// (timestamp, value, score, flagged) as soon as it arrives. A rotated file (a new one at
    /// the path, or the same one cut back) is followed from its start, its header skipped.
    #[arg(long, conflicts_with = "out")]
    pub follow: bool,
    /// With --follow on a file: stop after this many seconds without new data (default: follow
    /// until interrupted). Standard input ends at its end.
    #[arg(long, value_name = "SECS", requires = "follow")]
    pub idle_exit: Option<f64>,
    /// Stop at the first bad row (a value that is not a number, NaN or infinity, a row without
    /// a readable time or with too few fields) instead of reporting it and going on (a bad
    /// value is then a missing point, MCMC imputes it; a row that cannot be placed in time is
    /// skipped).
    #[arg(long)]
    pub strict: bool,
    /// Which columns hold the time, the value and the label.
    #[command(flatten)]
    pub columns: ColumnArgs,
    /// A scoring setting over the run's (n_z, mcmc_iterations, eval_delay, threads), as
    /// key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

impl DetectArgs {
    fn wanted(&self) -> ThresholdWanted {
        match (self.threshold, self.alarm_rate, self.threshold_from) {
            (Some(v), _, _) => ThresholdWanted::Value(v),
            (_, Some(r), _) => ThresholdWanted::AlarmRate(r),
            (_, _, Some(rule)) => ThresholdWanted::Rule(rule),
            _ => ThresholdWanted::Run,
        }
    }

    fn reads_stdin(&self) -> bool {
        self.data.as_os_str() == "-"
    }
}

/// The run and its scoring config (the run's, with the scoring settings of `--set`).
fn load_run(args: &DetectArgs) -> Result<(RunRecord, crate::model::DonutModel, DonutConfig)> {
    let saved = crate::runfile::load(&args.run)?;
    let name = args.run.display().to_string();
    let model = crate::runfile::model_of(&saved, &name)?;
    let config = saved.config.with_overrides(&args.set)?;
    saved
        .config
        .scoring_only(&config)
        .with_context(|| format!("detect --run {name}"))?;
    if let Some(rate) = args.alarm_rate
        && !(rate > 0.0 && rate <= 0.5)
    {
        anyhow::bail!("--alarm-rate {rate}: must be in (0, 0.5]");
    }
    Ok((saved, model, config))
}

/// The threshold the new data is flagged at; says on stderr when another rule stood in for
/// the one asked for.
fn threshold_for(saved: &RunRecord, args: &DetectArgs) -> Result<Threshold> {
    let (threshold, fallback) = detection::resolve_threshold(saved, args.wanted())?;
    if let Some(note) = fallback {
        eprintln!("{}: {note}", args.run.display());
    }
    Ok(threshold)
}

/// `detect` (see [`DetectArgs`]).
pub fn detect_command(args: &DetectArgs) -> Result<()> {
    if args.follow {
        return follow_command(args);
    }
    let (saved, model, config) = load_run(args)?;
    let threshold = threshold_for(&saved, args)?;
    let raw = load_data(args, &saved)?;
    let mut hooks = ProgressHooks::new("");
    let (prep, found) = detection::detect_series(
        &saved,
        &model,
        &config,
        &raw,
        threshold,
        &mut |done, windows| crate::pipeline::RunHooks::scoring(&mut hooks, done, windows),
    )?;
    drop(hooks);
    // A run saved before it kept its training statistics: the notes end with what was used.
    let stats_note = saved
        .standardisation
        .is_none()
        .then(|| found.notes.last().cloned())
        .flatten();
    if let Some(note) = &stats_note {
        eprintln!("warning: {note}");
    }
    warn_about(&prep);
    let say = |line: String| say_summary(args.json, line);
    say(format!(
        "{}: scored {} of {} points with {} (trained on {}) in {:.1} s; standardised with the training data's mean {:.4} and std {:.4}",
        found.source,
        found.scored_windows,
        prep.len(),
        args.run.display(),
        saved.source,
        found.score_secs,
        found.standardisation.mean,
        found.standardisation.std
    ));
    say(format!(
        "flagged {} points at threshold {:.3}: {}",
        found.flagged, found.threshold.value, found.threshold.rule
    ));
    match (&found.at_threshold, &found.best) {
        (Some([adj, delay, point]), Some(best)) => {
            say(format!(
                "at this threshold: P {:.3} R {:.3} F1 {:.3} | delay {}: F1 {:.3} | point-wise: F1 {:.3}",
                adj.precision, adj.recall, adj.f1, config.eval_delay, delay.f1, point.f1
            ));
            say(format!(
                "best F1 over every threshold (an upper bound: it uses these labels): {:.3} at {:.3}",
                best.best_f1.f1, best.best_f1.threshold
            ));
            if let (Some(pa_k), Some(chance)) = (&found.pa_k, &found.chance) {
                say(format!(
                    "PA%K area at this threshold {:.3}; chance (random scores flagging as many points, {} draws): F1 {:.3}, point-wise {:.3}, PA%K area {:.3}; best F1 {:.3}",
                    pa_k.area,
                    chance.draws,
                    chance.flagged_f1,
                    chance.flagged_f1_pointwise,
                    chance.flagged_pa_k.area,
                    chance.best_f1
                ));
            }
        }
        _ => say("no F1: the data has no labelled anomaly".into()),
    }
    if let Some(out) = &args.out {
        write_file(out, |w| detection::write_alerts(w, &prep, &found))?;
        eprintln!("alerts written to {}", out.display());
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report(args, &saved, &found, stats_note))?
        );
    }
    Ok(())
}

/// The figures of a detection as one JSON object (without the per-point scores).
fn report(
    args: &DetectArgs,
    saved: &RunRecord,
    found: &Detection,
    stats_note: Option<String>,
) -> serde_json::Value {
    let named =
        |f: &[F1Score; 3]| serde_json::json!({"adjusted": f[0], "delay": f[1], "pointwise": f[2]});
    serde_json::json!({
        "run": args.run.display().to_string(),
        "trained_on": saved.source,
        "data": found.source,
        "standardisation": found.standardisation,
        "standardisation_note": stats_note,
        "threshold": found.threshold,
        "threshold_rule": found.threshold.rule.to_string(),
        "flagged": found.flagged,
        "scored_windows": found.scored_windows,
        "score_secs": found.score_secs,
        "at_threshold": found.at_threshold.as_ref().map(named),
        "pa_k_at_threshold": found.pa_k,
        "best_f1": found.best.map(|m| m.best_f1),
        "best_f1_is": found.best.map(|_| "an upper bound: the best F1 over every threshold, picked with these labels"),
        "chance": found.chance,
        "notes": found.notes,
    })
}

/// Reads `--data` (a file, or all of standard input) with the run's duplicate policy, past bad
/// rows unless `--strict`.
fn load_data(args: &DetectArgs, saved: &RunRecord) -> Result<RawSeries> {
    let options = detection::load_options(saved, args.columns.choice(), args.strict);
    let raw = if args.reads_stdin() {
        data::parse_csv_with(std::io::stdin().lock(), "<stdin>", &options)?
    } else {
        data::load_csv_with(&args.data, &options)?
    };
    for note in &raw.notes {
        eprintln!("{}: {note}", raw.source);
    }
    Ok(raw)
}

/// `detect --follow`: prints each point as it arrives.
fn follow_command(args: &DetectArgs) -> Result<()> {
    let (saved, model, config) = load_run(args)?;
    let threshold = threshold_for(&saved, args)?;
    let stats = saved.standardisation.with_context(|| {
        format!(
            "{}: the run was saved before its training statistics were kept, and a stream cannot be standardised without them; score a whole file with `detect` (it uses the file's own), or train and save the run again",
            args.run.display()
        )
    })?;
    let (reader, name): (Box<dyn Read>, String) = if args.reads_stdin() {
        (Box::new(std::io::stdin().lock()), "<stdin>".into())
    } else {
        let name = args.data.display().to_string();
        let said = name.clone();
        let on_rotation = Box::new(move |rotation: Rotation| {
            let what = match rotation {
                Rotation::Replaced => "a new file stands at its path",
                Rotation::Truncated => "it was cut back",
            };
            eprintln!("{said}: rotated ({what}); going on from the start of the new content");
        });
        let idle = args.idle_exit.map(Duration::from_secs_f64);
        let followed = FollowedFile::open(&args.data, idle, on_rotation)
            .with_context(|| format!("opening {name}"))?;
        (Box::new(followed), name)
    };
    let mut rows = RowReader::new(reader, &name, &args.columns.choice())?;
    let interval = if rows.has_timestamps() {
        saved.data.as_ref().map_or(1, |d| d.interval_secs)
    } else {
        1
    };
    eprintln!(
        "{name}: following with {} (trained on {}, points every {interval} s), flagging at {:.3}: {}",
        args.run.display(),
        saved.source,
        threshold.value,
        threshold.rule
    );
    let mut stream = Stream::new(&model, &config, stats, threshold.value, interval);
    // A tail's threshold follows the stream (SPOT): each point not flagged joins the tail.
    if let crate::eval::ThresholdRule::Pot { risk, level, .. } = threshold.rule {
        match crate::eval::pot::Spot::new(&saved.reference_scores, level, risk) {
            Ok(tail) => {
                eprintln!(
                    "{name}: the tail takes in each point not flagged, so the threshold follows the stream's normal scores"
                );
                stream = stream.with_tail(tail);
            }
            Err(e) => eprintln!(
                "{name}: the run's validation scores give no tail to follow ({e}): the threshold stays at {:.3}",
                threshold.value
            ),
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if !args.json {
        writeln!(out, "timestamp,value,score,flagged")?;
    }
    let (mut flagged, mut scored, mut bad) = (0usize, 0usize, 0usize);
    let started = Instant::now();
    // Each bad row is named once on stderr and the watch goes on (unless --strict).
    let mut report = |e: &crate::data::DataError, action: &str| {
        bad += 1;
        eprintln!("{e}: {action}");
    };
    loop {
        let read = if args.strict {
            rows.next_row()?.map(LenientRow::Row)
        } else {
            rows.next_row_lenient()?
        };
        let row = match read {
            None => break,
            Some(LenientRow::Row(row)) => row,
            Some(LenientRow::Patched(row, e)) => {
                report(&e, "taken as a missing point");
                row
            }
            Some(LenientRow::Skipped(e)) => {
                report(&e, "skipped");
                continue;
            }
        };
        let skipped_before = stream.notes.skipped;
        let points = stream
            .push(row.ts, row.value)
            .with_context(|| format!("{name}, line {}", row.line))?;
        if stream.notes.skipped > skipped_before && !args.strict {
            report(
                &crate::data::DataError {
                    file: name.clone(),
                    line: Some(row.line),
                    problem: crate::data::Problem::Repeated { ts: row.ts },
                },
                "skipped (a stream keeps the first row of a time: duplicates = first)",
            );
        }
        for p in &points {
            print_point(&mut out, p, args.json)?;
            flagged += p.flagged as usize;
            scored += p.score.is_some() as usize;
        }
        out.flush()?;
    }
    let secs = started.elapsed().as_secs_f64();
    let notes = stream.notes;
    eprintln!(
        "{name}: {} points ({} scored, {} flagged; {} filled in as missing, {} late or repeated rows skipped, {} snapped to the grid; {bad} bad rows, each named above) in {secs:.1} s",
        stream.len(),
        scored,
        flagged,
        notes.filled,
        notes.skipped,
        notes.snapped
    );
    if stream.threshold() != threshold.value {
        eprintln!(
            "{name}: the tail's threshold moved from {:.3} to {:.3}",
            threshold.value,
            stream.threshold()
        );
    }
    Ok(())
}

/// One line per point: CSV, or a JSON object.
fn print_point(out: &mut dyn Write, p: &StreamPoint, json: bool) -> Result<()> {
    if json {
        writeln!(out, "{}", serde_json::to_string(p)?)?;
    } else {
        writeln!(
            out,
            "{},{},{},{}",
            p.timestamp,
            p.value
                .map(crate::pipeline::number_text)
                .unwrap_or_default(),
            p.score.map(crate::pipeline::score_text).unwrap_or_default(),
            p.flagged as u8
        )?;
    }
    Ok(())
}
