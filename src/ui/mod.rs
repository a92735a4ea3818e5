//! The desktop app: panels over the engine, which runs on the worker thread.
//!
//! The UI thread never touches tensors, files or dialogs: loading and saving run on short-lived
//! named threads ([`loader`]), training and scoring on the worker ([`crate::worker`]), and their
//! events are drained in `logic()` within a time budget. Panels draw from the narrow state they
//! are given and queue [`commands::AppCommand`]s, applied after they are drawn.

mod app;
mod bars;
mod baselines;
mod colormap;
mod columns;
pub mod commands;
mod compare;
mod controls;
mod dataset;
mod detection;
mod file_browser;
pub mod fleet;
mod latent;
pub mod latent3d;
mod layout;
mod lessons;
mod loader;
mod loss;
mod pa_lesson;
mod palette;
mod panes;
mod projection;
mod reconstruction;
mod series;
mod session;
mod state;
mod sweeps;
mod tail;
pub mod tune;
mod widgets;

pub use app::DonutApp;
pub use session::RunState;
pub use state::{AppOptions, Persisted, state_file_path};

/// Opens the app window (glow renderer, which is the lighter one under software rendering).
pub fn run_native(options: AppOptions) -> eframe::Result {
    let native = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("donut-explorer")
            .with_inner_size([1400.0, 900.0])
            .with_min_inner_size([900.0, 600.0])
            .with_drag_and_drop(true),
        renderer: eframe::Renderer::Glow,
        ..Default::default()
    };
    eframe::run_native(
        "donut-explorer",
        native,
        Box::new(move |cc| Ok(Box::new(DonutApp::new(cc, options)))),
    )
}
