//! The README's two commands and the project's shell scripts: scripts/demo.sh takes the tools
//! from where cargo says it put them and stops at the first failure with its cause;
//! scripts/test-report.sh never counts a test that did not run as passed; every shell
//! script is shellcheck-clean.

use crate::common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TOOLS: [&str; 8] =
    ["wif-sign", "wif-azure", "wif-sts", "wif-impersonate", "wif-serve", "wif-get", "wif-inspect", "wif-emulate"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A stand-in for cargo in `dir`/shim whose `cargo build` prints cargo's progress on stderr
/// and the JSON messages of a build that put `tools` in `dir`/`bins` (a name with a space and
/// a quote, which the messages escape), then exits `status`. Each tool there runs the real
/// binary, except `broken`, which fails as a tool does: a message on stderr, exit 4.
fn fake_cargo(dir: &Path, tools: &[&str], broken: Option<&str>, status: i32) -> PathBuf {
    let bins = dir.join("where \"cargo\" put them");
    let shim = dir.join("shim");
    std::fs::create_dir_all(&bins).unwrap();
    std::fs::create_dir_all(&shim).unwrap();
    let mut messages = String::new();
    for tool in tools {
        let exe = bins.join(tool);
        let body = if Some(*tool) == broken {
            format!("echo '{tool}: broken on purpose by the test' >&2\nexit 4\n")
        } else {
            format!("exec '{}' \"$@\"\n", assert_cmd::cargo::cargo_bin(tool).display())
        };
        std::fs::write(&exe, format!("#!/bin/sh\n{body}")).unwrap();
        set_mode(&exe, 0o755);
        let msg = json!({"reason": "compiler-artifact", "package_id": "path+file:///wif#0.1.0",
            "target": {"kind": ["bin"], "name": tool}, "executable": exe, "fresh": true});
        messages.push_str(&format!("{msg}\n"));
    }
    messages.push_str(&format!("{}\n", json!({"reason": "build-finished", "success": status == 0})));
    std::fs::write(dir.join("messages.json"), messages).unwrap();
    let cargo = shim.join("cargo");
    let script = format!(
        "#!/bin/sh\n[ \"$1 $3\" = 'build --message-format=json-render-diagnostics' ] || {{ echo \"unexpected: $*\" >&2; exit 99; }}\n\
         echo '   Compiling wif v0.1.0 (stand-in)' >&2\ncat '{}'\nexit {status}\n",
        dir.join("messages.json").display()
    );
    std::fs::write(&cargo, script).unwrap();
    set_mode(&cargo, 0o755);
    shim
}

/// scripts/demo.sh with `shim` first on PATH, its temporary directory inside `dir`.
fn demo(dir: &Path, shim: &Path) -> (Output, String, String) {
    let path = format!("{}:{}", shim.display(), std::env::var("PATH").unwrap_or_default());
    let mut cmd = Command::new("bash");
    cmd.arg(root().join("scripts/demo.sh")).env("PATH", path).env("TMPDIR", dir).env_remove("CARGO_TARGET_DIR");
    for (k, _) in std::env::vars() {
        if k.starts_with("WIF_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.stdin(std::process::Stdio::null()).output().unwrap();
    let (so, se) = (String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out));
    (out, so, se)
}

#[test]
fn demo_runs_the_tools_where_cargo_put_them() {
    let dir = tempdir();
    let shim = fake_cargo(dir.path(), &TOOLS, None, 0);
    let (out, so, se) = demo(dir.path(), &shim);
    assert!(out.status.success(), "{so}\n{se}");
    let bins = dir.path().join("where \"cargo\" put them");
    let built = format!("✔ built: wif-sign {}, 8 tools in {}", env!("CARGO_PKG_VERSION"), bins.display());
    assert!(so.lines().any(|l| l == built), "{so}");
    assert!(se.contains("Compiling wif v0.1.0 (stand-in)"), "cargo's progress is shown: {se}");
    assert_eq!(so.lines().last(), Some("✔ wif-serve shut down cleanly (exit 0)"), "{so}");
    // The broker part: each client reads its own bucket and is refused the other's.
    for (client, own, other) in [("client", "team-a", "team-b"), ("client2", "team-b", "team-a")] {
        assert!(so.lines().any(|l| l.starts_with(&format!("✔ {client} reads gs://{own}-data/"))), "{so}");
        assert!(so.lines().any(|l| l.starts_with(&format!("✔ {client} is refused gs://{other}-data/"))), "{so}");
    }
    assert!(so.contains("✔ 2 reads allowed, 2 refused"), "{so}");
    // The bearer part: the token fetched without a certificate, a tampered token refused.
    assert!(so.lines().any(|l| l.starts_with("✔ bearer_token.txt is byte-identical to wif_token.txt")), "{so}");
    assert!(so.lines().any(|l| l.starts_with("✔ refused: HTTP 401, logged as bad_signature")), "{so}");
    // Its temporary directory (the PKI, the token) is gone.
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().starts_with("wif-demo.")), "{left:?}");
}

#[test]
fn demo_stops_at_the_first_failing_tool_and_names_it() {
    let dir = tempdir();
    let shim = fake_cargo(dir.path(), &TOOLS, Some("wif-sts"), 0);
    let (out, so, se) = demo(dir.path(), &shim);
    assert_eq!(out.status.code(), Some(4), "the failing tool's status: {so}\n{se}");
    assert!(se.contains("wif-sts: broken on purpose by the test"), "{se}");
    let stopped = se.lines().last().unwrap_or_default();
    assert!(stopped.starts_with("demo.sh: stopped at \"The pipeline: sign"), "{se}");
    assert!(stopped.contains(": wif-sts exited with status 4"), "{se}");
    assert!(!so.contains("wif_token.txt:") && !so.contains("Publishing"), "nothing after the failure: {so}");
}

#[test]
fn demo_stops_when_the_build_fails_or_a_tool_is_missing() {
    let dir = tempdir();
    let shim = fake_cargo(dir.path(), &[], None, 101);
    let (out, so, se) = demo(dir.path(), &shim);
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");
    assert!(se.contains("demo.sh: cargo build failed"), "{se}");
    assert!(!so.contains('✔'), "{so}");

    let dir = tempdir();
    let shim = fake_cargo(dir.path(), &TOOLS[..7], None, 0);
    let (out, so, se) = demo(dir.path(), &shim);
    assert_eq!(out.status.code(), Some(1), "{so}\n{se}");
    assert!(se.contains("demo.sh: cargo build reported no wif-emulate binary"), "{se}");
    assert!(!so.contains('✔'), "{so}");
}

/// scripts/test-report.sh on cargo test's output `cargo_out` and the skip records `skips`.
fn report(cargo_out: &str, skips: &str, setup: &str) -> (Output, Vec<String>) {
    let dir = tempdir();
    let files = ["cargo-test.txt", "skips.txt", "setup.txt"].map(|n| dir.path().join(n));
    for (f, text) in files.iter().zip([cargo_out, skips, setup]) {
        std::fs::write(f, text).unwrap();
    }
    let out = Command::new("bash").arg(root().join("scripts/test-report.sh")).args(&files).output().unwrap();
    let lines = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    (out, lines)
}

const CARGO_OUT: &str = "running 3 tests\ntest a ... ok\n\
    test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s\n\
    running 9 tests\n\
    test result: ok. 9 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 9.00s\n";

#[test]
fn the_test_report_counts_tests_that_did_not_run_as_skipped_and_says_how_to_run_them() {
    let (out, lines) = report(CARGO_OUT, "", "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(lines.last().map(String::as_str), Some("tests: 12 passed, 0 failed"), "{lines:?}");

    let go = apt("golang-go golang-golang-x-oauth2-google-dev golang-google-cloud-compute-metadata-dev");
    let skips = format!(
        "metadata::go_client\tgo\t{go}\nemulator::go_client\tgo\t{go}\nmanual::lint\tmandoc\t{}\n\
         refresh::root_lock\troot (to chown files to another user)\tsudo scripts/test.sh\n\
         metadata::gcloud\tgcloud\tinstall it by hand\nrefresh::root_lock\troot (to chown files to another user)\tsudo scripts/test.sh\n",
        apt("mandoc")
    );
    let (out, lines) = report(CARGO_OUT, &skips, "");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = lines.join("\n");
    assert_eq!(lines.last().map(String::as_str), Some("tests: 7 passed, 0 failed, 5 skipped"), "{text}");
    for (test, why) in [
        ("metadata::go_client", format!("go — {go}")),
        ("emulator::go_client", format!("go — {go}")),
        ("manual::lint", format!("mandoc — {}", apt("mandoc"))),
        ("refresh::root_lock", "root (to chown files to another user) — sudo scripts/test.sh".into()),
        ("metadata::gcloud", "gcloud — install it by hand".into()),
    ] {
        let line = format!("  {test}: {why}");
        assert_eq!(lines.iter().filter(|l| **l == line).count(), 1, "{line:?} once in:\n{text}");
    }
    let sudo = if rustix::process::geteuid().is_root() { "" } else { "sudo " };
    let command = format!(
        "  {sudo}apt-get install -y golang-go golang-golang-x-oauth2-google-dev golang-google-cloud-compute-metadata-dev mandoc && sudo scripts/test.sh"
    );
    assert!(lines.contains(&command), "one command for all that can be installed: {text}");
    assert!(text.contains("gcloud") && text.contains("install it by hand"), "{text}");

    // What scripts/test.sh itself could not set up is said too, and its packages join the command.
    let setup = "Python: pip could not install .ci/requirements.txt (is PyPI reachable?)\n\
                 Python: python3 -m venv failed (on Debian: sudo apt-get install -y python3-venv)\n";
    let (_, lines) = report(CARGO_OUT, "emulator::msal\tpython3 with msal\tscripts/test.sh\n", setup);
    let text = lines.join("\n");
    assert!(
        lines.contains(&"  Python: pip could not install .ci/requirements.txt (is PyPI reachable?)".into()),
        "{text}"
    );
    assert!(lines.contains(&format!("  {sudo}apt-get install -y python3-venv && scripts/test.sh")), "{text}");
    assert_eq!(lines.last().map(String::as_str), Some("tests: 11 passed, 0 failed, 1 skipped"), "{text}");
}

#[test]
fn every_shell_script_is_shellcheck_clean() {
    if !needs("shellcheck", runs("shellcheck", "--version"), &apt("shellcheck")) {
        return;
    }
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                // Not build output (scripts/bench/loadgen/target).
                if path.file_name().is_some_and(|n| n != "target") {
                    walk(&path, found);
                }
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let first = text.lines().next().unwrap_or_default();
            let shell = first.starts_with("#!") && (first.ends_with("bash") || first.ends_with("/sh"));
            if shell || first.starts_with("# shellcheck shell=") {
                found.push(path);
            }
        }
    }
    let mut scripts = Vec::new();
    walk(&root().join("scripts"), &mut scripts);
    walk(&root().join(".ci"), &mut scripts);
    for want in ["scripts/demo.sh", "scripts/test.sh", "scripts/test-report.sh", ".ci/run", "scripts/wif-refresh"] {
        assert!(scripts.contains(&root().join(want)), "{want} not found among {scripts:?}");
    }
    let out = Command::new("shellcheck").arg("-x").args(&scripts).current_dir(root()).output().unwrap();
    assert!(out.status.success(), "shellcheck:\n{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out));
}
