//! A herd past `--max-connections`: a handshake the server owes work to (its ClientHello in
//! hand, or not yet read) keeps its slot, a newcomer past the limit takes the slot of one
//! waiting for its client or is refused at once, and every client is served on retry.
//!
//! Each burst arrives all at once (`Server::all_at_once`): the server is stopped while its
//! clients connect and send their ClientHello, then continued, so its accept loop finds the
//! whole herd in the backlog together, far more than the limit.

use crate::common::server::*;
use crate::common::{pki_file, stderr};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "ya29.c.herd-test-token-Qv81";
const GET: &[u8] = b"GET /get_wif_token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
/// The connection limit the herd overflows.
const LIMIT: usize = 16;
/// Clients in one burst: four times the limit.
const HERD: usize = 64;
/// Bursts tried before a test gives up on seeing the limit overflow (nearly every one does).
const BURSTS: usize = 10;

/// A socket that remembers whether the server ever sent anything on it.
struct Tally {
    tcp: TcpStream,
    got: usize,
}

impl Read for Tally {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.tcp.read(buf)?;
        self.got += n;
        Ok(n)
    }
}

impl Write for Tally {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tcp.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.tcp.flush()
    }
}

/// One connection of a client: its address as the server logs it, whether the server
/// answered its ClientHello at all, and the answer to its request.
struct Attempt {
    peer: String,
    answered_hello: bool,
    answer: std::io::Result<Resp>,
}

fn attempt(port: u16, config: &Arc<rustls::ClientConfig>) -> Attempt {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let peer = tcp.local_addr().unwrap().to_string();
    let conn = rustls::ClientConnection::new(config.clone(), "localhost".try_into().unwrap()).unwrap();
    let mut s = rustls::StreamOwned::new(conn, Tally { tcp, got: 0 });
    let answer = s.write_all(GET).and_then(|()| read_response(&mut s, false));
    Attempt { peer, answered_hello: s.sock.got > 0, answer }
}

/// A client of the herd: connections until one is answered 200 with the token (a cut-off
/// or refused connection is tried again after a short pause); every attempt made.
fn client_until_served(port: u16, config: Arc<rustls::ClientConfig>) -> Vec<Attempt> {
    let mut attempts = Vec::new();
    for n in 0..100u64 {
        let a = attempt(port, &config);
        if let Ok(r) = &a.answer {
            assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
            assert_eq!(r.body, TOKEN.as_bytes());
            attempts.push(a);
            return attempts;
        }
        attempts.push(a);
        std::thread::sleep(Duration::from_millis(20 + 10 * n.min(20)));
    }
    panic!("a client was cut off 100 times in a row");
}

fn evicted(log: &[Value]) -> Vec<&Value> {
    log.iter().filter(|v| v["event"] == "connection_closed" && v["code"] == "evicted").collect()
}

fn refused(log: &[Value]) -> Vec<&Value> {
    log.iter().filter(|v| v["event"] == "connection_refused").collect()
}

#[test]
fn a_herd_past_max_connections_loses_no_handshake_in_progress_and_every_client_is_served() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    // No shedding: the whole herd goes through the connection limit.
    let limit = LIMIT.to_string();
    let mut srv = Server::start(
        &tok,
        &["--max-connections", &limit, "--max-connections-per-client", &limit, "--max-handshake-queue", "4096"],
    );
    let port = srv.port;
    let chain = wif::core::keys::load_certs(Path::new(&pki_file("client.crt"))).unwrap();
    let key = wif::core::keys::load_key(Path::new(&pki_file("client.key")), None).unwrap().key;
    let mut config = client_builder("ca-chain.crt", None).with_client_auth_cert(chain, key).unwrap();
    // Every connection a full handshake, as a herd of new processes makes.
    config.resumption = rustls::client::Resumption::disabled();
    let config = Arc::new(config);
    let (mut attempts, mut clients, mut log) = (Vec::new(), 0, Vec::new());
    // The whole log so far, each time.
    for _ in 0..BURSTS {
        let (herd, _) = srv.all_at_once(HERD, || {
            (0..HERD)
                .map(|_| {
                    let config = config.clone();
                    std::thread::spawn(move || client_until_served(port, config))
                })
                .collect::<Vec<_>>()
        });
        attempts.extend(herd.into_iter().flat_map(|h| h.join().unwrap()));
        clients += HERD;
        log = srv.drain();
        if !evicted(&log).is_empty() || !refused(&log).is_empty() {
            break;
        }
    }
    let (evicted, refused) = (evicted(&log), refused(&log));
    assert!(
        !evicted.is_empty() || !refused.is_empty(),
        "{BURSTS} bursts of {HERD} clients never reached --max-connections {LIMIT}"
    );
    // A connection closed to make room was one whose ClientHello the server had answered: it
    // was waiting for its client (or had had its answer), never for the server. One window is
    // left: a thread whose read has just returned the client's bytes and that is preempted
    // before it marks them in hand, for which at most a couple may be lost (main's rule lost
    // 147 and 169 of such bursts, nearly every eviction).
    let mut unanswered = Vec::new();
    for line in &evicted {
        let peer = line["peer"].as_str().unwrap();
        let a = attempts.iter().find(|a| a.peer == peer).unwrap_or_else(|| panic!("no client was {peer}"));
        if !a.answered_hello {
            unanswered.push(line);
        }
        // Either it was in its handshake, waiting for its client, or it had had its answer and
        // was being closed.
        let reason = line["reason"].as_str().unwrap();
        assert!(reason.contains("waiting for its client") || reason.contains("was being closed"), "{line}");
    }
    assert!(
        unanswered.len() <= 2,
        "closed to make room before the server answered their ClientHello: {unanswered:#?}\n{} evicted, {} refused",
        evicted.len(),
        refused.len()
    );
    // A newcomer refused at the limit was closed before its handshake began.
    for line in &refused {
        assert!(line["reason"].as_str().unwrap().contains("--max-connections 16"), "{line}");
        let peer = line["peer"].as_str().unwrap();
        let a = attempts.iter().find(|a| a.peer == peer).unwrap_or_else(|| panic!("no client was {peer}"));
        assert!(!a.answered_hello && a.answer.is_err(), "{line}");
    }
    let log = srv.stop_cleanly();
    // Every client was served once, and only once: one request line each, its 200.
    let requests: Vec<&Value> = log.iter().filter(|v| v["event"] == "request").collect();
    assert_eq!(requests.len(), clients);
    assert!(requests.iter().all(|v| v["status"] == 200), "{requests:#?}");
    assert_eq!(attempts.iter().filter(|a| a.answer.is_ok()).count(), clients);
}

#[test]
fn a_wif_get_fleet_past_max_connections_all_end_with_the_token_with_the_default_retries() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let limit = LIMIT.to_string();
    let mut srv = Server::start(&tok, &["--max-connections", &limit, "--max-connections-per-client", &limit]);
    let url = format!("https://localhost:{}/get_wif_token", srv.port);
    let dir = crate::common::tempdir();
    let mut failed_connections = 0;
    for _ in 0..BURSTS {
        let (fleet, _) = srv.all_at_once(HERD, || {
            (0..HERD)
                .map(|i| crate::common::spawn_wif_get(&url, dir.path().join(format!("host-{i}.token")), &[]))
                .collect::<Vec<_>>()
        });
        for (host, token) in fleet {
            let out = host.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(std::fs::read_to_string(&token).unwrap(), TOKEN);
            let err = stderr(&out);
            assert!(!err.contains(TOKEN), "the token reached stderr");
            failed_connections += crate::common::retry_lines(&err, "wif-get").len();
        }
        let log = srv.drain();
        if !evicted(&log).is_empty() || !refused(&log).is_empty() {
            break;
        }
    }
    assert!(failed_connections > 0, "{BURSTS} fleets of {HERD} never had a connection cut off or refused");
    srv.finish_checking_secrecy(&[TOKEN]);
}
