//! The sandbox's init (`sandbox --init`, on by default): PID 1 of the sandbox's pid namespace
//! is a small supervisor, not the command. A command as PID 1 has no default signal actions (the
//! kernel drops SIGINT, SIGTERM, SIGHUP, SIGPIPE sent to a namespace's init without a handler),
//! so Ctrl-C, `timeout`, a closed terminal or `stockade kill` would not stop it, and nothing
//! would reap its orphans. As catatonit and tini do, the init
//! - forwards every catchable signal it gets to the command's process group,
//! - reaps every child (orphans re-parented to it included),
//! - exits with the command's status (128+N when a signal N ended it), which ends the rest of the
//!   namespace.
//!
//! It is stockade itself: the container's process forks just before its seccomp filter is
//! loaded. The child goes on to load the workload's filter and `execve`; the parent, already
//! non-dumpable, without capabilities and with no_new_privs, closes what it holds and loads a
//! filter of its own that allows only what the loop below calls (a violation kills it, and with
//! it the namespace: closed, never open).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::error::{Context, Result};

/// Fork the init. Returns in the child (the command's side: its own process group, the signal
/// mask it had) with `Ok(())`; the parent never returns.
pub fn fork_init(sock: &OwnedFd) -> Result<()> {
    let all = SigSet::all();
    let old = all
        .thread_swap_mask(SigmaskHow::SIG_BLOCK)
        .ctx(|| "init: block signals")?;
    // SAFETY: the container's process is single-threaded here (the runtime's child after
    // clone3, no thread started), so the child may run arbitrary code after fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "init: fork the command");
    }
    if pid == 0 {
        // the command: a process group of its own (the init signals the group), its old mask
        nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)).ctx(|| "init: setpgid")?;
        // on a terminal (the sandbox's own pty), the command's group is its foreground one, so
        // a shell there has job control (SIGTTOU is blocked here, so this may be done)
        if nix::unistd::isatty(std::io::stdin()).unwrap_or(false) {
            let _ = nix::unistd::tcsetpgrp(std::io::stdin(), nix::unistd::getpid());
        }
        old.thread_set_mask()
            .ctx(|| "init: restore the signal mask")?;
        return Ok(());
    }
    let command = Pid::from_raw(pid);
    // The init holds nothing of the container's: the runtime's channel (the command's copy
    // closes at execve, which the runtime waits for), stdio.
    // SAFETY: closing descriptors this process owns and never uses again.
    unsafe {
        libc::close(sock.as_raw_fd());
        for fd in 0..3 {
            libc::close(fd);
        }
    }
    if own_filter().is_err() {
        // no filter, no init: end the namespace rather than supervise unconfined
        // SAFETY: _exit is always safe.
        unsafe { libc::_exit(255) }
    }
    supervise(command, &all)
}

/// Forward and reap until the command is gone; exit with its status.
fn supervise(command: Pid, set: &SigSet) -> ! {
    let mut status: Option<i32> = None;
    loop {
        let sig = set.wait();
        match sig {
            Ok(Signal::SIGCHLD) => {}
            Ok(s) => {
                // the command's group; if it left its group (a job-control shell), the command
                if nix::sys::signal::killpg(command, s).is_err() {
                    let _ = nix::sys::signal::kill(command, s);
                }
                continue;
            }
            Err(_) => continue,
        }
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(p, c)) if p == command => status = Some(c),
                Ok(WaitStatus::Signaled(p, s, _)) if p == command => status = Some(128 + s as i32),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => {}
            }
        }
        if let Some(code) = status {
            // SAFETY: _exit is always safe; PID 1 leaving ends the namespace's other processes.
            unsafe { libc::_exit(code) }
        }
    }
}

/// A seccomp filter of the init's own: the calls of [`supervise`] and exiting; anything else
/// kills it. Written as BPF by hand (twelve instructions): the profile machinery is for
/// workloads, this is a fixed list.
fn own_filter() -> std::io::Result<()> {
    #[cfg(target_arch = "x86_64")]
    const ARCH: u32 = 0xc000_003e; // AUDIT_ARCH_X86_64
    #[cfg(target_arch = "aarch64")]
    const ARCH: u32 = 0xc000_00b7; // AUDIT_ARCH_AARCH64
    const ALLOW: [libc::c_long; 6] = [
        libc::SYS_rt_sigtimedwait,
        libc::SYS_wait4,
        libc::SYS_kill,
        libc::SYS_exit_group,
        libc::SYS_exit,
        libc::SYS_restart_syscall,
    ];
    const RET_KILL_PROCESS: u32 = 0x8000_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
        jt,
        jf,
        k,
    };
    let ld = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
    let ret = libc::BPF_RET | libc::BPF_K;
    let n = ALLOW.len() as u8;
    let mut prog = vec![
        stmt(ld, 4), // seccomp_data.arch
        jeq(ARCH, 1, 0),
        stmt(ret, RET_KILL_PROCESS),
        stmt(ld, 0), // seccomp_data.nr
    ];
    for (i, nr) in ALLOW.iter().enumerate() {
        // to the ALLOW return after the remaining checks and the KILL return
        prog.push(jeq(*nr as u32, n - i as u8, 0));
    }
    prog.push(stmt(ret, RET_KILL_PROCESS));
    prog.push(stmt(ret, RET_ALLOW));
    let fprog = libc::sock_fprog {
        len: prog.len() as u16,
        filter: prog.as_mut_ptr(),
    };
    // SAFETY: fprog points to prog, alive for the call; the kernel copies the program.
    let r = unsafe {
        libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &fprog as *const libc::sock_fprog,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
