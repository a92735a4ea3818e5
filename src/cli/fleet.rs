//! `fleet`: one model per KPI of a folder, trained side by side or as one shard of an array job
//! (`fleet train`), reported together (`fleet report`), run on new data (`fleet detect`).

use super::interrupt::{INTERRUPTED, interrupted, stop_on_ctrl_c};
use super::{RunArgs, bar_style, write_file};
use crate::fleet::{self, FleetSpec, KpiStatus, Outcome, ReportRow, Shard};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use std::fmt::Write as _;
use std::path::PathBuf;

/// `fleet`'s subcommands.
#[derive(Subcommand, Debug)]
pub enum FleetCommand {
    /// Train one model per CSV (resumable; one shard of an array job with --shard or a
    /// scheduler's environment).
    Train(Box<FleetTrainArgs>),
    /// One row per KPI of an output folder (merging every shard's), the most anomalous now first.
    Report(FleetReportArgs),
    /// Each KPI's model on its new data: alerts per KPI, ranked.
    Detect(FleetDetectArgs),
}

/// Where the fleet's CSVs are.
#[derive(Args, Debug, Clone)]
#[group(required = true, multiple = false)]
pub struct FleetInput {
    /// A folder of CSVs, one KPI each (named by the file's stem).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A file listing the CSVs, one path a line (relative to the list's folder).
    #[arg(long, value_name = "FILE")]
    pub list: Option<PathBuf>,
}

impl FleetInput {
    fn kpis(&self) -> Result<Vec<fleet::Kpi>> {
        Ok(match (&self.data_dir, &self.list) {
            (Some(dir), _) => fleet::kpis_in_dir(dir)?,
            (None, Some(list)) => fleet::kpis_in_list(list)?,
            (None, None) => anyhow::bail!("say where the KPIs are: --data-dir DIR or --list FILE"),
        })
    }
}

/// `fleet train`'s arguments.
#[derive(Args, Debug)]
pub struct FleetTrainArgs {
    /// The KPIs.
    #[command(flatten)]
    pub input: FleetInput,
    /// The output folder: `<name>.donut` and `<name>.json` per KPI (shards may share it).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// This shard of the fleet, `I/N` (0-based); by default taken from a Slurm array task's
    /// or a Kubernetes Indexed Job's environment, else the whole fleet.
    #[arg(long, value_name = "I/N")]
    pub shard: Option<String>,
    /// With a Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`): the Job's `completions`.
    #[arg(long, value_name = "N")]
    pub shard_count: Option<usize>,
    /// KPIs trained at once, each on an even share of the cores (default: one per core, which
    /// trains more KPIs a minute than one at a time on every core: BENCHMARKS.md).
    #[arg(long, value_name = "N")]
    pub jobs: Option<usize>,
    /// Settings for every KPI (`--config`, `--set`, ...); `--data` is not used.
    #[command(flatten)]
    pub run: RunArgs,
    /// Print the outcomes as one JSON array as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

/// `fleet report`'s arguments.
#[derive(Args, Debug)]
pub struct FleetReportArgs {
    /// The output folder of `fleet train`.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Also write the table as CSV.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Also write the table as Markdown.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
    /// Print the rows as one JSON array on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// `fleet detect`'s arguments.
#[derive(Args, Debug)]
pub struct FleetDetectArgs {
    /// The output folder of `fleet train` (its `<name>.donut` files).
    #[arg(long, value_name = "DIR")]
    pub models: PathBuf,
    /// The new data, one CSV per KPI, named as the KPIs it continues.
    #[command(flatten)]
    pub input: FleetInput,
    /// Write `<name>.alerts.csv` and `<name>.detect.json` here.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Print the rows as one JSON array on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `fleet` subcommand.
pub fn fleet_command(command: &FleetCommand) -> Result<()> {
    match command {
        FleetCommand::Train(args) => train(args),
        FleetCommand::Report(args) => report(args),
        FleetCommand::Detect(args) => detect(args),
    }
}

fn train(args: &FleetTrainArgs) -> Result<()> {
    let config = args.run.config()?;
    let kpis = args.input.kpis()?;
    let shard = match &args.shard {
        Some(text) => Some(Shard::parse(text)?),
        None => Shard::from_env(|name| std::env::var(name).ok(), args.shard_count)?,
    };
    let jobs = args.jobs.unwrap_or_else(crate::threads::cores).max(1);
    let mine = fleet::select(&kpis, shard).len();
    let spec = FleetSpec {
        kpis,
        shard,
        out: args.out.clone(),
        config,
        jobs,
    };
    eprintln!(
        "fleet: {mine} of {} KPIs{} into {}, {} at a time",
        spec.kpis.len(),
        shard.map_or(String::new(), |s| format!(
            " (shard {}/{})",
            s.index, s.count
        )),
        args.out.display(),
        jobs.min(mine.max(1))
    );
    let bar = ProgressBar::new(mine as u64);
    bar.set_style(bar_style(
        "fleet [{elapsed_precise}] {wide_bar} {pos}/{len} KPIs",
    ));
    let say = |line: String| super::say_above(&bar, line);
    stop_on_ctrl_c("fleet", "the KPIs' report");
    let outcomes = fleet::train_fleet(&spec, &INTERRUPTED, &|progress| {
        let fleet::Progress::Settled(outcome) = progress else {
            return;
        };
        let s = outcome.summary();
        say(match outcome {
            Outcome::Trained(_) => format!(
                "{}: trained in {:.1} s; best F1 {} | flagged F1 {} | {} alerts in the last day",
                s.name,
                s.train_secs.unwrap_or(0.0),
                figure(s.best_f1),
                figure(s.flagged_f1),
                s.recent_alerts.unwrap_or(0)
            ),
            Outcome::UpToDate(_) => format!("{}: up to date, skipped", s.name),
            Outcome::Failed(_) => format!(
                "{}: failed: {}",
                s.name,
                s.error.as_deref().unwrap_or("unknown")
            ),
        });
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let failed = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Failed(_)))
        .count();
    eprintln!(
        "fleet: {} trained, {} up to date, {failed} failed",
        outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Trained(_)))
            .count(),
        outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::UpToDate(_)))
            .count()
    );
    if args.json {
        let summaries: Vec<_> = outcomes.iter().map(Outcome::summary).collect();
        println!("{}", serde_json::to_string(&summaries)?);
    }
    if interrupted() {
        eprintln!(
            "fleet: stopped by Ctrl-C after {} of {mine} KPIs; the same command resumes with the \
             rest",
            outcomes.len()
        );
        std::process::exit(130);
    }
    Ok(())
}

fn figure(value: Option<f64>) -> String {
    value.map_or("-".into(), |v| format!("{v:.3}"))
}

/// The report's columns.
const COLUMNS: [&str; 11] = [
    "kpi",
    "status",
    "points",
    "interval_secs",
    "best_f1",
    "flagged_f1",
    "recent_alerts",
    "recent_max_score",
    "threshold",
    "train_secs",
    "notes",
];

/// A report row's cells, in [`COLUMNS`] order.
fn cells(row: &ReportRow) -> Vec<String> {
    let s = row.summary.as_ref();
    let number = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.3}"));
    let notes = s.map_or(String::new(), |s| {
        s.error
            .clone()
            .into_iter()
            .chain(s.warnings.iter().cloned())
            .collect::<Vec<_>>()
            .join("; ")
    });
    vec![
        row.name.clone(),
        row.status.clone(),
        s.and_then(|s| s.points)
            .map_or(String::new(), |p| p.to_string()),
        s.and_then(|s| s.interval_secs)
            .map_or(String::new(), |p| p.to_string()),
        number(s.and_then(|s| s.best_f1)),
        number(s.and_then(|s| s.flagged_f1)),
        s.and_then(|s| s.recent_alerts)
            .map_or(String::new(), |a| a.to_string()),
        number(s.and_then(|s| s.recent_max_score)),
        number(s.and_then(|s| s.threshold)),
        number(s.and_then(|s| s.train_secs)),
        notes,
    ]
}

fn report(args: &FleetReportArgs) -> Result<()> {
    let rows = fleet::report(&args.out)?;
    if let Some(path) = &args.csv {
        let mut w = csv::Writer::from_writer(Vec::new());
        w.write_record(COLUMNS)?;
        for row in &rows {
            w.write_record(cells(row))?;
        }
        let bytes = w.into_inner().map_err(|e| e.into_error())?;
        write_file(path, |out| out.write_all(&bytes))?;
    }
    let mut markdown = format!(
        "| {} |\n|{}\n",
        COLUMNS.join(" | "),
        "---|".repeat(COLUMNS.len())
    );
    for row in &rows {
        let _ = writeln!(markdown, "| {} |", cells(row).join(" | "));
    }
    if let Some(path) = &args.markdown {
        write_file(path, |out| out.write_all(markdown.as_bytes()))?;
    }
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        print!("{markdown}");
    }
    let trained = rows
        .iter()
        .filter(|r| {
            r.summary
                .as_ref()
                .is_some_and(|s| s.status == KpiStatus::Trained)
        })
        .count();
    eprintln!(
        "{}: {} KPIs, {trained} trained, {} failed, {} not trained",
        args.out.display(),
        rows.len(),
        rows.iter().filter(|r| r.status == "failed").count(),
        rows.iter().filter(|r| r.status == "not trained").count()
    );
    Ok(())
}

fn detect(args: &FleetDetectArgs) -> Result<()> {
    let kpis = args.input.kpis()?;
    let rows = fleet::detect_fleet(&args.models, &kpis, args.out.as_deref())
        .with_context(|| format!("fleet detect --models {}", args.models.display()))?;
    if args.json {
        println!("{}", serde_json::to_string(&rows)?);
        return Ok(());
    }
    println!(
        "| kpi | alerts | alerts in the last day | max score | threshold | F1 | notes |\n|---|---|---|---|---|---|---|"
    );
    for r in &rows {
        let notes = r
            .error
            .iter()
            .cloned()
            .chain(r.notes.iter().cloned())
            .collect::<Vec<_>>()
            .join("; ");
        println!(
            "| {} | {} | {} | {} | {} | {} | {notes} |",
            r.name,
            r.alerts,
            r.recent_alerts,
            figure(r.max_score),
            figure(r.threshold),
            figure(r.f1)
        );
    }
    Ok(())
}
