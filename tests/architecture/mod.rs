//! The library's architecture, checked (docs/ARCHITECTURE.md describes it): every `lib/**/*.rs`
//! is read as text, each `use` tree and each inline `crate::…` / `super::…` / `self::…` path is
//! resolved to the lib file it names, and the resulting file graph must have no cycle, point
//! down the layers only, keep every file under 500 lines before its unit tests, and match the
//! module table of docs/ARCHITECTURE.md. `WIF_UPDATE_DOCS=1` rewrites that table's rows;
//! `WIF_ARCH_PRINT=1 … architecture -- --nocapture` prints the file graph.
//!
//! The scanner is small and hand-written: comments, string and character literals and the
//! `#[cfg(test)] mod …` blocks are blanked first, then the code is cut into tokens.

mod graph;
mod rules;
mod scanner;
mod source;

use graph::{package_root, Lib};
use rules::{
    cycle_report, graph_text, layer_violations, rewrite_table, size_violations, table_rows, table_violations, DOC,
};
use std::collections::BTreeSet;

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
