//! The Fleet tab: a folder of KPIs, one model each. A table of its KPIs (name, points, where
//! each stands: not trained / training / trained / failed / stale, alerts in the most recent
//! day, best F1 where labelled, a sparkline of the most recent day's values and scores),
//! sortable by any column; the fleet trained in the background (`fleet train` on a named
//! thread, its progress here, cancellable); a click opens that KPI in the explorer with its
//! model loaded. The folder is read and the fleet trained off the UI thread.

use super::commands::AppCommand;
use crate::config::DonutConfig;
use crate::fleet::{self, FleetSpec, Kpi, KpiState, KpiView, Outcome, Progress};
use crossbeam_channel::{Receiver, bounded};
use egui::{Color32, RichText, Sense, Ui};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where the fleet's models go, inside the folder of KPIs.
pub const OUT_FOLDER: &str = "donut-fleet";

/// What the Fleet tab's background threads report.
pub enum FleetEvent {
    /// The folder was read: its KPIs against the output folder (or why it could not be).
    Scanned(Result<Vec<KpiView>, String>),
    /// A KPI's training began.
    Started(String),
    /// A KPI settled.
    Settled(Box<Outcome>),
    /// The fleet run ended (all settled, or cancelled).
    Finished,
}

/// The table's columns, by which it can be sorted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SortBy {
    /// The KPI's name.
    #[default]
    Name,
    /// Points in its file.
    Points,
    /// Where it stands.
    State,
    /// Alerts in the most recent day.
    Alerts,
    /// Best F1.
    BestF1,
}

/// The Fleet tab's state.
#[derive(Default)]
pub struct FleetPanel {
    /// The folder of KPIs, as typed or chosen.
    pub folder_text: String,
    /// The folder read last.
    pub folder: Option<PathBuf>,
    /// Its KPIs.
    pub rows: Vec<KpiView>,
    /// KPIs training now.
    pub training: Vec<String>,
    /// Why the folder could not be read.
    pub error: Option<String>,
    /// The sort column and whether it is descending.
    pub sort: (SortBy, bool),
    /// KPIs settled in the current fleet run, and how many it has.
    pub progress: Option<(usize, usize)>,
    events: Option<Receiver<FleetEvent>>,
    cancel: Option<Arc<AtomicBool>>,
}

impl FleetPanel {
    /// True while a scan or a fleet run is under way.
    pub fn is_busy(&self) -> bool {
        self.events.is_some()
    }

    /// Reads `folder` (its CSVs against its output folder for `config`) in the background.
    pub fn open(&mut self, ctx: &egui::Context, folder: PathBuf, config: &DonutConfig) {
        if self.is_busy() {
            return;
        }
        self.folder_text = folder.display().to_string();
        self.folder = Some(folder.clone());
        self.error = None;
        let (tx, rx) = bounded(4);
        let (ctx, config) = (ctx.clone(), config.clone());
        let spawned = std::thread::Builder::new()
            .name("fleet-scan".into())
            .spawn(move || {
                let scanned = fleet::kpis_in_dir(&folder)
                    .map(|kpis| fleet::views(&kpis, &folder.join(OUT_FOLDER), &config))
                    .map_err(|e| e.to_string());
                let _ = tx.send(FleetEvent::Scanned(scanned));
                ctx.request_repaint();
            });
        match spawned {
            Ok(_) => self.events = Some(rx),
            Err(e) => self.error = Some(format!("cannot start reading the folder: {e}")),
        }
    }

    /// Trains every KPI of the folder read last with `config` in the background (each KPI
    /// already up to date is skipped).
    pub fn train(&mut self, ctx: &egui::Context, config: &DonutConfig) {
        let Some(folder) = self.folder.clone() else {
            return;
        };
        if self.is_busy() {
            return;
        }
        let kpis: Vec<Kpi> = self.rows.iter().map(|r| r.kpi.clone()).collect();
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = bounded(64);
        let spec = FleetSpec {
            kpis,
            shard: None,
            out: folder.join(OUT_FOLDER),
            config: config.clone(),
            jobs: crate::threads::cores(),
        };
        let (ctx, stop) = (ctx.clone(), cancel.clone());
        let spawned = std::thread::Builder::new()
            .name("fleet-runner".into())
            .spawn(move || {
                // Its runs (and their pools) below the UI thread and the renderer.
                crate::threads::run_in_background();
                let said = |event: FleetEvent| {
                    let _ = tx.send(event);
                    ctx.request_repaint();
                };
                let _ = fleet::train_fleet(&spec, &stop, &|progress| match progress {
                    Progress::Started(kpi) => said(FleetEvent::Started(kpi.name.clone())),
                    Progress::Settled(outcome) => {
                        said(FleetEvent::Settled(Box::new(outcome.clone())))
                    }
                });
                said(FleetEvent::Finished);
            });
        match spawned {
            Ok(_) => {
                self.progress = Some((0, self.rows.len()));
                self.events = Some(rx);
                self.cancel = Some(cancel);
            }
            Err(e) => self.error = Some(format!("cannot start the fleet: {e}")),
        }
    }

    /// Asks the fleet run to stop (each KPI in flight ends at its next step; finished ones
    /// keep their models).
    pub fn cancel(&mut self) {
        if let Some(cancel) = &self.cancel {
            cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Takes what the background threads have sent.
    pub fn poll(&mut self) {
        let Some(events) = &self.events else {
            return;
        };
        let received: Vec<FleetEvent> = events.try_iter().collect();
        let mut ended = false;
        for event in received {
            match event {
                FleetEvent::Scanned(Ok(rows)) => {
                    self.rows = rows;
                    ended = true;
                }
                FleetEvent::Scanned(Err(e)) => {
                    self.rows.clear();
                    self.error = Some(e);
                    ended = true;
                }
                FleetEvent::Started(name) => self.training.push(name),
                FleetEvent::Settled(outcome) => {
                    let summary = outcome.summary();
                    self.training.retain(|n| *n != summary.name);
                    if let Some(row) = self.rows.iter_mut().find(|r| r.kpi.name == summary.name) {
                        row.state = match *outcome {
                            Outcome::Failed(_) => KpiState::Failed,
                            _ => KpiState::Trained,
                        };
                        row.summary = Some(summary.clone());
                    }
                    if let Some((done, _)) = &mut self.progress {
                        *done += 1;
                    }
                }
                FleetEvent::Finished => {
                    self.training.clear();
                    self.cancel = None;
                    ended = true;
                }
            }
        }
        if ended {
            self.events = None;
        }
    }

    /// The rows in the order of the sort column.
    fn sorted(&self) -> Vec<&KpiView> {
        let mut rows: Vec<&KpiView> = self.rows.iter().collect();
        let (by, descending) = self.sort;
        let key = |r: &KpiView| -> f64 {
            let s = r.summary.as_ref();
            match by {
                SortBy::Name => 0.0,
                SortBy::Points => r.points.unwrap_or(0) as f64,
                SortBy::State => r.state as u8 as f64,
                SortBy::Alerts => s.and_then(|s| s.recent_alerts).map_or(-1.0, |a| a as f64),
                SortBy::BestF1 => s.and_then(|s| s.best_f1).unwrap_or(-1.0),
            }
        };
        rows.sort_by(|a, b| {
            key(a)
                .total_cmp(&key(b))
                .then_with(|| a.kpi.name.cmp(&b.kpi.name))
        });
        if descending {
            rows.reverse();
        }
        rows
    }
}

const VALUE_COLOR: Color32 = super::palette::SKY_BLUE;
const SCORE_COLOR: Color32 = super::palette::ORANGE;

/// Draws one sparkline of `values` (NaN: no value) in a small box.
fn sparkline_ui(ui: &mut Ui, values: &[f32], color: Color32, label: &str) {
    let (rect, response) = ui.allocate_exact_size(egui::vec2(110.0, 20.0), Sense::hover());
    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, label.to_string()));
    let finite: Vec<f32> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let (lo, hi) = finite
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    if finite.len() < 2 || hi <= lo {
        return;
    }
    let n = values.len().max(2) as f32 - 1.0;
    let points: Vec<egui::Pos2> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| v.is_finite())
        .map(|(i, &v)| {
            egui::pos2(
                rect.left() + rect.width() * i as f32 / n,
                rect.bottom() - rect.height() * (v - lo) / (hi - lo),
            )
        })
        .collect();
    ui.painter()
        .add(egui::Shape::line(points, egui::Stroke::new(1.0, color)));
}

/// The state of a row in words (training when its KPI is in flight).
fn state_text(panel: &FleetPanel, row: &KpiView) -> (String, Option<Color32>) {
    if panel.training.contains(&row.kpi.name) {
        return ("training…".into(), Some(super::palette::SKY_BLUE));
    }
    let color = match row.state {
        KpiState::Failed => Some(super::palette::VERMILLION),
        KpiState::Stale => Some(super::palette::YELLOW),
        KpiState::Trained => Some(super::palette::BLUISH_GREEN),
        KpiState::NotTrained => None,
    };
    (row.state.name().into(), color)
}

/// Draws the Fleet tab.
pub fn fleet_ui(
    ui: &mut Ui,
    panel: &mut FleetPanel,
    config: &DonutConfig,
    commands: &mut Vec<AppCommand>,
) {
    ui.horizontal_wrapped(|ui| {
        ui.label("folder of KPIs (one CSV each)");
        ui.add(egui::TextEdit::singleline(&mut panel.folder_text).desired_width(320.0))
            .on_hover_text("A folder of CSVs; each KPI's model goes to its donut-fleet subfolder");
        let busy = panel.is_busy();
        if ui.add_enabled(!busy, egui::Button::new("Open folder")).clicked() {
            let text = panel.folder_text.trim();
            if text.is_empty() {
                panel.error = Some("type the folder of KPIs first".into());
            } else {
                let folder = PathBuf::from(text);
                panel.open(ui.ctx(), folder, config);
            }
        }
        if ui
            .add_enabled(!busy && !panel.rows.is_empty(), egui::Button::new("Train fleet"))
            .on_hover_text("Train every KPI with the current settings, one per core, in the background; KPIs already up to date are skipped")
            .clicked()
        {
            panel.train(ui.ctx(), config);
        }
        if ui
            .add_enabled(panel.cancel.is_some(), egui::Button::new("Cancel fleet"))
            .clicked()
        {
            panel.cancel();
        }
    });
    if let Some(e) = &panel.error {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
    if let Some((done, total)) = panel.progress {
        let running = panel.cancel.is_some();
        ui.horizontal(|ui| {
            ui.add(
                egui::ProgressBar::new(done as f32 / total.max(1) as f32)
                    .desired_width(240.0)
                    .text(format!("{done} of {total} KPIs settled")),
            );
            if running {
                ui.spinner();
            }
        });
    }
    if panel.rows.is_empty() {
        ui.label("Open a folder of KPI CSVs to see them here, train the fleet, and open any KPI with its model.");
        return;
    }
    let headers = [
        ("KPI", SortBy::Name),
        ("points", SortBy::Points),
        ("status", SortBy::State),
        ("alerts (last day)", SortBy::Alerts),
        ("best F1", SortBy::BestF1),
    ];
    let mut clicked: Option<(Kpi, bool)> = None;
    egui::ScrollArea::both()
        .id_salt("fleet-table")
        .show(ui, |ui| {
            egui::Grid::new("fleet-grid").striped(true).show(ui, |ui| {
                for (title, by) in headers {
                    let arrow = match panel.sort {
                        (s, true) if s == by => " ⏷",
                        (s, false) if s == by => " ⏶",
                        _ => "",
                    };
                    if ui
                        .button(RichText::new(format!("{title}{arrow}")).strong())
                        .on_hover_text("Sort by this column (again: the other way)")
                        .clicked()
                    {
                        panel.sort = (by, panel.sort.0 == by && !panel.sort.1);
                    }
                }
                ui.strong("recent values");
                ui.strong("recent scores");
                ui.strong("note");
                ui.end_row();
                let rows = panel.sorted();
                for &row in &rows {
                    let trained = row.state == KpiState::Trained || row.state == KpiState::Stale;
                    if ui
                        .link(&row.kpi.name)
                        .on_hover_text(if trained {
                            "Open this KPI with its model"
                        } else {
                            "Open this KPI in the explorer"
                        })
                        .clicked()
                    {
                        clicked = Some((row.kpi.clone(), trained));
                    }
                    ui.label(row.points.map_or("-".into(), |p| p.to_string()));
                    let (state, color) = state_text(panel, row);
                    match color {
                        Some(c) => ui.colored_label(c, state),
                        None => ui.label(state),
                    };
                    let s = row.summary.as_ref();
                    ui.label(
                        s.and_then(|s| s.recent_alerts)
                            .map_or("-".into(), |a| a.to_string()),
                    );
                    ui.label(
                        s.and_then(|s| s.best_f1)
                            .map_or("-".into(), |f| format!("{f:.3}")),
                    );
                    sparkline_ui(ui, &row.recent_values, VALUE_COLOR, "recent values");
                    sparkline_ui(
                        ui,
                        s.map_or(&[][..], |s| &s.recent_scores),
                        SCORE_COLOR,
                        "recent scores",
                    );
                    let note = row
                        .error
                        .clone()
                        .or_else(|| s.and_then(|s| s.error.clone()))
                        .unwrap_or_default();
                    ui.label(note);
                    ui.end_row();
                }
            });
        });
    if let (Some((kpi, trained)), Some(folder)) = (clicked, &panel.folder) {
        commands.push(if trained {
            AppCommand::OpenRun(fleet::run_path(&folder.join(OUT_FOLDER), &kpi.name))
        } else {
            AppCommand::OpenCsv(kpi.path.clone())
        });
    }
}
