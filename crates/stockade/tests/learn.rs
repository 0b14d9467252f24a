//! `stockade learn` on real workloads, with the real kernel's tracepoints and filters: the
//! profile is verified, covers every syscall `strace -f` sees, is not much larger than that,
//! denies what the workload never did (with EPERM, in the kernel), and keeps argument rules;
//! capability trials end with exactly what is needed; bad input is a clear error that leaves
//! nothing behind (processes, cgroups, eBPF programs, state).

mod common;
use common::*;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Output};

struct Learned {
    out: tempfile::TempDir,
    root: tempfile::TempDir,
    output: Output,
}

impl Learned {
    fn file(&self, f: &str) -> String {
        std::fs::read_to_string(self.out.path().join(f)).unwrap_or_default()
    }

    fn seccomp(&self) -> serde_json::Value {
        serde_json::from_str(&self.file("seccomp.json")).expect("seccomp.json")
    }

    /// Syscalls the profile allows (some rule) or answers ENOSYS (a libc fallback).
    fn names(&self) -> BTreeSet<String> {
        self.seccomp()["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| r["names"].as_array().unwrap().clone())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    /// Syscalls the learned profile allows, the runtime allowance (runc's own calls, a rule of
    /// its own) aside.
    fn allowed(&self) -> BTreeSet<String> {
        self.seccomp()["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
            .filter(|r| {
                !r["comment"]
                    .as_str()
                    .is_some_and(|c| c.starts_with("runtime allowance"))
            })
            .flat_map(|r| r["names"].as_array().unwrap().clone())
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    }

    fn needed_caps(&self) -> Vec<String> {
        let v: serde_json::Value = serde_json::from_str(&self.file("capabilities.json")).unwrap();
        v["needed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect()
    }

    /// `stockade seccomp explain seccomp.json SYSCALL ARGS...`: the decision of the profile.
    fn explain(&self, call: &[&str]) -> String {
        let f = self.out.path().join("seccomp.json");
        let out = Command::new(bin())
            .args(["seccomp", "explain", f.to_str().unwrap()])
            .args(call)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    }
}

/// Every eBPF program id on the machine.
fn prog_ids() -> BTreeSet<u32> {
    stockade::ebpf::prog_ids().unwrap().into_iter().collect()
}

fn learn_cgroups_left() -> Vec<String> {
    std::fs::read_dir("/sys/fs/cgroup/unified")
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("stockade-learn"))
                .collect()
        })
        .unwrap_or_default()
}

/// One learning run at a time: the checks below count the machine's eBPF programs and learn
/// cgroups, which another test's run would change.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `stockade learn ARGS` with fresh --out and state root; checks nothing is left behind.
fn learn(args: &[&str]) -> Learned {
    require_root();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = prog_ids();
    let out = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let output = timeout()
        .arg(bin())
        .arg("--root")
        .arg(root.path())
        .arg("learn")
        .arg("--out")
        .arg(out.path())
        .args(["--timeout", "60"])
        .args(args)
        .output()
        .unwrap();
    let l = Learned { out, root, output };
    assert_nothing_of_learn_left(l.root.path(), &before);
    l
}

fn assert_nothing_of_learn_left(root: &Path, progs_before: &BTreeSet<u32>) {
    let left: Vec<_> = std::fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".seccomp")
        .collect();
    assert!(left.is_empty(), "state left: {left:?}");
    assert_eq!(
        learn_cgroups_left(),
        Vec::<String>::new(),
        "learn cgroup left"
    );
    // a closed program is freed after an RCU grace period: give it that long
    poll_until("eBPF programs left", 10, || {
        prog_ids().is_subset(progs_before).then_some(())
    });
}

/// The syscall names `strace -f` sees for `cmd` run directly on the host.
fn strace_names(cmd: &[&str]) -> BTreeSet<String> {
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("strace")
        .args(["-f", "-qq", "-o"])
        .arg(log.path())
        .args(cmd)
        .output()
        .expect("strace missing: apt-get install strace (.ci/run does)");
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read_to_string(log.path())
        .unwrap()
        .lines()
        .filter_map(|l| {
            let rest = l.split_once(' ')?.1.trim_start();
            let rest = rest.strip_prefix("<... ").unwrap_or(rest);
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            (!name.is_empty() && !rest.starts_with("+++") && !rest.starts_with("---"))
                .then_some(name)
        })
        .collect()
}

/// (1) verified, (2) covers strace's view, (3) at most 1.1x its size.
fn check_against_strace(l: &Learned, cmd: &[&str]) {
    assert!(
        l.output.status.success(),
        "learn failed: {}{}",
        stdout(&l.output),
        stderr(&l.output)
    );
    assert!(
        l.file("report.txt").contains("VERIFIED"),
        "{}",
        l.file("report.txt")
    );
    assert!(!l.out.path().join("UNVERIFIED").exists());
    let traced = strace_names(cmd);
    let names = l.names();
    let missing: Vec<_> = traced.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "strace saw syscalls the profile lacks: {missing:?}\nprofile: {names:?}"
    );
    // seccomp.json is the workload's own: none of the runtimes' credential and setup calls
    // after their filter (the allowances) unless the workload makes them too (calls whose use
    // depends on timing, futex or rt_sigreturn, may differ between two runs: not these)
    let runtime_only: Vec<&str> = [
        "capget",
        "capset",
        "setgid",
        "setuid",
        "setgroups",
        "setresgid",
        "setresuid",
        "chdir",
        "fchdir",
        "fchown",
        "umask",
        "openat2",
        "faccessat2",
        "getcwd",
    ]
    .into_iter()
    .filter(|c| names.contains(*c) && !traced.contains(*c))
    .collect();
    assert!(
        runtime_only.is_empty(),
        "seccomp.json allows runtime calls the workload never made: {runtime_only:?}"
    );
    // the per-runtime files carry them, as a rule of their own
    let runc: serde_json::Value = serde_json::from_str(&l.file("seccomp-runc.json")).unwrap();
    let rule = runc["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["comment"]
                .as_str()
                .is_some_and(|c| c.contains("runc 1.1.5"))
        })
        .unwrap_or_else(|| panic!("no runc rule: {runc}"));
    assert!(!rule["names"].as_array().unwrap().is_empty());
    assert!(l.out.path().join("seccomp-stockade.json").exists());
    let allowed = l.allowed();
    assert!(
        allowed.len() as f64 <= traced.len() as f64 * 1.1 + 1.0,
        "profile allows {} syscalls, strace saw {}: {:?}",
        allowed.len(),
        traced.len(),
        allowed.difference(&traced).collect::<Vec<_>>()
    );
}

/// (4) what the workload never did is denied.
fn check_denies_the_unused(l: &Learned) {
    for call in ["ptrace", "mount", "keyctl", "bpf", "unshare"] {
        let e = l.explain(&[call]);
        assert!(e.contains("ERRNO(1)"), "{call}: {e}");
    }
}

#[test]
fn learns_a_busybox_pipeline() {
    let cmd = [
        "/bin/busybox",
        "sh",
        "-c",
        "seq 1 500 | sort -rn | head -5 | tr 0-9 a-j | wc -l",
    ];
    let l = learn(&[&["--"][..], &cmd[..]].concat());
    check_against_strace(&l, &cmd);
    check_denies_the_unused(&l);
    // the result runs the workload again, enforced
    let out = sandbox(&["--learned", l.out.path().to_str().unwrap()], &cmd);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "5");
    // and in a bundle: `spec --learned` writes it into config.json, `run` enforces it
    let dir = tempfile::tempdir().unwrap();
    busybox_rootfs(&dir.path().join("rootfs"));
    let o = Command::new(bin())
        .args([
            "spec",
            "--bundle",
            dir.path().to_str().unwrap(),
            "--learned",
        ])
        .arg(l.out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let file = dir.path().join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(v["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(v["linux"]["seccomp"]["syscalls"], l.seccomp()["syscalls"]);
    v["process"]["args"] = serde_json::json!(cmd);
    std::fs::write(&file, v.to_string()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let o = common::cmd(
        root.path(),
        &[
            "run",
            "--bundle",
            dir.path().to_str().unwrap(),
            &unique("learned"),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "5");
}

const PY: &str = r#"
import socket, sqlite3, threading
db = sqlite3.connect("/tmp/t.db")
db.execute("create table t(x)")
db.executemany("insert into t values (?)", [(i,) for i in range(100)])
db.commit()
assert db.execute("select sum(x) from t").fetchone()[0] == 4950
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.bind(("127.0.0.1", 0))
srv.listen(1)
def serve():
    c, _ = srv.accept()
    c.sendall(c.recv(100).upper())
    c.close()
t = threading.Thread(target=serve)
t.start()
cl = socket.create_connection(srv.getsockname())
cl.sendall(b"hello")
assert cl.recv(100) == b"HELLO"
t.join()
print("ok")
"#;

#[test]
fn learns_python_with_threads_sqlite_and_tcp_with_argument_rules() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("w.py");
    std::fs::write(&script, PY).unwrap();
    let s = script.to_str().unwrap();
    let bind = format!("{s}:/w.py");
    let l = learn(&["--ro-bind", &bind, "--", "/usr/bin/python3", "/w.py"]);
    // strace on the host runs the same script where it lies (its /tmp is the host's)
    let host = dir.path().join("host.py");
    std::fs::write(
        &host,
        PY.replace("/tmp/t.db", &dir.path().join("t.db").to_string_lossy()),
    )
    .unwrap();
    check_against_strace(&l, &["/usr/bin/python3", host.to_str().unwrap()]);
    check_denies_the_unused(&l);
    // (5) argument rules: AF_INET stream sockets yes, AF_PACKET and AF_NETLINK no
    assert!(l.explain(&["socket", "2", "1"]).contains("ALLOW"));
    assert!(
        l.explain(&["socket", "2", "524289"]).contains("ALLOW"),
        "SOCK_CLOEXEC is masked off"
    );
    for family in ["17", "16", "40"] {
        let e = l.explain(&["socket", family, "3"]);
        assert!(e.contains("ERRNO(1)"), "family {family}: {e}");
    }
    // no W+X mapping was made: mprotect(PROT_WRITE|PROT_EXEC) is denied, PROT_READ allowed
    assert!(l
        .explain(&["mprotect", "0", "4096", "6"])
        .contains("ERRNO(1)"));
    assert!(l.explain(&["mprotect", "0", "4096", "1"]).contains("ALLOW"));
    let out = sandbox(
        &[
            "--learned",
            l.out.path().to_str().unwrap(),
            "--ro-bind",
            &bind,
        ],
        &["/usr/bin/python3", "/w.py"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "ok");
}

const C_PROGRAM: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(int argc, char **argv) {
    long sum = 0;
    for (int i = 0; i < 1000; i++) sum += i;
    printf("sum %ld\n", sum);
    if (argc > 1 && strcmp(argv[1], "probe") == 0) {
        /* never made while learning: denied by the learned profile, in the kernel */
        errno = 0; long r = syscall(SYS_ptrace, 0, 0, 0, 0);
        printf("ptrace %ld %d\n", r, errno);
        errno = 0; r = syscall(SYS_keyctl, 0, 0, 0, 0);
        printf("keyctl %ld %d\n", r, errno);
        errno = 0; r = syscall(SYS_mount, "none", "/tmp", "tmpfs", 0, 0);
        printf("mount %ld %d\n", r, errno);
        errno = 0; r = socket(AF_PACKET, SOCK_RAW, 0);
        printf("packet %ld %d\n", r, errno);
    }
    return 0;
}
"#;

#[test]
fn learns_gcc_compiling_and_running_and_the_kernel_denies_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.c"), C_PROGRAM).unwrap();
    let src = format!("{}:/src", dir.path().display());
    let script = "gcc -O2 -o /tmp/a /src/a.c && /tmp/a";
    let l = learn(&["--ro-bind", &src, "--", "sh", "-c", script]);
    let host_script = format!(
        "gcc -O2 -o {d}/a {d}/a.c && {d}/a",
        d = dir.path().display()
    );
    check_against_strace(&l, &["sh", "-c", &host_script]);
    check_denies_the_unused(&l);
    // the same binary, probing, under the learned profile: every probe gets EPERM (1)
    let probe = "gcc -O2 -o /tmp/a /src/a.c && /tmp/a probe";
    let out = sandbox(
        &[
            "--learned",
            l.out.path().to_str().unwrap(),
            "--ro-bind",
            &src,
        ],
        &["sh", "-c", probe],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    for call in ["ptrace", "keyctl", "mount", "packet"] {
        assert!(o.contains(&format!("{call} -1 1\n")), "{call}: {o}");
    }
}

#[test]
fn learns_a_server_driven_by_its_test_scenario() {
    let test = "python3 -c \"import urllib.request as u; assert b'Directory' in u.urlopen('http://127.0.0.1:8080/').read()\"";
    let l = learn(&[
        "--ready",
        "tcp:8080",
        "--test",
        test,
        "--",
        "python3",
        "-m",
        "http.server",
        "8080",
        "--bind",
        "127.0.0.1",
        "--directory",
        "/etc",
    ]);
    assert!(
        l.output.status.success(),
        "{}{}",
        stdout(&l.output),
        stderr(&l.output)
    );
    assert!(l.file("report.txt").contains("VERIFIED"));
    let names = l.allowed();
    for call in ["accept4", "bind", "listen", "sendto"] {
        assert!(
            names.contains(call) || (call == "sendto" && names.contains("sendmsg")),
            "a server that answered a request without {call}? {names:?}"
        );
    }
    check_denies_the_unused(&l);
}

/// The seed's trial and error: a workload that binds port 80 and chowns a file ends with
/// exactly CAP_NET_BIND_SERVICE and CAP_CHOWN out of Docker's 14, and the report shows the run
/// that failed without each.
#[test]
fn capability_trial_keeps_exactly_what_is_needed() {
    let script = "touch /tmp/f && chown 1000:1000 /tmp/f && \
                  python3 -c 'import socket; s = socket.socket(); s.bind((\"0.0.0.0\", 80)); print(\"bound\")'";
    let l = learn(&["--", "sh", "-c", script]);
    assert!(
        l.output.status.success(),
        "{}{}",
        stdout(&l.output),
        stderr(&l.output)
    );
    assert_eq!(l.needed_caps(), vec!["CAP_CHOWN", "CAP_NET_BIND_SERVICE"]);
    assert_eq!(
        l.file("docker-caps.txt"),
        "--cap-add CHOWN\n--cap-add NET_BIND_SERVICE\n"
    );
    let report = l.file("report.txt");
    assert!(
        report.contains("without CAP_CHOWN the scenario failed"),
        "{report}"
    );
    assert!(report.contains("Operation not permitted"), "{report}");
    // and without one of them the workload really fails
    let out = sandbox(&["--cap-add", "CAP_CHOWN"], &["sh", "-c", script]);
    assert!(!out.status.success(), "ran without CAP_NET_BIND_SERVICE");
    let out = sandbox(
        &["--learned", l.out.path().to_str().unwrap()],
        &["sh", "-c", script],
    );
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn observations_merge_into_one_profile() {
    let a = learn(&["--", "/bin/busybox", "sh", "-c", "seq 3 | wc -l"]);
    let b = learn(&[
        "--",
        "/bin/busybox",
        "sh",
        "-c",
        "date -u +%Y > /dev/null; uname -a",
    ]);
    assert!(a.output.status.success() && b.output.status.success());
    let out = tempfile::tempdir().unwrap();
    let o = Command::new(bin())
        .args(["learn", "merge"])
        .arg(a.out.path())
        .arg(b.out.path())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let merged: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("seccomp.json")).unwrap())
            .unwrap();
    let names: BTreeSet<String> = merged["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["names"].as_array().unwrap().clone())
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    assert!(names.is_superset(&a.names()) && names.is_superset(&b.names()));
    assert!(names.contains("uname"), "{names:?}");
}

/// Bad input: a clear error naming what is wrong, and nothing left behind.
#[test]
fn bad_input_is_a_clear_error_and_leaves_nothing() {
    // a scenario that fails before any profile: nothing written
    let l = learn(&["--", "sh", "-c", "echo broken-workload; exit 3"]);
    assert_eq!(l.output.status.code(), Some(1));
    let e = stderr(&l.output);
    assert!(
        e.contains("fails even before any profile") && e.contains("broken-workload"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_dir(l.out.path()).unwrap().count(),
        0,
        "files written"
    );
    // --ready that never holds
    let l = learn(&[
        "--ready",
        "tcp:9",
        "--ready-timeout",
        "2",
        "--test",
        "true",
        "--",
        "sleep",
        "30",
    ]);
    assert_eq!(l.output.status.code(), Some(1));
    assert!(
        stderr(&l.output).contains("--ready tcp:9 did not hold within 2 s"),
        "{}",
        stderr(&l.output)
    );
    // unknown ceilings
    let l = learn(&["--seccomp-ceiling", "nonsense", "--", "true"]);
    assert!(
        stderr(&l.output).contains("--seccomp-ceiling nonsense"),
        "{}",
        stderr(&l.output)
    );
    let l = learn(&["--caps-ceiling", "CAP_BOGUS", "--", "true"]);
    assert!(
        stderr(&l.output).contains("--caps-ceiling"),
        "{}",
        stderr(&l.output)
    );
    // a capability this runtime does not have, asked for by name
    let l = learn(&["--caps-ceiling", "CAP_SYS_RESOURCE", "--", "true"]);
    assert!(
        stderr(&l.output).contains("CAP_SYS_RESOURCE"),
        "{}",
        stderr(&l.output)
    );
    // --out not writable
    let root = tempfile::tempdir().unwrap();
    let o = cmd(
        root.path(),
        &["learn", "--out", "/proc/self/nope", "--", "true"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("not writable"), "{}", stderr(&o));
    // no eBPF: an unprivileged caller is told what is missing
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(bin())
        .args([
            "--root",
            "/tmp/stockade-learn-nobody",
            "learn",
            "--out",
            "/tmp/stockade-learn-nobody-out",
            "--",
            "true",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("learn needs eBPF"), "{}", stderr(&o));
}

const INT80: &str = r#"
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
/* an i386 system call from 64-bit code (int $0x80, i386 numbers) */
static long int80(long nr) {
    long r;
    __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr) : "memory", "r8", "r9", "r10", "r11");
    return r;
}
int main(int argc, char **argv) {
    long pid = int80(20);    /* i386 getpid */
    long ppid = int80(64);   /* i386 getppid */
    printf("getpid %ld getppid %ld\n", pid, ppid);
    /* "need": the scenario fails when the 32-bit calls do */
    return argc > 1 && pid != getpid() ? 1 : 0;
}
"#;

/// 32-bit (i386) calls are named in the report and stay denied (native profiles only); a
/// scenario that needs them fails its verification naming them.
#[test]
fn i386_calls_are_reported_by_name_and_stay_denied() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.c"), INT80).unwrap();
    let o = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(dir.path().join("a"))
        .arg(dir.path().join("a.c"))
        .output()
        .expect("gcc");
    assert!(o.status.success(), "{}", stderr(&o));
    let mut perm = std::fs::metadata(dir.path()).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(dir.path(), perm).unwrap();
    let bind = format!("{}:/t", dir.path().display());
    // tolerated: verified, the calls named and left denied
    let l = learn(&["--ro-bind", &bind, "--", "/t/a"]);
    assert!(
        l.output.status.success(),
        "{}{}",
        stdout(&l.output),
        stderr(&l.output)
    );
    let report = l.file("report.txt");
    assert!(
        report.contains("32-bit (i386) system calls made: getpid getppid"),
        "{report}"
    );
    assert!(report.contains("i386:getpid"), "{report}");
    assert!(
        stderr(&l.output).contains("32-bit (i386) system calls: getpid, getppid"),
        "{}",
        stderr(&l.output)
    );
    let observed: serde_json::Value = serde_json::from_str(&l.file("observed.json")).unwrap();
    assert_eq!(observed["compat"], serde_json::json!(["getpid", "getppid"]));
    assert_eq!(
        l.seccomp()["architectures"],
        serde_json::json!(["SCMP_ARCH_X86_64"])
    );
    // under the profile they get EPERM (-1) in the kernel
    let out = sandbox(
        &[
            "--learned",
            l.out.path().to_str().unwrap(),
            "--ro-bind",
            &bind,
        ],
        &["/t/a"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "getpid -1 getppid -1\n");
    // needed: the verification fails and says which
    let l = learn(&["--ro-bind", &bind, "--", "/t/a", "need"]);
    assert_eq!(l.output.status.code(), Some(1));
    let e = stderr(&l.output);
    assert!(
        e.contains("verification failed") && e.contains("i386:getpid"),
        "{e}"
    );
    assert!(l.out.path().join("UNVERIFIED").exists());
}

/// The learner owns its capabilities: under the engines' default policy (whose ceiling drops
/// CAP_NET_RAW) a raw-socket workload still learns CAP_NET_RAW, and the report's ceiling is the
/// one in force.
#[test]
fn a_raw_socket_workload_learns_cap_net_raw_whatever_the_engines_policy() {
    require_root();
    let _one = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let root = tempfile::tempdir().unwrap();
    let o = timeout()
        .arg(bin())
        .arg("--root")
        .arg(root.path())
        .env("STOCKADE_POLICY", "default")
        .args(["learn", "--out"])
        .arg(out.path())
        .args([
            "--",
            "python3",
            "-c",
            "import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); print('raw')",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let caps: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("capabilities.json")).unwrap())
            .unwrap();
    assert_eq!(caps["needed"], serde_json::json!(["CAP_NET_RAW"]), "{caps}");
    assert!(
        caps["ceiling"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!("CAP_NET_RAW")),
        "{caps}"
    );
}

/// `learn` told to stop while its workload runs (a timeout's SIGTERM, Ctrl-C): the workload's
/// container and its bundle are gone, and learn exits 128+15.
#[test]
fn learn_stopped_by_a_signal_leaves_nothing() {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let mark = format!("sleep {}", 2_000_000 + std::process::id());
    let mut l = Command::new(bin())
        .arg("--root")
        .arg(root.path())
        .args(["learn", "--no-verify", "--out"])
        .arg(out.path().join("p"))
        .args(["--", "sh", "-c", &mark])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pids = || {
        // the workload's own command line (learn's holds the mark too)
        let o = Command::new("pgrep")
            .args(["-f", &format!("^{mark}")])
            .output()
            .unwrap();
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    poll_until("the workload never started", 20, || {
        (!pids().is_empty()).then_some(())
    });
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(l.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = l.wait().unwrap();
    assert_eq!(status.code(), Some(143));
    poll_until("the workload outlived learn", 10, || {
        pids().is_empty().then_some(())
    });
    let left: Vec<String> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("learn-"))
        .collect();
    assert!(left.is_empty(), "left in the state root: {left:?}");
    assert!(
        !std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .contains(root.path().to_str().unwrap()),
        "a mount under the state root is left"
    );
}
