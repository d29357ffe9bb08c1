//! The crate's modules import one way: no cycle among the top-level modules of harness/src (data flows scenario -> seeds -> fleet -> drive -> target -> verify/measure -> report -> views).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            out.push(path);
        }
    }
}

/// The code of a source file: no `#[cfg(test)] mod tests { ... }` block (tests may reach
/// anywhere) and no comments (a doc link is not an import).
fn code_of(source: &str) -> String {
    let before_tests = source
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or(source);
    before_tests
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Top-level module -> the top-level modules it names through `crate::`.
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).expect("under src");
        let name = relative.to_string_lossy();
        let top = name
            .split('/')
            .next()
            .unwrap_or_default()
            .trim_end_matches(".rs");
        if top == "lib" || top == "main" || name.ends_with("tests.rs") {
            continue;
        }
        let text = code_of(&std::fs::read_to_string(&file).expect("readable source"));
        let targets = graph.entry(top.to_string()).or_default();
        for (index, _) in text.match_indices("crate::") {
            let rest = &text[index + "crate::".len()..];
            let mut names = vec![rest];
            if let Some(list) = rest.strip_prefix('{') {
                names = list
                    .split('}')
                    .next()
                    .unwrap_or_default()
                    .split(',')
                    .collect();
            }
            for name in names {
                let module: String = name
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if !module.is_empty() && module != top {
                    targets.insert(module);
                }
            }
        }
    }
    graph
}

/// A cycle through `start`, if any: the path of modules back to it.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((module, path)) = stack.pop() {
        for next in graph.get(&module).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_import_cycle_among_the_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = imports(&src);
    assert!(graph.len() > 10, "found the modules: {graph:?}");
    assert!(
        graph["run"].contains("targets"),
        "found the imports: {graph:?}"
    );
    let cycles: Vec<Vec<String>> = graph
        .keys()
        .filter_map(|module| cycle_from(&graph, module))
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:?}");
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["c".to_string()])),
        ("c".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(
        cycle_from(&graph, "a"),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
}
