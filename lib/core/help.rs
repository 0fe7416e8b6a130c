//! The help a tool carries as data: its examples and the files it reads (the token and
//! config file formats shared by several tools are described here), and the text after
//! `--help` built from them. The manual pages and completions are generated from these and
//! the tools' clap definitions outside the library (`tests/common/manpages.rs`), so the
//! library never imports every tool back.

use crate::core::error::exit_statuses;
use std::fmt::Write as _;

/// One example: what it does, and the command.
pub struct Example {
    /// What the example does.
    pub about: &'static str,
    /// The command line.
    pub cmd: &'static str,
}

/// What a tool's manual page says beyond its clap definition.
pub struct Page {
    /// Examples.
    pub examples: &'static [Example],
    /// FILES entries: (path, meaning).
    pub files: &'static [(&'static str, &'static str)],
    /// ENVIRONMENT entries beyond the options' own variables: (variable, meaning).
    pub environment: &'static [(&'static str, &'static str)],
}

/// The `after_help` text of a tool: its examples and the exit statuses, in a line.
pub fn after_help(name: &str, examples: &[Example]) -> String {
    let mut s = String::from("Examples:\n");
    for e in examples {
        let _ = writeln!(s, "  # {}\n  {}\n", e.about, e.cmd);
    }
    let codes: Vec<String> = exit_statuses().iter().map(|x| format!("{} {}", x.code, x.label)).collect();
    let _ = write!(s, "Exit status: {}. See {name}(1) and wif(7).", codes.join(", "));
    s
}

/// The FILES entry of a tool that reads only the config file.
pub const CONFIG_FILES: &[(&str, &str)] = &[(
    "/etc/wif/wif.json",
    "conventional place for the config file given with --config (a JSON object of settings; see wif(7))",
)];

/// The FILES entries of a tool that writes or reads a token file.
pub const TOKEN_FILES: &[(&str, &str)] = &[
    ("wif_token.txt", "the token written by --token-out: exactly the token bytes, mode 0600, replaced atomically"),
    (
        "wif_token.txt.meta.json",
        "beside it: expires_at, token_type, written_at, written_by, bytes and the token's SHA-256",
    ),
    ("/etc/wif/wif.json", "conventional place for the config file given with --config"),
];
