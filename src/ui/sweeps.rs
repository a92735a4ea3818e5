//! The sweep window: pick a setting and its values (or a preset from the DONUT literature), seeds
//! and parallel runs; runs go on a background thread and fill a table of mean ± std best F1, a plot
//! of F1 against the variant, and a gallery of small latent plots that share one camera.

use super::commands::AppCommand;
use super::latent3d::{Camera, Cloud, normalise, scatter_ui};
use super::projection::{ColorBy, Projection, color_by_name, colors, legend_ui, project};
use crate::config::DonutConfig;
use crate::data::{Prepared, RawSeries};
use crate::sweep::{
    PRESETS, SweepRun, SweepSpec, Variant, grid, preset, run_sweep, table, to_csv, to_markdown,
};
use crate::threads::Host;
use crossbeam_channel::{Receiver, bounded};
use egui::{Color32, Ui};
use egui_plot::{Line, Plot, PlotPoints, Points};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

enum SweepMsg {
    Run(Box<SweepRun>),
    Failed(String),
    Done,
}

struct Running {
    cancel: Arc<AtomicBool>,
    rx: Receiver<SweepMsg>,
}

/// The sweep window's state.
pub struct SweepPanel {
    /// Whether the window is shown.
    pub open: bool,
    /// The chosen preset (None: a custom setting and values).
    pub preset: Option<&'static str>,
    /// The custom setting.
    pub param: String,
    /// The custom values, comma-separated.
    pub values: String,
    /// Seeds per value.
    pub seeds: u64,
    /// Runs at once.
    pub jobs: usize,
    /// The camera every gallery plot shares.
    pub camera: Camera,
    /// The variants of the current (or last) sweep.
    pub variants: Vec<Variant>,
    /// Finished runs.
    pub runs: Vec<SweepRun>,
    /// Failures, one line each.
    pub errors: Vec<String>,
    /// Runs planned.
    pub planned: usize,
    /// The data and settings the sweep ran on (for the gallery's colours).
    pub data: Option<Arc<Prepared>>,
    /// What colours the gallery's points.
    pub gallery_color: ColorBy,
    /// The gallery's plots, by variant.
    gallery: Vec<Option<GalleryEntry>>,
    running: Option<Running>,
}

impl Default for SweepPanel {
    fn default() -> Self {
        Self {
            open: false,
            preset: Some("latent-dim"),
            param: "latent_dim".into(),
            values: "3,6,9,12".into(),
            seeds: 3,
            jobs: 1,
            camera: Camera::default(),
            variants: Vec::new(),
            runs: Vec::new(),
            errors: Vec::new(),
            planned: 0,
            data: None,
            gallery_color: ColorBy::TimeOfDay,
            gallery: Vec::new(),
            running: None,
        }
    }
}

impl SweepPanel {
    /// True while runs are going.
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// The variants the current choices describe.
    pub fn chosen_variants(&self) -> Vec<Variant> {
        match self.preset.and_then(preset) {
            Some(v) => v,
            None => grid(
                self.param.trim(),
                &self
                    .values
                    .split(',')
                    .map(|v| v.trim().to_string())
                    .filter(|v| !v.is_empty())
                    .collect::<Vec<_>>(),
            ),
        }
    }

    /// Starts the sweep on `raw` with `base` settings, on a background thread.
    pub fn start(
        &mut self,
        ctx: &egui::Context,
        raw: Arc<RawSeries>,
        prep: Option<Arc<Prepared>>,
        base: DonutConfig,
    ) {
        self.cancel();
        // As for a single run in the app: every core but one, shared by the runs at once.
        let spec = SweepSpec {
            variants: self.chosen_variants(),
            seeds: self.seeds.max(1),
            base,
            jobs: self.jobs.max(1),
            host: Host::App,
        };
        if let Err(e) = crate::sweep::job_configs(&spec) {
            self.errors = vec![e.to_string()];
            return;
        }
        self.variants = spec.variants.clone();
        self.planned = spec.variants.len() * spec.seeds as usize;
        self.runs.clear();
        self.errors.clear();
        self.gallery.clear();
        self.data = prep;
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, rx) = bounded(256);
        let (flag, wake) = (cancel.clone(), ctx.clone());
        let spawned = std::thread::Builder::new()
            .name("sweep-runner".into())
            .spawn(move || {
                // Its runs (and their pools) below the UI thread and the renderer.
                crate::threads::run_in_background();
                let on_run = |outcome: Result<&SweepRun, String>| {
                    let _ = tx.send(match outcome {
                        Ok(r) => SweepMsg::Run(Box::new(r.clone())),
                        Err(e) => SweepMsg::Failed(e),
                    });
                    wake.request_repaint();
                };
                if let Err(e) = run_sweep(&raw, &spec, flag, &on_run) {
                    let _ = tx.send(SweepMsg::Failed(e.to_string()));
                }
                let _ = tx.send(SweepMsg::Done);
                wake.request_repaint();
            });
        match spawned {
            Ok(_) => self.running = Some(Running { cancel, rx }),
            Err(e) => self
                .errors
                .push(format!("cannot start the sweep thread: {e}")),
        }
    }

    /// Cancels the runs in progress; finished rows stay.
    pub fn cancel(&mut self) {
        if let Some(r) = self.running.take() {
            r.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Takes in what the sweep thread sent.
    pub fn poll(&mut self) {
        let Some(running) = &self.running else { return };
        let mut done = false;
        for msg in running.rx.try_iter() {
            match msg {
                SweepMsg::Run(r) => self.runs.push(*r),
                SweepMsg::Failed(e) => self.errors.push(e),
                SweepMsg::Done => done = true,
            }
        }
        if done {
            self.running = None;
        }
    }
}

/// Draws the sweep window's contents: `panel` over the loaded `data` (its series and its
/// preparation for the current settings), with `base` the settings every run starts from.
pub fn sweeps_ui(
    ui: &mut Ui,
    panel: &mut SweepPanel,
    data: Option<(&Arc<RawSeries>, Option<&Arc<Prepared>>)>,
    base: &DonutConfig,
    commands: &mut Vec<AppCommand>,
) {
    panel.poll();
    ui.horizontal(|ui| {
        ui.label("experiment");
        egui::ComboBox::from_id_salt("sweep-preset")
            .selected_text(panel.preset.unwrap_or("custom setting"))
            .show_ui(ui, |ui| {
                ui.selectable_value(&mut panel.preset, None, "custom setting");
                for (name, what) in PRESETS {
                    ui.selectable_value(&mut panel.preset, Some(*name), *name)
                        .on_hover_text(*what);
                }
            });
        if let Some(p) = panel.preset.and_then(|p| PRESETS.iter().find(|x| x.0 == p)) {
            ui.weak(p.1);
        }
    });
    if panel.preset.is_none() {
        ui.horizontal(|ui| {
            ui.label("setting");
            ui.add(egui::TextEdit::singleline(&mut panel.param).desired_width(120.0))
                .on_hover_text("Any key of the settings table, e.g. latent_dim");
            ui.label("values");
            ui.add(egui::TextEdit::singleline(&mut panel.values).desired_width(160.0))
                .on_hover_text("Comma-separated, e.g. 3,6,9,12");
        });
    }
    ui.horizontal(|ui| {
        ui.add(egui::Slider::new(&mut panel.seeds, 1..=10).text("seeds"));
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        ui.add(egui::Slider::new(&mut panel.jobs, 1..=cores).text("parallel runs"));
    });
    let running = panel.is_running();
    ui.horizontal(|ui| {
        let start = ui
            .add_enabled(!running, egui::Button::new("Run sweep"))
            .on_hover_text(
                "Run every variant over the seeds, with the current settings as the base",
            );
        if ui
            .add_enabled(running, egui::Button::new("Cancel sweep"))
            .on_hover_text("Stop; finished rows stay")
            .clicked()
        {
            panel.cancel();
        }
        if start.clicked() {
            match data {
                Some((raw, prep)) => {
                    panel.start(ui.ctx(), raw.clone(), prep.cloned(), base.clone())
                }
                None => panel.errors = vec!["no data loaded".into()],
            }
        }
        let rows = table(&panel.variants, &panel.runs);
        let delay = base.eval_delay;
        if ui
            .add_enabled(!rows.is_empty(), egui::Button::new("Export CSV…"))
            .clicked()
        {
            match to_csv(&rows) {
                Ok(text) => commands.push(AppCommand::SaveText {
                    suggested_name: "sweep.csv",
                    text,
                }),
                Err(e) => panel.errors = vec![format!("cannot write the table as CSV: {e}")],
            }
        }
        if ui
            .add_enabled(!rows.is_empty(), egui::Button::new("Export Markdown…"))
            .clicked()
        {
            commands.push(AppCommand::SaveText {
                suggested_name: "sweep.md",
                text: to_markdown(&rows, delay),
            });
        }
        if panel.is_running() {
            ui.spinner();
        }
        ui.label(format!(
            "{} of {} runs done",
            panel.runs.len(),
            panel.planned
        ));
    });
    for e in &panel.errors {
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
    let rows = table(&panel.variants, &panel.runs);
    if rows.is_empty() {
        return;
    }
    let delay = base.eval_delay;
    egui::Grid::new("sweep-table").striped(true).show(ui, |ui| {
        for h in [
            "variant",
            "runs",
            "best F1 (adjusted)",
            &format!("delay {delay}"),
            "point-wise",
            "train s",
        ] {
            ui.strong(h);
        }
        ui.end_row();
        let f = |m: &crate::sweep::MeanStd| {
            if m.n == 0 {
                "-".to_string()
            } else {
                format!("{:.3} ± {:.3}", m.mean, m.std)
            }
        };
        for r in &rows {
            ui.label(&r.variant.label);
            ui.label(r.best_f1.n.to_string());
            ui.label(f(&r.best_f1));
            ui.label(f(&r.best_f1_delay));
            ui.label(f(&r.best_f1_pointwise));
            ui.label(format!("{:.1}", r.train_secs.mean));
            ui.end_row();
        }
    });
    let labels: Vec<String> = rows.iter().map(|r| r.variant.label.clone()).collect();
    Plot::new("sweep-f1")
        .height(160.0)
        .include_y(0.0)
        .include_y(1.0)
        .y_axis_label("best F1")
        .x_axis_formatter(move |mark, _| {
            labels
                .get(mark.value.round() as usize)
                .filter(|_| mark.value.fract() == 0.0)
                .cloned()
                .unwrap_or_default()
        })
        .show(ui, |plot| {
            for (name, color, pick) in [
                ("adjusted", Color32::from_rgb(90, 150, 230), 0usize),
                ("delay", Color32::from_rgb(230, 150, 60), 1),
                ("point-wise", Color32::from_rgb(120, 200, 120), 2),
            ] {
                let stat = |r: &crate::sweep::SweepRow| match pick {
                    0 => r.best_f1,
                    1 => r.best_f1_delay,
                    _ => r.best_f1_pointwise,
                };
                let pts: PlotPoints = rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| stat(r).n > 0)
                    .map(|(i, r)| [i as f64, stat(r).mean])
                    .collect();
                plot.line(Line::new(name, pts).color(color));
                for (i, r) in rows.iter().enumerate().filter(|(_, r)| stat(r).n > 1) {
                    let m = stat(r);
                    plot.line(
                        Line::new(
                            name,
                            vec![[i as f64, m.mean - m.std], [i as f64, m.mean + m.std]],
                        )
                        .color(color),
                    );
                }
                let dots: PlotPoints = rows
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| stat(r).n > 0)
                    .map(|(i, r)| [i as f64, stat(r).mean])
                    .collect();
                plot.points(Points::new(name, dots).radius(3.0).color(color));
            }
        });
    gallery_ui(panel, ui, egui::vec2(200.0, 180.0));
}

/// One gallery plot's points and colours, computed when its run or the colouring changes.
struct GalleryEntry {
    /// (variant, seed, snapshot step, colouring) the entry was computed from.
    key: (usize, u64, usize, ColorBy),
    points: Vec<[f32; 3]>,
    colors: Vec<Color32>,
    names: [String; 3],
}

/// One small latent plot per variant (its first finished seed), all turned by one camera and
/// coloured alike (time of day, labels or split), each `plot_size`.
pub fn gallery_ui(panel: &mut SweepPanel, ui: &mut Ui, plot_size: egui::Vec2) {
    let Some(prep) = panel.data.clone() else {
        return;
    };
    ui.horizontal_wrapped(|ui| {
        ui.label("Latent spaces (first seed of each variant; drag any to turn them all)");
        egui::ComboBox::from_id_salt("gallery-colour")
            .selected_text(format!("colour: {}", color_by_name(panel.gallery_color)))
            .show_ui(ui, |ui| {
                for c in [ColorBy::TimeOfDay, ColorBy::Label, ColorBy::Split] {
                    ui.selectable_value(&mut panel.gallery_color, c, color_by_name(c));
                }
            });
    });
    legend_ui(ui, panel.gallery_color, false);
    let color_by = panel.gallery_color;
    ui.horizontal_wrapped(|ui| {
        for (i, v) in panel.variants.iter().enumerate() {
            let Some((seed, snap)) = panel
                .runs
                .iter()
                .filter(|r| r.variant == i)
                .min_by_key(|r| r.seed)
                .and_then(|r| Some((r.seed, r.latent()?)))
            else {
                continue;
            };
            if snap.ends.iter().any(|&e| e >= prep.len()) {
                continue;
            }
            let key = (i, seed, snap.step, color_by);
            if panel.gallery.len() <= i {
                panel.gallery.resize_with(i + 1, || None);
            }
            let slot = &mut panel.gallery[i];
            if slot.as_ref().is_none_or(|e| e.key != key) {
                let (raw, names, _) = project(snap, Projection::Pca, None);
                *slot = Some(GalleryEntry {
                    key,
                    points: normalise(&raw),
                    colors: colors(snap, &prep, color_by, None),
                    names,
                });
            }
            let Some(entry) = slot.as_ref() else {
                continue;
            };
            ui.vertical(|ui| {
                ui.small(&v.label);
                let cloud = Cloud {
                    points: &entry.points,
                    colors: &entry.colors,
                    axis_names: entry.names.clone(),
                    highlight: None,
                    selected: &[],
                };
                scatter_ui(ui, &mut panel.camera, &cloud, plot_size, 2.0);
            });
        }
    });
}
