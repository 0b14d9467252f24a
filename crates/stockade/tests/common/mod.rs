//! Helpers for the integration tests: they run the real `stockade` binary as root, against real
//! namespaces, cgroups and mounts, and check that nothing is left behind.
#![allow(dead_code)]

pub mod engines;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Every container a test runs is bounded in time: a hang fails the test instead of CI.
pub fn timeout() -> Command {
    let mut c = Command::new("timeout");
    c.args(["--kill-after=5", "120"]);
    c
}

/// The built binary. The first call sets `STOCKADE_POLICY=none` for this test process and all
/// it starts (engines included): these tests exercise the engine on exact configs, as runc
/// would run them. Tests of the hardening policy pass `--policy` (which wins over the variable)
/// or set the variable on their own commands.
pub fn bin() -> &'static str {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // std's own environment lock orders this against every Command spawn of the process
    ONCE.call_once(|| std::env::set_var("STOCKADE_POLICY", "none"));
    env!("CARGO_BIN_EXE_stockade")
}

/// Fail loudly (never skip) when the tests cannot do what they claim to test.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "these tests create namespaces, cgroups and mounts: run them as root"
    );
}

/// A rootfs with busybox-static and its applets.
pub fn busybox_rootfs(dir: &Path) {
    let bb = Path::new("/bin/busybox");
    assert!(
        bb.exists(),
        "/bin/busybox missing: apt-get install busybox-static (.ci/run does)"
    );
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::fs::copy(bb, bin.join("busybox")).unwrap();
    let list = Command::new(bb).arg("--list").output().unwrap();
    for applet in String::from_utf8_lossy(&list.stdout).lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", bin.join(applet));
        }
    }
    for d in ["proc", "sys", "dev", "tmp", "etc", "root"] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .unwrap();
}

/// A bundle made by `stockade spec` around a busybox rootfs; `edit` adjusts config.json.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub root: tempfile::TempDir,
}

impl Bundle {
    pub fn new(args: &[&str], edit: impl FnOnce(&mut serde_json::Value)) -> Bundle {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        busybox_rootfs(&dir.path().join("rootfs"));
        let out = Command::new(bin())
            .args(["spec", "--bundle"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "stockade spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let file = dir.path().join("config.json");
        let mut v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        v["process"]["args"] = serde_json::json!(args);
        edit(&mut v);
        std::fs::write(&file, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        Bundle {
            dir,
            root: tempfile::tempdir().unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn run(&self, id: &str) -> Output {
        Command::new(bin())
            .arg("--root")
            .arg(self.root.path())
            .args(["run", "--bundle"])
            .arg(self.path())
            .arg(id)
            .output()
            .unwrap()
    }

    /// `run -d`: the runtime returns, the container keeps running.
    pub fn run_detached(&self, id: &str) -> Output {
        cmd(
            self.root.path(),
            &["run", "-d", "--bundle", self.path().to_str().unwrap(), id],
        )
    }

    pub fn write_config(&self, text: &str) {
        std::fs::write(self.path().join("config.json"), text).unwrap();
    }
}

/// `stockade --root ROOT ARGS...` with stdout and stderr in files, not pipes: a container it
/// leaves running must not hold the caller's pipe open.
pub fn cmd(root: &Path, args: &[&str]) -> Output {
    let mut c = timeout();
    c.arg(bin()).arg("--root").arg(root).args(args);
    output_in_files(c)
}

/// The same, with the runtime in the network namespace at `netns` (its own mount namespace and
/// everything else unchanged: `nsenter --net`, not `ip netns exec`, which remounts /sys).
pub fn cmd_in_netns(netns: &Path, root: &Path, args: &[&str]) -> Output {
    let mut c = Command::new("nsenter");
    c.arg(format!("--net={}", netns.display()))
        .args(["timeout", "--kill-after=5", "120"])
        .arg(bin())
        .arg("--root")
        .arg(root)
        .args(args);
    output_in_files(c)
}

/// Run `c` with stdout and stderr in files (see [`cmd`]).
fn output_in_files(mut c: Command) -> Output {
    let (mut out, mut err) = (tempfile::tempfile().unwrap(), tempfile::tempfile().unwrap());
    let status = c
        .stdout(out.try_clone().unwrap())
        .stderr(err.try_clone().unwrap())
        .status()
        .unwrap();
    use std::io::{Read, Seek};
    let (mut o, mut e) = (vec![], vec![]);
    out.rewind().unwrap();
    out.read_to_end(&mut o).unwrap();
    err.rewind().unwrap();
    err.read_to_end(&mut e).unwrap();
    Output {
        status,
        stdout: o,
        stderr: e,
    }
}

/// A network namespace of the test's own (`ip netns add`), deleted when dropped with every
/// device in it (a physical one would go to the initial namespace: tests make only virtual
/// ones). Runtimes run in it with [`cmd_in_netns`], so "the host" is this namespace, never the
/// machine's.
pub struct NetNs {
    pub name: String,
}

impl NetNs {
    /// Made in a mount namespace of this test thread's own (a slave of the host's, entered once
    /// per thread, inherited by what the thread starts): `ip netns add`'s mounts and the pins
    /// of the runtimes it runs are then no other test's (tests compare the host's mount table).
    pub fn new() -> NetNs {
        require_root();
        thread_local!(static OWN_MOUNTS: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
        if !OWN_MOUNTS.get() {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
                None::<&str>,
            )
            .unwrap();
            OWN_MOUNTS.set(true);
        }
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("stk-test-{}-{n}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip netns add {name}: {}",
            stderr(&out)
        );
        NetNs { name }
    }

    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// `ip -n NAME ARGS`, which must succeed: its stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip -n {} {args:?}: {}",
            self.name,
            stderr(&out)
        );
        stdout(&out)
    }

    /// The lines of `ip -o addr show` for interface `dev` (empty if there is none).
    pub fn addrs_of(&self, dev: &str) -> Vec<String> {
        self.ip(&["-o", "addr", "show"])
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some(dev))
            .map(String::from)
            .collect()
    }

    /// The interface names in it.
    pub fn links(&self) -> Vec<String> {
        self.ip(&["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap().to_string())
            .collect()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// `stockade sandbox [flags] -- cmd...` with a private state root.
pub fn sandbox(flags: &[&str], cmd: &[&str]) -> Output {
    sandbox_in(&std::env::current_dir().unwrap(), flags, cmd)
}

/// The same, run in `cwd` (relative bind sources are the caller's directory's).
pub fn sandbox_in(cwd: &Path, flags: &[&str], cmd: &[&str]) -> Output {
    require_root();
    let root = tempfile::tempdir().unwrap();
    let out = timeout()
        .arg(bin())
        .arg("--root")
        .arg(root.path())
        .arg("sandbox")
        .args(flags)
        .arg("--")
        .args(cmd)
        .current_dir(cwd)
        .output()
        .unwrap();
    // nothing but the compiled-filter cache (`.seccomp`), which is meant to stay
    let left: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != ".seccomp")
        .collect();
    assert!(
        left.is_empty(),
        "state left in {}: {left:?}",
        root.path().display()
    );
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Every place a container `id` could leave something: cgroup directories in every hierarchy,
/// mounts, live processes.
pub fn assert_nothing_left(id: &str, state_root: &Path) {
    assert!(!state_root.join(id).exists(), "state dir left for {id}");
    for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let p = entry.path().join("stockade").join(id);
        assert!(!p.exists(), "cgroup left: {}", p.display());
    }
    // this thread's: a test with a network namespace has a mount namespace of its own
    let mi = std::fs::read_to_string("/proc/thread-self/mountinfo").unwrap();
    assert!(!mi.contains(id), "mount left mentioning {id}");
}

/// Host's namespace inode for `ns` (e.g. "pid").
pub fn host_ns(ns: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{ns}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The lines of `text` after a line `== name` and before the next `==` line.
pub fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let mut out = vec![];
    let mut on = false;
    for l in text.lines() {
        if let Some(n) = l.strip_prefix("== ") {
            on = n == name;
            continue;
        }
        if on {
            out.push(l);
        }
    }
    out
}

pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    )
}

pub fn tmp_path(p: &Path) -> PathBuf {
    p.to_path_buf()
}

/// Accept one connection and receive a message with one descriptor (SCM_RIGHTS), as engines'
/// console sockets and seccomp agents do.
pub fn recv_fd(listener: &std::os::unix::net::UnixListener) -> (Vec<u8>, std::os::fd::OwnedFd) {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    let (conn, _) = listener.accept().unwrap();
    let mut buf = vec![0u8; 65536];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let n = msg.bytes;
    let fd = msg
        .cmsgs()
        .unwrap()
        .find_map(|c| match c {
            nix::sys::socket::ControlMessageOwned::ScmRights(v) => v.first().copied(),
            _ => None,
        })
        .expect("no descriptor in SCM_RIGHTS");
    buf.truncate(n);
    // SAFETY: the descriptor came through SCM_RIGHTS; the OwnedFd is its only owner.
    (buf, unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Ask `f` every 10 ms until it gives a value; fail naming `what` after `secs` seconds.
pub fn poll_until<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{what}");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The host's mount table (root and mount point of each entry), sorted, to compare before and
/// after: this thread's view (see [`NetNs::new`]).
pub fn host_mounts() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_to_string("/proc/thread-self/mountinfo")
        .unwrap()
        .lines()
        .map(|l| l.split(' ').skip(3).take(2).collect::<Vec<_>>().join(" "))
        .collect();
    v.sort();
    v
}

/// State letter and parent pid of `pid` (from /proc/PID/stat).
pub fn stat_of(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut f = s.rsplit_once(')')?.1.split_whitespace();
    let state = f.next()?.chars().next()?;
    Some((state, f.next()?.parse().ok()?))
}

/// Every process: (pid, state letter, parent pid).
fn all_processes() -> Vec<(i32, char, i32)> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|p| stat_of(p).map(|(s, pp)| (p, s, pp)))
        .collect()
}

/// `pid` and every process descended from it.
pub fn descendants(pid: i32) -> Vec<i32> {
    let all = all_processes();
    let mut family = vec![pid];
    let mut i = 0;
    while i < family.len() {
        let parent = family[i];
        family.extend(
            all.iter()
                .filter(|(_, _, pp)| *pp == parent)
                .map(|(p, _, _)| *p),
        );
        i += 1;
    }
    family
}

/// `pid` itself, or a process descended from it, that is stopped (state `T`).
pub fn stopped_descendant(pid: i32) -> Option<i32> {
    let all = all_processes();
    descendants(pid)
        .into_iter()
        .find(|p| all.iter().any(|(q, s, _)| q == p && *s == 'T'))
}

/// A console socket at `path` (runc's protocol): the pty master the runtime sends, received in a
/// thread (the runtime blocks until it is taken). The listener comes back too, to keep it open.
pub fn console_socket(
    path: &Path,
) -> std::thread::JoinHandle<(std::fs::File, std::os::unix::net::UnixListener)> {
    let listener = std::os::unix::net::UnixListener::bind(path).unwrap();
    std::thread::spawn(move || {
        let m = std::fs::File::from(recv_fd(&listener).1);
        (m, listener)
    })
}

/// What a pty master shows until `needle` appears (or it closes, or 10 s pass).
pub fn read_until(master: &mut std::fs::File, needle: &str) -> String {
    use std::io::Read;
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !text.contains(needle) && std::time::Instant::now() < deadline {
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    text
}
pub mod systemd;

/// Remove cgroup `rel` (a path below each hierarchy's root) in every hierarchy, v1 and the
/// unified one alike, with whatever is below it: its processes killed first (`cgroup.kill`
/// where there is one, else SIGKILL to each pid in `cgroup.procs`), then the directories
/// bottom-up. For tests whose runtimes (runc, engines) made cgroups in every v1 hierarchy.
pub fn remove_cgroup_everywhere(rel: &str) {
    fn remove(dir: &Path) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                remove(&e.path());
            }
        }
        let _ = std::fs::write(dir.join("cgroup.kill"), "1");
        let pids = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
        for p in pids.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            // SAFETY: kill takes plain integers.
            unsafe { libc::kill(p, libc::SIGKILL) };
        }
        if dir.exists() {
            poll_until(
                &format!("cgroup {} never emptied", dir.display()),
                10,
                || std::fs::remove_dir(dir).ok(),
            );
        }
    }
    let rel = rel.trim_start_matches('/');
    let mut roots = vec![];
    for e in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let p = e.path();
        // named hierarchies and the unified one; skip the co-mount symlinks (cpu -> cpu,cpuacct)
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            roots.push(p);
        }
    }
    if roots.is_empty() || Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        roots.push(PathBuf::from("/sys/fs/cgroup"));
    }
    for r in roots {
        let d = r.join(rel);
        if d.is_dir() {
            remove(&d);
        }
    }
}

/// The cgroup directories named `name` directly under any hierarchy's root (v1 and unified).
pub fn cgroups_named(name: &str) -> Vec<PathBuf> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path().join(name))
        .chain(std::iter::once(Path::new("/sys/fs/cgroup").join(name)))
        .filter(|p| p.is_dir())
        .collect()
}
