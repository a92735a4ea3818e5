//! The `donut-explorer` binary: the desktop app with no subcommand, else the command line.

use clap::Parser;
use donut_explorer::cli::{Cli, run_command};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(command) => run_command(command),
        None => donut_explorer::ui::run_native(cli.app_options())
            .map_err(|e| anyhow::anyhow!("the app failed: {e}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
