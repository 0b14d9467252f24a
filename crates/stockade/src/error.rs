//! The runtime's error type. Every variant says *where* (file, JSON field, path) and *what*.
//!
//! Each variant's message already carries the error it wraps (an `Io`'s OS error, a `Seccomp`'s
//! parse error), so none reports it again as its `source()`: `anyhow`'s `{:#}`, which prints the
//! whole chain, would print it twice (`open x: Permission denied (os error 13): Permission denied
//! (os error 13)`). The wrapped error stays in the variant for code that matches on it.

use std::fmt;
use std::path::PathBuf;

#[derive(Debug)]
pub enum Error {
    /// `{file}: {field}: {msg}` (`{file}: {msg}` without a field)
    Config {
        file: PathBuf,
        field: String,
        msg: String,
    },
    /// `{what}: {source}`
    Io {
        what: String,
        source: std::io::Error,
    },
    /// The id, and the state directory that holds it.
    IdInUse(String, PathBuf),
    NotFound(String),
    BadId(String),
    Cgroup(String),
    /// systemd's unit name.
    UnitExists(String),
    Seccomp(stockade_seccomp::Error),
    Child(String),
    Other(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // no field: the file as a whole (unreadable, not a regular file)
            Error::Config { file, field, msg } if field.is_empty() => {
                write!(f, "{}: {msg}", file.display())
            }
            Error::Config { file, field, msg } => write!(f, "{}: {field}: {msg}", file.display()),
            Error::Io { what, source } => write!(f, "{what}: {source}"),
            Error::IdInUse(id, dir) => write!(
                f,
                "container id {id:?} is already in use (state in {})",
                dir.display()
            ),
            Error::NotFound(id) => write!(f, "container {id:?} does not exist"),
            Error::BadId(id) => write!(f, "invalid container id {id:?}: use letters, digits, '_', '-', '.' (not leading), at most 1024 bytes"),
            Error::Cgroup(m) => write!(f, "cgroup: {m}"),
            Error::UnitExists(u) => write!(f, "cgroup: systemd: unit {u} already exists (another container with this cgroupsPath?)"),
            Error::Seccomp(e) => write!(f, "seccomp: {e}"),
            Error::Child(m) => write!(f, "container setup failed: {m}"),
            Error::Other(m) => f.write_str(m),
        }
    }
}

/// No `source()`: every message above includes the error it wraps (see the module's doc).
impl std::error::Error for Error {}

impl From<stockade_seccomp::Error> for Error {
    fn from(e: stockade_seccomp::Error) -> Self {
        Error::Seccomp(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attach a description to an `io::Result` (`.ctx(|| format!("mount {path}"))`).
pub trait Context<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|source| Error::Io {
            what: what().into(),
            source,
        })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx<S: Into<String>>(self, what: impl FnOnce() -> S) -> Result<T> {
        self.map_err(|e| Error::Io {
            what: what().into(),
            source: std::io::Error::from(e),
        })
    }
}

/// A configuration error naming the file and the JSON field.
pub fn config_err(
    file: &std::path::Path,
    field: impl Into<String>,
    msg: impl Into<String>,
) -> Error {
    Error::Config {
        file: file.to_path_buf(),
        field: field.into(),
        msg: msg.into(),
    }
}
