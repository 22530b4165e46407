//! burr-core's layering, checked over its sources: each module imports only the modules
//! below it, internal paths name a module (`crate::state::State`, never a root re-export),
//! and no two files import each other except a module and its own files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// burr-core's modules from the bottom up: each may import only those before it.
const LAYERS: [&str; 11] = [
    "ids",
    "state",
    "actions",
    "condition",
    "graph",
    "persistence",
    "cache",
    "error",
    "hooks",
    "application",
    "parallel",
];

/// Root items that are not modules but may be named from inside (macros and the hidden
/// support module).
const ROOT_ITEMS: [&str; 3] = ["__private", "inputs", "transitions"];

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("the source directory reads") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file: comments removed, and unit-test modules (`#[cfg(test)]` and what
/// follows, `tests.rs` files) left out, since tests may reach anywhere.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("a source file reads");
    let text = text.split("#[cfg(test)]").next().unwrap_or_default();
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A file's module path: `persistence/sqlite/mod.rs` -> `persistence::sqlite`.
fn module_of(rel: &Path) -> String {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts.join("::")
}

/// The `crate::…` paths a piece of code names, whole (`crate::persistence::Persister`),
/// with grouped imports expanded one level (`use crate::ids::{A, B}` gives `crate::ids`).
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$' || c == ':') {
            paths.push(tail[..end].trim_end_matches(':').to_owned());
        }
        rest = &tail[end..];
    }
    paths
}

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|m| *m == module)
}

#[test]
fn modules_import_only_the_layers_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        if rel.file_name().is_some_and(|f| f == "tests.rs") {
            continue;
        }
        let module = module_of(rel);
        let top = module.split("::").next().unwrap_or_default().to_owned();
        let Some(own) = rank(&top) else {
            continue; // lib.rs, prelude.rs, macro_support.rs sit above every layer.
        };
        for path in crate_paths(&code(file)) {
            let named = path.split("::").nth(1).unwrap_or_default();
            match rank(named) {
                Some(r) if r > own => problems.push(format!(
                    "{}: `{top}` imports `{path}`, a layer above it",
                    rel.display()
                )),
                Some(_) => {}
                None if ROOT_ITEMS.contains(&named) => {}
                None => problems.push(format!(
                    "{}: `{path}` goes through the crate root; name the module",
                    rel.display()
                )),
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn no_two_files_import_each_other() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let modules: BTreeSet<String> = files
        .iter()
        .map(|f| module_of(f.strip_prefix(&src).expect("under src")))
        .collect();
    // The file a path lands in: its longest prefix that is a file's module.
    let resolve = |path: &[&str]| -> Option<String> {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].join("::"))
            .find(|m| modules.contains(m))
    };
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let rel = file.strip_prefix(&src).expect("under src");
        if rel.file_name().is_some_and(|f| f == "tests.rs") {
            continue;
        }
        let module = module_of(rel);
        let here: Vec<&str> = module.split("::").filter(|p| !p.is_empty()).collect();
        let code = code(file);
        let mut targets = Vec::new();
        for path in crate_paths(&code) {
            let parts: Vec<&str> = path.split("::").skip(1).collect();
            targets.extend(resolve(&parts));
        }
        for line in code.lines().map(str::trim) {
            let Some(path) = line
                .strip_prefix("use super::")
                .or_else(|| line.strip_prefix("pub(crate) use super::"))
                .or_else(|| line.strip_prefix("pub use super::"))
            else {
                continue;
            };
            // `super` of a file is its module's parent; of a `mod.rs`, the directory's parent.
            let parent = &here[..here.len().saturating_sub(1)];
            let end = path
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(path.len());
            let mut parts: Vec<&str> = parent.to_vec();
            parts.extend(path[..end].split("::").filter(|p| !p.is_empty()));
            targets.extend(resolve(&parts));
        }
        for target in targets {
            if target != module {
                edges.entry(module.clone()).or_default().insert(target);
            }
        }
    }
    // A module and its own files may name each other (`pub use child::X` / `use super::X`).
    let related = |a: &str, b: &str| {
        a.is_empty()
            || b.is_empty()
            || a.starts_with(&format!("{b}::"))
            || b.starts_with(&format!("{a}::"))
    };
    let mut cycles = Vec::new();
    for (from, tos) in &edges {
        for to in tos {
            if from < to
                && !related(from, to)
                && edges.get(to).is_some_and(|back| back.contains(from))
            {
                cycles.push(format!("{from} <-> {to}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "files importing each other:\n{}",
        cycles.join("\n")
    );
}
