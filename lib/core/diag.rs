//! Diagnostics: every line a tool prints on stderr goes through here, scrubbed of every secret
//! the process holds.

use crate::core::error::Error;
use std::io::Write;

/// The tool whose name starts every line (set once by the tool's `run`).
static TOOL_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the tool that prints (the first name given wins).
pub fn set_tool(tool: &str) {
    let _ = TOOL_NAME.set(tool.to_string());
}

/// Prints an error as `tool: what: why`, then `tool: hint: …` when one is known.
pub fn report(tool: &str, err: &Error) {
    let mut err_out = std::io::stderr().lock();
    let _ = writeln!(err_out, "{tool}: {}", crate::core::secret::scrub(&err.to_string()));
    if let Some(h) = err.hint_text() {
        let _ = writeln!(err_out, "{tool}: hint: {}", crate::core::secret::scrub(h));
    }
}

/// Prints `tool: warning: …` on stderr (the tool named by `run`, else `wif`).
pub fn warn(msg: impl std::fmt::Display) {
    let tool = TOOL_NAME.get().map(String::as_str).unwrap_or("wif");
    eprintln!("{tool}: warning: {}", crate::core::secret::scrub(&msg.to_string()));
}

/// Prints a plain information line `tool: …` on stderr, scrubbed of every secret the
/// process holds (a long-running tool saying what it did: a refresh, a stop).
pub fn info(tool: &str, msg: impl std::fmt::Display) {
    eprintln!("{tool}: {}", crate::core::secret::scrub(&msg.to_string()));
}

/// One failed attempt of an operation that is tried again: which one, out of how many
/// retries (`None`: until it works), and the pause before the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// The retry about to happen, from 1.
    pub attempt: u32,
    /// How many retries there are at most, if bounded.
    pub of: Option<u32>,
    /// The pause before it.
    pub delay: std::time::Duration,
}

/// The line every tool prints before trying again, whatever it retries:
/// `tool: what: why; retry 2/3 in 1.0 s` (`retry 2 in 1.0 s` when retries are unbounded).
pub fn retry_line(tool: &str, what: &str, why: &str, retry: Retry) -> String {
    let count = match retry.of {
        Some(of) => format!("{}/{of}", retry.attempt),
        None => retry.attempt.to_string(),
    };
    format!("{tool}: {what}: {why}; retry {count} in {:.1} s", retry.delay.as_secs_f64())
}

/// Prints [`retry_line`] on stderr, scrubbed of every secret the process holds.
pub fn retrying(tool: &str, what: &str, why: &str, retry: Retry) {
    eprintln!("{}", crate::core::secret::scrub(&retry_line(tool, what, why, retry)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn one_retry_line_for_bounded_and_unbounded_retries() {
        let bounded = Retry { attempt: 1, of: Some(3), delay: Duration::from_millis(640) };
        assert_eq!(
            retry_line("wif-azure", "POST https://x/token", "connection refused", bounded),
            "wif-azure: POST https://x/token: connection refused; retry 1/3 in 0.6 s"
        );
        let unbounded = Retry { attempt: 4, of: None, delay: Duration::from_secs(8) };
        assert_eq!(
            retry_line("wif-get", "metadata server", "HTTP 503", unbounded),
            "wif-get: metadata server: HTTP 503; retry 4 in 8.0 s"
        );
    }
}
