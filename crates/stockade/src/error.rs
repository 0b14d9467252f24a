//! The runtime's error type. Every variant says *where* (file, JSON field, path) and *what*.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: {field}: {msg}")]
    Config {
        file: PathBuf,
        field: String,
        msg: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("container id {0:?} is already in use (state in {1})")]
    IdInUse(String, PathBuf),
    #[error("container {0:?} does not exist")]
    NotFound(String),
    #[error("invalid container id {0:?}: use letters, digits, '_', '-', '.' (not leading), at most 1024 bytes")]
    BadId(String),
    #[error("cgroup: {0}")]
    Cgroup(String),
    #[error("cgroup: systemd: unit {0} already exists (another container with this cgroupsPath?)")]
    UnitExists(String),
    #[error("seccomp: {0}")]
    Seccomp(#[from] stockade_seccomp::Error),
    #[error("container setup failed: {0}")]
    Child(String),
    #[error("{0}")]
    Other(String),
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
