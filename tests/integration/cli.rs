//! The command line, run as a user would: the binary, its exit codes, its JSON and files.

use super::{bin, fixture, json_of};

const QUICK: &[&str] = &[
    "--epochs",
    "2",
    "--set",
    "n_z=8",
    "--set",
    "mcmc_iterations=1",
    "--set",
    "valid_every_steps=5",
];

#[test]
fn train_json_reports_every_figure_and_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let detections = dir.path().join("det.csv");
    let out = bin()
        .args([
            "train",
            "--seed",
            "3",
            "--latent",
            "4",
            "--json",
            "--detections",
        ])
        .arg(&detections)
        .args(QUICK)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    // With --json, stdout is the JSON object alone (the summary went to stderr).
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let last = stdout.lines().last().unwrap();
    let v: serde_json::Value = serde_json::from_str(last).unwrap();
    for key in ["best_f1", "best_f1_delay", "best_f1_pointwise"] {
        for field in ["f1", "precision", "recall", "threshold"] {
            assert!(v[key][field].is_number(), "{key}.{field} in {last}");
        }
    }
    assert_eq!(
        v["best_f1_delay"]["delay"], 7,
        "the key names no setting; a field holds it"
    );
    // Flagged at a threshold picked without the test labels; the test labels' best is kept as
    // the upper bound it is.
    assert_eq!(v["threshold"]["rule"], "best_f1_validation");
    let rules: Vec<&str> = v["thresholds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rule"].as_str().unwrap())
        .collect();
    assert_eq!(
        rules,
        ["best_f1_test", "best_f1_validation", "pot", "alarm_rate"]
    );
    assert_eq!(v["thresholds"][0]["value"], v["best_f1"]["threshold"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("best F1"));
    for key in ["train_secs", "train_windows_per_sec", "score_secs"] {
        assert!(v[key].as_f64().unwrap() > 0.0, "{key}");
    }
    assert_eq!(v["epochs"], 2);
    assert_eq!(v["seed"], 3);
    assert_eq!(v["config"]["latent_dim"], 4);
    assert_eq!(v["config"]["n_z"], 8);

    let text = std::fs::read_to_string(&detections).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next().unwrap(),
        "timestamp,part,value,label,missing,score,flagged",
        "the header is on line 1"
    );
    // What the columns mean, and the threshold's rule, sit beside it.
    let sidecar: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("det.csv.json")).unwrap())
            .unwrap();
    assert!(
        sidecar["columns"]["score"]
            .as_str()
            .unwrap()
            .contains("no window")
    );
    assert_eq!(sidecar["threshold"]["rule"], "best_f1_validation");
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert_eq!(rows.len(), 28 * 288);
    assert!(
        rows[..119].iter().all(|r| r[5].is_empty()),
        "no score for the first W-1 points"
    );
    assert!(rows[119][5].parse::<f64>().is_ok());
    assert!(rows.iter().any(|r| r[6] == "1"), "some points are flagged");
    assert!(
        rows.iter().filter(|r| r[4] == "1").all(|r| r[6] == "0"),
        "missing points are never flagged"
    );
    // The detections file is data again: it loads as a series with its labels.
    let again = json_of(
        bin()
            .args(["train", "--json", "--data"])
            .arg(&detections)
            .args(QUICK),
    );
    assert_eq!(again["data"]["points"], 28 * 288);
    assert_eq!(again["data"]["has_labels"], true);
}

#[test]
fn odd_headers_are_read_with_column_flags_and_no_labels_give_no_f1() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stock.csv");
    let mut text = String::from("Date;Close\n");
    for i in 0..2000i64 {
        let t = chrono::DateTime::from_timestamp(1_577_836_800 + 3600 * i, 0).unwrap();
        let v = 100.0 + 10.0 * ((i % 24) as f64 / 24.0 * std::f64::consts::TAU).sin();
        text.push_str(&format!(
            "{};{}\n",
            t.format("%Y-%m-%d %H:%M"),
            format!("{v:.2}").replace('.', ",")
        ));
    }
    std::fs::write(&path, text).unwrap();
    let out = bin()
        .args(["train", "--data"])
        .arg(&path)
        .args(QUICK)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("stock.csv") && err.contains("line 1") && err.contains("--value-column"),
        "{err}"
    );

    let out = bin()
        .args([
            "train",
            "--json",
            "--value-column",
            "Close",
            "--set",
            "window=24",
            "--data",
        ])
        .arg(&path)
        .args(QUICK)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(v["best_f1"].is_null(), "no F1 without labels: {v}");
    assert!(
        v["no_f1_reason"]
            .as_str()
            .unwrap()
            .contains("no label column")
    );
    assert_eq!(v["threshold"]["rule"], "alarm_rate");
    assert_eq!(v["data"]["interval_secs"], 3600);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("decimal comma"),
        "the applied reading is said once: {err}"
    );
    assert!(
        err.contains("warning") && err.contains("no label column"),
        "{err}"
    );
    assert!(err.contains("no F1"), "{err}");
}

#[test]
fn bad_input_exits_non_zero_naming_file_line_and_problem() {
    let out = bin()
        .args(["train", "--set", "duplicates=error", "--data"])
        .arg(fixture("duplicate_ts.csv"))
        .args(QUICK)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("duplicate_ts.csv")
            && err.contains("line 4")
            && err.contains("duplicate timestamp"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");

    let out = bin()
        .args(["train", "--data", "/nonexistent.csv"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.csv"));
}

#[test]
fn bad_settings_exit_non_zero_naming_the_setting() {
    let out = bin()
        .args(["train", "--set", "latent_dim=40"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("latent_dim"), "{err}");
    let out = bin()
        .args(["train", "--set", "no_such_thing=1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown setting `no_such_thing`"));
}

#[test]
fn config_file_and_flags_combine() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("run.toml");
    std::fs::write(
        &cfg,
        "latent_dim = 2\nepochs = 1\nn_z = 4\nmcmc_iterations = 0\n",
    )
    .unwrap();
    let out = bin()
        .args(["train", "--json", "--seed", "9", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let v: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(
        (
            v["config"]["latent_dim"].as_u64(),
            v["seed"].as_u64(),
            v["epochs"].as_u64()
        ),
        (Some(2), Some(9), Some(1))
    );
}

#[test]
fn save_then_load_scores_without_training() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run.donut");
    let trained = json_of(
        bin()
            .args(["train", "--json", "--save"])
            .arg(&run)
            .args(QUICK),
    );
    let saved = donut_explorer::runfile::load(&run).unwrap();
    assert!(
        saved.history.snapshots.len() >= 2,
        "a saved run keeps latent snapshots for replay ({})",
        saved.history.snapshots.len()
    );
    assert_eq!(
        saved.history.snapshots.last().unwrap().step,
        saved.history.steps.len()
    );
    let out = bin()
        .args(["train", "--json", "--load"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        stdout.lines().count(),
        1,
        "with --json, the JSON alone: {stdout}"
    );
    let loaded: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        loaded["best_f1"], trained["best_f1"],
        "the same weights give the same scores"
    );
    assert_eq!(loaded["epochs"], 2);
    // Only scoring settings may change: a learning rate the model was not trained with is
    // refused, naming it; another n_z is taken.
    let out = bin()
        .args(["train", "--load"])
        .arg(&run)
        .args(["--set", "learning_rate=0.5"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("learning_rate cannot change: the model was trained with the run's value")
            && err.contains("n_z, "),
        "{err}"
    );
    let rescored = json_of(
        bin()
            .args(["train", "--json", "--load"])
            .arg(&run)
            .args(["--set", "n_z=64"]),
    );
    assert_eq!(rescored["config"]["n_z"], 64);
    // The report names the best F1 as the upper bound it is, and gives the F1 where the run
    // flags, PA%K, and the baselines' figures beside the model's.
    for report in [&trained, &loaded] {
        assert!(
            report["best_f1_is"]
                .as_str()
                .unwrap()
                .contains("upper bound")
        );
        let flagged = &report["flagged_at"];
        assert_eq!(flagged["threshold"], report["threshold"]);
        assert!(flagged["adjusted"]["f1"].is_f64());
        assert_eq!(flagged["pa_k"]["f1"].as_array().unwrap().len(), 11);
        assert!(
            report["baselines"]["spectral_residual"]["evaluation"]["best"]["best_f1"]["f1"]
                .is_f64()
        );
        assert!(report["baselines"]["chance"]["best_f1"].is_f64());
    }
    // A truncated run file is refused with a message.
    let bytes = std::fs::read(&run).unwrap();
    std::fs::write(&run, &bytes[..bytes.len() / 2]).unwrap();
    let out = bin().args(["train", "--load"]).arg(&run).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("truncated"));
}
