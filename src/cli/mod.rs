//! The headless command line: arguments -> one validated config -> a run, with a progress bar.

use crate::config::{BackendKind, DonutConfig, EncoderKind};
use crate::data::{self, Part, Prepared, RawSeries};
use crate::pipeline::{DataSummary, RunHooks, RunRecord};
use crate::threads::Host;
use crate::train::{Flow, TrainEvent, TrainHooks};
use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};

mod corpus;
mod detect;
mod fleet;
mod follow;
mod interrupt;
mod tune;

/// Train, watch, tune and understand DONUT. With no subcommand, opens the desktop app.
#[derive(Parser, Debug)]
#[command(name = "donut-explorer", version, about)]
pub struct Cli {
    /// What to do; none opens the app.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// App only: open this CSV instead of the bundled sample.
    #[arg(long, value_name = "CSV")]
    pub open: Option<PathBuf>,
    /// App only: start training as soon as the data is loaded.
    #[arg(long)]
    pub autostart: bool,
    /// App only: close the window after this many seconds (smoke tests, measurements).
    #[arg(long, value_name = "SECS")]
    pub quit_after: Option<f64>,
    /// App only: on exit, write frame-time statistics (JSON) to this file.
    #[arg(long, value_name = "JSON")]
    pub frame_report: Option<PathBuf>,
    /// App only: open this saved run (.donut) at launch.
    #[arg(long, value_name = "RUN")]
    pub run: Option<PathBuf>,
    /// App only: pin this saved run (.donut) at launch and open the compare window.
    #[arg(long, value_name = "RUN")]
    pub pin: Option<PathBuf>,
    /// App only: a setting over the saved ones, as key=value (repeatable); kept, like a change
    /// made with the controls.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub settings: Vec<String>,
    /// App only: show this folder of KPIs (one CSV each) in the Fleet tab.
    #[arg(long, value_name = "DIR")]
    pub fleet: Option<PathBuf>,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Train DONUT on a CSV, score its test part and report best F1.
    Train(TrainArgs),
    /// Repeat runs over the values of a setting (or a preset experiment) and several seeds.
    Sweep(SweepArgs),
    /// Search many settings at once (successive halving), judged on the validation part
    /// only, then compare the chosen settings with the base ones on the test part.
    Tune(tune::TuneArgs),
    /// Score new data with a saved run: its training statistics, a threshold fixed in advance;
    /// a whole file, or (--follow) a file as it grows or standard input.
    Detect(detect::DetectArgs),
    /// Judge settings on folders of labelled KPIs over several seeds: per KPI and as means, and
    /// each variant paired with the first per KPI and seed.
    Corpus(corpus::CorpusArgs),
    /// Many KPIs: one model per CSV of a folder, on one machine or as an array job of a
    /// cluster scheduler (Slurm, Kubernetes).
    Fleet {
        /// What to do with the fleet.
        #[command(subcommand)]
        command: fleet::FleetCommand,
    },
    /// Measure throughput (training, scoring, metric, CSV loading, painting) and print a table.
    Bench {
        /// Fewer repetitions (a smoke test, not a measurement).
        #[arg(long)]
        quick: bool,
        /// Print one JSON array of the rows as the last line of stdout.
        #[arg(long)]
        json: bool,
        /// Run only these groups (repeat or separate with commas).
        #[arg(long, value_delimiter = ',', value_parser = clap::builder::PossibleValuesParser::new(crate::bench::GROUPS))]
        only: Vec<String>,
    },
    /// Write the bundled sample series (seeded) to a CSV file.
    GenerateSample {
        /// Where to write it.
        #[arg(long, default_value = "sample_data/sample.csv")]
        out: PathBuf,
        /// Seed of the generator.
        #[arg(long, default_value_t = 2018)]
        seed: u64,
        /// Days of data (the bundled sample: 28).
        #[arg(long, default_value_t = 28)]
        days: usize,
        /// Seconds between points (the bundled sample: 300; 60 makes a one-minute KPI).
        #[arg(long, default_value_t = 300)]
        interval_secs: i64,
    },
}

/// Settings shared by every command that runs DONUT.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// The series: a CSV with a header (`timestamp,value[,label]`). Defaults to the bundled sample.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// A config file (TOML, or JSON) with any settings; the flags below override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Random seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Training epochs.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Latent dimension K.
    #[arg(long)]
    pub latent: Option<usize>,
    /// Encoder architecture.
    #[arg(long, value_enum)]
    pub encoder: Option<EncoderKind>,
    /// burn backend.
    #[arg(long, value_enum)]
    pub backend: Option<BackendKind>,
    /// Any setting, as key=value (repeatable); see the settings table in README.md.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Which columns hold the time, the value and the label.
    #[command(flatten)]
    pub columns: ColumnArgs,
}

/// The column flags of every command that reads a CSV.
#[derive(Args, Debug, Clone, Default)]
pub struct ColumnArgs {
    /// The column holding the time (a header name or a 1-based number); by default one named
    /// timestamp, time, date, ...
    #[arg(long, value_name = "NAME|N")]
    pub time_column: Option<String>,
    /// The column holding the value; by default one named value, kpi or y.
    #[arg(long, value_name = "NAME|N")]
    pub value_column: Option<String>,
    /// The column holding the label (1 = anomaly); by default one named label, is_anomaly, ...
    #[arg(long, value_name = "NAME|N")]
    pub label_column: Option<String>,
}

impl ColumnArgs {
    /// The columns chosen (None: by the usual names).
    pub fn choice(&self) -> data::ColumnChoice {
        data::ColumnChoice {
            time: self.time_column.clone(),
            value: self.value_column.clone(),
            label: self.label_column.clone(),
        }
    }
}

/// `train`'s arguments.
#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Data and settings.
    #[command(flatten)]
    pub run: RunArgs,
    /// Write every point with its score and flag to this CSV.
    #[arg(long)]
    pub detections: Option<PathBuf>,
    /// Print one JSON object (the report) as the last line of stdout.
    #[arg(long)]
    pub json: bool,
    /// Save the finished run (settings, weights, metrics, history, latent snapshots, scores) here.
    #[arg(long, value_name = "RUN_FILE")]
    pub save: Option<PathBuf>,
    /// Do not train: load a saved run's settings and weights, then score and evaluate `--data`.
    #[arg(long, value_name = "RUN_FILE", conflicts_with = "save")]
    pub load: Option<PathBuf>,
}

/// `sweep`'s arguments.
#[derive(Args, Debug)]
pub struct SweepArgs {
    /// Data and the settings shared by every run.
    #[command(flatten)]
    pub run: RunArgs,
    /// The setting to vary (any key of the settings table).
    #[arg(long, requires = "values", conflicts_with = "preset")]
    pub param: Option<String>,
    /// Its values, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub values: Vec<String>,
    /// A preset experiment from the DONUT literature: objective, ablation, latent-dist,
    /// entropy-weighting, encoder, latent-dim, entropy-weight, fixed-beta, injection-rate.
    #[arg(long)]
    pub preset: Option<String>,
    /// Seeds per value (seed, seed + 1, ...).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Runs at once.
    #[arg(long, default_value_t = 1)]
    pub jobs: usize,
    /// Also write the table as Markdown here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Also write the table as CSV here.
    #[arg(long)]
    pub csv: Option<PathBuf>,
    /// Print one JSON object (rows and runs) as the last line of stdout.
    #[arg(long)]
    pub json: bool,
}

impl RunArgs {
    /// Builds the validated config: defaults, then `--config`, then the flags, then `--set`.
    pub fn config(&self) -> Result<DonutConfig> {
        let mut config = match &self.config {
            Some(path) => DonutConfig::from_file(path)?,
            None => DonutConfig::default(),
        };
        if let Some(v) = self.seed {
            config.seed = v;
        }
        if let Some(v) = self.epochs {
            config.epochs = v;
        }
        if let Some(v) = self.latent {
            config.latent_dim = v;
        }
        if let Some(v) = self.encoder {
            config.encoder = v;
        }
        if let Some(v) = self.backend {
            config.backend = v;
        }
        Ok(config.with_overrides(&self.set)?)
    }

    /// Loads the data named by `--data` (with the column flags and `config`'s duplicate
    /// policy), or the bundled sample; says on stderr which loading policies were applied.
    pub fn load(&self, config: &DonutConfig) -> Result<RawSeries> {
        let raw = match &self.data {
            Some(path) => {
                let options = data::LoadOptions {
                    columns: self.columns.choice(),
                    duplicates: config.duplicates,
                    lenient: false,
                };
                data::load_csv_with(path, &options)?
            }
            None => data::load_sample()?,
        };
        for note in &raw.notes {
            eprintln!("{}: {note}", raw.source);
        }
        Ok(raw)
    }
}

/// Progress on stderr: a bar over the planned steps, its message the latest loss terms; then a
/// bar over the windows scored.
pub struct ProgressHooks {
    bar: ProgressBar,
    score_bar: Option<ProgressBar>,
    label: String,
    /// Take about this many latent snapshots over the run (0: none).
    snapshots: usize,
    total_steps: usize,
    /// Whether the run has taken its first preview (the only one the command line reports).
    previewed: bool,
}

impl ProgressHooks {
    /// A hidden bar until training starts; `label` prefixes the bar (e.g. a sweep's variant).
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            bar: ProgressBar::hidden(),
            score_bar: None,
            label: label.into(),
            snapshots: 0,
            total_steps: 0,
            previewed: false,
        }
    }

    /// Also take about `count` evenly spaced latent snapshots (for a saved run's replay).
    pub fn with_snapshots(mut self, count: usize) -> Self {
        self.snapshots = count;
        self
    }
}

/// A line for the user: above the progress bar on a terminal, plain on stderr otherwise.
fn say_above(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}")
    } else {
        bar.println(line)
    }
}

fn bar_style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

impl TrainHooks for ProgressHooks {
    fn event(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::Started { total_steps, .. } => {
                self.total_steps = total_steps;
                self.bar = ProgressBar::new(total_steps as u64);
                self.bar.set_style(bar_style(
                    "{prefix} train [{elapsed_precise}] {wide_bar} {pos}/{len} steps {msg}",
                ));
                self.bar.set_prefix(self.label.clone());
            }
            TrainEvent::Step(s) => {
                self.bar.set_position(s.step as u64);
                if s.step % 25 == 0 {
                    self.bar.set_message(format!(
                        "epoch {} loss {:.2} (recon {:.2}, prior {:.2}, entropy {:.2}) {:.0} win/s",
                        s.epoch + 1,
                        s.terms.total,
                        s.terms.recon,
                        s.terms.prior,
                        s.terms.entropy,
                        s.windows_per_sec
                    ));
                }
            }
            _ => {}
        }
    }

    fn poll(&mut self, _live: &mut crate::config::LiveSettings) -> Flow {
        Flow::Continue
    }
    fn latent_every_steps(&self) -> Option<usize> {
        // Step 0, every k steps, and the final one: at most `snapshots` in all, so that none is
        // thinned away.
        (self.snapshots > 0).then(|| {
            self.total_steps
                .div_ceil(self.snapshots.saturating_sub(2).max(1))
                .max(1)
        })
    }
}

impl RunHooks for ProgressHooks {
    fn wants_previews(&self) -> bool {
        // The first preview's time is part of every run's report (`first_detections_secs`);
        // nothing here shows the later ones, so they are not taken.
        !self.previewed
    }

    fn preview(&mut self, _preview: crate::pipeline::preview::Preview) {
        self.previewed = true;
    }

    fn score_after_training(&mut self) -> bool {
        self.bar.finish_and_clear();
        true
    }

    fn scoring(&mut self, done: usize, total: usize) -> bool {
        let label = &self.label;
        let bar = self.score_bar.get_or_insert_with(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(bar_style(
                "{prefix} score [{elapsed_precise}] {wide_bar} {pos}/{len} windows",
            ));
            bar.set_prefix(label.clone());
            bar
        });
        bar.set_position(done as u64);
        true
    }
}

impl Drop for ProgressHooks {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
        if let Some(bar) = &self.score_bar {
            bar.finish_and_clear();
        }
    }
}

/// The parts to score: every part when detections are written, else the test part.
fn parts_for(detections: bool) -> &'static [Part] {
    if detections {
        &Part::ALL
    } else {
        &[Part::Test]
    }
}

/// One line of figures, as `train` and each run of a sweep print it: the best F1 (named as the
/// upper bound it is), the F1 at the threshold the run flags at, and the baselines' (or why
/// there is no F1, and the threshold).
fn f1_line(record: &RunRecord) -> String {
    match (&record.metrics, &record.no_f1_reason) {
        (Some(m), _) => {
            let mut line = format!(
                "best F1 {:.3} (upper bound: its threshold {:.3} was picked with the test labels; P {:.3}, R {:.3}) | delay {}: {:.3} | point-wise: {:.3}",
                m.best_f1.f1,
                m.best_f1.threshold,
                m.best_f1.precision,
                m.best_f1.recall,
                record.config.eval_delay,
                m.best_f1_delay.f1,
                m.best_f1_pointwise.f1
            );
            if let Some(e) = &record.evaluation {
                line.push_str(&format!(
                    " | flagged at {:.3} ({}): F1 {:.3}",
                    e.flagged.threshold.value,
                    e.flagged.threshold.rule.short_name(),
                    e.flagged.adjusted.f1
                ));
            }
            line
        }
        (None, reason) => format!(
            "no F1: {}; points are flagged at {:.3}, {}",
            reason.as_deref().unwrap_or("no labels"),
            record.threshold.value,
            record.threshold.rule
        ),
    }
}

/// What a detector gets at one threshold, on one line.
fn at_threshold_text(at: &crate::eval::AtThreshold, delay: usize) -> String {
    format!(
        "P {:.3} R {:.3} F1 {:.3} | delay {delay}: {:.3} | point-wise: {:.3} | PA%K area {:.3} | {} points flagged, alarms trailing a segment by {:.1} points on average (at most {})",
        at.adjusted.precision,
        at.adjusted.recall,
        at.adjusted.f1,
        at.delay.f1,
        at.pointwise.f1,
        at.pa_k.area,
        at.flagged_points,
        at.tail.mean_points,
        at.tail.longest_points
    )
}

/// A line per threshold rule the run kept, with the test part's figures there (when it has
/// labels); the one the run flags at is marked.
fn threshold_lines(record: &RunRecord) -> Vec<String> {
    let delay = record.config.eval_delay;
    let choice = record.config.threshold_rule;
    let why = match crate::eval::pick_threshold(&record.thresholds, choice) {
        Some(picked) => match picked.fallback {
            Some(note) => format!(
                "points flagged by `threshold_rule = {}`: {note}",
                choice.name()
            ),
            None => format!(
                "points flagged by `threshold_rule = {}`: {}",
                choice.name(),
                picked.threshold.rule
            ),
        },
        None => format!(
            "points flagged by `threshold_rule = {}`: no rule has a threshold (nothing was scored)",
            choice.name()
        ),
    };
    std::iter::once(why)
        .chain(record.thresholds.iter().map(|t| {
            let mark = if *t == record.threshold { "*" } else { " " };
            let test = record
                .evaluation
                .as_ref()
                .and_then(|e| e.rules.iter().find(|at| at.threshold == *t))
                .map(|at| format!(": test {}", at_threshold_text(at, delay)))
                .unwrap_or_default();
            format!(
                "{mark} threshold {:.3}, {}{test}",
                t.value,
                t.rule.short_name()
            )
        }))
        .collect()
}

/// The model's figures beside Spectral Residual's and chance's, a row each (nothing without
/// labels).
fn baseline_lines(record: &RunRecord) -> Vec<String> {
    let Some(model) = &record.evaluation else {
        return Vec::new();
    };
    let row = |name: &str, best: f64, flagged: f64, pointwise: f64, area: f64, best_area: f64| {
        format!(
            "  {name:<34} {best:>7.3} {flagged:>10.3} {pointwise:>10.3} {area:>9.3} {best_area:>9.3}"
        )
    };
    // A detector's row from its figures on the test part.
    let evaluation_row = |name: &str, e: &crate::eval::TrackEvaluation| {
        row(
            name,
            e.best.best_f1.f1,
            e.flagged.adjusted.f1,
            e.best.best_f1_pointwise.f1,
            e.flagged.pa_k.area,
            e.best_pa_k.area,
        )
    };
    let mut lines = vec![
        "beside the baselines, on the test part (best F1 and best PA%K are upper bounds: picked with the test labels):".to_string(),
        format!(
            "  {:<34} {:>7} {:>10} {:>10} {:>9} {:>9}",
            "detector", "best F1", "flagged F1", "pt-wise", "PA%K", "best PA%K"
        ),
        evaluation_row("DONUT", model),
    ];
    if let Some(sr) = record
        .baselines
        .spectral_residual
        .as_ref()
        .and_then(|b| b.evaluation.as_ref())
    {
        lines.push(evaluation_row("Spectral Residual (no training)", sr));
    }
    if let Some(c) = &record.baselines.chance {
        lines.push(row(
            &format!("chance (mean of {} random tracks)", c.draws),
            c.best_f1,
            c.flagged_f1,
            c.best_f1_pointwise,
            c.flagged_pa_k.area,
            c.best_pa_k.area,
        ));
    }
    lines.push(
        "  (flagged: at each detector's own threshold by the run's rule; chance flags as many points as DONUT; pt-wise: point-wise F1 of the best threshold; PA%K: area under F1 over K = 0..100 % at the flagged threshold)".into(),
    );
    lines
}

/// Writes a file atomically (a temporary file beside it, then a rename), with the path in errors.
fn write_file(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<()> {
    crate::fsio::write_atomically(path, write)
        .with_context(|| format!("writing {}", path.display()))
}

/// Writes the detections CSV at the run's threshold, and its provenance beside it
/// (`<path>.json`).
fn write_detections_file(path: &Path, prep: &Prepared, record: &RunRecord) -> Result<()> {
    crate::pipeline::save_detections(path, prep, record, &record.threshold)
        .with_context(|| format!("writing {}", path.display()))
}

fn train_command(args: &TrainArgs) -> Result<()> {
    if let Some(path) = &args.load {
        return evaluate_saved(args, path);
    }
    let config = args.run.config()?;
    let raw = args.run.load(&config)?;
    let prep = Prepared::new(&raw, &config)?;
    let summary = DataSummary::of(&prep);
    warn_about(&prep);
    eprintln!(
        "{}: {} points every {} s, {} missing, {} anomalous ({:.2} %), roughness {:.3}; split {} / {} / {}",
        summary.source,
        summary.points,
        summary.interval_secs,
        summary.missing,
        summary.anomalies,
        summary.anomaly_ratio * 100.0,
        summary.roughness,
        summary.split[0],
        summary.split[1],
        summary.split[2]
    );
    // A saved run keeps latent snapshots for replay and comparison.
    let snapshots = if args.save.is_some() {
        crate::history::MAX_KEPT_SNAPSHOTS
    } else {
        0
    };
    let mut hooks = ProgressHooks::new("").with_snapshots(snapshots);
    let record = crate::pipeline::run(
        &prep,
        &config,
        parts_for(args.detections.is_some()),
        &mut hooks,
    )?;
    drop(hooks);
    if let Some(path) = &args.save {
        crate::runfile::save(path, &record)?;
        eprintln!("run saved to {}", path.display());
    }
    if let Some(path) = &args.detections {
        write_detections_file(path, &prep, &record)?;
        eprintln!("detections written to {}", path.display());
    }
    let say = |line: String| say_summary(args.json, line);
    say(f1_line(&record));
    for line in threshold_lines(&record) {
        say(line);
    }
    for line in baseline_lines(&record) {
        say(line);
    }
    say(format!(
        "trained {} epochs ({} steps) in {:.1} s at {:.0} windows/s; scored {} windows in {:.1} s (n_z {}, MCMC {})",
        record.stats.epochs_done,
        record.history.steps.len(),
        record.stats.train_secs,
        record.stats.train_windows_per_sec,
        record.scored_windows,
        record.score_secs,
        record.config.n_z,
        record.config.mcmc_iterations
    ));
    if let Some(best) = record.history.best_validation() {
        say(format!(
            "kept the parameters of step {} (lowest validation loss, {:.2})",
            best.step, best.terms.total
        ));
    }
    if let Some(step) = record.stats.stopped_early {
        say(format!(
            "stopped early at step {step}, in epoch {} of {}: the validation loss had not improved for {} validations (setting `patience`)",
            record.stats.epochs_done, record.config.epochs, record.config.patience
        ));
    }
    if let Some(secs) = record.stats.first_detections_secs {
        say(format!(
            "first preview detections (n_z {}) {secs:.2} s after the start",
            record.config.preview_n_z
        ));
    }
    if args.json {
        println!("{}", serde_json::to_string(&record.report())?);
    }
    Ok(())
}

/// Prints a line of a run's human summary: on stdout, or on stderr with `--json` (stdout then
/// holds the JSON object alone).
fn say_summary(json: bool, line: String) {
    if json {
        eprintln!("{line}")
    } else {
        println!("{line}")
    }
}

/// Says on stderr, once, what in the data makes the results doubtful.
fn warn_about(prep: &Prepared) {
    for warning in &prep.warnings {
        eprintln!("warning: {}: {warning}", prep.source);
    }
}

fn sweep_command(args: &SweepArgs) -> Result<()> {
    use crate::sweep::{SweepSpec, grid, preset, run_sweep, table, to_csv, to_markdown};
    let base = args.run.config()?;
    let variants = match (&args.preset, &args.param) {
        (Some(name), _) => preset(name).with_context(|| {
            let names: Vec<&str> = crate::sweep::PRESETS.iter().map(|p| p.0).collect();
            format!("unknown preset `{name}` (one of: {})", names.join(", "))
        })?,
        (None, Some(param)) => grid(param, &args.values),
        (None, None) => {
            anyhow::bail!("say what to sweep: --param NAME --values a,b,c, or --preset NAME")
        }
    };
    let raw = args.run.load(&base)?;
    if let Ok(prep) = Prepared::new(&raw, &base) {
        warn_about(&prep);
    }
    let spec = SweepSpec {
        variants,
        seeds: args.seeds.max(1),
        base,
        jobs: args.jobs.max(1),
        host: Host::Cli,
    };
    let total = spec.variants.len() as u64 * spec.seeds;
    let bar = ProgressBar::new(total);
    bar.set_style(bar_style(
        "sweep [{elapsed_precise}] {wide_bar} {pos}/{len} runs",
    ));
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let variants = spec.variants.clone();
    let say = |line: String| say_above(&bar, line);
    let runs = run_sweep(&raw, &spec, cancel, &|outcome| {
        match outcome {
            Ok(r) => say(format!(
                "{} seed {}: {} | {:.1} s at {:.0} win/s",
                variants[r.variant].label,
                r.seed,
                f1_line(&r.record),
                r.record.stats.train_secs,
                r.record.stats.train_windows_per_sec
            )),
            Err(e) => say(format!("failed: {e}")),
        }
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let rows = table(&spec.variants, &runs);
    let markdown = to_markdown(&rows, spec.base.eval_delay);
    println!("{markdown}");
    if let Some(path) = &args.markdown {
        write_file(path, |w| w.write_all(markdown.as_bytes()))?;
    }
    if let Some(path) = &args.csv {
        let text = to_csv(&rows)?;
        write_file(path, |w| w.write_all(text.as_bytes()))?;
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({
                "rows": rows,
                "runs": runs.iter().map(crate::sweep::SweepRun::to_json).collect::<Vec<_>>(),
            }))?
        );
    }
    if runs.len() as u64 != total {
        anyhow::bail!("{} of {} runs failed", total - runs.len() as u64, total);
    }
    Ok(())
}

/// `train --load`: score and evaluate with a saved run's weights, no training.
fn evaluate_saved(args: &TrainArgs, path: &Path) -> Result<()> {
    let saved = crate::runfile::load(path)?;
    let name = path.display().to_string();
    let model = crate::runfile::model_of(&saved, &name)?;
    let config = saved.config.with_overrides(&args.run.set)?;
    saved
        .config
        .scoring_only(&config)
        .with_context(|| format!("train --load {name}"))?;
    let raw = args.run.load(&config)?;
    // The model knows the training data's level: new data is standardised with it.
    let prep = Prepared::new_with(&raw, &config, saved.standardisation)?;
    warn_about(&prep);
    let mut hooks = ProgressHooks::new("");
    let record = crate::pipeline::rescore(
        &saved,
        &model,
        &prep,
        &config,
        parts_for(args.detections.is_some()),
        &mut hooks,
    )?;
    drop(hooks);
    say_summary(
        args.json,
        format!(
            "loaded {} (trained on {}, {} epochs); scored {} windows of {} in {:.1} s",
            name,
            saved.source,
            saved.stats.epochs_done,
            record.scored_windows,
            prep.source,
            record.score_secs
        ),
    );
    say_summary(args.json, f1_line(&record));
    for line in threshold_lines(&record)
        .into_iter()
        .chain(baseline_lines(&record))
    {
        say_summary(args.json, line);
    }
    if let Some(out) = &args.detections {
        write_detections_file(out, &prep, &record)?;
    }
    if args.json {
        let mut report = record.report();
        report["loaded"] = name.into();
        report["trained_on"] = saved.source.clone().into();
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

/// Runs a parsed command line (not the GUI).
pub fn run_command(command: &Command) -> Result<()> {
    match command {
        Command::Train(args) => train_command(args),
        Command::Sweep(args) => sweep_command(args),
        Command::Tune(args) => tune::tune_command(args),
        Command::Detect(args) => detect::detect_command(args),
        Command::Corpus(args) => corpus::corpus_command(args),
        Command::Fleet { command } => fleet::fleet_command(command),
        Command::Bench { quick, json, only } => {
            println!("| benchmark | value | unit |\n|---|---|---|");
            let rows = crate::bench::run_all(*quick, only, &mut |row| {
                println!("| {} | {:.1} | {} |", row.name, row.value, row.unit);
            });
            if *json {
                println!("{}", serde_json::to_string(&rows)?);
            }
            Ok(())
        }
        Command::GenerateSample {
            out,
            seed,
            days,
            interval_secs,
        } => {
            let spec = data::sample::SampleSpec {
                seed: *seed,
                days: *days,
                interval_secs: *interval_secs,
                ..Default::default()
            };
            let text = data::sample::to_csv(&data::sample::generate(&spec));
            write_file(out, |w| w.write_all(text.as_bytes()))?;
            eprintln!("wrote {} ({} bytes)", out.display(), text.len());
            Ok(())
        }
    }
}
