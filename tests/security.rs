//! Attacks on wif-serve's connection handling, each performed over real sockets and TLS: a
//! client revoked or expired while its connection is open, and authenticated clients that
//! try to hold every connection slot (docs/RELIABILITY.md, "Security").

use crate::common::server::*;
use crate::common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const TOKEN: &str = "ya29.security-test-token-0123456789";
const GET: &[u8] = b"GET /get_wif_token HTTP/1.1\r\nHost: localhost\r\n\r\n";

/// A verified, kept-alive connection as `client` that has been served once.
fn served_once(port: u16, client: &str) -> Tls {
    let mut s = connect(port, client_config(Some(client), "ca-chain.crt", None));
    s.write_all(GET).unwrap();
    let r = read_response(&mut s, false).unwrap();
    assert_eq!(r.body, TOKEN.as_bytes());
    assert_eq!(r.header("connection"), Some("keep-alive"));
    s
}

/// Asks once more on an open connection: the answer, or the error when there is none.
fn ask_again(s: &mut Tls) -> std::io::Result<Resp> {
    s.write_all(GET)?;
    s.flush()?;
    read_response(s, false)
}

/// A private copy of the test PKI's intermediate CA database for `openssl ca`, so a test can
/// issue and revoke without touching the shared one; `edit` may change its config lines.
/// Returns the config file.
fn private_ca(dir: &Path, edit: impl Fn(&str) -> Option<String>) -> PathBuf {
    let db = dir.join("ca.db");
    std::fs::create_dir_all(&db).unwrap();
    let pki_db = pki().join("intermediate-ca.db");
    for f in ["index.txt", "serial", "crlnumber"] {
        std::fs::copy(pki_db.join(f), db.join(f)).unwrap();
    }
    let cnf = std::fs::read_to_string(pki_db.join("ca.cnf")).unwrap();
    let cnf: Vec<String> = cnf
        .lines()
        .filter_map(|l| if l.starts_with("dir = ") { Some(format!("dir = {}", db.display())) } else { edit(l) })
        .collect();
    std::fs::write(db.join("ca.cnf"), cnf.join("\n")).unwrap();
    db.join("ca.cnf")
}

fn openssl(args: &[&str]) {
    let out =
        std::process::Command::new("openssl").args(args).env("WIF_SAN", "DNS:short.example.org").output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A client certificate of the trusted hierarchy that expires `secs` from now: returns its
/// path without `.crt`.
fn short_lived_client(dir: &Path, secs: i64) -> String {
    let cnf = private_ca(dir, |l| Some(l.to_string()));
    let base = dir.join("short-lived");
    let run = openssl;
    let key = format!("{}.key", base.display());
    let csr = format!("{}.csr", base.display());
    let crt = format!("{}.crt", base.display());
    run(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &key]);
    run(&["req", "-new", "-key", &key, "-subj", "/O=wif test/CN=wif-short-lived", "-out", &csr]);
    let end = time::OffsetDateTime::from_unix_timestamp(now() + secs).unwrap();
    let enddate = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}Z",
        end.year(),
        end.month() as u8,
        end.day(),
        end.hour(),
        end.minute(),
        end.second()
    );
    run(&[
        "ca",
        "-batch",
        "-notext",
        "-config",
        cnf.to_str().unwrap(),
        "-extensions",
        "client_ext",
        "-in",
        &csr,
        "-out",
        &crt,
        "-enddate",
        &enddate,
    ]);
    base.display().to_string()
}

/// A server whose `--crl` file at first revokes nobody it trusts, and `client-revoked` served
/// once on a kept-alive connection; the CRL's path, to put the real one in place.
fn revoked_client_kept_alive() -> (tempfile::TempDir, Server, PathBuf, Tls) {
    let (d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let crl = d.path().join("crl.pem");
    replace_file(&pki_file("other-crl.pem"), &crl);
    let srv = Server::start(&tok, &["--crl", crl.to_str().unwrap()]);
    let kept = served_once(srv.port, "client-revoked");
    (d, srv, crl, kept)
}

#[test]
fn a_client_revoked_by_a_new_crl_is_cut_off_on_its_open_connection() {
    let (_d, mut srv, crl, mut kept) = revoked_client_kept_alive();
    let mut good = served_once(srv.port, "client");

    // The CA revokes it: a new CRL is put in place while the connection stays open, and is
    // loaded (within a second by itself; a new connection loads it at once).
    replace_file(&pki_file("crl.pem"), &crl);
    assert_eq!(get(srv.port, "client", "/get_wif_token").body, TOKEN.as_bytes());
    srv.wait_for("the CRL reload", |v| v["event"] == "reload" && v["what"] == "tls");
    let after = ask_again(&mut kept);
    assert!(after.is_err(), "a revoked client got an answer on its open connection: {after:?}");
    let line = srv.wait_for("the cut-off", |v| v["event"] == "connection_closed" && v["code"] == "revoked");
    assert!(line["subject"].as_str().unwrap().contains("wif-client-revoked"), "{line}");
    // A client that is not revoked keeps its connection.
    assert_eq!(ask_again(&mut good).unwrap().body, TOKEN.as_bytes());
}

#[test]
fn a_new_crl_reaches_open_connections_without_a_new_connection() {
    let (_d, mut srv, crl, mut kept) = revoked_client_kept_alive();
    replace_file(&pki_file("crl.pem"), &crl);
    // No new connection arrives: the server notices the file by itself.
    srv.wait_for("the CRL reload", |v| v["event"] == "reload" && v["what"] == "tls");
    assert!(ask_again(&mut kept).is_err(), "a revoked client was answered");
    srv.wait_for("the cut-off", |v| v["event"] == "connection_closed" && v["code"] == "revoked");
}

#[test]
fn a_client_whose_certificate_expires_is_cut_off_on_its_open_connection() {
    let (d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let client = short_lived_client(d.path(), 4);
    let mut srv = Server::start(&tok, &[]);
    let mut kept = served_once(srv.port, &client);
    std::thread::sleep(Duration::from_secs(5));
    let after = ask_again(&mut kept);
    assert!(after.is_err(), "a client with an expired certificate got an answer: {after:?}");
    let line = srv.wait_for("the cut-off", |v| v["event"] == "connection_closed" && v["code"] == "expired");
    assert!(line["subject"].as_str().unwrap().contains("wif-short-lived"), "{line}");
    assert!(line["reason"].as_str().unwrap().contains("expired"), "{line}");
}

#[test]
fn connections_live_no_longer_than_max_connection_age() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let srv = Server::start(&tok, &["--max-connection-age", "2s"]);
    let started = Instant::now();
    let mut s = served_once(srv.port, "client");
    // Busy all along (a request every half second): still closed when its time is up.
    let mut answered = 1;
    let ended = loop {
        std::thread::sleep(Duration::from_millis(500));
        match ask_again(&mut s) {
            Ok(r) if r.header("connection") == Some("keep-alive") => answered += 1,
            Ok(r) => {
                assert_eq!(r.body, TOKEN.as_bytes());
                break started.elapsed();
            }
            Err(_) => break started.elapsed(),
        }
        assert!(started.elapsed() < Duration::from_secs(8), "the connection outlived --max-connection-age 2s");
    };
    assert!(answered >= 2, "closed too early: {answered} answers in {ended:?}");
    assert!(ended >= Duration::from_secs(2) && ended < Duration::from_secs(5), "closed after {ended:?}");
    // An idle connection is closed at its age too, without a request.
    let mut idle = served_once(srv.port, "client");
    let t = Instant::now();
    let mut b = [0u8; 1];
    assert!(matches!(idle.read(&mut b), Ok(0) | Err(_)));
    assert!(t.elapsed() < Duration::from_secs(5), "the idle connection was held {:?}", t.elapsed());
}

/// `n` verified connections as `client` that each send the first byte of a request and stall.
fn stalled(port: u16, client: &str, n: usize) -> Vec<Tls> {
    (0..n)
        .map(|_| {
            let mut s = connect(port, client_config(Some(client), "ca-chain.crt", None));
            while s.conn.is_handshaking() {
                s.conn.complete_io(&mut s.sock).expect("handshake");
            }
            s.write_all(b"G").unwrap();
            s.flush().unwrap();
            s
        })
        .collect()
}

#[test]
fn clients_not_on_the_allow_list_cannot_hold_the_connection_slots() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    // The attack as found: ten verified but not allowed connections that each send `G`.
    let mut srv = Server::start(&tok, &["--allow", "cn:wif-client-2", "--max-connections", "10"]);
    let attackers = stalled(srv.port, "client", 10);
    // Let the server see every first byte.
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..3 {
        let t = Instant::now();
        let r = request_raw(srv.port, Some("client2"), GET, false)
            .unwrap_or_else(|e| panic!("allowed client, try {i}: {e}"));
        assert_eq!(r.body, TOKEN.as_bytes());
        assert!(t.elapsed() < Duration::from_secs(3), "the allowed client waited {:?}", t.elapsed());
    }
    // They were closed right after their handshake, each logged once with its identity.
    for mut a in attackers {
        a.sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let r = read_response(&mut a, false);
        assert!(r.is_err(), "a stalled, not allowed client got an answer: {r:?}");
    }
    let lines = srv.wait_count("ten refusals", 10, |v| v["event"] == "connection_closed" && v["code"] == "not_allowed");
    assert!(lines.iter().all(|v| v["subject"].as_str().unwrap().contains("CN=wif-client,")), "{lines:?}");
}

#[test]
fn one_allowed_client_cannot_hold_every_slot_and_stalled_requests_give_way() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    // With the default per-client limit (a quarter of 8: 2), a client that opens eight
    // connections and stalls on each holds two; the others are answered 503 and closed.
    let mut srv = Server::start(&tok, &["--max-connections", "8", "--header-timeout", "30s"]);
    let mut greedy = stalled(srv.port, "client", 8);
    let refused = srv.wait_count("six refusals", 6, |v| {
        v["event"] == "connection_refused" && v["reason"].as_str().unwrap().contains("--max-connections-per-client 2")
    });
    assert_eq!(refused.len(), 6);
    // Which two were kept depends on which handshake the server finished first.
    let answers: Vec<u16> = greedy
        .iter_mut()
        .map(|s| {
            s.sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let _ = s.write_all(b"ET /get_wif_token HTTP/1.1\r\n\r\n");
            read_response(s, false).map(|r| r.status).unwrap_or(0)
        })
        .collect();
    assert!(answers.iter().filter(|s| **s == 200).count() <= 2, "{answers:?}");
    assert!(answers.iter().all(|s| [200, 503, 0].contains(s)), "{answers:?}");
    assert_eq!(get(srv.port, "client2", "/get_wif_token").body, TOKEN.as_bytes());
    drop(greedy);
    drop(srv);

    // Without a per-client limit, stalled request heads hold every slot, but only until a
    // new client needs one: a head incomplete for over a second gives way.
    let mut srv = Server::start(
        &tok,
        &["--max-connections", "4", "--max-connections-per-client", "4", "--header-timeout", "30s"],
    );
    let _held = stalled(srv.port, "client", 4);
    std::thread::sleep(Duration::from_millis(1500));
    for _ in 0..3 {
        assert_eq!(get(srv.port, "client2", "/get_wif_token").body, TOKEN.as_bytes());
    }
    let evicted = srv.wait_for("an eviction", |v| v["event"] == "connection_closed" && v["code"] == "evicted");
    assert!(evicted["reason"].as_str().unwrap().contains("incomplete request"), "{evicted}");
}

#[test]
fn a_request_head_has_header_timeout_from_its_first_byte() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &["--header-timeout", "1s", "--idle-timeout", "60s"]);
    let mut s = stalled(srv.port, "client", 1).remove(0);
    let t = Instant::now();
    s.sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let r = read_response(&mut s, false);
    assert!(r.is_err(), "a stalled request was answered: {r:?}");
    assert!(t.elapsed() < Duration::from_secs(4), "a stalled request head was held {:?}", t.elapsed());
    srv.wait_for("the time-out", |v| v["event"] == "request_timed_out");
    // A connection idle between requests (nothing sent) keeps the longer --idle-timeout.
    let mut idle = served_once(srv.port, "client");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(ask_again(&mut idle).unwrap().body, TOKEN.as_bytes());
}

#[test]
fn per_address_limit_makes_an_address_push_out_only_its_own() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &["--max-connections-per-address", "3", "--handshake-timeout", "30s"]);
    // Silent sockets from 127.0.0.1: the fourth pushes out the first. Until a silent one's
    // thread has read from it the server owes it work and it keeps its slot (a newcomer is
    // refused meanwhile), so on a busy machine the fourth may have to try again.
    let mut silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(("127.0.0.1", srv.port)).unwrap()).collect();
    let evicted = |v: &serde_json::Value| v["event"] == "connection_closed" && v["code"] == "evicted";
    for _ in 0..50 {
        silent.push(TcpStream::connect(("127.0.0.1", srv.port)).unwrap());
        if srv.drain().iter().any(evicted) {
            break;
        }
    }
    let line = srv.wait_for("the eviction", evicted);
    assert!(line["reason"].as_str().unwrap().contains("--max-connections-per-address 3"), "{line}");
    silent[0].set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 1];
    assert!(matches!(silent[0].read(&mut b), Ok(0) | Err(_)));
    // A verified client from the same address still gets its token (pushing out another).
    assert_eq!(get(srv.port, "client", "/get_wif_token").body, TOKEN.as_bytes());
}

#[test]
fn a_version_1_crl_is_refused_with_its_cause_and_the_fix() {
    let (d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    // What `openssl ca -gencrl` writes when the CA has no crlnumber file: version 1.
    let cnf = private_ca(d.path(), |l| (!l.starts_with("crlnumber")).then(|| l.to_string()));
    let v1 = d.path().join("v1-crl.pem");
    openssl(&["ca", "-gencrl", "-config", cnf.to_str().unwrap(), "-out", v1.to_str().unwrap()]);
    let out = bin("wif-serve")
        .args(server_args(&pki_file("ca-chain.crt"), &tok))
        .args(["--crl", v1.to_str().unwrap()])
        .timeout(Duration::from_secs(20))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("version 1 CRL") && err.contains("v1-crl.pem"), "{err}");
    assert!(err.contains("crlnumber"), "no fix offered: {err}");
    assert!(!err.contains("ParseError"), "{err}");

    // Put in place of a good CRL while the server runs: refused, the previous one stays.
    let crl = d.path().join("crl.pem");
    replace_file(&pki_file("crl.pem"), &crl);
    let mut srv = Server::start(&tok, &["--crl", crl.to_str().unwrap()]);
    replace_file(v1.to_str().unwrap(), &crl);
    let line = srv.wait_for("the refused reload", |v| v["event"] == "reload_failed");
    assert!(line["reason"].as_str().unwrap().contains("version 1 CRL"), "{line}");
    expect_refused_revoked(srv.port);
}

/// `client-revoked` is refused in the handshake.
fn expect_refused_revoked(port: u16) {
    let mut s = connect(port, client_config(Some("client-revoked"), "ca-chain.crt", None));
    let r = s.write_all(GET).and_then(|()| read_response(&mut s, false).map(|_| ()));
    assert!(r.is_err(), "the revoked client was served");
}

#[test]
fn clients_are_told_why_without_the_servers_paths() {
    let (d, tok) = token_dir();
    let dir = d.path().to_string_lossy().into_owned();
    let mut srv = Server::start(&tok, &["--metrics-listen", "127.0.0.1:0"]);
    let metrics = srv.first["metrics_address"].as_str().unwrap().to_string();
    let plain_health = || {
        let mut s = TcpStream::connect(&metrics).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        read_response(&mut s, false).unwrap()
    };
    let meta = wif::core::files::meta_path(&tok);
    // No token; a token without metadata older than the lifetime assumed for it; one edited
    // in place; one others may write.
    for what in ["missing", "no metadata", "edited", "untrusted"] {
        if what != "missing" {
            write_token(&tok, TOKEN, 3600);
        }
        match what {
            "no metadata" => {
                std::fs::remove_file(&meta).unwrap();
                set_mtime(&tok, now() - 7200);
            }
            "edited" => std::fs::write(&tok, "ya29.edited-by-hand").unwrap(),
            "untrusted" => {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&tok, std::fs::Permissions::from_mode(0o666)).unwrap();
            }
            _ => {}
        }
        for r in [get(srv.port, "client", "/get_wif_token"), get(srv.port, "client", "/healthz"), plain_health()] {
            assert_eq!(r.status, 503, "{what}");
            let body = String::from_utf8_lossy(&r.body);
            assert!(!body.contains(&dir) && !body.contains("wif_token.txt"), "{what}: a path told to a client: {body}");
            assert!(r.json().get("token_file").is_none(), "{what}: {body}");
        }
        // The operator's log has the file.
        let line = srv.wait_for(what, |v| {
            v["event"] == "request" && v["status"] == 503 && v["reason"].as_str().is_some_and(|r| r.contains(&dir))
        });
        assert!(line["reason"].as_str().unwrap().contains("wif_token.txt"), "{line}");
        srv.seen.clear();
    }
}

#[test]
fn a_fleet_sharing_one_certificate_is_never_cut_off_unanswered() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    // Per-client limit 4 (a quarter of 16); 12 hosts with the same certificate at once, five
    // times: a host over the limit is told to come back (503, Retry-After), never closed
    // before its request is even read because a sibling arrived. Each host comes back as
    // told (as wif-get does) until it has the token, so how many are told to wait depends
    // on no timing: all of them end with the token.
    let srv = Server::start(&tok, &["--max-connections", "16"]);
    let port = srv.port;
    let mut answers = Vec::new();
    for _ in 0..5 {
        let hosts: Vec<_> = (0..12).map(|_| std::thread::spawn(move || host_until_served(port))).collect();
        answers.extend(hosts.into_iter().flat_map(|h| h.join().unwrap()));
    }
    let unanswered: Vec<_> = answers.iter().filter(|a| a.is_err()).collect();
    assert!(unanswered.is_empty(), "connections closed without an answer: {unanswered:?}");
    let statuses: Vec<(u16, Option<u64>)> = answers.into_iter().flatten().collect();
    assert_eq!(statuses.iter().filter(|(s, _)| *s == 200).count(), 60, "{statuses:?}");
    for (status, retry_after) in &statuses {
        assert!(
            *status == 200 || (*status == 503 && retry_after.is_some_and(|s| (1..=5).contains(&s))),
            "{statuses:?}"
        );
    }
}

/// One host of a fleet: fetches, and after a 503 waits its Retry-After and fetches again,
/// until it has the token (at most ten times); every answer (status, Retry-After) or the
/// error of a connection cut off unanswered (which ends it).
fn host_until_served(port: u16) -> Vec<std::io::Result<(u16, Option<u64>)>> {
    let mut answers = Vec::new();
    for _ in 0..10 {
        let answer = request_raw(port, Some("client"), GET, false)
            .map(|r| (r.status, r.header("retry-after").and_then(|v| v.parse::<u64>().ok())));
        let again = match &answer {
            Ok((503, Some(secs))) => Some(*secs),
            _ => None,
        };
        answers.push(answer);
        match again {
            Some(secs) => std::thread::sleep(Duration::from_secs(secs)),
            None => break,
        }
    }
    answers
}

/// How many of `tries` new connections as `client`, one every half second, got the token.
fn served_while(port: u16, client: &str, tries: usize) -> usize {
    (0..tries)
        .filter(|_| {
            std::thread::sleep(Duration::from_millis(500));
            request_raw(port, Some(client), GET, false).is_ok_and(|r| r.status == 200)
        })
        .count()
}

#[test]
fn a_client_that_splits_every_request_cannot_keep_its_slots() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let srv = Server::start(&tok, &["--max-connections", "2", "--max-connections-per-client", "2"]);
    let port = srv.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Each attacking connection sends every request head in two parts 0.9 s apart and
    // begins the next one as soon as it has its answer: never idle, never stalled a second.
    let attackers: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let Ok(mut s) = std::panic::catch_unwind(|| served_once(port, "client2")) else { return };
                let _ = s.write_all(&GET[..5]);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(900));
                    let mut next = GET[5..].to_vec();
                    next.extend_from_slice(&GET[..5]);
                    if s.write_all(&next).is_err() || read_response(&mut s, false).is_err() {
                        return;
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let served = served_while(port, "client", 6);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for a in attackers {
        a.join().unwrap();
    }
    assert_eq!(served, 6, "another client was locked out");
}

#[test]
fn a_client_that_pipelines_and_reads_slowly_cannot_keep_its_slots() {
    let (_d, tok) = token_dir();
    // A large token, so that unread answers fill the socket buffers.
    let big = format!("ya29.{}", "p".repeat(256 * 1024));
    write_token(&tok, &big, 3600);
    let srv = Server::start(&tok, &["--max-connections", "2", "--max-connections-per-client", "2"]);
    let port = srv.port;
    // Each attacking connection pipelines many requests and never reads an answer: the
    // server stays busy writing to it, for as long as the client wants.
    let _held: Vec<Tls> = (0..2)
        .map(|_| {
            let mut s = connect(port, client_config(Some("client2"), "ca-chain.crt", None));
            while s.conn.is_handshaking() {
                s.conn.complete_io(&mut s.sock).expect("handshake");
            }
            let burst: Vec<u8> = GET.iter().copied().cycle().take(GET.len() * 100).collect();
            s.write_all(&burst).unwrap();
            s.flush().unwrap();
            s
        })
        .collect();
    // Past the second's grace of an answer being written, with room for a loaded machine
    // to have read the bursts and begun answering them.
    std::thread::sleep(Duration::from_millis(2500));
    let mut ok = 0;
    for _ in 0..3 {
        let r = request_raw(port, Some("client"), GET, false);
        ok += usize::from(r.is_ok_and(|r| r.body == big.as_bytes()));
    }
    assert_eq!(ok, 3, "another client was locked out by answers nobody reads");
}
