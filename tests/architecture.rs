//! The library's module graph points down: no top-level module reaches, through `crate::…`
//! references, back to itself. The test reads `src/` as text, so it needs no build of its own and
//! sees test code too (a test that imports upwards is a knot all the same).
//!
//! Granularity: the top-level modules `src/lib.rs` declares; a folder module (`remote/`,
//! `restore/`, …) counts as one, with all its files. The binary's own modules (`main.rs`,
//! `commands/`, `exit.rs`, `help_examples.rs`, `json_error.rs`, `term.rs`, `logging.rs`) sit
//! above the library and are not part of the graph.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// References allowed to close a cycle, as `(from, to)`: empty since issue #15 untied the last
/// one. Keep it so; an entry would be a debt to pay off, and one whose reference is gone fails
/// the test.
const ALLOWED_UPWARD: &[(&str, &str)] = &[];

/// For each module, the modules it references, each with the files that do.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<PathBuf>>>;

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The top-level modules `lib.rs` declares (`pub mod x;` or `mod x;`).
fn library_modules(src: &Path) -> Vec<String> {
    let lib = fs::read_to_string(src.join("lib.rs")).expect("read src/lib.rs");
    lib.lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub mod ")
                .or_else(|| line.strip_prefix("mod "))?;
            Some(rest.strip_suffix(';')?.trim().to_owned())
        })
        .collect()
}

/// `src/<module>.rs` and every `.rs` file under `src/<module>/`.
fn module_files(src: &Path, module: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                found.push(path);
            }
        }
    }
    let mut found = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        found.push(file);
    }
    walk(&src.join(module), &mut found);
    found.sort();
    found
}

/// The text without `//` comments (doc comments included), so prose naming a path is no edge.
fn without_line_comments(text: &str) -> String {
    text.lines()
        .map(|line| line.find("//").map_or(line, |at| &line[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first path segment after every `crate::` in `code`; for `crate::{a, b::c}`, each item's.
fn referenced_roots(code: &str) -> BTreeSet<String> {
    let mut roots = BTreeSet::new();
    let mut rest = code;
    while let Some(at) = rest.find("crate::") {
        let preceded_by_ident = rest[..at].chars().next_back().is_some_and(is_ident_char);
        rest = &rest[at + "crate::".len()..];
        if preceded_by_ident {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 1;
            let mut item = String::new();
            let mut items = Vec::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 0 || (depth == 1 && c == ',') {
                    items.push(std::mem::take(&mut item));
                    if depth == 0 {
                        break;
                    }
                } else {
                    item.push(c);
                }
            }
            for item in items {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|&c| is_ident_char(c))
                    .collect();
                if !name.is_empty() {
                    roots.insert(name);
                }
            }
        } else {
            let name: String = rest.chars().take_while(|&c| is_ident_char(c)).collect();
            if !name.is_empty() {
                roots.insert(name);
            }
        }
    }
    roots
}

fn module_graph() -> Graph {
    let src = src_dir();
    let modules = library_modules(&src);
    assert!(modules.len() > 10, "found only {modules:?} in src/lib.rs");
    let known: BTreeSet<&str> = modules.iter().map(String::as_str).collect();
    let mut graph = Graph::new();
    for module in &modules {
        let targets = graph.entry(module.clone()).or_default();
        for file in module_files(&src, module) {
            let text = fs::read_to_string(&file).expect("read a source file");
            for root in referenced_roots(&without_line_comments(&text)) {
                if root != *module && known.contains(root.as_str()) {
                    let shown = file.strip_prefix(&src).unwrap_or(&file).to_path_buf();
                    targets.entry(root).or_default().insert(shown);
                }
            }
        }
    }
    graph
}

/// One cycle per back edge a depth-first walk meets, each as the list of modules it runs through.
fn cycles(graph: &Graph, skip: &BTreeSet<(String, String)>) -> Vec<Vec<String>> {
    fn visit<'a>(
        node: &'a str,
        graph: &'a Graph,
        skip: &BTreeSet<(String, String)>,
        done: &mut BTreeSet<&'a str>,
        path: &mut Vec<&'a str>,
        found: &mut Vec<Vec<String>>,
    ) {
        path.push(node);
        for target in graph.get(node).into_iter().flat_map(|t| t.keys()) {
            if skip.contains(&(node.to_owned(), target.clone())) || done.contains(target.as_str()) {
                continue;
            }
            if let Some(start) = path.iter().position(|p| p == target) {
                let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
                cycle.push(target.clone());
                found.push(cycle);
            } else {
                visit(target, graph, skip, done, path, found);
            }
        }
        path.pop();
        done.insert(node);
    }
    let mut done = BTreeSet::new();
    let mut found = Vec::new();
    for node in graph.keys() {
        if !done.contains(node.as_str()) {
            visit(node, graph, skip, &mut done, &mut Vec::new(), &mut found);
        }
    }
    found
}

fn describe(graph: &Graph, cycle: &[String]) -> String {
    let mut text = cycle.join(" -> ");
    for pair in cycle.windows(2) {
        let files = &graph[&pair[0]][&pair[1]];
        let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        text.push_str(&format!(
            "\n    {} -> {}: {}",
            pair[0],
            pair[1],
            files.join(", ")
        ));
    }
    text
}

#[test]
fn module_graph_has_no_cycle_beyond_the_allow_list() {
    let graph = module_graph();
    let allowed: BTreeSet<(String, String)> = ALLOWED_UPWARD
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let found = cycles(&graph, &allowed);
    let shown: Vec<String> = found.iter().map(|c| describe(&graph, c)).collect();
    assert!(
        found.is_empty(),
        "module cycles in src/:\n{}",
        shown.join("\n")
    );
}

#[test]
fn allow_list_names_only_references_that_exist() {
    let graph = module_graph();
    let stale: Vec<String> = ALLOWED_UPWARD
        .iter()
        .filter(|(from, to)| !graph.get(*from).is_some_and(|t| t.contains_key(*to)))
        .map(|(from, to)| format!("{from} -> {to}"))
        .collect();
    assert!(
        stale.is_empty(),
        "ALLOWED_UPWARD names references src/ no longer has; remove them: {}",
        stale.join(", ")
    );
}

#[test]
fn references_are_found_in_use_groups_and_paths() {
    let code = "use crate::error::{Error, Result};\nuse crate::{fsutil, tag::{self, Tag}};\n\
                let x = crate::failpoint::now(); // crate::health\n$crate::lock::x; my_crate::no";
    let roots = referenced_roots(&without_line_comments(code));
    let roots: Vec<&str> = roots.iter().map(String::as_str).collect();
    assert_eq!(roots, ["error", "failpoint", "fsutil", "lock", "tag"]);
}

/// `remote/net/` is what every HTTP remote shares, so it knows none of them: no code of its
/// (comments aside) names a remote, so the next remote reuses it as it is and the arrows point
/// from each remote to `net`, never back.
#[test]
fn the_shared_http_module_names_no_remote() {
    let net = src_dir().join("remote").join("net");
    let mut files = Vec::new();
    for entry in fs::read_dir(&net).expect("read src/remote/net").flatten() {
        files.push(entry.path());
    }
    assert!(!files.is_empty(), "no files in {}", net.display());
    let mut named = Vec::new();
    for file in files {
        let code = without_line_comments(&fs::read_to_string(&file).expect("read a source file"))
            .to_lowercase();
        for remote in ["github", "remote::dir", "remote::marker", "dirremote"] {
            if code.contains(remote) {
                named.push(format!("{} names {remote}", file.display()));
            }
        }
    }
    assert!(named.is_empty(), "{}", named.join("\n"));
}
