//! Device nodes of the container (runtime-spec "Default Devices" and `linux.devices`), made or
//! bound by descriptor: nothing the image placed at a device path is followed.

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxDevice, LinuxDeviceType};

use super::{cname, resolve_in_root, symlink_at, Prepared};
use crate::error::{Context, Error, Result};
use crate::sys;

/// The OCI default devices (runtime-spec "Default Devices").
pub const DEFAULT_DEVICES: &[(&str, u64, u64)] = &[
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

/// Open the rootfs's `dev/null` without following a symlink and check it is the null device.
pub(super) fn verified_null(rootfd: RawFd) -> Result<OwnedFd> {
    let fd = sys::openat2(
        rootfd,
        Path::new("dev/null"),
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
    )
    .ctx(|| "open /dev/null in the rootfs")?;
    let st = nix::sys::stat::fstat(&fd).ctx(|| "stat /dev/null in the rootfs")?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        return Err(Error::Other(
            "/dev/null in the container is not the null device (char 1:3); masked paths are covered with it".into(),
        ));
    }
    Ok(fd)
}

pub(super) fn create_devices(
    plan: &super::Plan,
    rootfd: RawFd,
    prepared: &mut Prepared,
    in_userns: bool,
) -> Result<()> {
    let has_dev_mount = plan.mounts_at("/dev");
    if in_userns {
        for (path, tree) in prepared.devices.drain(..) {
            let t = place_node(rootfd, &path, Node::MountPoint)?;
            sys::move_mount_fd(tree.as_raw_fd(), t.as_raw_fd())
                .ctx(|| format!("bind device {}", path.display()))?;
        }
    } else {
        let extra = &plan.devices;
        let defaults = DEFAULT_DEVICES
            .iter()
            .filter(|(p, _, _)| !extra.iter().any(|d| d.path() == Path::new(p)))
            .map(|(p, maj, min)| {
                let mut d = LinuxDevice::default();
                d.set_path(PathBuf::from(p));
                d.set_typ(LinuxDeviceType::C);
                d.set_major(*maj as i64);
                d.set_minor(*min as i64);
                d.set_file_mode(Some(0o666));
                d.set_uid(Some(0));
                d.set_gid(Some(0));
                d
            });
        for d in defaults.chain(extra.iter().cloned()) {
            mknod_in_root(rootfd, &d)?;
        }
    }
    if has_dev_mount {
        let dev = resolve_in_root(rootfd, Path::new("/dev"), false)?;
        for (link, target) in [
            ("fd", "/proc/self/fd"),
            ("stdin", "/proc/self/fd/0"),
            ("stdout", "/proc/self/fd/1"),
            ("stderr", "/proc/self/fd/2"),
        ] {
            match symlink_at(&dev, target, link) {
                Err(Error::Io { source, .. }) if source.raw_os_error() == Some(libc::EEXIST) => {}
                r => r?,
            }
        }
        if plan.mounts_at("/dev/pts") {
            let n = cname("ptmx")?;
            // SAFETY: dev is a valid directory descriptor and n a valid C string.
            unsafe { libc::unlinkat(dev.as_raw_fd(), n.as_ptr(), 0) };
            symlink_at(&dev, "pts/ptmx", "ptmx")?;
        }
    }
    Ok(())
}

/// What belongs at a device path of the container.
#[derive(Debug, Clone, Copy)]
enum Node {
    /// A node made with `mknod`: its type (`S_IFCHR`, ...) and number.
    Device {
        kind: libc::mode_t,
        rdev: libc::dev_t,
    },
    /// Something to bind a host device onto (an empty file is made where nothing is).
    MountPoint,
}

impl Node {
    /// Whether what the image already has at the path can stay.
    fn fits(self, st: &libc::stat) -> bool {
        let kind = st.st_mode & libc::S_IFMT;
        match self {
            // a single link: chmod/chown of it reaches no other name
            Node::Device { kind: k, rdev } => {
                kind == k && (k == libc::S_IFIFO || st.st_rdev == rdev) && st.st_nlink == 1
            }
            Node::MountPoint => kind == libc::S_IFREG || kind == libc::S_IFCHR,
        }
    }

    fn create(self, parent: &OwnedFd, name: &std::ffi::OsStr) -> nix::Result<()> {
        use nix::sys::stat::{Mode, SFlag};
        match self {
            Node::Device { kind, rdev } => nix::sys::stat::mknodat(
                parent,
                name,
                SFlag::from_bits_truncate(kind),
                Mode::from_bits_truncate(0o600),
                rdev,
            ),
            Node::MountPoint => nix::fcntl::openat(
                parent,
                name,
                nix::fcntl::OFlag::O_CREAT
                    | nix::fcntl::OFlag::O_EXCL
                    | nix::fcntl::OFlag::O_WRONLY
                    | nix::fcntl::OFlag::O_NOFOLLOW
                    | nix::fcntl::OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            )
            .map(drop),
        }
    }
}

/// Put `node` at `path` inside the rootfs and return it opened `O_PATH`, never through a
/// symlink. What the image has there is judged by `fstatat(AT_SYMLINK_NOFOLLOW)`: a fitting
/// node stays; a symlink, file, or node of another kind is unlinked and made anew (an image's
/// `/dev/null -> /etc/shadow` is replaced, its target never touched); a directory is refused.
fn place_node(rootfd: RawFd, path: &Path, node: Node) -> Result<OwnedFd> {
    use nix::fcntl::AtFlags;
    let (Some(parent_path), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(Error::Other(format!(
            "device path {}: no file name",
            path.display()
        )));
    };
    let parent = resolve_in_root(rootfd, parent_path, false)?;
    let mut replaced = false;
    loop {
        match node.create(&parent, name) {
            Ok(()) => break,
            Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(e).ctx(|| format!("mknod {}", path.display())),
        }
        let st = nix::sys::stat::fstatat(&parent, name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .ctx(|| format!("stat {} in the rootfs", path.display()))?;
        if node.fits(&st) {
            break;
        }
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            return Err(Error::Other(format!(
                "{}: the rootfs has a directory where a device node goes",
                path.display()
            )));
        }
        if replaced {
            return Err(Error::Other(format!(
                "{}: replaced in the rootfs while it was being made",
                path.display()
            )));
        }
        nix::unistd::unlinkat(&parent, name, nix::unistd::UnlinkatFlags::NoRemoveDir)
            .ctx(|| format!("replace {} (not a device in the rootfs)", path.display()))?;
        replaced = true;
    }
    let fd = sys::openat2(
        parent.as_raw_fd(),
        Path::new(name),
        libc::O_PATH | libc::O_NOFOLLOW,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
    )
    .ctx(|| format!("open {} in the rootfs", path.display()))?;
    let st = nix::sys::stat::fstat(&fd).ctx(|| format!("stat {}", path.display()))?;
    if !node.fits(&st) {
        return Err(Error::Other(format!(
            "{}: replaced in the rootfs while it was being made",
            path.display()
        )));
    }
    Ok(fd)
}

/// `/dev/console` of a container with a terminal: the pty's slave bound over it (a file made
/// there, or the image's symlink or node replaced first), all through descriptors.
pub fn bind_console(root: &OwnedFd, slave: &OwnedFd) -> Result<()> {
    let target = place_node(
        root.as_raw_fd(),
        Path::new("/dev/console"),
        Node::MountPoint,
    )?;
    let tree = sys::open_tree_fd(slave.as_raw_fd(), sys::OPEN_TREE_CLONE)
        .ctx(|| "clone the pty for /dev/console")?;
    sys::move_mount_fd(tree.as_raw_fd(), target.as_raw_fd()).ctx(|| "bind /dev/console")
}

/// `mknod` a device of the spec inside the rootfs, then set its mode and owner through its
/// descriptor.
fn mknod_in_root(rootfd: RawFd, d: &LinuxDevice) -> Result<()> {
    let path = d.path();
    let kind = match d.typ() {
        LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
        LinuxDeviceType::B => libc::S_IFBLK,
        LinuxDeviceType::P => libc::S_IFIFO,
        LinuxDeviceType::A => {
            return Err(Error::Other(format!(
                "linux.devices: {}: type 'a' is not a device node",
                path.display()
            )))
        }
    };
    let rdev = libc::makedev(d.major() as u32, d.minor() as u32);
    let fd = place_node(rootfd, path, Node::Device { kind, rdev })?;
    sys::fchmod_fd(&fd, d.file_mode().unwrap_or(0o666))
        .ctx(|| format!("chmod {}", path.display()))?;
    sys::fchown_fd(&fd, d.uid().unwrap_or(0), d.gid().unwrap_or(0))
        .ctx(|| format!("chown {}", path.display()))?;
    if kind != libc::S_IFIFO {
        usable_on_nodev(&fd, path)?;
    }
    Ok(())
}

/// A node made on a `nodev` mount (the rootfs itself, when the config mounts no `/dev` and the
/// image brings its own) opens with EACCES: bind the node onto itself with `nodev` cleared on
/// that one mount, so the nodes the runtime supplies work while whatever else the image carries
/// stays unusable. Nothing on a mount without `nodev` (a `/dev` tmpfs) is touched.
fn usable_on_nodev(node: &OwnedFd, path: &Path) -> Result<()> {
    let st = nix::sys::statvfs::fstatvfs(node).ctx(|| format!("statvfs {}", path.display()))?;
    if !st.flags().contains(nix::sys::statvfs::FsFlags::ST_NODEV) {
        return Ok(());
    }
    let what = || format!("bind {} over itself without nodev", path.display());
    let tree = sys::open_tree_fd(
        node.as_raw_fd(),
        sys::OPEN_TREE_CLONE | sys::OPEN_TREE_CLOEXEC,
    )
    .ctx(what)?;
    let a = sys::MountAttr {
        attr_clr: sys::MOUNT_ATTR_NODEV,
        ..Default::default()
    };
    sys::mount_setattr_fd(tree.as_raw_fd(), false, &a).ctx(what)?;
    sys::move_mount_fd(tree.as_raw_fd(), node.as_raw_fd()).ctx(what)
}
