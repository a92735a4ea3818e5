//! The in-app file browser (egui_file), used where the system file dialog cannot open: it takes
//! over the job the dialog was for, with a path field and the folder's files.

use super::loader::Purpose;
use egui_file::FileDialog;
use std::path::{Path, PathBuf};

/// The browser, when open, and what it is choosing a file for.
#[derive(Default)]
pub struct FileBrowser {
    open: Option<(FileDialog, Purpose)>,
}

impl FileBrowser {
    /// Opens the browser for `purpose`, in `folder`.
    pub fn open(&mut self, purpose: Purpose, folder: &Path) {
        let extensions = purpose.extensions();
        let filter = Box::new(move |path: &Path| {
            path.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.iter().any(|x| x.eq_ignore_ascii_case(e)))
        });
        let mut dialog = match &purpose {
            Purpose::Save { suggested_name, .. } => {
                FileDialog::save_file().default_filename(suggested_name.clone())
            }
            _ => FileDialog::open_file(),
        }
        .title(purpose.title())
        .initial_path(folder.to_path_buf())
        .show_files_filter(filter)
        .default_size([640.0, 420.0]);
        dialog.open();
        self.open = Some((dialog, purpose));
    }

    /// True while the browser is shown.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// Shows the folder `folder` in the open browser (the tests use it to start somewhere known).
    pub fn go_to(&mut self, folder: &Path) {
        if let Some((dialog, _)) = &mut self.open {
            dialog.set_path(folder.to_path_buf());
        }
    }

    /// Draws the browser; returns the chosen path with its purpose once a file is chosen (the
    /// browser then closes; cancelling closes it too).
    pub fn show(&mut self, ctx: &egui::Context) -> Option<(PathBuf, Purpose)> {
        let (dialog, _) = self.open.as_mut()?;
        dialog.show(ctx);
        if dialog.selected() {
            let path = dialog.path().map(Path::to_path_buf);
            let (_, purpose) = self.open.take()?;
            return path.map(|p| (p, purpose));
        }
        if !dialog.visible() {
            self.open = None;
        }
        None
    }
}
