//! `corpus`: settings judged over folders of labelled KPIs and several seeds, with the paired
//! difference of each variant from the first (`crate::corpus`).

use super::interrupt::{INTERRUPTED, interrupted, stop_on_ctrl_c};
use super::{bar_style, say_above, write_file};
use crate::config::DonutConfig;
use crate::corpus::{CorpusResult, CorpusSpec, kpis, run_corpus, summarise};
use crate::sweep::Variant;
use anyhow::{Context, Result};
use clap::Args;
use indicatif::ProgressBar;
use std::path::PathBuf;

/// `corpus`'s arguments.
#[derive(Args, Debug)]
pub struct CorpusArgs {
    /// CSVs, or folders whose CSVs are taken (each folder is a group of the tables); repeat or
    /// separate with commas.
    #[arg(long, value_delimiter = ',', required_unless_present = "summarise")]
    pub data: Vec<PathBuf>,
    /// A variant, `LABEL:KEY=VALUE[;KEY=VALUE...]` (repeatable); the first is the base the others
    /// are paired with. None: the settings as given.
    #[arg(long = "variant", value_name = "LABEL:SETTINGS")]
    pub variants: Vec<String>,
    /// A config file with the settings shared by every run.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// A setting shared by every run, as key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Seeds per KPI and variant (seed, seed + 1, ...).
    #[arg(long, default_value_t = 3)]
    pub seeds: u64,
    /// Runs at once (0: one per core).
    #[arg(long, default_value_t = 0)]
    pub jobs: usize,
    /// Keep only the last this many points of each KPI (a quicker inner loop).
    #[arg(long)]
    pub max_points: Option<usize>,
    /// Write every run's figures here as JSON (for `--summarise`).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Also write the tables as Markdown here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Run nothing: print the tables of a JSON file that `--json` wrote.
    #[arg(long, value_name = "JSON")]
    pub summarise: Option<PathBuf>,
}

/// `LABEL:KEY=VALUE;KEY=VALUE` as a variant.
fn parse_variant(text: &str) -> Result<Variant> {
    let (label, settings) = text.split_once(':').unwrap_or((text, ""));
    anyhow::ensure!(
        !label.trim().is_empty(),
        "--variant {text}: give it a label (LABEL:KEY=VALUE;...)"
    );
    Ok(Variant {
        label: label.trim().into(),
        settings: settings
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect(),
    })
}

/// Runs `corpus`.
pub fn corpus_command(args: &CorpusArgs) -> Result<()> {
    if let Some(path) = &args.summarise {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let result: CorpusResult = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a corpus JSON", path.display()))?;
        print!("{}", summarise(&result));
        return Ok(());
    }
    let base = match &args.config {
        Some(path) => DonutConfig::from_file(path)?,
        None => DonutConfig::default(),
    }
    .with_overrides(&args.set)?;
    let mut variants = args
        .variants
        .iter()
        .map(|v| parse_variant(v))
        .collect::<Result<Vec<_>>>()?;
    if variants.is_empty() {
        variants.push(Variant {
            label: "as given".into(),
            settings: Vec::new(),
        });
    }
    let kpis = kpis(&args.data)?;
    let spec = CorpusSpec {
        variants,
        seeds: args.seeds.max(1),
        base,
        jobs: if args.jobs == 0 {
            crate::threads::cores()
        } else {
            args.jobs
        },
        max_points: args.max_points,
    };
    let total = kpis.len() as u64 * spec.variants.len() as u64 * spec.seeds;
    let bar = ProgressBar::new(total);
    bar.set_style(bar_style(
        "corpus [{elapsed_precise}] {wide_bar} {pos}/{len} runs",
    ));
    stop_on_ctrl_c("corpus", "the tables of the runs that finished");
    let result = run_corpus(&kpis, &spec, &INTERRUPTED, &|outcome| {
        match outcome {
            Ok(r) => say_above(
                &bar,
                format!(
                    "{} {} seed {}: best F1 {:.3}, flagged {:.3} ({} points), SR {:.3} | {:.1} s, kept step {} of {}",
                    r.kpi,
                    spec.variants[r.variant].label,
                    r.seed,
                    r.model.best_f1,
                    r.model.flagged.f1,
                    r.model.flagged.flagged_points,
                    r.spectral_residual.as_ref().map_or(f64::NAN, |s| s.best_f1),
                    r.train_secs,
                    r.best_step,
                    r.steps
                ),
            ),
            Err(line) => say_above(&bar, format!("no figures: {line}")),
        }
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    let tables = summarise(&result);
    print!("{tables}");
    if let Some(path) = &args.markdown {
        write_file(path, |w| w.write_all(tables.as_bytes()))?;
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string(&result)?;
        write_file(path, |w| w.write_all(text.as_bytes()))?;
    }
    if interrupted() {
        eprintln!(
            "corpus: stopped by Ctrl-C after {} of {total} runs",
            result.runs.len()
        );
        std::process::exit(130);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_variant_is_a_label_and_its_settings() {
        let v = parse_variant("long: patience=20; epochs=300").unwrap();
        assert_eq!(v.label, "long");
        assert_eq!(v.settings, ["patience=20", "epochs=300"]);
        assert!(parse_variant("base").unwrap().settings.is_empty());
        assert!(parse_variant(":patience=1").is_err());
    }
}
