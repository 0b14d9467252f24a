//! `stockade sandbox` as a daily tool: its init forwards signals and reaps, exit codes are the
//! shells' (0, N, 126, 127, 128+N), Ctrl-C and a closed terminal stop the command (driven
//! through a real terminal: tmux), and nothing is left behind.

mod common;
use common::*;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn code(flags: &[&str], cmd: &[&str]) -> (i32, String) {
    let out = sandbox(flags, cmd);
    (out.status.code().unwrap_or(-1), stderr(&out))
}

#[test]
fn exit_codes_are_the_shells() {
    assert_eq!(code(&[], &["true"]).0, 0);
    assert_eq!(code(&[], &["sh", "-c", "exit 3"]).0, 3);
    // a signal N is 128+N: the init forwards and reports it (a PID 1 would ignore TERM/INT)
    assert_eq!(code(&[], &["sh", "-c", "kill -TERM $$"]).0, 143);
    assert_eq!(code(&[], &["sh", "-c", "kill -INT $$"]).0, 130);
    assert_eq!(code(&[], &["sh", "-c", "kill -KILL $$"]).0, 137);
    let (c, e) = code(&[], &["nosuchcommand"]);
    assert_eq!(c, 127, "{e}");
    assert_eq!(
        e,
        "stockade: execvp nosuchcommand: No such file or directory\n"
    );
    let (c, e) = code(&[], &["/etc/passwd"]);
    assert_eq!(c, 126, "{e}");
    assert_eq!(e, "stockade: execvp /etc/passwd: Permission denied\n");
    // without the init the command is PID 1, and the kernel drops its own TERM
    let out = sandbox(
        &["--no-init"],
        &["sh", "-c", "echo $$; kill -TERM $$; echo survived"],
    );
    assert_eq!(stdout(&out), "1\nsurvived\n");
    // with it, the command is PID 2 under a filtered init
    let out = sandbox(
        &[],
        &[
            "sh",
            "-c",
            "echo $$; grep Seccomp: /proc/1/status; cat /proc/1/comm",
        ],
    );
    assert_eq!(stdout(&out), "2\nSeccomp:\t2\nstockade\n");
}

#[test]
fn a_broken_pipe_ends_quietly() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{} --root {} sandbox -- yes | head -2; echo ${{PIPESTATUS:-}}",
            bin(),
            root.path().display()
        ))
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "y\ny\n\n");
    assert_eq!(stderr(&out), "", "nothing about a broken pipe");
}

#[test]
fn timeout_stops_the_sandbox_at_once() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let out = Command::new("timeout")
        .arg("1")
        .arg(bin())
        .arg("--root")
        .arg(root.path())
        .args(["sandbox", "--", "sleep", "30"])
        .output()
        .unwrap();
    let took = t0.elapsed();
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(took < Duration::from_secs(5), "took {took:?}");
    let left: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".seccomp")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn stockade_kill_stops_a_server_in_a_sandbox() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let id = unique("srv");
    let mut child = Command::new(bin())
        .arg("--root")
        .arg(root.path())
        .args([
            "sandbox",
            "--id",
            &id,
            "--",
            "python3",
            "-m",
            "http.server",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    poll_until("the sandbox never started", 10, || {
        let st = stdout(&cmd(root.path(), &["state", &id]));
        st.contains("\"running\"").then_some(())
    });
    let out = cmd(root.path(), &["kill", &id, "TERM"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let status = poll_until("SIGTERM did not stop the server", 10, || {
        child.try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(143));
    assert_nothing_left(&id, root.path());
}

/// A tmux server of the test's own (its own socket), removed on drop.
struct Tmux(String);

impl Tmux {
    fn new() -> Tmux {
        let t = Tmux(unique("tmux"));
        let out = t.run(&["new-session", "-d", "-x", "150", "-y", "40"]);
        assert!(
            out.status.success(),
            "tmux (apt-get install tmux): {}",
            stderr(&out)
        );
        t
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.0, "-f", "/dev/null"])
            .args(args)
            .output()
            .expect("tmux")
    }
    fn keys(&self, keys: &[&str]) {
        let mut a = vec!["send-keys", "-t", "0"];
        a.extend_from_slice(keys);
        assert!(self.run(&a).status.success());
    }
    fn screen(&self) -> String {
        stdout(&self.run(&["capture-pane", "-p", "-t", "0"]))
    }
    fn wait_for(&self, needle: &str) -> String {
        poll_until(&format!("{needle:?} never appeared"), 15, || {
            let s = self.screen();
            s.contains(needle).then_some(s)
        })
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

fn pids_of(pattern: &str) -> Vec<i32> {
    let out = Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .unwrap();
    stdout(&out)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn ctrl_c_in_a_terminal_stops_the_command_and_the_shell_goes_on() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let t = Tmux::new();
    let marker = unique("sleepc");
    t.keys(&[
        &format!(
            "{} --root {} sandbox -- sh -c 'echo R$((6*7))-{marker}; exec sleep 100'; echo rc=$?",
            bin(),
            root.path().display()
        ),
        "Enter",
    ]);
    // the typed line holds R$((6*7)); only the running command prints R42
    t.wait_for(&format!("R42-{marker}"));
    t.keys(&["C-c"]);
    t.wait_for("rc=130");
    // the shell survived: it runs the next command
    t.keys(&["echo still-here", "Enter"]);
    t.wait_for("still-here\n");
}

#[test]
fn closing_the_terminal_ends_the_sandbox() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let t = Tmux::new();
    let marker = unique("hup");
    // a command that ignores SIGHUP too: the grace ends in SIGKILL
    t.keys(&[
        &format!(
            "{} --root {} sandbox -- sh -c 'trap \"\" HUP; echo R$((6*7))-{marker}; while :; do sleep 1; done'",
            bin(),
            root.path().display()
        ),
        "Enter",
    ]);
    t.wait_for(&format!("R42-{marker}"));
    assert!(!pids_of(&marker).is_empty());
    let _ = t.run(&["kill-server"]);
    poll_until("the sandbox outlived its terminal", 10, || {
        pids_of(&marker).is_empty().then_some(())
    });
    poll_until("state left behind", 5, || {
        let left = std::fs::read_dir(root.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != ".seccomp")
            .count();
        (left == 0).then_some(())
    });
}

#[test]
fn an_interactive_shell_gets_a_terminal_with_job_control() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let t = Tmux::new();
    t.keys(&[
        &format!(
            "{} --root {} sandbox -- bash --norc --noprofile -i; echo rc=$?",
            bin(),
            root.path().display()
        ),
        "Enter",
    ]);
    t.wait_for("bash-");
    // a pty of its own (the caller's terminal never enters the sandbox), its size followed
    t.keys(&["PS1='$ '; tty; stty size; echo R$((6*7))", "Enter"]);
    let s = t.wait_for("R42");
    assert!(s.contains("/dev/pts/0"), "{s}");
    assert!(s.contains("40 150"), "{s}");
    let _ = t.run(&["resize-window", "-t", "0", "-x", "120", "-y", "30"]);
    t.keys(&["stty size; echo R$((6*8))", "Enter"]);
    let s = t.wait_for("R48");
    assert!(s.contains("30 120"), "window size not followed: {s}");
    // Ctrl-C interrupts the shell's foreground job, not the shell
    t.keys(&["sleep 100; echo R$((6*9))", "Enter"]);
    std::thread::sleep(Duration::from_millis(500));
    t.keys(&["C-c"]);
    t.keys(&["echo R$((7*9)); exit 5", "Enter"]);
    let s = t.wait_for("rc=5");
    assert!(s.contains("R63") && !s.contains("R54"), "{s}");
    assert!(!s.contains("cannot set terminal process group"), "{s}");
}

#[test]
fn run_of_a_terminal_bundle_in_the_foreground_relays_a_pty() {
    let b = Bundle::new(&["sh", "-c", "tty; echo R$((6*7)); exit 4"], |v| {
        v["process"]["terminal"] = serde_json::json!(true);
    });
    let t = Tmux::new();
    t.keys(&[
        &format!(
            "{} --root {} run --bundle {} tty1; echo rc=$?",
            bin(),
            b.root.path().display(),
            b.path().display()
        ),
        "Enter",
    ]);
    let s = t.wait_for("rc=4");
    assert!(s.contains("R42") && s.contains("/dev/pts/0"), "{s}");
    assert_nothing_left("tty1", b.root.path());
    // detached, a terminal still needs a console socket
    let out = cmd(
        b.root.path(),
        &["create", "--bundle", b.path().to_str().unwrap(), "tty2"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--console-socket"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn exec_joins_a_running_sandbox() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let id = unique("sbexec");
    let mut child = Command::new(bin())
        .arg("--root")
        .arg(root.path())
        .args(["sandbox", "--id", &id, "--", "sleep", "30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    poll_until("the sandbox never started", 10, || {
        let st = stdout(&cmd(root.path(), &["state", &id]));
        st.contains("\"running\"").then_some(())
    });
    // the config it runs with is kept in its state directory: exec reads it
    let out = cmd(
        root.path(),
        &["exec", &id, "sh", "-c", "cat /proc/1/comm; hostname"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "stockade\nsandbox\n");
    assert!(cmd(root.path(), &["kill", &id, "TERM"]).status.success());
    let status = poll_until("SIGTERM did not stop it", 10, || child.try_wait().unwrap());
    assert_eq!(status.code(), Some(143));
    assert_nothing_left(&id, root.path());
}

#[test]
fn the_sandbox_dies_with_its_runtime() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let id = unique("dies");
    let marker = unique("m");
    let mut rt = Command::new(bin())
        .arg("--root")
        .arg(root.path())
        .args(["sandbox", "--id", &id, "--", "sh", "-c"])
        .arg(format!("echo {marker} >/dev/null; sleep 60"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    poll_until("the sandbox never started", 10, || {
        let st = stdout(&cmd(root.path(), &["state", &id]));
        st.contains("\"running\"").then_some(())
    });
    rt.kill().unwrap(); // SIGKILL: no chance to forward anything
    let _ = rt.wait();
    poll_until("the sandbox outlived its runtime", 10, || {
        pids_of(&marker).is_empty().then_some(())
    });
    // what the killed runtime could not remove, `delete --force` does
    assert!(cmd(root.path(), &["delete", "--force", &id])
        .status
        .success());
    assert_nothing_left(&id, root.path());
}
