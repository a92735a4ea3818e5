//! Fleets: many KPIs trained side by side, resumed, reported, run on new data.

use super::{bin, json_of};
use donut_explorer::data::sample::{SampleSpec, generate, to_csv};
use std::path::Path;

/// Quick settings for every KPI of a test fleet.
const QUICK: &[&str] = &[
    "--epochs",
    "2",
    "--set",
    "window=24",
    "--set",
    "hidden_width=16",
    "--set",
    "n_z=4",
    "--set",
    "mcmc_iterations=1",
    "--set",
    "valid_every_steps=5",
    "--set",
    "threads=1",
];

/// Writes `count` generated KPIs (`kpi0.csv`...) of `days` days into `dir`.
pub(super) fn write_fleet(dir: &Path, count: u64, days: usize) {
    for seed in 0..count {
        let spec = SampleSpec {
            seed,
            days,
            ..Default::default()
        };
        std::fs::write(dir.join(format!("kpi{seed}.csv")), to_csv(&generate(&spec))).unwrap();
    }
}

fn train(data: &Path, out: &Path, extra: &[&str]) -> (String, String) {
    train_with_env(data, out, extra, &[])
}

/// `fleet train` of `data` into `out` with `extra` flags and environment variables `env`, which
/// must succeed: its stdout and stderr.
fn train_with_env(
    data: &Path,
    out: &Path,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (String, String) {
    let result = bin()
        .args(["fleet", "train", "--data-dir"])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(QUICK)
        .args(extra)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert!(result.status.success(), "{stderr}");
    (String::from_utf8(result.stdout).unwrap(), stderr)
}

fn report(out: &Path) -> Vec<serde_json::Value> {
    let rows = json_of(bin().args(["fleet", "report", "--json", "--out"]).arg(out));
    rows.as_array().unwrap().clone()
}

/// Asserts that a shard's stderr says it trained exactly the KPIs `mine` of `kpi0..kpi4`.
fn trained_only(stderr: &str, mine: &[usize]) {
    for k in 0..5 {
        let said = stderr.contains(&format!("kpi{k}: trained"));
        assert_eq!(said, mine.contains(&k), "kpi{k}: {stderr}");
    }
}

#[test]
fn a_broken_kpi_fails_alone_and_a_resumed_fleet_redoes_only_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out"));
    std::fs::create_dir_all(&data).unwrap();
    write_fleet(&data, 3, 5);
    std::fs::write(
        data.join("broken.csv"),
        "timestamp,value\n1500000000,1.0\n1500000300,abc\n",
    )
    .unwrap();
    let (_, stderr) = train(&data, &out, &["--jobs", "2"]);
    assert!(
        stderr.contains("3 trained, 0 up to date, 1 failed"),
        "{stderr}"
    );
    let rows = report(&out);
    assert_eq!(rows.len(), 4);
    let broken = rows.iter().find(|r| r["name"] == "broken").unwrap();
    assert_eq!(broken["status"], "failed");
    let message = broken["summary"]["error"].as_str().unwrap();
    assert!(
        message.contains("broken.csv") && message.contains("line 3"),
        "{message}"
    );
    assert_eq!(
        rows.last().unwrap()["name"],
        "broken",
        "failed KPIs come after the trained"
    );
    for name in ["kpi0", "kpi1", "kpi2"] {
        let row = rows.iter().find(|r| r["name"] == name).unwrap();
        assert_eq!(row["status"], "trained");
        assert!(row["summary"]["recent_alerts"].is_u64());
        assert!(out.join(format!("{name}.donut")).is_file());
    }

    // Resumed: the trained KPIs are skipped, the broken one is tried again.
    let (_, stderr) = train(&data, &out, &[]);
    assert!(
        stderr.contains("0 trained, 3 up to date, 1 failed"),
        "{stderr}"
    );
    // A run file cut short (a crash, a full disk) is redone; so is a KPI whose data changed.
    let run = out.join("kpi1.donut");
    let bytes = std::fs::read(&run).unwrap();
    std::fs::write(&run, &bytes[..bytes.len() / 2]).unwrap();
    // (A blank line after the header changes the file, not the series.)
    let text = std::fs::read_to_string(data.join("kpi2.csv")).unwrap();
    let changed = text.replacen('\n', "\n\n", 1);
    std::fs::write(data.join("kpi2.csv"), changed).unwrap();
    let (_, stderr) = train(&data, &out, &[]);
    assert!(stderr.contains("kpi1: trained"), "{stderr}");
    assert!(stderr.contains("kpi2: trained"), "{stderr}");
    assert!(stderr.contains("kpi0: up to date"), "{stderr}");
    donut_explorer::runfile::load(&run).expect("the redone run file is whole");
}

#[test]
fn shards_write_disjoint_kpis_that_one_report_merges_as_one_run_would() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    write_fleet(&data, 5, 4);
    let (shared, whole) = (dir.path().join("shared"), dir.path().join("whole"));
    // Shard I/2 trains the KPIs at positions I, I + 2, ... and nothing else.
    let mine: [&[usize]; 2] = [&[0, 2, 4], &[1, 3]];
    for (shard, kpis) in ["0/2", "1/2"].into_iter().zip(mine) {
        let (_, stderr) = train(&data, &shared, &["--shard", shard]);
        trained_only(&stderr, kpis);
    }
    // A Slurm array task's environment selects the same shards as the flag.
    let slurm = dir.path().join("slurm");
    for (task, kpis) in ["0", "1"].into_iter().zip(mine) {
        let env = [
            ("SLURM_ARRAY_TASK_ID", task),
            ("SLURM_ARRAY_TASK_COUNT", "2"),
        ];
        let (_, stderr) = train_with_env(&data, &slurm, &[], &env);
        assert!(stderr.contains(&format!("(shard {task}/2)")), "{stderr}");
        trained_only(&stderr, kpis);
    }
    train(&data, &whole, &[]);
    let strip = |rows: Vec<serde_json::Value>| -> Vec<serde_json::Value> {
        rows.into_iter()
            .map(|mut r| {
                let s = r["summary"].as_object_mut().unwrap();
                s.remove("train_secs");
                s.remove("score_secs");
                r
            })
            .collect()
    };
    let merged = strip(report(&shared));
    assert_eq!(merged.len(), 5);
    assert_eq!(
        merged,
        strip(report(&whole)),
        "the same KPIs, scores and figures"
    );
    assert_eq!(strip(report(&slurm)), merged);
    for name in ["kpi0", "kpi3"] {
        let a = donut_explorer::runfile::load(&shared.join(format!("{name}.donut"))).unwrap();
        let b = donut_explorer::runfile::load(&whole.join(format!("{name}.donut"))).unwrap();
        assert_eq!(a.scores, b.scores, "{name}: the same scores");
    }
}

#[test]
fn fleet_detect_ranks_kpis_by_their_new_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let (data, models, new, alerts) = (
        dir.path().join("data"),
        dir.path().join("models"),
        dir.path().join("new"),
        dir.path().join("alerts"),
    );
    for d in [&data, &new] {
        std::fs::create_dir_all(d).unwrap();
    }
    write_fleet(&data, 2, 5);
    train(&data, &models, &[]);
    // New data: the last 400 rows of each; kpi1's with a long burst of extreme values (more
    // alerts than the anomalies both tails hold).
    for name in ["kpi0", "kpi1"] {
        let text = std::fs::read_to_string(data.join(format!("{name}.csv"))).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut tail: Vec<String> = lines[lines.len() - 400..]
            .iter()
            .map(|l| l.to_string())
            .collect();
        if name == "kpi1" {
            for line in tail.iter_mut().skip(300).take(60) {
                let ts = line.split(',').next().unwrap().to_string();
                *line = format!("{ts},1000,0");
            }
        }
        std::fs::write(
            new.join(format!("{name}.csv")),
            format!("{}\n{}\n", lines[0], tail.join("\n")),
        )
        .unwrap();
    }
    std::fs::write(new.join("orphan.csv"), "timestamp,value\n1,2\n").unwrap();
    let rows = json_of(
        bin()
            .args(["fleet", "detect", "--json", "--models"])
            .arg(&models)
            .arg("--data-dir")
            .arg(&new)
            .arg("--out")
            .arg(&alerts),
    );
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0]["name"], "kpi1",
        "the KPI with the burst first: {rows:?}"
    );
    assert!(rows[0]["alerts"].as_u64().unwrap() >= 60, "{rows:?}");
    assert!(rows[2]["error"].as_str().unwrap().contains("orphan.donut"));
    assert!(alerts.join("kpi1.alerts.csv").is_file());
}

#[test]
fn ctrl_c_stops_a_fleet_and_the_same_command_resumes_it() {
    let dir = tempfile::tempdir().unwrap();
    let (data, out) = (dir.path().join("data"), dir.path().join("out"));
    std::fs::create_dir_all(&data).unwrap();
    write_fleet(&data, 3, 5);
    // Runs long enough to be interrupted: QUICK's settings but 100,000 epochs without patience
    // (minutes a KPI).
    let stopped = super::interrupted_after(
        bin()
            .args(["fleet", "train", "--jobs", "1", "--data-dir"])
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .args(&QUICK[2..])
            .args(["--epochs", "100000", "--set", "patience=0"]),
        3,
    );
    let stderr = String::from_utf8_lossy(&stopped.stderr);
    assert_eq!(stopped.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("stopped by Ctrl-C after 0 of 3 KPIs"),
        "{stderr}"
    );
    // The interrupted KPI left no summary: the same command (quick now) trains all three.
    let (_, stderr) = train(&data, &out, &[]);
    assert!(
        stderr.contains("fleet: 3 trained, 0 up to date, 0 failed"),
        "{stderr}"
    );
}
