//! The docs name only what exists: every repository path and `roadtest` subcommand shown in README.md, CONTRIBUTING.md and docs/*.md, and every relative link (with its #anchor) between them; and every scenario file the repository ships loads.
//!
//! What counts as a repository path: a word inside backticks (inline or a fenced block) that
//! starts with one of the repository's top-level folders (`harness/`, `scenarios/`,
//! `reports/`, `benches/`, `ci/`, `docs/`, `.ci/`) or is one of its top-level files. Skipped by
//! rule: paths under `reports/runs/` and `reports/bench/` (generated, git-ignored) and paths
//! holding a placeholder (an upper-case word from `PLACEHOLDERS`, `<`, `>`, `*` or `...`). A
//! subcommand is the word after `roadtest ` inside backticks; it must answer
//! `roadtest SUBCOMMAND --help` with exit 0.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const TOP_LEVEL_FOLDERS: &[&str] = &[
    "harness/",
    "scenarios/",
    "reports/",
    "benches/",
    "ci/",
    "docs/",
    ".ci/",
];
const TOP_LEVEL_FILES: &[&str] = &["README.md", "CONTRIBUTING.md", "Cargo.toml", "Cargo.lock"];
/// Upper-case words that stand for something the reader supplies (`reports/baselines/NAME.json`).
const PLACEHOLDERS: &[&str] = &[
    "NAME", "RUN", "DIR", "FILE", "SEED", "TIME", "OUT", "NEW", "BASELINE", "SCENARIO", "REPORT",
];
/// Characters that end a word when looking for paths inside code.
const WORD_BREAKS: &[char] = &[
    ' ', '\t', '`', '"', '\'', '(', ')', '[', ']', '{', '}', ',', ';', ':', '=', '|',
];

struct Doc {
    /// Relative to the repository root, with `/` separators.
    name: String,
    text: String,
}

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// README.md, CONTRIBUTING.md and every docs/*.md, in a stable order.
fn docs() -> Vec<Doc> {
    let root = repository();
    let mut names = vec!["README.md".to_string(), "CONTRIBUTING.md".to_string()];
    let mut in_docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ is readable")
        .map(|entry| {
            entry
                .expect("docs/ entry")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .filter(|name| name.ends_with(".md"))
        .map(|name| format!("docs/{name}"))
        .collect();
    in_docs.sort();
    names.extend(in_docs);
    names
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(root.join(&name))
                .unwrap_or_else(|e| panic!("{name}: cannot read: {e}"));
            Doc { name, text }
        })
        .collect()
}

/// The code of a document: every line of a fenced block and every inline `span`.
fn code_of(text: &str) -> Vec<String> {
    let mut code = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            code.push(line.to_string());
        } else {
            code.extend(line.split('`').skip(1).step_by(2).map(str::to_string));
        }
    }
    code
}

/// The prose of a document: the lines outside fenced blocks.
fn prose_of(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut prose = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced {
            prose.push(line);
        }
    }
    prose
}

/// Targets of markdown links `[text](target)` outside fenced blocks.
fn links_of(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    for line in prose_of(text) {
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            links.push(rest[..end].to_string());
            rest = &rest[end..];
        }
    }
    links
}

fn is_placeholder(path: &str) -> bool {
    path.contains("...")
        || path.contains(['<', '>', '*'])
        || path
            .split(['/', '.', '-', '_'])
            .any(|word| PLACEHOLDERS.contains(&word))
}

fn is_repository_path(word: &str) -> bool {
    TOP_LEVEL_FOLDERS
        .iter()
        .any(|folder| word.starts_with(folder))
        || TOP_LEVEL_FILES.contains(&word)
}

/// Folders of generated, git-ignored output: runs and benchmark results.
const GENERATED: [&str; 2] = ["reports/runs/", "reports/bench/"];

/// Repository paths named in a piece of code, placeholders and generated output left out.
fn paths_in(code: &str) -> Vec<String> {
    code.split(WORD_BREAKS)
        .map(|word| word.trim_end_matches('.'))
        .filter(|word| is_repository_path(word))
        .filter(|word| !GENERATED.iter().any(|folder| word.starts_with(folder)))
        .filter(|word| !is_placeholder(word))
        .map(str::to_string)
        .collect()
}

/// Subcommands shown as `roadtest SUBCOMMAND` in a piece of code.
fn subcommands_in(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("roadtest ") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_' || c == '.') {
            continue;
        }
        let word: String = code[at + "roadtest ".len()..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || *c == '-')
            .collect();
        if word.starts_with(|c: char| c.is_ascii_lowercase()) {
            found.push(word);
        }
    }
    found
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor_of(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn anchors_of(text: &str) -> BTreeSet<String> {
    prose_of(text)
        .into_iter()
        .filter(|line| line.starts_with('#'))
        .map(|line| anchor_of(line.trim_start_matches('#')))
        .collect()
}

/// Resolves `target` (relative to `doc`'s folder) to a path relative to the repository root.
fn resolve(doc: &str, target: &str) -> String {
    let mut parts: Vec<&str> = doc.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(part),
        }
    }
    parts.join("/")
}

/// Problems with one relative link of `doc`: a missing file, or an anchor no heading has.
fn check_link(doc: &Doc, target: &str) -> Option<String> {
    if target.contains("://") || target.starts_with("mailto:") {
        return None;
    }
    let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
    let resolved = if file.is_empty() {
        doc.name.clone()
    } else {
        resolve(&doc.name, file)
    };
    let path = repository().join(&resolved);
    if !path.exists() {
        return Some(format!(
            "{}: link `{target}`: {resolved} does not exist",
            doc.name
        ));
    }
    if anchor.is_empty() || !resolved.ends_with(".md") {
        return None;
    }
    let text = std::fs::read_to_string(&path).expect("linked file readable");
    (!anchors_of(&text).contains(anchor)).then(|| {
        format!(
            "{}: link `{target}`: {resolved} has no heading #{anchor}",
            doc.name
        )
    })
}

#[test]
fn every_path_the_docs_name_exists() {
    let mut checked = BTreeSet::new();
    let mut missing = Vec::new();
    for doc in docs() {
        // Link targets are checked by `every_relative_link_resolves`.
        for path in code_of(&doc.text).iter().flat_map(|code| paths_in(code)) {
            if !repository().join(&path).exists() {
                missing.push(format!(
                    "{}: `{path}` does not exist in the repository",
                    doc.name
                ));
            }
            checked.insert(path);
        }
    }
    assert!(
        missing.is_empty(),
        "the docs name paths that do not exist:\n{}",
        missing.join("\n")
    );
    for expected in [
        "scenarios/smoke.toml",
        "reports/baselines/smoke.json",
        "ci/services",
    ] {
        assert!(
            checked.contains(expected),
            "the parser missed `{expected}`; it checked {checked:?}"
        );
    }
}

#[test]
fn every_relative_link_resolves() {
    let mut broken = Vec::new();
    let mut links = 0;
    for doc in docs() {
        for target in links_of(&doc.text) {
            links += 1;
            broken.extend(check_link(&doc, &target));
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(
        links > 20,
        "only {links} links found: the link parser is broken"
    );
}

#[test]
fn every_roadtest_subcommand_the_docs_show_exists() {
    let mut shown: BTreeSet<(String, String)> = BTreeSet::new();
    for doc in docs() {
        for code in code_of(&doc.text) {
            shown.extend(
                subcommands_in(&code)
                    .into_iter()
                    .map(|sub| (sub, doc.name.clone())),
            );
        }
    }
    let subcommands: BTreeSet<&String> = shown.iter().map(|(sub, _)| sub).collect();
    for expected in ["run", "validate", "compare", "baseline"] {
        assert!(
            subcommands.contains(&expected.to_string()),
            "`roadtest {expected}` not found"
        );
    }
    let mut unknown = Vec::new();
    for sub in subcommands {
        let status = Command::new(env!("CARGO_BIN_EXE_roadtest"))
            .args([sub.as_str(), "--help"])
            .output()
            .expect("roadtest runs")
            .status;
        if !status.success() {
            let docs: Vec<&str> = shown
                .iter()
                .filter(|(s, _)| s == sub)
                .map(|(_, d)| d.as_str())
                .collect();
            unknown.push(format!(
                "`roadtest {sub}` (in {}): --help exits {status}",
                docs.join(", ")
            ));
        }
    }
    assert!(
        unknown.is_empty(),
        "the docs show subcommands roadtest lacks:\n{}",
        unknown.join("\n")
    );
}

#[test]
fn the_readme_shows_the_test_command_ci_runs() {
    let readme = std::fs::read_to_string(repository().join("README.md")).expect("README.md");
    let ci = std::fs::read_to_string(repository().join(".ci/run")).expect(".ci/run");
    assert!(ci.contains("bash ci/test") && readme.contains("bash ci/test"));
}

#[test]
fn the_rules_skip_placeholders_and_find_paths() {
    let code =
        "roadtest baseline RUN --out reports/baselines/NAME.json; see ci/services, docs/*.md";
    assert_eq!(paths_in(code), ["ci/services"]);
    assert_eq!(
        paths_in("reports/runs/smoke-42-x/report.json reports/bench/ scenarios/<name>.toml"),
        Vec::<String>::new()
    );
    assert_eq!(
        subcommands_in("target/release/roadtest run x; cargo run -p roadtest -- run"),
        ["run"]
    );
    assert_eq!(
        anchor_of(" External (`--target external`)"),
        "external---target-external"
    );
    assert_eq!(
        resolve("docs/targets.md", "../CONTRIBUTING.md"),
        "CONTRIBUTING.md"
    );
}

/// Every scenario file the repository ships (scenarios/, benches/scenarios/, examples/) loads
/// and validates: a user copying one never starts from a broken file.
#[test]
fn every_shipped_scenario_loads() {
    let root = repository();
    let mut checked = Vec::new();
    for folder in ["scenarios", "benches/scenarios", "examples/python-consumer"] {
        let entries = std::fs::read_dir(root.join(folder)).expect("the folder exists");
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path
                .extension()
                .is_some_and(|extension| extension == "toml")
            {
                roadtest::Scenario::load(&path).unwrap_or_else(|error| panic!("{error}"));
                checked.push(path);
            }
        }
    }
    assert!(checked.len() >= 20, "{checked:?}");
}
