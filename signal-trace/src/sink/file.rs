//! Where records go (`--output`): standard output, or a file opened so that no other user can
//! steer it; reopened on SIGHUP (logrotate) and rotated by size (`--output-max-size`).
//!
//! The tracer runs as root and records what every user's processes do, so the output path is
//! treated as hostile: it is opened with `O_NOFOLLOW` (a planted symbolic link is refused),
//! non-blocking (a FIFO never blocks the open, and without a reader it fails at once), and
//! what was opened is checked through the descriptor: a regular file owned by the tracer's
//! user, with one link, not writable by group or others; mode 0640 is then set with `fchmod`,
//! whoever created the file. A FIFO is written only with `--output-fifo` (and the same owner
//! and mode checks), a socket never; `/dev/null` is accepted for benchmarks.

use std::ffi::CString;
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::sink::output::FileOut;

/// The mode every output file gets.
pub const OUTPUT_MODE: u32 = 0o640;

/// Why an output could not be opened, reopened or rotated.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// What is at the path is not something the tracer may write to.
    #[error("refusing to write events to {path}: {why}")]
    Refused { path: PathBuf, why: String },
    /// The system refused to open or create it.
    #[error("cannot open output file {path}: {err}")]
    Open { path: PathBuf, err: io::Error },
    /// Renaming the files of a rotation failed.
    #[error("cannot rotate output file {path}: {err}")]
    Rotate { path: PathBuf, err: io::Error },
}

/// How the output file is opened and rotated, from `--output`, `--output-fifo`,
/// `--output-max-size` and `--output-keep`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOptions {
    pub path: PathBuf,
    /// A FIFO is accepted (`--output-fifo`).
    pub fifo: bool,
    /// Rotate before a batch would take the file past this many bytes.
    pub max_size: Option<u64>,
    /// Rotated files kept: FILE.1 (newest) … FILE.keep (oldest).
    pub keep: u32,
}

impl FileOptions {
    pub fn from_config(cfg: &Config) -> Option<FileOptions> {
        cfg.output.as_ref().map(|path| FileOptions {
            path: path.clone(),
            fifo: cfg.output_fifo,
            max_size: cfg.output_max_size,
            keep: cfg.output_keep,
        })
    }
}

/// What kind of thing an opened output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Fifo,
    Null,
}

fn refused(path: &Path, why: impl Into<String>) -> OutputError {
    OutputError::Refused {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// Opens `path` for appending with the checks of the module docs; never blocks.
pub fn open_checked(path: &Path, fifo: bool) -> Result<(File, Kind), OutputError> {
    let cpath = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| refused(path, "the path contains a NUL byte"))?;
    let flags = libc::O_WRONLY
        | libc::O_APPEND
        | libc::O_CREAT
        | libc::O_NOFOLLOW
        | libc::O_NONBLOCK
        | libc::O_CLOEXEC
        | libc::O_NOCTTY;
    // SAFETY: open(2) with a NUL-terminated path; the descriptor is owned below.
    let fd = unsafe { libc::open(cpath.as_ptr(), flags, OUTPUT_MODE as libc::c_uint) };
    if fd < 0 {
        let err = io::Error::last_os_error();
        let kind = fs::symlink_metadata(path).ok().map(|m| m.file_type());
        return Err(match err.raw_os_error() {
            // ELOOP from O_NOFOLLOW; some kernels answer EACCES for O_CREAT on a link.
            _ if kind.is_some_and(|k| k.is_symlink()) => refused(path, "it is a symbolic link"),
            Some(libc::ENXIO) if kind.is_some_and(|k| k.is_socket()) => {
                refused(path, "it is a socket")
            }
            Some(libc::ENXIO) if kind.is_some_and(|k| k.is_fifo()) && !fifo => {
                refused(path, "it is a FIFO (pass --output-fifo to write to one)")
            }
            Some(libc::ENXIO) if kind.is_some_and(|k| k.is_fifo()) => {
                refused(path, "the FIFO has no reader")
            }
            _ => OutputError::Open {
                path: path.to_path_buf(),
                err,
            },
        });
    }
    // SAFETY: fd was just opened and is owned by nobody else.
    let file = unsafe { File::from_raw_fd(fd) };
    let meta = file.metadata().map_err(|err| OutputError::Open {
        path: path.to_path_buf(),
        err,
    })?;
    let ft = meta.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_fifo() {
        if !fifo {
            return Err(refused(
                path,
                "it is a FIFO (pass --output-fifo to write to one)",
            ));
        }
        Kind::Fifo
    } else if ft.is_char_device() && meta.rdev() == libc::makedev(1, 3) {
        Kind::Null
    } else {
        return Err(refused(path, "it is not a regular file"));
    };
    if kind != Kind::Null {
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(refused(
                path,
                format!("it is owned by uid {}, not by uid {me}", meta.uid()),
            ));
        }
        if meta.mode() & 0o022 != 0 {
            return Err(refused(
                path,
                format!(
                    "it is writable by group or others (mode {:04o})",
                    meta.mode() & 0o7777
                ),
            ));
        }
    }
    if kind == Kind::File {
        if meta.nlink() != 1 {
            return Err(refused(path, format!("it has {} hard links", meta.nlink())));
        }
        // SAFETY: fchmod on an open descriptor.
        if unsafe { libc::fchmod(file.as_raw_fd(), OUTPUT_MODE) } != 0 {
            return Err(OutputError::Open {
                path: path.to_path_buf(),
                err: io::Error::last_os_error(),
            });
        }
    }
    // Writes block again (a slow FIFO reader slows the tracer like a slow pipe on stdout).
    // SAFETY: fcntl on an open descriptor.
    unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        if fl >= 0 {
            libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK);
        }
    }
    Ok((file, kind))
}

/// The numbered name of a rotated file: FILE.n.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// An output file that can be reopened and rotated; written in whole batches ([`FileOut`]).
pub struct FileOutput {
    opts: FileOptions,
    out: FileOut,
    kind: Kind,
    /// Rotations done so far.
    pub rotations: u64,
}

impl FileOutput {
    pub fn open(opts: FileOptions) -> Result<FileOutput, OutputError> {
        let (file, kind) = open_checked(&opts.path, opts.fifo)?;
        let out = FileOut::new(file).map_err(|err| OutputError::Open {
            path: opts.path.clone(),
            err,
        })?;
        Ok(FileOutput {
            opts,
            out,
            kind,
            rotations: 0,
        })
    }

    /// Opens the path again (after logrotate renamed the file), with the same checks. On
    /// failure the old descriptor stays in use.
    pub fn reopen(&mut self) -> Result<(), OutputError> {
        let (file, kind) = open_checked(&self.opts.path, self.opts.fifo)?;
        self.out = FileOut::new(file).map_err(|err| OutputError::Open {
            path: self.opts.path.clone(),
            err,
        })?;
        self.kind = kind;
        Ok(())
    }

    /// FILE → FILE.1 → … → FILE.keep (the oldest is replaced), then a new FILE. Only the
    /// numbered files that exist are renamed.
    fn rotate(&mut self) -> Result<(), OutputError> {
        let path = &self.opts.path;
        let err = |err| OutputError::Rotate {
            path: path.clone(),
            err,
        };
        // Renamed away meanwhile (by logrotate, before its HUP): a new file is all it takes.
        if let Err(e) = fs::symlink_metadata(path) {
            if e.kind() == io::ErrorKind::NotFound {
                return self.reopen();
            }
        }
        let mut last = 0;
        while last < self.opts.keep && fs::symlink_metadata(numbered(path, last + 1)).is_ok() {
            last += 1;
        }
        for n in (1..=last.min(self.opts.keep - 1)).rev() {
            fs::rename(numbered(path, n), numbered(path, n + 1)).map_err(err)?;
        }
        fs::rename(path, numbered(path, 1)).map_err(err)?;
        self.rotations += 1;
        self.reopen()
    }
}

impl Write for FileOutput {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    /// Writes one batch of whole lines; rotation happens between batches only, so no line
    /// is ever split over two files.
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        if let Some(max) = self.opts.max_size {
            let size = self.out.committed();
            if self.kind == Kind::File && size > 0 && size + buf.len() as u64 > max {
                if let Err(e) = self.rotate() {
                    // Keep writing to the current file rather than lose records.
                    eprintln!("signal-trace: warning: {e}");
                }
            }
        }
        self.out.write_all(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The tracer's output: standard output or a file.
pub enum Output {
    Stdout(io::Stdout),
    File(FileOutput),
}

impl Output {
    /// Opens what the configuration names (standard output without `--output`).
    pub fn open(cfg: &Config) -> Result<Output, OutputError> {
        Ok(match FileOptions::from_config(cfg) {
            None => Output::Stdout(io::stdout()),
            Some(opts) => Output::File(FileOutput::open(opts)?),
        })
    }

    /// SIGHUP: reopens an output file; nothing to do for standard output.
    pub fn reopen(&mut self) -> Result<(), OutputError> {
        match self {
            Output::Stdout(_) => Ok(()),
            Output::File(f) => f.reopen(),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Output::Stdout(s) => s.write(buf),
            Output::File(f) => f.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Output::Stdout(s) => s.write_all(buf),
            Output::File(f) => f.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Output::Stdout(s) => s.flush(),
            Output::File(f) => f.flush(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let dir = std::env::temp_dir()
                .join(format!("signal-trace-file-{name}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn opts(path: &Path, max_size: Option<u64>, keep: u32) -> FileOptions {
        FileOptions {
            path: path.to_path_buf(),
            fifo: false,
            max_size,
            keep,
        }
    }

    #[test]
    fn a_new_file_is_0640_whatever_the_umask() {
        let dir = TempDir::new("mode");
        let path = dir.0.join("out.ndjson");
        let (_, kind) = open_checked(&path, false).unwrap();
        assert_eq!(kind, Kind::File);
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
    }

    #[test]
    fn an_existing_0600_file_is_set_to_0640() {
        let dir = TempDir::new("existing");
        let path = dir.0.join("out.ndjson");
        fs::write(&path, b"{}\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        open_checked(&path, false).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o640);
    }

    #[test]
    fn symlinks_fifos_sockets_shared_and_linked_files_are_refused() {
        let dir = TempDir::new("refused");
        let target = dir.0.join("target");
        fs::write(&target, b"precious\n").unwrap();
        fs::set_permissions(&target, fs::Permissions::from_mode(0o600)).unwrap();
        let link = dir.0.join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open_checked(&link, false).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");

        let fifo = dir.0.join("fifo");
        let c = CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo with a valid path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_checked(&fifo, false).unwrap_err().to_string();
        assert!(e.contains("--output-fifo"), "{e}");
        let e = open_checked(&fifo, true).unwrap_err().to_string();
        assert!(e.contains("no reader"), "{e}");

        let sock = dir.0.join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let e = open_checked(&sock, true).unwrap_err().to_string();
        assert!(e.contains("socket"), "{e}");

        let shared = dir.0.join("shared");
        fs::write(&shared, b"").unwrap();
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o666)).unwrap();
        let e = open_checked(&shared, false).unwrap_err().to_string();
        assert!(e.contains("writable by group or others (mode 0666)"), "{e}");

        let hard = dir.0.join("hard");
        fs::hard_link(&target, &hard).unwrap();
        let e = open_checked(&hard, false).unwrap_err().to_string();
        assert!(e.contains("2 hard links"), "{e}");

        assert_eq!(fs::read(&target).unwrap(), b"precious\n");
        assert_eq!(
            fs::metadata(&target).unwrap().mode() & 0o7777,
            0o600,
            "the target's mode is untouched"
        );
    }

    #[test]
    fn dev_null_is_accepted() {
        let (_, kind) = open_checked(Path::new("/dev/null"), false).unwrap();
        assert_eq!(kind, Kind::Null);
    }

    #[test]
    fn rotation_keeps_whole_batches_and_drops_the_oldest() {
        let dir = TempDir::new("rotate");
        let path = dir.0.join("out");
        let mut out = FileOutput::open(opts(&path, Some(100), 2)).unwrap();
        let line = b"0123456789012345678901234567890123456789\n"; // 41 bytes
        for _ in 0..10 {
            out.write_all(line).unwrap();
        }
        // 2 lines per file: 5 files written, the newest three kept.
        assert_eq!(out.rotations, 4);
        for p in [path.clone(), numbered(&path, 1), numbered(&path, 2)] {
            let text = fs::read(&p).unwrap();
            assert_eq!(text.len(), 82, "{}", p.display());
            assert!(text.ends_with(b"\n"));
        }
        assert!(!numbered(&path, 3).exists());
        // A batch bigger than the limit gets a file of its own.
        let big = vec![b'x'; 300];
        out.write_all(&big).unwrap();
        assert_eq!(fs::read(&path).unwrap().len(), 300);
    }

    #[test]
    fn reopen_after_a_rename_writes_a_new_file() {
        let dir = TempDir::new("reopen");
        let path = dir.0.join("out");
        let mut out = FileOutput::open(opts(&path, None, 1)).unwrap();
        out.write_all(b"a\n").unwrap();
        fs::rename(&path, dir.0.join("out.old")).unwrap();
        out.write_all(b"b\n").unwrap();
        out.reopen().unwrap();
        out.write_all(b"c\n").unwrap();
        assert_eq!(fs::read(dir.0.join("out.old")).unwrap(), b"a\nb\n");
        assert_eq!(fs::read(&path).unwrap(), b"c\n");
        // A symlink planted in its place is refused and the old file kept.
        fs::rename(&path, dir.0.join("out.old2")).unwrap();
        std::os::unix::fs::symlink(dir.0.join("elsewhere"), &path).unwrap();
        assert!(out.reopen().is_err());
        out.write_all(b"d\n").unwrap();
        assert_eq!(fs::read(dir.0.join("out.old2")).unwrap(), b"c\nd\n");
        assert!(!dir.0.join("elsewhere").exists());
    }
}
