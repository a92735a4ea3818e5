//! The column prompt: when a CSV's header names no recognised value column, the app shows its
//! columns and first rows and lets the user say which is the time, the value and the label.

use super::commands::AppCommand;
use crate::data::{ColumnChoice, Preview};
use std::path::PathBuf;

/// A file waiting for its columns to be named.
pub struct ColumnPrompt {
    /// The file.
    pub path: PathBuf,
    /// Its header and first rows.
    pub preview: Preview,
    /// Why it could not be read as it is.
    pub problem: String,
    /// The chosen columns (indices into the header): time, value, label.
    pub chosen: [Option<usize>; 3],
}

impl ColumnPrompt {
    /// A prompt for `path`, with a first guess: the first column as the time when it is not a
    /// number, the first numeric column after it as the value.
    pub fn new(path: PathBuf, preview: Preview, problem: String) -> Self {
        let numeric = |c: usize| {
            preview
                .rows
                .iter()
                .filter_map(|r| r.get(c))
                .filter(|cell| !cell.is_empty())
                .all(|cell| cell.replace(',', ".").parse::<f64>().is_ok())
        };
        let n = preview.columns.len();
        let time = (n > 1 && !numeric(0)).then_some(0);
        let value = (0..n).find(|&c| Some(c) != time && numeric(c));
        Self {
            path,
            preview,
            problem,
            chosen: [time, value, None],
        }
    }

    /// The choice as column numbers (1-based: header names may repeat or be empty); "none" for
    /// the time or the label is an empty name, so that a column with a usual name is not picked
    /// instead.
    pub fn choice(&self) -> ColumnChoice {
        let number = |c: Option<usize>| Some(c.map(|c| (c + 1).to_string()).unwrap_or_default());
        ColumnChoice {
            time: number(self.chosen[0]),
            value: self.chosen[1].map(|c| (c + 1).to_string()),
            label: number(self.chosen[2]),
        }
    }
}

/// Draws the prompt (a window) while there is one; "Load" queues the load with the chosen
/// columns, "Cancel" drops the prompt (the previous data stays).
pub fn column_prompt_ui(
    ctx: &egui::Context,
    prompt: &mut Option<ColumnPrompt>,
    commands: &mut Vec<AppCommand>,
) {
    let Some(p) = prompt else {
        return;
    };
    let mut close = false;
    egui::Window::new("Which column is which?")
        .collapsible(false)
        .default_width(620.0)
        .show(ctx, |ui| {
            ui.label(format!("{}: {}", p.path.display(), p.problem));
            ui.label("Pick the columns; the choice is remembered for this file.");
            egui::Grid::new("column-choice").show(ui, |ui| {
                let columns = p.preview.columns.clone();
                for (slot, (role, optional)) in [("time", true), ("value", false), ("label", true)]
                    .iter()
                    .enumerate()
                {
                    ui.label(*role);
                    let text = p.chosen[slot]
                        .and_then(|c| columns.get(c).cloned())
                        .unwrap_or_else(|| {
                            if slot == 0 {
                                "(none: the row index)".into()
                            } else {
                                "(none)".into()
                            }
                        });
                    egui::ComboBox::from_id_salt(("column", slot))
                        .selected_text(text)
                        .show_ui(ui, |ui| {
                            if *optional {
                                ui.selectable_value(&mut p.chosen[slot], None, "(none)");
                            }
                            for (i, c) in columns.iter().enumerate() {
                                ui.selectable_value(&mut p.chosen[slot], Some(i), c);
                            }
                        });
                    ui.end_row();
                }
            });
            ui.separator();
            egui::Grid::new("column-preview")
                .striped(true)
                .show(ui, |ui| {
                    for c in &p.preview.columns {
                        ui.strong(c);
                    }
                    ui.end_row();
                    for row in &p.preview.rows {
                        for cell in row {
                            ui.monospace(cell);
                        }
                        ui.end_row();
                    }
                });
            ui.separator();
            ui.horizontal(|ui| {
                if ui
                    .add_enabled(
                        p.chosen[1].is_some(),
                        egui::Button::new("Load with these columns"),
                    )
                    .clicked()
                {
                    commands.push(AppCommand::LoadWithColumns {
                        path: p.path.clone(),
                        columns: p.choice(),
                    });
                    close = true;
                }
                if ui.button("Cancel").clicked() {
                    close = true;
                }
            });
        });
    if close {
        *prompt = None;
    }
}
