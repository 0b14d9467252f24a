//! An overlayfs rootfs (Docker's overlay2, Podman's containers/storage) in a user namespace.
//!
//! overlayfs refuses to be idmapped itself (EINVAL), but takes idmapped *layers* (Linux 5.19)
//! and, since 6.13, takes its layers as descriptors (`fsconfig(FSCONFIG_SET_FD)` for
//! `lowerdir+`, `upperdir`, `workdir`). So the engine's overlay is rebuilt: its layers are read
//! from the mount's options (`/proc/self/mountinfo`), each is cloned detached (`open_tree`) and
//! idmapped into the container's user namespace, and a new overlay is made of those descriptors.
//! Files keep their owners on disk: container root writes host-root-owned files as host root
//! sees them, exactly as without the user namespace, and nothing is chowned.
//!
//! The engine's own mount of the same layers stays where it is (the engine unmounts it); the
//! two share the upper directory, which overlayfs allows with `index=off` (the default, and
//! what Docker and Podman mount with) and warns about in the kernel log. Nothing uses the
//! engine's mount while the container runs. The workdir is our own (`stockade-work` beside the
//! engine's): overlayfs cleans its workdir at mount, and Podman's `volatile` mounts leave a mark
//! in theirs that refuses any second mount.

use std::fs;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::sys;

pub const OVERLAYFS_MAGIC: i64 = 0x794c_7630;

/// Our workdir, beside the engine's upper and work directories (in the container's layer
/// directory, which the engine removes with the container).
pub const WORKDIR: &str = "stockade-work";

/// The layers of the overlay mounted at a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layers {
    /// top first, as in `lowerdir=`
    pub lower: Vec<PathBuf>,
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
    /// other options passed through (`index=off`, `redirect_dir=on`, `volatile`...)
    pub options: Vec<(String, Option<String>)>,
}

/// `\040`-style octal escapes of mountinfo.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parse the overlay mounted at `mountpoint` out of a mountinfo text (the last such mount wins:
/// it is the visible one). Relative layer paths (Docker's when the options are long) are taken
/// against `base`.
pub fn parse(mountinfo: &str, mountpoint: &Path, base: &Path) -> Option<Layers> {
    let mut found = None;
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let Some(mp) = left.split(' ').nth(4) else {
            continue;
        };
        if Path::new(&unescape(mp)) != mountpoint {
            continue;
        }
        let mut r = right.split(' ');
        let (Some(fstype), Some(_src), Some(opts)) = (r.next(), r.next(), r.next()) else {
            continue;
        };
        if fstype != "overlay" {
            found = None;
            continue;
        }
        let abs = |p: &str| {
            let p = PathBuf::from(unescape(p));
            if p.is_absolute() {
                p
            } else {
                base.join(p)
            }
        };
        let mut l = Layers {
            lower: vec![],
            upper: None,
            work: None,
            options: vec![],
        };
        for o in opts.split(',') {
            match o.split_once('=') {
                Some(("lowerdir", v)) => {
                    l.lower = v.split(':').filter(|s| !s.is_empty()).map(abs).collect()
                }
                Some(("lowerdir+", v)) => l.lower.push(abs(v)),
                Some(("upperdir", v)) => l.upper = Some(abs(v)),
                Some(("workdir", v)) => l.work = Some(abs(v)),
                Some((k, v)) => l.options.push((k.to_string(), Some(unescape(v)))),
                None if o == "rw" || o == "ro" => {}
                None => l.options.push((o.to_string(), None)),
            }
        }
        found = Some(l);
    }
    found
}

/// The layers of the overlay at `rootfs`, if it is one.
pub fn layers_of(rootfs: &Path) -> io::Result<Option<Layers>> {
    let st = nix::sys::statfs::statfs(rootfs).map_err(io::Error::from)?;
    if st.filesystem_type().0 != OVERLAYFS_MAGIC {
        return Ok(None);
    }
    let info = fs::read_to_string("/proc/self/mountinfo")?;
    // Docker's engine root: ROOT/overlay2/ID/merged with layers relative to ROOT/overlay2
    let base = rootfs
        .parent()
        .and_then(|p| p.parent())
        .unwrap_or(Path::new("/"));
    Ok(parse(&info, rootfs, base))
}

/// Options overlayfs takes that are passed through to the rebuilt mount.
const PASSED: &[&str] = &[
    "index",
    "redirect_dir",
    "metacopy",
    "xino",
    "nfs_export",
    "uuid",
    "userxattr",
    "volatile",
];

fn idmapped(path: &Path, userns: &fs::File) -> io::Result<OwnedFd> {
    let tree = sys::open_tree(path, sys::OPEN_TREE_CLONE)?;
    let a = sys::MountAttr {
        attr_set: sys::MOUNT_ATTR_IDMAP,
        userns_fd: userns.as_raw_fd() as u64,
        ..Default::default()
    };
    sys::mount_setattr_fd(tree.as_raw_fd(), false, &a)?;
    Ok(tree)
}

fn beneath(tree: &OwnedFd, name: &std::ffi::OsStr) -> io::Result<OwnedFd> {
    sys::openat2(
        tree.as_raw_fd(),
        Path::new(name),
        libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_XDEV,
    )
}

fn context(what: &str, p: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
}

/// A user namespace for idmapping the layers: the container's maps, plus host root at one id
/// past them. overlayfs does its upper-layer work (workdir, whiteouts, copy-up temporaries) with
/// the mounter's credentials, host root's here, and through an idmapped layer an id with no
/// mapping fails (EOVERFLOW). The extra id only ever owns those transient files: copy-up sets
/// every file's owner to its lower original's.
pub fn mapping_userns(
    uids: &[oci_spec::runtime::LinuxIdMapping],
    gids: &[oci_spec::runtime::LinuxIdMapping],
) -> io::Result<fs::File> {
    let fmt = |maps: &[oci_spec::runtime::LinuxIdMapping]| {
        let end = maps
            .iter()
            .map(|m| m.container_id() as u64 + m.size() as u64)
            .max()
            .unwrap_or(0);
        let mut s: String = maps
            .iter()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect();
        if !maps.iter().any(|m| m.host_id() == 0) && end < u32::MAX as u64 {
            s.push_str(&format!("{end} 0 1\n"));
        }
        s
    };
    // A child born in a new user namespace that only waits; its namespace outlives it through
    // the descriptor.
    let pid = sys::clone3(libc::CLONE_NEWUSER as u64, None)?;
    if pid == 0 {
        loop {
            // SAFETY: pause has no arguments; the parent kills this process.
            unsafe { libc::pause() };
        }
    }
    let res = (|| {
        let proc = crate::procfs::ProcFs::host()?;
        proc.write(&format!("{pid}/uid_map"), fmt(uids).as_bytes())?;
        proc.write(&format!("{pid}/setgroups"), b"deny")
            .or_else(|e| {
                if e.raw_os_error() == Some(libc::ENOENT) {
                    Ok(())
                } else {
                    Err(e)
                }
            })?;
        proc.write(&format!("{pid}/gid_map"), fmt(gids).as_bytes())?;
        // a magic link: opened as the runtime opens the container's own (container/mod.rs)
        fs::File::open(format!("/proc/{pid}/ns/user"))
    })();
    let child = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
    let _ = nix::sys::wait::waitpid(child, None);
    res
}

/// A new overlay of the same layers, each idmapped through `userns` (see [`mapping_userns`]):
/// a detached mount, made by the runtime in the host's user namespace (so the layers'
/// `trusted.overlay.*` metadata, opaque directories and redirects, reads as the engine wrote it).
pub fn rebuild(l: &Layers, userns: &fs::File) -> io::Result<OwnedFd> {
    if l.lower.is_empty() {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "no lowerdir"));
    }
    let fsfd = sys::fsopen("overlay")?;
    let e = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("overlay {what}: {e}"));
    let mut keep = vec![];
    for p in &l.lower {
        let t = idmapped(p, userns).map_err(|x| context("idmap lower layer", p, x))?;
        sys::fsconfig_fd(&fsfd, "lowerdir+", t.as_raw_fd())
            .map_err(|x| e("lowerdir+ by descriptor (Linux 6.13 and later)", x))?;
        keep.push(t);
    }
    if let (Some(up), Some(work)) = (&l.upper, &l.work) {
        // upper and work must be on one mount: idmap their common parent once
        let parent = up
            .parent()
            .filter(|p| Some(*p) == work.parent())
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!(
                        "upperdir {} and workdir {} are not in one directory",
                        up.display(),
                        work.display()
                    ),
                )
            })?;
        // A workdir of our own beside the engine's: two live overlays must not share one (each
        // cleans it at mount), and a `volatile` one carries a mark that refuses a second mount.
        let ours = parent.join(WORKDIR);
        match fs::remove_dir_all(&ours) {
            Err(x) if x.kind() != io::ErrorKind::NotFound => {
                return Err(context("clear our workdir", &ours, x))
            }
            _ => {}
        }
        fs::create_dir(&ours).map_err(|x| context("create our workdir", &ours, x))?;
        let t = idmapped(parent, userns).map_err(|x| context("idmap upper layer", parent, x))?;
        let u = beneath(&t, up.file_name().unwrap_or_default())
            .map_err(|x| context("open upperdir", up, x))?;
        let w = beneath(&t, std::ffi::OsStr::new(WORKDIR))
            .map_err(|x| context("open workdir", &ours, x))?;
        sys::fsconfig_fd(&fsfd, "upperdir", u.as_raw_fd()).map_err(|x| e("upperdir", x))?;
        sys::fsconfig_fd(&fsfd, "workdir", w.as_raw_fd()).map_err(|x| e("workdir", x))?;
        keep.extend([t, u, w]);
    }
    for (k, v) in &l.options {
        if !PASSED.contains(&k.as_str()) {
            continue;
        }
        match v {
            Some(v) => sys::fsconfig_string(&fsfd, k, v),
            None => sys::fsconfig_flag(&fsfd, k),
        }
        .map_err(|x| e(&format!("option {k}"), x))?;
    }
    sys::fsconfig_create(&fsfd).map_err(|x| e("create (the kernel log says why)", x))?;
    sys::fsmount(&fsfd, 0).map_err(|x| e("fsmount", x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_read_from_mountinfo() {
        let info = "\
1 0 8:1 / / rw - ext4 /dev/vda rw
90 1 0:50 / /var/lib/docker/overlay2/abc/merged rw,relatime - overlay overlay rw,lowerdir=/var/lib/docker/overlay2/l/X:/var/lib/docker/overlay2/l/Y,upperdir=/var/lib/docker/overlay2/abc/diff,workdir=/var/lib/docker/overlay2/abc/work,index=off
91 1 0:51 / /srv/with\\040space rw - overlay overlay rw,lowerdir=l/A,upperdir=x/diff,workdir=x/work,xino=off,volatile
";
        let l = parse(
            info,
            Path::new("/var/lib/docker/overlay2/abc/merged"),
            Path::new("/unused"),
        )
        .unwrap();
        assert_eq!(
            l.lower,
            [
                PathBuf::from("/var/lib/docker/overlay2/l/X"),
                PathBuf::from("/var/lib/docker/overlay2/l/Y")
            ]
        );
        assert_eq!(
            l.upper.as_deref(),
            Some(Path::new("/var/lib/docker/overlay2/abc/diff"))
        );
        assert_eq!(l.options, [("index".to_string(), Some("off".to_string()))]);
        let r = parse(info, Path::new("/srv/with space"), Path::new("/base")).unwrap();
        assert_eq!(r.lower, [PathBuf::from("/base/l/A")]);
        assert_eq!(r.work.as_deref(), Some(Path::new("/base/x/work")));
        assert!(r.options.contains(&("volatile".to_string(), None)));
        assert!(parse(info, Path::new("/"), Path::new("/")).is_none());
    }
}
