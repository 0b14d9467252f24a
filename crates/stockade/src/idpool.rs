//! Host id ranges for the user namespaces the policy adds: each live container holds a range no
//! other live container shares.
//!
//! The pool is `stockade-auto:START:COUNT` in `/etc/subuid` (the same numbers serve as gids), or
//! the default below; it is cut into slots of `size` ids (65536: every uid and gid a distribution
//! image uses). A slot is a file `ROOT/.ids/N` made with `O_EXCL` under `ROOT/.ids/lock`, holding
//! the container id and the allocating runtime's pid and start time. It is released by `delete`;
//! one whose container has no state directory and whose allocating runtime is gone (killed between
//! allocation and commit) is reclaimed by the next allocation.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Context, Error, Result};

pub const DEFAULT_START: u32 = 1_000_000_000;
pub const DEFAULT_SIZE: u32 = 65_536;
pub const DEFAULT_SLOTS: u32 = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pool {
    pub start: u32,
    pub count: u32,
    /// ids per container
    pub size: u32,
}

impl Pool {
    pub fn from_subuid() -> Pool {
        let found = std::fs::read_to_string("/etc/subuid").ok().and_then(|t| {
            t.lines().find_map(|l| {
                let mut it = l.trim().split(':');
                (it.next()? == "stockade-auto").then_some(())?;
                Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
            })
        });
        let (start, count) = found.unwrap_or((DEFAULT_START, DEFAULT_SIZE * DEFAULT_SLOTS));
        Pool {
            start,
            count,
            size: DEFAULT_SIZE,
        }
    }

    pub fn check(&self) -> std::result::Result<(), String> {
        if self.start == 0 {
            return Err("start 0 would map container root to host root".into());
        }
        if self.size == 0 || self.count < self.size {
            return Err(format!(
                "count {} holds no range of size {}",
                self.count, self.size
            ));
        }
        if (self.start as u64) + (self.count as u64) > u32::MAX as u64 {
            return Err("start + count overflows the id space".into());
        }
        Ok(())
    }

    pub fn slots(&self) -> u32 {
        self.count / self.size
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    pub slot: u32,
    pub start: u32,
    pub size: u32,
}

fn dir(root: &Path) -> PathBuf {
    root.join(".ids")
}

/// Held while the file is open (flock is released on close).
struct PoolLock(#[allow(dead_code)] std::fs::File);

fn lock(root: &Path) -> Result<PoolLock> {
    let d = dir(root);
    std::fs::create_dir_all(&d).ctx(|| format!("create {}", d.display()))?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(d.join("lock"))
        .ctx(|| format!("open {}/lock", d.display()))?;
    crate::sys::flock(&f, libc::LOCK_EX).ctx(|| "lock the id pool")?;
    Ok(PoolLock(f))
}

/// Is the slot file's holder gone: no state dir for its container, and its runtime dead?
fn stale(root: &Path, text: &str) -> bool {
    let mut lines = text.lines();
    let id = lines.next().unwrap_or_default();
    if id.is_empty() {
        return true;
    }
    if crate::state::check_id(id).is_ok() && root.join(id).exists() {
        return false;
    }
    let mut f = lines.next().unwrap_or_default().split_whitespace();
    let pid: i32 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let start: u64 = f.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    pid <= 0 || crate::state::pid_start_time(pid) != start
}

/// Take a free slot for container `id`.
pub fn allocate(root: &Path, pool: &Pool, id: &str) -> Result<Range> {
    let _l = lock(root)?;
    let d = dir(root);
    let me = std::process::id() as i32;
    let record = format!("{id}\n{me} {}\n", crate::state::pid_start_time(me));
    for slot in 0..pool.slots() {
        let path = d.join(slot.to_string());
        if let Ok(text) = std::fs::read_to_string(&path) {
            if !stale(root, &text) {
                continue;
            }
            std::fs::remove_file(&path).ctx(|| format!("reclaim {}", path.display()))?;
        }
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .ctx(|| format!("take {}", path.display()))?;
        f.write_all(record.as_bytes())
            .ctx(|| format!("write {}", path.display()))?;
        return Ok(Range {
            slot,
            start: pool.start + slot * pool.size,
            size: pool.size,
        });
    }
    Err(Error::Other(format!(
        "policy userNamespace: the id pool is exhausted: all {} ranges of {} ids from {} are held by live containers \
         (raise stockade-auto's COUNT in /etc/subuid, or idPool in the policy)",
        pool.slots(),
        pool.size,
        pool.start
    )))
}

/// Give back `slot` if container `id` holds it.
pub fn release(root: &Path, slot: u32, id: &str) {
    let Ok(_l) = lock(root) else { return };
    let path = dir(root).join(slot.to_string());
    if let Ok(text) = std::fs::read_to_string(&path) {
        if text.lines().next() == Some(id) {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Give back every slot naming container `id` whose holder is gone (`delete --force` after a
/// runtime killed between taking the slot and committing the container).
pub fn release_stale_for(root: &Path, id: &str) {
    if !dir(root).exists() {
        return;
    }
    let Ok(_l) = lock(root) else { return };
    for e in std::fs::read_dir(dir(root)).into_iter().flatten().flatten() {
        if e.file_name() == "lock" {
            continue;
        }
        if let Ok(text) = std::fs::read_to_string(e.path()) {
            if text.lines().next() == Some(id) && stale(root, &text) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The slot a policy-added user namespace took, as the effective spec's annotations record it
/// (`org.stockade.policy.idSlot`).
pub fn slot_of(spec: &oci_spec::runtime::Spec) -> Option<u32> {
    spec.annotations()
        .as_ref()?
        .get(crate::spec::POLICY_ANNOTATION_ID_SLOT)?
        .parse()
        .ok()
}

/// Give back a container's slot, if it holds one.
pub fn release_for(root: &Path, id: &str, slot: Option<u32>) {
    if let Some(slot) = slot {
        release(root, slot, id);
    }
}

/// The slots held now (for tests and `list`).
pub fn held(root: &Path) -> Vec<(u32, String)> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir(root)).into_iter().flatten().flatten() {
        if let Some(n) = e.file_name().to_str().and_then(|n| n.parse().ok()) {
            let id = std::fs::read_to_string(e.path())
                .unwrap_or_default()
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            out.push((n, id));
        }
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_distinct_released_and_reclaimed() {
        let root = tempfile::tempdir().unwrap();
        let pool = Pool {
            start: 500_000,
            count: 3 * 65536,
            size: 65536,
        };
        std::fs::create_dir(root.path().join("a")).unwrap();
        std::fs::create_dir(root.path().join("b")).unwrap();
        let a = allocate(root.path(), &pool, "a").unwrap();
        let b = allocate(root.path(), &pool, "b").unwrap();
        assert_ne!(a.start, b.start);
        assert_eq!(a.start, 500_000);
        assert_eq!(b.start, 500_000 + 65536);
        // "c" has no state dir, but its allocating runtime (this process) is alive: held
        let c = allocate(root.path(), &pool, "c").unwrap();
        let e = allocate(root.path(), &pool, "d").unwrap_err().to_string();
        assert!(e.contains("exhausted"), "{e}");
        release(root.path(), b.slot, "b");
        assert_eq!(allocate(root.path(), &pool, "d").unwrap().slot, b.slot);
        // a runtime killed between allocation and commit: its slot is reclaimed
        std::fs::write(
            root.path().join(".ids").join(c.slot.to_string()),
            "c\n999999999 1\n",
        )
        .unwrap();
        assert_eq!(allocate(root.path(), &pool, "e").unwrap().slot, c.slot);
        // release checks the holder
        release(root.path(), a.slot, "zzz");
        assert!(held(root.path())
            .iter()
            .any(|(s, id)| *s == a.slot && id == "a"));
    }
}
