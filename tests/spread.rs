//! Spreading refreshes: wif-get from cron (--min-ttl, --spread, --splay) and its metadata server.
//!
//! The one-shot decision is computed here from the same public functions wif-get uses
//! (`wif::core::spread`), with the same inputs: the host (`WIF_HOST_ID`, which wif-get
//! prefers over /etc/machine-id), the SHA-256 of the token in --out, and its life when it
//! was written (from FILE.meta.json). Nothing is timed: each run is judged by its `fetched`
//! section, and the metadata server by the schedule its stderr line announces.

use crate::common::server::{write_token, Server};
use crate::common::*;
use crate::get::get;
use crate::metadata::Mds;
use serde_json::Value;
use std::path::{Path, PathBuf};
use wif::core::clock::rfc3339;
use wif::core::spread::{self, Spread};

const TOKEN_A: &str = "ya29.c.spread-token-A_0123456789abcdef";
const TOKEN_B: &str = "ya29.c.spread-token-B_fedcba9876543210";
const MIN_TTL: i64 = 600;

/// wif-serve on loopback with TOKEN_B for an hour: what a due fetch gets.
fn server(dir: &Path) -> Server {
    let path = dir.join("served.txt");
    write_token(&path, TOKEN_B, 3600);
    Server::start(&path, &[])
}

/// A directory, wif-serve serving TOKEN_B from it, its token URL, and the --out path.
fn setup() -> (tempfile::TempDir, Server, String, PathBuf) {
    let dir = tempdir();
    let server = server(dir.path());
    let url = format!("https://localhost:{}/get_wif_token", server.port);
    let out = dir.path().join("token.txt");
    (dir, server, url, out)
}

/// Plants TOKEN_A in `out` with `left` seconds of life, written `life - left` seconds ago
/// (so that it had `life` seconds when written); returns its expiry, Unix seconds.
fn plant(out: &Path, left: i64, life: i64) -> i64 {
    write_token(out, TOKEN_A, left);
    let meta_path = out.with_file_name(format!("{}.meta.json", out.file_name().unwrap().to_str().unwrap()));
    let mut meta: Value = serde_json::from_slice(&std::fs::read(&meta_path).unwrap()).unwrap();
    let expires_at = wif::core::clock::Timestamp::parse(meta["expires_at"].as_str().unwrap()).unwrap().unix();
    meta["written_at"] = rfc3339(expires_at - life).into();
    std::fs::write(&meta_path, serde_json::to_vec_pretty(&meta).unwrap()).unwrap();
    expires_at
}

/// The remaining life at or below which `host` fetches TOKEN_A again, as wif-get decides it.
fn threshold(host: &str, spread: Spread, life: i64) -> i64 {
    let u = spread::one_shot_unit(host, &wif::core::keys::sha256_hex(TOKEN_A.as_bytes()));
    spread::threshold_within(MIN_TTL, spread, u, life)
}

/// The first of `host-0`, `host-1`, … whose threshold (auto, a 1-hour token) satisfies `pick`.
fn host_where(pick: impl Fn(i64) -> bool) -> String {
    (0..1000).map(|i| format!("host-{i}")).find(|h| pick(threshold(h, Spread::Auto, 3600))).unwrap()
}

/// One run from cron on `host`: wif-get --out OUT --min-ttl 10m plus `extra`; its `fetched`.
fn run(url: &str, out: &Path, host: &str, extra: &[&str]) -> Value {
    let out = get(url)
        .arg("--out")
        .arg(out)
        .args(["--min-ttl", "10m"])
        .args(extra)
        .env("WIF_HOST_ID", host)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    json_out(&out)["fetched"].clone()
}

#[test]
fn one_shot_runs_agree_with_themselves_and_hosts_differ() {
    let (_dir, _server, url, out) = setup();
    // A fresh hour-long token: every host skips, and says when it will fetch it.
    let expires_at = plant(&out, 3600, 3600);
    let mut seen = std::collections::BTreeSet::new();
    for host in ["host-a", "host-b", "host-c", "host-d"] {
        let want = rfc3339(expires_at - threshold(host, Spread::Auto, 3600));
        for _ in 0..2 {
            let f = run(&url, &out, host, &[]);
            assert_eq!((f["skipped"].as_bool(), f["refresh_after"].as_str()), (Some(true), Some(want.as_str())), "{f}");
            assert!(f.get("splay_ms").is_none(), "{f}");
        }
        // Within the window: never later than --min-ttl alone, never earlier than twice it.
        let t = threshold(host, Spread::Auto, 3600);
        assert!((MIN_TTL..2 * MIN_TTL).contains(&t), "{host}: {t}");
        seen.insert(want);
    }
    assert!(seen.len() > 1, "four hosts, one moment: {seen:?}");

    // 15 minutes left: a host whose share reaches past that fetches, one whose share does
    // not skips, run after run.
    let early = host_where(|t| t > 900 + 60);
    let late = host_where(|t| t < 900 - 60);
    let expires_at = plant(&out, 900, 3600);
    let f = run(&url, &out, &late, &[]);
    assert_eq!(f["skipped"], true, "{f}");
    assert_eq!(f["refresh_after"], rfc3339(expires_at - threshold(&late, Spread::Auto, 3600)));
    assert_eq!(run(&url, &out, &late, &[])["refresh_after"], f["refresh_after"]);
    let f = run(&url, &out, &early, &[]);
    assert_eq!((f["status"].as_u64(), f.get("skipped")), (Some(200), None), "{f}");
    assert_eq!(f["sha256"], wif::core::keys::sha256_hex(TOKEN_B.as_bytes()));
    assert!(f.get("splay_ms").is_none() && f.get("refresh_after").is_none(), "{f}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), TOKEN_B);

    // The spread is capped by what the token had when written: a --min-ttl near its life
    // does not make every run fetch the same token again.
    plant(&out, 660, 700);
    let f = run(&url, &out, &early, &[]);
    assert_eq!(f["skipped"], true, "{f}");
    assert!(threshold(&early, Spread::Auto, 700) <= MIN_TTL + 50);
}

#[test]
fn spread_off_is_the_rule_from_before() {
    let (_dir, _server, url, out) = setup();
    // A minute above --min-ttl: whatever the host, skipped until exactly --min-ttl is left.
    let expires_at = plant(&out, MIN_TTL + 60, 3600);
    let early = host_where(|t| t > MIN_TTL + 120);
    for (host, how) in [(early.as_str(), ["--spread", "off"]), ("host-z", ["--spread", "0"])] {
        let f = run(&url, &out, host, &how);
        assert_eq!(f["skipped"], true, "{f}");
        assert_eq!(f["refresh_after"], rfc3339(expires_at - MIN_TTL));
    }
    // The same host with the default spread fetches: its share reaches past a minute.
    let f = run(&url, &out, &early, &[]);
    assert_eq!(f["status"], 200, "{f}");
    // --spread from the environment, as from the config: WIF_GET_SPREAD.
    plant(&out, MIN_TTL + 60, 3600);
    let cmd = get(&url)
        .arg("--out")
        .arg(&out)
        .args(["--min-ttl", "10m"])
        .env("WIF_HOST_ID", &early)
        .env("WIF_GET_SPREAD", "off")
        .output()
        .unwrap();
    assert_eq!(json_out(&cmd)["fetched"]["skipped"], true, "{}", stderr(&cmd));
    let bad = get(&url).arg("--out").arg(&out).args(["--min-ttl", "10m", "--spread", "soon"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
    assert!(stderr(&bad).contains("--spread \"soon\" is not auto, off or a duration"), "{}", stderr(&bad));
}

#[test]
fn splay_never_delays_an_urgent_fetch() {
    let (_dir, _server, url, out) = setup();
    // No token yet: fetched at once, however long --splay is (the run has 60 s in all).
    let f = run(&url, &out, "host-a", &["--splay", "10h"]);
    assert_eq!(f["status"], 200, "{f}");
    assert!(f.get("splay_ms").is_none(), "{f}");
    // --min-ttl or less left: at once too.
    plant(&out, MIN_TTL - 5, 3600);
    let f = run(&url, &out, "host-a", &["--splay", "10h"]);
    assert_eq!((f["status"].as_u64(), f.get("splay_ms")), (Some(200), None), "{f}");
    // Due by this host's share but 3 s above --min-ttl: it sleeps, but never past the
    // moment --min-ttl is left (at most 2 s, the clock's second included).
    let early = host_where(|t| t > MIN_TTL + 60);
    plant(&out, MIN_TTL + 3, 3600);
    let f = run(&url, &out, &early, &["--splay", "10h"]);
    assert_eq!(f["status"], 200, "{f}");
    assert!(f["splay_ms"].as_u64().is_some_and(|ms| ms <= 2000), "{f}");
    // --splay without --min-ttl, or with the metadata server, is a usage error.
    for extra in [&["--splay", "1m"][..], &["--splay", "1m", "--min-ttl", "5m", "--metadata-server", "127.0.0.1:0"]] {
        let bad = get(&url).arg("--out").arg(&out).args(extra).output().unwrap();
        assert_eq!(bad.status.code(), Some(2), "{extra:?}: {}", stderr(&bad));
        assert!(stderr(&bad).contains("--splay only applies with --min-ttl"), "{}", stderr(&bad));
    }
}

/// A metadata server's refresh line: (remaining, wait, window), from
/// "… in R s); next refresh in W s (spread over E..L s)".
fn schedule(line: &str) -> (i64, i64, Option<(i64, i64)>) {
    let number = |after: &str, until: &str| -> i64 {
        let rest = &line[line.find(after).unwrap_or_else(|| panic!("{after:?} in {line}")) + after.len()..];
        rest[..rest.find(until).unwrap()].parse().unwrap()
    };
    let remaining = number(", in ", " s)");
    let wait = number("next refresh in ", " s");
    let window = line.contains("(spread over ").then(|| (number("(spread over ", ".."), number("..", " s)")));
    (remaining, wait, window)
}

#[test]
fn metadata_servers_plan_their_refreshes_apart_within_the_window() {
    let dir = tempdir();
    let server = server(dir.path());
    let min_ttl = 300;
    let mut waits = Vec::new();
    for _ in 0..3 {
        let mds = Mds::start(server.port, &[]);
        let line = mds.wait_stderr("fetched the token", 20);
        let (remaining, wait, window) = schedule(&line);
        let (earliest, latest) = window.unwrap_or_else(|| panic!("not spread: {line}"));
        // Ends where the unspread rule refreshes; as wide as its margin.
        let margin = spread::margin(remaining, min_ttl);
        assert_eq!(latest, remaining - margin, "{line}");
        assert_eq!(earliest, latest - margin.min(latest / 2), "{line}");
        assert!(earliest <= wait && wait <= latest, "{line}");
        assert_eq!(spread::window(0, remaining, min_ttl, Spread::Auto), spread::Window { earliest, latest });
        waits.push(wait);
        mds.stop_cleanly(&[TOKEN_B]);
    }
    assert!(waits.iter().any(|w| *w != waits[0]), "three servers planned the same second: {waits:?}");

    // --spread off: exactly the margin, and the line says nothing of a window.
    let mds = Mds::start(server.port, &["--spread", "off"]);
    let line = mds.wait_stderr("fetched the token", 20);
    let (remaining, wait, window) = schedule(&line);
    assert_eq!((wait, window), (remaining - spread::margin(remaining, min_ttl), None), "{line}");
    assert!(line.ends_with(&format!("next refresh in {wait} s")), "{line}");
    mds.stop_cleanly(&[TOKEN_B]);
}

#[test]
fn help_and_manual_describe_spread_and_splay() {
    let out = bin("wif-get").arg("--help").output().unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for word in ["--spread", "--splay", "WIF_GET_SPREAD", "WIF_GET_SPLAY", "WIF_HOST_ID", "refresh_after", "splay_ms"] {
        assert!(help.contains(word), "{word} not in --help");
    }
    let man = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("man/wif-get.1")).unwrap();
    for word in ["spread", "splay", "WIF_HOST_ID", "machine\\-id"] {
        assert!(man.contains(word), "{word} not in man/wif-get.1");
    }
}
