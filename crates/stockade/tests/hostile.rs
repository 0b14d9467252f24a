//! A hostile image or bundle: symlinks planted at every path the runtime itself touches inside
//! the rootfs. Each bundle either runs contained or is refused with an error naming the path,
//! and the host is checked afterwards (file modes and contents, the host's mount table).

mod common;
use common::*;
use serde_json::json;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A host file the image points its symlinks at: mode 0600, known content.
struct Bait {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Bait {
    fn new() -> Bait {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "host secret\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        Bait { path, _dir: dir }
    }

    /// Unchanged: same mode, same owner, same content, same inode kind.
    fn assert_untouched(&self) {
        let md = std::fs::symlink_metadata(&self.path).unwrap();
        assert!(md.is_file(), "{} replaced", self.path.display());
        assert_eq!(md.mode() & 0o7777, 0o600, "host file's mode changed");
        assert_eq!((md.uid(), md.gid()), (0, 0), "host file's owner changed");
        assert_eq!(
            std::fs::read_to_string(&self.path).unwrap(),
            "host secret\n",
            "host file's content changed"
        );
    }
}

fn core_pattern() -> (String, u32) {
    let p = Path::new("/proc/sys/kernel/core_pattern");
    (
        std::fs::read_to_string(p).unwrap(),
        std::fs::metadata(p).unwrap().mode(),
    )
}

/// The config brings its own /dev (no tmpfs mount there), as valid OCI allows; `userns` false
/// removes the user namespace, as engines send configs.
fn own_dev(v: &mut serde_json::Value, userns: bool) {
    v["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/dev");
    if !userns {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|n| n["type"] != "user");
        let l = v["linux"].as_object_mut().unwrap();
        l.remove("uidMappings");
        l.remove("gidMappings");
    }
}

fn own_dev_bundle(args: &[&str], userns: bool) -> Bundle {
    Bundle::new(args, |v| own_dev(v, userns))
}

/// CVE-2025-31133's shape, and the defect stockade had: the image's `/dev/null` is a symlink to
/// a host file. The runtime must neither chmod/chown the host file nor use it to mask paths;
/// the container gets a real null device.
#[test]
fn dev_null_symlink_to_a_host_file_leaves_the_host_file_alone() {
    for userns in [false, true] {
        let bait = Bait::new();
        let before = host_mounts();
        let b = own_dev_bundle(
            &[
                "sh",
                "-c",
                "test -c /dev/null && echo null-is-a-device; echo x > /dev/null; \
                 cat /proc/kcore | wc -c",
            ],
            userns,
        );
        symlink(&bait.path, b.path().join("rootfs/dev/null")).unwrap();
        let id = unique("devnull");
        let out = b.run(&id);
        assert!(out.status.success(), "userns={userns}: {}", stderr(&out));
        let o = stdout(&out);
        assert!(o.contains("null-is-a-device"), "userns={userns}: {o}");
        assert_eq!(o.lines().last(), Some("0"), "kcore not masked: {o}");
        bait.assert_untouched();
        assert_nothing_left(&id, b.root.path());
        assert_eq!(host_mounts(), before, "host mount table changed");
    }
}

/// The same symlink pointing at a procfs file the runtime could make writable by binding it over
/// a masked path (CVE-2025-31133): writing the masked path inside must not reach the host's file.
#[test]
fn dev_null_symlink_to_core_pattern_cannot_unmask_it() {
    let before = core_pattern();
    for userns in [false, true] {
        let b = own_dev_bundle(
            &[
                "sh",
                "-c",
                "echo '|/tmp/pwned' > /proc/sysrq-trigger; echo '|/tmp/pwned' > /proc/kcore; \
                 test -c /dev/null && echo null-is-a-device",
            ],
            userns,
        );
        symlink(
            "/proc/sys/kernel/core_pattern",
            b.path().join("rootfs/dev/null"),
        )
        .unwrap();
        let id = unique("corepat");
        let out = b.run(&id);
        assert!(out.status.success(), "userns={userns}: {}", stderr(&out));
        assert!(
            stdout(&out).contains("null-is-a-device"),
            "{}",
            stdout(&out)
        );
        assert_eq!(
            core_pattern(),
            before,
            "userns={userns}: core_pattern changed"
        );
        assert_nothing_left(&id, b.root.path());
    }
}

/// Every default device node, and the /dev symlinks the runtime makes (`fd`, `stdin`, ...,
/// `ptmx`), planted as symlinks to host files, relative and absolute, and as directories.
#[test]
fn symlinks_at_every_dev_path_stay_contained() {
    for userns in [false, true] {
        let bait = Bait::new();
        let before = host_mounts();
        let b = own_dev_bundle(
            &[
                "sh",
                "-c",
                "for d in null zero full random urandom tty; do test -c /dev/$d || echo \"bad $d\"; done; \
                 test -c /dev/pts/ptmx || echo 'bad pts/ptmx'; echo done",
            ],
            userns,
        );
        let dev = b.path().join("rootfs/dev");
        symlink(&bait.path, dev.join("zero")).unwrap();
        symlink(
            "../../../../../../../../..".to_string() + bait.path.to_str().unwrap(),
            dev.join("full"),
        )
        .unwrap();
        symlink(&bait.path, dev.join("random")).unwrap();
        symlink(&bait.path, dev.join("urandom")).unwrap();
        symlink(&bait.path, dev.join("tty")).unwrap();
        symlink(&bait.path, dev.join("ptmx")).unwrap();
        symlink(&bait.path, dev.join("stdin")).unwrap();
        std::fs::create_dir(dev.join("fd")).unwrap();
        let id = unique("devlinks");
        let out = b.run(&id);
        assert!(out.status.success(), "userns={userns}: {}", stderr(&out));
        assert_eq!(stdout(&out).trim(), "done", "userns={userns}");
        bait.assert_untouched();
        assert_nothing_left(&id, b.root.path());
        assert_eq!(host_mounts(), before, "host mount table changed");
    }
}

/// A device path that is a directory in the image cannot become a device: refused, naming it.
#[test]
fn a_directory_where_a_device_goes_is_refused_by_name() {
    let b = own_dev_bundle(&["true"], false);
    std::fs::create_dir(b.path().join("rootfs/dev/null")).unwrap();
    let id = unique("devdir");
    let out = b.run(&id);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("/dev/null"), "{}", stderr(&out));
    assert_nothing_left(&id, b.root.path());
}

/// Masked and read-only paths of the spec that the image turned into symlinks out of the root:
/// resolved inside the rootfs, never on the host.
#[test]
fn masked_and_readonly_paths_through_image_symlinks_stay_inside() {
    let bait = Bait::new();
    let before = host_mounts();
    let b = Bundle::new(
        &[
            "sh",
            "-c",
            "cat /etc/masked-file | wc -c; touch /etc/ro-dir/x 2>/dev/null || echo ro-holds; \
             ls /etc/masked-dir | wc -l",
        ],
        |v| {
            v["linux"]["maskedPaths"]
                .as_array_mut()
                .unwrap()
                .extend([json!("/etc/masked-file"), json!("/etc/masked-dir")]);
            v["linux"]["readonlyPaths"]
                .as_array_mut()
                .unwrap()
                .push(json!("/etc/ro-dir"));
            v["root"]["readonly"] = json!(false);
        },
    );
    let etc = b.path().join("rootfs/etc");
    // absolute: resolved in the root, it names the container's own /inside-* paths
    symlink(&bait.path, etc.join("masked-file")).unwrap();
    std::fs::create_dir_all(b.path().join("rootfs/inside-dir/sub")).unwrap();
    symlink("/inside-dir", etc.join("masked-dir")).unwrap();
    std::fs::create_dir_all(b.path().join("rootfs/inside-ro")).unwrap();
    symlink("../../../../../../../inside-ro", etc.join("ro-dir")).unwrap();
    let id = unique("masklinks");
    let out = b.run(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    let lines: Vec<&str> = o.lines().collect();
    // the masked file pointed at a path missing inside the root: nothing to mask, reads fail
    assert_eq!(lines.last(), Some(&"0"), "masked dir shows entries: {o}");
    assert!(o.contains("ro-holds"), "read-only path writable: {o}");
    bait.assert_untouched();
    assert_nothing_left(&id, b.root.path());
    assert_eq!(host_mounts(), before, "host mount table changed");
}

/// The container's root can never reach the runtime's binary: a stockade `exec` stopped inside
/// the container just before its `execve` (its `/proc/PID/exe` is still the runtime) cannot be
/// opened from another process of the container (CVE-2019-5736).
#[test]
fn exec_does_not_expose_the_runtime_binary() {
    let b = Bundle::new(&["sleep", "60"], |_| {});
    let id = unique("execexe");
    let out = b.run_detached(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut stopped = std::process::Command::new(bin())
        .arg("--root")
        .arg(b.root.path())
        .args(["exec", &id, "true"])
        .env("STOCKADE_TEST_STOP_AT", "exec-child: ready")
        .spawn()
        .unwrap();
    let runtime = stopped.id() as i32;
    let child = poll_until("exec child never stopped at its mark", 10, || {
        stopped_descendant(runtime)
    });
    let exe = std::fs::read_link(format!("/proc/{child}/exe")).unwrap();
    assert!(
        exe.to_string_lossy().contains("stockade"),
        "the stopped process is not stockade: {exe:?}"
    );
    // every process of the container but pid 1 and the scanning shell itself
    let script = "for p in /proc/[0-9]*; do n=${p#/proc/}; [ $n = 1 ] && continue; \
        [ $n = $$ ] && continue; [ -e $p/exe ] || [ -L $p/exe ] || continue; \
        if cat $p/exe >/dev/null 2>&1; then echo \"readable $n\"; else echo \"denied $n\"; fi; done";
    let out = cmd(b.root.path(), &["exec", &id, "sh", "-c", script]);
    let _ = stopped.kill();
    let _ = stopped.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    let o = stdout(&out);
    assert!(o.contains("denied"), "the stopped exec was not seen: {o}");
    assert!(!o.contains("readable"), "{o}");
    let out = cmd(b.root.path(), &["delete", "--force", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_nothing_left(&id, b.root.path());
}

/// `process.terminal` in an image whose `/dev/console` and `/dev/ptmx` are symlinks to a host
/// file: the master comes from the container's devpts, `/dev/console` is the pty (the image's
/// symlink replaced), the host file is untouched.
#[test]
fn terminal_with_symlinked_console_and_ptmx_stays_contained() {
    use std::io::Write;
    for userns in [false, true] {
        let bait = Bait::new();
        let b = Bundle::new(&["sh"], |v| {
            v["process"]["terminal"] = json!(true);
            own_dev(v, userns);
        });
        let dev = b.path().join("rootfs/dev");
        symlink(&bait.path, dev.join("console")).unwrap();
        symlink(&bait.path, dev.join("ptmx")).unwrap();
        let id = unique("ttylinks");
        let root = b.root.path();
        let sock = b.path().join("console.sock");
        let t = console_socket(&sock);
        let out = cmd(
            root,
            &[
                "run",
                "-d",
                "--console-socket",
                sock.to_str().unwrap(),
                "--bundle",
                b.path().to_str().unwrap(),
                &id,
            ],
        );
        assert!(out.status.success(), "userns={userns}: {}", stderr(&out));
        let (mut master, _listener) = t.join().unwrap();
        master
            .write_all(b"test -c /dev/console && echo console-$((6*7)); ls -l /dev/console; exit\n")
            .unwrap();
        let text = read_until(&mut master, "console-42");
        assert!(text.contains("console-42"), "userns={userns}: {text}");
        bait.assert_untouched();
        let out = cmd(root, &["delete", "--force", &id]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_nothing_left(&id, root);
    }
}

/// `process.cwd` through a magic link names a descriptor the runtime held (CVE-2024-21626):
/// refused, naming the field; a cwd that climbs with `..` stays inside the root.
#[test]
fn cwd_through_proc_fd_is_refused_and_dotdot_stays_inside() {
    for n in 3..12 {
        let b = Bundle::new(&["sh", "-c", "pwd; ls"], |v| {
            v["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"))
        });
        let id = unique("cwdfd");
        let out = b.run(&id);
        assert_eq!(
            out.status.code(),
            Some(1),
            "fd {n}: ran in {}",
            stdout(&out)
        );
        assert!(stderr(&out).contains("process.cwd"), "{}", stderr(&out));
        assert_nothing_left(&id, b.root.path());
    }
    let b = Bundle::new(&["pwd"], |v| {
        v["process"]["cwd"] = json!("/../../../../etc/../../etc")
    });
    let id = unique("cwddots");
    let out = b.run(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "/etc");
    // a symlink as cwd resolves inside the root too
    let b = Bundle::new(&["pwd"], |v| v["process"]["cwd"] = json!("/work"));
    symlink("/../../../../etc", b.path().join("rootfs/work")).unwrap();
    let out = b.run(&unique("cwdlink"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "/etc");
}

/// Configs built to exhaust the runtime: refused with a clear error naming config.json, or run
/// contained; either way nothing is left.
#[test]
fn configs_built_to_exhaust_the_runtime_are_refused_or_contained() {
    // nesting deeper than any real config: serde's recursion limit, as an error
    let b = Bundle::new(&["true"], |_| {});
    let deep = format!(
        "{{\"ociVersion\": \"1.0.0\", \"annotations\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    b.write_config(&deep);
    let id = unique("deep");
    let out = b.run(&id);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("config.json"), "{}", stderr(&out));
    assert_nothing_left(&id, b.root.path());
    // a config.json that never ends: a fifo nobody writes, and a file past the size limit
    let b = Bundle::new(&["true"], |_| {});
    let cfg = b.path().join("config.json");
    std::fs::remove_file(&cfg).unwrap();
    nix::unistd::mkfifo(&cfg, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let id = unique("fifo");
    let out = cmd(
        b.root.path(),
        &["run", "--bundle", b.path().to_str().unwrap(), &id],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not a regular file"),
        "{}",
        stderr(&out)
    );
    std::fs::remove_file(&cfg).unwrap();
    let f = std::fs::File::create(&cfg).unwrap();
    f.set_len(20 << 20).unwrap();
    let out = b.run(&id);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("larger than"), "{}", stderr(&out));
    assert_nothing_left(&id, b.root.path());
    // huge arrays: 20000 masked paths (none exist) and 20000 environment variables run
    let env: Vec<String> = (0..20_000).map(|i| format!("V{i}=x")).collect();
    let b = Bundle::new(&["sh", "-c", "echo ran"], |v| {
        let masked = v["linux"]["maskedPaths"].as_array_mut().unwrap();
        masked.extend((0..20_000).map(|i| json!(format!("/nonexistent/{i}"))));
        v["process"]["env"] = json!(env);
    });
    let id = unique("huge");
    let out = b.run(&id);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "ran");
    assert_nothing_left(&id, b.root.path());
    // an argument list past the kernel's limit: execve's E2BIG, named
    let args: Vec<String> = std::iter::once("true".to_string())
        .chain((0..40_000).map(|_| "x".repeat(100)))
        .collect();
    let b = Bundle::new(&["true"], |v| v["process"]["args"] = json!(args));
    let id = unique("e2big");
    let out = b.run(&id);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // runc's wording (Go's): `exec: "/bin/true": argument list too long`
    assert!(
        stderr(&out).contains("exec: \"/bin/true\": argument list too long"),
        "{}",
        stderr(&out)
    );
    assert_nothing_left(&id, b.root.path());
}
