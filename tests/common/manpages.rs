//! Manual pages and shell completions, generated from each tool's clap definition and the help
//! it carries as data (`wif::core::help`), plus the hand-written sections (EXIT STATUS,
//! ENVIRONMENT, SEE ALSO). `tests/manual.rs` keeps the checked-in copies in `man/` and
//! `completions/` in sync (set `WIF_UPDATE_MAN=1` to rewrite them). Only the tests aggregate the
//! tools, so the library never imports every tool back.

use clap::CommandFactory;
use std::fmt::Write as _;
use wif::core::error::exit_statuses;
use wif::core::help::Page;
use wif::tools::ALL_TOOLS;

/// The date printed in the pages' title lines (kept fixed so regeneration is reproducible).
pub const MAN_DATE: &str = "2026-11-23";

/// The EXIT STATUS section of every manual page, `wif(7)` included.
pub fn exit_status_section() -> String {
    let mut s = String::from(".SH \"EXIT STATUS\"\n");
    for x in exit_statuses() {
        let _ = write!(s, ".TP\n.B {}\n{}\n", x.code, esc(x.meaning));
    }
    s
}

/// A tool's manual page: its command definition and the help it carries as data.
pub struct PageInfo {
    /// The tool's command definition.
    pub command: clap::Command,
    /// Examples and files.
    pub page: &'static Page,
}

/// Every binary's manual page information, in a stable order.
pub fn pages() -> Vec<PageInfo> {
    use wif::tools;
    vec![
        PageInfo { command: tools::sign::Cli::command(), page: &tools::sign::PAGE },
        PageInfo { command: tools::azure::Cli::command(), page: &tools::azure::PAGE },
        PageInfo { command: tools::sts::Cli::command(), page: &tools::sts::PAGE },
        PageInfo { command: tools::impersonate::Cli::command(), page: &tools::impersonate::PAGE },
        PageInfo { command: tools::serve::Cli::command(), page: &tools::serve::PAGE },
        PageInfo { command: tools::get::Cli::command(), page: &tools::get::PAGE },
        PageInfo { command: tools::inspect::Cli::command(), page: &tools::inspect::PAGE },
        PageInfo { command: wif::emulator::Cli::command(), page: &wif::emulator::PAGE },
    ]
}

/// Escapes text for roff: backslashes, and a leading dot or quote.
fn esc(s: &str) -> String {
    let t = s.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// Writes every non-ASCII character as a roff escape (`\(em`, `\[u2026]`), so that every man
/// implementation renders it whatever its input encoding: groff reads raw UTF-8 as Latin-1
/// unless told otherwise, and warns.
fn ascii_roff(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            c if c.is_ascii() => out.push(c),
            '\u{2014}' => out.push_str("\\(em"),
            '\u{2013}' => out.push_str("\\(en"),
            '\u{a0}' => out.push_str("\\~"),
            c => {
                let _ = write!(out, "\\[u{:04X}]", c as u32);
            }
        }
    }
    out
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

    if !page.page.examples.is_empty() {
        s.push_str(".SH EXAMPLES\n");
        for (i, e) in page.page.examples.iter().enumerate() {
            let sep = if i == 0 { "" } else { ".PP\n" };
            let _ = write!(s, "{sep}{}\n.PP\n.RS 4\n.nf\n{}\n.fi\n.RE\n", esc(e.about), esc(e.cmd));
        }
    }
    s.push_str(&exit_status_section());
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
    if !envs.is_empty() || https_client || !page.page.environment.is_empty() {
        s.push_str(".SH ENVIRONMENT\n");
    }
    for (env, help) in &envs {
        let key = env.strip_prefix("WIF_").unwrap_or(env).to_ascii_lowercase();
        // The config file cannot name itself.
        let key = if key == "config" { String::new() } else { format!(" (config key \\fI{}\\fR)", esc(&key)) };
        let _ = write!(s, ".TP\n.B {}\n{}{key}\n", esc(env), esc(help));
    }
    for (env, what) in page.page.environment {
        let _ = write!(s, ".TP\n.B {}\n{}\n", esc(env), esc(what));
    }
    if https_client {
        s.push_str(".TP\n.B SSL_CERT_FILE\nCA bundle for HTTPS when \\fB\\-\\-ca\\-file\\fR is not given\n");
    }
    if !envs.is_empty() {
        s.push_str(
            ".PP\nSettings are taken from, highest first: flags, these environment variables, the \\fBconfig\\fR object of the JSON document on stdin, and the file given with \\fB\\-\\-config\\fR.\n",
        );
    }
    if !page.page.files.is_empty() {
        s.push_str(".SH FILES\n");
        for (path, what) in page.page.files {
            let _ = write!(s, ".TP\n.I {}\n{}\n", esc(path), esc(what));
        }
    }
    s.push_str(".SH \"SEE ALSO\"\n");
    let others: Vec<String> = ALL_TOOLS.iter().filter(|t| **t != name).map(|t| format!(".BR {t} (1),")).collect();
    let _ = writeln!(s, "{}\n.BR wif (7)", others.join("\n"));
    ascii_roff(&s)
}

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
mod unit {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(esc(".hidden"), "\\&.hidden");
        assert_eq!(esc("a-b\\c"), "a\\-b\\ec");
    }

    #[test]
    fn non_ascii_becomes_roff_escapes() {
        assert_eq!(
            ascii_roff("token\u{2011}type:\u{2026} \u{2014} caf\u{e9}"),
            "token\\[u2011]type:\\[u2026] \\(em caf\\[u00E9]"
        );
        assert_eq!(ascii_roff("\u{1F512}"), "\\[u1F512]");
        assert!(render(&pages().remove(0)).is_ascii());
    }
}
