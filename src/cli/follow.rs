//! Reading a file that grows, as `tail -F` does, for `detect --follow`: at the end of the file
//! it waits for more; when the file is rotated it goes on with the new one. A rotation is either
//! a new file at the path (logrotate's `create`: the old one renamed, a new one made; seen by its
//! inode on Unix) or the same file cut back (`copytruncate`: seen when the file is shorter than
//! what was read of it). A rotated file that starts with the first file's header line has that
//! line skipped, so the CSV reader sees one header and then rows.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long to wait at the end of the file before looking again.
const POLL: Duration = Duration::from_millis(50);

/// What happened to the followed file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// Another file now stands at the path.
    Replaced,
    /// The file was cut back to fewer bytes than were read of it.
    Truncated,
}

/// A reader over a growing, possibly rotated file. `read` returns 0 (the end) only after
/// `idle` without new bytes; with no `idle` it waits for ever.
pub struct FollowedFile {
    path: PathBuf,
    file: File,
    /// Bytes read from the open file.
    position: u64,
    /// The first line of the first file (the header), as read so far.
    header: Vec<u8>,
    /// True once the header's end of line was read.
    header_complete: bool,
    /// True after a rotation until the new file's first line has been read and checked.
    checking_first_line: bool,
    /// Bytes read ahead (a rotated file's first line while it is checked), served first.
    pending: Vec<u8>,
    idle: Option<Duration>,
    last_data: Instant,
    /// Rotations seen, in order.
    pub rotations: Vec<Rotation>,
    /// Called once for each rotation, when it is seen (the command line says so on stderr).
    on_rotation: Box<dyn FnMut(Rotation) + Send>,
}

impl FollowedFile {
    /// Opens `path` for following; with `idle`, the end comes after that long without new bytes.
    pub fn open(
        path: &Path,
        idle: Option<Duration>,
        on_rotation: Box<dyn FnMut(Rotation) + Send>,
    ) -> std::io::Result<Self> {
        Ok(Self {
            path: path.to_path_buf(),
            file: File::open(path)?,
            position: 0,
            header: Vec::new(),
            header_complete: false,
            checking_first_line: false,
            pending: Vec::new(),
            idle,
            last_data: Instant::now(),
            rotations: Vec::new(),
            on_rotation,
        })
    }

    /// Whether the file at the path has been rotated since it was opened. A missing path (between
    /// the rename and the new file) is no rotation yet.
    fn rotation(&self) -> std::io::Result<Option<Rotation>> {
        let at_path = match std::fs::metadata(&self.path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let open = self.file.metadata()?;
            if (open.dev(), open.ino()) != (at_path.dev(), at_path.ino()) {
                return Ok(Some(Rotation::Replaced));
            }
        }
        Ok((at_path.len() < self.position).then_some(Rotation::Truncated))
    }

    /// Goes on with the rotated file from its start.
    fn follow_rotation(&mut self, rotation: Rotation) -> std::io::Result<()> {
        match rotation {
            Rotation::Replaced => self.file = File::open(&self.path)?,
            Rotation::Truncated => {
                self.file.seek(SeekFrom::Start(0))?;
            }
        }
        self.position = 0;
        self.checking_first_line = self.header_complete;
        self.rotations.push(rotation);
        (self.on_rotation)(rotation);
        Ok(())
    }

    /// Keeps the bytes of the first file's first line.
    fn note_header(&mut self, bytes: &[u8]) {
        if self.header_complete {
            return;
        }
        match bytes.iter().position(|&b| b == b'\n') {
            Some(end) => {
                self.header.extend_from_slice(&bytes[..end]);
                self.header_complete = true;
            }
            None => self.header.extend_from_slice(bytes),
        }
    }

    /// With a rotated file's first line in `pending`: drops it if it repeats the header.
    fn check_first_line(&mut self) {
        let Some(end) = self.pending.iter().position(|&b| b == b'\n') else {
            return;
        };
        let trim = |line: &[u8]| line.strip_suffix(b"\r").unwrap_or(line).to_vec();
        if trim(&self.pending[..end]) == trim(&self.header) {
            self.pending.drain(..=end);
        }
        self.checking_first_line = false;
    }
}

impl Read for FollowedFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.pending.is_empty() && !self.checking_first_line {
                let n = self.pending.len().min(buf.len());
                buf[..n].copy_from_slice(&self.pending[..n]);
                self.pending.drain(..n);
                return Ok(n);
            }
            let mut chunk = [0u8; 8192];
            let n = self.file.read(&mut chunk)?;
            if n > 0 {
                self.position += n as u64;
                self.last_data = Instant::now();
                self.note_header(&chunk[..n]);
                self.pending.extend_from_slice(&chunk[..n]);
                if self.checking_first_line {
                    self.check_first_line();
                }
                continue;
            }
            if let Some(rotation) = self.rotation()? {
                self.follow_rotation(rotation)?;
                continue;
            }
            if self
                .idle
                .is_some_and(|idle| self.last_data.elapsed() >= idle)
            {
                // A first line still being checked is served as it is.
                self.checking_first_line = false;
                if self.pending.is_empty() {
                    return Ok(0);
                }
                continue;
            }
            std::thread::sleep(POLL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn append(path: &Path, text: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .unwrap();
        f.write_all(text.as_bytes()).unwrap();
    }

    /// Reads what is there now: up to the end, after a short idle wait.
    fn read_now(f: &mut FollowedFile) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 7];
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
        }
        f.last_data = Instant::now();
        String::from_utf8(out).unwrap()
    }

    fn followed(path: &Path) -> FollowedFile {
        FollowedFile::open(path, Some(Duration::from_millis(120)), Box::new(|_| ())).unwrap()
    }

    #[test]
    fn appended_lines_are_read_as_they_come() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kpi.csv");
        append(&path, "timestamp,value\n1,0.5\n");
        let mut f = followed(&path);
        assert_eq!(read_now(&mut f), "timestamp,value\n1,0.5\n");
        append(&path, "2,0.6\n");
        assert_eq!(read_now(&mut f), "2,0.6\n");
        assert!(f.rotations.is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn a_new_file_at_the_path_is_read_from_its_start_without_its_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kpi.csv");
        append(&path, "timestamp,value\r\n1,0.5\r\n");
        let mut f = followed(&path);
        assert_eq!(read_now(&mut f), "timestamp,value\r\n1,0.5\r\n");
        // logrotate's `create`: the old file renamed away, a new one with its own header.
        std::fs::rename(&path, dir.path().join("kpi.csv.1")).unwrap();
        assert_eq!(read_now(&mut f), "", "nothing at the path yet");
        append(&path, "timestamp,value\r\n2,0.6\r\n3,0.7\r\n");
        assert_eq!(read_now(&mut f), "2,0.6\r\n3,0.7\r\n");
        assert_eq!(f.rotations, [Rotation::Replaced]);
    }

    #[test]
    fn a_truncated_file_is_read_again_from_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kpi.csv");
        append(&path, "timestamp,value\n1,0.5\n2,0.6\n");
        let mut f = followed(&path);
        read_now(&mut f);
        // `copytruncate`: cut to nothing, then the writer goes on (no header this time, so the
        // first row is kept).
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(0)
            .unwrap();
        append(&path, "3,0.7\n");
        assert_eq!(read_now(&mut f), "3,0.7\n");
        assert_eq!(f.rotations, [Rotation::Truncated]);
    }
}
