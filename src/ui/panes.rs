//! The main view's panes, drawn by egui_tiles: each gets the narrow state of its panel
//! (see [`super::layout`] for where they sit).

use super::commands::AppCommand;
use super::compare::{CURRENT_COLOR, ComparePanel, RunView};
use super::detection::{DetectionCache, DetectionPanel};
use super::latent::LatentPanel;
use super::layout::Pane;
use super::loader::{Applied, Inspection};
use super::projection::LatentCache;
use super::series::SeriesPanel;
use super::session::RunState;
use super::state::Persisted;
use crate::data::Prepared;
use egui_tiles::{SimplificationOptions, TileId, UiResponse};
use std::sync::Arc;

/// What the panes draw from and edit, borrowed from the app for one frame.
pub struct MainPanes<'a> {
    /// The prepared data.
    pub prep: Option<&'a Arc<Prepared>>,
    /// Where the data came from.
    pub source: &'a str,
    /// The current run.
    pub run: &'a mut RunState,
    /// The persisted state (config, latent view, camera, teaching view).
    pub state: &'a mut Persisted,
    /// Projections of the latent snapshots.
    pub latent_cache: &'a mut LatentCache,
    /// The window hovered in the latent space, marked on the series.
    pub highlight_end: &'a mut Option<usize>,
    /// The pinned run and the compare view's choices.
    pub compare: &'a mut ComparePanel,
    /// Another series scored with this run's model.
    pub applied: Option<&'a Applied>,
    /// The detection panel's cache.
    pub detection: &'a mut DetectionCache,
    /// The window shown in the reconstruction view.
    pub inspection: Option<&'a mut Inspection>,
    /// The point hovered on the series.
    pub series_hover: &'a mut Option<usize>,
    /// Where the series' values plot was drawn.
    pub series_transform: &'a mut Option<egui_plot::PlotTransform>,
    /// The selected windows (ends, ascending).
    pub selection: Option<&'a [usize]>,
    /// A brush being drawn on the series: where it started and was last seen.
    pub brush: &'a mut (Option<f64>, Option<f64>),
    /// The sweep engine (lessons run through it).
    pub sweeps: &'a mut super::sweeps::SweepPanel,
    /// The lessons' state.
    pub lessons: &'a mut super::lessons::LessonPanel,
    /// The loaded series and its preparation.
    pub data: Option<(&'a Arc<crate::data::RawSeries>, Option<&'a Arc<Prepared>>)>,
    /// The Fleet tab.
    pub fleet: &'a mut super::fleet::FleetPanel,
    /// The Tune tab.
    pub tune: &'a mut super::tune::TunePanel,
    /// Whether a run is training (the Tune tab loads settings only between runs).
    pub training: bool,
    /// What the panes ask of the app.
    pub commands: &'a mut Vec<AppCommand>,
}

impl egui_tiles::Behavior<Pane> for MainPanes<'_> {
    fn tab_title_for_pane(&mut self, pane: &Pane) -> egui::WidgetText {
        pane.title().into()
    }

    fn simplification_options(&self) -> SimplificationOptions {
        SimplificationOptions {
            all_panes_must_have_tabs: true,
            ..Default::default()
        }
    }

    fn pane_ui(&mut self, ui: &mut egui::Ui, _tile: TileId, pane: &mut Pane) -> UiResponse {
        let ui = &mut ui.new_child(
            egui::UiBuilder::new()
                .max_rect(ui.max_rect().shrink(4.0))
                .layout(egui::Layout::top_down(egui::Align::Min)),
        );
        match pane {
            Pane::Series => {
                let highlight_end = *self.highlight_end;
                let series = SeriesPanel {
                    prep: self.prep,
                    record: self.run.shown_record().map(|(r, _)| r),
                    preview: self.run.preview_note(),
                    threshold: self.run.threshold,
                    highlight_end,
                    hovered: self.series_hover,
                    transform: self.series_transform,
                    selection: self.selection,
                    brush: &mut self.brush.0,
                    brush_end: &mut self.brush.1,
                    show_baseline: &mut self.state.show_baseline,
                };
                super::series::series_ui(ui, series, self.commands);
            }
            Pane::Latent => {
                let (mut clicked, mut boxed) = (None, None);
                let run = &mut *self.run;
                let history = match &run.record {
                    Some(r) => &r.history,
                    None => &run.live,
                };
                let latent = LatentPanel {
                    view: &mut self.state.latent,
                    camera: &mut self.state.camera,
                    cache: self.latent_cache,
                    snapshots: &history.snapshots,
                    replay: &mut run.replay,
                    prep: self.prep,
                    record: run.record.as_ref(),
                    latent_dim: self.state.config.latent_dim,
                    highlight_end: self.highlight_end,
                    series_hover: *self.series_hover,
                    clicked_end: &mut clicked,
                    selection: self.selection,
                    boxed_ends: &mut boxed,
                };
                super::latent::latent_ui(ui, latent);
                if let Some(end) = clicked {
                    self.commands.push(AppCommand::Inspect(end));
                }
                if let Some(ends) = boxed {
                    self.commands.push(if ends.is_empty() {
                        AppCommand::ClearSelection
                    } else {
                        AppCommand::Select(ends)
                    });
                }
            }
            Pane::Loss => {
                super::loss::loss_ui(ui, self.run.history(), &mut self.state.teaching);
            }
            Pane::Reconstruction => {
                super::reconstruction::reconstruction_ui(
                    ui,
                    self.inspection.as_deref_mut(),
                    self.prep.map(|p| &**p),
                    self.run.threshold.value,
                );
            }
            Pane::Lessons => {
                egui::ScrollArea::vertical()
                    .id_salt("lessons-scroll")
                    .show(ui, |ui| {
                        super::lessons::lessons_ui(
                            ui,
                            self.lessons,
                            self.sweeps,
                            self.data,
                            &self.state.config,
                            self.run.record.as_ref(),
                        )
                    });
            }
            Pane::Detection => {
                let panel = DetectionPanel {
                    prep: self.prep,
                    record: self.run.shown_record().map(|(r, _)| r),
                    preview: self.run.preview_note(),
                    threshold: self.run.threshold,
                    applied: self.applied,
                    cache: self.detection,
                };
                egui::ScrollArea::vertical()
                    .id_salt("detection-scroll")
                    .show(ui, |ui| {
                        super::detection::detection_ui(ui, panel, self.commands)
                    });
            }
            Pane::Fleet => {
                super::fleet::fleet_ui(ui, self.fleet, &self.state.config, self.commands);
            }
            Pane::Tune => {
                super::tune::tune_ui(
                    ui,
                    self.tune,
                    self.data.map(|(raw, _)| raw),
                    &self.state.config,
                    self.training,
                    self.commands,
                );
            }
            Pane::Compare => {
                let run = &*self.run;
                let config = run.config.as_ref().unwrap_or(&self.state.config);
                let current = RunView {
                    name: "current",
                    color: CURRENT_COLOR,
                    source: self.source,
                    config,
                    metrics: run.record.as_ref().and_then(|r| r.metrics.as_ref()),
                    steps: &run.history().steps,
                    snapshots: &run.history().snapshots,
                    scores: run.record.as_ref().map(|r| r.scores.as_slice()),
                    threshold: run.threshold.value,
                    train_secs: run.record.as_ref().map(|r| r.stats.train_secs),
                };
                egui::ScrollArea::vertical()
                    .id_salt("compare-scroll")
                    .show(ui, |ui| {
                        super::compare::compare_ui(
                            ui,
                            self.compare,
                            self.prep.map(|p| &**p),
                            current,
                            self.selection,
                            self.commands,
                        )
                    });
            }
        }
        UiResponse::None
    }
}
