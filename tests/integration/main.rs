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
