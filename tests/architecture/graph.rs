//! Paths: every `use` leaf and inline path, resolved to the lib file it names; the file graph.

use super::source::{at, parse_source, Source, Tok};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A path as written in a file, and its line.
#[derive(Debug)]
pub(super) struct PathRef {
    pub(super) segs: Vec<String>,
    pub(super) line: usize,
}

/// The leaves of the `use` tree starting at `*i`, each with the prefix before it.
pub(super) fn use_tree(toks: &[Tok], i: &mut usize, prefix: &[String], out: &mut Vec<PathRef>) {
    let (mut path, line) = (prefix.to_vec(), toks.get(*i).map_or(0, |t| t.line));
    if path.is_empty() && at(toks, *i) == "::" {
        path.push("::".into()); // `use ::name`: always another crate
        *i += 1;
    }
    loop {
        match at(toks, *i) {
            "{" => {
                *i += 1;
                while !matches!(at(toks, *i), "}" | "") {
                    use_tree(toks, i, &path, out);
                    if at(toks, *i) == "," {
                        *i += 1;
                    }
                }
                *i += 1;
                return;
            }
            "" | ";" | "," | "}" => return,
            seg => {
                path.push(seg.to_string());
                *i += 1;
                if at(toks, *i) == "::" {
                    *i += 1;
                    continue;
                }
                if at(toks, *i) == "as" {
                    *i += 2;
                }
                if path.last().is_some_and(|s| s == "self") {
                    path.pop();
                }
                out.push(PathRef { segs: path, line });
                return;
            }
        }
    }
}

/// Every path a file names: `use` leaves, and inline paths that start with `crate`, `super`,
/// `self` or a name in `children` (the file's own submodules).
pub(super) fn paths(toks: &[Tok], children: &BTreeSet<String>) -> Vec<PathRef> {
    let (mut out, mut i) = (Vec::new(), 0);
    let ident = |s: &str| s.chars().next().is_some_and(|c| c.is_alphabetic() || c == '_');
    while i < toks.len() {
        let t = at(toks, i);
        if t == "use" {
            i += 1;
            use_tree(toks, &mut i, &[], &mut out);
            continue;
        }
        let starts = matches!(t, "crate" | "super" | "self") || children.contains(t);
        if starts && at(toks, i + 1) == "::" && (i == 0 || at(toks, i - 1) != "::") {
            let mut segs = vec![t.to_string()];
            let line = toks[i].line;
            i += 1;
            while at(toks, i) == "::" && ident(at(toks, i + 1)) {
                segs.push(at(toks, i + 1).to_string());
                i += 2;
            }
            out.push(PathRef { segs, line });
            continue;
        }
        i += 1;
    }
    out
}

/// The module path of a lib file: `lib/core/files.rs` → `core::files`, `lib/lib.rs` → crate.
pub(super) fn module_of(file: &str) -> Vec<String> {
    let rel = file.strip_prefix("lib/").unwrap_or(file).trim_end_matches(".rs");
    let mut segs: Vec<String> = rel.split('/').map(str::to_string).collect();
    if matches!(segs.last().map(String::as_str), Some("mod" | "lib")) {
        segs.pop();
    }
    segs
}

/// The file of a module path, if it exists: `x/y.rs` or `x/y/mod.rs`.
pub(super) fn file_of(files: &BTreeMap<String, Source>, module: &[String]) -> Option<String> {
    if module.is_empty() {
        return files.contains_key("lib/lib.rs").then(|| "lib/lib.rs".into());
    }
    let base = format!("lib/{}", module.join("/"));
    [format!("{base}.rs"), format!("{base}/mod.rs")].into_iter().find(|f| files.contains_key(f))
}

/// The lib file a path names (deepest existing module file wins) and the name taken from it;
/// `None` for another crate's path or the file itself.
pub(super) fn resolve(files: &BTreeMap<String, Source>, from: &str, segs: &[String]) -> Option<(String, String)> {
    let here = module_of(from);
    let (mut module, mut rest) = match segs.first().map(String::as_str)? {
        "crate" => (Vec::new(), &segs[1..]),
        "self" => (here, &segs[1..]),
        "super" => {
            let ups = segs.iter().take_while(|s| *s == "super").count();
            (here[..here.len().checked_sub(ups)?].to_vec(), &segs[ups..])
        }
        first => {
            let child = [here.clone(), vec![first.to_string()]].concat();
            file_of(files, &child)?;
            (here, segs)
        }
    };
    while let Some(seg) = rest.first() {
        let deeper = [module.clone(), vec![seg.clone()]].concat();
        if file_of(files, &deeper).is_none() {
            break;
        }
        module = deeper;
        rest = &rest[1..];
    }
    let file = file_of(files, &module)?;
    let name = rest.first().or(module.last()).map_or("crate".to_string(), String::clone);
    (file != from).then_some((file, name))
}

/// The file's submodules that are files of their own.
pub(super) fn children(files: &BTreeMap<String, Source>, file: &str) -> BTreeSet<String> {
    let here = module_of(file);
    let prefix = if here.is_empty() { "lib/".to_string() } else { format!("lib/{}/", here.join("/")) };
    let tail =
        |f: &str| f.strip_prefix(&prefix).map(|r| r.trim_end_matches(".rs").trim_end_matches("/mod").to_string());
    files.keys().filter_map(|f| tail(f)).filter(|r| !r.contains('/') && r != "lib" && r != "mod").collect()
}

/// The files that are unit-test modules of another (`#[cfg(test)] mod tests;` in it).
fn unit_test_files(files: &BTreeMap<String, Source>) -> Vec<String> {
    let children =
        files.iter().flat_map(|(f, s)| s.test_children.iter().map(move |c| [module_of(f), vec![c.clone()]].concat()));
    children.filter_map(|module| file_of(files, &module)).collect()
}

/// One import edge between two files: the names taken and the first line that takes one.
#[derive(Debug, Default)]
pub(super) struct Edge {
    pub(super) names: BTreeSet<String>,
    pub(super) line: usize,
}

/// The file graph: file → file it imports → what it takes.
pub(super) type Graph = BTreeMap<String, BTreeMap<String, Edge>>;

/// The library read as text: every file's source and the import graph between them.
pub(super) struct Lib {
    pub(super) files: BTreeMap<String, Source>,
    pub(super) graph: Graph,
}

impl Lib {
    /// Builds the graph from (path, text) pairs; paths are `lib/…`.
    pub(super) fn from_sources(sources: Vec<(String, String)>) -> Lib {
        let mut files: BTreeMap<String, Source> = sources.into_iter().map(|(p, t)| (p, parse_source(&t))).collect();
        for test_file in unit_test_files(&files) {
            let src = files.get_mut(&test_file).expect("found among the files");
            (src.toks, src.unit_tests) = (Vec::new(), true);
        }
        let mut graph = Graph::new();
        for (file, src) in &files {
            let node = graph.entry(file.clone()).or_default();
            for p in paths(&src.toks, &children(&files, file)) {
                if let Some((to, name)) = resolve(&files, file, &p.segs) {
                    let edge = node.entry(to).or_insert_with(|| Edge { line: p.line, ..Edge::default() });
                    edge.names.insert(name);
                    edge.line = edge.line.min(p.line);
                }
            }
        }
        Lib { files, graph }
    }

    /// Reads every `lib/**/*.rs` of this package.
    pub(super) fn from_disk() -> Lib {
        let root = package_root();
        let mut found = Vec::new();
        collect_rs(&root.join("lib"), &mut found);
        let sources = found
            .into_iter()
            .map(|p| {
                let rel = p.strip_prefix(&root).expect("under the root").to_string_lossy().replace('\\', "/");
                let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                (rel, text)
            })
            .collect();
        Lib::from_sources(sources)
    }
}

pub(super) fn package_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub(super) fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.map(|e| e.expect("directory entry")) {
        let path = entry.path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|x| x == "rs") {
            out.push(path);
        }
    }
}

/// `lib/a.rs -> lib/b.rs: Foo, bar`
pub(super) fn edge_line(from: &str, to: &str, edge: &Edge) -> String {
    format!("{from} -> {to}: {}", edge.names.iter().cloned().collect::<Vec<_>>().join(", "))
}
