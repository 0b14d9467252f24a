//! Seed §2 (/proc): the procfs the runtime itself writes through. A config can mount anything
//! anywhere inside the container, /proc included, and runc's CVE-2025-52881 was exactly that: a
//! write meant for `/proc/self/attr/...` or `/proc/sys/...` redirected by a mount the config
//! placed there. So every procfs write the runtime makes goes through a [`ProcFs`]:
//!
//! - in the container (sysctls, time offsets, the exec fifo), a **private** procfs instance the
//!   child makes with `fsopen("proc")` + `fsmount`: a detached mount only this process holds,
//!   over which nothing can be mounted;
//! - on the host side (id maps, `setgroups`, `oom_score_adj`), the host's `/proc`, verified once:
//!   it is procfs (`fstatfs` magic) and the root of its mount (`statx`).
//!
//! Either way each file is opened with `openat2(RESOLVE_BENEATH | RESOLVE_NO_XDEV |
//! RESOLVE_NO_MAGICLINKS)` (no mount crossed on the way: an over-mounted target is refused) and
//! checked to be on procfs again through its descriptor before a byte is written.

use std::io::{self, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC};

use crate::sys;

/// A procfs instance verified to be one, as a directory descriptor on its root.
pub struct ProcFs(OwnedFd);

fn not_proc(what: &str) -> io::Error {
    io::Error::other(format!("{what} is not on a real procfs"))
}

fn check_proc(fd: &impl AsFd, what: &str) -> io::Result<()> {
    let st = fstatfs(fd).map_err(io::Error::from)?;
    if st.filesystem_type() != PROC_SUPER_MAGIC {
        return Err(not_proc(what));
    }
    Ok(())
}

impl ProcFs {
    /// A fresh, detached procfs of the caller's pid namespace (the child's side). Where the
    /// kernel refuses one (a pid namespace we hold no privilege over), the visible `/proc`,
    /// verified as [`ProcFs::host`] does.
    pub fn private() -> io::Result<ProcFs> {
        let fresh = (|| {
            let fs = sys::fsopen("proc")?;
            sys::fsconfig_create(&fs)?;
            sys::fsmount(
                &fs,
                sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_NOEXEC,
            )
        })();
        match fresh {
            Ok(m) => {
                check_proc(&m, "a new procfs")?;
                Ok(ProcFs(m))
            }
            Err(_) => ProcFs::host(),
        }
    }

    /// The host's `/proc`, verified: procfs, and the root of its mount (nothing mounted over it).
    pub fn host() -> io::Result<ProcFs> {
        let fd = sys::openat2(
            libc::AT_FDCWD,
            Path::new("/proc"),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            0,
            sys::RESOLVE_NO_SYMLINKS,
        )?;
        check_proc(&fd, "/proc")?;
        if !sys::mount_root_and_id(&fd)?.0 {
            return Err(io::Error::other(
                "/proc is not the root of a procfs mount (something is mounted over part of it)",
            ));
        }
        Ok(ProcFs(fd))
    }

    /// Open `rel` (relative to the procfs root, e.g. `sys/net/ipv4/ip_forward`) without
    /// following any symlink that leaves it, any magic link, or any mount point.
    pub fn open(&self, rel: &str, flags: i32) -> io::Result<std::fs::File> {
        let fd = sys::openat2(
            self.0.as_raw_fd(),
            Path::new(rel),
            flags | libc::O_NOFOLLOW,
            0,
            sys::RESOLVE_BENEATH | sys::RESOLVE_NO_XDEV | sys::RESOLVE_NO_MAGICLINKS,
        )?;
        check_proc(&fd, rel)?;
        Ok(std::fs::File::from(fd))
    }

    /// Write `data` to `rel` in one `write` (procfs files take their value whole).
    pub fn write(&self, rel: &str, data: &[u8]) -> io::Result<()> {
        let mut f = self.open(rel, libc::O_WRONLY)?;
        f.write_all(data)
    }

    /// Open the namespace file `PID/ns/NAME` (a magic link, followed as the last component
    /// only), checked to be on nsfs.
    pub fn open_ns(&self, pid: i32, name: &str) -> io::Result<std::fs::File> {
        let dir = sys::openat2(
            self.0.as_raw_fd(),
            Path::new(&format!("{pid}/ns")),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            sys::RESOLVE_BENEATH | sys::RESOLVE_NO_XDEV | sys::RESOLVE_NO_MAGICLINKS,
        )?;
        check_proc(&dir, "PID/ns")?;
        let f = sys::openat2(
            dir.as_raw_fd(),
            Path::new(name),
            libc::O_RDONLY | libc::O_CLOEXEC,
            0,
            0,
        )?;
        const NSFS_MAGIC: i64 = 0x6e73_6673;
        let st = fstatfs(&f).map_err(io::Error::from)?;
        if st.filesystem_type().0 as i64 != NSFS_MAGIC {
            return Err(io::Error::other(format!(
                "{pid}/ns/{name} is not a namespace"
            )));
        }
        Ok(std::fs::File::from(f))
    }

    /// Our own `thread-self/fd` directory, verified, as an `O_PATH` descriptor: a descriptor
    /// `N` held `O_PATH` (the exec fifo) is later opened for writing with one `openat(dir, "N")`
    /// (the magic link is what is meant to be followed), which may come after the filter.
    pub fn fd_dir(&self) -> io::Result<OwnedFd> {
        let dir = sys::openat2(
            self.0.as_raw_fd(),
            Path::new("thread-self/fd"),
            libc::O_PATH | libc::O_DIRECTORY,
            0,
            sys::RESOLVE_BENEATH | sys::RESOLVE_NO_XDEV | sys::RESOLVE_NO_MAGICLINKS,
        )?;
        check_proc(&dir, "thread-self/fd")?;
        Ok(dir)
    }
}
