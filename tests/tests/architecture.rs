//! ARCHITECTURE.md stays true to the code: every answer in its "Where is…"
//! table names a file that exists and a function defined in it, and no
//! import cycle forms between the top-level modules of the relay.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace holds tests/")
        .to_owned()
}

/// The rows of the table under `## Where is…`: (question, file, function).
fn where_is_rows(architecture: &str) -> Vec<(String, String, String)> {
    let section = architecture
        .split("\n## ")
        .find(|s| s.starts_with("Where is"))
        .expect("ARCHITECTURE.md has a \"## Where is…\" section");
    section
        .lines()
        .filter(|line| line.starts_with('|'))
        .filter_map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let code = |cell: &str| cell.strip_prefix('`')?.strip_suffix('`').map(str::to_owned);
            match cells[..] {
                [question, file, function] => {
                    Some((question.to_owned(), code(file)?, code(function)?))
                }
                _ => None,
            }
        })
        .collect()
}

/// Whether `source` defines a function (or method) called `name`.
fn defines_function(source: &str, name: &str) -> bool {
    source.lines().any(|line| {
        let line = line.trim_start();
        ["fn ", "async fn "].iter().any(|start| {
            line.split_once(start).is_some_and(|(before, after)| {
                let qualifiers_only = before
                    .split_whitespace()
                    .all(|w| w.starts_with("pub") || w == "const" || w == "unsafe");
                qualifiers_only
                    && after.starts_with(name)
                    && after[name.len()..].starts_with(['(', '<'])
            })
        })
    })
}

#[test]
fn every_where_is_answer_names_a_real_file_and_function() {
    let root = workspace();
    let architecture = std::fs::read_to_string(root.join("ARCHITECTURE.md")).unwrap();
    let rows = where_is_rows(&architecture);
    assert!(rows.len() >= 5, "the table answers too little: {rows:?}");
    let mut wrong = Vec::new();
    for (question, file, function) in &rows {
        match std::fs::read_to_string(root.join(file)) {
            Err(e) => wrong.push(format!("{question}: {file}: {e}")),
            Ok(source) if !defines_function(&source, function) => {
                wrong.push(format!("{question}: {file} defines no fn {function}"))
            }
            Ok(_) => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "ARCHITECTURE.md is out of date:\n{}",
        wrong.join("\n")
    );
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
}

/// Source without comments and without its `#[cfg(test)] mod tests`.
fn code_of(source: &str) -> String {
    let source = source
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` names through `crate::…` paths.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        // `$crate::` in a macro is the crate itself, not a module.
        if code[..at].ends_with('$') {
            continue;
        }
        let rest = &code[at + "crate::".len()..];
        let first: String = if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let head: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                named.insert(head);
            }
            continue;
        } else {
            rest.chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect()
        };
        named.insert(first);
    }
    named
}

/// Edges between the top-level modules of the crate whose sources are in
/// `src`. A name that is no module (`crate::AppState`) is the crate root's.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let module_of = |file: &Path| -> String {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap().as_os_str();
        let name = first.to_string_lossy().trim_end_matches(".rs").to_owned();
        if name == "lib" || name == "main" || name == "bin" {
            "(crate root)".to_owned()
        } else {
            name
        }
    };
    let modules: BTreeSet<String> = files.iter().map(|f| module_of(f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let from = module_of(file);
        let code = code_of(&std::fs::read_to_string(file).unwrap());
        let edges = graph.entry(from.clone()).or_default();
        for name in crate_paths(&code) {
            let to = if modules.contains(&name) {
                name
            } else {
                "(crate root)".to_owned()
            };
            if to != from {
                edges.insert(to);
            }
        }
    }
    graph
}

/// A cycle in `graph`, if there is one, as the path around it.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

#[test]
fn the_cycle_finder_finds_cycles() {
    let graph = |edges: &[(&str, &str)]| {
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            graph
                .entry((*from).into())
                .or_default()
                .insert((*to).into());
        }
        graph
    };
    assert_eq!(find_cycle(&graph(&[("a", "b"), ("b", "c")])), None);
    assert_eq!(
        find_cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    let code = "use crate::{relay::Relay, store};\n// crate::commented\nfn f() { crate::clock::unix_now(); $crate::x }";
    assert_eq!(
        crate_paths(&code_of(code)),
        ["clock", "relay", "store"].map(String::from).into()
    );
}

#[test]
fn no_import_cycle_between_the_modules_of_the_relay() {
    let mut graph = module_graph(&workspace().join("server/src"));
    // The crate root declares the modules and wires them; that it is used
    // by them (`crate::AppState`) is no cycle between modules.
    graph.remove("(crate root)");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("server/src: import cycle {}", cycle.join(" -> "));
    }
}

#[test]
fn no_import_cycle_between_the_modules_of_the_client_core() {
    let mut graph = module_graph(&workspace().join("client-core/src"));
    // As for the relay: the crate root only declares and re-exports.
    graph.remove("(crate root)");
    if let Some(cycle) = find_cycle(&graph) {
        panic!("client-core/src: import cycle {}", cycle.join(" -> "));
    }
}
