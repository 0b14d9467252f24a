//! The runtime↔child channel: a SEQPACKET socket pair, close-on-exec (EOF tells the runtime
//! `execve` worked). Messages are a tag byte and a body: "G" (go: the trees to attach, JSON,
//! then the descriptors), "C"/"G" (cgroup `tasks` files), "F" (the seccomp filter), and from the
//! child "T" (pty master), "L" (seccomp listener), "R" (ready, `create`), "E" (an error).

use std::io::IoSlice;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{self, ControlMessage, ControlMessageOwned, MsgFlags};

use crate::error::{Context, Error, Result};
use crate::rootfs;

/// "go": our pid as the host sees it and what each tree is (JSON), then the trees themselves.
pub(super) fn send_go(sock: &OwnedFd, p: &rootfs::Prepared, pid: i32) -> Result<()> {
    let (trees, fds) = p.to_wire();
    let header = serde_json::to_vec(&Go { pid, trees }).expect("plain data");
    let mut msg = Vec::with_capacity(1 + header.len());
    msg.push(b'G');
    msg.extend(header);
    socket::send(sock.as_raw_fd(), &msg, MsgFlags::empty()).ctx(|| "send go")?;
    for chunk in fds.chunks(200) {
        let iov = [IoSlice::new(b"F")];
        let cmsg = [ControlMessage::ScmRights(chunk)];
        socket::sendmsg::<()>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
            .ctx(|| "send mount trees")?;
    }
    Ok(())
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Go {
    pid: i32,
    trees: Vec<rootfs::Tree>,
}

/// One message and the descriptors it carried (SCM_RIGHTS, up to 200), received close-on-exec.
pub(super) fn recv_with_fds(
    sock: &OwnedFd,
    what: &str,
    len: usize,
) -> Result<(Vec<u8>, Vec<OwnedFd>)> {
    let mut buf = vec![0u8; len];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 200]);
    let mut recv = || {
        socket::recvmsg::<()>(
            sock.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .map(|m| (m.bytes, m.cmsgs().map(|c| c.collect::<Vec<_>>())))
    };
    // A peer that exits with messages of ours unread resets the connection: the kernel reports
    // that once, then what the peer sent before it went (its error) is still there to read.
    let (n, cmsgs) = match recv() {
        Err(nix::Error::ECONNRESET) => recv(),
        r => r,
    }
    .ctx(|| what.to_string())?;
    let mut fds = vec![];
    for c in cmsgs.ctx(|| "control message")? {
        if let ControlMessageOwned::ScmRights(v) = c {
            // SAFETY: SCM_RIGHTS gave us these new descriptors; nothing else owns them.
            fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
        }
    }
    buf.truncate(n);
    Ok((buf, fds))
}

/// The next message from the child, with the descriptor it carried, if any (empty: EOF).
pub(super) fn recv_msg(sock: &OwnedFd, what: &str) -> Result<(Vec<u8>, Option<OwnedFd>)> {
    let (buf, fds) = recv_with_fds(sock, what, 8192)?;
    Ok((buf, fds.into_iter().next()))
}

/// The first error message the child left on the socket, if any.
pub(super) fn child_error(sock: &OwnedFd) -> Option<Error> {
    let mut buf = vec![0u8; 8192];
    loop {
        let n = socket::recv(sock.as_raw_fd(), &mut buf, MsgFlags::MSG_DONTWAIT).ok()?;
        if n == 0 {
            return None;
        }
        if buf[0] == b'E' {
            return Some(Error::Child(
                String::from_utf8_lossy(&buf[1..n]).into_owned(),
            ));
        }
    }
}

/// A tagged message with one descriptor (child → runtime).
pub(super) fn send_fd(sock: &OwnedFd, tag: &[u8], fd: &OwnedFd) -> Result<()> {
    crate::sys::send_with_fd(sock, tag, fd).ctx(|| "pass a descriptor to the runtime")
}

/// "F": the filter (flags, notify, program), or nothing.
pub(super) fn send_filter(sock: &OwnedFd, f: Option<&stockade_seccomp::Filter>) -> Result<()> {
    let mut msg = vec![b'F'];
    if let Some(f) = f {
        // the child needs no warnings: keep the message within one datagram's reach
        let program = stockade_seccomp::Filter {
            unknown: vec![],
            ..f.clone()
        };
        msg.extend(program.to_bytes());
    }
    socket::send(sock.as_raw_fd(), &msg, MsgFlags::empty()).ctx(|| "send seccomp filter")?;
    Ok(())
}

/// `tag` with the container's v1 `tasks` files (runtime side; see `Cgroup::v1_tasks_files`).
pub(super) fn send_cgroup_files(sock: &OwnedFd, tag: u8, files: Vec<OwnedFd>) -> Result<()> {
    let raw: Vec<RawFd> = files.iter().map(|f| f.as_raw_fd()).collect();
    socket::sendmsg::<()>(
        sock.as_raw_fd(),
        &[IoSlice::new(&[tag])],
        &[ControlMessage::ScmRights(&raw)],
        MsgFlags::empty(),
        None,
    )
    .ctx(|| "pass the cgroup files")?;
    Ok(())
}

/// Wait for `tag` and the v1 `tasks` files that come with it, and write ourselves into each
/// (child side): a thread moving itself is cheap where a pid written by another is not. The
/// unified cgroup we were born in (CLONE_INTO_CGROUP).
pub(super) fn join_cgroup_files(sock: &OwnedFd, tag: u8) -> Result<()> {
    let (buf, tasks) = recv_with_fds(sock, "wait for cgroup", 8)?;
    if buf.first() != Some(&tag) {
        return Err(Error::Other("runtime went away during setup".into()));
    }
    for f in tasks {
        std::io::Write::write_all(&mut std::fs::File::from(f), b"0")
            .ctx(|| "join the container's v1 cgroup")?;
    }
    Ok(())
}

/// Wait for "F" (child side); returns the filter, if any.
pub(super) fn recv_filter(sock: &OwnedFd) -> Result<Option<stockade_seccomp::Filter>> {
    let mut buf = vec![0u8; 8 * stockade_seccomp::compile::MAX_INSNS + 64];
    let n = socket::recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())
        .ctx(|| "wait for seccomp filter")?;
    if n == 0 || buf[0] != b'F' {
        return Err(Error::Other("runtime went away during setup".into()));
    }
    if n == 1 {
        return Ok(None);
    }
    stockade_seccomp::Filter::from_bytes(&buf[1..n])
        .map(Some)
        .ok_or_else(|| Error::Other("malformed seccomp filter from the runtime".into()))
}

/// The runtime's "go": the trees it prepared, and our pid as the host sees it.
pub(super) fn recv_go(sock: &OwnedFd) -> Result<(rootfs::Prepared, i32)> {
    // SEQPACKET: a peek with MSG_TRUNC tells the whole message's length.
    let n = socket::recv(
        sock.as_raw_fd(),
        &mut [],
        MsgFlags::MSG_PEEK | MsgFlags::MSG_TRUNC,
    )
    .ctx(|| "wait for go")?;
    let mut buf = vec![0u8; n];
    let n = socket::recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty()).ctx(|| "wait for go")?;
    if n == 0 {
        return Err(Error::Other("runtime went away before setup".into()));
    }
    let (trees, pid) = decode_go(&buf[..n])?;
    let mut fds = Vec::with_capacity(trees.len());
    while fds.len() < trees.len() {
        let (_, more) = recv_with_fds(sock, "receive mount trees", 1)?;
        fds.extend(more);
    }
    Ok((rootfs::Prepared::from_wire(trees, fds)?, pid))
}

/// The "go" message as it crossed the channel: what each tree to come is, and the child's host
/// pid. Public for the fuzz target: a malformed message is an error, never a panic.
pub fn decode_go(buf: &[u8]) -> Result<(Vec<rootfs::Tree>, i32)> {
    let Some((b'G', body)) = buf.split_first() else {
        return Err(Error::Other("runtime went away before setup".into()));
    };
    let go: Go = serde_json::from_slice(body)
        .map_err(|e| Error::Other(format!("malformed go from the runtime: {e}")))?;
    Ok((go.trees, go.pid))
}
