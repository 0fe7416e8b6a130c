//! Unit tests of the metadata server: answers, the screen, refresh timing.

use super::answer::{answer, is_own_host, Headers, JSON};
use super::identity::Identity;
use super::refresh::{next_refresh, refresh_due, retry_delay, sleep_slice, Next, Why};
use super::state::{Current, State};
use super::*;
use crate::core::secret::Secret;
use crate::core::spread::{self, Spread};
use crate::protocol::sts::DEFAULT_SCOPE;
use serde_json::Value;

fn state() -> State {
    let st = State::new(
        Identity {
            email: "app@p.iam.gserviceaccount.com".into(),
            project_id: Some("p".into()),
            project_number: Some(42),
            scopes: vec![DEFAULT_SCOPE.into()],
        },
        PORT,
    );
    st.set(Current { token: Secret::new("ya29.test-token-value"), expires_at: 1_000, assumed_ttl: None });
    st
}

fn get(st: &State, path: &str) -> Response {
    get_at(st, path, 400)
}

/// A client library's GET at Unix time `now` (the token expires at 1000).
fn get_at(st: &State, target: &str, now: i64) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    answer(st, "GET", path, query, &library(), now)
}

const PORT: u16 = 8989;

/// The headers a client library sends with GCE_METADATA_HOST=127.0.0.1:8989.
fn library() -> Headers {
    vec![("Host".into(), format!("127.0.0.1:{PORT}")), ("Metadata-Flavor".into(), "Google".into())]
}

const TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

#[test]
fn token_and_listings() {
    let st = state();
    let r = get(&st, "/computeMetadata/v1/instance/service-accounts/default/token?scopes=x");
    assert_eq!((r.status, r.content_type), (200, JSON));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["expires_in"], 600);
    assert_eq!(v["token_type"], "Bearer");
    let r = get(&st, "/computeMetadata/v1/instance/service-accounts/app@p.iam.gserviceaccount.com/token");
    assert_eq!(r.status, 200);
    let r = get(&st, "/computeMetadata/v1/instance/service-accounts/default/?recursive=true");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"aliases":["default"],"email":"app@p.iam.gserviceaccount.com","scopes":[DEFAULT_SCOPE]})
    );
    let r = get(&st, "/computeMetadata/v1/project/?recursive=true");
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v, serde_json::json!({"numericProjectId": 42, "projectId": "p"}));
    let r = get(&st, "/computeMetadata/v1/instance/service-accounts/");
    assert_eq!(String::from_utf8(r.body).unwrap(), "default/\napp@p.iam.gserviceaccount.com/\n");
    assert_eq!(get(&st, "/computeMetadata/v1/instance/zone").status, 404);
    let shown = format!("{:?}", get(&st, "/computeMetadata/v1/instance/service-accounts/default/token"));
    assert!(shown.starts_with("Response { status: 200") && !shown.contains("ya29"), "{shown}");
}

#[test]
fn expired_tokens_are_not_served() {
    let st = state();
    assert_eq!(get_at(&st, TOKEN_PATH, 1_000).status, 503);
}

/// The unspread schedule (`--spread off`): exactly the rule from before spreading.
fn refresh_delay(remaining: i64, min_ttl: i64, assumed_ttl: Option<i64>) -> u64 {
    let next = next_refresh(remaining, min_ttl, assumed_ttl, Spread::Off, 0.7);
    assert_eq!(next.why, Why::Margin, "{remaining} {min_ttl} {assumed_ttl:?}");
    next.wait
}

#[test]
fn refresh_timing() {
    // A fresh hour-long token: refreshed when a quarter is left.
    assert_eq!(refresh_delay(3600, 300, None), 2700);
    // Below the margin already: poll, at most every 30 s, never past expiry.
    assert_eq!(refresh_delay(200, 300, None), 30);
    assert_eq!(refresh_delay(4, 300, None), 2);
    assert_eq!(refresh_delay(12, 6, None), 6);
}

#[test]
fn a_token_with_an_assumed_lifetime_is_refetched_after_half_of_it() {
    // The seed's bare token, 5 min assumed: the default --min-ttl (5 min) would make
    // every fetch due at once (a 30 s poll for ever); half its lifetime instead.
    assert_eq!(refresh_delay(300, 300, Some(300)), 150);
    // A longer lifetime keeps the usual margin: a quarter, or --min-ttl if more.
    assert_eq!(refresh_delay(3300, 300, Some(3300)), 2475);
    assert_eq!(refresh_delay(1200, 900, Some(1200)), 600);
    // Never sooner than 30 s apart, and never after the token has run out.
    assert_eq!(refresh_delay(40, 300, Some(40)), 30);
    assert_eq!(refresh_delay(20, 300, Some(20)), 19);
    assert_eq!(refresh_delay(1, 300, Some(1)), 1);
    // A schedule, fetch after fetch: always 150 s apart, never a tight loop.
    let fetches: Vec<u64> = (0..5).map(|_| refresh_delay(300, 300, Some(300))).collect();
    assert!(fetches.iter().all(|&d| d == 150), "{fetches:?}");
    let off = |n| retry_delay(n, Spread::Off, 0.3);
    assert_eq!((off(1), off(2), off(3), off(30)), (1, 2, 4, 60));
}

#[test]
fn spread_refreshes_lie_in_the_window_and_never_after_the_margin() {
    // An hour-long token, --min-ttl 5m: anywhere in 1800..2700 s, at the draw.
    let at = |u| next_refresh(3600, 300, None, Spread::Auto, u);
    assert_eq!(at(0.0), Next { wait: 1800, why: Why::Spread { earliest: 1800, latest: 2700 } });
    assert_eq!(at(0.5).wait, 2250);
    assert_eq!(at(0.999_999_9).wait, 2700);
    for remaining in [1i64, 3, 9, 40, 299, 300, 301, 1200, 3599, 3600, 43_200] {
        for assumed in [None, Some(remaining), Some(300)] {
            if assumed.is_some_and(|ttl| ttl < remaining) {
                continue;
            }
            let unspread = refresh_delay(remaining, 300, assumed);
            for spread in [Spread::Auto, Spread::Seconds(60), Spread::Seconds(1 << 30)] {
                for u in [0.0, 0.1, 0.5, 0.9, 0.999_999] {
                    let next = next_refresh(remaining, 300, assumed, spread, u);
                    assert!(next.wait >= 1 && next.wait <= unspread, "{remaining} {assumed:?} {spread:?} {u} {next:?}");
                    assert!(next.wait < remaining.max(2) as u64, "{remaining} {assumed:?} {spread:?} {u} {next:?}");
                    match next.why {
                        Why::Spread { earliest, latest } | Why::Poll { earliest, latest } => {
                            assert!(earliest <= next.wait && next.wait <= latest && latest == unspread, "{next:?}");
                        }
                        Why::Margin => assert_eq!(next.wait, unspread),
                    }
                }
            }
        }
    }
    // The seed's bare token (5 min assumed): within 75..150 s, never below 30 s apart.
    let assumed = next_refresh(300, 300, Some(300), Spread::Auto, 0.0);
    assert_eq!(assumed, Next { wait: 75, why: Why::Spread { earliest: 75, latest: 150 } });
    assert_eq!(next_refresh(40, 300, Some(40), Spread::Auto, 0.0).wait, 30);
    // Near expiry: polls jittered between half and all of the poll, never below 1 s.
    assert_eq!(
        next_refresh(200, 300, None, Spread::Auto, 0.0),
        Next { wait: 15, why: Why::Poll { earliest: 15, latest: 30 } }
    );
    assert_eq!(next_refresh(2, 300, None, Spread::Auto, 0.0).wait, 1);
    // Retries: jittered the same way.
    for n in 1..10 {
        let full = retry_delay(n, Spread::Off, 0.0);
        let draws: Vec<u64> = (0..50).map(|_| retry_delay(n, Spread::Auto, spread::unit_random())).collect();
        assert!(draws.iter().all(|d| *d >= (full / 2).max(1) && *d <= full), "{n} {draws:?}");
    }
}

#[test]
fn refresh_is_due_by_the_wall_clock_in_slices() {
    // Planned 2700 s after the fetch at 1000: slept 15 s at a time, not 2700 in one go.
    let due = refresh_due(3700, 1000, false);
    assert_eq!(due, 3700);
    assert_eq!(sleep_slice(1000, due), Some(Duration::from_secs(15)));
    assert_eq!(sleep_slice(3690, due), Some(Duration::from_secs(10)));
    assert_eq!(sleep_slice(3700, due), None);
    // Resumed from a suspend long past the plan: due at the first look.
    assert_eq!(sleep_slice(9000, due), None);
    // A client found no valid token: due 2 s after the last attempt, never later than planned.
    assert_eq!(refresh_due(3700, 1000, true), 1002);
    assert_eq!(sleep_slice(1001, refresh_due(3700, 1000, true)), Some(Duration::from_secs(1)));
    assert_eq!(refresh_due(1001, 1000, true), 1001);
}

#[test]
fn a_missing_or_expired_token_wakes_the_refresher() {
    let st = state();
    assert!(!st.is_wanted());
    assert_eq!(get(&st, TOKEN_PATH).status, 200);
    assert!(!st.is_wanted());
    let started = Instant::now();
    std::thread::scope(|s| {
        s.spawn(|| st.sleep_unless_wanted(Duration::from_secs(30)));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(get_at(&st, TOKEN_PATH, 1_000).status, 503);
    });
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert!(st.is_wanted());
    st.clear_wanted();
    assert!(!st.is_wanted());
}

#[test]
fn post_only_to_the_token() {
    let st = state();
    let flavor = library();
    let r = answer(&st, "POST", "/computeMetadata/v1/instance/service-accounts/default/token", "", &flavor, 400);
    assert_eq!(r.status, 200);
    assert_eq!(answer(&st, "POST", "/computeMetadata/v1/project/project-id", "", &flavor, 400).status, 405);
    assert_eq!(
        answer(&st, "PUT", "/computeMetadata/v1/instance/service-accounts/default/token", "", &flavor, 400).status,
        405
    );
    let host = [("Host".to_string(), format!("localhost:{PORT}"))];
    assert_eq!(
        answer(&st, "POST", "/computeMetadata/v1/instance/service-accounts/default/token", "", &host, 400).status,
        403
    );
}

#[test]
fn only_this_servers_names_are_accepted_as_the_host() {
    for host in [
        "127.0.0.1:8989",
        "127.0.0.1",
        "127.42.0.7:8989",
        "[::1]:8989",
        "[::1]",
        "[::ffff:127.0.0.1]:8989",
        "localhost:8989",
        "LocalHost",
        "localhost.:8989",
        "metadata.google.internal",
        "metadata.google.internal.:8989",
        "Metadata.Google.Internal:8989",
    ] {
        assert!(is_own_host(host, PORT), "{host}");
    }
    for host in [
        "metadata",
        "metadata:8989",
        "169.254.169.254",
        "169.254.169.254:8989",
        "localhost:+8989",
        "attacker.example",
        "attacker.example:8989",
        "localhost.attacker.example:8989",
        "metadata.google.internal.attacker.example",
        "127.0.0.1.nip.io:8989",
        "127.0.0.1:8990",
        "127.0.0.1:",
        "127.0.0.1:08989x",
        "localhost:80",
        "[::1]:8990",
        "[::1]x",
        "[::1",
        "user@localhost:8989",
        "localhost:98989",
        "::1",
        "[127.0.0.1]:8989",
        "[localhost]:8989",
        "10.0.0.1:8989",
        "0.0.0.0:8989",
        "[::]:8989",
        "127.1:8989",
        "",
        "metadata.google.internal..",
    ] {
        assert!(!is_own_host(host, PORT), "{host}");
    }
}

#[test]
fn web_pages_and_foreign_hosts_are_refused_before_routing() {
    let st = state();
    let with = |extra: &[(&str, &str)]| {
        let mut h = library();
        h.retain(|(k, _)| !extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(k) && e.eq_ignore_ascii_case("host")));
        h.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        answer(&st, "GET", TOKEN_PATH, "", &h, 400)
    };
    assert_eq!(with(&[]).status, 200);
    assert_eq!(with(&[("Sec-Fetch-Site", "none")]).status, 200);
    for extra in [
        ("Host", "attacker.example:8989"),
        ("Origin", "http://evil.example"),
        ("Origin", "null"),
        ("Sec-Fetch-Site", "cross-site"),
        ("Sec-Fetch-Site", "same-site"),
        ("Sec-Fetch-Site", "same-origin"),
        ("X-Forwarded-For", "10.1.2.3"),
    ] {
        let r = with(&[extra]);
        assert_eq!(r.status, 403, "{extra:?}");
        assert!(!String::from_utf8_lossy(&r.body).contains("ya29"), "{extra:?}");
    }
    // The detection probe too: a page learns nothing, not even that we are here.
    let page = [("Host".to_string(), "attacker.example".to_string())];
    assert_eq!(answer(&st, "GET", "/", "", &page, 400).status, 403);
    // HTTP/1.1 requires exactly one Host.
    let flavor = [("Metadata-Flavor".to_string(), "Google".to_string())];
    assert_eq!(answer(&st, "GET", TOKEN_PATH, "", &flavor, 400).status, 400);
    let mut two = library();
    two.push(("host".into(), "attacker.example".into()));
    assert_eq!(answer(&st, "GET", TOKEN_PATH, "", &two, 400).status, 400);
}

#[test]
fn refusals_are_logged_ten_a_minute_at_most() {
    let st = state();
    let counts = || st.refusals.lock().map(|r| (r.logged, r.unlogged)).unwrap();
    for _ in 0..25 {
        st.log_refusal("GET", "/", "test", 60);
    }
    assert_eq!(counts(), (10, 15));
    // The next minute starts over; its first line counts the 15 it did not log.
    st.log_refusal("GET", "/", "test", 120);
    assert_eq!(counts(), (1, 0));
}
