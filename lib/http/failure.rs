//! The one classifier of what can go wrong with a request: a transport failure (no answer:
//! refused, reset, timed out, DNS, TLS) or an answer's status. It decides the error kind
//! (and so the exit code) and whether another attempt is worth it; the words come from a
//! [`Wording`], so that a tool can say it in its own terms (wif-get names `--ca` and
//! `--cert` where the protocol clients name `--ca-file`).

use crate::core::error::{io_words, Error, Kind};
use std::time::Duration;

/// Why a request got no HTTP answer.
#[derive(Debug)]
pub enum Trouble {
    /// Nothing listens at the address.
    Refused,
    /// The server reset the connection.
    Reset,
    /// No answer within the attempt's time-out.
    Timeout(Duration),
    /// The server closed the connection before answering.
    ClosedEarly,
    /// Another network error.
    Network(std::io::Error),
    /// The host name does not resolve.
    HostNotFound,
    /// The TCP connection failed otherwise.
    ConnectFailed,
    /// The answer is not HTTP.
    Protocol(String),
    /// The URL cannot be requested.
    BadUrl(String),
    /// The server answered with a redirect (never followed).
    Redirect,
    /// The body is larger than the limit.
    BodyOverLimit(u64),
    /// Reading the body failed.
    BodyRead(std::io::Error),
    /// TLS could not be set up on this side.
    TlsSetup(String),
    /// The TLS handshake failed.
    Handshake(TlsFailure),
    /// Anything else the HTTP library reports.
    Other(String),
}

/// A failed TLS handshake: what it means for the user, and rustls' own error.
#[derive(Debug)]
pub struct TlsFailure {
    /// Whose certificate failed, and how.
    pub what: Handshake,
    /// The rustls error, for its own text.
    pub error: rustls::Error,
}

/// What a failed TLS handshake means.
#[derive(Debug, Clone, PartialEq)]
pub enum Handshake {
    /// The server's certificate does not chain to a trusted CA.
    UnknownIssuer,
    /// The server's certificate is not issued for the host in the URL.
    WrongHost,
    /// The server's certificate has expired (or the clock is wrong).
    Expired,
    /// The server's certificate was rejected for another reason.
    Certificate(rustls::CertificateError),
    /// The server sent an alert: it refused the handshake (for mTLS, the client certificate).
    Alert(rustls::AlertDescription),
    /// Any other TLS failure.
    Other,
}

impl Handshake {
    /// The meaning of a rustls error.
    pub fn of(e: &rustls::Error) -> Handshake {
        use rustls::{CertificateError as C, Error as R};
        match e {
            R::InvalidCertificate(C::UnknownIssuer) => Handshake::UnknownIssuer,
            R::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => Handshake::WrongHost,
            R::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => Handshake::Expired,
            R::InvalidCertificate(other) => Handshake::Certificate(other.clone()),
            R::AlertReceived(alert) => Handshake::Alert(*alert),
            _ => Handshake::Other,
        }
    }
}

/// The words for one TLS failure: what failed (after "TLS handshake failed: ") and a hint.
pub struct Words {
    /// What failed.
    pub what: String,
    /// What to check, if known.
    pub hint: Option<&'static str>,
}

/// How an audience is told about transport failures: the texts that differ between the
/// protocol clients ([`Wording::SERVICE`]) and a tool with flags of its own (wif-get).
pub struct Wording {
    /// Hint for a refused connection.
    pub refused_hint: Option<&'static str>,
    /// Message for a reset connection.
    pub reset: &'static str,
    /// Message for a connection closed before the answer.
    pub closed_early: &'static str,
    /// Hint for a time-out.
    pub timeout_hint: Option<&'static str>,
    /// How another network error is described.
    pub network: IoDetail,
    /// Hint for a host name that does not resolve.
    pub host_hint: &'static str,
    /// Hint for a redirect.
    pub redirect_hint: &'static str,
    /// Message (before the cause) for a body that could not be read.
    pub body_read: &'static str,
    /// The words for a failed handshake.
    pub handshake: fn(&TlsFailure) -> Words,
    /// Message when the given CA certificates hold none usable.
    pub no_usable_root: &'static str,
    /// Context of an error about a client certificate and key rustls cannot use.
    pub unusable_identity: &'static str,
}

// Only which wording it is would be worth showing, and a table of texts says nothing.
impl std::fmt::Debug for Wording {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wording")
    }
}

/// How an I/O error is named in a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoDetail {
    /// Its kind (`network unreachable`).
    Kind,
    /// The system's words (`Network is unreachable`).
    Words,
}

impl Wording {
    /// The protocol clients' words (wif-azure, wif-sts, wif-impersonate, wif-inspect).
    pub const SERVICE: Wording = Wording {
        refused_hint: None,
        reset: "connection reset by the server",
        closed_early: "the server closed the connection early",
        timeout_hint: Some("the service is slow or unreachable; check the URL, proxies and firewalls"),
        network: IoDetail::Kind,
        host_hint: "check the URL and DNS",
        redirect_hint: "give the final URL; token endpoints do not redirect",
        body_read: "reading the response body failed",
        handshake: service_handshake,
        no_usable_root: "the CA certificates hold no usable CA certificate",
        unusable_identity: "loading the client certificate and key",
    };
}

/// The protocol clients' words for a failed handshake: rustls' text, with a hint for
/// certificate problems.
fn service_handshake(f: &TlsFailure) -> Words {
    let hint = match f.what {
        Handshake::UnknownIssuer => Some(
            "the server's certificate does not chain to a trusted CA: give the CA bundle with --ca-file (or SSL_CERT_FILE); a chain from another CA hierarchy (e.g. CA 13 vs CA 13.1) fails here",
        ),
        Handshake::Expired => Some("the server's certificate has expired (or this machine's clock is wrong)"),
        Handshake::WrongHost => Some("the certificate is not issued for the host in the URL; use the name in its SAN"),
        Handshake::Alert(_) => Some("the server refused the handshake; for mTLS check that the client certificate is issued by the CA the server trusts and has clientAuth usage"),
        Handshake::Certificate(_) | Handshake::Other => None,
    };
    Words { what: f.error.to_string(), hint }
}

/// The rustls failure behind a transport error: ureq reports a failed handshake as
/// `Error::Rustls`, or (certificate verification during the handshake) as an `Error::Io`
/// that wraps the rustls error.
pub fn rustls_cause(e: &ureq::Error) -> Option<&rustls::Error> {
    match e {
        ureq::Error::Rustls(t) => Some(t),
        ureq::Error::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()),
        _ => None,
    }
}

impl Trouble {
    /// Classifies a ureq error; `timeout` is the attempt's time-out, for the message.
    pub fn of(e: ureq::Error, timeout: Duration) -> Trouble {
        use ureq::Error as E;
        if let Some(tls) = rustls_cause(&e) {
            return Trouble::Handshake(TlsFailure { what: Handshake::of(tls), error: tls.clone() });
        }
        match e {
            E::Timeout(_) => Trouble::Timeout(timeout),
            E::HostNotFound => Trouble::HostNotFound,
            E::ConnectionFailed => Trouble::ConnectFailed,
            E::Io(io) => Trouble::of_io(io, timeout),
            E::Tls(msg) => Trouble::TlsSetup(msg.to_string()),
            E::BodyExceedsLimit(n) => Trouble::BodyOverLimit(n),
            E::TooManyRedirects | E::RedirectFailed => Trouble::Redirect,
            E::BadUri(u) => Trouble::BadUrl(u),
            E::Protocol(p) => Trouble::Protocol(p.to_string()),
            other => Trouble::Other(other.to_string()),
        }
    }

    fn of_io(io: std::io::Error, timeout: Duration) -> Trouble {
        use std::io::ErrorKind as K;
        match io.kind() {
            K::ConnectionRefused => Trouble::Refused,
            K::ConnectionReset => Trouble::Reset,
            K::TimedOut | K::WouldBlock => Trouble::Timeout(timeout),
            K::UnexpectedEof => Trouble::ClosedEarly,
            _ => Trouble::Network(io),
        }
    }

    /// The kind of error (exit code): a refusal (TLS, redirect) or a bad URL are final;
    /// everything else is the service being unavailable, worth another attempt.
    pub fn kind(&self) -> Kind {
        match self {
            Trouble::Handshake(_) | Trouble::Redirect | Trouble::TlsSetup(_) => Kind::Refused,
            Trouble::BadUrl(_) => Kind::Usage,
            _ => Kind::Unavailable,
        }
    }

    /// The error to report, in `w`'s words.
    pub fn error(&self, w: &Wording) -> Error {
        let kind = self.kind();
        let err = |msg: String| Error::new(kind, msg);
        let io = |e: &std::io::Error| match w.network {
            IoDetail::Kind => e.kind().to_string(),
            IoDetail::Words => io_words(e),
        };
        match self {
            Trouble::Refused => err("connection refused".into()).hint_if(w.refused_hint),
            Trouble::Reset => err(w.reset.into()),
            Trouble::Timeout(t) => err(format!("no answer within {} s", seconds(*t))).hint_if(w.timeout_hint),
            Trouble::ClosedEarly => err(w.closed_early.into()),
            Trouble::Network(e) => err(format!("network error: {}", io(e))),
            Trouble::HostNotFound => err("the host name does not resolve".into()).hint(w.host_hint),
            Trouble::ConnectFailed => err("connection failed".into()),
            Trouble::Protocol(p) => err(format!("the server broke the HTTP protocol: {p}")),
            Trouble::BadUrl(u) => Error::usage(format!("bad URL {u:?}")),
            Trouble::Redirect => err("the server answered with a redirect".into()).hint(w.redirect_hint),
            Trouble::BodyOverLimit(n) => err(format!("the response body is larger than {n} bytes")),
            Trouble::BodyRead(e) => {
                // The services' wording quotes the whole I/O error here, wif-get's its words.
                let detail = match w.network {
                    IoDetail::Kind => e.to_string(),
                    IoDetail::Words => io_words(e),
                };
                err(format!("{}: {detail}", w.body_read))
            }
            Trouble::TlsSetup(m) => err(format!("TLS failed: {m}")),
            Trouble::Handshake(f) => {
                let words = (w.handshake)(f);
                err(format!("TLS handshake failed: {}", words.what)).hint_if(words.hint)
            }
            Trouble::Other(m) => err(format!("request failed: {m}")),
        }
    }
}

/// A duration in seconds for messages: "30", or "1.5" when an attempt got less than a
/// whole number of seconds (what was left of a deadline).
pub fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.1}", d.as_secs_f64())
    }
}

/// What an answer's status means, for every client: which kind of error it is and whether
/// another attempt may get a better one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// 2xx.
    Success,
    /// 401 or 403: this client is not allowed.
    Denied,
    /// 404: no such route.
    NotFound,
    /// 503: the service has nothing to give now.
    Unavailable,
    /// 429 or another 5xx: the service is overloaded or failing.
    Failing,
    /// Anything else (redirects are never followed; other 4xx).
    Unexpected,
}

impl Status {
    /// The meaning of an HTTP status code.
    pub fn of(code: u16) -> Status {
        match code {
            200..=299 => Status::Success,
            401 | 403 => Status::Denied,
            404 => Status::NotFound,
            503 => Status::Unavailable,
            429 | 500.. => Status::Failing,
            _ => Status::Unexpected,
        }
    }

    /// Whether another attempt may succeed (429 and 5xx, honouring Retry-After).
    pub fn retries(self) -> bool {
        matches!(self, Status::Unavailable | Status::Failing)
    }

    /// The kind of error an answer with this status is, when it is one.
    pub fn kind(self) -> Kind {
        if self.retries() {
            Kind::Unavailable
        } else {
            Kind::Refused
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_retry_only_when_waiting_may_help() {
        for (code, retries) in [
            (200, false),
            (401, false),
            (403, false),
            (404, false),
            (429, true),
            (500, true),
            (503, true),
            (302, false),
            (400, false),
        ] {
            assert_eq!(Status::of(code).retries(), retries, "{code}");
        }
        assert_eq!(Status::of(503).kind(), Kind::Unavailable);
        assert_eq!(Status::of(403).kind(), Kind::Refused);
    }

    #[test]
    fn troubles_have_one_kind_and_the_audience_its_words() {
        let w = &Wording::SERVICE;
        let refused =
            Trouble::of(ureq::Error::Io(std::io::ErrorKind::ConnectionRefused.into()), Duration::from_secs(3));
        assert_eq!(refused.kind(), Kind::Unavailable);
        assert_eq!(refused.error(w).to_string(), "connection refused");
        let slow = Trouble::of(ureq::Error::Io(std::io::ErrorKind::TimedOut.into()), Duration::from_millis(1500));
        assert_eq!(slow.error(w).to_string(), "no answer within 1.5 s");
        let tls = Trouble::of(
            ureq::Error::Rustls(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)),
            Duration::from_secs(1),
        );
        assert_eq!(tls.kind(), Kind::Refused);
        assert!(tls.error(w).hint_text().unwrap().contains("--ca-file"));
        assert_eq!(Trouble::Redirect.kind(), Kind::Refused);
        assert_eq!(Trouble::BadUrl("x".into()).kind(), Kind::Usage);
    }
}
