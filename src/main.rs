//! The `donut-explorer` binary: the desktop app with no subcommand, else the command line.

use clap::Parser;
use donut_explorer::cli::{Cli, run_command};
use donut_explorer::ui::AppOptions;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The app's launch options from the command line's app flags.
fn app_options(cli: Cli) -> AppOptions {
    AppOptions {
        data: cli.open,
        autostart: cli.autostart,
        quit_after_secs: cli.quit_after,
        frame_report: cli.frame_report,
        run: cli.run,
        pin: cli.pin,
        settings: cli.settings,
        fleet: cli.fleet,
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Some(command) => run_command(command),
        None => donut_explorer::ui::run_native(app_options(cli))
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
