//! The rules: no cycle, imports down the layers, small files, the module table.

use super::graph::{edge_line, module_of, Graph, Lib};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

/// The most lines a lib file may have before its unit-test module.
pub(super) const MAX_LINES: usize = 500;
/// Where the module table is, relative to the package root.
pub(super) const DOC: &str = "docs/ARCHITECTURE.md";
/// The line before the module table.
pub(super) const TABLE_BEGIN: &str = "<!-- BEGIN lib files: checked by tests/architecture/ -->";
/// The line after the module table.
pub(super) const TABLE_END: &str = "<!-- END lib files -->";
/// The description of a file new in the table, refused until someone writes one.
pub(super) const TODO: &str = "TODO: describe";

/// The strongly connected components of more than one file (Tarjan).
pub(super) fn cycles(graph: &Graph) -> Vec<Vec<String>> {
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
pub(super) fn shortest_cycle(graph: &Graph, scc: &[String]) -> Vec<String> {
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
pub(super) fn cycle_report(graph: &Graph) -> Vec<String> {
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
pub(super) enum Layer {
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

pub(super) fn layer(file: &str) -> Layer {
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
pub(super) fn layer_rule(from: &Layer, to: &Layer) -> Result<(), &'static str> {
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
pub(super) fn layer_violations(lib: &Lib) -> Vec<String> {
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

/// Every file with more than `MAX_LINES` lines before its unit tests (a file of unit tests is
/// not held to it).
pub(super) fn size_violations(lib: &Lib) -> Vec<String> {
    let big = lib.files.iter().filter(|(_, s)| !s.unit_tests && s.lines > MAX_LINES);
    big.map(|(f, s)| format!("{f}: {} lines before its unit tests (at most {MAX_LINES})", s.lines)).collect()
}

// ---------------------------------------------------------------------------------------------
// The module table of docs/ARCHITECTURE.md.

/// The table's rows: path → description, in the order written.
pub(super) fn table_rows(doc: &str) -> Result<Vec<(String, String)>, String> {
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
pub(super) fn table_violations(rows: &[(String, String)], files: &BTreeSet<String>) -> Vec<String> {
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
pub(super) fn rewrite_table(doc: &str, files: &BTreeSet<String>) -> Result<String, String> {
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

/// The whole graph as text, one file and its imports at a time.
pub(super) fn graph_text(lib: &Lib) -> String {
    let mut s = String::new();
    for (file, out) in &lib.graph {
        let _ = writeln!(s, "{file} ({}, {} lines)", layer(file).name(), lib.files[file].lines);
        for (to, edge) in out {
            let _ = writeln!(s, "    {}", edge_line(file, to, edge));
        }
    }
    s
}
