//! The audit's reports as a table, JSON and SARIF.

use super::*;

/// The highest severity among all findings.
pub fn worst(reports: &[Report]) -> Option<Severity> {
    reports
        .iter()
        .flat_map(|r| r.findings.iter().map(|f| f.severity))
        .max()
}

fn counts(reports: &[Report]) -> [usize; 3] {
    let mut c = [0; 3];
    for f in reports.iter().flat_map(|r| &r.findings) {
        c[f.severity as usize] += 1;
    }
    c
}

pub fn to_table(reports: &[Report], colour: bool) -> String {
    let mut s = String::new();
    let paint = |sev: Severity| -> String {
        let code = match sev {
            Severity::High => "31",
            Severity::Medium => "33",
            Severity::Low => "36",
        };
        let label = sev.as_str().to_ascii_uppercase();
        if colour {
            format!("\x1b[{code}m{label:<6}\x1b[0m")
        } else {
            format!("{label:<6}")
        }
    };
    for r in reports {
        let _ = writeln!(s, "== {} ==", r.target);
        if let Some(why) = &r.partial {
            let _ = writeln!(s, "   PARTIAL: {why}");
        }
        for n in &r.notes {
            let _ = writeln!(s, "   note: {n}");
        }
        if r.findings.is_empty() {
            let _ = writeln!(s, "   no findings");
        }
        for sec in [NS, RES, CAP, SET, SC, DEV] {
            let fs: Vec<&Finding> = r
                .findings
                .iter()
                .filter(|f| f.rule.section == sec)
                .collect();
            if fs.is_empty() {
                continue;
            }
            let _ = writeln!(s, "-- {sec}");
            for f in fs {
                let cis = f.rule.cis.map(|c| format!(" CIS {c}")).unwrap_or_default();
                let _ = writeln!(
                    s,
                    "   {} {}{}: {} — {}",
                    paint(f.severity),
                    f.rule.id,
                    cis,
                    f.rule.title,
                    f.message
                );
                for e in &f.evidence {
                    let _ = writeln!(s, "          evidence: {e}");
                }
                let _ = writeln!(
                    s,
                    "          fix: docker: {}; kubernetes: {}; oci: {}",
                    f.rule.fix.docker, f.rule.fix.kubernetes, f.rule.fix.oci
                );
            }
        }
    }
    let [l, m, h] = counts(reports);
    let _ = writeln!(
        s,
        "{} target(s): {h} high, {m} medium, {l} low",
        reports.len()
    );
    s
}

pub fn to_json(reports: &[Report]) -> serde_json::Value {
    let [l, m, h] = counts(reports);
    serde_json::json!({
        "reports": reports,
        "summary": {"high": h, "medium": m, "low": l},
    })
}

/// SARIF 2.1.0, for code scanning: one rule per stockade rule that fired, one result per
/// finding, located in the audited file with the evidence as a logical location.
pub fn to_sarif(reports: &[Report]) -> serde_json::Value {
    let mut rules: Vec<&Rule> = reports
        .iter()
        .flat_map(|r| r.findings.iter().map(|f| f.rule))
        .collect();
    rules.sort_by_key(|r| r.id);
    rules.dedup_by_key(|r| r.id);
    let index = |id: &str| rules.iter().position(|r| r.id == id).unwrap_or(0);
    let sarif_rules: Vec<serde_json::Value> = rules
        .iter()
        .map(|r| {
            let cis = r.cis.map(|c| format!("CIS Docker Benchmark {c}; ")).unwrap_or_default();
            serde_json::json!({
                "id": r.id,
                "name": r.title,
                "shortDescription": {"text": r.title},
                "fullDescription": {"text": format!("{cis}seed section: {}", r.section)},
                "help": {"text": format!("docker: {}\nkubernetes: {}\noci: {}", r.fix.docker, r.fix.kubernetes, r.fix.oci)},
                "properties": {"tags": ["security", r.section], "cis": r.cis},
            })
        })
        .collect();
    let mut results = vec![];
    for r in reports {
        for f in &r.findings {
            let mut loc = serde_json::json!({
                "logicalLocations": f.evidence.iter().map(|e| serde_json::json!({"fullyQualifiedName": e})).collect::<Vec<_>>(),
            });
            if let Some(file) = &r.file {
                loc["physicalLocation"] = serde_json::json!({"artifactLocation": {"uri": file}});
            }
            results.push(serde_json::json!({
                "ruleId": f.rule.id,
                "ruleIndex": index(f.rule.id),
                "level": f.severity.sarif_level(),
                "message": {"text": format!("{}: {}: {}", r.target, f.rule.title, f.message)},
                "locations": [loc],
                "properties": {"severity": f.severity.as_str(), "target": r.target},
            }));
        }
    }
    serde_json::json!({
        "version": "2.1.0",
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "runs": [{
            "tool": {"driver": {
                "name": "stockade",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": sarif_rules,
            }},
            "results": results,
        }],
    })
}
