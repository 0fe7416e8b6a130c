//! The TLS handshake driven by hand (counting handshakes waiting for CPU), why a client is
//! refused in it (or cut off when its certificate stops verifying), and the client a
//! handshake verified.

use super::allow::Identity;
use super::conns::{Conn, Phase};
use super::log::Event;
use super::metrics::{Metrics, Refusal};
use super::shared::Shared;
use super::tls;
use crate::server::Armed;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

/// Handshake work the server owes, counted while this lives: in the gauge of handshakes
/// waiting for CPU, and on its [`Conn`] (which is then not closed to make room). Held from a
/// connection's accept until its thread first reads from it (under a burst, the connections
/// whose threads have not run yet are the queue: on a busy CPU they wait there, not in a
/// read), and from each read that returns the client's bytes until the socket's next use,
/// i.e. until they are processed and the flight they produce is queued. A silent client's
/// thread waits in a read, where nothing is owed.
pub(super) struct Owed {
    shared: Arc<Shared>,
    cx: Arc<Conn>,
}

impl Owed {
    /// Counts work owed to connection `cx`.
    pub fn new(shared: &Arc<Shared>, cx: &Arc<Conn>) -> Owed {
        shared.metrics.handshake_waits();
        cx.set_owed(true);
        Owed { shared: shared.clone(), cx: cx.clone() }
    }
}

impl Drop for Owed {
    fn drop(&mut self) {
        self.cx.set_owed(false);
        self.shared.metrics.handshake_runs();
    }
}

/// Runs connection `cx`'s handshake on `tcp` under `config`, within --handshake-timeout of
/// its accept, counted as owed work from its `arrival` on (see [`Owed`]; `None` for a shed
/// connection, never counted). A failure is counted and logged (not for a
/// connection closed meanwhile to make room, or by the shutdown), and `None`.
pub(super) fn run<'t>(
    config: Arc<rustls::ServerConfig>,
    tcp: &'t TcpStream,
    cx: &Conn,
    shared: &Shared,
    arrival: Option<Owed>,
) -> Option<(rustls::ServerConnection, Armed<'t>)> {
    let mut conn = match rustls::ServerConnection::new(config) {
        Ok(c) => c,
        Err(e) => {
            HandshakeFailure::Setup(e).record(&shared.metrics, &cx.peer);
            return None;
        }
    };
    let mut sock = Armed::new(tcp, cx.born + shared.limits.handshake_timeout);
    if let Err(e) = complete(&mut conn, &mut sock, arrival) {
        if cx.phase() != Phase::Closed {
            HandshakeFailure::of_io(&e).record(&shared.metrics, &cx.peer);
        }
        return None;
    }
    Some((conn, sock))
}

/// Queues the close_notify behind whatever `conn` still has to send and writes it all to
/// `sock`: the one goodbye of full and shed connections.
pub(super) fn close_notify(conn: &mut rustls::ServerConnection, sock: &mut impl Write) -> io::Result<()> {
    conn.send_close_notify();
    while conn.wants_write() {
        conn.write_tls(sock)?;
    }
    Ok(())
}

/// Drives a handshake to its end with rustls' `complete_io` (its errors, and the alert sent
/// when rustls refuses), counting the work owed from `arrival` (see [`Owed`]; `None`: not
/// counted, for shed connections). A silent or slow client waits in a read, where it never
/// counts: idle connections cannot make the server shed everyone else, nor keep their slot at
/// --max-connections.
fn complete(
    conn: &mut rustls::ServerConnection,
    sock: &mut (impl Read + Write),
    arrival: Option<Owed>,
) -> io::Result<()> {
    let owed_to = arrival.as_ref().map(|a| (a.shared.clone(), a.cx.clone()));
    let mut counting = Counting { sock, owed_to, held: arrival };
    while conn.is_handshaking() {
        conn.complete_io(&mut counting)?;
    }
    Ok(())
}

/// A socket that holds an [`Owed`] from a read that returned the client's bytes (or from the
/// accept) to its next use.
struct Counting<'s, S> {
    sock: &'s mut S,
    /// Whom work is owed to (`None`: never counted).
    owed_to: Option<(Arc<Shared>, Arc<Conn>)>,
    held: Option<Owed>,
}

impl<S: Read> Read for Counting<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.held = None;
        let n = self.sock.read(buf)?;
        if n > 0 {
            self.held = self.owed_to.as_ref().map(|(shared, cx)| Owed::new(shared, cx));
        }
        Ok(n)
    }
}

impl<S: Write> Write for Counting<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.held = None;
        self.sock.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.held = None;
        self.sock.flush()
    }
}

/// Why a client's TLS handshake failed: each carries the reason it is counted under
/// ([`HandshakeFailure::refusal`]), whose label is also the log's `code`, and its words for
/// the log ([`HandshakeFailure::reason`]).
#[derive(Debug)]
pub enum HandshakeFailure {
    /// rustls could not start a server connection.
    Setup(rustls::Error),
    /// rustls refused the exchange or the client's certificate.
    Tls(rustls::Error),
    /// The handshake did not finish within `--handshake-timeout`.
    TimedOut,
    /// The client closed the connection during the handshake.
    ClientClosed,
    /// Another I/O error, in its words.
    Io(String),
    /// The handshake finished without a client certificate.
    NoCertificate,
}

impl HandshakeFailure {
    /// Why the handshake whose I/O failed with `e` failed.
    pub fn of_io(e: &std::io::Error) -> HandshakeFailure {
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return HandshakeFailure::Tls(tls.clone());
        }
        match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => HandshakeFailure::TimedOut,
            std::io::ErrorKind::UnexpectedEof => HandshakeFailure::ClientClosed,
            _ => HandshakeFailure::Io(e.to_string()),
        }
    }

    /// The reason counted in `wif_serve_handshakes_refused_total`.
    pub fn refusal(&self) -> Refusal {
        use rustls::{CertificateError as C, Error as E};
        match self {
            HandshakeFailure::Tls(E::NoCertificatesPresented) | HandshakeFailure::NoCertificate => {
                Refusal::NoCertificate
            }
            HandshakeFailure::Tls(E::InvalidCertificate(c)) => match c {
                C::UnknownIssuer | C::BadSignature => Refusal::UnknownCa,
                C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. } => {
                    Refusal::Expired
                }
                C::InvalidPurpose | C::InvalidPurposeContext { .. } => Refusal::BadEku,
                C::Revoked => Refusal::Revoked,
                _ => Refusal::Other,
            },
            HandshakeFailure::TimedOut => Refusal::Timeout,
            HandshakeFailure::Tls(_) | HandshakeFailure::Setup(_) | HandshakeFailure::ClientClosed => Refusal::Other,
            HandshakeFailure::Io(_) => Refusal::Other,
        }
    }

    /// The log's `code`: the label of the reason counted, so a log line and the counter it
    /// bumps use one word.
    pub fn code(&self) -> &'static str {
        self.refusal().label()
    }

    /// The finer cause for the log's `reason`: rustls's words (e.g. "not valid yet"), or the
    /// I/O condition.
    pub fn reason(&self) -> String {
        match self {
            HandshakeFailure::Setup(e) | HandshakeFailure::Tls(e) => e.to_string(),
            HandshakeFailure::TimedOut => "handshake timed out".into(),
            HandshakeFailure::ClientClosed => "the client closed the connection during the handshake".into(),
            HandshakeFailure::Io(words) => words.clone(),
            HandshakeFailure::NoCertificate => "no client certificate".into(),
        }
    }

    /// Counts the refusal and logs the `handshake_failed` line for the client at `peer`.
    pub fn record(&self, metrics: &Metrics, peer: &str) {
        metrics.refused(self.refusal());
        Event::new("handshake_failed").peer(peer).reason(self.reason()).code(self.code()).emit();
    }
}

/// The TLS version a connection negotiated, as the log writes it.
pub(super) fn tls_version(conn: &rustls::ServerConnection) -> &'static str {
    match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
        Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
        _ => "TLS",
    }
}

/// A client verified in the handshake, and what must stay true for it to be served.
pub(super) struct Verified {
    pub id: Arc<Identity>,
    /// The earliest end of validity in the chain it presented, Unix seconds.
    valid_until: i64,
    /// The TLS build it was last verified under.
    generation: u64,
}

impl Verified {
    pub fn new(conn: &rustls::ServerConnection, generation: u64) -> Option<Verified> {
        let chain = conn.peer_certificates()?;
        let id = Identity::from_der(chain.first()?.as_ref());
        let intermediates = chain[1..]
            .iter()
            .filter_map(|c| x509_parser::parse_x509_certificate(c.as_ref()).ok())
            .map(|(_, c)| c.validity().not_after.timestamp());
        let valid_until = intermediates.fold(id.not_after, i64::min);
        Some(Verified { id: Arc::new(id), valid_until, generation })
    }

    /// Whether the client may still be served: its certificates still in date, and, when
    /// the CA bundle or CRLs were reloaded since it was last verified, verified again under
    /// them. `Err` with why not and the reason counted.
    pub fn recheck(
        &mut self,
        tls: &tls::TlsSource,
        conn: &rustls::ServerConnection,
    ) -> std::result::Result<(), (String, Refusal)> {
        if crate::core::clock::now_unix() >= self.valid_until {
            return Err((
                format!(
                    "the client's certificate chain expired at {} while its connection was open",
                    crate::core::clock::rfc3339(self.valid_until)
                ),
                Refusal::Expired,
            ));
        }
        if tls.generation() != self.generation {
            let built = tls.current();
            built.verify_client(conn.peer_certificates().unwrap_or_default()).map_err(|e| {
                let failure = HandshakeFailure::Tls(e);
                let (why, code) = (failure.reason(), failure.refusal());
                (
                    format!("the client's certificate no longer verifies under the reloaded CA and CRL files: {why}"),
                    code,
                )
            })?;
            self.generation = built.generation;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tls_refusal_maps_to_one_of_the_eight_reasons() {
        use rustls::{AlertDescription as A, CertificateError as C, Error as E, PeerIncompatible as P};
        let cases = [
            (E::NoCertificatesPresented, "no_certificate"),
            (E::InvalidCertificate(C::UnknownIssuer), "unknown_ca"),
            (E::InvalidCertificate(C::BadSignature), "unknown_ca"),
            (E::InvalidCertificate(C::Expired), "expired"),
            (E::InvalidCertificate(C::NotValidYet), "expired"),
            (E::InvalidCertificate(C::InvalidPurpose), "bad_eku"),
            (E::InvalidCertificate(C::Revoked), "revoked"),
            (E::InvalidCertificate(C::BadEncoding), "other"),
            (E::AlertReceived(A::HandshakeFailure), "other"),
            (E::PeerIncompatible(P::Tls12NotOffered), "other"),
            (E::DecryptError, "other"),
        ];
        for (e, label) in cases {
            assert_eq!(HandshakeFailure::Tls(e.clone()).code(), label, "{e:?}");
            assert!(Refusal::ALL.iter().any(|r| r.label() == label));
        }
    }

    #[test]
    fn io_conditions_keep_their_codes_and_words() {
        let timed_out = HandshakeFailure::of_io(&std::io::ErrorKind::TimedOut.into());
        assert_eq!((timed_out.code(), timed_out.reason().as_str()), ("timeout", "handshake timed out"));
        let closed = HandshakeFailure::of_io(&std::io::ErrorKind::UnexpectedEof.into());
        assert_eq!(closed.code(), "other");
        assert_eq!(closed.reason(), "the client closed the connection during the handshake");
        let tls = std::io::Error::new(std::io::ErrorKind::InvalidData, E::NoCertificatesPresented);
        assert_eq!(HandshakeFailure::of_io(&tls).code(), "no_certificate");
        assert_eq!(HandshakeFailure::NoCertificate.reason(), "no client certificate");
    }

    use rustls::Error as E;
}
