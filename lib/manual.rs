//! Manual pages and shell completions, generated from the clap definitions plus the
//! hand-written sections (EXAMPLES, EXIT STATUS, ENVIRONMENT, FILES, SEE ALSO), and the
//! `wif(7)` overview. `tests/manual.rs` keeps the checked-in copies in `man/` and
//! `completions/` in sync (set `WIF_UPDATE_MAN=1` to rewrite them).

use clap::CommandFactory;
use std::fmt::Write as _;

/// One example: what it does, and the command.
pub struct Example {
    /// What the example does.
    pub about: &'static str,
    /// The command line.
    pub cmd: &'static str,
}

/// The date printed in the pages' title lines (kept fixed so regeneration is reproducible).
pub const MAN_DATE: &str = "2026-11-23";

/// The exit codes every tool shares (see `error::Kind`).
pub const EXIT_CODES: &[(u8, &str)] = &[
    (0, "success (or nothing to do: the token was still fresh)"),
    (1, "internal error (a bug; please report it)"),
    (2, "usage: wrong or missing flags or settings"),
    (3, "bad input data: the JSON document, a key, a certificate, a token"),
    (4, "refused by the remote service (OAuth/IAM error, TLS verification failure); retrying will not help"),
    (5, "remote service unavailable or failing (connection, time-out, 429, 5xx, malformed answer); retry later"),
    (6, "local I/O error: a file could not be read or written"),
];

/// The `after_help` text of a tool: its examples and where the exit codes are documented.
pub fn after_help(name: &str, examples: &[Example]) -> String {
    let mut s = String::from("Examples:\n");
    for e in examples {
        let _ = writeln!(s, "  # {}\n  {}\n", e.about, e.cmd);
    }
    let _ = write!(s, "Exit status: 0 ok, 2 usage, 3 bad input, 4 refused, 5 unavailable (retryable), 6 I/O. See {name}(1) and wif(7).");
    s
}

/// A manual page's description beyond what clap knows.
pub struct PageInfo {
    /// The tool's command definition.
    pub command: clap::Command,
    /// Examples.
    pub examples: &'static [Example],
    /// FILES entries: (path, meaning).
    pub files: &'static [(&'static str, &'static str)],
}

/// Every binary's manual page information, in a stable order.
pub fn pages() -> Vec<PageInfo> {
    vec![
        PageInfo { command: crate::sign::Cli::command(), examples: crate::sign::EXAMPLES, files: CONFIG_FILES },
        PageInfo { command: crate::azure::Cli::command(), examples: crate::azure::EXAMPLES, files: CONFIG_FILES },
        PageInfo { command: crate::sts::Cli::command(), examples: crate::sts::EXAMPLES, files: CONFIG_FILES },
        PageInfo { command: crate::iam::Cli::command(), examples: crate::iam::EXAMPLES, files: TOKEN_FILES },
        PageInfo { command: crate::serve::Cli::command(), examples: crate::serve::EXAMPLES, files: SERVE_FILES },
        PageInfo { command: crate::get::Cli::command(), examples: crate::get::EXAMPLES, files: TOKEN_FILES },
        PageInfo { command: crate::inspect::Cli::command(), examples: crate::inspect::EXAMPLES, files: TOKEN_FILES },
        PageInfo {
            command: crate::emulator::Cli::command(),
            examples: crate::emulator::EXAMPLES,
            files: EMULATOR_FILES,
        },
    ]
}

const CONFIG_FILES: &[(&str, &str)] = &[(
    "/etc/wif/wif.json",
    "conventional place for the config file given with --config (a JSON object of settings; see wif(7))",
)];

const EMULATOR_FILES: &[(&str, &str)] = &[(
    "emulator.json",
    "the emulator configuration given with --config: tenant, apps and certificates, issuers, pools, providers, service accounts (wif-emulate --print-example-config; docs/EMULATOR.md)",
)];

const TOKEN_FILES: &[(&str, &str)] = &[
    ("wif_token.txt", "the token written by --token-out: exactly the token bytes, mode 0600, replaced atomically"),
    (
        "wif_token.txt.meta.json",
        "beside it: expires_at, token_type, written_at, written_by, bytes and the token's SHA-256",
    ),
    ("/etc/wif/wif.json", "conventional place for the config file given with --config"),
];

const SERVE_FILES: &[(&str, &str)] = &[
    ("wif_token.txt", "the token file given with --token; served byte for byte, re-read when it changes"),
    (
        "wif_token.txt.meta.json",
        "beside it: the token's expiry (sent as X-Token-Expires-At); past it, or when it describes another token, the answer is 503; without it the expiry is the token file's modification time + --assume-ttl",
    ),
    ("/etc/wif/wif.json", "conventional place for the config file given with --config"),
];

/// Escapes text for roff: backslashes, and a leading dot or quote.
fn esc(s: &str) -> String {
    let t = s.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// Renders one tool's manual page (section 1).
pub fn render(page: &PageInfo) -> String {
    let cmd = page.command.clone();
    let name = cmd.get_name().to_string();
    let man = clap_mangen::Man::new(cmd.clone())
        .date(MAN_DATE)
        .source(format!("wif {}", env!("CARGO_PKG_VERSION")))
        .manual("wif manual");
    let mut buf: Vec<u8> = Vec::new();
    let _ = man.render_title(&mut buf);
    let _ = man.render_name_section(&mut buf);
    let _ = man.render_synopsis_section(&mut buf);
    let _ = man.render_description_section(&mut buf);
    let _ = man.render_options_section(&mut buf);
    // clap_mangen separates possible values with ".br, blank line, .br", which mandoc flags.
    let mut s = String::from_utf8_lossy(&buf).replace(".br\n\n.br\n", ".sp\n");

    if !page.examples.is_empty() {
        s.push_str(".SH EXAMPLES\n");
        for (i, e) in page.examples.iter().enumerate() {
            let sep = if i == 0 { "" } else { ".PP\n" };
            let _ = write!(s, "{sep}{}\n.PP\n.RS 4\n.nf\n{}\n.fi\n.RE\n", esc(e.about), esc(e.cmd));
        }
    }
    s.push_str(".SH \"EXIT STATUS\"\n");
    for (code, what) in EXIT_CODES {
        let _ = write!(s, ".TP\n.B {code}\n{}\n", esc(what));
    }
    let envs: Vec<(String, String)> = cmd
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_string_lossy().into_owned();
            let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
            Some((env, help))
        })
        .collect();
    // Only tools that make HTTPS requests with the system's roots read SSL_CERT_FILE.
    let https_client = cmd.get_arguments().any(|a| a.get_id() == "ca_file");
    if !envs.is_empty() || https_client {
        s.push_str(".SH ENVIRONMENT\n");
    }
    for (env, help) in &envs {
        let key = env.strip_prefix("WIF_").unwrap_or(env).to_ascii_lowercase();
        let _ = write!(s, ".TP\n.B {}\n{} (config key \\fI{}\\fR)\n", esc(env), esc(help), esc(&key));
    }
    if https_client {
        s.push_str(".TP\n.B SSL_CERT_FILE\nCA bundle for HTTPS when \\fB\\-\\-ca\\-file\\fR is not given\n");
    }
    if !envs.is_empty() {
        s.push_str(
            ".PP\nSettings are taken from, highest first: flags, these environment variables, the \\fBconfig\\fR object of the JSON document on stdin, and the file given with \\fB\\-\\-config\\fR.\n",
        );
    }
    if !page.files.is_empty() {
        s.push_str(".SH FILES\n");
        for (path, what) in page.files {
            let _ = write!(s, ".TP\n.I {}\n{}\n", esc(path), esc(what));
        }
    }
    s.push_str(".SH \"SEE ALSO\"\n");
    let others: Vec<String> = ALL_TOOLS.iter().filter(|t| **t != name).map(|t| format!(".BR {t} (1),")).collect();
    let _ = writeln!(s, "{}\n.BR wif (7)", others.join("\n"));
    s
}

/// Every binary of the package.
pub const ALL_TOOLS: &[&str] =
    &["wif-sign", "wif-azure", "wif-sts", "wif-impersonate", "wif-serve", "wif-get", "wif-inspect", "wif-emulate"];

/// Shell completions for one command.
pub fn completions(cmd: &clap::Command, shell: clap_complete::Shell) -> String {
    let mut c = cmd.clone();
    let name = c.get_name().to_string();
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut c, name, &mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// The file name of a completion script for a shell.
pub fn completion_file(name: &str, shell: clap_complete::Shell) -> String {
    match shell {
        clap_complete::Shell::Bash => format!("{name}.bash"),
        clap_complete::Shell::Zsh => format!("_{name}"),
        clap_complete::Shell::Fish => format!("{name}.fish"),
        other => format!("{name}.{other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(esc(".hidden"), "\\&.hidden");
        assert_eq!(esc("a-b\\c"), "a\\-b\\ec");
    }
}
