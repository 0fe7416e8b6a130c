//! Shedding a herd (`--max-handshake-queue`): when too many handshakes are waiting for CPU,
//! a new connection gets a cheap handshake that asks for no client certificate, and its
//! first request is answered 503 with a random `Retry-After`, so the clients come back
//! spread over a few seconds instead of all waiting in the queue at once.
//!
//! No client identity is ever established on this path: nothing is verified, nothing is
//! logged as a client, nothing is handed out, whatever the client sends.

use super::conns::{Conn, Phase};
use super::handshake;
use super::log::Event;
use super::routes::wire;
use super::shared::Shared;
use super::tls::Built;
use crate::server::http::{self, Incoming};
use crate::server::Response;
use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// How long a shed client has, after its handshake, to send the request answered 503.
const REQUEST_GRACE: Duration = Duration::from_secs(1);

/// The longest `Retry-After`, in seconds: retries are spread at random over 1 to this.
pub const MAX_RETRY_AFTER: u64 = 5;

/// The other handshakes waiting for CPU when a new connection must be shed; `None` while
/// there is room. Decided when the connection starts being served, before its handshake,
/// while it is still counted itself (its `handshake::Owed`), which is left out.
pub(super) fn overloaded(shared: &Shared) -> Option<u64> {
    let waiting = shared.metrics.handshakes_waiting().saturating_sub(1);
    (waiting >= shared.limits.max_handshake_queue as u64).then_some(waiting)
}

/// A random wait in 1..=[`MAX_RETRY_AFTER`] seconds.
fn retry_after() -> u64 {
    let u = crate::core::spread::unit_random();
    (1 + (u * MAX_RETRY_AFTER as f64) as u64).min(MAX_RETRY_AFTER)
}

/// What a shed client is told.
const BUSY: &str = "the server is busy; retry after the time in Retry-After";

/// The answer to a shed connection's request: OAuth's error fields, and wif-serve's usual
/// `message` (which wif-get quotes).
fn overloaded_answer(retry_after: u64) -> Response {
    let body = serde_json::json!({"error": "overloaded", "error_description": BUSY, "message": BUSY});
    Response::json(503, &body).header("Retry-After", retry_after.to_string())
}

/// Sheds connection `cx` (`waiting` handshakes were waiting for CPU): logs and counts it,
/// runs the handshake without a client certificate under the same `--handshake-timeout`,
/// answers its first request (if it comes within [`REQUEST_GRACE`]) with the 503, and says
/// goodbye. The connection stays in the table throughout, counted by `--max-connections`.
pub(super) fn shed(tcp: &TcpStream, built: &Built, cx: &Conn, shared: &Shared, waiting: u64) {
    let retry_after = retry_after();
    let max = shared.limits.max_handshake_queue;
    shared.metrics.connection_shed();
    Event::new("connection_shed")
        .peer(&cx.peer)
        .reason(format!(
            "{waiting} handshakes were waiting for CPU, at least --max-handshake-queue {max}: answered 503 without asking for a client certificate"
        ))
        .code("overloaded")
        .retry_after(retry_after)
        .emit();
    let Some((mut conn, mut sock)) = handshake::run(built.shed.clone(), tcp, cx, shared, None) else { return };
    // Nothing on it is worth keeping: the first to give way at --max-connections.
    if !cx.enter(Phase::Handshake, Phase::Closing) {
        return;
    }
    sock.deadline = Instant::now() + REQUEST_GRACE;
    let mut buf = Vec::new();
    if let Incoming::Request(req) = http::read_request(&mut rustls::Stream::new(&mut conn, &mut sock), &mut buf) {
        let bytes = wire(&overloaded_answer(retry_after), req.method == "HEAD", false);
        // The answer and the close_notify go out together.
        let _ = conn.writer().write_all(&bytes);
    }
    let _ = handshake::close_notify(&mut conn, &mut sock);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_drawn_in_one_to_five_seconds_and_reaches_both_ends() {
        let drawn: std::collections::BTreeSet<u64> = (0..2000).map(|_| retry_after()).collect();
        assert_eq!(drawn.into_iter().collect::<Vec<_>>(), (1..=MAX_RETRY_AFTER).collect::<Vec<_>>());
    }

    #[test]
    fn the_answer_is_503_with_retry_after_and_a_json_error() {
        let resp = overloaded_answer(3);
        assert_eq!(resp.status, 503);
        let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
        assert_eq!(body["error"], "overloaded");
        assert_eq!(body["error_description"], "the server is busy; retry after the time in Retry-After");
        let wire = String::from_utf8(wire(&resp, false, false)).unwrap();
        assert!(wire.contains("\r\nRetry-After: 3\r\n"), "{wire}");
        assert!(wire.contains("\r\nConnection: close\r\n"), "{wire}");
    }
}
