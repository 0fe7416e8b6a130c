//! wif-serve under more new connections than it can answer: shed with 503 and Retry-After.
//!
//! Which connection of a burst is shed depends on the scheduler, so the herd tests assert
//! outcomes (every client ends with the token; every 503 is the shed answer with Retry-After
//! in 1..=5, no token, no client certificate asked for). Each burst arrives all at once: the
//! server is stopped while its clients connect and send their ClientHello, then continued
//! (`Server::all_at_once`), so it starts them together instead of one by one as they trickle
//! in. A burst is repeated, a bounded number of times, until one has shed at least one
//! connection: most bursts shed many, and a server that no longer sheds fails every time.
//! What must never count as waiting for CPU (a silent client, a client that stalls after its
//! ClientHello) is proven exactly.

use crate::common::server::*;
use crate::common::{apt, bin, needs, pki_file, prom, runs, stderr};
use rustls::client::ResolvesClientCert;
use rustls::sign::CertifiedKey;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const TOKEN: &str = "ya29.c.shedding-test-token-Rw52";
const GET: &[u8] = b"GET /get_wif_token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
/// Bursts tried before a test gives up on seeing one shed connection. A burst arriving all
/// at once usually sheds many, but not always: with the machine loaded (`yes` on both CPUs)
/// up to half the herd's bursts shed none. This many makes a miss as good as impossible (at
/// most about one in 10^9), while a server that never sheds still fails, every time.
const BURSTS: usize = 30;
/// Clients in one burst.
const HERD: usize = 48;
/// wif-get processes in one burst.
const FLEET: usize = 48;
/// curls (and as many clients with a certificate) in one burst.
const CURLS: usize = 24;

/// Starts wif-serve with `--max-handshake-queue 1`, room for the whole herd under the
/// connection limits, metrics on loopback, and `extra`.
///
/// Not pinned to one CPU: a handshake counts as waiting only from its thread's read to the
/// end of its processing, and the shed decision is taken on the new connection's own thread
/// as it starts. On one CPU the two overlap only when the scheduler preempts a thread in the
/// middle of processing a flight, which it rarely does (bursts of 48 often shed nothing);
/// on two, whenever a connection starts while another's flight is being processed, which a
/// burst arriving all at once makes happen many times over.
fn start(tok: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--max-handshake-queue", "1", "--metrics-listen", "127.0.0.1:0"];
    args.extend(["--max-connections", "1024", "--max-connections-per-client", "1024"]);
    args.extend(extra);
    Server::start(tok, &args)
}

/// Pins the server's threads to CPU 0 when `taskset` is there.
fn pin_to_one_cpu(srv: &Server) {
    if runs("taskset", "--version") {
        let pinned = std::process::Command::new("taskset")
            .args(["-a", "-p", "-c", "0", &srv.pid().to_string()])
            .output()
            .unwrap();
        assert!(pinned.status.success(), "taskset: {}", stderr(&pinned));
    }
}

/// The server's metrics now.
fn scrape(srv: &Server) -> prom::Samples {
    let addr = srv.first["metrics_address"].as_str().expect("metrics_address");
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.status, 200);
    prom::parse(std::str::from_utf8(&r.body).unwrap())
}

/// The good client certificate, handed out only when the server asks for one, which is
/// recorded: a shed connection must never ask.
#[derive(Debug)]
struct Recording {
    key: Arc<CertifiedKey>,
    asked: AtomicBool,
}

impl ResolvesClientCert for Recording {
    fn resolve(&self, _: &[&[u8]], _: &[rustls::SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.asked.store(true, Ordering::SeqCst);
        Some(self.key.clone())
    }
    fn has_certs(&self) -> bool {
        true
    }
}

/// The good client's certificate and key, ready to sign.
fn client_key() -> Arc<CertifiedKey> {
    let chain = wif::core::keys::load_certs(Path::new(&pki_file("client.crt"))).unwrap();
    let key = wif::core::keys::load_key(Path::new(&pki_file("client.key")), None).unwrap().key;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    Arc::new(CertifiedKey::new(chain, provider.key_provider.load_private_key(key).unwrap()))
}

/// One attempt of a client: its answer, whether the server asked for its certificate, and
/// its address as the server's log writes it.
struct Attempt {
    answer: std::io::Result<Resp>,
    asked: bool,
    peer: String,
}

fn attempt(port: u16, key: &Arc<CertifiedKey>) -> Attempt {
    let recording = Arc::new(Recording { key: key.clone(), asked: AtomicBool::new(false) });
    let mut config = client_builder("ca-chain.crt", None).with_client_cert_resolver(recording.clone());
    // Every connection a full handshake, as a herd of new processes makes.
    config.resumption = rustls::client::Resumption::disabled();
    let mut s = connect(port, Arc::new(config));
    let peer = s.sock.local_addr().unwrap().to_string();
    let answer = s.write_all(GET).and_then(|()| read_response(&mut s, false));
    Attempt { answer, asked: recording.asked.load(Ordering::SeqCst), peer }
}

/// Checks a shed answer: 503, the JSON error, Retry-After in 1..=5, no token; returns the
/// Retry-After seconds.
fn check_shed_answer(r: &Resp) -> u64 {
    assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
    let body = r.json();
    assert_eq!(body["error"], "overloaded", "{body}");
    assert_eq!(body["error_description"], "the server is busy; retry after the time in Retry-After");
    assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(r.header("x-token-expires-at").is_none());
    let secs: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=5).contains(&secs), "Retry-After: {secs}");
    secs
}

/// What one client of a herd went through until it had the token: the peers of its shed
/// connections with the Retry-After each was told.
fn client_until_served(port: u16, key: &Arc<CertifiedKey>) -> Vec<(String, u64)> {
    let mut shed = Vec::new();
    for _ in 0..20 {
        let a = attempt(port, key);
        let r = a.answer.unwrap_or_else(|e| panic!("a client was cut off unanswered: {e}"));
        if r.status == 200 {
            assert!(a.asked, "the token was served without a client certificate");
            assert_eq!(r.body, TOKEN.as_bytes());
            return shed;
        }
        let secs = check_shed_answer(&r);
        assert!(!a.asked, "a shed connection asked for a client certificate");
        shed.push((a.peer, secs));
        std::thread::sleep(Duration::from_secs(secs));
    }
    panic!("a client was shed 20 times in a row");
}

#[test]
fn a_herd_is_shed_with_retry_after_and_every_client_ends_with_the_token() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = start(&tok, &[]);
    let port = srv.port;
    let key = client_key();
    let mut shed: Vec<(String, u64)> = Vec::new();
    let mut clients = 0;
    while shed.is_empty() && clients < BURSTS * HERD {
        let (herd, _) = srv.all_at_once(HERD, || {
            (0..HERD)
                .map(|_| {
                    let key = key.clone();
                    std::thread::spawn(move || client_until_served(port, &key))
                })
                .collect::<Vec<_>>()
        });
        shed.extend(herd.into_iter().flat_map(|h| h.join().unwrap()));
        clients += HERD;
    }
    assert!(!shed.is_empty(), "{BURSTS} bursts of {HERD} clients against --max-handshake-queue 1: nothing shed");
    // Every shed connection has its one log line, with the Retry-After its client was told,
    // and nothing about a client identity; none of them has a request or credential line.
    let lines = srv.wait_count("connection_shed lines", shed.len(), |v| v["event"] == "connection_shed");
    for (peer, secs) in &shed {
        let line = lines
            .iter()
            .find(|v| v["peer"] == peer.as_str() && v["retry_after"] == *secs)
            .unwrap_or_else(|| panic!("no connection_shed line for {peer} with retry_after {secs}: {lines:#?}"));
        assert_eq!(line["code"], "overloaded", "{line}");
        assert!(line["reason"].as_str().unwrap().contains("--max-handshake-queue 1"), "{line}");
    }
    for line in &lines {
        for field in ["subject", "fingerprint", "bearer"] {
            assert!(line.get(field).is_none(), "{line}");
        }
    }
    let m = scrape(&srv);
    assert_eq!(m.types["wif_serve_connections_shed_total"], "counter");
    assert_eq!(m.types["wif_serve_handshakes_waiting"], "gauge");
    assert_eq!(m.get("wif_serve_connections_shed_total", &[]), lines.len() as f64);
    let log = srv.stop_cleanly();
    assert_eq!(count_shed(&log), shed.len(), "a shed line for a connection no client saw shed");
    // One request line per client, its 200: nothing logged for a shed connection's request.
    let requests: Vec<&Value> = log.iter().filter(|v| v["event"] == "request").collect();
    assert_eq!(requests.len(), clients, "{requests:#?}");
    assert!(requests.iter().all(|v| v["status"] == 200 && v["subject"].is_string()), "{requests:#?}");
    assert_eq!(log.iter().filter(|v| v["event"] == "handshake_failed").count(), 0);
}

fn count_shed(log: &[Value]) -> usize {
    log.iter().filter(|v| v["event"] == "connection_shed").count()
}

/// A whole ClientHello of the good client: the handshake begun, then nothing more.
fn client_hello() -> Vec<u8> {
    let config = client_config(Some("client"), "ca-chain.crt", None);
    let mut conn =
        rustls::ClientConnection::new(config, rustls::pki_types::ServerName::try_from("localhost").unwrap()).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

#[test]
fn silent_and_stalled_handshakes_never_count_as_waiting_for_cpu() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    // Long enough that none of them times out during the test, however slow the machine.
    let srv = start(&tok, &["--handshake-timeout", "120s"]);
    // A half ClientHello is held, for the moment its bytes are processed, like any other:
    // each of those connections is made only once the server has read the last one's bytes
    // (and on one CPU), so that no connection starts while another's are being processed.
    pin_to_one_cpu(&srv);
    let hello = client_hello();
    let connect_raw = || {
        let s = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s
    };
    // A connection is counted from its accept until its thread first reads from it: each
    // silent one is made once the last has stopped counting (its thread waits in a read).
    let settled = || {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while scrape(&srv).get("wif_serve_handshakes_waiting", &[]) != 0.0 {
            assert!(std::time::Instant::now() < until, "a silent connection kept counting as waiting for CPU");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // Ten silent connections, ten that send half a ClientHello, ten that send a whole one
    // and stall once the server has answered it (its flight read: processed and written).
    let silent: Vec<TcpStream> = (0..10)
        .map(|_| {
            let s = connect_raw();
            settled();
            s
        })
        .collect();
    let half: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = connect_raw();
            s.write_all(&hello[..hello.len() / 2]).unwrap();
            let until = std::time::Instant::now() + Duration::from_secs(10);
            while connections_with_unread_bytes(srv.port) > 0 {
                assert!(std::time::Instant::now() < until, "the server never read half a ClientHello");
                std::thread::sleep(Duration::from_millis(2));
            }
            s
        })
        .collect();
    let stalled: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = connect_raw();
            s.write_all(&hello).unwrap();
            let mut first = [0u8; 1];
            s.read_exact(&mut first).expect("the server's answer to the ClientHello");
            s
        })
        .collect();
    let m = scrape(&srv);
    assert_eq!(m.get("wif_serve_handshakes_waiting", &[]), 0.0);
    // With a queue of one, a single counted handshake would shed the next client: each of
    // these is served (one after the other, so none is in the queue when the next comes).
    let key = client_key();
    for _ in 0..5 {
        let a = attempt(srv.port, &key);
        let r = a.answer.expect("an answer");
        assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
        assert!(a.asked);
    }
    let m = scrape(&srv);
    assert_eq!(m.get("wif_serve_connections_shed_total", &[]), 0.0);
    assert_eq!(m.get("wif_serve_handshakes_waiting", &[]), 0.0);
    assert!(m.get("wif_serve_open_connections", &[]) >= 30.0);
    drop((silent, half, stalled));
    let log = srv.stop_cleanly();
    assert_eq!(count_shed(&log), 0, "{log:#?}");
}

#[test]
fn curl_without_a_certificate_gets_the_shed_answer_and_nothing_else() {
    if !needs("curl", runs("curl", "--version"), &apt("curl")) {
        return;
    }
    let (d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let srv = start(&tok, &[]);
    let port = srv.port;
    // Each burst: clients with a certificate and curls without one, interleaved, arriving
    // all at once. On the full path a curl's handshake is refused; only a shed connection
    // answers it at all.
    let mut answered = Vec::new();
    for burst in 0..BURSTS {
        let (started, _) = srv.all_at_once(2 * CURLS, || {
            (0..CURLS)
                .map(|i| {
                    let key = client_key();
                    let herd = std::thread::spawn(move || drop(attempt(port, &key)));
                    let headers = d.path().join(format!("headers-{burst}-{i}"));
                    let curl = std::process::Command::new("curl")
                        .args(["-sS", "--max-time", "20", "--cacert", &pki_file("ca-chain.crt"), "-D"])
                        .arg(&headers)
                        .arg(format!("https://localhost:{port}/get_wif_token"))
                        .args(["--resolve", &format!("localhost:{port}:127.0.0.1")])
                        .stdout(std::process::Stdio::piped())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap();
                    (herd, curl, headers)
                })
                .collect::<Vec<_>>()
        });
        for (herd, curl, headers) in started {
            herd.join().unwrap();
            let out = curl.wait_with_output().unwrap();
            if out.status.success() {
                answered.push((std::fs::read_to_string(&headers).unwrap(), out.stdout));
            }
        }
        if !answered.is_empty() {
            break;
        }
    }
    assert!(!answered.is_empty(), "{BURSTS} bursts of {CURLS} curls without a certificate: none was shed");
    // Every curl answered at all was answered by shedding.
    for (head, body) in answered {
        check_curl_answer(&head, body);
    }
    srv.finish_checking_secrecy(&[TOKEN]);
}

/// Checks that what curl got (its header dump and body) is the shed answer.
fn check_curl_answer(head: &str, body: Vec<u8>) {
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim()))
    };
    let resp = Resp {
        status,
        headers: [("Retry-After", header("retry-after")), ("Connection", header("connection"))]
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?.to_string())))
            .collect(),
        body,
    };
    check_shed_answer(&resp);
}

#[test]
fn a_wif_get_fleet_sent_at_once_all_end_with_the_token() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = start(&tok, &[]);
    let url = format!("https://localhost:{}/get_wif_token", srv.port);
    let dir = crate::common::tempdir();
    let mut shed_retries = 0;
    for _ in 0..BURSTS {
        let (fleet, _) = srv.all_at_once(FLEET, || {
            (0..FLEET)
                .map(|i| {
                    crate::common::spawn_wif_get(&url, dir.path().join(format!("host-{i}.token")), &["--retries", "20"])
                })
                .collect::<Vec<_>>()
        });
        for (host, token) in fleet {
            let out = host.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", stderr(&out));
            assert_eq!(std::fs::read_to_string(&token).unwrap(), TOKEN);
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(report["fetched"]["status"], 200, "{report}");
            let err = stderr(&out);
            assert!(!err.contains(TOKEN), "the token reached stderr");
            let retries = crate::common::retry_lines(&err, "wif-get");
            assert!(retries.iter().all(|r| r.why.contains("503")), "{err}");
            shed_retries += retries.len();
        }
        if count_shed(&srv.drain()) > 0 {
            break;
        }
    }
    let shed = count_shed(&srv.drain());
    assert!(shed > 0, "{BURSTS} fleets of {FLEET} against --max-handshake-queue 1: nothing shed");
    // Every shed connection was a wif-get told to come back, and it did.
    assert_eq!(shed_retries, shed);
    srv.finish_checking_secrecy(&[TOKEN]);
}

#[test]
fn the_queue_size_is_at_least_one_from_the_flag_or_the_environment() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let args = server_args(&pki_file("ca-chain.crt"), &tok);
    let out = bin("wif-serve").args(&args).args(["--max-handshake-queue", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--max-handshake-queue must be at least 1"), "{}", stderr(&out));
    let out = bin("wif-serve").args(&args).env("WIF_MAX_HANDSHAKE_QUEUE", "0").output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let help = bin("wif-serve").arg("--help").output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    assert!(help.contains("--max-handshake-queue <N>") && help.contains("WIF_MAX_HANDSHAKE_QUEUE"), "{help}");
}
