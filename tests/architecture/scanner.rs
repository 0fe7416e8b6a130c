//! The scanner itself, on small inline sources: shown to fail when it should.

use super::graph::{edge_line, Lib};
use super::rules::{
    cycle_report, layer_violations, rewrite_table, size_violations, table_rows, table_violations, TABLE_BEGIN,
    TABLE_END, TODO,
};
use std::collections::{BTreeMap, BTreeSet};

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

fn tree_with<'a>(extra: &[(&'a str, &'a str)]) -> Lib {
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

#[test]
fn unit_tests_in_a_file_of_their_own_are_left_out() {
    let tests = format!("use super::*;\nuse crate::tools::azure::JWT;\n{}", "#[test]\nfn t() {}\n".repeat(300));
    let lib = tree_with(&[
        ("lib/core/clock.rs", "pub fn now() {}\n\n#[cfg(test)]\nmod tests;\n"),
        ("lib/core/clock/tests.rs", &tests),
    ]);
    assert_eq!(edges(&lib), Vec::<String>::new());
    assert_eq!(lib.files["lib/core/clock.rs"].lines, 2);
    assert!(size_violations(&lib).is_empty() && layer_violations(&lib).is_empty());
}
