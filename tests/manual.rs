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
    let pages = crate::common::manpages::pages();
    assert_eq!(pages.len(), wif::tools::ALL_TOOLS.len());
    for page in &pages {
        let name = page.command.get_name().to_string();
        check_or_update(
            &root().join("man").join(format!("{name}.1")),
            &crate::common::manpages::render(page),
            &mut stale,
        );
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let file = root().join("completions").join(crate::common::manpages::completion_file(&name, shell));
            check_or_update(&file, &crate::common::manpages::completions(&page.command, shell), &mut stale);
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files (run WIF_UPDATE_MAN=1 cargo test --test integration manual::): {stale:?}"
    );
}

/// `page` with its EXIT STATUS section (up to the next section) replaced by `section`.
fn with_exit_status(page: &str, section: &str) -> String {
    let start = page.find(".SH \"EXIT STATUS\"\n").expect("the page has an EXIT STATUS section");
    let end = page[start + 1..].find("\n.SH ").map(|i| start + 1 + i + 1).unwrap_or(page.len());
    format!("{}{section}{}", &page[..start], &page[end..])
}

#[test]
fn wif_7_exit_status_is_written_from_the_same_table() {
    let path = root().join("man/wif.7");
    let page = std::fs::read_to_string(&path).unwrap();
    let want = with_exit_status(&page, &crate::common::manpages::exit_status_section());
    let mut stale = Vec::new();
    check_or_update(&path, &want, &mut stale);
    assert!(
        stale.is_empty(),
        "man/wif.7's EXIT STATUS differs from the tools' (run WIF_UPDATE_MAN=1 cargo test --test integration manual::)"
    );
}

#[test]
fn every_exit_status_is_in_help_and_readme() {
    let codes: Vec<u8> = wif::core::error::exit_statuses().iter().map(|x| x.code).collect();
    for tool in wif::tools::ALL_TOOLS {
        let out = crate::common::bin(tool).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout).into_owned();
        let footer = help.lines().find_map(|l| l.strip_prefix("Exit status: ")).expect("an exit status line");
        let listed: Vec<u8> = footer
            .split(". See ")
            .next()
            .unwrap()
            .split(", ")
            .map(|item| item.split(' ').next().unwrap().parse().expect("a code"))
            .collect();
        assert_eq!(listed, codes, "{tool} --help: {footer}");
    }
    // wif-refresh passes a failing step's code on: its --help lists every one, in words.
    let out =
        std::process::Command::new("bash").arg(root().join("scripts/wif-refresh")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout).replace('\n', " ");
    let para = help.split("Exit status: ").nth(1).expect("wif-refresh --help has an exit status paragraph");
    for x in wif::core::error::exit_statuses().iter().filter(|x| x.code != 0) {
        let word = x.label.split(' ').next().unwrap();
        assert!(
            para.contains(&format!("{} {word}", x.code))
                || para.contains(&format!("{} remote {word}", x.code))
                || para.contains(&format!("{} local {word}", x.code)),
            "wif-refresh --help lacks {} {}: {para}",
            x.code,
            x.label
        );
    }
    // The README's table: rows `| CODE | meaning | what to do |` under "## Exit codes".
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let table = readme.split("## Exit codes").nth(1).expect("README has ## Exit codes").split("\n## ").next().unwrap();
    let rows: Vec<u8> =
        table.lines().filter_map(|l| l.strip_prefix("| ")?.split(" |").next()?.trim().parse().ok()).collect();
    assert_eq!(rows, codes, "README.md's exit code table");
}

#[test]
fn manual_pages_have_no_groff_warnings() {
    let present = std::process::Command::new("groff").arg("-v").output().is_ok_and(|o| o.status.success());
    if !crate::common::available("groff", present) {
        return;
    }
    let mut pages: Vec<PathBuf> =
        std::fs::read_dir(root().join("man")).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    pages.sort();
    for page in pages {
        // Both the typesetter default and the terminal device man(1) uses.
        for device in [None, Some("-Tutf8")] {
            let mut groff = std::process::Command::new("groff");
            groff.args(["-man", "-ww", "-z"]).args(device).arg(&page);
            let out = groff.output().unwrap();
            let report = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success() && report.trim().is_empty(), "groff {device:?} {}:\n{report}", page.display());
        }
    }
}

/// Each manual page's ENVIRONMENT section names the config key of every variable; a config
/// holding that key must not be told it "is not a wif setting".
#[test]
fn every_documented_config_key_is_a_known_setting() {
    for page in crate::common::manpages::pages() {
        for arg in page.command.get_arguments() {
            let Some(env) = arg.get_env().and_then(|e| e.to_str()) else { continue };
            let Some(key) = env.strip_prefix("WIF_").map(str::to_ascii_lowercase) else { continue };
            if key == "config" {
                continue; // the config file itself
            }
            assert!(
                wif::core::settings::KNOWN_KEYS.contains(&key.as_str()),
                "{} documents config key {key} ({env}), which settings::KNOWN_KEYS lacks",
                page.command.get_name()
            );
        }
    }
}

#[test]
fn every_binary_has_a_manual_page() {
    for entry in std::fs::read_dir(root().join("bin")).unwrap() {
        let name = entry.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned();
        assert!(root().join("man").join(format!("{name}.1")).exists(), "man/{name}.1 is missing");
        assert!(wif::tools::ALL_TOOLS.contains(&name.as_str()), "{name} is not in manual::ALL_TOOLS");
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
    for tool in wif::tools::ALL_TOOLS {
        let out = crate::common::bin(tool).arg("--help").output().unwrap();
        assert!(out.status.success());
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(help.contains("Examples:") && help.contains("Exit status"), "{tool} --help");
        let out = crate::common::bin(tool).arg("--version").output().unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).starts_with(&format!("{tool} {}", env!("CARGO_PKG_VERSION"))));
    }
}
