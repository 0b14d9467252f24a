//! `--net cni:NAME`: the plugins of a CNI 1.0 network configuration list (the conflist named
//! NAME in `/etc/cni/net.d`, or `--cni-conf-dir`), executed from `/usr/lib/cni` (Debian's
//! `containernetworking-plugins`), as the CNI specification's runtime: ADD for each plugin in
//! order once the container's network namespace exists (each given the previous result), DEL in
//! reverse order at delete, CHECK on request (`stockade net-check ID`).
//!
//! The conflist is copied into the state directory when the container is made, and the last
//! ADD result is cached in its record (`net.json`), so DEL runs with the configuration and the
//! result ADD had, whatever happens to `/etc/cni/net.d` meanwhile. `--publish` becomes the
//! `portMappings` runtime config of the plugins that declare that capability (`portmap`).
//!
//! A CNI network and the built-in bridge share nothing: CNI's plugins name their own bridges
//! (`cni0` by default), veths (`veth...`) and iptables chains (`CNI-...`), stockade its
//! `stockade0`, `stk...` and the `stockade` nftables tables.

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::{Context, Error, Result};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    pub name: String,
    /// The conflist as ADD used it (a copy in the state directory).
    pub conflist: PathBuf,
    pub cni_path: Vec<PathBuf>,
    /// CNI_NETNS given to ADD (empty until then).
    #[serde(default)]
    pub netns: String,
    /// The cached result of the last ADD.
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub publish: Vec<super::Publish>,
}

impl Record {
    /// The addresses the result gave the container.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let Some(r) = &self.result else {
            return vec![];
        };
        r["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|ip| ip["address"].as_str()?.split('/').next()?.parse().ok())
            .collect()
    }
}

fn err(msg: impl Into<String>) -> Error {
    Error::Other(format!("cni: {}", msg.into()))
}

/// Find network `name` in `dir` (`*.conflist`, `*.conf` or `*.json`, in name order, as libcni
/// does; a single-plugin `.conf` is a list of one).
fn find(dir: &Path, name: &str) -> Result<(PathBuf, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .ctx(|| format!("cni: read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            matches!(
                p.extension().and_then(|e| e.to_str()),
                Some("conflist" | "conf" | "json")
            )
        })
        .collect();
    files.sort();
    for f in files {
        let Ok(text) = std::fs::read(&f) else {
            continue;
        };
        let Ok(mut v) = serde_json::from_slice::<Value>(&text) else {
            continue;
        };
        if v["name"] != name {
            continue;
        }
        if v.get("plugins").is_none() {
            // a single plugin's config
            let version = v["cniVersion"].clone();
            v = json!({"cniVersion": version, "name": name, "plugins": [v]});
        }
        return Ok((f, v));
    }
    Err(err(format!(
        "no network {name:?} in {} (a .conflist with \"name\": {name:?})",
        dir.display()
    )))
}

/// The plugin binary `typ` in the plugin path.
fn plugin(cni_path: &[PathBuf], typ: &str) -> Result<PathBuf> {
    if typ.is_empty() || typ.contains('/') || typ.starts_with('.') {
        return Err(err(format!("plugin type {typ:?} is not a plugin name")));
    }
    cni_path
        .iter()
        .map(|d| d.join(typ))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            err(format!(
                "plugin {typ:?} not found in {} (Debian: apt-get install containernetworking-plugins)",
                cni_path
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(":")
            ))
        })
}

/// Before the clone: the network found and checked (every plugin present), its conflist
/// copied into the state directory.
pub fn prepare(plan: &super::Plan, name: &str, state_dir: &Path) -> Result<Record> {
    let (file, list) = find(&plan.cni_conf_dir, name)?;
    let plugins = list["plugins"]
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            err(format!(
                "{}: \"plugins\" is not a non-empty list",
                file.display()
            ))
        })?;
    for (i, p) in plugins.iter().enumerate() {
        let typ = p["type"]
            .as_str()
            .ok_or_else(|| err(format!("{}: plugins[{i}].type is missing", file.display())))?;
        plugin(&plan.cni_path, typ)?;
    }
    let copy = state_dir.join("cni-conflist.json");
    std::fs::write(&copy, serde_json::to_vec_pretty(&list).expect("json"))
        .ctx(|| format!("write {}", copy.display()))?;
    Ok(Record {
        name: name.to_string(),
        conflist: copy,
        cni_path: plan.cni_path.clone(),
        netns: String::new(),
        result: None,
        publish: plan.publish.clone(),
    })
}

/// One plugin's invocation: its config (with name, version, prevResult, runtimeConfig) on
/// stdin, the CNI_* environment; its result, or its error JSON turned into an error.
fn exec(
    rec: &Record,
    list: &Value,
    conf: &Value,
    command: &str,
    id: &str,
    prev: Option<&Value>,
) -> Result<Value> {
    let typ = conf["type"].as_str().unwrap_or_default();
    let bin = plugin(&rec.cni_path, typ)?;
    let mut c = conf.clone();
    c["name"] = list["name"].clone();
    c["cniVersion"] = list["cniVersion"].clone();
    if let Some(p) = prev {
        c["prevResult"] = p.clone();
    }
    if conf["capabilities"]["portMappings"] == true && !rec.publish.is_empty() {
        let maps: Vec<Value> = rec
            .publish
            .iter()
            .map(|p| json!({"hostPort": p.host, "containerPort": p.container, "protocol": p.proto.name()}))
            .collect();
        c["runtimeConfig"]["portMappings"] = json!(maps);
    }
    let path = rec
        .cni_path
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(":");
    let mut child = Command::new(&bin)
        .env_clear()
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", &rec.netns)
        .env("CNI_IFNAME", super::veth::INNER)
        .env("CNI_PATH", &path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .ctx(|| format!("cni: run {}", bin.display()))?;
    let input = serde_json::to_vec(&c).expect("json");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&input)
            .ctx(|| format!("cni: write to {typ}"))?;
    }
    let out = child
        .wait_with_output()
        .ctx(|| format!("cni: wait for {typ}"))?;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    if !out.status.success() {
        let msg = v["msg"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
        let details = v["details"].as_str().unwrap_or_default();
        return Err(err(format!(
            "{} {command} failed (code {}): {msg}{}{details}",
            typ,
            v["code"],
            if details.is_empty() { "" } else { ": " }
        )));
    }
    Ok(v)
}

fn load_list(rec: &Record) -> Result<Value> {
    let text = std::fs::read(&rec.conflist).ctx(|| format!("read {}", rec.conflist.display()))?;
    serde_json::from_slice(&text).map_err(|e| err(format!("{}: {e}", rec.conflist.display())))
}

fn unpin_netns(rec: &Record) {
    if !rec.netns.is_empty() {
        super::unpin_netns(Path::new(&rec.netns));
    }
}

/// ADD, plugin by plugin, in the namespace at `rec.netns`; the final result cached in `rec`.
pub fn add(rec: &mut Record, id: &str) -> Result<()> {
    let list = load_list(rec)?;
    let mut prev: Option<Value> = None;
    for conf in list["plugins"].as_array().into_iter().flatten() {
        let r = exec(rec, &list, conf, "ADD", id, prev.as_ref())?;
        prev = Some(r);
    }
    rec.result = prev;
    crate::diag::mark("net: cni added");
    Ok(())
}

/// DEL, plugin by plugin in reverse, with the cached result; a namespace already gone is
/// passed as empty (plugins then release what they hold on the host).
pub fn del(rec: &Record, id: &str) -> Result<()> {
    let list = match load_list(rec) {
        Ok(l) => l,
        // the copy is made before ADD ever runs: without it nothing was added
        Err(_) if !rec.conflist.exists() => {
            unpin_netns(rec);
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let mut r = rec.clone();
    if !r.netns.is_empty() && !Path::new(&r.netns).exists() {
        r.netns.clear();
    }
    let mut first_err = None;
    for conf in list["plugins"].as_array().into_iter().flatten().rev() {
        if let Err(e) = exec(&r, &list, conf, "DEL", id, rec.result.as_ref()) {
            first_err.get_or_insert(e);
        }
    }
    if first_err.is_none() {
        unpin_netns(rec);
    }
    first_err.map_or(Ok(()), Err)
}

/// CHECK, plugin by plugin, with the cached result.
pub fn check(rec: &Record, id: &str) -> Result<()> {
    let list = load_list(rec)?;
    let result = rec
        .result
        .as_ref()
        .ok_or_else(|| err("no cached ADD result: the network was never added"))?;
    for conf in list["plugins"].as_array().into_iter().flatten() {
        exec(rec, &list, conf, "CHECK", id, Some(result))?;
    }
    Ok(())
}
