//! The checked-in manual pages and shell completions match the clap definitions, and the
//! pages are clean roff. `WIF_UPDATE_MAN=1 cargo test --test integration manual::` rewrites them.

use clap_complete::Shell;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn check_or_update(path: &Path, want: &str, stale: &mut Vec<String>) {
    if std::env::var_os("WIF_UPDATE_MAN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, want).unwrap();
        return;
    }
    match std::fs::read_to_string(path) {
        Ok(have) if have == want => {}
        _ => stale.push(path.display().to_string()),
    }
}

#[test]
fn manual_pages_and_completions_are_in_sync() {
    let mut stale = Vec::new();
    let pages = wif::manual::pages();
    assert_eq!(pages.len(), wif::manual::ALL_TOOLS.len());
    for page in &pages {
        let name = page.command.get_name().to_string();
        check_or_update(&root().join("man").join(format!("{name}.1")), &wif::manual::render(page), &mut stale);
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let file = root().join("completions").join(wif::manual::completion_file(&name, shell));
            check_or_update(&file, &wif::manual::completions(&page.command, shell), &mut stale);
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files (run WIF_UPDATE_MAN=1 cargo test --test integration manual::): {stale:?}"
    );
}

#[test]
fn every_binary_has_a_manual_page() {
    for entry in std::fs::read_dir(root().join("bin")).unwrap() {
        let name = entry.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned();
        assert!(root().join("man").join(format!("{name}.1")).exists(), "man/{name}.1 is missing");
        assert!(wif::manual::ALL_TOOLS.contains(&name.as_str()), "{name} is not in manual::ALL_TOOLS");
    }
    assert!(root().join("man/wif.7").exists());
}

#[test]
fn manual_pages_lint_clean() {
    let mandoc = std::process::Command::new("mandoc").arg("-V").output().is_ok();
    if !crate::common::needs("mandoc", mandoc, &crate::common::apt("mandoc")) {
        return;
    }
    let mut pages: Vec<PathBuf> =
        std::fs::read_dir(root().join("man")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    pages.sort();
    for page in pages {
        let out = std::process::Command::new("mandoc").args(["-Tlint", "-Wwarning"]).arg(&page).output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && report.trim().is_empty(), "{}:\n{report}", page.display());
    }
}

#[test]
fn help_shows_examples_and_version_works() {
    for tool in wif::manual::ALL_TOOLS {
        let out = crate::common::bin(tool).arg("--help").output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Examples:") && help.contains("Exit status"), "{tool} --help");
        let out = crate::common::bin(tool).arg("--version").output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("{tool} {}", env!("CARGO_PKG_VERSION"))));
    }
}
