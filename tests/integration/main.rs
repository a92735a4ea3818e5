//! The integration tests: one binary, a module per topic, fixtures in `fixtures/`.

mod cli;
mod data;
mod detect;
mod fleet;
mod layers;
mod messy;
mod runs;
mod training;
mod tune;
mod ui;

use std::path::PathBuf;

/// Path of a fixture file.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/integration/fixtures")
        .join(name)
}

/// A small, fast configuration for tests on the bundled sample.
pub fn quick_config() -> donut_explorer::config::DonutConfig {
    donut_explorer::config::DonutConfig {
        epochs: 3,
        n_z: 8,
        mcmc_iterations: 2,
        valid_every_steps: 5,
        ..Default::default()
    }
}

/// The binary under test, as a command to run.
pub fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_donut-explorer"))
}

/// The JSON object on the last line of a command's stdout.
pub fn last_json_line(stdout: &[u8]) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(stdout);
    serde_json::from_str(stdout.lines().last().unwrap()).unwrap()
}

/// Runs a command that must succeed and returns the JSON object on the last line of its stdout.
pub fn json_of(command: &mut std::process::Command) -> serde_json::Value {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    last_json_line(&out.stdout)
}

/// Starts `command` (stdout and stderr captured), sends it SIGINT (Ctrl-C) after `secs`, and
/// returns what it printed and how it ended.
pub fn interrupted_after(command: &mut std::process::Command, secs: u64) -> std::process::Output {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(secs));
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait_with_output().unwrap()
}
