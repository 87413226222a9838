//! The crate's layout stays a pipeline: its folders are layered as a request meets them,
//! and no folder imports one above it; and no source file imports a file that imports it
//! back, directly or through a cycle of `crate::` and `super::` paths.
//!
//! Each file is a module (`a/b.rs` and `a/b/mod.rs` are `a::b`); a path names the file of
//! its longest prefix that is a module. Test modules (after `#[cfg(test)]`) and comments
//! are left out, since they may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

/// The crate's folders (and top-level files) as layers, lowest first: a module may import
/// its own folder and the layers below it, never a layer above nor a peer in its own.
/// The guest knows nothing of the listeners (`front`), the catalogue or the config; the config only of the
/// settings it gives guests; the runtime (engine, ticker, linkers) sits below the
/// catalogue, which knows nothing of where a module came from beyond the directory.
const LAYERS: &[&[&str]] = &[
    &["outcome", "logging", "shutdown"],
    &["metrics"],
    &["kv"],
    &["guest"],
    &["config"],
    &["runtime"],
    &["catalogue"],
    &["sources"],
    &["front"],
    &["gateway", "commands"],
];

/// Every module file under `src/`, by module path (the crate root is `[]`).
fn modules(src: &Path) -> BTreeMap<ModPath, PathBuf> {
    let mut found = BTreeMap::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|n| n != "bin") {
                    dirs.push(path);
                }
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(src).unwrap().with_extension("");
            let mut parts: ModPath = rel.iter().map(|p| p.to_string_lossy().into()).collect();
            match parts.last().map(String::as_str) {
                Some("mod") | Some("lib") => {
                    parts.pop();
                }
                Some("main") => continue,
                _ => {}
            }
            found.insert(parts, path);
        }
    }
    found
}

/// The module paths that `text` (the source of module `of`) names through `crate::` or
/// `super::`.
fn named_paths(of: &ModPath, text: &str) -> Vec<ModPath> {
    let code: String = text
        .split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .lines()
        .map(|l| l.split("//").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    let mut paths = Vec::new();
    for (start, anchor) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        if code[..start]
            .chars()
            .last()
            .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':')
        {
            continue;
        }
        let rest = &code[start + anchor.len()..];
        let words: Vec<&str> = rest
            .split("::")
            .map(|w| {
                let end = w
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(w.len());
                &w[..end]
            })
            .take_while(|w| !w.is_empty())
            .collect();
        let mut base: ModPath = match anchor {
            "crate::" => Vec::new(),
            _ => of[..of.len().saturating_sub(1)].to_vec(),
        };
        let mut words = words.as_slice();
        while let Some((&"super", rest)) = words.split_first() {
            base.pop();
            words = rest;
        }
        base.extend(words.iter().map(|w| w.to_string()));
        paths.push(base);
    }
    paths
}

/// The file-level import graph: module → the modules it names.
fn import_graph(src: &Path) -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let files = modules(src);
    let resolve = |path: &ModPath| {
        (1..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|prefix| files.contains_key(prefix))
    };
    files
        .iter()
        .map(|(module, file)| {
            let text = std::fs::read_to_string(file).unwrap();
            let targets = named_paths(module, &text)
                .iter()
                .filter_map(resolve)
                .filter(|t| t != module)
                .collect();
            (module.clone(), targets)
        })
        .collect()
}

/// A cycle in `graph`, if there is one.
fn find_cycle(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Option<Vec<ModPath>> {
    fn visit(
        node: &ModPath,
        graph: &BTreeMap<ModPath, BTreeSet<ModPath>>,
        done: &mut BTreeSet<ModPath>,
        stack: &mut Vec<ModPath>,
    ) -> Option<Vec<ModPath>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.clone());
            return Some(cycle);
        }
        if !done.insert(node.clone()) {
            return None;
        }
        stack.push(node.clone());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut done, &mut Vec::new()))
}

/// The layer of a module's top-level folder (or file); `None` for the crate root.
fn layer(module: &ModPath) -> Option<usize> {
    let top = module.first()?;
    let found = LAYERS
        .iter()
        .position(|layer| layer.contains(&top.as_str()));
    Some(found.unwrap_or_else(|| panic!("`{top}` is in no layer of tests/layout.rs")))
}

/// Every import in `graph` that reaches a layer above its own, or a peer folder in it, as
/// `importer -> imported`.
fn layer_violations(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<String> {
    let mut found = Vec::new();
    for (from, targets) in graph {
        let Some(from_layer) = layer(from) else {
            continue;
        };
        for to in targets {
            let Some(to_layer) = layer(to) else {
                continue;
            };
            let same_folder = from.first() == to.first();
            if to_layer > from_layer || (to_layer == from_layer && !same_folder) {
                found.push(format!("{} -> {}", from.join("::"), to.join("::")));
            }
        }
    }
    found
}

#[test]
fn no_folder_imports_a_layer_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let violations = layer_violations(&import_graph(&src));
    assert!(violations.is_empty(), "{violations:#?}");
}

/// The checker finds a guest that reaches up into the listeners (`front`) and a catalogue that
/// imports module sources back, while the same imports downward pass.
#[test]
fn a_planted_layer_violation_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    for folder in ["guest", "front", "catalogue", "sources"] {
        std::fs::create_dir(src.join(folder)).unwrap();
    }
    std::fs::write(
        src.join("lib.rs"),
        "mod catalogue; mod guest; mod front; mod sources;\n",
    )
    .unwrap();
    std::fs::write(src.join("guest/mod.rs"), "mod run;\n").unwrap();
    std::fs::write(src.join("guest/run.rs"), "use crate::front::body::Limit;\n").unwrap();
    std::fs::write(src.join("front/mod.rs"), "pub mod body;\n").unwrap();
    std::fs::write(src.join("front/body.rs"), "use crate::guest::run;\n").unwrap();
    std::fs::write(
        src.join("catalogue/mod.rs"),
        "use crate::sources::Checks;\n",
    )
    .unwrap();
    std::fs::write(
        src.join("sources/mod.rs"),
        "use crate::catalogue::ModuleTable;\n",
    )
    .unwrap();
    let violations = layer_violations(&import_graph(src));
    assert_eq!(
        violations,
        ["catalogue -> sources", "guest::run -> front::body"],
        "the downward imports (front -> guest, sources -> catalogue) pass"
    );
}

#[test]
fn no_source_file_imports_a_file_that_imports_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    assert!(graph.len() > 30, "{} modules found", graph.len());
    if let Some(cycle) = find_cycle(&graph) {
        let shown: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
        panic!("import cycle: {}", shown.join(" -> "));
    }
}

/// The checker itself finds a cycle when there is one, through `super::` as well.
#[test]
fn a_cycle_through_super_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir(src.join("a")).unwrap();
    std::fs::write(src.join("lib.rs"), "mod a;\n").unwrap();
    std::fs::write(src.join("a/mod.rs"), "mod x; mod y;\n").unwrap();
    std::fs::write(src.join("a/x.rs"), "use super::y::Y;\n// crate::nowhere\n").unwrap();
    std::fs::write(src.join("a/y.rs"), "use crate::a::x::X;\n").unwrap();
    let cycle = find_cycle(&import_graph(src)).expect("a cycle");
    let shown: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    assert!(shown.contains(&"a::x".to_string()) && shown.contains(&"a::y".to_string()));
}
