//! One error type for every tool: what went wrong, what we were doing, a hint, an exit code.

use std::fmt;

/// Why a step failed; each kind has a stable process exit code (see `wif(7)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bug or an unexpected internal state (exit 1).
    Internal,
    /// Wrong or missing command-line arguments or settings (exit 2, like clap).
    Usage,
    /// Input data that cannot be used: the JSON document, a key, a certificate, a token (exit 3).
    Input,
    /// The remote service understood the request and refused it, e.g. an OAuth error (exit 4).
    Refused,
    /// The remote service could not be reached or answered with a retryable status (exit 5).
    Unavailable,
    /// A local file could not be read or written (exit 6).
    Io,
}

impl Kind {
    /// Every kind, in the order of their exit codes.
    pub const ALL: [Kind; 6] = [Kind::Internal, Kind::Usage, Kind::Input, Kind::Refused, Kind::Unavailable, Kind::Io];

    /// A few words for the `--help` footer, e.g. `bad input`.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Internal => "internal error",
            Kind::Usage => "usage",
            Kind::Input => "bad input",
            Kind::Refused => "refused",
            Kind::Unavailable => "unavailable (retryable)",
            Kind::Io => "I/O",
        }
    }

    /// What the exit code means and what to do, for the manual pages.
    pub fn meaning(self) -> &'static str {
        match self {
            Kind::Internal => "internal error (a bug; please report it)",
            Kind::Usage => "usage: wrong or missing flags or settings",
            Kind::Input => "bad input data: the JSON document, a key, a certificate, a token",
            Kind::Refused => {
                "refused by the remote service (OAuth/IAM error, TLS verification failure); retrying will not help"
            }
            Kind::Unavailable => {
                "remote service unavailable or failing (connection, time-out, 429, 5xx, malformed answer); retry later"
            }
            Kind::Io => "local I/O error: a file could not be read or written",
        }
    }

    /// The process exit code for this kind of failure.
    pub fn exit_code(self) -> u8 {
        match self {
            Kind::Internal => 1,
            Kind::Usage => 2,
            Kind::Input => 3,
            Kind::Refused => 4,
            Kind::Unavailable => 5,
            Kind::Io => 6,
        }
    }
}

/// A failure with its context chain (outermost first), cause and optional hint.
///
/// The message never holds a secret: constructors take descriptions, not token values.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: Kind,
    context: Vec<String>,
    cause: String,
    hint: Option<String>,
    /// The file the error is about does not exist (see [`Error::io`]).
    not_found: bool,
}

/// Result with the crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error of `kind` with the immediate cause.
    pub fn new(kind: Kind, cause: impl Into<String>) -> Self {
        Error { kind, context: Vec::new(), cause: cause.into(), hint: None, not_found: false }
    }

    /// Shorthand for a usage error.
    pub fn usage(cause: impl Into<String>) -> Self {
        Self::new(Kind::Usage, cause)
    }

    /// Shorthand for bad input data.
    pub fn input(cause: impl Into<String>) -> Self {
        Self::new(Kind::Input, cause)
    }

    /// Wraps an I/O error, naming the path involved.
    pub fn io(path: &std::path::Path, err: &std::io::Error) -> Self {
        let mut e = Self::new(Kind::Io, format!("{}: {}", path.display(), io_reason(err)));
        e.not_found = err.kind() == std::io::ErrorKind::NotFound;
        e
    }

    /// For an error about a file whose path a setting gave: names that setting (`--key`,
    /// `WIF_KEY` or `config key "key"`, see `Settings::origin`) after what was being done,
    /// and, when there is no such file, hints that `origin` must name `expected`.
    pub fn file_setting(mut self, origin: &str, expected: &str) -> Self {
        match self.context.first_mut() {
            Some(doing) => *doing = format!("{doing} ({origin})"),
            None => self.context.push(origin.to_string()),
        }
        if self.not_found {
            self = self.hint(format!("there is no file at that path: check {origin}; it names {expected}"));
        }
        self
    }

    /// Adds a hint shown after the message (keeps an existing one).
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        if self.hint.is_none() {
            self.hint = Some(hint.into());
        }
        self
    }

    /// Replaces the hint: a cause found after the error was made (a clock skew behind a time
    /// refusal) that explains it better than the hint it came with.
    pub fn replace_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds the hint if there is one (see [`Error::hint`]).
    pub fn hint_if(self, hint: Option<impl Into<String>>) -> Self {
        match hint {
            Some(h) => self.hint(h),
            None => self,
        }
    }

    /// Prefixes what the caller was doing.
    pub fn context(mut self, what: impl Into<String>) -> Self {
        self.context.insert(0, what.into());
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The hint, if the cause is known.
    pub fn hint_text(&self) -> Option<&str> {
        self.hint.as_deref()
    }

    /// The innermost cause without context.
    pub fn cause(&self) -> &str {
        &self.cause
    }
}

fn io_reason(err: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::NotFound => "no such file or directory".into(),
        K::PermissionDenied => "permission denied".into(),
        _ => io_words(err),
    }
}

/// An I/O error in words: std's Display appends " (os error N)", which is left off.
pub fn io_words(err: &std::io::Error) -> String {
    let s = err.to_string();
    match s.find(" (os error") {
        Some(i) => s[..i].to_string(),
        None => s,
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.context {
            write!(f, "{c}: ")?;
        }
        f.write_str(&self.cause)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?}: {self})", self.kind)
    }
}

impl std::error::Error for Error {}

/// Adds context to results on their way up.
pub trait Context<T> {
    /// Prefixes `what` (what the caller was doing) to the error.
    fn context(self, what: impl Into<String>) -> Result<T>;
}

impl<T> Context<T> for Result<T> {
    fn context(self, what: impl Into<String>) -> Result<T> {
        self.map_err(|e| e.context(what))
    }
}

/// One exit status every tool shares: the code, a few words, and what it means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// The process exit code.
    pub code: u8,
    /// A few words, for the `--help` footer.
    pub label: &'static str,
    /// What it means and what to do, for the manual pages.
    pub meaning: &'static str,
}

/// Every exit status a tool can end with, success first: the one table `--help`, the manual
/// pages and `wif(7)` are written from.
pub fn exit_statuses() -> Vec<ExitStatus> {
    let success = ExitStatus { code: 0, label: "ok", meaning: "success (or nothing to do: the token was still fresh)" };
    std::iter::once(success)
        .chain(Kind::ALL.iter().map(|k| ExitStatus { code: k.exit_code(), label: k.label(), meaning: k.meaning() }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_chains_context_outermost_first() {
        let e: Result<()> = Err(Error::new(Kind::Refused, "invalid_grant: bad"));
        let e = e.context("exchanging").context("wif-sts").unwrap_err();
        assert_eq!(e.to_string(), "wif-sts: exchanging: invalid_grant: bad");
        assert_eq!(e.kind().exit_code(), 4);
    }

    #[test]
    fn a_missing_file_names_its_setting_and_hints() {
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = Error::io(std::path::Path::new("/k.pem"), &missing)
            .context("reading the private key")
            .file_setting("--key", "the private key");
        assert_eq!(e.to_string(), "reading the private key (--key): /k.pem: no such file or directory");
        assert_eq!(e.hint_text(), Some("there is no file at that path: check --key; it names the private key"));
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = Error::io(std::path::Path::new("/k.pem"), &denied).file_setting("WIF_KEY", "the private key");
        assert_eq!(e.to_string(), "WIF_KEY: /k.pem: permission denied");
        assert_eq!(e.hint_text(), None);
    }

    #[test]
    fn first_hint_wins() {
        let e = Error::input("x").hint("inner").hint("outer");
        assert_eq!(e.hint_text(), Some("inner"));
    }

    #[test]
    fn exit_codes_are_stable() {
        let codes: Vec<u8> = Kind::ALL.iter().map(|k| k.exit_code()).collect();
        assert_eq!(codes, vec![1, 2, 3, 4, 5, 6]);
        let table: Vec<u8> = exit_statuses().iter().map(|s| s.code).collect();
        assert_eq!(table, vec![0, 1, 2, 3, 4, 5, 6]);
    }
}
