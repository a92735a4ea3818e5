//! Sweeps: the same experiment over several values of a setting (or a preset of variants from the
//! DONUT literature), each repeated over seeds, summarised as mean and standard deviation.

use crate::config::DonutConfig;
use crate::data::{Part, Prepared, RawSeries};
use crate::history::LatentSnapshot;
use crate::pipeline::{RunError, RunHooks, RunRecord};
use crate::threads::Host;
use crate::train::{Flow, TrainEvent, TrainHooks};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One variant of a sweep: a label and the settings it changes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Variant {
    /// Shown in the table.
    pub label: String,
    /// `key=value` assignments applied to the base config.
    pub settings: Vec<String>,
}

/// The experiments of DONUT.md section 7, by name.
pub const PRESETS: &[(&str, &str)] = &[
    (
        "seeds",
        "the settings as given, averaged over the seeds (no variant)",
    ),
    (
        "objective",
        "M-ELBO vs plain ELBO (and a plain VAE: ELBO without injection or MCMC)",
    ),
    (
        "ablation",
        "MCMC + injection / injection only / MCMC only / neither",
    ),
    ("latent-dist", "Gaussian vs Student-t (10 df) latent"),
    (
        "entropy-weighting",
        "entropy term unweighted vs beta-weighted",
    ),
    ("encoder", "2-layer CNN encoder vs 2-layer FC"),
    ("latent-dim", "latent dimension 3 / 6 / 9 / 12"),
    ("entropy-weight", "entropy weight 0, .2, ..., 1"),
    ("fixed-beta", "fixed beta 0, .3, .6, .9"),
    ("injection-rate", "injection rate 0, .01, .1, .3, .5, .8"),
];

fn variant(label: &str, settings: &[&str]) -> Variant {
    Variant {
        label: label.into(),
        settings: settings.iter().map(|s| s.to_string()).collect(),
    }
}

/// The variants of a preset, or None for an unknown name. The study's experiments run every
/// epoch, as DONUT does (`patience = 0`), so that their figures compare with the published
/// ones; `seeds` keeps the settings as given.
pub fn preset(name: &str) -> Option<Vec<Variant>> {
    let mut variants = study_preset(name)?;
    if name != "seeds" {
        for v in &mut variants {
            v.settings.push("patience=0".into());
        }
    }
    Some(variants)
}

/// The variants of a preset as the study defines them.
fn study_preset(name: &str) -> Option<Vec<Variant>> {
    let grid = |key: &str, values: &[&str], extra: &[&str]| {
        values
            .iter()
            .map(|v| {
                let mut s = vec![format!("{key}={v}")];
                s.extend(extra.iter().map(|e| e.to_string()));
                Variant {
                    label: format!("{key}={v}"),
                    settings: s,
                }
            })
            .collect()
    };
    Some(match name {
        "seeds" => vec![variant("as given", &[])],
        "objective" => vec![
            variant("M-ELBO (DONUT)", &["objective=m_elbo"]),
            variant("plain ELBO", &["objective=elbo"]),
            variant(
                "plain VAE (ELBO, no injection, no MCMC)",
                &["objective=elbo", "injection_rate=0", "mcmc_iterations=0"],
            ),
        ],
        "ablation" => vec![
            variant(
                "MCMC + injection",
                &["mcmc_iterations=10", "injection_rate=0.01"],
            ),
            variant(
                "injection only",
                &["mcmc_iterations=0", "injection_rate=0.01"],
            ),
            variant("MCMC only", &["mcmc_iterations=10", "injection_rate=0"]),
            variant("neither", &["mcmc_iterations=0", "injection_rate=0"]),
        ],
        "latent-dist" => vec![
            variant("Gaussian", &["latent_dist=gaussian"]),
            variant("Student-t (10 df)", &["latent_dist=studentt"]),
        ],
        "entropy-weighting" => {
            vec![
                variant("unweighted (lambda = 1)", &["entropy_mode=one"]),
                variant("beta-weighted (lambda = beta)", &["entropy_mode=beta"]),
            ]
        }
        "encoder" => vec![
            variant("CNN encoder", &["encoder=cnn"]),
            variant("FC encoder", &["encoder=dense"]),
        ],
        "latent-dim" => grid("latent_dim", &["3", "6", "9", "12"], &[]),
        "entropy-weight" => grid(
            "entropy_value",
            &["0", "0.2", "0.4", "0.6", "0.8", "1"],
            &["entropy_mode=fixed"],
        ),
        "fixed-beta" => grid(
            "beta_value",
            &["0", "0.3", "0.6", "0.9"],
            &["beta_mode=fixed"],
        ),
        "injection-rate" => grid(
            "injection_rate",
            &["0", "0.01", "0.1", "0.3", "0.5", "0.8"],
            &[],
        ),
        _ => return None,
    })
}

/// Variants for `key` over `values`.
pub fn grid(key: &str, values: &[String]) -> Vec<Variant> {
    values
        .iter()
        .map(|v| Variant {
            label: format!("{key}={v}"),
            settings: vec![format!("{key}={v}")],
        })
        .collect()
}

/// Mean and sample standard deviation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n - 1); 0 for a single value.
    pub std: f64,
    /// Number of values.
    pub n: usize,
}

impl MeanStd {
    /// Summarises `values`.
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self::default();
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Self { mean, std, n }
    }
}

/// One finished run of a sweep.
#[derive(Clone, Debug)]
pub struct SweepRun {
    /// Index of the variant.
    pub variant: usize,
    /// Its seed.
    pub seed: u64,
    /// Its record without the bulk ([`RunRecord::summary`]); its one snapshot holds the latent
    /// means of the trained model on [`GALLERY_POINTS`] windows (for the gallery).
    pub record: RunRecord,
}

impl SweepRun {
    /// The latent means of the trained model (for the gallery).
    pub fn latent(&self) -> Option<&LatentSnapshot> {
        self.record.history.latest_snapshot()
    }

    /// The run as JSON: variant, seed and the record's report.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "variant": self.variant, "seed": self.seed, "report": self.record.report() })
    }
}

/// Windows in each run's latent sample.
pub const GALLERY_POINTS: usize = 2_000;

/// A row of the table: one variant over its seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepRow {
    /// The variant.
    pub variant: Variant,
    /// Best F1, no delay.
    pub best_f1: MeanStd,
    /// Best F1 with the configured delay.
    pub best_f1_delay: MeanStd,
    /// Point-wise best F1.
    pub best_f1_pointwise: MeanStd,
    /// Point-adjusted F1 at the threshold each run flags at (its `threshold_rule`).
    #[serde(default)]
    pub flagged_f1: MeanStd,
    /// Area under the PA%K curve at that threshold.
    #[serde(default)]
    pub flagged_pa_k_area: MeanStd,
    /// Spectral Residual's best F1 on the same test part (no training: the baseline to beat).
    #[serde(default)]
    pub sr_best_f1: MeanStd,
    /// Spectral Residual's F1 at its own threshold by the same rule.
    #[serde(default)]
    pub sr_flagged_f1: MeanStd,
    /// Random scores' best F1 on the same labels.
    #[serde(default)]
    pub chance_best_f1: MeanStd,
    /// Training seconds.
    pub train_secs: MeanStd,
}

/// Summarises finished runs into one row per variant (variants with no run get n = 0).
pub fn table(variants: &[Variant], runs: &[SweepRun]) -> Vec<SweepRow> {
    variants
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mine: Vec<&RunRecord> = runs
                .iter()
                .filter(|r| r.variant == i && r.record.metrics.is_some())
                .map(|r| &r.record)
                .collect();
            let col = |f: &dyn Fn(&RunRecord) -> f64| {
                MeanStd::of(&mine.iter().map(|r| f(r)).collect::<Vec<_>>())
            };
            let f1 = |r: &RunRecord| r.metrics.unwrap_or_default();
            // Figures some runs may lack (runs saved before they were kept): over those that have them.
            let some = |f: &dyn Fn(&RunRecord) -> Option<f64>| {
                MeanStd::of(&mine.iter().filter_map(|r| f(r)).collect::<Vec<_>>())
            };
            fn sr(r: &RunRecord) -> Option<&crate::eval::TrackEvaluation> {
                r.baselines
                    .spectral_residual
                    .as_ref()
                    .and_then(|b| b.evaluation.as_ref())
            }
            SweepRow {
                variant: v.clone(),
                best_f1: col(&|r| f1(r).best_f1.f1),
                best_f1_delay: col(&|r| f1(r).best_f1_delay.f1),
                best_f1_pointwise: col(&|r| f1(r).best_f1_pointwise.f1),
                flagged_f1: some(&|r| r.evaluation.as_ref().map(|e| e.flagged.adjusted.f1)),
                flagged_pa_k_area: some(&|r| r.evaluation.as_ref().map(|e| e.flagged.pa_k.area)),
                sr_best_f1: some(&|r| sr(r).map(|e| e.best.best_f1.f1)),
                sr_flagged_f1: some(&|r| sr(r).map(|e| e.flagged.adjusted.f1)),
                chance_best_f1: some(&|r| r.baselines.chance.as_ref().map(|c| c.best_f1)),
                train_secs: col(&|r| r.stats.train_secs),
            }
        })
        .collect()
}

/// The table as Markdown: the best F1 (an upper bound: its threshold is picked with the test
/// labels) beside the F1 at the threshold each run flags at, PA%K, and the baselines'.
pub fn to_markdown(rows: &[SweepRow], delay: usize) -> String {
    let mut out = format!(
        "| variant | runs | best F1 (adjusted, upper bound) | best F1 (delay {delay}) | best F1 (point-wise) | F1 at the flagged threshold | PA%K area (flagged) | Spectral Residual best F1 | SR F1 (flagged) | chance best F1 | train s |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        let f = |m: &MeanStd| {
            if m.n == 0 {
                "-".to_string()
            } else {
                format!("{:.3} ± {:.3}", m.mean, m.std)
            }
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |",
            r.variant.label,
            r.best_f1.n,
            f(&r.best_f1),
            f(&r.best_f1_delay),
            f(&r.best_f1_pointwise),
            f(&r.flagged_f1),
            f(&r.flagged_pa_k_area),
            f(&r.sr_best_f1),
            f(&r.sr_flagged_f1),
            f(&r.chance_best_f1),
            r.train_secs.mean
        );
    }
    out
}

/// A column of the CSV table: the figure it reads from a row.
type Column = fn(&SweepRow) -> &MeanStd;

/// The table as CSV.
pub fn to_csv(rows: &[SweepRow]) -> Result<String, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let columns: [(&str, Column); 9] = [
        ("f1", |r| &r.best_f1),
        ("f1_delay", |r| &r.best_f1_delay),
        ("f1_pointwise", |r| &r.best_f1_pointwise),
        ("flagged_f1", |r| &r.flagged_f1),
        ("flagged_pa_k_area", |r| &r.flagged_pa_k_area),
        ("sr_f1", |r| &r.sr_best_f1),
        ("sr_flagged_f1", |r| &r.sr_flagged_f1),
        ("chance_f1", |r| &r.chance_best_f1),
        ("train_secs", |r| &r.train_secs),
    ];
    let mut header = vec!["variant".to_string(), "settings".into(), "runs".into()];
    for (name, _) in &columns {
        header.push(format!("{name}_mean"));
        header.push(format!("{name}_std"));
    }
    w.write_record(&header)?;
    for r in rows {
        let mut record = vec![
            r.variant.label.clone(),
            r.variant.settings.join(";"),
            r.best_f1.n.to_string(),
        ];
        for (_, column) in &columns {
            let m = column(r);
            record.push(format!("{:.6}", m.mean));
            record.push(format!("{:.6}", m.std));
        }
        w.write_record(&record)?;
    }
    String::from_utf8(w.into_inner().map_err(|e| e.into_error())?)
        .map_err(|e| csv::Error::from(std::io::Error::other(e)))
}

/// What a sweep needs.
#[derive(Clone, Debug)]
pub struct SweepSpec {
    /// The variants.
    pub variants: Vec<Variant>,
    /// Seeds 0..seeds (offset by the base config's seed).
    pub seeds: u64,
    /// Settings shared by every run.
    pub base: DonutConfig,
    /// Runs at once.
    pub jobs: usize,
    /// Where the sweep runs (what an automatic thread count means).
    pub host: Host,
}

/// Why a sweep could not start.
#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    /// A variant's setting is invalid.
    #[error("variant `{label}`: {source}")]
    BadVariant {
        /// The variant.
        label: String,
        /// What is wrong.
        #[source]
        source: crate::config::ConfigError,
    },
}

/// The config of each (variant, seed) job, validated before anything runs.
pub fn job_configs(spec: &SweepSpec) -> Result<Vec<(usize, u64, DonutConfig)>, SweepError> {
    let mut jobs = Vec::new();
    for (i, v) in spec.variants.iter().enumerate() {
        let config =
            spec.base
                .with_overrides(&v.settings)
                .map_err(|source| SweepError::BadVariant {
                    label: v.label.clone(),
                    source,
                })?;
        for s in 0..spec.seeds {
            let seed = spec.base.seed + s;
            jobs.push((
                i,
                seed,
                DonutConfig {
                    seed,
                    ..config.clone()
                },
            ));
        }
    }
    Ok(jobs)
}

/// A run's hooks that only stop it (training, the hand-over to scoring, scoring) once `cancel`
/// is set: a run of a sweep or of a fleet.
pub(crate) struct CancelHooks<'a> {
    /// Set to stop the run.
    pub cancel: &'a AtomicBool,
}

impl CancelHooks<'_> {
    fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }
}

impl TrainHooks for CancelHooks<'_> {
    fn event(&mut self, _event: TrainEvent) {}
    fn poll(&mut self, _live: &mut crate::config::LiveSettings) -> Flow {
        if self.cancelled() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }
}

impl RunHooks for CancelHooks<'_> {
    fn score_after_training(&mut self) -> bool {
        !self.cancelled()
    }
    fn scoring(&mut self, _done: usize, _total: usize) -> bool {
        !self.cancelled()
    }
}

/// One run of a sweep: prepare, train, score, evaluate, and the latent means for the gallery.
/// `Ok(None)` when cancelled.
fn run_job(
    raw: &RawSeries,
    variant: usize,
    seed: u64,
    config: &DonutConfig,
    cancel: &AtomicBool,
) -> Result<Option<SweepRun>, String> {
    let prep = Prepared::new(raw, config).map_err(|e| e.to_string())?;
    let mut hooks = CancelHooks { cancel };
    let record = match crate::pipeline::run(&prep, config, &[Part::Test], &mut hooks) {
        Ok(record) => record,
        Err(RunError::Stopped(_)) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if record.stats.stopped {
        return Ok(None);
    }
    let model = record.model()?;
    let ends = Arc::new(crate::train::latent_sample_ends(&prep, GALLERY_POINTS));
    let device = crate::model::device_for(config.backend);
    let means = crate::train::latent_means(&model, config, &prep, &ends, &device);
    let mut summary = record.summary();
    summary.history.snapshots = vec![LatentSnapshot {
        step: record.history.steps.len(),
        epoch: record.stats.epochs_done,
        dim: config.latent_dim,
        ends,
        means,
    }];
    Ok(Some(SweepRun {
        variant,
        seed,
        record: summary,
    }))
}

/// Runs every job of `spec` on `raw`, `spec.jobs` at a time, calling `on_run` as each finishes
/// (or fails). Stops starting new runs, and stops the ones running, when `cancel` is set; finished
/// runs are kept. Returns the finished runs.
pub fn run_sweep(
    raw: &RawSeries,
    spec: &SweepSpec,
    cancel: Arc<AtomicBool>,
    on_run: &(dyn Fn(Result<&SweepRun, String>) + Sync),
) -> Result<Vec<SweepRun>, SweepError> {
    let jobs = job_configs(spec)?;
    let threads = spec.jobs.clamp(1, jobs.len().max(1));
    let ran = crate::threads::run_pool(
        "sweep",
        threads,
        &jobs,
        &cancel,
        |(variant, seed, config)| {
            // Runs at once share the cores: an automatic thread count is split between them
            // rather than each taking every core.
            let config = crate::threads::resolved(config, spec.host, threads);
            match run_job(raw, *variant, *seed, &config, &cancel) {
                Ok(run) => {
                    if let Some(r) = &run {
                        on_run(Ok(r));
                    }
                    run
                }
                Err(e) => {
                    on_run(Err(format!(
                        "{} seed {seed}: {e}",
                        spec.variants[*variant].label
                    )));
                    None
                }
            }
        },
    );
    for _ in 0..ran.threads_not_started {
        on_run(Err("could not start a sweep thread".into()));
    }
    // Jobs are in (variant, seed) order, and the pool keeps their order.
    Ok(ran.results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Objective;
    use crate::eval::F1Score;

    fn record(f1: f64) -> RunRecord {
        let s = F1Score {
            f1,
            precision: f1,
            recall: f1,
            threshold: 1.0,
        };
        RunRecord {
            app_version: String::new(),
            source: String::new(),
            config: DonutConfig::default(),
            data: None,
            stats: crate::history::TrainStats {
                train_secs: 2.0,
                ..Default::default()
            },
            score_secs: 1.0,
            scored_windows: 1,
            weights: Vec::new(),
            history: Default::default(),
            scores: Vec::new(),
            metrics: Some(crate::eval::Metrics {
                best_f1: s,
                best_f1_delay: F1Score { f1: f1 / 2.0, ..s },
                best_f1_pointwise: F1Score { f1: f1 / 4.0, ..s },
            }),
            evaluation: None,
            baselines: Default::default(),
            no_f1_reason: None,
            threshold: crate::eval::Threshold {
                value: 1.0,
                rule: crate::eval::ThresholdRule::BestF1Test,
            },
            thresholds: Vec::new(),
            reference_scores: Vec::new(),
            standardisation: None,
        }
    }

    #[test]
    fn mean_and_sample_std() {
        let m = MeanStd::of(&[0.6, 0.8, 1.0]);
        assert!((m.mean - 0.8).abs() < 1e-12);
        assert!((m.std - 0.2).abs() < 1e-12);
        assert_eq!(MeanStd::of(&[0.5]).std, 0.0);
        assert_eq!(MeanStd::of(&[]).n, 0);
    }

    #[test]
    fn table_groups_runs_by_variant() {
        let variants = grid("latent_dim", &["3".into(), "6".into(), "9".into()]);
        let runs = vec![
            SweepRun {
                variant: 0,
                seed: 0,
                record: record(0.5),
            },
            SweepRun {
                variant: 0,
                seed: 1,
                record: record(0.7),
            },
            SweepRun {
                variant: 1,
                seed: 0,
                record: record(0.9),
            },
        ];
        let rows = table(&variants, &runs);
        assert_eq!(rows.len(), 3);
        assert!((rows[0].best_f1.mean - 0.6).abs() < 1e-12);
        assert!((rows[0].best_f1_delay.mean - 0.3).abs() < 1e-12);
        assert!((rows[0].best_f1_pointwise.mean - 0.15).abs() < 1e-12);
        assert_eq!((rows[1].best_f1.n, rows[2].best_f1.n), (1, 0));
        let md = to_markdown(&rows, 7);
        assert!(md.contains("| latent_dim=3 | 2 | 0.600 ± 0.141 |"), "{md}");
        assert!(md.contains("| latent_dim=9 | 0 | - |"), "{md}");
        let csv = to_csv(&rows).unwrap();
        assert!(
            csv.lines()
                .nth(1)
                .unwrap()
                .starts_with("latent_dim=3,latent_dim=3,2,0.600000,0.141421"),
            "{csv}"
        );
    }

    #[test]
    fn every_preset_builds_valid_configs() {
        for (name, _) in PRESETS {
            let variants = preset(name).unwrap();
            let spec = SweepSpec {
                variants,
                seeds: 2,
                base: DonutConfig::default(),
                jobs: 1,
                host: Host::Cli,
            };
            let jobs = job_configs(&spec).unwrap();
            assert_eq!(jobs.len(), spec.variants.len() * 2, "{name}");
        }
        // One seed of a preset over the defaults.
        let configs_of = |name: &str| {
            job_configs(&SweepSpec {
                variants: preset(name).unwrap(),
                seeds: 1,
                base: DonutConfig::default(),
                jobs: 1,
                host: Host::Cli,
            })
            .unwrap()
        };
        let ablation = configs_of("ablation");
        assert_eq!(
            (ablation[3].2.mcmc_iterations, ablation[3].2.injection_rate),
            (0, 0.0)
        );
        let objective = configs_of("objective");
        let objectives: Vec<_> = objective
            .iter()
            .map(|j| (j.2.objective, j.2.injection_rate, j.2.mcmc_iterations))
            .collect();
        assert_eq!(
            objectives,
            [
                (Objective::MElbo, 0.01, 10),
                (Objective::Elbo, 0.01, 10),
                (Objective::Elbo, 0.0, 0)
            ]
        );
        assert!(preset("nope").is_none());
        // The study's experiments run every epoch, as DONUT does; `seeds` keeps the settings.
        assert!(ablation.iter().all(|j| j.2.patience == 0));
        assert!(configs_of("latent-dim").iter().all(|j| j.2.patience == 0));
        let seeds = configs_of("seeds");
        assert_eq!(seeds.len(), 1);
        assert_eq!(seeds[0].2.patience, DonutConfig::default().patience);
    }

    #[test]
    fn a_bad_value_is_reported_before_anything_runs() {
        let spec = SweepSpec {
            variants: grid("latent_dim", &["3".into(), "99".into()]),
            seeds: 1,
            base: DonutConfig::default(),
            jobs: 1,
            host: Host::Cli,
        };
        let err = job_configs(&spec).unwrap_err().to_string();
        assert!(err.contains("latent_dim=99"), "{err}");
    }
}
