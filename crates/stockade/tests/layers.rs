//! The library's modules form layers (lib.rs's doc draws them): front ends → engine → plan →
//! subsystems → bottom. This test reads every `crate::` path of src/ (comments aside), builds
//! the graph of top-level modules, and fails on a circle, or on an edge that goes up a layer,
//! naming the file and line.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module's layer (0 is the bottom). A module missing here fails the test: a new
/// module says where it belongs.
const LAYERS: &[(&str, u8)] = &[
    // bottom: no subsystem knowledge
    ("sys", 0),
    ("diag", 0),
    ("error", 0),
    ("ebpf", 0),
    ("dbus", 0),
    ("procfs", 0),
    ("mountinfo", 0),
    ("capabilities", 0),
    ("landlock", 0),
    ("init", 0),
    ("tty", 0),
    ("spec", 0),
    // subsystems: one concept of the seed each
    ("cgroups", 1),
    ("namespaces", 1),
    ("rootfs", 1),
    ("net", 1),
    ("seccomp", 1),
    ("process", 1),
    ("hooks", 1),
    ("state", 1),
    ("idpool", 1),
    ("agent", 1),
    ("learn", 1),
    // the plan: validation and decisions, made once
    ("plan", 2),
    // the engine
    ("container", 3),
    ("lifecycle", 3),
    // front ends
    ("sandbox", 4),
    ("policy", 4),
    ("audit", 4),
    ("probe", 4),
    ("scenario", 4),
];

/// Upward edges known and owed, each with why it is still there (none today).
const OWED: &[(&str, &str, &str)] = &[];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// (from, to) → the first place it is seen.
fn edges(src: &Path) -> BTreeMap<(String, String), String> {
    let mut files = vec![];
    rust_files(src, &mut files);
    let mut out = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "main" || top == "cli" || top == "lib" {
            continue; // the binary's edge, and the list of modules
        }
        for (n, line) in std::fs::read_to_string(&f).unwrap().lines().enumerate() {
            let code = line.split("//").next().unwrap();
            let mut rest = code;
            while let Some(i) = rest.find("crate::") {
                rest = &rest[i + 7..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != top {
                    out.entry((top.clone(), name))
                        .or_insert_with(|| format!("{}:{}", rel.display(), n + 1));
                }
            }
            // `use crate::{a, b::c}` lists
            if let Some(i) = code.find("crate::{") {
                for part in code[i + 8..].split(',') {
                    let name: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != top && name != "self" {
                        out.entry((top.clone(), name))
                            .or_insert_with(|| format!("{}:{}", rel.display(), n + 1));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn top_level_modules_form_layers_without_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer: BTreeMap<&str, u8> = LAYERS.iter().copied().collect();
    let e = edges(&src);
    let mut modules: BTreeSet<String> = BTreeSet::new();
    for (a, b) in e.keys() {
        modules.insert(a.clone());
        modules.insert(b.clone());
    }
    // every module has a layer
    let unplaced: Vec<&String> = modules
        .iter()
        .filter(|m| {
            !layer.contains_key(m.as_str()) && m.as_str() != "Error" && m.as_str() != "Result"
        })
        .collect();
    assert!(
        unplaced.is_empty(),
        "modules without a layer in LAYERS: {unplaced:?}"
    );
    // no edge goes up a layer, but the ones owed
    let mut up = vec![];
    for ((a, b), at) in &e {
        let (Some(la), Some(lb)) = (layer.get(a.as_str()), layer.get(b.as_str())) else {
            continue;
        };
        let owed = OWED.iter().any(|(x, y, _)| x == a && y == b);
        if lb > la && !owed {
            up.push(format!("{a} (layer {la}) -> {b} (layer {lb}) at {at}"));
        }
    }
    assert!(up.is_empty(), "edges up a layer:\n{}", up.join("\n"));
    // each owed edge is still there (remove it from OWED once paid)
    for (a, b, why) in OWED {
        assert!(
            e.contains_key(&(a.to_string(), b.to_string())),
            "{a} -> {b} is gone: remove it from OWED ({why})"
        );
    }
    // no circle, within a layer either: depth-first search with colours
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (a, b) in e.keys() {
        if layer.contains_key(b.as_str()) {
            graph.entry(a.as_str()).or_default().push(b.as_str());
        }
    }
    fn visit<'a>(
        n: &'a str,
        g: &BTreeMap<&'a str, Vec<&'a str>>,
        colour: &mut BTreeMap<&'a str, u8>,
        path: &mut Vec<&'a str>,
    ) -> Option<Vec<&'a str>> {
        colour.insert(n, 1);
        path.push(n);
        for &m in g.get(n).into_iter().flatten() {
            match colour.get(m).copied().unwrap_or(0) {
                1 => {
                    let i = path.iter().position(|x| *x == m).unwrap();
                    let mut c = path[i..].to_vec();
                    c.push(m);
                    return Some(c);
                }
                0 => {
                    if let Some(c) = visit(m, g, colour, path) {
                        return Some(c);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        colour.insert(n, 2);
        None
    }
    let mut colour = BTreeMap::new();
    for &n in graph.keys() {
        if colour.get(n).copied().unwrap_or(0) == 0 {
            if let Some(c) = visit(n, &graph, &mut colour, &mut vec![]) {
                let hops: Vec<String> = c
                    .windows(2)
                    .map(|w| {
                        format!(
                            "{} -> {} ({})",
                            w[0],
                            w[1],
                            e[&(w[0].to_string(), w[1].to_string())]
                        )
                    })
                    .collect();
                panic!("an import circle:\n{}", hops.join("\n"));
            }
        }
    }
}
