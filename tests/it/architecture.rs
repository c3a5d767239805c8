//! The architecture test: reads every source file's references to the crate's top-level modules
//! (`crate::x` in `use` lines and paths) and fails when a forbidden dependency appears. The rules
//! are the layering of `ARCHITECTURE.md`: a lower floor never knows a higher one.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Every module of the domain: what `engine` and `text` must not know.
const DOMAIN: &[&str] = &[
    "app",
    "autoscale",
    "backend",
    "cluster",
    "experiment",
    "metrics",
    "report",
    "rl",
    "scaling",
    "scenario",
    "sim",
    "workload",
];

/// The modules below the domain: they may be used by all and use none of it.
const LEAVES: &[&str] = &["engine", "text"];

/// `(module, modules it must not reference, why)`.
const FORBIDDEN: &[(&str, &[&str], &str)] = &[
    ("engine", DOMAIN, "the engine knows no domain"),
    ("text", DOMAIN, "text helpers know no domain"),
    (
        "autoscale",
        &["sim", "cluster", "rl", "backend", "experiment", "report"],
        "policies see views, not the cluster or the simulator",
    ),
    ("sim", &["autoscale", "rl", "experiment", "report"], "the simulator is a backend, not a controller"),
    ("metrics", &["report", "experiment", "rl", "autoscale"], "metrics are below everything that reads them"),
    ("rl", &["report", "experiment"], "agents know no charts or run folders"),
    ("report", &["experiment", "sim", "rl", "backend", "autoscale"], "reports read files only"),
    ("scenario", &["sim", "autoscale", "rl", "backend", "experiment", "report", "metrics"], "scenarios are data"),
    (
        "workload",
        &["scenario", "sim", "autoscale", "rl", "backend", "experiment", "report", "metrics"],
        "workloads are data",
    ),
];

/// Dependencies that break a rule today and are to go, each with the move that removes it. The
/// test fails on any other violation, and on an entry here that no longer occurs (remove it).
const PENDING: &[(&str, &str, &str)] = &[];

/// Crate names only one module may use: `(crate, the module)`.
const OWNED_CRATES: &[(&str, &[&str])] = &[
    ("dfdx", &["rl"]),
    ("plotters", &["report"]),
    ("tiny_http", &["backend"]),
    ("ureq", &["backend"]),
    ("std::net", &["backend"]),
    ("Command::new", &["backend"]),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a source file belongs to (`main` for `src/main.rs`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
    first.trim_end_matches(".rs").to_string()
}

/// The top-level modules `text` references as `crate::x` (also inside `crate::{a, b::c}`).
fn referenced(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let names: Vec<&str> = if let Some(group) = rest.strip_prefix('{') {
            let inner = group.split('}').next().unwrap_or("");
            inner.split(',').map(|p| p.trim()).collect()
        } else {
            vec![rest]
        };
        for n in names {
            let head: String = n.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if DOMAIN.contains(&head.as_str()) || LEAVES.contains(&head.as_str()) {
                out.insert(head);
            }
        }
    }
    out
}

/// Lines that are code (comments and doc comments left out).
fn code(text: &str) -> String {
    text.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

#[test]
fn architecture_layering_holds() {
    let src = crate::root().join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let mut violations = Vec::new();
    let mut seen_pending = BTreeSet::new();
    for f in &files {
        let module = module_of(&src, f);
        let text = code(&std::fs::read_to_string(f).unwrap());
        let refs = referenced(&text);
        for (m, banned, why) in FORBIDDEN {
            if *m != module {
                continue;
            }
            for b in refs.iter().filter(|r| banned.contains(&r.as_str())) {
                if PENDING.iter().any(|(pm, pb, _)| *pm == module && pb == b) {
                    seen_pending.insert((module.clone(), b.clone()));
                    continue;
                }
                violations.push(format!("{}: {module} uses {b} ({why})", f.strip_prefix(&src).unwrap().display()));
            }
        }
        for (name, owners) in OWNED_CRATES {
            if text.contains(name) && !owners.contains(&module.as_str()) && module != "main" {
                violations.push(format!(
                    "{}: names {name}, which only {owners:?} may",
                    f.strip_prefix(&src).unwrap().display()
                ));
            }
        }
    }
    for (m, b, move_) in PENDING {
        if !seen_pending.contains(&(m.to_string(), b.to_string())) {
            violations.push(format!("{m} no longer uses {b}: remove it from PENDING ({move_})"));
        }
    }
    assert!(violations.is_empty(), "architecture rules broken:\n{}", violations.join("\n"));
}

/// The reader of `crate::` paths itself, on the shapes it must see through.
#[test]
fn architecture_reader_sees_grouped_and_inline_paths() {
    let t = "use crate::{engine::SimTime, metrics::ClusterView};\nlet x = crate::rl::Action::noop();\nuse crate::text;";
    let refs: Vec<String> = referenced(t).into_iter().collect();
    assert_eq!(refs, ["engine", "metrics", "rl", "text"]);
    assert!(code("// crate::sim in a comment\nfn f() {}").find("crate::").is_none());
}
