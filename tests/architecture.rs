//! The library's architecture, checked (docs/ARCHITECTURE.md describes it): every `lib/**/*.rs`
//! is read as text, each `use` tree and each inline `crate::…` / `super::…` / `self::…` path is
//! resolved to the lib file it names, and the resulting file graph must have no cycle, point
//! down the layers only, keep every file under 500 lines before its unit tests, and match the
//! module table of docs/ARCHITECTURE.md. `WIF_UPDATE_DOCS=1` rewrites that table's rows;
//! `WIF_ARCH_PRINT=1 … architecture -- --nocapture` prints the file graph.
//!
//! The scanner is small and hand-written: comments, string and character literals and the
//! `#[cfg(test)] mod …` blocks are blanked first, then the code is cut into tokens.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The most lines a lib file may have before its unit-test module.
const MAX_LINES: usize = 500;
/// Where the module table is, relative to the package root.
const DOC: &str = "docs/ARCHITECTURE.md";
const TABLE_BEGIN: &str = "<!-- BEGIN lib files: checked by tests/architecture.rs -->";
const TABLE_END: &str = "<!-- END lib files -->";
const TODO: &str = "TODO: describe";

// ---------------------------------------------------------------------------------------------
// Source text: code only, cut into tokens.

/// Where a comment or literal starting at `i` ends (exclusive), or `None` if none starts there.
fn literal_end(c: &[char], i: usize) -> Option<usize> {
    let at = |k: usize| c.get(k).copied().unwrap_or('\0');
    let ident_before = i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_');
    match (at(i), at(i + 1)) {
        ('/', '/') => Some((i..c.len()).find(|&k| c[k] == '\n').unwrap_or(c.len())),
        ('/', '*') => {
            let (mut depth, mut k) = (0usize, i);
            while k < c.len() {
                match (at(k), at(k + 1)) {
                    ('/', '*') => (depth, k) = (depth + 1, k + 2),
                    ('*', '/') if depth == 1 => return Some(k + 2),
                    ('*', '/') => (depth, k) = (depth - 1, k + 2),
                    _ => k += 1,
                }
            }
            Some(c.len())
        }
        ('"', _) => Some(string_end(c, i + 1)),
        ('\'', '\\') => Some((i + 3..c.len()).find(|&k| c[k] == '\'').map_or(c.len(), |k| k + 1)),
        ('\'', _) if at(i + 2) == '\'' => Some(i + 3),
        ('b', '\'') if !ident_before => literal_end(c, i + 1),
        ('b' | 'c', '"') if !ident_before => Some(string_end(c, i + 2)),
        ('b' | 'c' | 'r', _) if !ident_before => raw_string_end(c, i),
        _ => None,
    }
}

/// The end of a string whose body starts at `i` (backslash escapes honoured).
fn string_end(c: &[char], mut i: usize) -> usize {
    while i < c.len() {
        match c[i] {
            '\\' => i += 2,
            '"' => return i + 1,
            _ => i += 1,
        }
    }
    c.len()
}

/// The end of `r"…"`, `r#"…"#`, `br##"…"##` (and `cr…`) starting at `i`, if one starts there.
fn raw_string_end(c: &[char], i: usize) -> Option<usize> {
    let mut k = if c[i] == 'r' {
        i + 1
    } else if c.get(i + 1) == Some(&'r') {
        i + 2
    } else {
        return None;
    };
    let hashes = c[k..].iter().take_while(|&&h| h == '#').count();
    k += hashes;
    if c.get(k) != Some(&'"') {
        return None;
    }
    let close: Vec<char> = std::iter::once('"').chain(std::iter::repeat('#').take(hashes)).collect();
    Some((k + 1..c.len()).find(|&j| c[j..].starts_with(&close)).map_or(c.len(), |j| j + close.len()))
}

/// The source with comments and literals turned into spaces (line breaks kept).
fn code_only(src: &str) -> String {
    let c: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < c.len() {
        match literal_end(&c, i) {
            Some(end) => {
                c[i..end].iter().for_each(|&ch| out.push(if ch == '\n' { '\n' } else { ' ' }));
                i = end;
            }
            None => {
                out.push(c[i]);
                i += 1;
            }
        }
    }
    out
}

/// One token of code and the line it is on.
#[derive(Debug, Clone)]
struct Tok {
    text: String,
    line: usize,
}

/// Cuts code (already free of comments and literals) into identifiers, `::` and single marks.
fn tokens(code: &str) -> Vec<Tok> {
    let c: Vec<char> = code.chars().collect();
    let (mut toks, mut i, mut line) = (Vec::new(), 0, 1);
    let word = |ch: char| ch.is_alphanumeric() || ch == '_';
    while i < c.len() {
        let start = i;
        if c[i] == '\n' {
            line += 1;
        }
        if c[i].is_whitespace() {
            i += 1;
            continue;
        }
        if word(c[i]) {
            while i < c.len() && word(c[i]) {
                i += 1;
            }
        } else if c[i] == ':' && c.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            i += 1;
        }
        toks.push(Tok { text: c[start..i].iter().collect(), line });
    }
    toks
}

/// The text of token `i`, or "" past the end.
fn at(toks: &[Tok], i: usize) -> &str {
    toks.get(i).map_or("", |t| t.text.as_str())
}

/// Where the bracketed group opening at `i` closes (the index of its closing mark).
fn group_close(toks: &[Tok], i: usize) -> usize {
    let (open, close) = (at(toks, i).to_string(), if at(toks, i) == "{" { "}" } else { "]" });
    let mut depth = 0;
    for (k, t) in toks.iter().enumerate().skip(i) {
        if t.text == open {
            depth += 1;
        } else if t.text == close {
            depth -= 1;
            if depth == 0 {
                return k;
            }
        }
    }
    toks.len()
}

/// If a `#[cfg(test)]` module starts at token `i`, the index of its last token.
fn test_module_end(toks: &[Tok], i: usize) -> Option<usize> {
    let head = ["#", "[", "cfg", "(", "test", ")", "]"];
    if !head.iter().enumerate().all(|(k, h)| at(toks, i + k) == *h) {
        return None;
    }
    let mut k = i + head.len();
    while at(toks, k) == "#" {
        k = group_close(toks, k + 1) + 1;
    }
    if at(toks, k) == "pub" {
        k += if at(toks, k + 1) == "(" { 4 } else { 1 };
    }
    if at(toks, k) != "mod" {
        return None;
    }
    match at(toks, k + 2) {
        "{" => Some(group_close(toks, k + 2)),
        _ => Some(k + 2),
    }
}

/// A lib file read for the checks: its lines before the unit tests and its code's tokens.
struct Source {
    lines: usize,
    toks: Vec<Tok>,
}

/// Reads a file's text: counts its lines up to the unit-test module and drops every
/// `#[cfg(test)] mod` block from the tokens.
fn parse_source(text: &str) -> Source {
    let all = tokens(&code_only(text));
    let (mut toks, mut lines, mut i) = (Vec::new(), text.lines().count(), 0);
    while i < all.len() {
        match test_module_end(&all, i) {
            Some(end) => {
                lines = lines.min(all[i].line - 1);
                i = end + 1;
            }
            None => {
                toks.push(all[i].clone());
                i += 1;
            }
        }
    }
    Source { lines, toks }
}

// ---------------------------------------------------------------------------------------------
// Paths: every `use` leaf and inline path, resolved to the lib file it names.

/// A path as written in a file, and its line.
#[derive(Debug)]
struct PathRef {
    segs: Vec<String>,
    line: usize,
}

/// The leaves of the `use` tree starting at `*i`, each with the prefix before it.
fn use_tree(toks: &[Tok], i: &mut usize, prefix: &[String], out: &mut Vec<PathRef>) {
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
fn paths(toks: &[Tok], children: &BTreeSet<String>) -> Vec<PathRef> {
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
fn module_of(file: &str) -> Vec<String> {
    let rel = file.strip_prefix("lib/").unwrap_or(file).trim_end_matches(".rs");
    let mut segs: Vec<String> = rel.split('/').map(str::to_string).collect();
    if matches!(segs.last().map(String::as_str), Some("mod" | "lib")) {
        segs.pop();
    }
    segs
}

/// The file of a module path, if it exists: `x/y.rs` or `x/y/mod.rs`.
fn file_of(files: &BTreeMap<String, Source>, module: &[String]) -> Option<String> {
    if module.is_empty() {
        return files.contains_key("lib/lib.rs").then(|| "lib/lib.rs".into());
    }
    let base = format!("lib/{}", module.join("/"));
    [format!("{base}.rs"), format!("{base}/mod.rs")].into_iter().find(|f| files.contains_key(f))
}

/// The lib file a path names (deepest existing module file wins) and the name taken from it;
/// `None` for another crate's path or the file itself.
fn resolve(files: &BTreeMap<String, Source>, from: &str, segs: &[String]) -> Option<(String, String)> {
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
fn children(files: &BTreeMap<String, Source>, file: &str) -> BTreeSet<String> {
    let here = module_of(file);
    let prefix = if here.is_empty() { "lib/".to_string() } else { format!("lib/{}/", here.join("/")) };
    let tail =
        |f: &str| f.strip_prefix(&prefix).map(|r| r.trim_end_matches(".rs").trim_end_matches("/mod").to_string());
    files.keys().filter_map(|f| tail(f)).filter(|r| !r.contains('/') && r != "lib" && r != "mod").collect()
}

/// One import edge between two files: the names taken and the first line that takes one.
#[derive(Debug, Default)]
struct Edge {
    names: BTreeSet<String>,
    line: usize,
}

/// The file graph: file → file it imports → what it takes.
type Graph = BTreeMap<String, BTreeMap<String, Edge>>;

/// The library read as text: every file's source and the import graph between them.
struct Lib {
    files: BTreeMap<String, Source>,
    graph: Graph,
}

impl Lib {
    /// Builds the graph from (path, text) pairs; paths are `lib/…`.
    fn from_sources(sources: Vec<(String, String)>) -> Lib {
        let files: BTreeMap<String, Source> = sources.into_iter().map(|(p, t)| (p, parse_source(&t))).collect();
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
    fn from_disk() -> Lib {
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

fn package_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
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
fn edge_line(from: &str, to: &str, edge: &Edge) -> String {
    format!("{from} -> {to}: {}", edge.names.iter().cloned().collect::<Vec<_>>().join(", "))
}

/// The whole graph as text, one file and its imports at a time.
fn graph_text(lib: &Lib) -> String {
    let mut s = String::new();
    for (file, out) in &lib.graph {
        let _ = writeln!(s, "{file} ({}, {} lines)", layer(file).name(), lib.files[file].lines);
        for (to, edge) in out {
            let _ = writeln!(s, "    {}", edge_line(file, to, edge));
        }
    }
    s
}

// ---------------------------------------------------------------------------------------------
// Cycles.

/// The strongly connected components of more than one file (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, (usize, usize)>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, (n, n));
        w.stack.push(v);
        w.on_stack.insert(v);
        for to in w.graph.get(v).into_iter().flat_map(|e| e.keys()) {
            if !w.index.contains_key(to.as_str()) {
                visit(w, to);
                let low = w.index[to.as_str()].1.min(w.index[v].1);
                w.index.get_mut(v).expect("visited").1 = low;
            } else if w.on_stack.contains(to.as_str()) {
                let low = w.index[to.as_str()].0.min(w.index[v].1);
                w.index.get_mut(v).expect("visited").1 = low;
            }
        }
        if w.index[v].0 == w.index[v].1 {
            let mut scc = Vec::new();
            while let Some(x) = w.stack.pop() {
                w.on_stack.remove(x);
                scc.push(x.to_string());
                if x == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                w.found.push(scc);
            }
        }
    }
    let mut w = Walk { graph, index: BTreeMap::new(), stack: Vec::new(), on_stack: BTreeSet::new(), found: Vec::new() };
    for v in graph.keys() {
        if !w.index.contains_key(v.as_str()) {
            visit(&mut w, v);
        }
    }
    w.found.sort();
    w.found
}

/// A shortest cycle through the first file of a component, as the list of files along it.
fn shortest_cycle(graph: &Graph, scc: &[String]) -> Vec<String> {
    let start = &scc[0];
    let mut came_from: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start.as_str()]);
    while let Some(v) = queue.pop_front() {
        for to in graph[v].keys().filter(|t| scc.contains(t)) {
            if to == start {
                let mut path = vec![v.to_string()];
                while let Some(p) = came_from.get(path.last().expect("non-empty").as_str()) {
                    path.push(p.to_string());
                }
                path.reverse();
                return path;
            }
            if !came_from.contains_key(to.as_str()) {
                came_from.insert(to, v);
                queue.push_back(to);
            }
        }
    }
    vec![start.clone()]
}

/// One paragraph per import cycle: the cycle, each of its edges with the names taken, and
/// every other import among the same files.
fn cycle_report(graph: &Graph) -> Vec<String> {
    let mut reports = Vec::new();
    for scc in cycles(graph) {
        let ring = shortest_cycle(graph, &scc);
        let mut s = format!(
            "import cycle among {} files: {}\n  the shortest through {}:\n",
            scc.len(),
            scc.join(", "),
            ring[0]
        );
        for (k, from) in ring.iter().enumerate() {
            let to = &ring[(k + 1) % ring.len()];
            let _ = writeln!(s, "    {}", edge_line(from, to, &graph[from][to]));
        }
        s.push_str("  every import among them:\n");
        for from in &scc {
            for (to, edge) in graph[from].iter().filter(|(t, _)| scc.contains(t)) {
                let _ = writeln!(s, "    {}", edge_line(&format!("{from}:{}", edge.line), to, edge));
            }
        }
        reports.push(s);
    }
    reports
}

// ---------------------------------------------------------------------------------------------
// Layers.

/// The layer a lib file belongs to, from its place in the folder listing.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    /// `lib/lib.rs`: declares the layers.
    Root,
    Core,
    Http,
    Server,
    Protocol,
    Cli,
    /// `lib/tools/mod.rs`: lists the tools.
    ToolIndex,
    /// `lib/tools/X.rs` or `lib/tools/X/**`.
    Tool(String),
    Emulator,
    Fuzzing,
    /// Anywhere else: a new top-level module no rule knows.
    Unknown,
}

impl Layer {
    fn name(&self) -> String {
        match self {
            Layer::Root => "crate root".into(),
            Layer::Core => "core".into(),
            Layer::Http => "http".into(),
            Layer::Server => "server".into(),
            Layer::Protocol => "protocol".into(),
            Layer::Cli => "cli".into(),
            Layer::ToolIndex => "tool index".into(),
            Layer::Tool(t) => format!("tool {t}"),
            Layer::Emulator => "emulator".into(),
            Layer::Fuzzing => "fuzzing".into(),
            Layer::Unknown => "no layer".into(),
        }
    }
}

fn layer(file: &str) -> Layer {
    let module = module_of(file);
    match module.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [] => Layer::Root,
        ["core", ..] => Layer::Core,
        ["http", ..] => Layer::Http,
        ["server", ..] => Layer::Server,
        ["protocol", ..] => Layer::Protocol,
        ["cli", ..] => Layer::Cli,
        ["tools"] => Layer::ToolIndex,
        ["tools", tool, ..] => Layer::Tool(tool.to_string()),
        ["emulator", ..] => Layer::Emulator,
        ["fuzzing", ..] => Layer::Fuzzing,
        _ => Layer::Unknown,
    }
}

/// Whether a file of layer `from` may import one of layer `to`; if not, the rule it breaks.
fn layer_rule(from: &Layer, to: &Layer) -> Result<(), &'static str> {
    use Layer::*;
    if *to == Fuzzing && !matches!(from, Fuzzing | Root) {
        return Err("nothing but fuzzing.rs and lib.rs imports fuzzing");
    }
    let (ok, rule) = match from {
        Root | Fuzzing => (true, ""),
        Core => (*to == Core, "core imports only core"),
        Http => (matches!(to, Core | Http), "http imports only core"),
        Server => (matches!(to, Core | Server), "server imports only core"),
        Protocol => (matches!(to, Core | Http | Protocol), "protocol imports only core and http"),
        Cli => (matches!(to, Core | Http | Protocol | Cli), "cli imports only core, http and protocol"),
        ToolIndex => (matches!(to, Tool(_)), "lib/tools/mod.rs only lists the tools"),
        Tool(me) => (
            matches!(to, Core | Http | Server | Protocol | Cli) || *to == Tool(me.clone()),
            "a tool imports core, http, server, protocol, cli and its own files, never another tool",
        ),
        Emulator => (
            matches!(to, Core | Server | Http | Protocol | Cli | Emulator),
            "the emulator imports core, server, http, protocol and cli, never a tool",
        ),
        Unknown => (
            false,
            "every lib file belongs to a layer: core/, http, server/, protocol/, cli, tools/, emulator/, fuzzing.rs",
        ),
    };
    if ok {
        Ok(())
    } else {
        Err(rule)
    }
}

/// Every import that points the wrong way, and every file outside the layers.
fn layer_violations(lib: &Lib) -> Vec<String> {
    let mut out: Vec<String> = lib
        .files
        .keys()
        .filter(|f| layer(f) == Layer::Unknown)
        .map(|f| format!("{f}: not in any layer (core/, http, server/, protocol/, cli, tools/, emulator/, fuzzing.rs)"))
        .collect();
    for (from, edges) in &lib.graph {
        for (to, edge) in edges {
            if let Err(rule) = layer_rule(&layer(from), &layer(to)) {
                let names = edge.names.iter().cloned().collect::<Vec<_>>().join(", ");
                out.push(format!("{from}:{} imports {to} ({names}): {rule}", edge.line));
            }
        }
    }
    out
}

/// Every file with more than `MAX_LINES` lines before its unit tests.
fn size_violations(lib: &Lib) -> Vec<String> {
    let big = lib.files.iter().filter(|(_, s)| s.lines > MAX_LINES);
    big.map(|(f, s)| format!("{f}: {} lines before its unit tests (at most {MAX_LINES})", s.lines)).collect()
}

// ---------------------------------------------------------------------------------------------
// The module table of docs/ARCHITECTURE.md.

/// The table's rows: path → description, in the order written.
fn table_rows(doc: &str) -> Result<Vec<(String, String)>, String> {
    let begin = doc.find(TABLE_BEGIN).ok_or(format!("{DOC}: no line {TABLE_BEGIN}"))?;
    let end = doc.find(TABLE_END).ok_or(format!("{DOC}: no line {TABLE_END}"))?;
    let rows = doc[begin..end].lines().filter_map(|l| {
        let cells: Vec<&str> = l.trim().trim_matches('|').split('|').map(str::trim).collect();
        let path = cells.first()?.trim_matches('`');
        path.starts_with("lib/").then(|| (path.to_string(), cells.get(1).unwrap_or(&"").to_string()))
    });
    Ok(rows.collect())
}

/// What is wrong with the table: files missing, files that do not exist, rows not described.
fn table_violations(rows: &[(String, String)], files: &BTreeSet<String>) -> Vec<String> {
    let listed: BTreeSet<String> = rows.iter().map(|(p, _)| p.clone()).collect();
    let fix = format!("(WIF_UPDATE_DOCS=1 cargo test --test integration architecture rewrites the rows of {DOC})");
    let mut out: Vec<String> =
        files.difference(&listed).map(|f| format!("{f}: missing from the table {fix}")).collect();
    out.extend(listed.difference(files).map(|f| format!("{f}: listed in the table but no such file {fix}")));
    let undescribed = rows.iter().filter(|(p, d)| files.contains(p) && (d.is_empty() || d.contains(TODO)));
    out.extend(undescribed.map(|(p, _)| format!("{p}: say in {DOC} what it owns (one line)")));
    out
}

/// The document with the table's rows rewritten for `files`: descriptions kept where the path
/// still exists, a TODO for a new one; ordered by layer, then path (a folder's `mod.rs` first).
fn rewrite_table(doc: &str, files: &BTreeSet<String>) -> Result<String, String> {
    let known: BTreeMap<String, String> = table_rows(doc)?.into_iter().collect();
    let mut order: Vec<&String> = files.iter().collect();
    order.sort_by_key(|f| (layer(f), f.replace("/mod.rs", "/")));
    let mut table = String::from("| file | owns |\n|---|---|\n");
    for f in order {
        let what = known.get(f).filter(|d| !d.is_empty()).map_or(TODO, String::as_str);
        let _ = writeln!(table, "| `{f}` | {what} |");
    }
    let begin = doc.find(TABLE_BEGIN).expect("checked by table_rows") + TABLE_BEGIN.len();
    let end = doc.find(TABLE_END).expect("checked by table_rows");
    Ok(format!("{}\n{table}{}", &doc[..begin], &doc[end..]))
}

// ---------------------------------------------------------------------------------------------
// The checks on lib/ as it is.

fn fail_if_any(what: &str, problems: &[String], extra: &str) {
    assert!(problems.is_empty(), "{what} ({}):\n{}\n{extra}", problems.len(), problems.join("\n"));
}

#[test]
fn lib_files_import_each_other_without_cycles() {
    let lib = Lib::from_disk();
    if std::env::var_os("WIF_ARCH_PRINT").is_some() {
        println!("{}", graph_text(&lib));
    }
    let graph = format!("the file graph (file -> file it imports: names taken):\n{}", graph_text(&lib));
    fail_if_any("import cycles between lib files", &cycle_report(&lib.graph), &graph);
}

#[test]
fn lib_imports_point_down_the_layers() {
    fail_if_any("imports against the layers of docs/ARCHITECTURE.md", &layer_violations(&Lib::from_disk()), "");
}

#[test]
fn lib_files_stay_under_500_lines_before_their_unit_tests() {
    fail_if_any("lib files too long", &size_violations(&Lib::from_disk()), "");
}

#[test]
fn architecture_doc_lists_every_lib_file() {
    let lib = Lib::from_disk();
    let files: BTreeSet<String> = lib.files.keys().cloned().collect();
    let path = package_root().join(DOC);
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut doc = doc;
    if std::env::var_os("WIF_UPDATE_DOCS").is_some() {
        doc = rewrite_table(&doc, &files).unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, &doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
    let rows = table_rows(&doc).unwrap_or_else(|e| panic!("{e}"));
    fail_if_any("the module table of docs/ARCHITECTURE.md", &table_violations(&rows, &files), "");
}

// ---------------------------------------------------------------------------------------------
// The scanner itself, on small inline sources.

fn lib_of(files: &[(&str, &str)]) -> Lib {
    Lib::from_sources(files.iter().map(|(p, t)| (p.to_string(), t.to_string())).collect())
}

/// Every edge as `from -> to: names`.
fn edges(lib: &Lib) -> Vec<String> {
    lib.graph.iter().flat_map(|(f, out)| out.iter().map(move |(t, e)| edge_line(f, t, e))).collect()
}

const TREE: [(&str, &str); 7] = [
    ("lib/lib.rs", "pub mod core; pub mod http; pub mod tools;"),
    ("lib/core/mod.rs", "pub mod clock; pub mod error;"),
    ("lib/core/clock.rs", "pub fn now() {}"),
    ("lib/core/error.rs", "pub struct Error; pub enum Kind {}"),
    ("lib/http.rs", "pub struct Client;"),
    ("lib/tools/mod.rs", "pub mod azure; pub mod sts;"),
    ("lib/tools/azure.rs", "pub const JWT: &str = \"\";"),
];

fn tree_with(extra: &[(&'static str, &'static str)]) -> Lib {
    let mut files: BTreeMap<&str, &str> = TREE.into_iter().collect();
    files.extend(extra.iter().copied());
    lib_of(&files.into_iter().collect::<Vec<_>>())
}

#[test]
fn scanner_reads_a_use_group() {
    let lib = tree_with(&[("lib/tools/sts.rs", "use crate::core::error::{Error, Kind as K};\nuse std::io;")]);
    assert_eq!(edges(&lib), ["lib/tools/sts.rs -> lib/core/error.rs: Error, Kind"]);
}

#[test]
fn scanner_reads_a_nested_group_with_self() {
    let src = "use crate::{core::{clock, error::{self, Error}}, http::Client};";
    let lib = tree_with(&[("lib/tools/sts.rs", src)]);
    assert_eq!(
        edges(&lib),
        [
            "lib/tools/sts.rs -> lib/core/clock.rs: clock",
            "lib/tools/sts.rs -> lib/core/error.rs: Error, error",
            "lib/tools/sts.rs -> lib/http.rs: Client",
        ]
    );
}

#[test]
fn scanner_reads_inline_paths_and_relative_modules() {
    let lib = tree_with(&[
        (
            "lib/tools/sts.rs",
            "fn f() { let t = crate::core::clock::now(); super::azure::JWT.len(); Vec::<u8>::new(); }",
        ),
        ("lib/core/mod.rs", "pub mod clock; pub mod error; pub use error::Error; fn g() { clock::now() }"),
        ("lib/core/clock.rs", "use time::Duration; pub fn now() { let _ = std::time::Instant::now(); }"),
    ]);
    assert_eq!(
        edges(&lib),
        [
            "lib/core/mod.rs -> lib/core/clock.rs: now",
            "lib/core/mod.rs -> lib/core/error.rs: Error",
            "lib/tools/sts.rs -> lib/core/clock.rs: now",
            "lib/tools/sts.rs -> lib/tools/azure.rs: JWT",
        ]
    );
}

#[test]
fn scanner_ignores_comments_strings_and_unit_tests() {
    let src = r##"
        // use crate::tools::azure::JWT;
        /* crate::tools::azure::JWT /* nested */ crate::tools::azure::JWT */
        const S: &str = "crate::tools::azure::JWT"; const R: &str = r#"use crate::tools::azure;"#;
        const C: char = '"'; fn f<'a>(x: &'a str) -> &'a str { x }
        use crate::core::clock::now;
        #[cfg(test)]
        mod tests { use crate::tools::azure::JWT; use super::*; }
    "##;
    let lib = tree_with(&[("lib/tools/sts.rs", src)]);
    assert_eq!(edges(&lib), ["lib/tools/sts.rs -> lib/core/clock.rs: now"]);
    assert_eq!(lib.files["lib/tools/sts.rs"].lines, 6, "lines before #[cfg(test)]");
}

#[test]
fn scanner_finds_a_cycle_and_names_what_each_edge_takes() {
    let lib = tree_with(&[
        ("lib/core/clock.rs", "use super::error::Kind; pub fn now() {}"),
        ("lib/core/error.rs", "pub struct Error; pub enum Kind {} fn f() { super::clock::now() }"),
    ]);
    let report = cycle_report(&lib.graph);
    assert_eq!(report.len(), 1, "{report:?}");
    assert!(report[0].starts_with("import cycle among 2 files: lib/core/clock.rs, lib/core/error.rs"), "{}", report[0]);
    assert!(report[0].contains("lib/core/clock.rs -> lib/core/error.rs: Kind\n"), "{}", report[0]);
    assert!(report[0].contains("lib/core/error.rs -> lib/core/clock.rs: now\n"), "{}", report[0]);
    assert!(cycle_report(&tree_with(&[]).graph).is_empty());
}

#[test]
fn scanner_finds_a_tool_importing_another_tool() {
    let lib = tree_with(&[("lib/tools/sts.rs", "use crate::http::Client;\n\nuse crate::tools::azure::JWT;")]);
    assert_eq!(
        layer_violations(&lib),
        ["lib/tools/sts.rs:3 imports lib/tools/azure.rs (JWT): a tool imports core, http, server, protocol, cli and its own files, never another tool"]
    );
    let core_up = tree_with(&[("lib/core/clock.rs", "use crate::http::Client;")]);
    assert_eq!(
        layer_violations(&core_up),
        ["lib/core/clock.rs:1 imports lib/http.rs (Client): core imports only core"]
    );
}

#[test]
fn doc_table_is_checked_and_rewritten() {
    let files: BTreeSet<String> = ["lib/lib.rs", "lib/core/clock.rs"].map(String::from).into();
    let doc = format!("intro\n{TABLE_BEGIN}\n| file | owns |\n|---|---|\n| `lib/gone.rs` | old |\n| `lib/lib.rs` | the root |\n{TABLE_END}\nend\n");
    let problems = table_violations(&table_rows(&doc).expect("table"), &files);
    assert!(problems[0].starts_with("lib/core/clock.rs: missing from the table"), "{problems:?}");
    assert!(problems[1].starts_with("lib/gone.rs: listed in the table but no such file"), "{problems:?}");
    let new = rewrite_table(&doc, &files).expect("rewritten");
    assert!(new.contains(&format!("{TABLE_BEGIN}\n| file | owns |\n|---|---|\n| `lib/lib.rs` | the root |\n| `lib/core/clock.rs` | {TODO} |\n{TABLE_END}\nend\n")), "{new}");
    assert_eq!(
        table_violations(&table_rows(&new).expect("table"), &files),
        ["lib/core/clock.rs: say in docs/ARCHITECTURE.md what it owns (one line)"]
    );
}
