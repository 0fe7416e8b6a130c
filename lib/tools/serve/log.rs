//! The access log: one JSON object per line on stdout, flushed at once, never a token.

use serde::Serialize;
use std::io::Write;
use std::sync::Mutex;

/// Lines logged before the `listening` line (e.g. the bearer issuers' keys loaded at
/// start), held so that `listening` stays the first line; `None` once it is written.
static STDOUT: Mutex<Option<Vec<Vec<u8>>>> = Mutex::new(Some(Vec::new()));

/// Writes one event as a JSON line and flushes it (before [`listening`], holds it until
/// then). A closed stdout is ignored: the log is for the operator, and losing it must not
/// stop the service. The line is formatted into this thread's reused buffer and written with
/// one `write`; nothing is kept across lines (a crash loses none that were emitted).
pub fn emit<T: Serialize>(event: &T) {
    // Unit tests would interleave log lines with the test harness's output.
    if cfg!(test) {
        return;
    }
    LINE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut line) => emit_into(&mut line, event),
        // Only if serializing an event emitted one itself: a fresh buffer then.
        Err(_) => emit_into(&mut Vec::new(), event),
    });
}

thread_local! {
    /// The buffer each thread formats its log lines in, reused from line to line.
    static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The most a thread's line buffer keeps between lines: a rare huge line is not held on to.
const KEPT_LINE_CAPACITY: usize = 4096;

fn emit_into<T: Serialize>(line: &mut Vec<u8>, event: &T) {
    line.clear();
    if serde_json::to_writer(&mut *line, event).is_ok() {
        line.push(b'\n');
        let mut held = STDOUT.lock().unwrap_or_else(|p| p.into_inner());
        match held.as_mut() {
            Some(early) => early.push(line.clone()),
            None => write_out(line),
        }
    }
    line.clear();
    line.shrink_to(KEPT_LINE_CAPACITY);
}

/// Writes the first line, `listening`, then the lines held until it.
pub fn listening(line: &Listening<'_>) {
    if cfg!(test) {
        return;
    }
    let Ok(mut first) = serde_json::to_vec(line) else { return };
    first.push(b'\n');
    let mut held = STDOUT.lock().unwrap_or_else(|p| p.into_inner());
    write_out(&first);
    for early in held.take().unwrap_or_default() {
        write_out(&early);
    }
}

fn write_out(line: &[u8]) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(line).and_then(|()| out.flush());
}

/// The current time as RFC 3339 UTC with milliseconds (as `core::clock::rfc3339_millis`
/// writes it). Each thread keeps the text of the current second and adds the milliseconds:
/// the calendar arithmetic runs once a second, not once a line.
pub fn now() -> String {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let Ok(since_epoch) = since_epoch else {
        return crate::core::clock::rfc3339_millis(time::OffsetDateTime::now_utc());
    };
    let (secs, millis) = (since_epoch.as_secs(), since_epoch.subsec_millis());
    SECOND.with(|cell| {
        let mut second = cell.borrow_mut();
        if second.0 != Some(secs) || second.1.is_empty() {
            *second = (Some(secs), second_text(secs));
        }
        let mut text = String::with_capacity(second.1.len() + 5);
        text.push_str(&second.1);
        text.push('.');
        text.push(char::from(b'0' + (millis / 100) as u8));
        text.push(char::from(b'0' + (millis / 10 % 10) as u8));
        text.push(char::from(b'0' + (millis % 10) as u8));
        text.push('Z');
        text
    })
}

thread_local! {
    /// The Unix second last formatted by this thread, and its text up to the seconds.
    static SECOND: std::cell::RefCell<(Option<u64>, String)> = const { std::cell::RefCell::new((None, String::new())) };
}

/// `YYYY-MM-DDTHH:MM:SS` of a Unix second: `rfc3339_millis`'s text without the fraction.
fn second_text(secs: u64) -> String {
    let at = i64::try_from(secs).ok().and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok());
    let full = crate::core::clock::rfc3339_millis(at.unwrap_or(time::OffsetDateTime::UNIX_EPOCH));
    // The text is ASCII and ends in `.mmmZ`.
    full.get(..full.len().saturating_sub(5)).unwrap_or_default().to_string()
}

/// The first line: where the server listens.
#[derive(Serialize)]
pub struct Listening<'a> {
    /// Always `listening`.
    pub event: &'static str,
    /// The bound address (with the real port when `:0` was asked for).
    pub address: String,
    /// The token URL.
    pub url: &'a str,
    /// The bound metrics address, with `--metrics-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_address: Option<String>,
    /// The metrics URL, with `--metrics-listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_url: Option<String>,
}

/// One answered request.
#[derive(Serialize)]
pub struct RequestLine<'a> {
    /// Always `request`.
    pub event: &'static str,
    /// When the answer was sent.
    pub time: String,
    /// The client's address.
    pub peer: &'a str,
    /// The client certificate's subject (certificate clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'a str>,
    /// SHA-256 of the client certificate, hex (certificate clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<&'a str>,
    /// `bearer` for a client without a certificate (absent for certificate clients).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth: Option<&'static str>,
    /// The verified bearer token's identity (bearer clients, once their token verified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer: Option<BearerFields<'a>>,
    /// The TLS version negotiated.
    pub tls: &'a str,
    /// Request method.
    pub method: &'a str,
    /// Request path (without the query).
    pub path: &'a str,
    /// Response status.
    pub status: u16,
    /// Body bytes sent.
    pub bytes: usize,
    /// Time from the request's first byte to the answer, in milliseconds.
    pub duration_ms: f64,
    /// Why the request was refused, for 4xx/5xx answers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    /// The refusal's code, for a refused bearer client (e.g. `expired`, `not_allowed`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

/// A bearer client in the log: who its verified token says it is, and the token's digest
/// (never the token). Plain fields: the verifier logs through this module, so this module
/// does not know the verifier's types.
#[derive(Clone, Copy, Serialize)]
pub struct BearerFields<'a> {
    /// The issuer's name in `--bearer-issuers`.
    pub issuer: &'a str,
    /// The token's `sub`.
    pub sub: &'a str,
    /// The token's `jti`, `null` when it has none.
    pub jti: Option<&'a str>,
    /// The first 16 hex digits of the token's SHA-256.
    pub token_sha256: &'a str,
}

/// Anything else: refused handshakes, refused connections, reloads, shutdown.
#[derive(Serialize)]
pub struct Event<'a> {
    /// What happened: `handshake_failed`, `connection_refused`, `connection_closed` (to make
    /// room at the limit), `request_timed_out`, `reload`, `reload_failed`, `bad_request`,
    /// `header_refused` (a header left out of an answer: its value would split the head),
    /// `connection_shed` (answered 503 at `--max-handshake-queue`),
    /// `shutdown`, `stopped`.
    pub event: &'a str,
    /// When.
    pub time: String,
    /// The client's address, for connection events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    /// Why, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// What was reloaded or affected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub what: Option<&'a str>,
    /// A short machine-readable cause, e.g. `unknown_ca` for a refused handshake (the label of wif_serve_handshakes_refused_total it counts under).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
    /// A count, e.g. open connections.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    /// The client certificate's subject, for events about a verified client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'a str>,
    /// SHA-256 of the client certificate (hex), for events about a verified client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<&'a str>,
    /// The bearer client, for events about a verified bearer client.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bearer: Option<BearerFields<'a>>,
    /// Seconds the client was told to wait (`Retry-After`), for a shed connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl<'a> Event<'a> {
    /// A new event happening now.
    pub fn new(event: &'a str) -> Self {
        Event {
            event,
            time: now(),
            peer: None,
            reason: None,
            what: None,
            code: None,
            connections: None,
            subject: None,
            fingerprint: None,
            bearer: None,
            retry_after: None,
        }
    }

    /// With the verified client's certificate subject and fingerprint. (Plain fields: the
    /// bearer verifier logs through this module, which therefore knows no identity types.)
    pub fn client(mut self, subject: &'a str, fingerprint: &'a str) -> Self {
        self.subject = Some(subject);
        self.fingerprint = Some(fingerprint);
        self
    }

    /// With the peer address.
    pub fn peer(mut self, peer: impl ToString) -> Self {
        self.peer = Some(peer.to_string());
        self
    }

    /// With the verified bearer client's identity.
    pub fn bearer(mut self, fields: BearerFields<'a>) -> Self {
        self.bearer = Some(fields);
        self
    }

    /// With a reason.
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    /// With what it concerns.
    pub fn what(mut self, what: &'a str) -> Self {
        self.what = Some(what);
        self
    }

    /// With a machine-readable cause.
    pub fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }

    /// With the seconds the client was told to wait before retrying.
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// With a connection count.
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = Some(n);
        self
    }

    /// Writes it to the log.
    pub fn emit(&self) {
        emit(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cached_second_is_the_clocks_text_without_the_fraction() {
        for secs in [0, 59, 951_782_400, 1_733_486_399, 4_102_444_800] {
            let at = time::OffsetDateTime::from_unix_timestamp(secs as i64).unwrap();
            assert_eq!(format!("{}.000Z", second_text(secs)), crate::core::clock::rfc3339_millis(at));
        }
    }

    #[test]
    fn now_is_rfc3339_with_three_digits_of_milliseconds() {
        let before = crate::core::clock::now_unix();
        let (a, b) = (now(), now());
        for text in [&a, &b] {
            assert_eq!(text.len(), "2024-01-01T00:00:00.000Z".len(), "{text}");
            assert!(text.ends_with('Z') && text.as_bytes()[19] == b'.', "{text}");
            let at = crate::core::clock::parse_rfc3339(text).unwrap();
            assert!((before..=before + 2).contains(&at), "{text}");
        }
        assert!(a <= b, "{a} {b}");
    }
}
