//! The engine verbs' command lines read without clap: `create`, `run`, `start`, `state`,
//! `kill` and `delete` with the global flags, the way runc's callers (containerd's shim,
//! Podman's conmon, Docker) pass them, at every container start.
//!
//! Hand-written because clap's table is built at every start, whatever the verb: `Cli::command`
//! makes every global argument and the subcommand list (with their help texts) on the heap, in
//! stack frames of some 36 KiB, with code spread over the binary. On `run /bin/true` reading the
//! line here instead took 116 KiB off the peak RSS (docs/performance.md).
//!
//! This reader accepts only lines it reads exactly as clap would: a known verb, known flags each
//! given once (`--flag value`, `--flag=value`, or the verb's one-letter forms alone), values and
//! ids that do not start with `-`, the right number of positionals. Anything else (`--help`,
//! `--version`, another verb, `--`, an unknown or repeated flag, a non-UTF-8 argument, an empty
//! value, an empty STOCKADE_POLICY or STOCKADE_LEARN_DIR) returns `None`, and clap reads the
//! whole line: clap's messages and exit codes stay the only ones. The tests check this table
//! against clap's definitions (same flags, shorts, values and positionals per verb) and this
//! reader's results against clap's on generated lines, so the two cannot drift.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::cli::lifecycle::CreateArgs;
use crate::{Cli, Cmd};

/// A flag: its long name, its short letter, whether it takes a value.
type Flag = (&'static str, Option<char>, bool);

/// The global flags (any verb, before or after it).
pub(crate) const GLOBAL: &[Flag] = &[
    ("root", None, true),
    ("quiet", None, false),
    ("log", None, true),
    ("log-format", None, true),
    ("debug", None, false),
    ("policy", None, true),
    ("learn-dir", None, true),
    ("systemd-cgroup", None, false),
];

/// `create`'s flags, and `run`'s with `--detach` and `--probe[=HOW]`.
const CREATE: &[Flag] = &[
    ("bundle", Some('b'), true),
    ("pid-file", None, true),
    ("console-socket", None, true),
    ("preserve-fds", None, true),
    ("no-pivot", None, false),
    ("no-new-keyring", None, false),
];
const RUN: &[Flag] = &[
    ("bundle", Some('b'), true),
    ("pid-file", None, true),
    ("console-socket", None, true),
    ("preserve-fds", None, true),
    ("no-pivot", None, false),
    ("no-new-keyring", None, false),
    ("detach", Some('d'), false),
    // `--probe` or `--probe=HOW` only (clap: require_equals, default "table")
    ("probe", None, true),
];

/// The verbs read here: their own flags and their positionals (the last ones optional from
/// `min` on).
pub(crate) const VERBS: &[(&str, &[Flag], &[&str], usize)] = &[
    ("run", RUN, &["id"], 1),
    ("create", CREATE, &["id"], 1),
    ("start", &[], &["id"], 1),
    ("state", &[], &["id"], 1),
    ("kill", &[("all", Some('a'), false)], &["id", "signal"], 1),
    ("delete", &[("force", Some('f'), false)], &["id"], 1),
];

/// What the line gave: each flag's value (`""` for a flag without one) and the positionals.
struct Given<'a> {
    flags: Vec<(&'static str, &'a str)>,
    pos: Vec<&'a str>,
}

impl<'a> Given<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.flags.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
    }
    fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    fn path(&self, name: &str) -> Option<PathBuf> {
        self.get(name).map(PathBuf::from)
    }
}

/// The line (with the program name first) as clap would read it, or `None`: then clap reads it.
pub fn parse(args: &[OsString]) -> Option<Cli> {
    let args: Vec<&str> = args
        .iter()
        .skip(1)
        .map(|a| a.to_str())
        .collect::<Option<_>>()?;
    let mut verb: Option<&(&str, &[Flag], &[&str], usize)> = None;
    let mut given = Given {
        flags: vec![],
        pos: vec![],
    };
    let mut it = args.iter().copied();
    while let Some(a) = it.next() {
        let (name, flag, inline) = if let Some(long) = a.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            let own = verb.map_or(&[][..], |v| v.1);
            let flag = GLOBAL.iter().chain(own).find(|f| f.0 == name)?;
            (flag.0, flag, inline)
        } else if let Some(short) = a.strip_prefix('-') {
            let mut cs = short.chars();
            let (c, None) = (cs.next()?, cs.next()) else {
                return None;
            };
            let flag = verb?.1.iter().find(|f| f.1 == Some(c))?;
            (flag.0, flag, None)
        } else {
            match verb {
                None => verb = Some(VERBS.iter().find(|v| v.0 == a)?),
                Some(_) => given.pos.push(a),
            }
            continue;
        };
        let value = match (flag.2, inline) {
            (false, None) => "",
            (false, Some(_)) => return None,
            (true, Some(v)) => v,
            (true, None) if name == "probe" => "table",
            (true, None) => it.next()?,
        };
        if value.starts_with('-') || (flag.2 && value.is_empty()) || given.has(name) {
            return None;
        }
        given.flags.push((name, value));
    }
    let (name, _, positionals, min) = verb?;
    if given.pos.len() < *min
        || given.pos.len() > positionals.len()
        || given.pos.iter().any(|p| p.is_empty())
    {
        return None;
    }
    let cmd = command(name, &given)?;
    global(&given, cmd)
}

/// The verb's own part.
fn command(name: &str, g: &Given) -> Option<Cmd> {
    let id = g.pos[0].to_string();
    let create = || -> Option<CreateArgs> {
        Some(CreateArgs {
            bundle: g.path("bundle").unwrap_or_else(|| PathBuf::from(".")),
            pid_file: g.path("pid-file"),
            console_socket: g.path("console-socket"),
            preserve_fds: match g.get("preserve-fds") {
                Some(n) => n.parse().ok()?,
                None => 0,
            },
            no_pivot: g.has("no-pivot"),
            no_new_keyring: g.has("no-new-keyring"),
            id: id.clone(),
        })
    };
    Some(match name {
        "run" => Cmd::Run {
            c: create()?,
            detach: g.has("detach"),
            probe: g.get("probe").map(String::from),
        },
        "create" => Cmd::Create { c: create()? },
        "start" => Cmd::Start { id },
        "state" => Cmd::State { id },
        "kill" => Cmd::Kill {
            id,
            signal: g.pos.get(1).unwrap_or(&"SIGTERM").to_string(),
            all: g.has("all"),
        },
        "delete" => Cmd::Delete {
            id,
            force: g.has("force"),
        },
        _ => return None,
    })
}

/// The global flags around the verb; the two with an environment variable read it as clap
/// does when the flag is absent (an empty or non-UTF-8 value: clap decides).
fn global(g: &Given, cmd: Cmd) -> Option<Cli> {
    let env = |var: &str| -> Option<Option<String>> {
        match std::env::var_os(var) {
            None => Some(None),
            Some(v) if v.is_empty() => None,
            Some(v) => Some(Some(v.into_string().ok()?)),
        }
    };
    let policy = match g.get("policy") {
        Some(p) => Some(p.to_string()),
        None => env("STOCKADE_POLICY")?,
    };
    let learn_dir = match g.path("learn-dir") {
        Some(p) => Some(p),
        None => env("STOCKADE_LEARN_DIR")?.map(PathBuf::from),
    };
    Some(Cli {
        root: g.path("root").unwrap_or_else(stockade::state::default_root),
        quiet: g.has("quiet"),
        log: g.path("log"),
        log_format: g.get("log-format").unwrap_or("text").to_string(),
        debug: g.has("debug"),
        policy,
        learn_dir,
        systemd_cgroup: g.has("systemd-cgroup"),
        cmd,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    /// The fast path's table is clap's: per verb, the same long flags with the same short
    /// letters and the same "takes a value", and the same positionals in the same order.
    #[test]
    fn flags_match_clap() {
        let mut cmd = Cli::command();
        cmd.build();
        for (verb, own, positionals, min) in VERBS {
            let sub = cmd.find_subcommand(verb).expect(verb);
            let mut clap_flags: Vec<(String, Option<char>, bool)> = sub
                .get_arguments()
                .filter_map(|a| {
                    let long = a.get_long()?;
                    (long != "help").then(|| {
                        (
                            long.to_string(),
                            a.get_short(),
                            a.get_action().takes_values(),
                        )
                    })
                })
                .collect();
            let mut ours: Vec<(String, Option<char>, bool)> = GLOBAL
                .iter()
                .chain(own.iter())
                .map(|(l, s, v)| (l.to_string(), *s, *v))
                .collect();
            clap_flags.sort();
            ours.sort();
            assert_eq!(clap_flags, ours, "{verb}'s flags");
            let clap_pos: Vec<(String, bool)> = sub
                .get_positionals()
                .map(|a| (a.get_id().to_string(), a.is_required_set()))
                .collect();
            let our_pos: Vec<(String, bool)> = positionals
                .iter()
                .enumerate()
                .map(|(i, p)| (p.to_string(), i < *min))
                .collect();
            assert_eq!(clap_pos, our_pos, "{verb}'s positionals");
        }
    }

    /// Everything the fast path reads, in a comparable form.
    fn describe(c: &Cli) -> String {
        let cmd = match &c.cmd {
            Cmd::Run { c, detach, probe } => format!("run {} {detach} {probe:?}", create(c)),
            Cmd::Create { c } => format!("create {}", create(c)),
            Cmd::Start { id } => format!("start {id}"),
            Cmd::State { id } => format!("state {id}"),
            Cmd::Kill { id, signal, all } => format!("kill {id} {signal} {all}"),
            Cmd::Delete { id, force } => format!("delete {id} {force}"),
            _ => "other".into(),
        };
        format!(
            "{:?} {} {:?} {} {} {:?} {:?} {} {cmd}",
            c.root, c.quiet, c.log, c.log_format, c.debug, c.policy, c.learn_dir, c.systemd_cgroup
        )
    }

    fn create(c: &CreateArgs) -> String {
        format!(
            "{:?} {:?} {:?} {} {} {} {}",
            c.bundle,
            c.pid_file,
            c.console_socket,
            c.preserve_fds,
            c.no_pivot,
            c.no_new_keyring,
            c.id
        )
    }

    fn line(words: &[&str]) -> Vec<OsString> {
        std::iter::once("stockade")
            .chain(words.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// Whatever the fast path reads, clap reads the same way.
    fn same_as_clap(words: &[&str]) -> bool {
        let args = line(words);
        let Some(fast) = parse(&args) else {
            return false;
        };
        let clap = Cli::try_parse_from(&args)
            .unwrap_or_else(|e| panic!("fast path read {words:?}, clap refused: {e}"));
        assert_eq!(describe(&fast), describe(&clap), "{words:?}");
        true
    }

    /// What engines pass is read by the fast path (and as clap reads it).
    #[test]
    fn engine_lines() {
        for l in [
            "--root /run/containerd/runc/k8s.io --log /x/log.json --log-format json create --bundle /b --pid-file /b/init.pid --console-socket /tmp/c.sock c1",
            "--root /r --systemd-cgroup run -d --bundle /b --pid-file /p --no-new-keyring c1",
            "--root=/r run -b /b --preserve-fds 2 --probe c1",
            "run --probe=json,stress c1 --quiet",
            "--root /r start c1",
            "--root /r state c1",
            "--root /r kill c1 9",
            "--root /r kill --all c1 SIGKILL",
            "--root /r kill c1",
            "--root /r delete --force c1",
            "--root /r --debug --policy none --learn-dir /l delete -f c1",
        ] {
            let words: Vec<&str> = l.split(' ').collect();
            assert!(same_as_clap(&words), "not read by the fast path: {l}");
        }
    }

    /// Generated lines: every one the fast path reads, clap reads the same; the others are
    /// clap's to read (or refuse).
    #[test]
    fn generated_lines_match_clap() {
        const WORDS: &[&str] = &[
            "run",
            "create",
            "start",
            "state",
            "kill",
            "delete",
            "list",
            "c1",
            "c2",
            "9",
            "--root",
            "/r",
            "--root=/s",
            "--root=",
            "--quiet",
            "--quiet=1",
            "--log",
            "-",
            "--log-format",
            "json",
            "--debug",
            "--policy",
            "none",
            "--learn-dir=/l",
            "--systemd-cgroup",
            "-b",
            "--bundle",
            "-d",
            "-db",
            "-a",
            "--all",
            "-f",
            "--force",
            "--probe",
            "--probe=json",
            "--preserve-fds",
            "3",
            "--preserve-fds=x",
            "--no-pivot",
            "--no-new-keyring",
            "--pid-file=/p",
            "--console-socket",
            "--",
            "--help",
            "-h",
            "--version",
            "-V",
            "--detach",
            "--bogus",
            "",
        ];
        let mut seed: u64 = 0x5eed;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) as usize % n
        };
        let mut read = 0;
        for _ in 0..150_000 {
            let len = 1 + next(6);
            let mut words: Vec<&str> = (0..len).map(|_| WORDS[next(WORDS.len())]).collect();
            // most lines need a verb and an id to be worth reading
            if next(2) == 0 {
                words.insert(next(words.len() + 1), VERBS[next(VERBS.len())].0);
                words.push(["c1", "c2"][next(2)]);
            }
            read += usize::from(same_as_clap(&words));
        }
        assert!(
            read > 1000,
            "only {read} generated lines read by the fast path"
        );
    }
}
