//! `stockade sandbox`'s flags as a user of bubblewrap or podman expects them: an error names the
//! flag and the value typed (never a field of the OCI spec they became), an OS error is printed
//! once, the environment is podman's (clean, `--env NAME`, `--env-file`, `--env-host`), relative
//! bind sources are the caller's, a command given without `--` is told where to go, and an
//! unprivileged caller gets an error rather than a limit silently not enforced.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The user the unprivileged tests run as.
const USER: u32 = 1000;

/// The lines of stderr that are stockade's errors.
fn errors(o: &Output) -> Vec<String> {
    stderr(o)
        .lines()
        .filter(|l| l.starts_with("stockade: error: "))
        .map(str::to_string)
        .collect()
}

/// The binary and a state root where user `USER` can reach them (a copy: the build's target
/// directory may be under a home the user cannot enter).
struct Unprivileged {
    dir: tempfile::TempDir,
    exe: PathBuf,
    root: PathBuf,
}

impl Unprivileged {
    fn new() -> Unprivileged {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let exe = dir.path().join("stockade");
        std::fs::copy(bin(), &exe).unwrap();
        let root = dir.path().join("state");
        std::fs::create_dir(&root).unwrap();
        std::os::unix::fs::chown(&root, Some(USER), Some(USER)).unwrap();
        Unprivileged { dir, exe, root }
    }

    /// `setpriv ... stockade --root ROOT ARGS` as `USER`, in the temporary directory.
    fn command(&self, args: &[&str]) -> Command {
        self.command_at(&self.root, args)
    }

    /// The same with another state root.
    fn command_at(&self, root: &Path, args: &[&str]) -> Command {
        let mut c = timeout();
        c.arg("setpriv")
            .args([
                &format!("--reuid={USER}"),
                &format!("--regid={USER}"),
                "--clear-groups",
            ])
            .arg(&self.exe)
            .arg("--root")
            .arg(root)
            .args(args)
            .current_dir(self.dir.path());
        c
    }

    fn sandbox(&self, flags: &[&str], cmd: &[&str]) -> Output {
        let mut args = vec!["sandbox"];
        args.extend(flags);
        args.push("--");
        args.extend(cmd);
        let out = self.command(&args).output().expect("setpriv (util-linux)");
        let left: Vec<_> = std::fs::read_dir(&self.root)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n != ".seccomp")
            .collect();
        assert!(left.is_empty(), "state left: {left:?}");
        out
    }
}

// 1. errors name the flag and the value typed

#[test]
fn every_flag_error_names_the_flag_and_the_value() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::create_dir(cwd.path().join("proj")).unwrap();
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().to_str().unwrap();
    let learned_dir = format!("--learned {empty}: no capabilities.json");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--bind", "proj:rel"],
            "--bind proj:rel: destination rel is not absolute",
        ),
        (
            vec!["--bind", "nothing-here"],
            "--bind nothing-here: source nothing-here does not exist (looked for /",
        ),
        (
            vec!["--ro-bind", "/nothing-here:/x"],
            "--ro-bind /nothing-here:/x: source /nothing-here does not exist",
        ),
        (
            vec!["--bind", ":/x"],
            "--bind :/x: empty source",
        ),
        (
            vec!["--ro-bind", "/etc:/a/../b"],
            "--ro-bind /etc:/a/../b: destination /a/../b has a '..' component",
        ),
        (
            vec!["--tmpfs", "cache"],
            "--tmpfs cache: destination cache is not absolute",
        ),
        (
            vec!["--tmpfs", "/cache:12q"],
            "--tmpfs /cache:12q: size 12q: unknown unit 'q'",
        ),
        (
            vec!["--tmpfs", "/cache:unlimited"],
            "--tmpfs /cache:unlimited: a tmpfs needs a size",
        ),
        (
            vec!["--cap-add", "BOGUS"],
            "--cap-add BOGUS: unknown capability (see capabilities(7)",
        ),
        (vec!["--cap-add", ""], "--cap-add \"\": unknown capability"),
        (vec!["--env", "=x"], "--env =x: empty variable name"),
        (
            vec!["--env", "A B=x"],
            "--env \"A B=x\": whitespace in the variable name",
        ),
        (
            vec!["--ulimit", "bogus=1"],
            "--ulimit bogus=1: unknown limit",
        ),
        (
            vec!["--ulimit", "nofile=9:3"],
            "--ulimit nofile=9:3: soft limit above hard limit",
        ),
        (
            vec!["--uid", "4294967295"],
            "--uid 4294967295: -1 (4294967295) is not an id",
        ),
        (
            vec!["--uid", "70000"],
            "--uid 70000: outside the sandbox's id range 0-",
        ),
        (vec!["--gid", "70000"], "--gid 70000: outside"),
        (
            vec!["--hostname", "a/b"],
            "--hostname a/b: use letters, digits, '-' and '.'",
        ),
        (vec!["--hostname", "a..b"], "--hostname a..b: each"),
        (
            vec!["--chdir", "work"],
            "--chdir work: directory work is not absolute",
        ),
        (
            vec!["--chdir", "/nothing-here"],
            "--chdir /nothing-here: no such directory in the sandbox",
        ),
        (
            vec!["--seccomp", "/nothing-here.json"],
            "--seccomp /nothing-here.json: not default, docker or unconfined, nor a profile file: No such file or directory (os error 2)",
        ),
        (
            vec!["--seccomp", "/etc"],
            "--seccomp /etc: is a directory",
        ),
        (
            vec!["--learned", "/nothing-here"],
            "--learned /nothing-here: not a directory",
        ),
        (vec!["--learned", empty], &learned_dir),
        (
            vec!["--landlock-ro", "usr"],
            "--landlock-ro usr: path usr is not absolute",
        ),
        (
            vec!["--landlock-scope", "bogus"],
            "--landlock-scope bogus: use abstract, signal or none",
        ),
        (vec!["--memory", "1x"], "--memory 1x: unknown unit 'x'"),
        (vec!["--memory", "1m"], "--memory 1m: below 4 MiB"),
        (vec!["--pids", "many"], "--pids many: not a number"),
        (vec!["--cpus", "0"], "--cpus 0: must be between 0.01 and 4096"),
        (vec!["--net", "wifi"], "--net wifi: expected none, host"),
    ];
    let mut wrong = vec![];
    for (flags, want) in &cases {
        let o = sandbox_in(cwd.path(), flags, &["true"]);
        let errs = errors(&o);
        let first = errs.first().map(String::as_str).unwrap_or("");
        let oci = ["mounts[", "process.", "linux.", "sandbox flags", "at line"];
        if o.status.success()
            || !first.starts_with(&format!("stockade: error: {want}"))
            || oci.iter().any(|f| first.contains(f))
        {
            wrong.push(format!("{flags:?}: {}", stderr(&o).trim()));
        }
    }
    assert!(wrong.is_empty(), "wrong errors:\n{}", wrong.join("\n"));
}

#[test]
fn valid_flags_still_run() {
    let cwd = tempfile::tempdir().unwrap();
    let o = sandbox_in(
        cwd.path(),
        &[
            "--cap-add",
            "net_raw",
            "--cap-add",
            "CAP_NET_BIND_SERVICE",
            "--tmpfs",
            "/cache:1m",
            "--hostname",
            "box-1.example",
            "--chdir",
            "/cache",
            "--ulimit",
            "nofile=64:128",
        ],
        &[
            "sh",
            "-c",
            "grep CapEff /proc/self/status; hostname; pwd; ulimit -n",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    // CAP_NET_BIND_SERVICE (10) and CAP_NET_RAW (13)
    assert!(text.contains("CapEff:\t0000000000002400"), "{text}");
    assert!(text.contains("box-1.example\n/cache\n64\n"), "{text}");
}

// 2. an OS error once

#[test]
fn an_os_error_is_printed_once() {
    // an error of the engine's own (the state root), run as a user who may not make it
    let u = Unprivileged::new();
    let locked = u.dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    let state = locked.join("state");
    let o = u
        .command_at(&state, &["sandbox", "--", "true"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = stderr(&o);
    assert_eq!(
        e.matches("Permission denied (os error 13)").count(),
        1,
        "{e}"
    );
    assert!(
        e.contains(&format!("state root {}", state.display())),
        "{e}"
    );
    // a flag's file
    let o = u.sandbox(&["--env-file", "/etc/shadow"], &["true"]);
    let e = stderr(&o);
    assert_eq!(
        e.matches("Permission denied (os error 13)").count(),
        1,
        "{e}"
    );
    assert!(
        e.contains("stockade: error: --env-file /etc/shadow: Permission denied"),
        "{e}"
    );
    let o = sandbox_in(
        Path::new("/"),
        &["--seccomp", "/nothing-here.json"],
        &["true"],
    );
    let e = stderr(&o);
    assert_eq!(e.matches("(os error 2)").count(), 1, "{e}");
    // a state file of a container that is not there
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("ghost")).unwrap();
    let o = cmd(root.path(), &["state", "ghost"]);
    assert!(!o.status.success());
    for l in errors(&o) {
        let n = l.matches("(os error").count();
        assert!(n <= 1, "{l}");
    }
}

// 3. the environment

#[test]
fn the_environment_is_clean_unless_asked() {
    let cwd = tempfile::tempdir().unwrap();
    let env_file = cwd.path().join("vars");
    std::fs::write(
        &env_file,
        "# a comment\n\n  FROM_FILE=a b \"c\"\nOVERRIDDEN=file\nSBX_CALLER\n   # indented comment\nEMPTY=\n",
    )
    .unwrap();
    let run = |flags: &[&str]| {
        require_root();
        let root = tempfile::tempdir().unwrap();
        let o = timeout()
            .arg(bin())
            .arg("--root")
            .arg(root.path())
            .arg("sandbox")
            .args(flags)
            .args(["--", "env"])
            .current_dir(cwd.path())
            .env("SBX_CALLER", "from-caller")
            .env("SBX_PREFIX_ONE", "1")
            .env("SBX_PREFIX_TWO", "2")
            .env("TERM", "xterm-test")
            .env_remove("SBX_UNSET")
            .output()
            .unwrap();
        assert!(o.status.success(), "{flags:?}: {}", stderr(&o));
        let mut v: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
        v.sort();
        v
    };
    // the default: PATH, HOME and TERM only
    let plain = run(&[]);
    assert_eq!(
        plain,
        [
            "HOME=/root",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm-test"
        ],
        "{plain:?}"
    );
    // --env NAME: the caller's value; unset in the caller: not set; NAME*: a prefix
    let named = run(&[
        "--env",
        "SBX_CALLER",
        "--env",
        "SBX_UNSET",
        "--env",
        "SBX_PREFIX_*",
        "--env",
        "SET=x=y",
    ]);
    assert!(
        named.contains(&"SBX_CALLER=from-caller".into()),
        "{named:?}"
    );
    assert!(named.contains(&"SBX_PREFIX_ONE=1".into()), "{named:?}");
    assert!(named.contains(&"SBX_PREFIX_TWO=2".into()), "{named:?}");
    assert!(named.contains(&"SET=x=y".into()), "{named:?}");
    assert!(
        !named.iter().any(|l| l.starts_with("SBX_UNSET")),
        "{named:?}"
    );
    // --env-file, then --env over it; --unsetenv last
    let filed = run(&[
        "--env-file",
        "vars",
        "--env",
        "OVERRIDDEN=flag",
        "--unsetenv",
        "TERM",
    ]);
    for want in [
        "FROM_FILE=a b \"c\"",
        "OVERRIDDEN=flag",
        "SBX_CALLER=from-caller",
        "EMPTY=",
    ] {
        assert!(filed.contains(&want.into()), "{want}: {filed:?}");
    }
    assert!(!filed.iter().any(|l| l.starts_with("TERM=")), "{filed:?}");
    // --env-host (podman's name; --keep-env the same): the caller's whole environment
    for flag in ["--env-host", "--keep-env"] {
        let host = run(&[flag, "--env", "SBX_CALLER=overridden"]);
        assert!(host.contains(&"SBX_PREFIX_ONE=1".into()), "{host:?}");
        assert!(host.contains(&"SBX_CALLER=overridden".into()), "{host:?}");
    }
}

#[test]
fn env_file_errors_name_the_file_and_line() {
    let cwd = tempfile::tempdir().unwrap();
    std::fs::write(cwd.path().join("bad"), "# ok\nA=1\n=no-name\n").unwrap();
    let o = sandbox_in(cwd.path(), &["--env-file", "bad"], &["true"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("stockade: error: --env-file bad:3: empty variable name: =no-name"),
        "{}",
        stderr(&o)
    );
    let o = sandbox_in(cwd.path(), &["--env-file", "missing"], &["true"]);
    assert!(
        stderr(&o).contains(
            "stockade: error: --env-file missing: No such file or directory (os error 2)"
        ),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_says_what_the_environment_is() {
    let o = Command::new(bin())
        .args(["sandbox", "--help"])
        .output()
        .unwrap();
    let help = stdout(&o);
    for want in [
        "--env <NAME[=VALUE]>",
        "--env-file <FILE>",
        "--env-host",
        "keep-env",
        "--unsetenv <NAME>",
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin,",
        "HOME=/root",
        "the caller's TERM",
        "podman",
        "bwrap",
    ] {
        assert!(help.contains(want), "{want}:\n{help}");
    }
}

// 4. relative binds, and a command without `--`

#[test]
fn relative_bind_sources_are_the_callers() {
    let cwd = tempfile::tempdir().unwrap();
    let proj = cwd.path().join("proj");
    std::fs::create_dir(&proj).unwrap();
    std::fs::write(proj.join("file"), "inside\n").unwrap();
    // DST defaults to the source's absolute path
    let abs = proj.join("file");
    let o = sandbox_in(
        cwd.path(),
        &["--bind", "proj", "--ro-bind", "./proj/:/p"],
        &[
            "sh",
            "-c",
            &format!(
                "cat {} /p/file && touch {}/new",
                abs.display(),
                proj.display()
            ),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "inside\ninside\n");
    assert!(proj.join("new").exists(), "--bind proj is not read-write");
}

#[test]
fn a_command_without_the_separator_is_told_where_to_go() {
    require_root();
    for (args, want) in [
        (vec!["ls"], "-- ls"),
        (vec!["--bind", "/tmp", "ls", "-la", "/"], "-- ls -la /"),
        (vec!["sh", "-c", "echo hi"], "-- sh -c 'echo hi'"),
    ] {
        let o = Command::new(bin())
            .args(["--root", "/nonexistent", "sandbox"])
            .args(&args)
            .output()
            .unwrap();
        assert!(!o.status.success(), "{args:?}");
        assert_eq!(
            stderr(&o).trim(),
            format!(
                "stockade: error: sandbox: put the command after --: stockade sandbox [OPTIONS] {want}"
            ),
            "{args:?}"
        );
    }
}

// 5. unprivileged

#[test]
fn unprivileged_limits_given_are_an_error_and_defaults_a_note() {
    let u = Unprivileged::new();
    for (flag, value) in [("--memory", "64m"), ("--pids", "100"), ("--cpus", "0.5")] {
        let o = u.sandbox(&[flag, value], &["true"]);
        assert!(!o.status.success(), "{flag} {value}");
        assert_eq!(
            errors(&o),
            [format!(
                "stockade: error: {flag} {value}: cannot be enforced without root (no cgroup delegation); pass {flag} unlimited to run without it"
            )]
        );
    }
    let o = u.sandbox(&["--memory", "unlimited", "--pids", "unlimited"], &["true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // not given: the defaults, not enforced, said once
    let o = u.sandbox(&[], &["true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("without cgroup limits").count(),
        1,
        "{}",
        stderr(&o)
    );
    // as root the same flags are limits
    let o = sandbox(
        &["--memory", "64m", "--pids", "100", "--cpus", "0.5"],
        &["cat", "/sys/fs/cgroup/pids/pids.max"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "100");
}

/// Unprivileged, `--uid`/`--gid` alone: each maps the caller to that id, the other stays 0.
#[test]
fn unprivileged_uid_or_gid_alone_maps_the_caller() {
    let u = Unprivileged::new();
    let o = u.sandbox(&["--uid", "1000"], &["sh", "-c", "id -u; id -g"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1000\n0\n");
    let o = u.sandbox(&["--gid", "1000"], &["sh", "-c", "id -u; id -g"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "0\n1000\n");
    let o = u.sandbox(&["--uid", "0"], &["id", "-u"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "0");
}

/// What bwrap --uid does: the caller mapped to N, the command runs as N.
#[test]
fn unprivileged_uid_maps_the_caller_to_it() {
    let u = Unprivileged::new();
    let o = u.sandbox(
        &["--uid", "1000", "--gid", "1000"],
        &["sh", "-c", "id -u; id -g; cat /proc/self/uid_map"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[..2], ["1000", "1000"], "{text}");
    assert_eq!(
        lines[2].split_whitespace().collect::<Vec<_>>(),
        ["1000", "1000", "1"],
        "{text}"
    );
}

/// The interfaces `ip -o link` lists up, loopback aside.
fn up_besides_lo(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| l.contains(",UP") || l.contains("<UP"))
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .filter(|n| n != "lo")
        .collect()
}

const SHOW_NET: &str = "ip -o link; ip -o addr";

/// An interface besides loopback with an address, from `ip -o link; ip -o addr`.
fn assert_networked(o: &Output) {
    let text = stdout(o);
    assert!(o.status.success(), "{text}{}", stderr(o));
    let up = up_besides_lo(&text);
    assert!(!up.is_empty(), "no interface up besides lo: {text}");
    assert!(
        up.iter().any(|n| text
            .lines()
            .any(|l| l.contains(&format!(" {n} ")) && l.contains(" inet"))),
        "no address on {up:?}: {text}"
    );
}

#[test]
fn pasta_as_root() {
    let o = sandbox(&["--net", "pasta"], &["sh", "-c", SHOW_NET]);
    assert_networked(&o);
}

#[test]
fn pasta_unprivileged_works_or_names_what_is_missing() {
    let u = Unprivileged::new();
    // this host's /dev/net/tun as it is: usable, or the error says what is missing
    let o = u.sandbox(&["--net", "pasta"], &["sh", "-c", SHOW_NET]);
    let tun = nix::unistd::access(
        "/dev/net/tun",
        nix::unistd::AccessFlags::R_OK | nix::unistd::AccessFlags::W_OK,
    );
    let world = std::fs::metadata("/dev/net/tun")
        .map(|m| m.permissions().mode() & 0o006 == 0o006)
        .unwrap_or(false);
    if world && tun.is_ok() {
        assert_networked(&o);
    } else {
        assert!(!o.status.success());
        let errs = errors(&o);
        assert_eq!(errs.len(), 1, "{}", stderr(&o));
        assert!(
            errs[0].starts_with("stockade: error: --net pasta: /dev/net/tun is mode 0600")
                && errs[0].contains(&format!("uid {USER} may not open it"))
                && errs[0].contains("chmod 0666 /dev/net/tun"),
            "{}",
            stderr(&o)
        );
    }
    // with a /dev/net/tun the user may open (udev's 0666), in a mount namespace of this test's
    let node = u.dir.path().join("tun");
    let script = format!(
        "set -e; mknod -m 666 {node} c 10 200; mount --bind {node} /dev/net/tun; \
         exec setpriv --reuid={USER} --regid={USER} --clear-groups {exe} --root {root} \
         sandbox --net pasta -- sh -c '{SHOW_NET}'",
        node = node.display(),
        exe = u.exe.display(),
        root = u.root.display(),
    );
    let o = timeout()
        .args(["unshare", "--mount", "--propagation", "private", "sh", "-c"])
        .arg(&script)
        .output()
        .unwrap();
    assert_networked(&o);
}

// 6. learn: progress, the workload's output, no empty --out left

/// One learn at a time (each loads the recorder's eBPF programs).
static LEARN: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// A workload that needs one capability (CAP_CHOWN: one trial) and writes to both streams.
const CHOWN: &str = "touch /tmp/f && chown 1:1 /tmp/f && echo out-visible && echo err-visible >&2";

fn learn(out: &Path, flags: &[&str], workload: &[&str]) -> Output {
    require_root();
    let _one = LEARN.lock().unwrap_or_else(|e| e.into_inner());
    let root = tempfile::tempdir().unwrap();
    timeout()
        .arg(bin())
        .arg("--root")
        .arg(root.path())
        .arg("learn")
        .arg("--out")
        .arg(out)
        .args(["--timeout", "60"])
        .args(flags)
        .arg("--")
        .args(workload)
        .output()
        .unwrap()
}

#[test]
fn learn_passes_the_workloads_output_through_and_is_quiet_on_a_pipe() {
    let out = tempfile::tempdir().unwrap();
    let o = learn(out.path(), &[], &["sh", "-c", CHOWN]);
    assert!(o.status.success(), "{}", stderr(&o));
    // the recording and the verification pass (the trial without CAP_CHOWN stops at chown)
    assert_eq!(
        stdout(&o).matches("out-visible\n").count(),
        2,
        "{}",
        stdout(&o)
    );
    let e = stderr(&o);
    assert_eq!(e.matches("err-visible\n").count(), 2, "{e}");
    assert!(
        e.contains("Operation not permitted"),
        "the failed trial's output: {e}"
    );
    assert!(!e.contains("stockade: learn:"), "progress on a pipe: {e}");
    assert!(stdout(&o).contains("VERIFIED"), "{}", stdout(&o));
}

#[test]
fn learn_progress_with_the_flag_and_on_a_terminal() {
    let out = tempfile::tempdir().unwrap();
    let o = learn(out.path(), &["--progress"], &["sh", "-c", CHOWN]);
    assert!(o.status.success(), "{}", stderr(&o));
    let stages: Vec<String> = stderr(&o)
        .lines()
        .filter(|l| l.starts_with("stockade: learn: "))
        .map(str::to_string)
        .collect();
    assert_eq!(
        stages,
        [
            "stockade: learn: recording the workload's system calls and capability checks",
            "stockade: learn: capability trial 1 of at most 1: without CAP_CHOWN",
            "stockade: learn: verification round 1 of at most 3: the scenario under the learned profile",
        ],
        "{}",
        stderr(&o)
    );
    // on a terminal without the flag (script(1) gives it one)
    let _one = LEARN.lock().unwrap_or_else(|e| e.into_inner());
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let line = format!(
        "{} --root {} learn --out {} -- sh -c 'echo on-a-tty'",
        bin(),
        root.path().display(),
        out.path().display()
    );
    let o = timeout()
        .args(["script", "-qec", &line, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = stdout(&o);
    assert!(o.status.success(), "{text}{}", stderr(&o));
    assert!(
        text.contains("stockade: learn: recording")
            && text.contains("stockade: learn: verification round 1")
            && text.contains("on-a-tty"),
        "{text}"
    );
}

#[test]
fn a_failed_learn_leaves_no_out_directory_it_made() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("new/profile");
    let o = learn(&out, &[], &["sh", "-c", "echo broken; exit 3"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("fails even before any profile"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("broken"), "{}", stdout(&o));
    assert!(!dir.path().join("new").exists(), "left: {}", out.display());
    // one that was there stays
    let o = learn(dir.path(), &[], &["false"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(dir.path().exists());
}
