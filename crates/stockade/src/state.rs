//! Container state under `--root` (default `/run/stockade`): one directory per container id,
//! created with `mkdir` (atomic: two runtimes racing for one id, exactly one wins) and holding
//! `state.json`, written atomically (temp file + rename).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};

pub const DEFAULT_ROOT: &str = "/run/stockade";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub status: String,
    #[serde(default)]
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default)]
    pub annotations: std::collections::HashMap<String, String>,
    /// stockade's own bookkeeping, for delete/cleanup after a crash.
    #[serde(default)]
    pub cgroup: Option<Cgroup>,
    #[serde(default)]
    pub created: String,
    /// Start time of `pid` (field 22 of /proc/PID/stat), to tell it from a recycled pid.
    #[serde(default)]
    pub pid_start: u64,
}

/// Valid ids: what runc accepts (letters, digits, `_ - . + @ :`-free subset), no path tricks.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadId(id.to_string()))
    }
}

/// The state directory of one container; removed on drop unless `keep` was called.
pub struct StateDir {
    pub dir: PathBuf,
    keep: bool,
}

impl StateDir {
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        check_id(id)?;
        fs::create_dir_all(root).ctx(|| format!("create state root {}", root.display()))?;
        let dir = root.join(id);
        match fs::create_dir(&dir) {
            Ok(()) => Ok(StateDir { dir, keep: false }),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                Err(Error::IdInUse(id.to_string(), dir))
            }
            Err(e) => Err(e).ctx(|| format!("create {}", dir.display())),
        }
    }

    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        check_id(id)?;
        let dir = root.join(id);
        if !dir.join("state.json").exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        Ok(StateDir { dir, keep: true })
    }

    pub fn save(&self, st: &State) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let text = serde_json::to_vec_pretty(st).map_err(|e| Error::Other(e.to_string()))?;
        fs::write(&tmp, text).ctx(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, self.dir.join("state.json")).ctx(|| "rename state.json")
    }

    pub fn load(&self) -> Result<State> {
        let p = self.dir.join("state.json");
        let text = fs::read(&p).ctx(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&text).map_err(|e| Error::Other(format!("{}: {e}", p.display())))
    }

    pub fn keep(&mut self) {
        self.keep = true;
    }

    pub fn remove(mut self) -> Result<()> {
        self.keep = true;
        fs::remove_dir_all(&self.dir).ctx(|| format!("remove {}", self.dir.display()))
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// Field 22 of /proc/PID/stat (start time in clock ticks), 0 if the process is gone.
pub fn pid_start_time(pid: i32) -> u64 {
    pid_stat(pid).map_or(0, |(_, start)| start)
}

/// From /proc/PID/stat: the state letter (field 3: `R`, `S`, `Z`, ...) and the start time in
/// clock ticks (field 22); None if the process is gone.
pub fn pid_stat(pid: i32) -> Option<(char, u64)> {
    let s = crate::sys::read_proc(&format!("/proc/{pid}/stat")).ok()?;
    let mut after = s.rsplit_once(')')?.1.split_whitespace();
    let state = after.next()?.chars().next()?;
    Some((state, after.nth(18)?.parse().ok()?))
}
