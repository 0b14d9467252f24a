//! Container state under `--root` (default `/run/stockade`): one directory per container id,
//! holding `state.json`, written atomically (temp file + rename).
//!
//! Crash consistency: the runtime may be killed at any instant, so
//! - a container *exists* once its `state.json` is committed (renamed into place). It is written
//!   before anything else of the container is made (cgroups, processes, mounts), naming what
//!   will be made, so a later `delete --force` finds and removes all of it;
//! - the directory is locked (`flock` on the directory itself) by whoever creates or deletes it;
//!   a lock dies with its holder. A directory with no committed state and no lock holder is what
//!   a runtime killed between `mkdir` and the first commit leaves: `create` of that id reclaims
//!   it, `delete` removes it, `list` and `state` do not show it;
//! - taking an id (mkdir or reclaim, then lock) is done under a short lock on the root itself, so
//!   two runtimes can never both own one id.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::cgroups::Cgroup;
use crate::error::{Context, Error, Result};

pub const DEFAULT_ROOT: &str = "/run/stockade";

/// The fifo in a container's state directory that its created init blocks on until `start`
/// opens it.
pub const EXEC_FIFO: &str = "exec.fifo";

/// The state root when `--root` is not given, runc's rule: `/run/stockade` for root; for
/// another user `$XDG_RUNTIME_DIR/stockade`, or `/tmp/stockade-UID` when that is unset.
pub fn default_root() -> PathBuf {
    let uid = nix::unistd::geteuid();
    if uid.is_root() {
        return PathBuf::from(DEFAULT_ROOT);
    }
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d).join("stockade"),
        None => PathBuf::from(format!("/tmp/stockade-{uid}")),
    }
}

/// Make the state root private (0700, as runc's): containers' configs, pids and ids are no
/// other user's business. An existing root must be ours (a `/tmp/stockade-UID` made by another
/// user is refused) and is narrowed to 0700 if it was wider.
pub fn prepare_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let what = || format!("state root {}", root.display());
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .ctx(what)?;
    let md = fs::symlink_metadata(root).ctx(what)?;
    let me = nix::unistd::geteuid().as_raw();
    if !md.is_dir() || md.uid() != me {
        return Err(Error::Other(format!(
            "state root {} is {} owned by uid {}, not by you (uid {me}): give another --root",
            root.display(),
            if md.is_dir() {
                "a directory"
            } else {
                "not a directory"
            },
            md.uid()
        )));
    }
    if md.mode() & 0o077 != 0 {
        fs::set_permissions(root, fs::Permissions::from_mode(0o700)).ctx(what)?;
    }
    Ok(())
}

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
    /// The host id slot a policy-added user namespace holds (given back at delete).
    #[serde(
        default,
        rename = "stockadeIdSlot",
        skip_serializing_if = "Option::is_none"
    )]
    pub id_slot: Option<u32>,
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
    /// The directory, `flock`ed while we create or delete the container.
    lock: Option<OwnedFd>,
}

const STATE: &str = "state.json";

/// Open a directory without following a symlink (the root and ids are ours, but a stray
/// symlink must not make us lock or empty another directory).
fn open_dir(p: &Path) -> io::Result<OwnedFd> {
    crate::sys::openat2(
        libc::AT_FDCWD,
        p,
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
        0,
    )
}

/// `flock(LOCK_EX | LOCK_NB)`: false when another process holds it.
fn try_lock(fd: &OwnedFd) -> io::Result<bool> {
    match crate::sys::flock(fd, libc::LOCK_EX | libc::LOCK_NB) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Remove what is in `dir`, `state.json` last: until it goes, the container still exists and a
/// `delete` interrupted here can be run again.
fn empty_dir(dir: &Path) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        r => r?,
    };
    for e in entries {
        let e = e?;
        if e.file_name() == STATE {
            continue;
        }
        let p = e.path();
        if e.file_type()?.is_dir() {
            fs::remove_dir_all(&p)?;
        } else {
            fs::remove_file(&p)?;
        }
    }
    match fs::remove_file(dir.join(STATE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// The directory and what is in it ([`empty_dir`] first), already gone counting as done.
fn remove_whole(dir: &Path) -> io::Result<()> {
    empty_dir(dir)?;
    crate::diag::mark("state emptied");
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// What [`StateDir::lock`] found.
pub enum Locked {
    /// A container: its committed state, now locked by us.
    Container(StateDir),
    /// A directory a killed runtime left before committing anything; removed just now.
    Removed,
}

impl StateDir {
    /// Take `id` for a new container: its directory made (or an uncommitted one reclaimed) and
    /// locked by us until [`StateDir::unlock`] or drop.
    pub fn create(root: &Path, id: &str) -> Result<StateDir> {
        check_id(id)?;
        prepare_root(root)?;
        let dir = root.join(id);
        let root_fd = open_dir(root).ctx(|| format!("open state root {}", root.display()))?;
        crate::sys::flock(&root_fd, libc::LOCK_EX)
            .ctx(|| format!("lock state root {}", root.display()))?;
        let fresh = match fs::create_dir(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) => return Err(e).ctx(|| format!("create {}", dir.display())),
        };
        crate::diag::mark("state dir made");
        let fd = open_dir(&dir).ctx(|| format!("open {}", dir.display()))?;
        if !try_lock(&fd).ctx(|| format!("lock {}", dir.display()))? {
            return Err(Error::IdInUse(id.to_string(), dir));
        }
        if !fresh {
            if dir.join(STATE).exists() {
                return Err(Error::IdInUse(id.to_string(), dir));
            }
            // No committed state and nobody holding it: a runtime died before its first commit.
            empty_dir(&dir).ctx(|| format!("reclaim stale {}", dir.display()))?;
        }
        drop(root_fd);
        Ok(StateDir {
            dir,
            keep: false,
            lock: Some(fd),
        })
    }

    /// An existing container, unlocked (for reading its state, signalling it, ...).
    pub fn open(root: &Path, id: &str) -> Result<StateDir> {
        check_id(id)?;
        let dir = root.join(id);
        if !dir.join(STATE).exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        Ok(StateDir {
            dir,
            keep: true,
            lock: None,
        })
    }

    /// Lock `id` to remove it (`delete`): waits up to `wait` for a runtime still creating it. A
    /// directory without committed state is removed on the spot.
    pub fn lock(root: &Path, id: &str, wait: std::time::Duration) -> Result<Locked> {
        check_id(id)?;
        let dir = root.join(id);
        let fd = match open_dir(&dir) {
            Ok(fd) => fd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()))
            }
            Err(e) => return Err(e).ctx(|| format!("open {}", dir.display())),
        };
        let deadline = std::time::Instant::now() + wait;
        while !try_lock(&fd).ctx(|| format!("lock {}", dir.display()))? {
            if std::time::Instant::now() >= deadline {
                return Err(Error::Other(format!(
                    "container {id} is being created or deleted by another stockade process ({} is locked)",
                    dir.display()
                )));
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        if !dir.join(STATE).exists() {
            remove_whole(&dir).ctx(|| format!("remove stale {}", dir.display()))?;
            return Ok(Locked::Removed);
        }
        Ok(Locked::Container(StateDir {
            dir,
            keep: true,
            lock: Some(fd),
        }))
    }

    /// In the cloned child: close our copy of the lock's descriptor, so the lock lives only as
    /// long as the runtime (a created container's init outlives it).
    pub fn close_inherited_lock(&mut self) {
        self.lock = None;
    }

    /// Let others lock the directory (the container is committed and set up).
    pub fn unlock(&mut self) {
        // LOCK_UN on the open file description: the child holds a copy of the descriptor until
        // its execve (a created container's init, until `start`).
        if let Some(fd) = self.lock.take() {
            let _ = crate::sys::flock(&fd, libc::LOCK_UN);
        }
    }

    pub fn save(&self, st: &State) -> Result<()> {
        let tmp = self.dir.join(".state.json.tmp");
        let text = serde_json::to_vec_pretty(st).map_err(|e| Error::Other(e.to_string()))?;
        fs::write(&tmp, text).ctx(|| format!("write {}", tmp.display()))?;
        crate::diag::mark("state written");
        fs::rename(&tmp, self.dir.join(STATE)).ctx(|| "rename state.json")
    }

    pub fn load(&self) -> Result<State> {
        let p = self.dir.join("state.json");
        let text = fs::read(&p).ctx(|| format!("read {}", p.display()))?;
        serde_json::from_slice(&text).map_err(|e| Error::Other(format!("{}: {e}", p.display())))
    }

    pub fn keep(&mut self) {
        self.keep = true;
    }

    /// Remove the directory (`state.json` last, then the directory, still under our lock).
    pub fn remove(mut self) -> Result<()> {
        self.keep = true;
        remove_whole(&self.dir).ctx(|| format!("remove {}", self.dir.display()))
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = remove_whole(&self.dir);
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

/// The config a container runs with, when the policy changed the bundle's: kept in its state
/// directory, so `exec`, hooks and `delete` see what was enforced, not what was asked.
pub const EFFECTIVE_CONFIG: &str = "config.json";

/// The container's config file: the effective one in its state directory, else the bundle's.
pub fn config_file(root: &Path, st: &State) -> std::path::PathBuf {
    let ours = root.join(&st.id).join(EFFECTIVE_CONFIG);
    if ours.exists() {
        ours
    } else {
        st.bundle.join("config.json")
    }
}
