//! The top bar (files, runs, windows, the data's summary, the last error) and the status bar
//! (the run's phase and progress, its figures, the last notice, frame time).

use super::commands::AppCommand;
use super::dataset::Dataset;
use super::session::RunState;
use super::state::FrameTimes;
use super::widgets::{format_interval, recent_ui, short_name};
use crate::worker::Phase;
use std::path::PathBuf;

/// What the top bar shows.
pub struct TopBar<'a> {
    /// The loaded data.
    pub data: Option<&'a Dataset>,
    /// Recently opened CSVs.
    pub recent_files: &'a [PathBuf],
    /// Recently saved or opened runs.
    pub recent_runs: &'a [PathBuf],
    /// A file is being read or written.
    pub busy: bool,
    /// The last error, dismissible.
    pub error: &'a mut Option<String>,
}

/// Draws the top bar; its buttons queue commands.
pub fn top_bar_ui(ui: &mut egui::Ui, bar: TopBar<'_>, commands: &mut Vec<AppCommand>) {
    ui.horizontal_wrapped(|ui| {
        ui.heading("donut-explorer");
        // Light, dark, or as the desktop says (kept by egui between launches). Words, not
        // egui's emoji icons, which the bundled fonts do not have.
        let before = ui.ctx().options(|o| o.theme_preference);
        let mut theme = before;
        for (choice, name) in [
            (egui::ThemePreference::Dark, "Dark"),
            (egui::ThemePreference::Light, "Light"),
            (egui::ThemePreference::System, "System"),
        ] {
            ui.selectable_value(&mut theme, choice, name)
                .on_hover_text("Colour theme");
        }
        if theme != before {
            ui.ctx().set_theme(theme);
        }
        ui.separator();
        let mut button = |label: &str, hover: &str, command: AppCommand| {
            if ui.button(label).on_hover_text(hover).clicked() {
                commands.push(command);
            }
        };
        button("Open CSV…", "Open a timestamp,value[,label] CSV (or drop one on the window)", AppCommand::PickCsv);
        button("Sample data", "Load the bundled sample series", AppCommand::LoadSample);
        button("Sweeps…", "Repeat runs over a setting's values and seeds; compare their F1 and latent spaces", AppCommand::ToggleSweeps);
        button("Pin run", "Keep the finished run aside to compare the next one with it", AppCommand::PinRun);
        button("Compare…", "The pinned run beside the current one: settings, figures, losses, latent spaces, detections", AppCommand::ToggleCompare);
        button("Save run…", "Save the finished run: settings, weights, metrics, losses, latent snapshots, scores", AppCommand::SaveRun);
        button("Open run…", "Open a saved run (.donut)", AppCommand::PickRun);
        if let Some(p) = recent_ui(ui, "Recent runs", bar.recent_runs) {
            commands.push(AppCommand::OpenRun(p));
        }
        if let Some(p) = recent_ui(ui, "Recent", bar.recent_files) {
            commands.push(AppCommand::OpenCsv(p));
        }
        ui.separator();
        if let Some(d) = bar.data {
            match &d.summary {
                Some(s) => {
                    ui.label(format!(
                        "{} · {} points · every {} · {} missing · {:.2} % anomalous · roughness {:.3} · train/valid/test {}/{}/{}",
                        short_name(&s.source),
                        s.points,
                        format_interval(s.interval_secs, d.raw.has_timestamps),
                        s.missing,
                        s.anomaly_ratio * 100.0,
                        s.roughness,
                        s.split[0],
                        s.split[1],
                        s.split[2]
                    ));
                }
                None => {
                    ui.colored_label(ui.visuals().warn_fg_color, d.problem.clone().unwrap_or_default());
                }
            }
        }
        if bar.busy {
            ui.spinner();
        }
    });
    if let Some(e) = bar.error.clone() {
        ui.horizontal(|ui| {
            ui.colored_label(ui.visuals().error_fg_color, format!("Error: {e}"));
            if ui.small_button("Dismiss").clicked() {
                *bar.error = None;
            }
        });
    }
}

/// Draws the status bar.
pub fn status_ui(
    ui: &mut egui::Ui,
    run: &RunState,
    notice: Option<&str>,
    frame_times: &FrameTimes,
) {
    ui.horizontal_wrapped(|ui| {
        let state = match run.phase {
            Phase::Idle if run.record.is_some() => "finished",
            Phase::Idle => "idle",
            Phase::Training => "training",
            Phase::Paused => "paused",
            Phase::Scoring => "scoring",
        };
        ui.strong(state);
        if let Some(s) = run.history().steps.last() {
            let epochs = run.config.as_ref().map_or(0, |c| c.epochs);
            ui.label(format!(
                "epoch {}/{} · step {}/{} · {:.0} windows/s · elapsed {:.1} s",
                s.epoch + 1,
                epochs,
                s.step,
                run.total_steps,
                s.windows_per_sec,
                s.elapsed_secs
            ));
        }
        if let Some((done, total)) = run.score_progress {
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .desired_width(160.0)
                    .text(format!("scoring {done}/{total}")),
            );
        }
        if let Some(r) = &run.record {
            let figures = match r.metrics {
                Some(m) => format!(
                    "best F1 {:.3} / delay {} {:.3} / point-wise {:.3}",
                    m.best_f1.f1, r.config.eval_delay, m.best_f1_delay.f1, m.best_f1_pointwise.f1
                ),
                None => "no F1 (no labels in the test part)".into(),
            };
            ui.label(format!(
                "trained {:.1} s ({:.0} win/s) · scored {:.1} s · {figures}",
                r.stats.train_secs, r.stats.train_windows_per_sec, r.score_secs,
            ));
        }
        if let Some(n) = notice {
            ui.separator();
            ui.label(n);
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            let (median, _, worst, _) = frame_times.stats(120);
            ui.weak(format!("frame {median:.1} ms (worst {worst:.1})"));
        });
    });
}
