//! The shape of the tree: no import cycle between the library's top-level modules, and no
//! source file of the workspace that holds more than 1,200 lines of non-test code.
//!
//! `cargo test -p signal-trace --test architecture -- --nocapture` prints the module graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_CODE_LINES: usize = 1_200;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if !matches!(
                p.file_name().and_then(|n| n.to_str()),
                Some("target" | "corpus" | "artifacts")
            ) {
                rust_files(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The top-level module a file of `src/` belongs to (`None` for the crate roots).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?.to_owned();
    match first.as_str() {
        "lib.rs" | "main.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_owned()),
    }
}

/// The top-level modules named as `crate::NAME` in code (comments are left out).
fn references(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
            rest = after;
        }
    }
    out
}

fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in &files {
        let Some(module) = top_module(&src, f) else {
            continue;
        };
        let text = fs::read_to_string(f).expect("readable source");
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(references(&text).into_iter().filter(|d| *d != module));
    }
    graph
}

/// A cycle through `node`, if the graph has one reachable from it.
fn find_cycle(
    graph: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|n| n == node) {
        let mut cycle = path[i..].to_vec();
        cycle.push(node.to_owned());
        return Some(cycle);
    }
    if done.contains(node) {
        return None;
    }
    path.push(node.to_owned());
    for next in graph.get(node).into_iter().flatten() {
        if let Some(c) = find_cycle(graph, next, path, done) {
            return Some(c);
        }
    }
    path.pop();
    done.insert(node.to_owned());
    None
}

#[test]
fn top_level_modules_form_no_cycle() {
    let graph = module_graph();
    for (m, deps) in &graph {
        let deps: Vec<_> = deps.iter().map(String::as_str).collect();
        println!("{m} -> {}", deps.join(", "));
    }
    for expected in [
        "kernel", "event", "workload", "filter", "sink", "explain", "inspect",
    ] {
        assert!(graph.contains_key(expected), "no module {expected} in src/");
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(cycle) = find_cycle(&graph, m, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn cycle_finder_sees_a_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    let cycle = find_cycle(&g, "a", &mut Vec::new(), &mut BTreeSet::new());
    assert_eq!(
        cycle,
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    g.get_mut("c").unwrap().clear();
    assert_eq!(
        find_cycle(&g, "a", &mut Vec::new(), &mut BTreeSet::new()),
        None
    );
    assert_eq!(
        references("use crate::event::record; // crate::sink\nx(crate::kernel::tracer::f)"),
        ["event", "kernel"].map(String::from).into()
    );
}

/// Lines of a file that are not its `#[cfg(test)] mod tests { … }` block.
fn code_lines(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let test_block = lines
        .windows(2)
        .position(|w| w[0].trim() == "#[cfg(test)]" && w[1].trim_end().ends_with("mod tests {"));
    test_block.unwrap_or(lines.len())
}

#[test]
fn no_file_holds_more_than_its_share_of_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf();
    let mut files = Vec::new();
    for krate in [
        "signal-trace",
        "signal-trace-ebpf",
        "signal-trace-common",
        "xtask",
    ] {
        rust_files(&root.join(krate), &mut files);
    }
    assert!(files.len() > 40, "only {} source files found", files.len());
    let mut sized: Vec<(usize, PathBuf)> = files
        .into_iter()
        // Test modules in files of their own are test code.
        .filter(|f| {
            f.file_name().is_some_and(|n| n != "tests.rs")
                && !f.components().any(|c| c.as_os_str() == "tests")
        })
        .map(|f| {
            let text = fs::read_to_string(&f).expect("readable source");
            (code_lines(&text), f)
        })
        .collect();
    sized.sort();
    for (n, f) in sized.iter().rev().take(3) {
        println!("{n:>5} {}", f.strip_prefix(&root).unwrap_or(f).display());
    }
    let big: Vec<String> = sized
        .iter()
        .filter(|(n, _)| *n > MAX_CODE_LINES)
        .map(|(n, f)| format!("{} ({n} lines)", f.display()))
        .collect();
    assert!(
        big.is_empty(),
        "files over {MAX_CODE_LINES} lines of non-test code: {}",
        big.join(", ")
    );
}
