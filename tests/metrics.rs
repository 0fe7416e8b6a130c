//! Metrics: wif-serve's `--metrics-listen` scraped after real mTLS traffic on loopback, and
//! wif-refresh's `--textfile` after good and failed runs; both read with the official
//! Python parser and a strict one, and checked value by value.

use crate::common::prom::{parse_both, Samples};
use crate::common::server::*;
use crate::common::*;
use serde_json::Value;
use std::collections::VecDeque;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const TOKEN: &str = "ya29.c.metrics-test-token-Kp40";
const TOKEN2: &str = "ya29.c.metrics-test-token-rewritten-Vd77";

/// One plain-HTTP request to the metrics listener.
fn metrics_request(addr: &str, raw: &str) -> Resp {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).unwrap();
    read_response(&mut s, raw.starts_with("HEAD")).unwrap()
}

/// Scrapes /metrics: checks the status and content type, returns the text and its samples.
fn scrape(srv: &Server) -> (String, Samples) {
    let addr = srv.first["metrics_address"].as_str().expect("metrics_address in the first log line");
    let r = metrics_request(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 200);
    let ct = r.header("content-type").unwrap();
    let mut parts = ct.split(';').map(str::trim);
    assert_eq!(parts.next(), Some("text/plain"), "{ct}");
    let params: Vec<(String, String)> = parts
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap();
            (k.to_ascii_lowercase(), v.to_ascii_lowercase())
        })
        .collect();
    assert!(params.contains(&("version".into(), "0.0.4".into())), "{ct}");
    assert!(params.contains(&("charset".into(), "utf-8".into())), "{ct}");
    let text = String::from_utf8(r.body).unwrap();
    let samples = parse_both(&text);
    (text, samples)
}

fn requests(s: &Samples, route: &str, status: &str) -> f64 {
    s.find("wif_serve_requests_total", &[("route", route), ("status", status)]).unwrap_or(0.0)
}

fn refused(s: &Samples, reason: &str) -> f64 {
    s.get("wif_serve_handshakes_refused_total", &[("reason", reason)])
}

/// Connects with `client` (or none) and expects the handshake to be refused.
fn refused_connection(port: u16, client: Option<&str>) {
    let mut s = connect(port, client_config(client, "ca-chain.crt", None));
    let _ = s.write_all(b"GET /get_wif_token HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let _ = s.flush();
    assert!(read_response(&mut s, false).is_err(), "{client:?} was answered");
}

#[test]
fn serve_metrics_count_requests_refusals_reloads_and_the_token() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &["--metrics-listen", "127.0.0.1:0", "--allow", "cn:wif-client"]);
    let addr = srv.first["metrics_address"].as_str().unwrap().to_string();
    assert!(addr.starts_with("127.0.0.1:"), "{}", srv.first);
    assert_eq!(srv.first["metrics_url"], format!("http://{addr}/metrics"));

    // Before any traffic: every refusal reason is there at 0, the token is served.
    let (_, s) = scrape(&srv);
    for reason in ["no_certificate", "unknown_ca", "expired", "bad_eku", "revoked", "not_allowed", "timeout", "other"] {
        assert_eq!(refused(&s, reason), 0.0, "{reason}");
    }
    assert_eq!(requests(&s, "/get_wif_token", "200"), 0.0);
    assert_eq!(s.get("wif_serve_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert_eq!(s.types["wif_serve_requests_total"], "counter");
    assert_eq!(s.types["wif_serve_token_expires_in_seconds"], "gauge");

    for _ in 0..3 {
        assert_eq!(get(srv.port, "client", "/get_wif_token").status, 200);
    }
    assert_eq!(get(srv.port, "client", "/healthz").status, 200);
    assert_eq!(get(srv.port, "client", "/nope").status, 404);
    assert_eq!(get(srv.port, "client2", "/get_wif_token").status, 403);
    refused_connection(srv.port, None);
    refused_connection(srv.port, Some("other-client"));
    // The counters are bumped before the log lines are written.
    srv.wait_for("no certificate", |v| v["event"] == "handshake_failed" && v["code"] == "no_certificate");
    srv.wait_for("unknown issuer", |v| v["event"] == "handshake_failed" && v["code"] == "unknown_ca");
    srv.wait_count("the requests", 6, |v| v["event"] == "request");

    // A new token renamed over the old one, and a SIGHUP for the TLS files.
    let exp2 = write_token(&tok, TOKEN2, 1800);
    assert_eq!(get(srv.port, "client", "/get_wif_token").body, TOKEN2.as_bytes());
    srv.signal("-HUP");
    srv.wait_for("the TLS reload", |v| v["event"] == "reload" && v["what"] == "tls");
    srv.wait_count("the requests", 7, |v| v["event"] == "request");

    // One connection held open over a scrape.
    let mut held = connect(srv.port, client_config(Some("client"), "ca-chain.crt", None));
    held.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut held, false).unwrap().status, 200);
    srv.wait_count("the requests", 8, |v| v["event"] == "request");

    let (text, s) = scrape(&srv);
    assert!(!text.contains(TOKEN) && !text.contains(TOKEN2), "the token is never in the metrics");
    assert_eq!(requests(&s, "/get_wif_token", "200"), 4.0);
    assert_eq!(requests(&s, "/get_wif_token", "403"), 1.0);
    assert_eq!(requests(&s, "/healthz", "200"), 2.0);
    assert_eq!(requests(&s, "other", "404"), 1.0);
    assert_eq!(requests(&s, "/get_wif_token", "503"), 0.0);
    let total: f64 = s.values.iter().filter(|((n, _), _)| n == "wif_serve_requests_total").map(|(_, v)| *v).sum();
    assert_eq!(total, 8.0, "no request counted twice or missed");
    assert_eq!(refused(&s, "no_certificate"), 1.0);
    assert_eq!(refused(&s, "unknown_ca"), 1.0);
    assert_eq!(refused(&s, "not_allowed"), 1.0);
    for reason in ["expired", "bad_eku", "revoked", "timeout", "other"] {
        assert_eq!(refused(&s, reason), 0.0, "{reason}");
    }
    assert_eq!(s.get("wif_serve_connections_total", &[]), 10.0);
    assert_eq!(s.get("wif_serve_open_connections", &[]), 1.0);
    // The first read of the token, the rewrite, and SIGHUP (which re-reads the token too).
    assert_eq!(s.get("wif_serve_reloads_total", &[("what", "token")]), 3.0);
    assert_eq!(s.get("wif_serve_reloads_total", &[("what", "tls")]), 1.0);
    assert_eq!(s.get("wif_serve_reload_failures_total", &[("what", "token")]), 0.0);
    assert_eq!(s.get("wif_serve_reload_failures_total", &[("what", "tls")]), 0.0);
    assert_eq!(s.get("wif_serve_token_available", &[]), 1.0);
    let exp2 = wif::core::clock::parse_rfc3339(&exp2).unwrap() as f64;
    assert_eq!(s.get("wif_serve_token_expiry_timestamp_seconds", &[]), exp2);
    let left = s.get("wif_serve_token_expires_in_seconds", &[]);
    assert!((1790.0..=1800.0).contains(&left), "{left}");
    let age = s.get("wif_serve_token_age_seconds", &[]);
    assert!((0.0..=10.0).contains(&age), "{age}");
    let started = s.get("wif_serve_start_time_seconds", &[]);
    assert!((now() - 60..=now()).contains(&(started as i64)), "{started}");
    assert_eq!(s.get("wif_serve_scrapes_total", &[]), 2.0);
    drop(held);

    // Health checks for probes without a client certificate: /healthz as over mTLS (the
    // expiry, never the token), /livez while the process answers.
    let h = metrics_request(&addr, "GET /healthz HTTP/1.1\r\n\r\n");
    let v: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!((h.status, v["status"].as_str()), (200, Some("ok")), "{v}");
    assert_eq!(wif::core::clock::parse_rfc3339(v["expires_at"].as_str().unwrap()).unwrap() as f64, exp2);
    assert!(!String::from_utf8_lossy(&h.body).contains(TOKEN2));
    let l = metrics_request(&addr, "GET /livez HTTP/1.1\r\n\r\n");
    assert_eq!((l.status, serde_json::from_slice::<Value>(&l.body).unwrap()["status"].as_str()), (200, Some("alive")));
    assert_eq!(metrics_request(&addr, "HEAD /healthz HTTP/1.1\r\n\r\n").status, 200);
    // Nothing else: not the token, not other paths or methods.
    assert_eq!(metrics_request(&addr, "GET / HTTP/1.1\r\n\r\n").status, 404);
    assert_eq!(metrics_request(&addr, "GET /get_wif_token HTTP/1.1\r\n\r\n").status, 404);
    let r = metrics_request(&addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    assert_eq!(metrics_request(&addr, "garbage\r\n\r\n").status, 400);

    // No token: unavailable, the expiry gauges disappear, and a token request is a 503.
    std::fs::remove_file(&tok).unwrap();
    token_settles();
    assert_eq!(get(srv.port, "client", "/get_wif_token").status, 503);
    srv.wait_for("the 503", |v| v["event"] == "request" && v["status"] == 503);
    let (_, s) = scrape(&srv);
    assert_eq!(s.get("wif_serve_token_available", &[]), 0.0);
    assert!(!s.has("wif_serve_token_expires_in_seconds") && !s.has("wif_serve_token_age_seconds"));
    assert_eq!(requests(&s, "/get_wif_token", "503"), 1.0);
    let h = metrics_request(&addr, "GET /healthz HTTP/1.1\r\n\r\n");
    let v: Value = serde_json::from_slice(&h.body).unwrap();
    assert_eq!((h.status, v["status"].as_str()), (503, Some("unavailable")), "{v}");
    assert!(v["reason"].as_str().unwrap().contains("no token file"), "{v}");
    assert_eq!(metrics_request(&addr, "GET /livez HTTP/1.1\r\n\r\n").status, 200);
    let log: Vec<Value> = srv.drain();
    assert!(log.iter().all(|v| v["path"] != "/metrics"), "scrapes are not in the access log");
    srv.finish_checking_secrecy(&[TOKEN, TOKEN2]);
}

#[test]
fn a_silent_scraper_does_not_hold_up_the_tls_listener() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let mut srv = Server::start(&tok, &["--metrics-listen", "127.0.0.1:0"]);
    let addr = srv.first["metrics_address"].as_str().unwrap().to_string();
    // Sockets that connect and say nothing hold their own threads (up to the head deadline)...
    let silent: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    // ...and token requests go on.
    let started = std::time::Instant::now();
    for _ in 0..5 {
        assert_eq!(get(srv.port, "client", "/get_wif_token").status, 200);
    }
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    srv.wait_count("the requests", 5, |v| v["event"] == "request");
    // ...and so do scrapes.
    let (_, s) = scrape(&srv);
    assert_eq!(requests(&s, "/get_wif_token", "200"), 5.0);
    drop(silent);
}

/// The kubelet's probes against a metrics listener that anyone the NetworkPolicy admits can
/// flood: a stream of connections that never say anything (more than the listener's cap of
/// 64 at any time) and one that sends its request head a byte a second. 20 probes in a row,
/// spread over 3 s (past the 2 s head deadline), must each answer 200 within 1 s. (Answered
/// one connection at a time with a 5 s deadline, one idle socket every 2.4 s failed every
/// probe: a restart loop.)
#[test]
fn probes_pass_while_idle_and_trickling_connections_flood_the_metrics_listener() {
    let (_d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let srv = Server::start(&tok, &["--metrics-listen", "127.0.0.1:0"]);
    let addr = srv.first["metrics_address"].as_str().unwrap().to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicUsize::new(0));
    let flood = {
        let (addr, stop, opened) = (addr.clone(), stop.clone(), opened.clone());
        std::thread::spawn(move || {
            let mut held = VecDeque::new();
            while !stop.load(Ordering::Relaxed) {
                if let Ok(s) = TcpStream::connect(&addr) {
                    held.push_back(s);
                    opened.fetch_add(1, Ordering::Relaxed);
                }
                if held.len() > 150 {
                    held.pop_front();
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    // Each time it is cut off, it says after how long, and starts again.
    let trickle = {
        let (addr, stop) = (addr.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut cut_off = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let Ok(mut s) = TcpStream::connect(&addr) else { break };
                let started = Instant::now();
                let head = b"GET /livez HTTP/1.1\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a'));
                for b in head {
                    if stop.load(Ordering::Relaxed) {
                        return cut_off;
                    }
                    if s.write_all(&[*b]).is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_secs(1));
                }
                cut_off.push(started.elapsed());
            }
            cut_off
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while opened.load(Ordering::Relaxed) < 100 {
        assert!(Instant::now() < deadline, "the flood could not connect");
        std::thread::sleep(Duration::from_millis(20));
    }
    for i in 0..20 {
        let path = ["/livez", "/healthz", "/metrics"][i % 3];
        let started = Instant::now();
        let mut s = TcpStream::connect(&addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).unwrap();
        let r = read_response(&mut s, false).unwrap_or_else(|e| panic!("probe {i} ({path}) unanswered: {e}"));
        let took = started.elapsed();
        assert_eq!(r.status, 200, "probe {i} ({path})");
        assert!(took < Duration::from_secs(1), "probe {i} ({path}) took {took:?}");
        std::thread::sleep(Duration::from_millis(150));
    }
    stop.store(true, Ordering::Relaxed);
    flood.join().unwrap();
    let cut_off = trickle.join().unwrap();
    // The trickler never got its slot for long: closed at the head deadline or to make room.
    assert!(!cut_off.is_empty(), "the trickling connection was never cut off");
    assert!(cut_off.iter().all(|t| *t < Duration::from_secs(4)), "{cut_off:?}");
    assert!(opened.load(Ordering::Relaxed) > 300, "{} connections", opened.load(Ordering::Relaxed));
}

#[test]
fn metrics_are_off_by_default_set_by_config_and_exposed_addresses_warn() {
    let (d, tok) = token_dir();
    write_token(&tok, TOKEN, 3600);
    let srv = Server::start(&tok, &[]);
    assert!(srv.first.get("metrics_address").is_none(), "{}", srv.first);
    drop(srv);

    // The settings key, from a --config file; an address that is not loopback draws a warning.
    let cfg = d.path().join("wif.json");
    std::fs::write(&cfg, r#"{"serve_metrics_listen": "0.0.0.0:0"}"#).unwrap();
    let mut srv = Server::start(&tok, &["--config", cfg.to_str().unwrap()]);
    let addr = srv.first["metrics_address"].as_str().unwrap().to_string();
    assert!(addr.starts_with("0.0.0.0:"), "{addr}");
    let port = addr.rsplit(':').next().unwrap();
    assert_eq!(srv.first["metrics_url"], format!("http://localhost:{port}/metrics"));
    let (_, s) = scrape_at(&format!("127.0.0.1:{port}"));
    assert_eq!(s.get("wif_serve_token_available", &[]), 1.0);
    srv.signal("-TERM");
    let (code, err) = srv.wait_exit();
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("wif-serve: warning: the metrics listener 0.0.0.0:") && err.contains("not on loopback"),
        "{err}"
    );

    // A bad address is a usage error naming the flag.
    let mut args = server_args(&pki_file("ca-chain.crt"), &tok);
    args.extend(["--metrics-listen".to_string(), "nowhere".to_string()]);
    let out = bin("wif-serve").args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.starts_with("wif-serve: --metrics-listen \"nowhere\" is not an address with a port"), "{err}");
    assert!(out.stdout.is_empty());
}

fn scrape_at(addr: &str) -> (u16, Samples) {
    let r = metrics_request(addr, "GET /metrics HTTP/1.1\r\n\r\n");
    (r.status, parse_both(&String::from_utf8(r.body).unwrap()))
}
