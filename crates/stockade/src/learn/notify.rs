//! Verification's ears: the learned profile runs with its default action sent to a seccomp
//! user-notification listener (`SCMP_ACT_NOTIFY` + `listenerPath`, the runtime-spec agent
//! protocol the runtime already speaks). Each call the profile does not allow is recorded with
//! its arguments and answered EPERM — what the enforced profile would answer — so a failed
//! verification names the syscall. Allowed calls never reach the listener and pay nothing.

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

/// One denied call.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Denied {
    pub name: String,
    pub nr: u32,
    pub args: [u64; 6],
}

pub struct Listener {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Vec<Denied>>>,
}

/// The descriptor sent to the agent socket (SCM_RIGHTS), from one connection.
fn recv_listener_fd(l: &UnixListener, stop: &AtomicBool) -> Option<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    l.set_nonblocking(true).ok()?;
    let conn = loop {
        match l.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if stop.load(Ordering::Relaxed) {
                    return None;
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            Err(_) => return None,
        }
    };
    conn.set_nonblocking(false).ok()?;
    let mut buf = vec![0u8; 65536];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 4]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;
    let fd = msg.cmsgs().ok()?.find_map(|c| match c {
        ControlMessageOwned::ScmRights(v) => v.first().copied(),
        _ => None,
    })?;
    // SAFETY: SCM_RIGHTS gave us this new descriptor; nothing else owns it.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn serve(fd: OwnedFd, stop: &AtomicBool) -> Vec<Denied> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let arch = stockade_seccomp::Arch::native();
    let mut denied = vec![];
    loop {
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, PollTimeout::from(50u16)).is_err() {
            break;
        }
        let ev = fds[0].revents().unwrap_or(PollFlags::empty());
        if ev.contains(PollFlags::POLLIN) {
            if let Ok(n) = crate::sys::notif_recv(&fd) {
                // an i386 call is named as such (the profile is native only; never added)
                let (a, prefix) = if n.arch == stockade_seccomp::Arch::X86.audit() {
                    (stockade_seccomp::Arch::X86, "i386:")
                } else {
                    (arch, "")
                };
                denied.push(Denied {
                    name: a
                        .name_of(n.nr as u32)
                        .map_or_else(|| format!("{prefix}#{}", n.nr), |s| format!("{prefix}{s}")),
                    nr: n.nr as u32,
                    args: n.args,
                });
                let resp = crate::sys::SeccompNotifResp {
                    id: n.id,
                    val: 0,
                    error: -libc::EPERM,
                    flags: 0,
                };
                let _ = crate::sys::notif_send(&fd, &resp);
            }
            continue;
        }
        // every process using the filter is gone
        if ev.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            break;
        }
        if stop.load(Ordering::Relaxed) {
            break;
        }
    }
    denied
}

impl Listener {
    /// Listen at `path` (the spec's `linux.seccomp.listenerPath`).
    pub fn start(path: &Path) -> io::Result<Listener> {
        let l = UnixListener::bind(path)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || match recv_listener_fd(&l, &s) {
            Some(fd) => serve(fd, &s),
            None => vec![],
        });
        Ok(Listener {
            stop,
            thread: Some(thread),
        })
    }

    /// Stop (the container is gone) and return what was denied, in order.
    pub fn finish(mut self) -> Vec<Denied> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}
