//! The shape of the code: no import cycle between top-level modules, and the Celery engine, the
//! redaction, the file helpers and the pod status helpers are leaves of the app.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules it names (`crate::x`).
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![];
    for e in std::fs::read_dir(&src).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            for f in std::fs::read_dir(&p).unwrap() {
                files.push((p.file_name().unwrap().to_string_lossy().to_string(), f.unwrap().path()));
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            let name = p.file_stem().unwrap().to_string_lossy().to_string();
            files.push((name, p));
        }
    }
    for (module, path) in files {
        if module == "lib" || module == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let deps = g.entry(module.clone()).or_default();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
            if !name.is_empty() && name != module && name.chars().next().unwrap().is_ascii_lowercase() && name != "STARTED" {
                deps.insert(name);
            }
        }
    }
    g
}

#[test]
fn no_import_cycle_between_modules() {
    let g = graph();
    // Depth-first search for a cycle.
    fn visit(n: &str, g: &BTreeMap<String, BTreeSet<String>>, stack: &mut Vec<String>, done: &mut BTreeSet<String>) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for d in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(d, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(n, &g, &mut vec![], &mut done) {
            panic!("import cycle: {}\ngraph: {g:#?}", c.join(" → "));
        }
    }
    // The leaves import nothing of the app but `redact`; the engine may also use `files` (a leaf
    // itself: capped reads of its state file).
    for leaf in ["redact", "files", "celery", "pods"] {
        let deps = &g[leaf];
        let allowed = |d: &String| d == "redact" || (leaf == "celery" && d == "files");
        assert!(deps.iter().all(allowed), "{leaf} must not import the app: {deps:?}");
    }
}
