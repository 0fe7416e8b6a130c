//! scripts/wif-refresh driving the real binaries against a path-routing double of Azure AD,
//! STS and IAM Credentials: it writes the token, skips while fresh, never overlaps, keeps the
//! last good token on failure with the failing tool's exit code, and survives a killed run.
//! Also checks the systemd units and the cron line shipped beside it.

use crate::common::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const APP: &str = "11111111-2222-3333-4444-555555555555";
const TENANT: &str = "contoso.onmicrosoft.com";
const AUDIENCE: &str =
    "//iam.googleapis.com/projects/123456789/locations/global/workloadIdentityPools/pool-1/providers/azure";
const SA: &str = "deployer@my-project.iam.gserviceaccount.com";
const FINAL: &str = "ya29.refreshed-token";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn script() -> PathBuf {
    root().join("scripts/wif-refresh")
}

/// The directory holding the freshly built wif-* binaries.
fn bin_dir() -> String {
    let sign = assert_cmd::cargo::cargo_bin("wif-sign");
    sign.parent().expect("binary directory").display().to_string()
}

fn now() -> i64 {
    wif::core::clock::now_unix()
}

fn azure_jwt() -> String {
    let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let c = URL_SAFE_NO_PAD.encode(
        json!({"iss": format!("https://sts.windows.net/{TENANT}/"), "aud": "api://wif", "sub": "sub-123", "exp": now() + 3600})
            .to_string(),
    );
    format!("{h}.{c}.c2lnbmF0dXJl")
}

fn azure_ok() -> Canned {
    Canned::json(200, json!({"token_type": "Bearer", "expires_in": 3599, "access_token": azure_jwt()}))
}

fn sts_ok() -> Canned {
    Canned::json(
        200,
        json!({"access_token": "ya29.federated", "issued_token_type": "urn:ietf:params:oauth:token-type:access_token", "token_type": "Bearer", "expires_in": 3599}),
    )
}

/// IAM's answer: the token with an expiry one hour from now, in IAM's exact format.
fn iam_ok() -> (Canned, String) {
    let expire = wif::core::clock::rfc3339(now() + 3600);
    (Canned::json(200, json!({"accessToken": FINAL, "expireTime": expire})), expire)
}

fn slow(mut c: Canned, secs: u64) -> Canned {
    c.delay = Duration::from_secs(secs);
    c
}

/// Azure AD, STS and IAM Credentials on one loopback port, routed by path.
fn remote(azure: Vec<Canned>, sts: Vec<Canned>, iam: Vec<Canned>) -> RoutedServer {
    RoutedServer::start(vec![("/oauth2/", azure), ("/v1/token", sts), (":generateAccessToken", iam)])
}

/// Requests per service: (azure, sts, iam).
fn counts(srv: &RoutedServer) -> (usize, usize, usize) {
    let reqs = srv.requests();
    let n = |p: &str| reqs.iter().filter(|r| r.path.contains(p)).count();
    (n("/oauth2/"), n("/v1/token"), n(":generateAccessToken"))
}

/// Every step's settings, pointing all remotes at `url`.
fn settings(url: &str) -> serde_json::Map<String, Value> {
    let cfg = json!({
        "client_id": APP,
        "tenant_id": TENANT,
        "key": pki_file("app-rsa.key"),
        "cert": pki_file("app-rsa.crt"),
        "authority": url,
        "azure_scope": "api://wif/.default",
        "sts_audience": AUDIENCE,
        "sts_token_url": format!("{url}/v1/token"),
        "service_account": SA,
        "iam_endpoint": url,
        "timeout": "10s",
        "retries": 0
    });
    cfg.as_object().unwrap().clone()
}

/// A config file holding every step's settings.
fn config(dir: &Path, url: &str) -> PathBuf {
    let p = dir.join("wif.json");
    std::fs::write(&p, serde_json::to_vec_pretty(&settings(url)).unwrap()).unwrap();
    p
}

/// wif-refresh with a clean WIF_* environment and the built binaries.
fn refresh(cfg: &Path, token: &Path, extra: &[&str]) -> std::process::Command {
    let mut c = std::process::Command::new(script());
    for (k, _) in std::env::vars() {
        if k.starts_with("WIF_") {
            c.env_remove(k);
        }
    }
    c.arg("--config").arg(cfg).arg("--token-out").arg(token).args(["--bin-dir", &bin_dir()]).args(extra);
    c.stdin(std::process::Stdio::null());
    c
}

fn run(mut c: std::process::Command) -> std::process::Output {
    c.output().expect("running wif-refresh")
}

fn meta(token: &Path) -> Value {
    let mut p = token.as_os_str().to_owned();
    p.push(".meta.json");
    serde_json::from_slice(&std::fs::read(PathBuf::from(p)).expect("meta file")).expect("meta is JSON")
}

fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn refresh_writes_the_token_then_skips_while_it_is_fresh() {
    let (iam, expire) = iam_ok();
    let srv = remote(vec![azure_ok()], vec![sts_ok()], vec![iam]);
    let dir = tempdir();
    let cfg = config(dir.path(), &srv.url);
    let token = dir.path().join("wif_token.txt");

    let out = run(refresh(&cfg, &token, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "the document (with its tokens) never reaches stdout");
    assert_eq!(std::fs::read(&token).unwrap(), FINAL.as_bytes());
    assert_eq!(mode(&token), 0o600);
    let m = meta(&token);
    assert_eq!(m["expires_at"], expire.as_str());
    assert_eq!(m["written_by"], "wif-impersonate");
    assert_eq!(m["bytes"], FINAL.len());
    // The one summary line names the file and the expiry; no token on stderr.
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("wif-refresh: refreshed ") && err.contains(&expire), "{err}");
    assert!(!err.contains("ya29"), "{err}");
    // The steps were wired together: each got the previous step's token.
    let reqs = srv.requests();
    assert_eq!(counts(&srv), (1, 1, 1));
    assert_eq!(reqs[0].path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(reqs[0].field("client_id").as_deref(), Some(APP));
    assert!(reqs[1].field("subject_token").unwrap().starts_with("eyJ"));
    assert_eq!(reqs[1].field("audience").as_deref(), Some(AUDIENCE));
    assert_eq!(reqs[2].path, format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken"));
    assert_eq!(reqs[2].header("authorization"), Some("Bearer ya29.federated"));

    // Fresh (an hour left, default --min-ttl 15m): nothing is sent, nothing rewritten.
    let written_at = m["written_at"].clone();
    let out = run(refresh(&cfg, &token, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("is fresh until"), "{}", stderr(&out));
    assert_eq!(counts(&srv), (1, 1, 1), "a fresh token means zero requests");
    assert_eq!(meta(&token)["written_at"], written_at);
    let out = run(refresh(&cfg, &token, &["--quiet", "--min-ttl", "50m"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(out.stderr.is_empty(), "--quiet: {}", stderr(&out));
    assert_eq!(counts(&srv), (1, 1, 1));

    // The margin follows the token's real expiry: asking for more than it has left refreshes.
    let out = run(refresh(&cfg, &token, &["--min-ttl", "1h30m"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(counts(&srv), (2, 2, 2));
    // So does a token whose metadata does not belong to it.
    std::fs::write(&token, "hand-edited").unwrap();
    let out = run(refresh(&cfg, &token, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(counts(&srv), (3, 3, 3));
    assert_eq!(std::fs::read(&token).unwrap(), FINAL.as_bytes());
}

#[test]
fn without_a_config_file_the_steps_read_wif_env_and_may_skip_impersonation() {
    let srv = remote(vec![azure_ok()], vec![sts_ok()], vec![iam_ok().0]);
    let dir = tempdir();
    let token = dir.path().join("wif_token.txt");
    let mut c = std::process::Command::new(script());
    c.arg("--token-out").arg(&token).args(["--bin-dir", &bin_dir(), "--no-impersonate"]);
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WIF_")) {
        c.env_remove(k);
    }
    // Not service_account: wif-sts reads WIF_SERVICE_ACCOUNT for --service-account, which
    // clap only allows with --print-credential-config (lib/sts.rs), so it exits 2.
    for (k, v) in settings(&srv.url).into_iter().filter(|(k, _)| k != "service_account") {
        let v = v.as_str().map(str::to_string).unwrap_or_else(|| v.to_string());
        c.env(format!("WIF_{}", k.to_uppercase()), v);
    }
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(&token).unwrap(), b"ya29.federated");
    assert_eq!(meta(&token)["written_by"], "wif-sts");
    assert_eq!(counts(&srv), (1, 1, 0), "wif-impersonate never ran");
}

#[test]
fn the_key_comes_from_the_environment_as_the_systemd_unit_sets_it() {
    // wif-refresh.service: the config names /etc/wif/app.key, WIF_KEY=%d/app.key overrides it.
    let srv = remote(vec![azure_ok()], vec![sts_ok()], vec![iam_ok().0]);
    let dir = tempdir();
    let mut cfg = settings(&srv.url);
    cfg.insert("key".into(), json!("/nonexistent/app.key"));
    let cfg_path = dir.path().join("wif.json");
    std::fs::write(&cfg_path, serde_json::to_vec(&cfg).unwrap()).unwrap();
    let token = dir.path().join("wif_token.txt");
    let out = run(refresh(&cfg_path, &token, &[]));
    assert_eq!(out.status.code(), Some(6), "the config's key alone fails: {}", stderr(&out));
    let mut c = refresh(&cfg_path, &token, &[]);
    c.env("WIF_KEY", pki_file("app-rsa.key"));
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(std::fs::read(&token).unwrap(), FINAL.as_bytes());
}

#[test]
fn concurrent_runs_exchange_only_once() {
    // The first run is slow at Azure, so the others start while it holds the lock.
    let (iam, _) = iam_ok();
    let srv = remote(vec![slow(azure_ok(), 5)], vec![sts_ok()], vec![iam]);
    let dir = tempdir();
    let cfg = config(dir.path(), &srv.url);
    let token = dir.path().join("wif_token.txt");
    let quiet_output = |mut c: std::process::Command| {
        c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
        c.spawn().expect("spawn wif-refresh")
    };
    let first = quiet_output(refresh(&cfg, &token, &[]));
    assert!(srv.wait_for_requests(1, 20), "the first run reached Azure");

    // Without --wait: exits 0 at once, saying why.
    let started = Instant::now();
    let second = run(refresh(&cfg, &token, &[]));
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    assert!(stderr(&second).contains("another run is in progress"), "{}", stderr(&second));
    assert!(started.elapsed() < Duration::from_secs(4), "did not wait for the lock");
    // With --wait: waits for the first run, then finds the token fresh.
    let third = quiet_output(refresh(&cfg, &token, &["--wait"]));

    let first = first.wait_with_output().unwrap();
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let third = third.wait_with_output().unwrap();
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    assert!(stderr(&third).contains("is fresh until"), "{}", stderr(&third));
    assert_eq!(counts(&srv), (1, 1, 1), "exactly one exchange");
    assert_eq!(std::fs::read(&token).unwrap(), FINAL.as_bytes());
}

#[test]
fn a_refused_exchange_keeps_the_old_token_and_exits_4() {
    let (iam, _) = iam_ok();
    let refused = Canned::json(
        400,
        json!({"error": "invalid_grant", "error_description": "The audience in ID Token [api://wif] does not match the expected audience."}),
    );
    let srv = remote(vec![azure_ok()], vec![sts_ok(), refused], vec![iam]);
    let dir = tempdir();
    let cfg = config(dir.path(), &srv.url);
    let token = dir.path().join("wif_token.txt");
    let out = run(refresh(&cfg, &token, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let (before, meta_before) = (std::fs::read(&token).unwrap(), meta(&token));

    // Ask for more than the token has left, so the run must exchange; STS refuses.
    let out = run(refresh(&cfg, &token, &["--min-ttl", "2h"]));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_eq!(std::fs::read(&token).unwrap(), before, "the old token is byte-identical");
    assert_eq!(meta(&token), meta_before);
    assert_eq!(counts(&srv), (2, 2, 1), "wif-impersonate never ran");
    let err = stderr(&out);
    assert!(err.contains("wif-sts: ") && err.contains("invalid_grant"), "{err}");
    assert!(!err.contains("wif-impersonate:"), "the steps after the failure stay silent: {err}");
    let last = err.lines().last().unwrap();
    assert!(last.starts_with("wif-refresh: wif-sts failed (exit 4); kept the previous token (expires "), "{last}");
    assert!(!err.contains("ya29") && out.stdout.is_empty(), "no token leaks: {err}");
}

#[test]
fn a_dead_remote_exits_5_and_writes_nothing() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempdir();
    let cfg = config(dir.path(), &format!("http://127.0.0.1:{port}"));
    let token = dir.path().join("wif_token.txt");
    let out = run(refresh(&cfg, &token, &[]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("wif-azure: "), "{err}");
    assert!(err.lines().last().unwrap().contains("wif-azure failed (exit 5); there is no previous token"), "{err}");
    assert!(!token.exists());

    // An expired previous token is kept as it is, and the summary says it has expired.
    let past = wif::core::clock::rfc3339(now() - 60);
    std::fs::write(&token, "old").unwrap();
    let m = json!({"expires_at": past, "token_type": "access_token", "written_at": past,
                   "written_by": "wif-impersonate", "bytes": 3, "sha256": wif::core::keys::sha256_hex(b"old")});
    std::fs::write(dir.path().join("wif_token.txt.meta.json"), m.to_string()).unwrap();
    // Trusted whatever the umask: nobody else can write them.
    set_mode(&token, 0o600);
    set_mode(&dir.path().join("wif_token.txt.meta.json"), 0o644);
    let out = run(refresh(&cfg, &token, &[]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let last = stderr(&out).lines().last().unwrap().to_string();
    assert_eq!(last, format!("wif-refresh: wif-azure failed (exit 5); the previous token expired at {past}"));
    assert_eq!(std::fs::read(&token).unwrap(), b"old");
}

#[test]
fn a_killed_run_leaves_a_lock_file_that_does_not_block() {
    use std::os::unix::process::CommandExt;
    let (iam, _) = iam_ok();
    let srv = remote(vec![slow(azure_ok(), 30), azure_ok()], vec![sts_ok()], vec![iam]);
    let dir = tempdir();
    let cfg = config(dir.path(), &srv.url);
    let token = dir.path().join("wif_token.txt");
    let mut c = refresh(&cfg, &token, &[]);
    c.process_group(0).stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    let mut child = c.spawn().unwrap();
    assert!(srv.wait_for_requests(1, 20), "the first run reached Azure");
    // Kill the run and its steps, as a reboot or the OOM killer would.
    let st = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{}", child.id())]).status().unwrap();
    assert!(st.success());
    let _ = child.wait();
    assert!(dir.path().join("wif_token.txt.lock").exists(), "the lock file stays behind");

    let started = Instant::now();
    let out = run(refresh(&cfg, &token, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("refreshed"), "{}", stderr(&out));
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(std::fs::read(&token).unwrap(), FINAL.as_bytes());
}

#[test]
fn usage_help_and_version() {
    let out = run({
        let mut c = std::process::Command::new(script());
        c.arg("--help");
        c
    });
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in ["--config", "--token-out", "--min-ttl", "--lock", "--wait", "--bin-dir", "--quiet", "--version"] {
        assert!(help.contains(flag), "--help mentions {flag}");
    }
    let out = std::process::Command::new(script()).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("wif-refresh {}", env!("CARGO_PKG_VERSION")));

    let dir = tempdir();
    let cfg = config(dir.path(), "http://127.0.0.1:9");
    let token = dir.path().join("t.txt");
    let cases: Vec<(std::process::Command, i32, &str)> = vec![
        (
            {
                let mut c = std::process::Command::new(script());
                c.args(["--config", &cfg.display().to_string()]);
                c
            },
            2,
            "--token-out FILE is required",
        ),
        (refresh(&cfg, &token, &["--min-ttl", "soon"]), 2, "is not a duration"),
        (refresh(&cfg, &token, &["--frobnicate"]), 2, "unexpected argument '--frobnicate'"),
        (refresh(&cfg, &token, &["--bin-dir", "/nonexistent"]), 2, "wif-sign not found"),
        (refresh(&cfg, &dir.path().join("missing/t.txt"), &[]), 6, "cannot open the lock file"),
        (refresh(&dir.path().join("none.json"), &token, &[]), 6, "cannot read the config file"),
    ];
    for (c, code, needle) in cases {
        let out = run(c);
        assert_eq!(out.status.code(), Some(code), "{needle}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
    }
}

/// A unit file as (section, key, value) triples, in order; comments and blank lines dropped.
fn unit(name: &str) -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(root().join("scripts/systemd").join(name)).expect("unit file");
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';')) {
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = s.to_string();
        } else {
            let (k, v) = line.split_once('=').unwrap_or_else(|| panic!("{name}: not key=value: {line}"));
            out.push((section.clone(), k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn values<'a>(u: &'a [(String, String, String)], section: &str, key: &str) -> Vec<&'a str> {
    u.iter().filter(|(s, k, _)| s == section && k == key).map(|(_, _, v)| v.as_str()).collect()
}

fn one<'a>(u: &'a [(String, String, String)], section: &str, key: &str) -> &'a str {
    let v = values(u, section, key);
    assert_eq!(v.len(), 1, "exactly one {key}= in [{section}]: {v:?}");
    v[0]
}

/// The value after `flag` in a command line.
fn flag_value<'a>(words: &[&'a str], flag: &str) -> &'a str {
    let i = words.iter().position(|w| *w == flag).unwrap_or_else(|| panic!("{flag} in {words:?}"));
    words[i + 1]
}

/// The long flags of a command line are all documented by the tool's --help.
fn assert_flags_exist(words: &[&str], help: &str) {
    for w in words.iter().filter(|w| w.starts_with("--")) {
        assert!(help.contains(w), "{w} is not a flag of {}", words[0]);
    }
}

fn refresh_help() -> String {
    let out = std::process::Command::new(script()).arg("--help").output().unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn systemd_units_are_hardened_and_agree_with_the_tools() {
    let hardening = [
        ("DynamicUser", "yes"),
        ("User", "wif"),
        ("StateDirectory", "wif"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("RestrictSUIDSGID", "yes"),
    ];
    let serve = unit("wif-serve.service");
    let refresh = unit("wif-refresh.service");
    for (name, u) in [("wif-serve.service", &serve), ("wif-refresh.service", &refresh)] {
        for (k, v) in hardening {
            assert_eq!(one(u, "Service", k), v, "{name}: {k}");
        }
        // Every credential a command names (%d/NAME) is loaded, and every loaded one is used.
        let loaded: Vec<&str> =
            values(u, "Service", "LoadCredential").iter().map(|v| v.split(':').next().unwrap()).collect();
        let text: String = u.iter().map(|(_, _, v)| format!("{v} ")).collect();
        let used: Vec<&str> = text.split_whitespace().filter_map(|w| w.split("%d/").nth(1)).collect();
        assert!(!loaded.is_empty(), "{name} loads its secrets as credentials");
        let (mut l, mut s) = (loaded.clone(), used.clone());
        l.sort_unstable();
        s.sort_unstable();
        assert_eq!(l, s, "{name}: credentials loaded vs used");
    }

    // The refresh: a oneshot running the script with flags it has.
    assert_eq!(one(&refresh, "Service", "Type"), "oneshot");
    let exec = one(&refresh, "Service", "ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[0], "/usr/local/bin/wif-refresh");
    assert_flags_exist(&words, &refresh_help());
    let token = flag_value(&words, "--token-out");
    let key_env = one(&refresh, "Service", "Environment");
    assert!(key_env.starts_with("WIF_KEY=%d/"), "the key comes from the credential: {key_env}");

    // The server: reloadable, restarted on failure, serving the very file the refresh writes.
    assert_eq!(one(&serve, "Service", "ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one(&serve, "Service", "Restart"), "on-failure");
    let exec = one(&serve, "Service", "ExecStart");
    let words: Vec<&str> = exec.split_whitespace().collect();
    assert_eq!(words[0], "/usr/local/bin/wif-serve");
    assert_eq!(flag_value(&words, "--token"), token, "wif-serve publishes what wif-refresh writes");
    let serve_bin = Path::new(&bin_dir()).join("wif-serve");
    let cargo_toml = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let serve_built = cargo_toml.contains("name = \"wif-serve\"") && serve_bin.exists();
    let serve_help = if serve_built {
        String::from_utf8(std::process::Command::new(&serve_bin).arg("--help").output().unwrap().stdout).unwrap()
    } else {
        // Not built in this tree yet: hold the unit to the CLI contract in DESIGN.md.
        "--listen --cert --key --client-ca --token".to_string()
    };
    assert_flags_exist(&words, &serve_help);
    for flag in ["--listen", "--cert", "--key", "--client-ca", "--token"] {
        assert!(words.contains(&flag), "wif-serve.service gives {flag}");
    }
    assert_eq!(one(&serve, "Install", "WantedBy"), "multi-user.target");

    // The timer fires often; the script decides whether the token needs renewing.
    let timer = unit("wif-refresh.timer");
    assert_eq!(one(&timer, "Timer", "OnUnitActiveSec"), "5min");
    assert!(!one(&timer, "Timer", "OnBootSec").is_empty());
    assert!(!one(&timer, "Timer", "RandomizedDelaySec").is_empty());
    assert_eq!(one(&timer, "Timer", "Unit"), "wif-refresh.service");
    assert_eq!(one(&timer, "Install", "WantedBy"), "timers.target");

    // The cron alternative: every 5 minutes as user wif, same flags and token file.
    let cron = std::fs::read_to_string(root().join("scripts/cron/wif-refresh.cron")).unwrap();
    let line = cron.lines().find(|l| l.starts_with("*/5 ")).expect("a */5 cron line");
    let words: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(&words[..6], ["*/5", "*", "*", "*", "*", "wif"]);
    assert_eq!(words[6], "/usr/local/bin/wif-refresh");
    assert_flags_exist(&words[6..], &refresh_help());
    assert_eq!(flag_value(&words, "--token-out"), token);

    // systemd's own check (the binaries pointed at built ones).
    if needs("systemd-analyze", runs("systemd-analyze", "--version"), &apt("systemd")) {
        let dir = tempdir();
        let serve_exe = if serve_built { serve_bin.display().to_string() } else { "/bin/true".into() };
        for name in ["wif-refresh.service", "wif-refresh.timer", "wif-serve.service"] {
            let text = std::fs::read_to_string(root().join("scripts/systemd").join(name))
                .unwrap()
                .replace("/usr/local/bin/wif-refresh", &script().display().to_string())
                .replace("/usr/local/bin/wif-serve", &serve_exe);
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let out = std::process::Command::new("systemd-analyze")
            .args(["verify", "--man=no", "wif-refresh.service", "wif-refresh.timer", "wif-serve.service"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        let err = stderr(&out);
        assert!(out.status.success() && !err.contains("wif-"), "systemd-analyze verify: {err}");
    }
}

#[test]
fn the_script_is_lint_clean() {
    // bash's own parser always, shellcheck where installed (required in CI).
    let out = std::process::Command::new("bash").arg("-n").arg(script()).output().unwrap();
    assert!(out.status.success(), "bash -n: {}", stderr(&out));
    if needs("shellcheck", runs("shellcheck", "--version"), &apt("shellcheck")) {
        let out = std::process::Command::new("shellcheck").arg(script()).output().unwrap();
        assert!(out.status.success(), "shellcheck:\n{}", String::from_utf8_lossy(&out.stdout));
    }
    // The manual page documents every option --help lists, and lints clean.
    let page_path = root().join("man/wif-refresh.1");
    let page = std::fs::read_to_string(&page_path).unwrap();
    let help = refresh_help();
    let options = help.split(|c: char| c.is_whitespace() || c == ',').filter(|w| w.starts_with("--") && w.len() > 2);
    for opt in options {
        assert!(page.contains(&opt.replace('-', "\\-")), "wif-refresh.1 documents {opt}");
    }
    if needs("mandoc", std::process::Command::new("mandoc").arg("-V").output().is_ok(), &apt("mandoc")) {
        let out = std::process::Command::new("mandoc").args(["-Tlint", "-Wwarning"]).arg(&page_path).output().unwrap();
        let report = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && report.trim().is_empty(), "mandoc: {report}");
    }
}

/// The textfile, read with prometheus_client's parser and the strict one.
fn textfile(path: &Path) -> crate::common::prom::Samples {
    let text = std::fs::read_to_string(path).expect("the metrics file");
    crate::common::prom::parse_both(&text)
}

#[test]
fn the_textfile_records_good_skipped_and_failed_runs() {
    let (iam, expire) = iam_ok();
    let refused = Canned::json(400, json!({"error": "invalid_grant", "error_description": "audience mismatch"}));
    let srv = remote(vec![azure_ok()], vec![sts_ok(), refused], vec![iam]);
    let dir = tempdir();
    let cfg = config(dir.path(), &srv.url);
    let token = dir.path().join("wif_token.txt");
    let prom_dir = dir.path().join("textfile_collector");
    std::fs::create_dir(&prom_dir).unwrap();
    let prom = prom_dir.join("wif_refresh.prom");
    let file_label = token.display().to_string();
    let get = |s: &crate::common::prom::Samples, name: &str| s.get(name, &[("token_file", &file_label)]);

    // A good run.
    let before = now();
    let out = run(refresh(&cfg, &token, &["--textfile", prom.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = textfile(&prom);
    let ran = get(&s, "wif_refresh_last_run_timestamp_seconds");
    assert!((before as f64..=now() as f64).contains(&ran), "{ran}");
    assert_eq!(get(&s, "wif_refresh_last_success_timestamp_seconds"), ran);
    assert_eq!(get(&s, "wif_refresh_last_exit_code"), 0.0);
    assert_eq!(get(&s, "wif_refresh_skipped_fresh"), 0.0);
    let exp = wif::core::clock::parse_rfc3339(&expire).unwrap() as f64;
    assert_eq!(get(&s, "wif_refresh_token_expiry_timestamp_seconds"), exp);
    let ttl = get(&s, "wif_refresh_token_ttl_seconds");
    assert!((3500.0..=3600.0).contains(&ttl), "{ttl}");
    assert!(s.types.values().all(|t| t == "gauge"), "{:?}", s.types);
    let text = std::fs::read_to_string(&prom).unwrap();
    assert!(!text.contains("ya29"), "no token in the metrics");
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&prom).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "node-exporter, another user, reads it");
    }

    // A skipped run (fresh), with the file named by the environment.
    let mut c = refresh(&cfg, &token, &[]);
    c.env("WIF_REFRESH_TEXTFILE", &prom);
    let out = run(c);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let s = textfile(&prom);
    assert_eq!(get(&s, "wif_refresh_skipped_fresh"), 1.0);
    assert_eq!(get(&s, "wif_refresh_last_exit_code"), 0.0);
    assert_eq!(counts(&srv), (1, 1, 1));

    // A failed run keeps the last success from the file before it (set far back to tell
    // it apart from this run's time) and the kept token's expiry.
    let old = std::fs::read_to_string(&prom).unwrap();
    let re_line = |l: &str| l.starts_with("wif_refresh_last_success_timestamp_seconds{");
    let edited: String = old
        .lines()
        .map(|l| if re_line(l) { format!("{} 1700000000", l.rsplit_once(' ').unwrap().0) } else { l.to_string() })
        .map(|l| l + "\n")
        .collect();
    std::fs::write(&prom, edited).unwrap();
    let out = run(refresh(&cfg, &token, &["--min-ttl", "2h", "--textfile", prom.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let s = textfile(&prom);
    assert_eq!(get(&s, "wif_refresh_last_exit_code"), 4.0);
    assert_eq!(get(&s, "wif_refresh_last_success_timestamp_seconds"), 1_700_000_000.0);
    assert!(get(&s, "wif_refresh_last_run_timestamp_seconds") >= ran);
    assert_eq!(get(&s, "wif_refresh_skipped_fresh"), 0.0);
    assert_eq!(get(&s, "wif_refresh_token_expiry_timestamp_seconds"), exp, "the kept token");
    // Only the .prom file is left in the collector's directory: no temporary files.
    let names: Vec<String> =
        std::fs::read_dir(&prom_dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(names, ["wif_refresh.prom"]);

    // A first run that fails: no success yet (0), no token metrics.
    let fresh_prom = prom_dir.join("other.prom");
    let out = run(refresh(
        &config(dir.path(), "http://127.0.0.1:9"),
        &dir.path().join("none.txt"),
        &["--textfile", fresh_prom.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    let s = textfile(&fresh_prom);
    let none_label = dir.path().join("none.txt").display().to_string();
    assert_eq!(s.get("wif_refresh_last_success_timestamp_seconds", &[("token_file", &none_label)]), 0.0);
    assert_eq!(s.get("wif_refresh_last_exit_code", &[("token_file", &none_label)]), 5.0);
    assert!(!s.has("wif_refresh_token_expiry_timestamp_seconds") && !s.has("wif_refresh_token_ttl_seconds"));

    // Only .prom files are read by node-exporter: anything else is a usage error.
    let out = run(refresh(&cfg, &token, &["--textfile", dir.path().join("m.txt").to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("must end in .prom"), "{}", stderr(&out));
}

/// A config whose remotes are all dead: a run that gets past the lock exits 5.
fn dead_config(dir: &Path) -> PathBuf {
    config(dir, "http://127.0.0.1:9")
}

fn lock_of(token: &Path) -> PathBuf {
    let mut p = token.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Holds the lock at `lock` from this test process (another process to the script), its
/// time set as when a run took it `age` ago. Released when the file is dropped.
fn hold_lock(lock: &Path, age: Duration) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let f = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(lock).unwrap();
    f.set_modified(std::time::SystemTime::now() - age).unwrap();
    rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive).unwrap();
    f
}

#[test]
fn a_symlink_at_the_lock_path_is_refused_and_its_target_never_created() {
    let dir = tempdir();
    let cfg = dead_config(dir.path());
    let token = dir.path().join("wif_token.txt");
    let target = dir.path().join("a-file-of-the-attackers-choosing");
    std::os::unix::fs::symlink(&target, lock_of(&token)).unwrap();
    let out = run(refresh(&cfg, &token, &[]));
    assert!(!target.exists(), "the link's target was created: {}", stderr(&out));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("wif_token.txt.lock is a symbolic link; refusing to follow it"), "{err}");
    // A link to an existing file: refused as well, and the file is left alone.
    std::fs::write(&target, "precious").unwrap();
    let out = run(refresh(&cfg, &token, &["--wait"]));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    assert!(!token.exists(), "no step ran");
}

#[test]
fn a_lock_held_longer_than_the_lock_timeout_is_an_error_not_a_run_in_progress() {
    let dir = tempdir();
    let cfg = dead_config(dir.path());
    let token = dir.path().join("wif_token.txt");
    let lock = lock_of(&token);
    let held = hold_lock(&lock, Duration::from_secs(3600));
    let out = run(refresh(&cfg, &token, &["--textfile", &dir.path().join("m.prom").display().to_string()]));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("wif_token.txt.lock has been held for 1h00m, more than --lock-timeout 10m"), "{err}");
    assert!(err.contains("fuser -v ") && err.contains("lsof "), "says how to find the holder: {err}");
    let label = token.display().to_string();
    let code = textfile(&dir.path().join("m.prom")).get("wif_refresh_last_exit_code", &[("token_file", &label)]);
    assert_eq!(code, 6.0, "alerts can see it");
    // Held for less than --lock-timeout: a run in progress, exit 0 as before.
    let out = run(refresh(&cfg, &token, &["--lock-timeout", "2h"]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("another run is in progress"), "{}", stderr(&out));
    // --wait waits only until the lock has been held for --lock-timeout.
    held.set_modified(std::time::SystemTime::now() - Duration::from_secs(598)).unwrap();
    let started = Instant::now();
    let out = run(refresh(&cfg, &token, &["--wait"]));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("more than --lock-timeout 10m"), "{}", stderr(&out));
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_secs(15), "{waited:?}");
    drop(held);
    assert!(!token.exists(), "no step ran");
}

#[test]
fn a_lock_file_not_ours_alone_is_refused_even_when_held() {
    for (spoil, why) in plantings("a_lock_file_not_ours_alone_is_refused_even_when_held") {
        let dir = tempdir();
        let cfg = dead_config(dir.path());
        let token = dir.path().join("wif_token.txt");
        let lock = lock_of(&token);
        std::fs::write(&lock, "").unwrap();
        spoil(&lock);
        for held in [false, true] {
            let _holder = held.then(|| hold_lock(&lock, Duration::ZERO));
            let out = run(refresh(&cfg, &token, &[]));
            assert_eq!(out.status.code(), Some(6), "held {held}: {}", stderr(&out));
            let err = stderr(&out);
            assert!(err.contains("the lock file ") && err.contains(&why) && err.contains("refusing it"), "{err}");
        }
    }
}

#[test]
fn a_new_lock_file_is_ours_alone() {
    let dir = tempdir();
    let cfg = dead_config(dir.path());
    let token = dir.path().join("wif_token.txt");
    let out = run(refresh(&cfg, &token, &[]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(mode(&lock_of(&token)), 0o600);
}

#[test]
fn a_planted_token_is_refreshed_not_taken_as_fresh() {
    for (spoil, why) in plantings("a_planted_token_is_refreshed_not_taken_as_fresh") {
        let (iam, expire) = iam_ok();
        let srv = remote(vec![azure_ok()], vec![sts_ok()], vec![iam]);
        let dir = tempdir();
        let cfg = config(dir.path(), &srv.url);
        let token = dir.path().join("wif_token.txt");
        plant_pair(&token, spoil);
        let out = run(refresh(&cfg, &token, &[]));
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("warning: not using the token in ") && err.contains(&why), "{err}");
        assert!(err.contains("refreshed") && err.contains(&expire), "{err}");
        assert_eq!(std::fs::read(&token).unwrap(), FINAL.as_bytes());
        assert_eq!(counts(&srv), (1, 1, 1));
    }
}

#[test]
fn the_metadata_entry_matching_the_token_counts_top_level_or_previous() {
    let dir = tempdir();
    let cfg = dead_config(dir.path());
    let token = dir.path().join("wif_token.txt");
    std::fs::write(&token, FINAL).unwrap();
    set_mode(&token, 0o600);
    let meta_file = wif::core::files::meta_path(&token);
    let entry = |token: &str, exp: i64| {
        json!({"expires_at": wif::core::clock::rfc3339(exp), "token_type": "access_token",
               "written_at": wif::core::clock::rfc3339(now()), "written_by": "wif-impersonate",
               "bytes": token.len(), "sha256": wif::core::keys::sha256_hex(token.as_bytes())})
    };
    let write_meta = |top: Value, previous: Value, previous_first: bool| {
        let mut m = serde_json::Map::new();
        if previous_first {
            m.insert("previous".into(), previous.clone());
        }
        m.extend(top.as_object().unwrap().clone());
        if !previous_first {
            m.insert("previous".into(), previous);
        }
        std::fs::write(&meta_file, serde_json::to_vec_pretty(&m).unwrap()).unwrap();
        set_mode(&meta_file, 0o644);
    };
    // A run killed between its two renames: the new metadata (for a token that never
    // arrived, here already expired) describes the token in the file as "previous".
    let in_an_hour = now() + 3600;
    write_meta(entry("ya29.the-next-token", now() - 60), entry(FINAL, in_an_hour), false);
    let out = run(refresh(&cfg, &token, &[]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let fresh = format!("is fresh until {}", wif::core::clock::rfc3339(in_an_hour));
    assert!(stderr(&out).contains(&fresh), "{}", stderr(&out));
    // The nested fields are never taken for the top-level ones, wherever they stand: here
    // the top-level entry lives long but describes another token; this one has 5 minutes.
    let soon = now() + 300;
    write_meta(entry("ya29.the-next-token", in_an_hour), entry(FINAL, soon), true);
    let out = run(refresh(&cfg, &token, &[]));
    assert_eq!(out.status.code(), Some(5), "refreshed (and the remote is dead): {}", stderr(&out));
    let last = stderr(&out).lines().last().unwrap().to_string();
    let kept = format!("kept the previous token (expires {}", wif::core::clock::rfc3339(soon));
    assert!(last.contains(&kept), "{last}");
    // An entry for neither: not fresh, whatever the entries say.
    write_meta(entry("ya29.one", in_an_hour), entry("ya29.two", in_an_hour), false);
    let out = run(refresh(&cfg, &token, &[]));
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("whose expiry is unknown"), "{}", stderr(&out));
}

#[test]
fn a_fifo_swapped_in_at_the_lock_or_token_never_hangs_a_run() {
    let dir = tempdir();
    let cfg = dead_config(dir.path());
    let token = dir.path().join("wif_token.txt");
    let (lock, fifo) = (lock_of(&token), dir.path().join("fifo"));
    let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    // Someone flips the lock path and the token path between a regular file and a link to a
    // FIFO, as fast as they can, while runs start: a check-then-open race. Every run must end
    // (refused, or failed for the dead config), never block opening a FIFO.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flipper = {
        let (stop, lock, token, fifo) = (stop.clone(), lock.clone(), token.clone(), fifo.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for p in [&lock, &token] {
                    let _ = std::fs::remove_file(p);
                    let _ = std::fs::write(p, "");
                    let _ = std::fs::remove_file(p);
                    let _ = std::os::unix::fs::symlink(&fifo, p);
                }
            }
        })
    };
    let mut codes = Vec::new();
    for _ in 0..30 {
        let mut c = refresh(&cfg, &token, &[]);
        c.stderr(std::process::Stdio::null());
        let mut child = c.spawn().unwrap();
        let started = std::time::Instant::now();
        let code = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s.code();
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
                panic!("a run hung on the swapped-in FIFO");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        codes.push(code);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    flipper.join().unwrap();
    assert!(codes.iter().all(|c| c.is_some_and(|c| c != 0)), "{codes:?}");
}

#[test]
fn root_keeps_its_lock_only_where_others_cannot_swap_it() {
    use std::os::unix::fs::PermissionsExt;
    if !root_available("root_keeps_its_lock_only_where_others_cannot_swap_it") {
        return;
    }
    let dir = tempdir();
    let cfg = dead_config(dir.path());
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let token = shared.join("wif_token.txt");
    let out = run(refresh(&cfg, &token, &[]));
    assert_eq!(out.status.code(), Some(6), "{}", stderr(&out));
    assert!(stderr(&out).contains("can be written by others (mode 777)"), "{}", stderr(&out));
    assert!(!lock_of(&token).exists());
    // With the sticky bit (as /tmp), others cannot replace root's files: allowed.
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o1777)).unwrap();
    let out = run(refresh(&cfg, &token, &[]));
    assert!(!stderr(&out).contains("can be written by others"), "{}", stderr(&out));
    assert!(lock_of(&token).exists());
}
