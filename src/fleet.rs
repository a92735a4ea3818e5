//! Fleets: one model per KPI, for the hundreds of KPIs a monitoring team watches. `fleet train`
//! trains every KPI of a folder (or a list) side by side on one machine, or the share of one
//! shard of an array job on a cluster scheduler (Slurm, a Kubernetes Indexed Job); `fleet
//! report` merges whatever the shards wrote; `fleet detect` runs each KPI's model on its new
//! data.
//!
//! Each KPI leaves two files in the output folder, written atomically: `<name>.donut`, its run,
//! and `<name>.json`, its [`KpiSummary`] (the figures of the report, and the fingerprints of its
//! input file and settings). The summary is written last: it marks the KPI done. A resumed
//! fleet skips a KPI whose summary says trained, whose input file and settings are unchanged,
//! and whose run file is whole; everything else is (re)done. A KPI that fails gets a summary
//! saying so, with its message, and the others go on. Shards own disjoint KPIs (the `i`-th KPI
//! of the sorted list belongs to shard `i mod N`), so they can share one output folder.

use crate::config::DonutConfig;
use crate::data::{self, LoadOptions, Prepared};
use crate::pipeline::RunRecord;
use crate::threads::Host;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// The fleet's manifest in the output folder: every KPI of the fleet, so that a report knows
/// which are missing.
pub const MANIFEST: &str = "fleet.json";

/// Seconds in the "most recent day" of a KPI's data, the span its recent alerts are counted in.
pub const RECENT_SECS: i64 = 86_400;

/// Why a fleet could not be set up (a KPI's own failure is recorded in its summary instead).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// The folder or list could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// What the file system said.
        #[source]
        source: std::io::Error,
    },
    /// Two KPIs would write the same files.
    #[error("two KPIs are both named `{name}` ({first} and {second}): rename one")]
    DuplicateName {
        /// The name.
        name: String,
        /// The first file.
        first: String,
        /// The second.
        second: String,
    },
    /// No CSV to train.
    #[error("{0}: no KPI to train (no .csv file)")]
    Empty(String),
    /// A shard that does not parse or does not fit.
    #[error("shard {0}")]
    BadShard(String),
}

/// One KPI: its name (the file's stem, which names its output files) and its CSV.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kpi {
    /// The name.
    pub name: String,
    /// The CSV.
    pub path: PathBuf,
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> FleetError + '_ {
    move |source| FleetError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The KPIs of `paths`, sorted by name; refused when two share a name.
fn named(paths: Vec<PathBuf>, origin: &Path) -> Result<Vec<Kpi>, FleetError> {
    let mut kpis: Vec<Kpi> = paths
        .into_iter()
        .map(|path| Kpi {
            name: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            path,
        })
        .collect();
    kpis.sort_by(|a, b| a.name.cmp(&b.name).then(a.path.cmp(&b.path)));
    for pair in kpis.windows(2) {
        if pair[0].name == pair[1].name {
            return Err(FleetError::DuplicateName {
                name: pair[0].name.clone(),
                first: pair[0].path.display().to_string(),
                second: pair[1].path.display().to_string(),
            });
        }
    }
    if kpis.is_empty() {
        return Err(FleetError::Empty(origin.display().to_string()));
    }
    Ok(kpis)
}

/// Every `.csv` file of `dir` (not its subfolders), by name.
pub fn kpis_in_dir(dir: &Path) -> Result<Vec<Kpi>, FleetError> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let path = entry.map_err(io(dir))?.path();
        if path.is_file()
            && path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
        {
            paths.push(path);
        }
    }
    named(paths, dir)
}

/// The CSVs listed in `list`, one path a line (relative to the list's folder; blank lines and
/// lines starting with `#` skipped).
pub fn kpis_in_list(list: &Path) -> Result<Vec<Kpi>, FleetError> {
    let text = std::fs::read_to_string(list).map_err(io(list))?;
    let base = list.parent().unwrap_or(Path::new("."));
    let paths = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| base.join(l))
        .collect();
    named(paths, list)
}

/// One shard of an array job: `index` of `count` (0-based).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// This shard, from 0.
    pub index: usize,
    /// Shards in all.
    pub count: usize,
}

impl Shard {
    /// Checks `index < count`.
    pub fn new(index: usize, count: usize) -> Result<Self, FleetError> {
        if count == 0 || index >= count {
            return Err(FleetError::BadShard(format!(
                "{index}/{count}: the index must be below the count (0-based)"
            )));
        }
        Ok(Self { index, count })
    }

    /// `I/N`, as `--shard` takes it.
    pub fn parse(text: &str) -> Result<Self, FleetError> {
        let bad = || FleetError::BadShard(format!("{text:?}: expected I/N, e.g. 0/4"));
        let (i, n) = text.split_once('/').ok_or_else(bad)?;
        Self::new(
            i.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        )
    }

    /// The shard a scheduler's environment names: a Slurm array task
    /// (`SLURM_ARRAY_TASK_ID` with `SLURM_ARRAY_TASK_COUNT`, `_MIN` and `_STEP`: the index is
    /// the task's position in the array, so `--array=1-4` and `--array=0-6:2` work too), or a
    /// Kubernetes Indexed Job (`JOB_COMPLETION_INDEX`, with the count given as
    /// `kubernetes_count`, the Job's `completions`). None when neither is set.
    pub fn from_env(
        var: impl Fn(&str) -> Option<String>,
        kubernetes_count: Option<usize>,
    ) -> Result<Option<Self>, FleetError> {
        let number = |name: &str| -> Result<Option<usize>, FleetError> {
            var(name)
                .map(|v| {
                    v.trim()
                        .parse()
                        .map_err(|_| FleetError::BadShard(format!("{name}={v:?} is not a number")))
                })
                .transpose()
        };
        if let Some(id) = number("SLURM_ARRAY_TASK_ID")? {
            let count = number("SLURM_ARRAY_TASK_COUNT")?.ok_or_else(|| {
                FleetError::BadShard(
                    "SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not (Slurm 18 or later sets it)".into(),
                )
            })?;
            let min = number("SLURM_ARRAY_TASK_MIN")?.unwrap_or(0);
            let step = number("SLURM_ARRAY_TASK_STEP")?.unwrap_or(1).max(1);
            if id < min || !(id - min).is_multiple_of(step) {
                return Err(FleetError::BadShard(format!(
                    "array task {id} is not on the array's range {min}..(step {step}): submit a range such as --array=0-{}",
                    count.saturating_sub(1)
                )));
            }
            return Self::new((id - min) / step, count).map(Some);
        }
        if let Some(index) = number("JOB_COMPLETION_INDEX")? {
            let count = kubernetes_count.ok_or_else(|| {
                FleetError::BadShard(
                    "JOB_COMPLETION_INDEX is set: give the Job's completions with --shard-count"
                        .into(),
                )
            })?;
            return Self::new(index, count).map(Some);
        }
        Ok(None)
    }

    /// True when the KPI at `position` of the sorted list is this shard's.
    pub fn owns(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

/// The KPIs `shard` owns (all without one).
pub fn select(kpis: &[Kpi], shard: Option<Shard>) -> Vec<Kpi> {
    kpis.iter()
        .enumerate()
        .filter(|(i, _)| shard.is_none_or(|s| s.owns(*i)))
        .map(|(_, k)| k.clone())
        .collect()
}

/// Where a KPI stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KpiStatus {
    /// Trained, its run file written.
    Trained,
    /// It failed; the summary says why.
    Failed,
}

/// What a fleet keeps of each KPI beside its run file (`<name>.json`): the report's figures,
/// and the fingerprints that tell a resumed fleet whether it is up to date.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct KpiSummary {
    /// The KPI.
    pub name: String,
    /// Its CSV, as given.
    pub source: String,
    /// Trained or failed.
    pub status: KpiStatus,
    /// Why it failed.
    pub error: Option<String>,
    /// CRC-32 of the input file's bytes.
    pub input_crc: u32,
    /// Its length in bytes.
    pub input_bytes: u64,
    /// CRC-32 of the settings (as JSON).
    pub settings_crc: u32,
    /// Points on the completed grid.
    pub points: Option<usize>,
    /// Seconds between points.
    pub interval_secs: Option<i64>,
    /// Data warnings.
    pub warnings: Vec<String>,
    /// Best F1 on the test part (an upper bound), when it has labels.
    pub best_f1: Option<f64>,
    /// F1 at the threshold the run flags at, when it has labels.
    pub flagged_f1: Option<f64>,
    /// The threshold it flags at.
    pub threshold: Option<f64>,
    /// Points flagged in the most recent day of the data.
    pub recent_alerts: Option<usize>,
    /// The highest score in the most recent day.
    pub recent_max_score: Option<f64>,
    /// CRC-32 of every score (as little-endian f64, missing as NaN): two runs with the same
    /// value scored every point alike.
    pub scores_crc: Option<u32>,
    /// The most recent day's scores, at most [`SPARKLINE_POINTS`] (the highest of each stretch),
    /// for a sparkline.
    #[serde(default)]
    pub recent_scores: Vec<f32>,
    /// Seconds of training.
    pub train_secs: Option<f64>,
    /// Seconds of scoring.
    pub score_secs: Option<f64>,
    /// The donut-explorer version that wrote it.
    pub app_version: String,
}

impl KpiSummary {
    /// How far the most recent day's highest score stands above the threshold (above 1: the
    /// KPI alerts now): what the report sorts by.
    pub fn urgency(&self) -> f64 {
        match (self.recent_max_score, self.threshold) {
            (Some(s), Some(t)) if t.is_finite() && t.abs() > 0.0 => s / t.abs(),
            _ => f64::NEG_INFINITY,
        }
    }
}

/// The summary file of `name` in `out`.
pub fn summary_path(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{name}.json"))
}

/// The run file of `name` in `out`.
pub fn run_path(out: &Path, name: &str) -> PathBuf {
    out.join(format!("{name}.donut"))
}

/// The CRC-32 and length of a file's bytes.
fn fingerprint(path: &Path) -> std::io::Result<(u32, u64)> {
    let bytes = std::fs::read(path)?;
    Ok((crc32fast::hash(&bytes), bytes.len() as u64))
}

/// The fingerprint of the settings a KPI is trained with; the thread count is left out (it
/// changes the last bits of a run, not what it is).
fn settings_crc(config: &DonutConfig) -> u32 {
    let settings = DonutConfig {
        threads: 0,
        ..config.clone()
    };
    crc32fast::hash(
        serde_json::to_string(&settings)
            .unwrap_or_default()
            .as_bytes(),
    )
}

/// Reads a summary; None when missing or unreadable.
pub fn read_summary(path: &Path) -> Option<KpiSummary> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// Points of a sparkline.
pub const SPARKLINE_POINTS: usize = 96;

/// `values` cut into at most `points` stretches, the highest of each (NaN where a stretch has
/// no value): a spike stays in the sparkline.
pub fn sparkline(values: &[Option<f64>], points: usize) -> Vec<f32> {
    let n = values.len();
    let points = points.min(n).max(1);
    (0..points)
        .map(|j| {
            values[j * n / points..(j + 1) * n / points]
                .iter()
                .flatten()
                .copied()
                .reduce(f64::max)
                .map_or(f32::NAN, |v| v as f32)
        })
        .collect()
}

/// Where the most recent day of a series starts (for an index, the last 288 points).
fn recent_start(prep: &Prepared) -> usize {
    recent_start_of(&prep.timestamps, prep.has_timestamps)
}

/// The first of ascending `timestamps` in their most recent day (the last 288 rows when they are
/// row indices).
fn recent_start_of(timestamps: &[i64], has_timestamps: bool) -> usize {
    let last = timestamps.last().copied().unwrap_or(0);
    let span = if has_timestamps {
        RECENT_SECS
    } else {
        RECENT_SECS / 300
    };
    timestamps.partition_point(|&t| t <= last - span)
}

/// The flags and top score of `record`'s scores on `prep` from point `start` (its most recent
/// day) on.
fn recent(prep: &Prepared, record: &RunRecord, start: usize) -> (usize, Option<f64>) {
    let flags = crate::eval::flags(
        &record.scores[start..],
        &prep.missing[start..],
        record.threshold.value,
    );
    let top = record.scores[start..]
        .iter()
        .flatten()
        .copied()
        .fold(None, |m: Option<f64>, s| Some(m.map_or(s, |m| m.max(s))));
    (flags.iter().filter(|&&f| f).count(), top)
}

/// What a KPI's training settles.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Trained now.
    Trained(KpiSummary),
    /// Already up to date: skipped.
    UpToDate(KpiSummary),
    /// Failed now (its summary says why).
    Failed(KpiSummary),
}

impl Outcome {
    /// The summary.
    pub fn summary(&self) -> &KpiSummary {
        match self {
            Self::Trained(s) | Self::UpToDate(s) | Self::Failed(s) => s,
        }
    }
}

/// The summary of `kpi` in `out` when it is up to date with its input file and `config`, and
/// its run file is whole.
fn up_to_date(kpi: &Kpi, out: &Path, config: &DonutConfig) -> Option<KpiSummary> {
    let summary = read_summary(&summary_path(out, &kpi.name))?;
    let (crc, bytes) = fingerprint(&kpi.path).ok()?;
    let fresh = summary.status == KpiStatus::Trained
        && summary.input_crc == crc
        && summary.input_bytes == bytes
        && summary.settings_crc == settings_crc(config)
        && crate::runfile::verify(&run_path(out, &kpi.name)).is_ok();
    fresh.then_some(summary)
}

/// Trains `kpi` with `config` into `out` (unless up to date); None when cancelled.
pub fn train_kpi(
    kpi: &Kpi,
    out: &Path,
    config: &DonutConfig,
    cancel: &AtomicBool,
) -> Option<Outcome> {
    if let Some(summary) = up_to_date(kpi, out, config) {
        return Some(Outcome::UpToDate(summary));
    }
    let (input_crc, input_bytes) = fingerprint(&kpi.path).unwrap_or((0, 0));
    let mut summary = KpiSummary {
        name: kpi.name.clone(),
        source: kpi.path.display().to_string(),
        status: KpiStatus::Failed,
        error: None,
        input_crc,
        input_bytes,
        settings_crc: settings_crc(config),
        points: None,
        interval_secs: None,
        warnings: Vec::new(),
        best_f1: None,
        flagged_f1: None,
        threshold: None,
        recent_alerts: None,
        recent_max_score: None,
        scores_crc: None,
        recent_scores: Vec::new(),
        train_secs: None,
        score_secs: None,
        app_version: RunRecord::current_version(),
    };
    let trained = (|| -> Result<(Prepared, RunRecord), String> {
        let options = LoadOptions {
            duplicates: config.duplicates,
            ..Default::default()
        };
        let raw = data::load_csv_with(&kpi.path, &options).map_err(|e| e.to_string())?;
        let prep = Prepared::new(&raw, config).map_err(|e| e.to_string())?;
        let mut hooks = crate::sweep::CancelHooks { cancel };
        let record = crate::pipeline::run(&prep, config, &[crate::data::Part::Test], &mut hooks)
            .map_err(|e| e.to_string())?;
        Ok((prep, record))
    })();
    if cancel.load(Ordering::Relaxed) {
        return None;
    }
    let outcome = match trained {
        Ok((prep, record)) => {
            let start = recent_start(&prep);
            let (alerts, top) = recent(&prep, &record, start);
            summary.status = KpiStatus::Trained;
            summary.points = Some(prep.len());
            summary.interval_secs = Some(prep.interval);
            summary.warnings = prep.warnings.iter().map(ToString::to_string).collect();
            summary.best_f1 = record.metrics.map(|m| m.best_f1.f1);
            summary.flagged_f1 = record.evaluation.as_ref().map(|e| e.flagged.adjusted.f1);
            summary.threshold = Some(record.threshold.value);
            summary.recent_alerts = Some(alerts);
            summary.recent_max_score = top;
            summary.recent_scores = sparkline(&record.scores[start..], SPARKLINE_POINTS);
            let bytes: Vec<u8> = record
                .scores
                .iter()
                .flat_map(|s| s.unwrap_or(f64::NAN).to_le_bytes())
                .collect();
            summary.scores_crc = Some(crc32fast::hash(&bytes));
            summary.train_secs = Some(record.stats.train_secs);
            summary.score_secs = Some(record.score_secs);
            match crate::runfile::save(&run_path(out, &kpi.name), &record) {
                Ok(()) => Outcome::Trained(summary),
                Err(e) => {
                    summary.status = KpiStatus::Failed;
                    summary.error = Some(e.to_string());
                    Outcome::Failed(summary)
                }
            }
        }
        Err(message) => {
            summary.error = Some(message);
            Outcome::Failed(summary)
        }
    };
    let written = crate::fsio::write_atomically(&summary_path(out, &kpi.name), |w| {
        serde_json::to_writer_pretty(&mut *w, outcome.summary()).map_err(std::io::Error::other)
    });
    if let Err(e) = written {
        let mut summary = outcome.summary().clone();
        summary.status = KpiStatus::Failed;
        summary.error = Some(format!("cannot write its summary: {e}"));
        return Some(Outcome::Failed(summary));
    }
    Some(outcome)
}

/// What `fleet train` does.
#[derive(Clone, Debug)]
pub struct FleetSpec {
    /// The whole fleet (every shard's KPIs).
    pub kpis: Vec<Kpi>,
    /// This shard (None: the whole fleet).
    pub shard: Option<Shard>,
    /// The output folder.
    pub out: PathBuf,
    /// The settings of every KPI.
    pub config: DonutConfig,
    /// KPIs trained at once (each on its share of the cores).
    pub jobs: usize,
}

/// What [`train_fleet`] reports as it goes (from the KPIs' threads).
#[derive(Clone, Copy, Debug)]
pub enum Progress<'a> {
    /// A KPI's training began.
    Started(&'a Kpi),
    /// A KPI settled.
    Settled(&'a Outcome),
}

/// Trains this shard's KPIs of `spec`, `jobs` at a time on named threads (`fleet-N`), each on
/// an even share of the cores; `progress` hears of each as it starts and settles.
/// Cancelling ends every run at its next step; finished KPIs keep their files. Returns the
/// outcomes of the KPIs that settled, in the fleet's order.
pub fn train_fleet(
    spec: &FleetSpec,
    cancel: &AtomicBool,
    progress: &(dyn Fn(Progress<'_>) + Sync),
) -> Result<Vec<Outcome>, FleetError> {
    std::fs::create_dir_all(&spec.out).map_err(io(&spec.out))?;
    write_manifest(&spec.out, &spec.kpis)?;
    let mine = select(&spec.kpis, spec.shard);
    let jobs = spec.jobs.clamp(1, mine.len().max(1));
    let config = crate::threads::resolved(&spec.config, Host::Cli, jobs);
    // A thread the system would not start leaves its share to the others (or, with none,
    // the KPIs untrained).
    let ran = crate::threads::run_pool("fleet", jobs, &mine, cancel, |kpi| {
        progress(Progress::Started(kpi));
        let outcome = train_kpi(kpi, &spec.out, &config, cancel)?;
        progress(Progress::Settled(&outcome));
        Some(outcome)
    });
    Ok(ran.results)
}

/// Writes the fleet's manifest (every shard writes the same one).
fn write_manifest(out: &Path, kpis: &[Kpi]) -> Result<(), FleetError> {
    let path = out.join(MANIFEST);
    crate::fsio::write_atomically(&path, |w| {
        serde_json::to_writer_pretty(&mut *w, kpis).map_err(std::io::Error::other)
    })
    .map_err(io(&path))
}

/// Where a KPI of a folder stands against an output folder (the app's Fleet view).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KpiState {
    /// No summary yet.
    NotTrained,
    /// Trained, and up to date with its file and the settings.
    Trained,
    /// Trained, but its file or the settings have changed since.
    Stale,
    /// Its last training failed.
    Failed,
}

impl KpiState {
    /// The state in words.
    pub fn name(self) -> &'static str {
        match self {
            Self::NotTrained => "not trained",
            Self::Trained => "trained",
            Self::Stale => "stale",
            Self::Failed => "failed",
        }
    }
}

/// A KPI as the Fleet view shows it: where it stands, its summary, and the most recent day of
/// its values as a sparkline.
#[derive(Clone, Debug, PartialEq)]
pub struct KpiView {
    /// The KPI.
    pub kpi: Kpi,
    /// Where it stands.
    pub state: KpiState,
    /// Its summary, when one was written.
    pub summary: Option<KpiSummary>,
    /// Points in its file (None: unreadable).
    pub points: Option<usize>,
    /// Its most recent day of values ([`sparkline`]).
    pub recent_values: Vec<f32>,
    /// Why its file could not be read.
    pub error: Option<String>,
}

/// Every KPI of `kpis` against the output folder `out` for `config` (reads each CSV: run it off
/// the UI thread).
pub fn views(kpis: &[Kpi], out: &Path, config: &DonutConfig) -> Vec<KpiView> {
    kpis.iter()
        .map(|kpi| {
            let summary = read_summary(&summary_path(out, &kpi.name));
            let state = match &summary {
                None => KpiState::NotTrained,
                Some(s) if s.status == KpiStatus::Failed => KpiState::Failed,
                Some(_) if up_to_date(kpi, out, config).is_some() => KpiState::Trained,
                Some(_) => KpiState::Stale,
            };
            let options = LoadOptions {
                duplicates: config.duplicates,
                ..Default::default()
            };
            let (points, recent_values, error) = match data::load_csv_with(&kpi.path, &options) {
                Ok(raw) => {
                    let start = recent_start_of(&raw.timestamps, raw.has_timestamps);
                    let values: Vec<Option<f64>> = raw.values[start..]
                        .iter()
                        .map(|v| (!v.is_nan()).then_some(*v))
                        .collect();
                    (
                        Some(raw.values.len()),
                        sparkline(&values, SPARKLINE_POINTS),
                        None,
                    )
                }
                Err(e) => (None, Vec::new(), Some(e.to_string())),
            };
            KpiView {
                kpi: kpi.clone(),
                state,
                summary,
                points,
                recent_values,
                error,
            }
        })
        .collect()
}

/// One row of a fleet report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    /// The KPI.
    pub name: String,
    /// `trained`, `failed` or `not trained`.
    pub status: String,
    /// Its summary, when one was written.
    pub summary: Option<KpiSummary>,
}

/// The report of the output folder `out`: a row per KPI of its manifest (and per summary found
/// beside it), the most anomalous now first (the most recent day's top score over the
/// threshold), then the failed, then the missing.
pub fn report(out: &Path) -> Result<Vec<ReportRow>, FleetError> {
    let mut names: Vec<String> = std::fs::read_to_string(out.join(MANIFEST))
        .ok()
        .and_then(|t| serde_json::from_str::<Vec<Kpi>>(&t).ok())
        .map(|kpis| kpis.into_iter().map(|k| k.name).collect())
        .unwrap_or_default();
    for entry in std::fs::read_dir(out).map_err(io(out))? {
        let path = entry.map_err(io(out))?.path();
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        if path.extension().is_some_and(|e| e == "json")
            && let Some(name) = name
            && path.file_name().is_some_and(|f| f != MANIFEST)
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    let mut rows: Vec<ReportRow> = names
        .into_iter()
        .map(|name| {
            let summary = read_summary(&summary_path(out, &name));
            let status = match summary.as_ref().map(|s| s.status) {
                Some(KpiStatus::Trained) => "trained",
                Some(KpiStatus::Failed) => "failed",
                None => "not trained",
            };
            ReportRow {
                name,
                status: status.into(),
                summary,
            }
        })
        .collect();
    let rank = |r: &ReportRow| match r.status.as_str() {
        "trained" => 0,
        "failed" => 1,
        _ => 2,
    };
    rows.sort_by(|a, b| {
        rank(a).cmp(&rank(b)).then_with(|| {
            let urgency = |r: &ReportRow| {
                r.summary
                    .as_ref()
                    .map_or(f64::NEG_INFINITY, KpiSummary::urgency)
            };
            urgency(b).total_cmp(&urgency(a)).then(a.name.cmp(&b.name))
        })
    });
    Ok(rows)
}

/// One KPI's model on its new data (`fleet detect`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DetectRow {
    /// The KPI.
    pub name: String,
    /// The new data.
    pub source: String,
    /// Why it was not scored (no model, unreadable data).
    pub error: Option<String>,
    /// Points scored.
    pub scored: usize,
    /// Points flagged at the run's threshold.
    pub alerts: usize,
    /// Points flagged in the most recent day of the new data.
    pub recent_alerts: usize,
    /// The highest score of the new data.
    pub max_score: Option<f64>,
    /// The threshold.
    pub threshold: Option<f64>,
    /// Notes and warnings about the new data.
    pub notes: Vec<String>,
    /// With labels: F1 at the threshold.
    pub f1: Option<f64>,
}

/// Runs each KPI's model (`models/<name>.donut`) on its new data in `kpis`, flagged at the
/// threshold it was trained with, through the one detection path (training statistics,
/// lenient reading, masking as the run's settings say); writes `<name>.alerts.csv` and
/// `<name>.detect.json` to `out` when given. Rows with the most new alerts first.
pub fn detect_fleet(
    models: &Path,
    kpis: &[Kpi],
    out: Option<&Path>,
) -> Result<Vec<DetectRow>, FleetError> {
    use crate::pipeline::detect;
    if let Some(out) = out {
        std::fs::create_dir_all(out).map_err(io(out))?;
    }
    let mut rows = Vec::with_capacity(kpis.len());
    for kpi in kpis {
        let mut row = DetectRow {
            name: kpi.name.clone(),
            source: kpi.path.display().to_string(),
            error: None,
            scored: 0,
            alerts: 0,
            recent_alerts: 0,
            max_score: None,
            threshold: None,
            notes: Vec::new(),
            f1: None,
        };
        let found = (|| -> Result<(Prepared, detect::Detection), String> {
            let path = run_path(models, &kpi.name);
            let record = crate::runfile::load(&path).map_err(|e| e.to_string())?;
            let model = crate::runfile::model_of(&record, &path.display().to_string())
                .map_err(|e| e.to_string())?;
            let options = detect::load_options(&record, Default::default(), false);
            let raw = data::load_csv_with(&kpi.path, &options).map_err(|e| e.to_string())?;
            detect::detect_series(
                &record,
                &model,
                &record.config,
                &raw,
                record.threshold,
                &mut |_, _| true,
            )
            .map_err(|e| e.to_string())
        })();
        match found {
            Ok((prep, found)) => {
                let start = recent_start(&prep);
                let flags = crate::eval::flags(&found.scores, &prep.missing, found.threshold.value);
                row.scored = found.scored_windows;
                row.alerts = found.flagged;
                row.recent_alerts = flags[start..].iter().filter(|&&f| f).count();
                row.max_score = found.scores.iter().flatten().copied().reduce(f64::max);
                row.threshold = Some(found.threshold.value);
                row.notes = found.notes.clone();
                row.f1 = found.at_threshold.map(|[adjusted, _, _]| adjusted.f1);
                if let Some(out) = out {
                    let alerts = out.join(format!("{}.alerts.csv", kpi.name));
                    if let Err(e) = crate::fsio::write_atomically(&alerts, |w| {
                        detect::write_alerts(w, &prep, &found)
                    }) {
                        row.error = Some(format!("{}: {e}", alerts.display()));
                    }
                }
            }
            Err(message) => row.error = Some(message),
        }
        if let Some(out) = out {
            let path = out.join(format!("{}.detect.json", kpi.name));
            crate::fsio::write_atomically(&path, |w| {
                serde_json::to_writer_pretty(&mut *w, &row).map_err(std::io::Error::other)
            })
            .map_err(io(&path))?;
        }
        rows.push(row);
    }
    rows.sort_by(|a, b| {
        (
            a.error.is_some(),
            std::cmp::Reverse(a.recent_alerts),
            std::cmp::Reverse(a.alerts),
        )
            .cmp(&(
                b.error.is_some(),
                std::cmp::Reverse(b.recent_alerts),
                std::cmp::Reverse(b.alerts),
            ))
            .then(a.name.cmp(&b.name))
    });
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fleet(n: usize) -> Vec<Kpi> {
        (0..n)
            .map(|i| Kpi {
                name: format!("kpi{i:02}"),
                path: PathBuf::from(format!("kpi{i:02}.csv")),
            })
            .collect()
    }

    /// The most recent day is the last 86,400 s of timestamps, and the last 288 rows (a day of
    /// 5-minute points) of a series whose timestamps are row numbers.
    #[test]
    fn the_most_recent_day_is_a_day_of_time_or_288_rows() {
        let rows: Vec<i64> = (0..1_000).collect();
        assert_eq!(recent_start_of(&rows, false), 1_000 - 288);
        let minutes: Vec<i64> = (0..3_000).map(|i| i * 60).collect();
        assert_eq!(recent_start_of(&minutes, true), 3_000 - 1_440);
    }

    #[test]
    fn shards_cover_every_kpi_exactly_once() {
        let kpis = fleet(17);
        for count in 1..=5 {
            let mut seen: Vec<String> = (0..count)
                .flat_map(|i| select(&kpis, Some(Shard::new(i, count).unwrap())))
                .map(|k| k.name)
                .collect();
            seen.sort();
            let all: Vec<String> = kpis.iter().map(|k| k.name.clone()).collect();
            assert_eq!(seen, all, "{count} shards");
        }
        assert_eq!(select(&kpis, None).len(), 17);
    }

    #[test]
    fn slurm_and_kubernetes_environments_name_the_same_shard_as_the_flag() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            }
        };
        let flag = Shard::parse("2/3").unwrap();
        let slurm = env(&[
            ("SLURM_ARRAY_TASK_ID", "2"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
        ]);
        assert_eq!(Shard::from_env(slurm, None).unwrap(), Some(flag));
        // --array=1-3: task 3 is the third of three.
        let shifted = env(&[
            ("SLURM_ARRAY_TASK_ID", "3"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "1"),
            ("SLURM_ARRAY_TASK_STEP", "1"),
        ]);
        assert_eq!(Shard::from_env(shifted, None).unwrap(), Some(flag));
        // --array=0-4:2: task 4 is the third.
        let stepped = env(&[
            ("SLURM_ARRAY_TASK_ID", "4"),
            ("SLURM_ARRAY_TASK_COUNT", "3"),
            ("SLURM_ARRAY_TASK_MIN", "0"),
            ("SLURM_ARRAY_TASK_STEP", "2"),
        ]);
        assert_eq!(Shard::from_env(stepped, None).unwrap(), Some(flag));
        let kubernetes = env(&[("JOB_COMPLETION_INDEX", "2")]);
        assert_eq!(Shard::from_env(kubernetes, Some(3)).unwrap(), Some(flag));
        assert!(Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "2")]), None).is_err());
        assert_eq!(Shard::from_env(env(&[]), None).unwrap(), None);
        assert!(Shard::parse("3/3").is_err() && Shard::parse("x").is_err());
    }
}
