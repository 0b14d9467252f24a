//! Diagnostics at the bottom of the house: where warnings go, and the named stages of setup
//! (timing marks for the benchmark, stop points for the fault-injection tests). Every module may
//! use this one; it uses none of them.
//!
//! Warnings: under an engine (`--log` given) the container's stdio is the workload's, read back
//! by `docker logs`, so a runtime warning goes to the log (JSON lines with `--log-format json`,
//! runc's shape) and to stderr only when stderr is a terminal someone is watching. Without a
//! log they go to stderr. The log is opened once, close-on-exec and append-only, so the
//! container's half of the runtime (after `pivot_root`, where the path is gone) writes to it too.

use std::io::Write;
use std::path::Path;
use std::sync::OnceLock;

struct Sink {
    log: Option<std::fs::File>,
    json: bool,
    quiet: bool,
    /// stderr is a terminal: warnings stay visible there even with a log
    tty: bool,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Set where warnings go (once, at the binary's edge). A log that cannot be opened is not an
/// error here: runc's shape, the error of the command itself says what failed.
pub fn init(log: Option<&Path>, json: bool, quiet: bool) {
    use std::io::IsTerminal;
    let log = log.and_then(|p| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .ok()
    });
    let _ = SINK.set(Sink {
        log,
        json,
        quiet,
        tty: std::io::stderr().is_terminal(),
    });
}

/// One log line in runc's shapes: JSON `{"level","msg","time"}` or logrus' text.
pub fn log_line(level: &str, msg: &str, json: bool) -> String {
    let time = now_rfc3339();
    if json {
        serde_json::json!({"level": level, "msg": msg, "time": time}).to_string()
    } else {
        format!("time=\"{time}\" level={level} msg={msg:?}")
    }
}

fn write_log(level: &str, msg: &str) -> bool {
    let Some(s) = SINK.get() else { return false };
    let Some(mut f) = s.log.as_ref() else {
        return false;
    };
    let mut line = log_line(level, msg, s.json);
    line.push('\n');
    // one write(2) per line: O_APPEND keeps lines whole between processes
    let _ = f.write_all(line.as_bytes());
    true
}

/// A warning: to the log when there is one, to stderr when there is none or stderr is a
/// terminal; nothing on stderr with `--quiet`.
pub fn warn(msg: &str) {
    let logged = write_log("warning", msg);
    let (quiet, tty) = SINK
        .get()
        .map(|s| (s.quiet, s.tty))
        .unwrap_or((false, true));
    if !quiet && (!logged || tty) {
        eprintln!("stockade: warning: {msg}");
    }
}

/// An error of the whole command, for the log (stderr gets it from the binary's edge).
pub fn log_error(msg: &str) {
    write_log("error", msg);
}

/// A stage of setup or teardown. With STOCKADE_DEBUG_TIMING set, its time goes to stderr (for
/// the benchmark's analysis). With STOCKADE_TEST_STOP_AT=NAME (or NAME@N for its N-th time) the
/// process stops itself there (SIGSTOP), so the fault-injection tests can kill the runtime at
/// each stage deterministically; a stop grants nothing a caller could not do with `kill -STOP`.
pub fn mark(what: &str) {
    use std::sync::atomic::{AtomicU32, Ordering};
    struct Marks {
        t0: Option<std::time::Instant>,
        stop_at: Option<(String, u32)>,
    }
    static MARKS: OnceLock<Marks> = OnceLock::new();
    static SEEN: AtomicU32 = AtomicU32::new(0);
    let m = MARKS.get_or_init(|| Marks {
        t0: std::env::var_os("STOCKADE_DEBUG_TIMING").map(|_| std::time::Instant::now()),
        stop_at: std::env::var("STOCKADE_TEST_STOP_AT").ok().map(|v| {
            match v
                .rsplit_once('@')
                .and_then(|(n, k)| Some((n, k.parse().ok()?)))
            {
                Some((n, k)) => (n.to_string(), k),
                None => (v, 1),
            }
        }),
    });
    if let Some(t0) = m.t0 {
        // STOCKADE_DEBUG_TIMING=rss adds the peak resident set so far (VmHWM)
        let hwm = if std::env::var_os("STOCKADE_DEBUG_TIMING").is_some_and(|v| v == "rss") {
            std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .map(String::from)
                })
                .unwrap_or_default()
        } else {
            String::new()
        };
        eprintln!(
            "[{:>8.3} ms] {} {what} {hwm}",
            t0.elapsed().as_secs_f64() * 1e3,
            std::process::id()
        );
    }
    if let Some((name, nth)) = &m.stop_at {
        if name == what && SEEN.fetch_add(1, Ordering::Relaxed) + 1 == *nth {
            eprintln!("stockade-test: stopped at {what}");
            if nix::unistd::getpid().as_raw() == 1 {
                // a pid namespace's init ignores its own SIGSTOP: wait to be killed instead
                loop {
                    nix::unistd::pause();
                }
            }
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGSTOP);
        }
    }
}

/// Now as RFC 3339 UTC with nanoseconds (runtime-spec's `created`, log lines).
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // civil-from-days (Howard Hinnant's algorithm)
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        now.subsec_nanos()
    )
}
