//! Running the scenario once: a bundle under the state root, `stockade run` of it, and for a
//! server the `--ready` wait and the `--test` command inside its network namespace.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::error::{Error, Result};

/// One run's result.
pub(super) struct Outcome {
    pub(super) ok: bool,
    pub(super) output: String,
}

/// Runs the scenario: each run a `stockade run` of a bundle under the state root.
pub(super) struct Runner<'a> {
    pub(super) root: &'a Path,
    pub(super) exe: &'a Path,
    pub(super) test: Option<&'a str>,
    pub(super) ready_port: Option<u16>,
    pub(super) ready_timeout: Duration,
    pub(super) timeout: Duration,
    pub(super) runs: std::cell::Cell<u32>,
    pub(super) started: Instant,
}

/// Where a run's output goes besides the copy kept: the user's stdout or stderr.
#[derive(Clone, Copy)]
enum Sink {
    Out,
    Err,
}

/// Whole lines of a run's stderr to ours, the runtime's own messages only the first time.
fn pass_stderr(lines: &[u8]) {
    use std::collections::BTreeSet;
    static SHOWN: Mutex<BTreeSet<Vec<u8>>> = Mutex::new(BTreeSet::new());
    let mut err = std::io::stderr().lock();
    for line in lines.split_inclusive(|b| *b == b'\n') {
        if line.starts_with(b"stockade: ")
            && !SHOWN
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(line.to_vec())
        {
            continue;
        }
        let _ = err.write_all(line);
    }
}

/// A run's output as it comes: each stream passed through to ours (the workload's output is
/// the user's in every stage, as in a plain run), and one copy of both kept for the report and
/// the errors (a failing run's output is the evidence).
struct Tee {
    kept: Arc<Mutex<Vec<u8>>>,
    done: mpsc::Receiver<()>,
    streams: usize,
}

impl Tee {
    fn new() -> (Tee, mpsc::Sender<()>) {
        let (tx, done) = mpsc::channel();
        let tee = Tee {
            kept: Arc::default(),
            done,
            streams: 0,
        };
        (tee, tx)
    }

    /// Copy `from` to `to` in a thread of its own until it ends.
    fn copy(&mut self, mut from: impl Read + Send + 'static, to: Sink, done: &mpsc::Sender<()>) {
        self.streams += 1;
        let kept = Arc::clone(&self.kept);
        let done = done.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            // stderr by whole lines: the runtime's own (`stockade: warning: ...`), the same in
            // every run, are passed through once
            let mut partial: Vec<u8> = vec![];
            loop {
                let n = match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                };
                kept.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(&buf[..n]);
                // a closed stdout of ours (`| head`) must not stop the copy that is kept
                match to {
                    Sink::Out => {
                        let mut o = std::io::stdout().lock();
                        let _ = o.write_all(&buf[..n]).and_then(|_| o.flush());
                    }
                    Sink::Err => {
                        partial.extend_from_slice(&buf[..n]);
                        let end = partial
                            .iter()
                            .rposition(|b| *b == b'\n')
                            .map_or(0, |i| i + 1);
                        let lines: Vec<u8> = partial.drain(..end).collect();
                        pass_stderr(&lines);
                    }
                }
            }
            pass_stderr(&partial);
            let _ = done.send(());
        });
    }

    /// What was kept so far.
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.kept.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }

    /// Everything, once the streams ended (a process that left the run holding one open is
    /// not waited for beyond `grace`).
    fn finish(&mut self, grace: Duration) -> String {
        let until = Instant::now() + grace;
        while self.streams > 0 {
            let left = until.saturating_duration_since(Instant::now());
            if self.done.recv_timeout(left).is_err() {
                break;
            }
            self.streams -= 1;
        }
        self.text()
    }
}

pub(super) fn tail(s: &str, lines: usize) -> String {
    let v: Vec<&str> = s.lines().collect();
    v[v.len().saturating_sub(lines)..].join("\n")
}

/// Wait for `child` until `until`: the exit is noticed at once (a pidfd polled), not at the
/// next tick of a sleep loop.
fn wait_deadline(
    child: &mut std::process::Child,
    until: Instant,
) -> Option<std::process::ExitStatus> {
    let pidfd = crate::sys::pidfd_open(child.id() as i32).ok();
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        match &pidfd {
            Some(fd) => {
                use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
                use std::os::fd::AsFd;
                let ms = u16::try_from(left.as_millis().max(1)).unwrap_or(u16::MAX);
                let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
                let _ = poll(&mut fds, PollTimeout::from(ms));
            }
            None => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// `learn` told to stop (Ctrl-C, a closed terminal, a timeout's SIGTERM): its containers
/// (`learn-PID-N` under `root`) removed with `delete --force`, their bundles too, then exit
/// 128+N as a shell reports the signal. Call before any thread exists: the signals are blocked
/// in the calling thread (and so in every thread made after it) and taken by one of their own.
pub(super) fn stop_on_signals(root: &Path, exe: &Path) {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(s);
    }
    if set.thread_block().is_err() {
        return;
    }
    let (root, exe) = (root.to_path_buf(), exe.to_path_buf());
    std::thread::spawn(move || {
        let Ok(sig) = set.wait() else { return };
        let prefix = format!("learn-{}-", std::process::id());
        for e in std::fs::read_dir(&root).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&prefix) {
                let _ = Command::new(&exe)
                    .arg("--root")
                    .arg(&root)
                    .args(["delete", "--force", &name])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            } else if name
                .strip_prefix('.')
                .is_some_and(|n| n.starts_with(&prefix))
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        std::process::exit(128 + sig as i32);
    });
}

impl Runner<'_> {
    fn stockade(&self, args: &[&str]) -> Command {
        use std::os::unix::process::CommandExt;
        let mut c = Command::new(self.exe);
        // learn gone without its signal thread's cleanup (SIGKILL): its runtime goes too
        // SAFETY: prctl is async-signal-safe and touches nothing of the parent's.
        unsafe {
            c.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                    .map_err(std::io::Error::from)
            });
        }
        // The scenario's spec is stockade's own (the sandbox's flags, hardened) and learn
        // applies its own capability ceiling (--caps-ceiling): the engines' policy, whose
        // ceiling would drop what is being learned, is not the learner's.
        c.arg("--root")
            .arg(self.root)
            .args(["--policy", "none"])
            .args(args);
        c
    }

    pub(super) fn run(&self, spec: &Value) -> Result<Outcome> {
        self.run_recorded(spec, None, None)
    }

    /// A run whose runtime names the container's cgroup to the recorder with state map `recorder`.
    /// `on_ready` is called once `--ready` holds, before the test runs.
    pub(super) fn run_recorded(
        &self,
        spec: &Value,
        recorder: Option<u32>,
        on_ready: Option<&dyn Fn()>,
    ) -> Result<Outcome> {
        let n = self.runs.get();
        self.runs.set(n + 1);
        let id = format!("learn-{}-{n}", std::process::id());
        let dir = self.root.join(format!(".{id}"));
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::Other(format!("create {}: {e}", dir.display())))?;
        let r = self.run_in(spec, (&id, &dir), recorder, on_ready);
        // a foreground run that ended removed its container itself; one killed or timed out
        // left its state directory, and everything else is found from it
        if self.root.join(&id).exists() {
            let _ = self
                .stockade(&["delete", "--force", &id])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = std::fs::remove_dir_all(&dir);
        r
    }

    fn run_in(
        &self,
        spec: &Value,
        (id, dir): (&str, &Path),
        recorder: Option<u32>,
        on_ready: Option<&dyn Fn()>,
    ) -> Result<Outcome> {
        let io = |e: std::io::Error| Error::Other(format!("learn: {e}"));
        std::fs::write(dir.join("config.json"), spec.to_string()).map_err(io)?;
        let mut rt = self.stockade(&["run", "--bundle", dir.to_str().unwrap_or_default(), id]);
        if let Some(r) = recorder {
            rt.env(crate::learn::record::TARGET_ENV, r.to_string());
        }
        let mut rt = rt
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(io)?;
        let (mut tee, done) = Tee::new();
        tee.copy(rt.stdout.take().expect("piped"), Sink::Out, &done);
        tee.copy(rt.stderr.take().expect("piped"), Sink::Err, &done);
        let deadline = Instant::now() + self.timeout;
        let Some(test) = self.test else {
            let Some(status) = wait_deadline(&mut rt, deadline) else {
                let _ = rt.kill();
                let _ = rt.wait();
                tee.finish(Duration::from_secs(2));
                return Err(Error::Other(format!(
                    "learn: the workload did not finish within {} s (--timeout)",
                    self.timeout.as_secs()
                )));
            };
            return Ok(Outcome {
                ok: status.success(),
                output: tee.finish(Duration::from_secs(2)),
            });
        };
        // a server: wait for its process, its port, then run the test in its network namespace
        let result = (|| -> Result<Outcome> {
            let ready_by = Instant::now() + self.ready_timeout;
            let pid = loop {
                // its committed state (a workload that dies meanwhile is caught just below)
                let st = crate::state::StateDir::open(self.root, id).and_then(|d| d.load());
                if let Some(st) = st.ok().filter(|st| st.status == "running" && st.pid > 0) {
                    break st.pid;
                }
                if let Ok(Some(s)) = rt.try_wait() {
                    return Err(Error::Other(format!(
                        "learn: the workload exited ({s}) before the test could run: {}",
                        tail(&tee.text(), 20)
                    )));
                }
                if Instant::now() >= ready_by {
                    return Err(Error::Other(format!(
                        "learn: the container did not start within {} s (--ready-timeout)",
                        self.ready_timeout.as_secs()
                    )));
                }
                std::thread::sleep(Duration::from_millis(5));
            };
            let netns = std::fs::File::open(format!("/proc/{pid}/ns/net")).map_err(io)?;
            if let Some(port) = self.ready_port {
                let ns = netns.try_clone().map_err(io)?;
                let ok = std::thread::spawn(move || {
                    if nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).is_err() {
                        return false;
                    }
                    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                    while Instant::now() < ready_by {
                        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(100))
                            .is_ok()
                        {
                            return true;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    false
                })
                .join()
                .unwrap_or(false);
                if !ok {
                    return Err(Error::Other(format!(
                        "learn: --ready tcp:{port} did not hold within {} s (--ready-timeout): {}",
                        self.ready_timeout.as_secs(),
                        tail(&tee.text(), 20)
                    )));
                }
            }
            if let Some(f) = on_ready {
                f();
            }
            let fd = netns.as_raw_fd();
            let mut t = Command::new("sh");
            t.arg("-c").arg(test).stdin(Stdio::null());
            t.stdout(Stdio::piped()).stderr(Stdio::piped());
            // SAFETY: setns is async-signal-safe; the closure only calls it on a descriptor
            // that stays open until the child has exec'd.
            unsafe {
                t.pre_exec(move || {
                    if libc::setns(fd, libc::CLONE_NEWNET) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            let mut child = t.spawn().map_err(io)?;
            // the test's output passes through too, and is kept after the workload's
            let (mut test_tee, test_done) = Tee::new();
            test_tee.copy(child.stdout.take().expect("piped"), Sink::Out, &test_done);
            test_tee.copy(child.stderr.take().expect("piped"), Sink::Err, &test_done);
            let status = wait_deadline(&mut child, deadline);
            if status.is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
            let text = test_tee.finish(Duration::from_secs(2));
            Ok(Outcome {
                ok: status.is_some_and(|s| s.success()),
                output: format!("{}{text}", tee.text()),
            })
        })();
        let _ = self
            .stockade(&["kill", id, "KILL"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if wait_deadline(&mut rt, Instant::now() + Duration::from_secs(10)).is_none() {
            let _ = rt.kill();
            let _ = rt.wait();
        }
        tee.finish(Duration::from_secs(2));
        result
    }
}
