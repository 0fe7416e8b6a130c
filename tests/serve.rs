//! wif-serve over real TLS on loopback with the test PKI: who is let in, what is answered,
//! what is logged, reloads, time-outs and shutdown; plus curl, openssl and the seed's
//! Python client.

use crate::common::server::*;
use crate::common::*;
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const TOKEN: &str = "ya29.c.serve-test-token-Zq81";
fn cert_fingerprint(name: &str) -> String {
    let der = wif::core::keys::load_certs(Path::new(&pki_file(&format!("{name}.crt")))).unwrap().remove(0);
    wif::core::keys::sha256_hex(der.as_ref())
}

#[test]
fn serves_the_exact_token_with_headers_and_an_audit_line() {
    let (_d, tok) = token_dir();
    let exp = write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &[]);
    let r = get(srv.port, "client", "/get_wif_token");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, TOKEN.as_bytes());
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("x-token-expires-at"), Some(exp.as_str()));
    assert_eq!(r.header("x-token-type"), Some("access_token"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("content-length"), Some(TOKEN.len().to_string().as_str()));

    let line = srv.wait_for("the request", |v| v["event"] == "request");
    assert_eq!(line["status"], 200);
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/get_wif_token");
    assert_eq!(line["bytes"], TOKEN.len());
    assert_eq!(line["fingerprint"], cert_fingerprint("client"));
    assert!(line["subject"].as_str().unwrap().contains("CN=wif-client"), "{line}");
    assert!(line["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    assert!(line["duration_ms"].as_f64().unwrap() >= 0.0);
    wif::core::clock::parse_rfc3339(line["time"].as_str().unwrap()).unwrap();
    srv.finish_checking_secrecy(&[TOKEN]);
}

/// Connects with a client certificate the server must refuse and expects no answer.
fn expect_refused(port: u16, client: Option<&str>) {
    let mut s = connect(port, client_config(client, "ca-chain.crt", None));
    // With TLS 1.3 the client learns of the refusal only when it reads.
    let _ = s.write_all(b"GET /get_wif_token HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let _ = s.flush();
    let r = read_response(&mut s, false);
    assert!(r.is_err(), "{client:?} was answered: {r:?}");
}

#[test]
fn refuses_wrong_missing_expired_serveronly_and_revoked_certificates_in_the_handshake() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &["--crl", &pki_file("crl.pem")]);
    let cases = [
        (Some("other-client"), "unknown_ca", "UnknownIssuer"),
        (None, "no_certificate", "no certificates"),
        (Some("client-expired"), "expired", "expired"),
        (Some("client-serveronly"), "bad_eku", "client authentication"),
        (Some("client-revoked"), "revoked", "Revoked"),
    ];
    for (client, code, words) in cases {
        expect_refused(srv.port, client);
        let line = srv.wait_for(code, |v| v["event"] == "handshake_failed" && v["code"] == code);
        assert!(line["reason"].as_str().unwrap().contains(words), "{line}");
        assert!(line["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
    // The good client still gets in, with the CRL loaded.
    assert_eq!(get(srv.port, "client", "/get_wif_token").body, TOKEN.as_bytes());
    let requests: Vec<Value> = srv.drain().into_iter().filter(|v| v["event"] == "request").collect();
    assert_eq!(requests.len(), 1, "only the good client reached HTTP: {requests:?}");
}

#[test]
fn allow_list_answers_403_to_unlisted_clients() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &["--allow", "cn:wif-client"]);
    assert_eq!(get(srv.port, "client", "/get_wif_token").status, 200);
    let r = get(srv.port, "client2", "/get_wif_token");
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["error"], "forbidden");
    assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN));
    let line = srv.wait_for("the 403", |v| v["event"] == "request" && v["status"] == 403);
    assert_eq!(line["fingerprint"], cert_fingerprint("client2"));
    assert!(line["subject"].as_str().unwrap().contains("wif-client-2"));
    drop(srv);

    // SPIFFE ID and a public-key pin (of client2's key, from its certificate).
    let spki = {
        let der = wif::core::keys::load_certs(Path::new(&pki_file("client2.crt"))).unwrap().remove(0);
        let (_, c) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        wif::core::keys::sha256_hex(c.public_key().raw)
    };
    let srv = Server::start(
        &tok,
        &["--allow", "uri:spiffe://example.org/wif-client", "--allow", &format!("spki-sha256:{}", spki.to_uppercase())],
    );
    assert_eq!(get(srv.port, "client", "/get_wif_token").status, 200);
    assert_eq!(get(srv.port, "client2", "/get_wif_token").status, 200);
    drop(srv);
    let srv = Server::start(&tok, &["--allow", "uri:spiffe://example.org/someone-else"]);
    assert_eq!(get(srv.port, "client", "/get_wif_token").status, 403);
}

#[test]
fn head_404_405_431_400_and_bodies() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let srv = Server::start(&tok, &[]);
    let p = srv.port;
    let head = request_raw(p, Some("client"), b"HEAD /get_wif_token HTTP/1.1\r\nHost: x\r\n\r\n", true).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(TOKEN.len().to_string().as_str()));
    assert!(head.body.is_empty());

    let r = get(p, "client", "/nope");
    assert_eq!((r.status, r.json()["error"].as_str()), (404, Some("not_found")));
    let r = request_raw(p, Some("client"), b"DELETE /get_wif_token HTTP/1.1\r\nHost: x\r\n\r\n", false).unwrap();
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r =
        request_raw(p, Some("client"), b"POST /get_wif_token HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", false).unwrap();
    assert_eq!(r.status, 405);

    let mut big = b"GET /get_wif_token HTTP/1.1\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat(b'a').take(20_000));
    big.extend_from_slice(b"\r\n\r\n");
    let r = request_raw(p, Some("client"), &big, false).unwrap();
    assert_eq!(r.status, 431);
    assert_eq!(r.header("connection"), Some("close"));

    let r = request_raw(p, Some("client"), b"\x00\x01garbage garbage\r\n\r\n", false).unwrap();
    assert_eq!(r.status, 400);
    let r =
        request_raw(p, Some("client"), b"GET /get_wif_token HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd", false).unwrap();
    assert_eq!(r.status, 413);
    assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN));
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &[]);
    let mut s = connect(srv.port, client_config(Some("client"), "ca-chain.crt", None));
    for _ in 0..2 {
        s.write_all(b"GET /get_wif_token HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let r = read_response(&mut s, false).unwrap();
        assert_eq!(r.body, TOKEN.as_bytes());
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    // Two pipelined requests in one write.
    s.write_all(b"HEAD /healthz HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, true).unwrap().status, 200);
    let last = read_response(&mut s, false).unwrap();
    assert_eq!(last.header("connection"), Some("close"));
    let lines = srv.wait_count("four requests", 4, |v| v["event"] == "request");
    assert!(lines.windows(2).all(|w| w[0]["peer"] == w[1]["peer"]), "one connection: {lines:?}");
    let methods: Vec<&str> = lines.iter().map(|v| v["method"].as_str().unwrap()).collect();
    assert_eq!(methods, ["GET", "GET", "HEAD", "GET"]);
}

#[test]
fn a_silent_client_blocks_nobody_and_is_timed_out() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &["--handshake-timeout", "1s", "--idle-timeout", "1s"]);
    let mut silent = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    let started = Instant::now();
    assert_eq!(get(srv.port, "client", "/get_wif_token").body, TOKEN.as_bytes());
    assert!(started.elapsed() < Duration::from_secs(2), "the silent client held up another: {:?}", started.elapsed());
    // The silent one is closed after the handshake time-out.
    silent.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut b = [0u8; 16];
    let n = silent.read(&mut b).unwrap_or(0);
    assert_eq!(n, 0);
    assert!(started.elapsed() < Duration::from_secs(4));
    srv.wait_for("the time-out", |v| v["event"] == "handshake_failed" && v["code"] == "timeout");

    // A connection idle after its handshake is closed after the idle time-out too.
    let mut s = connect(srv.port, client_config(Some("client"), "ca-chain.crt", None));
    s.write_all(b"GET /healthz HTTP/1.1\r\n\r\n").unwrap();
    read_response(&mut s, false).unwrap();
    let t = Instant::now();
    let r = s.read(&mut b);
    assert!(matches!(r, Ok(0) | Err(_)));
    assert!(t.elapsed() < Duration::from_secs(4));
}

#[test]
fn connections_beyond_the_limit_are_closed_and_logged() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &["--max-connections", "1", "--handshake-timeout", "5s"]);
    // A socket that never starts its handshake gives way to the next client.
    let mut silent = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    // Give the server a moment to count the held connection.
    std::thread::sleep(Duration::from_millis(200));
    let mut busy = connect(srv.port, client_config(Some("client"), "ca-chain.crt", None));
    busy.write_all(b"GET /get_wif_token HTTP/1.1\r\nHost: localhost\r\n").unwrap();
    busy.flush().unwrap();
    silent.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut b = [0u8; 8];
    assert!(matches!(silent.read(&mut b), Ok(0) | Err(_)));
    let line = srv.wait_for("the eviction", |v| v["event"] == "connection_closed");
    assert_eq!(line["code"], "evicted");
    assert!(line["reason"].as_str().unwrap().contains("max-connections"), "{line}");
    // The only slot is busy with a request: a new connection is closed at once.
    std::thread::sleep(Duration::from_millis(200));
    let mut extra = TcpStream::connect(("127.0.0.1", srv.port)).unwrap();
    extra.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    assert!(matches!(extra.read(&mut b), Ok(0) | Err(_)));
    let line = srv.wait_for("the refusal", |v| v["event"] == "connection_refused");
    assert!(line["reason"].as_str().unwrap().contains("max-connections"));
    // And the busy one gets its answer.
    busy.write_all(b"\r\n").unwrap();
    assert_eq!(read_response(&mut busy, false).unwrap().body, TOKEN.as_bytes());
}

#[test]
fn picks_up_a_new_token_renamed_over_the_old_one() {
    let (d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &[]);
    assert_eq!(get(srv.port, "client", "/get_wif_token").body, TOKEN.as_bytes());
    // A new pair written elsewhere, then renamed over (metadata first, as a careful writer might not).
    let staged = d.path().join("staged.txt");
    let exp2 = write_token(&staged, "ya29.second-token", 7200);
    std::fs::rename(wif::core::files::meta_path(&staged), wif::core::files::meta_path(&tok)).unwrap();
    std::fs::rename(&staged, &tok).unwrap();
    token_settles();
    let r = get(srv.port, "client", "/get_wif_token");
    assert_eq!(r.body, b"ya29.second-token");
    assert_eq!(r.header("x-token-expires-at"), Some(exp2.as_str()));
    // And via --token-out's own atomic write.
    write_token(&tok, "ya29.third", 3600);
    assert_eq!(get(srv.port, "client", "/get_wif_token").body, b"ya29.third");
    let reloads = srv.wait_count("three token reads", 3, |v| v["event"] == "reload" && v["what"] == "token");
    assert!(reloads[1]["reason"].as_str().unwrap().contains(&exp2), "{reloads:?}");
    srv.finish_checking_secrecy(&[TOKEN, "ya29.second-token", "ya29.third"]);
}

#[test]
fn never_serves_an_expired_missing_or_unmatched_token() {
    let (_d, tok) = token_dir();
    let mut srv = Server::start(&tok, &[]);
    let r = get(srv.port, "client", "/get_wif_token");
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "token_unavailable");
    assert!(r.header("retry-after").is_some());
    let h = get(srv.port, "client", "/healthz");
    assert_eq!((h.status, h.json()["status"].as_str()), (503, Some("unavailable")));

    write_token(&tok, TOKEN, 3600);
    let h = get(srv.port, "client", "/healthz");
    assert_eq!(h.status, 200);
    let health = h.json();
    assert_eq!(health["status"], "ok");
    assert!(health["expires_in_secs"].as_i64().unwrap() > 3500);
    assert!(!h.body.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()));

    // The metadata says it expired.
    let meta = wif::core::files::meta_path(&tok);
    let mut m: Value = serde_json::from_slice(&std::fs::read(&meta).unwrap()).unwrap();
    m["expires_at"] = "2020-01-01T00:00:00Z".into();
    std::fs::write(&meta, serde_json::to_vec(&m).unwrap()).unwrap();
    token_settles();
    let r = get(srv.port, "client", "/get_wif_token");
    assert_eq!(r.status, 503);
    assert!(r.json()["message"].as_str().unwrap().contains("expired"));
    assert!(!String::from_utf8_lossy(&r.body).contains(TOKEN));
    let line = srv.wait_for("the 503", |v| {
        v["event"] == "request" && v["status"] == 503 && v["reason"].as_str().is_some_and(|r| r.contains("expired"))
    });
    assert_eq!(line["bytes"], r.body.len());

    // No metadata at all, and written longer ago than the lifetime assumed for that (55 min).
    write_token(&tok, TOKEN, 3600);
    std::fs::remove_file(&meta).unwrap();
    set_mtime(&tok, now() - 3301);
    token_settles();
    let r = get(srv.port, "client", "/get_wif_token");
    assert_eq!(r.status, 503);
    assert!(r.json()["message"].as_str().unwrap().contains("no metadata"), "{:?}", r.json());
    std::fs::remove_file(&tok).unwrap();
    token_settles();
    assert_eq!(get(srv.port, "client", "/get_wif_token").status, 503);
    srv.finish_checking_secrecy(&[TOKEN]);
}

#[test]
fn reloads_the_client_ca_when_it_changes_and_on_sighup() {
    let (d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let ca = d.path().join("clients.pem");
    std::fs::copy(pki_file("other-ca-chain.crt"), &ca).unwrap();
    let args = server_args(ca.to_str().unwrap(), &tok);
    let mut srv = Server::spawn(&args, None);
    expect_refused(srv.port, Some("client"));
    // A kept-alive connection from the other hierarchy, opened while its CA was trusted.
    let mut other = connect(srv.port, client_config(Some("other-client"), "ca-chain.crt", None));
    other.write_all(b"GET /get_wif_token HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut other, false).unwrap().body, TOKEN.as_bytes());

    replace_file(&pki_file("ca-chain.crt"), &ca);
    assert_eq!(get(srv.port, "client", "/get_wif_token").body, TOKEN.as_bytes());
    srv.wait_for("the reload", |v| v["event"] == "reload" && v["what"] == "tls");
    // Its client is verified again under the new bundle before its next request: no
    // answer, the connection is closed, and the log says why.
    let _ = other.write_all(b"GET /get_wif_token HTTP/1.1\r\n\r\n");
    let after = read_response(&mut other, false);
    assert!(after.is_err(), "a client no longer trusted was answered on its open connection: {after:?}");
    let closed = srv.wait_for("the re-verification", |v| v["event"] == "connection_closed");
    assert_eq!(closed["code"], "unknown_ca", "{closed}");
    assert_eq!(closed["fingerprint"], cert_fingerprint("other-client"), "{closed}");
    expect_refused(srv.port, Some("other-client"));

    // A broken file is reported and the previous configuration stays.
    std::fs::write(&ca, "not a certificate").unwrap();
    assert_eq!(get(srv.port, "client", "/get_wif_token").status, 200);
    srv.wait_for("the failed reload", |v| v["event"] == "reload_failed");

    // SIGHUP retries even though nothing changed since.
    srv.signal("-HUP");
    srv.wait_count("the failed SIGHUP reload", 2, |v| v["event"] == "reload_failed");
    std::fs::copy(pki_file("ca-chain.crt"), &ca).unwrap();
    srv.signal("-HUP");
    srv.wait_for("the SIGHUP reload", |v| v["event"] == "reload" && v["reason"] == "SIGHUP");
    assert_eq!(get(srv.port, "client", "/get_wif_token").status, 200);
}

#[test]
fn reloads_the_server_certificate_and_key_without_a_restart() {
    let (d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let (cert, key) = (d.path().join("server.pem"), d.path().join("server-key.pem"));
    replace_file(&pki_file("server-chain.crt"), &cert);
    replace_file(&pki_file("server.key"), &key);
    let args = server_args_with(cert.to_str().unwrap(), key.to_str().unwrap(), &pki_file("ca-chain.crt"), &tok);
    let mut srv = Server::spawn(&args, None);
    let port = srv.port;
    let fetch = |trust: &str| {
        let mut s = connect(port, client_config(Some("client"), trust, None));
        s.write_all(b"GET /get_wif_token HTTP/1.1\r\n\r\n")?;
        read_response(&mut s, false)
    };
    assert_eq!(fetch("ca-chain.crt").unwrap().body, TOKEN.as_bytes());
    // The certificate alone changes first: it does not match the key, so the old pair stays.
    replace_file(&pki_file("other-server-chain.crt"), &cert);
    assert_eq!(fetch("ca-chain.crt").unwrap().body, TOKEN.as_bytes());
    let failed = srv.wait_for("the failed reload", |v| v["event"] == "reload_failed");
    assert!(failed["reason"].as_str().unwrap().contains("does not belong"), "{failed}");
    // Then its key: the new server certificate (from the other hierarchy) is in use.
    replace_file(&pki_file("other-server.key"), &key);
    assert_eq!(fetch("other-ca-chain.crt").unwrap().body, TOKEN.as_bytes());
    assert!(fetch("ca-chain.crt").is_err());
    srv.wait_for("the reload", |v| v["event"] == "reload" && v["what"] == "tls");
}

#[test]
fn a_new_crl_takes_effect_without_a_restart() {
    let (d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let crl = d.path().join("crl.pem");
    replace_file(&pki_file("other-crl.pem"), &crl);
    let mut srv = Server::start(&tok, &["--crl", crl.to_str().unwrap()]);
    assert_eq!(get(srv.port, "client-revoked", "/get_wif_token").status, 200);
    replace_file(&pki_file("crl.pem"), &crl);
    expect_refused(srv.port, Some("client-revoked"));
    srv.wait_for("the revocation", |v| v["code"] == "revoked");
    assert_eq!(get(srv.port, "client", "/get_wif_token").status, 200);
}

#[test]
fn sigterm_finishes_in_flight_work_and_exits_0() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &[]);
    let mut s = connect(srv.port, client_config(Some("client"), "ca-chain.crt", None));
    s.write_all(b"GET /get_wif_token HTTP/1.1\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut s, false).unwrap().status, 200);
    srv.wait_for("the request", |v| v["event"] == "request");
    // A second client is in the middle of sending its request when the signal comes.
    let mut busy = connect(srv.port, client_config(Some("client"), "ca-chain.crt", None));
    busy.write_all(b"GET /get_wif_token HTTP/1.1\r\nHost: localhost\r\n").unwrap();
    busy.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    srv.signal("-TERM");
    srv.wait_for("the shutdown", |v| v["event"] == "shutdown");
    std::thread::sleep(Duration::from_millis(100));
    busy.write_all(b"\r\n").unwrap();
    let r = read_response(&mut busy, false).unwrap();
    assert_eq!(r.body, TOKEN.as_bytes());
    assert_eq!(r.header("connection"), Some("close"));
    let (code, err) = srv.wait_exit();
    assert_eq!(code, Some(0), "stderr: {err}");
    let log = srv.drain();
    let shutdown = log.iter().find(|v| v["event"] == "shutdown").expect("a shutdown line");
    assert_eq!(shutdown["reason"], "SIGTERM");
    assert_eq!(log.last().unwrap()["event"], "stopped");
    // The kept-alive connection was closed, not left hanging.
    let mut b = [0u8; 8];
    assert!(matches!(s.read(&mut b), Ok(0) | Err(_)));
    assert!(TcpStream::connect(("127.0.0.1", srv.port)).is_err(), "still accepting after shutdown");
}

#[test]
fn settings_come_from_the_document_on_stdin() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let doc = serde_json::json!({"version": 1, "config": {
        "listen": "127.0.0.1:0",
        "serve_cert": pki_file("server-chain.crt"),
        "serve_key": pki_file("server.key"),
        "client_ca": pki_file("ca-chain.crt"),
        "token_file": tok,
        "crl": pki_file("crl.pem"),
        "allow": ["cn:wif-client"],
    }});
    let mut srv = Server::spawn(&[], Some(&doc.to_string()));
    assert_eq!(get(srv.port, "client", "/get_wif_token").body, TOKEN.as_bytes());
    assert_eq!(get(srv.port, "client2", "/get_wif_token").status, 403);
    expect_refused(srv.port, Some("client-revoked"));
    srv.wait_for("the revoked client", |v| v["code"] == "revoked");
    let (_, err) = {
        let _ = srv.child.kill();
        srv.wait_exit()
    };
    assert!(!err.contains("warning"), "unexpected warnings: {err}");
}

#[test]
fn startup_errors_are_clear() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let base = |cert: &str, key: &str, listen: &str| -> Vec<String> {
        [
            "--listen",
            listen,
            "--cert",
            cert,
            "--key",
            key,
            "--client-ca",
            &pki_file("ca-chain.crt"),
            "--token",
            tok.to_str().unwrap(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let run = |args: Vec<String>| bin("wif-serve").args(args).output().unwrap();

    let out = run(base("/nonexistent/server.crt", &pki_file("server.key"), "127.0.0.1:0"));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("--cert") && stderr(&out).contains("no such file"), "{}", stderr(&out));

    let out = run(base(&pki_file("server-chain.crt"), &pki_file("client.key"), "127.0.0.1:0"));
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("does not belong to the certificate"), "{}", stderr(&out));
    assert!(stderr(&out).contains("hint:"));

    let out = run(base(&pki_file("server.key"), &pki_file("server.key"), "127.0.0.1:0"));
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = run(base(&pki_file("server-chain.crt"), &pki_file("server.key"), &addr));
    assert_eq!(out.status.code(), Some(6));
    assert!(stderr(&out).contains("another process listens"), "{}", stderr(&out));

    let out = run(base(&pki_file("server-chain.crt"), &pki_file("server.key"), "no-port"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    let mut args = base(&pki_file("server-chain.crt"), &pki_file("server.key"), "127.0.0.1:0");
    args.extend(["--allow".to_string(), "wif-client".to_string()]);
    let out = run(args);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cn:NAME"));

    let out = bin("wif-serve").args(["--listen", "127.0.0.1:0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--cert is required"), "{}", stderr(&out));
}

/// Whether an external tool is there; in CI it must be.
fn have(tool: &str) -> bool {
    let ok = std::process::Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
        || std::process::Command::new(tool).arg("version").output().is_ok_and(|o| o.status.success());
    needs(tool, ok, &apt(tool))
}

/// An external client fetches the token with client.crt, and gets nothing with the other
/// hierarchy's other-client.crt. `fetch(url, client)` runs it.
fn external_client_is_let_in_only_from_the_right_hierarchy(fetch: impl Fn(&str, &str) -> std::process::Output) {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let srv = Server::start(&tok, &[]);
    let url = format!("https://localhost:{}/get_wif_token", srv.port);
    let ok = fetch(&url, "client");
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(ok.stdout, TOKEN.as_bytes());
    let refused = fetch(&url, "other-client");
    assert!(!refused.status.success());
    assert!(refused.stdout.is_empty());
}

#[test]
fn curl_fetches_the_token_and_is_refused_with_the_other_hierarchy() {
    if !have("curl") {
        return;
    }
    external_client_is_let_in_only_from_the_right_hierarchy(|url, client| {
        std::process::Command::new("curl")
            .args(["-sS", "--fail", "--max-time", "10", "--cacert", &pki_file("ca-chain.crt")])
            .args(["--cert", &pki_file(&format!("{client}.crt")), "--key", &pki_file(&format!("{client}.key"))])
            .arg(url)
            .output()
            .unwrap()
    });
}

#[test]
fn openssl_s_client_gets_the_token_over_tls_1_2_and_1_3() {
    if !have("openssl") {
        return;
    }
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &[]);
    for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let mut child = std::process::Command::new("openssl")
            .args(["s_client", "-quiet", flag, "-connect", &format!("127.0.0.1:{}", srv.port)])
            .args(["-servername", "localhost", "-verify_return_error", "-CAfile", &pki_file("ca-chain.crt")])
            .args(["-cert", &pki_file("client.crt"), "-key", &pki_file("client.key")])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET /get_wif_token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{flag}: {text}\n{}", stderr(&out));
        assert!(text.ends_with(&format!("\r\n\r\n{TOKEN}")), "{flag}: {text}");
        srv.wait_for(version, |v| v["event"] == "request" && v["tls"] == version);
    }
}

#[test]
fn the_seeds_python_requests_client_gets_the_token() {
    if !python_has("requests") {
        return;
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/seed_client.py");
    external_client_is_let_in_only_from_the_right_hierarchy(|url, client| {
        std::process::Command::new("python3")
            .arg(&script)
            .arg(url)
            .arg(pki_file(&format!("{client}.crt")))
            .arg(pki_file(&format!("{client}.key")))
            .arg(pki_file("ca-chain.crt"))
            .output()
            .unwrap()
    });
}

#[test]
fn server_keys_in_pkcs8_pkcs1_and_sec1() {
    if !have("openssl") {
        return;
    }
    let (d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let dir = d.path();
    // RSA: a server certificate from the test intermediate CA, its key as PKCS#8 and as PKCS#1.
    rsa_leaf(dir, "localhost", "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost");
    let ca = pki_file("intermediate-ca.crt");
    let mut chain = std::fs::read(dir.join("rsa.crt")).unwrap();
    chain.extend(std::fs::read(&ca).unwrap());
    std::fs::write(dir.join("rsa-chain.crt"), chain).unwrap();
    // EC: the test PKI's server key (PKCS#8) as SEC1.
    openssl_in(dir, &["ec", "-in", &pki_file("server.key"), "-out", "ec1.key"]);
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    for (cert, key, header) in [
        (path("rsa-chain.crt"), path("rsa8.key"), "-----BEGIN PRIVATE KEY-----"),
        (path("rsa-chain.crt"), path("rsa1.key"), "-----BEGIN RSA PRIVATE KEY-----"),
        (pki_file("server-chain.crt"), path("ec1.key"), "-----BEGIN EC PRIVATE KEY-----"),
    ] {
        assert!(std::fs::read_to_string(&key).unwrap().starts_with(header), "{key}");
        let srv = Server::spawn(&server_args_with(&cert, &key, &pki_file("ca-chain.crt"), &tok), None);
        let mut s = connect(srv.port, client_config(Some("client"), "ca-chain.crt", None));
        s.write_all(b"GET /get_wif_token HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s, false).unwrap().body, TOKEN.as_bytes(), "{key}");
    }
}

#[test]
fn a_token_type_with_crlf_in_the_metadata_never_becomes_a_header() {
    let (_d, tok) = token_dir();
    let exp = write_token(&tok, TOKEN, 3600);
    // Metadata written by hand, as a tampered file or an old wif-sts that stored an STS
    // answer's token_type as it came would leave it.
    let meta = serde_json::json!({
        "expires_at": exp, "token_type": "Bearer\r\nX-Injected: yes\r\nContent-Length: 0",
        "written_at": exp, "written_by": "wif-sts", "bytes": TOKEN.len(),
        "sha256": wif::core::keys::sha256_hex(TOKEN.as_bytes()),
    });
    std::fs::write(wif::core::files::meta_path(&tok), serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    let mut srv = Server::start(&tok, &[]);

    let mut s = connect(srv.port, client_config(Some("client"), "ca-chain.crt", None));
    s.write_all(b"GET /get_wif_token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("no head: {text:?}"));
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    let names: Vec<&str> = head.lines().skip(1).map(|l| l.split(':').next().unwrap()).collect();
    assert!(!names.iter().any(|n| n.eq_ignore_ascii_case("x-injected")), "an injected header: {head}");
    assert!(!names.iter().any(|n| n.eq_ignore_ascii_case("x-token-type")), "the bad header is left out: {head}");
    assert_eq!(names.iter().filter(|n| n.eq_ignore_ascii_case("content-length")).count(), 1, "{head}");
    assert!(head.contains(&format!("\r\nX-Token-Expires-At: {exp}")), "the other headers stay: {head}");
    assert_eq!(body, TOKEN, "the body is exactly the token");

    let refused = srv.wait_for("the refused header", |v| v["event"] == "header_refused");
    assert_eq!(refused["what"], "X-Token-Type", "{refused}");
    let line = srv.wait_for("the request", |v| v["event"] == "request");
    assert_eq!(line["status"], 200);
    srv.finish_checking_secrecy(&[TOKEN]);
}
/// GET `path` on its own thread; the answer, or None when none came within `secs`.
fn get_within(port: u16, path: &'static str, secs: u64) -> Option<Resp> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(request_raw(
            port,
            Some("client"),
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(),
            false,
        ));
    });
    rx.recv_timeout(Duration::from_secs(secs)).ok().and_then(Result::ok)
}

/// A 503 whose message says `reason` and names no file.
fn assert_unavailable_without_paths(r: &Resp, reason: &str, dir: &Path) {
    assert_eq!(r.status, 503, "{:?}", String::from_utf8_lossy(&r.body));
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.contains(reason), "{body}");
    assert!(!body.contains(&dir.display().to_string()), "the answer names a server path: {body}");
}

/// wif-serve serving TOKEN (already asked for it once): its directory, token path, server.
fn serving_token() -> (tempfile::TempDir, std::path::PathBuf, Server) {
    let (d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let srv = Server::start(&tok, &[]);
    assert_eq!(get(srv.port, "client", "/get_wif_token").body, TOKEN.as_bytes());
    (d, tok, srv)
}

#[test]
fn a_fifo_at_the_token_path_hangs_neither_the_token_route_nor_health() {
    let (d, tok, mut srv) = serving_token();
    std::fs::remove_file(&tok).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&tok).status().unwrap().success());
    token_settles();
    let started = Instant::now();
    let r = get_within(srv.port, "/get_wif_token", 3).expect("the token route answered within 3 s");
    assert_unavailable_without_paths(&r, "the token file is not trusted", d.path());
    let h = get_within(srv.port, "/healthz", 3).expect("/healthz answered within 3 s");
    assert_eq!(h.status, 503);
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let line = srv.wait_for("the reason in the log", |v| v["event"] == "reload_failed" && v["what"] == "token");
    let reason = line["reason"].as_str().unwrap();
    assert!(reason.contains("a FIFO, not a regular file") && reason.contains(&tok.display().to_string()), "{line}");
    // A real token back in place is served again.
    std::fs::remove_file(&tok).unwrap();
    write_token(&tok, TOKEN, 3600);
    assert_eq!(get(srv.port, "client", "/get_wif_token").body, TOKEN.as_bytes());
    srv.finish_checking_secrecy(&[TOKEN]);
}

#[test]
fn a_token_edited_in_place_stops_being_served() {
    let (d, tok, mut srv) = serving_token();
    // Same inode, new bytes: not a write of the wif tools, which rename a new file over it.
    std::fs::OpenOptions::new().write(true).truncate(true).open(&tok).unwrap().write_all(b"ya29.edited").unwrap();
    token_settles();
    let r = get(srv.port, "client", "/get_wif_token");
    assert_unavailable_without_paths(&r, "the token file does not match its metadata", d.path());
    assert!(!String::from_utf8_lossy(&r.body).contains("ya29"));
    assert_eq!(get(srv.port, "client", "/healthz").status, 503);
    let line = srv.wait_for("the reason in the log", |v| v["event"] == "reload_failed" && v["what"] == "token");
    assert!(line["reason"].as_str().unwrap().contains("edited in place"), "{line}");
    srv.finish_checking_secrecy(&[TOKEN, "ya29.edited"]);
}

#[test]
fn a_planted_token_is_not_served() {
    for (spoil, why) in plantings("a_planted_token_is_not_served") {
        let (d, tok) = token_dir();
        plant_pair(&tok, spoil);
        let mut srv = Server::start(&tok, &[]);
        let r = get(srv.port, "client", "/get_wif_token");
        assert_unavailable_without_paths(&r, "is not trusted: ", d.path());
        assert!(!String::from_utf8_lossy(&r.body).contains("uid"), "the answer names no owner");
        let line = srv.wait_for("the reason in the log", |v| v["event"] == "reload_failed" && v["what"] == "token");
        assert!(line["reason"].as_str().unwrap().contains(&why), "{line}");
        srv.finish_checking_secrecy(&["ya29.planted"]);
    }
}
