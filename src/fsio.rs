//! Writing files so that a crash or a full disk never leaves half a file: the one atomic write
//! that run files, exports, the app's state and the CLI's outputs all use.

use std::io::Write;
use std::path::Path;

/// Writes a file atomically: a temporary file beside it, synced, then renamed over the target.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        {
            let mut writer = std::io::BufWriter::new(&mut file);
            write(&mut writer)?;
            writer.flush()?;
        }
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
