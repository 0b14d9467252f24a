//! A container's terminal relayed to the caller's, as runc does for `run` of a `terminal: true`
//! config without `--console-socket`, and as `sandbox` does on a terminal: the container gets a
//! pty of its own (made in its devpts: the caller's terminal never enters it, so TIOCSTI and
//! TIOCLINUX reach only the container's own pty), and the runtime copies bytes both ways with
//! the caller's terminal in raw mode (restored when the guard drops), and follows its window
//! size. Written by hand: a relay of two descriptors is a few lines; a crate would bring an
//! async runtime.

use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::sys::termios::{self, SetArg, Termios};

/// The caller's terminal settings, put back on drop.
pub struct RawMode {
    fd: RawFd,
    saved: Termios,
}

impl RawMode {
    /// Put the terminal on `fd` (the caller's stdin) in raw mode; None when it is no terminal.
    pub fn enter(fd: RawFd) -> Option<RawMode> {
        // SAFETY: fd (0) stays open for the life of the process.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        let saved = termios::tcgetattr(b).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(b, SetArg::TCSANOW, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: as in `enter`.
        let b = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(b, SetArg::TCSANOW, &self.saved);
    }
}

/// The window size of the terminal on `fd`, if it is one.
fn winsize(fd: RawFd) -> Option<libc::winsize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes a winsize to the pointer, valid for the call.
    (unsafe { libc::ioctl(fd, libc::TIOCGWINSZ, &mut ws) } == 0).then_some(ws)
}

/// The window size of the terminal on `from`, copied to `to` (the pty master); the kernel then
/// sends SIGWINCH to the pty's foreground process group.
pub fn copy_winsize(from: RawFd, to: &impl AsRawFd) {
    if let Some(ws) = winsize(from) {
        // SAFETY: TIOCSWINSZ reads a winsize from the pointer, valid for the call.
        unsafe { libc::ioctl(to.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    }
}

/// The caller's terminal size as (rows, columns), if stdin is one.
pub fn size_of(fd: RawFd) -> Option<(u16, u16)> {
    winsize(fd)
        .filter(|ws| ws.ws_row > 0)
        .map(|ws| (ws.ws_row, ws.ws_col))
}

/// Copy stdin to the master and the master to stdout, each on a thread of its own. The output
/// side ends when the container's last process closes the pty (EIO): join the handle returned
/// to have the container's output written out before exiting.
pub fn relay(master: OwnedFd) -> std::io::Result<std::thread::JoinHandle<()>> {
    let input = master.try_clone()?;
    std::thread::Builder::new()
        .name("tty-in".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            let mut to = std::fs::File::from(input);
            let stdin = std::io::stdin();
            let mut from = stdin.lock();
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        })?;
    std::thread::Builder::new()
        .name("tty-out".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            let mut from = std::fs::File::from(master);
            let stdout = std::io::stdout();
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let mut out = stdout.lock();
                        if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                            break;
                        }
                    }
                }
            }
        })
}

/// Whether the caller's stdin is a terminal (the sandbox then gives its command a pty).
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().as_fd().is_terminal()
}
