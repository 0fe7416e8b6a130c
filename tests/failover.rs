//! scripts/wif-refresh --path: failover between the azure path (wif-sign | wif-azure |
//! wif-sts | wif-impersonate) and the x509 path (wif-sts --x509 | wif-impersonate) against
//! the real wif-emulate, its faults injected per endpoint (`--fault SERVICE=KIND`). Each run
//! says which path produced the token and why the others failed, in its summary line and
//! in the textfile metrics (read with the official Python parser as well as the strict one).

use crate::common::prom::Samples;
use crate::common::*;
use crate::emulator::{example, provider, Emu, SA};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/wif-refresh")
}

/// The directory holding the built wif-* binaries.
fn bin_dir() -> String {
    let sign = assert_cmd::cargo::cargo_bin("wif-sign");
    sign.parent().expect("binary directory").display().to_string()
}

/// The emulator of examples/emulator.json on plain HTTP and TLS (the test PKI's server
/// certificate; client certificates asked for), with `faults` (`azure=unavailable`, …).
fn emulator(faults: &[&str]) -> Emu {
    let (cert, key) = (pki_file("server-chain.crt"), pki_file("server.key"));
    let mut args = vec!["--tls-listen", "127.0.0.1:0", "--tls-cert", &cert, "--tls-key", &key];
    for f in faults {
        args.extend(["--fault", f]);
    }
    Emu::start(&example(), &args)
}

fn tls_url(emu: &Emu) -> String {
    emu.tls_url.clone().expect("the emulator listens with TLS")
}

/// The azure path's settings: the registered app's key, Azure AD, STS and IAM of `emu`.
fn azure_settings(emu: &Emu) -> Value {
    let azure = &example()["azure"];
    json!({
        "authority": emu.url,
        "tenant_id": azure["tenant"],
        "client_id": azure["apps"][0]["client_id"],
        "key": pki_file("app-rsa.key"),
        "cert": pki_file("app-rsa.crt"),
        "azure_scope": "api://wif-gcp/.default",
        "sts_audience": provider("azure"),
        "sts_token_url": format!("{}/v1/token", emu.url),
        "service_account": SA,
        "iam_endpoint": emu.url,
        "timeout": "10s",
        "retries": 0
    })
}

/// The x509 path's settings: the workload certificate (CN wif-client) and its chain, STS
/// and IAM over mutual TLS at `emu`'s TLS listener.
fn x509_settings(emu: &Emu) -> Value {
    let tls = tls_url(emu);
    json!({
        "x509_cert": pki_file("client.crt"),
        "x509_key": pki_file("client.key"),
        "trust_chain": pki_file("intermediate-ca.crt"),
        "sts_audience": provider("x509"),
        "sts_token_url": format!("{tls}/v1/token"),
        "ca_file": pki_file("ca-chain.crt"),
        "service_account": SA,
        "iam_endpoint": tls,
        "timeout": "10s",
        "retries": 0
    })
}

fn write_config(dir: &Path, name: &str, settings: &Value) -> String {
    let p = dir.join(name);
    std::fs::write(&p, serde_json::to_vec_pretty(settings).unwrap()).unwrap();
    p.display().to_string()
}

/// A run's files: the token, the metrics, and one config file per path.
struct Setup {
    dir: tempfile::TempDir,
    token: PathBuf,
    prom: PathBuf,
    azure: String,
    x509: String,
}

impl Setup {
    fn new(emu: &Emu) -> Setup {
        let dir = tempdir();
        let azure = write_config(dir.path(), "azure.json", &azure_settings(emu));
        let x509 = write_config(dir.path(), "x509.json", &x509_settings(emu));
        let (token, prom) = (dir.path().join("wif_token.txt"), dir.path().join("wif_refresh.prom"));
        Setup { dir, token, prom, azure, x509 }
    }

    /// Points both paths' configs at another emulator, keeping the token and metrics.
    fn retarget(&self, emu: &Emu) {
        write_config(self.dir.path(), "azure.json", &azure_settings(emu));
        write_config(self.dir.path(), "x509.json", &x509_settings(emu));
    }

    /// `--path azure=… --path x509=…` in the order of `order`.
    fn paths(&self, order: &[&str]) -> Vec<String> {
        let config = |name: &str| if name == "azure" { &self.azure } else { &self.x509 };
        order.iter().flat_map(|n| ["--path".to_string(), format!("{n}={}", config(n))]).collect()
    }

    /// wif-refresh with a clean WIF_* environment, the built binaries and the metrics file.
    fn refresh(&self, args: &[String]) -> Command {
        let mut c = Command::new(script());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("WIF_")) {
            c.env_remove(k);
        }
        c.arg("--token-out").arg(&self.token).args(["--bin-dir", &bin_dir()]).arg("--textfile").arg(&self.prom);
        c.args(args).stdin(Stdio::null());
        c
    }

    fn run(&self, order: &[&str], extra: &[&str]) -> Output {
        let mut args = self.paths(order);
        args.extend(extra.iter().map(|s| s.to_string()));
        self.refresh(&args).output().expect("running wif-refresh")
    }

    fn metrics(&self) -> Metrics {
        let text = std::fs::read_to_string(&self.prom).expect("the metrics file");
        assert!(!text.contains("ya29."), "no token in the metrics");
        Metrics { samples: prom::parse_both(&text), label: self.token.display().to_string() }
    }

    fn token_bytes(&self) -> Vec<u8> {
        std::fs::read(&self.token).expect("the token file")
    }

    fn meta_bytes(&self) -> Vec<u8> {
        std::fs::read(wif::core::files::meta_path(&self.token)).expect("the metadata file")
    }
}

/// The textfile's samples for one token file.
struct Metrics {
    samples: Samples,
    label: String,
}

impl Metrics {
    fn get(&self, name: &str) -> f64 {
        self.samples.get(name, &[("token_file", &self.label)])
    }

    fn path(&self, name: &str, path: &str) -> f64 {
        self.samples.get(name, &[("token_file", &self.label), ("path", path)])
    }

    /// (wif_refresh_path, wif_refresh_path_last_exit_code) of `path`.
    fn of(&self, path: &str) -> (f64, f64) {
        (self.path("wif_refresh_path", path), self.path("wif_refresh_path_last_exit_code", path))
    }
}

/// The emulator's STS exchanges by scheme: (plain HTTP = the azure path's, TLS = x509's),
/// each as (status, outcome).
fn exchanges(emu: &Emu) -> (Vec<Value>, Vec<Value>) {
    let reqs = emu.requests();
    let pick = |scheme: &str| -> Vec<Value> {
        reqs.iter().filter(|r| r["path"] == "/v1/token" && r["scheme"] == scheme).cloned().collect()
    };
    (pick("http"), pick("https"))
}

fn iam_calls(emu: &Emu) -> usize {
    emu.requests().iter().filter(|r| r["path"].as_str().unwrap_or_default().ends_with(":generateAccessToken")).count()
}

fn last_line(out: &Output) -> String {
    stderr(out).lines().last().unwrap_or_default().to_string()
}

fn assert_no_secret(out: &Output) {
    let err = stderr(out);
    assert!(!err.contains("ya29.") && !err.contains("eyJ"), "no token on stderr: {err}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

#[test]
fn azure_ad_unavailable_fails_over_to_x509() {
    let emu = emulator(&["azure=unavailable"]);
    let s = Setup::new(&emu);
    let out = s.run(&["azure", "x509"], &["--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_no_secret(&out);
    assert!(String::from_utf8(s.token_bytes()).unwrap().starts_with("ya29."));
    let err = stderr(&out);
    // The step's own error, the move to the next path, and the summary (even with --quiet:
    // a path failed).
    assert!(err.contains("wif-azure: "), "{err}");
    assert!(
        err.contains("wif-refresh: azure failed at wif-azure (exit 5: remote unavailable); trying x509\n"),
        "{err}"
    );
    let last = last_line(&out);
    let token = s.token.display().to_string();
    assert!(last.starts_with(&format!("wif-refresh: refreshed {token} via x509; expires ")), "{last}");
    assert!(last.ends_with("; azure failed at wif-azure (exit 5: remote unavailable)"), "{last}");
    assert!(!err.contains("warning"), "a remote failure is no misconfiguration: {err}");
    // The token came over the x509 path: an mTLS exchange, and no plain one (Azure AD failed
    // before STS).
    let (plain, mtls) = exchanges(&emu);
    assert!(plain.is_empty(), "{plain:?}");
    assert_eq!(mtls.len(), 1, "{mtls:?}");
    assert_eq!(mtls[0]["status"], 200);

    let m = s.metrics();
    assert_eq!(m.get("wif_refresh_last_exit_code"), 0.0);
    assert_eq!(m.of("x509"), (1.0, 0.0));
    assert_eq!(m.of("azure"), (0.0, 5.0));
    assert_eq!(m.get("wif_refresh_last_failovers"), 1.0);
    assert!(m.get("wif_refresh_token_expiry_timestamp_seconds") > wif::core::clock::now_unix() as f64);

    // The next run finds the token fresh: nothing tried (-1), the path of the token kept.
    let out = s.run(&["azure", "x509"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("is fresh until"), "{}", stderr(&out));
    let m = s.metrics();
    assert_eq!(m.of("x509"), (1.0, -1.0));
    assert_eq!(m.of("azure"), (0.0, -1.0));
    assert_eq!(m.get("wif_refresh_last_failovers"), 0.0);
    assert_eq!(m.get("wif_refresh_skipped_fresh"), 1.0);
}

#[test]
fn every_path_failing_keeps_the_old_token_and_exits_with_the_last_failure() {
    // A good token first, over the azure path.
    let good = emulator(&[]);
    let s = Setup::new(&good);
    let out = s.run(&["azure", "x509"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "one summary line: {}", stderr(&out));
    assert!(last_line(&out).contains(" via azure; expires "), "{}", stderr(&out));
    assert_eq!(s.metrics().of("azure"), (1.0, 0.0));
    assert_eq!(s.metrics().of("x509"), (0.0, -1.0), "not needed, not tried");
    let (token, meta) = (s.token_bytes(), s.meta_bytes());

    // Then Azure AD is down and STS refuses the certificate.
    let bad = emulator(&["azure=unavailable", "sts-x509=refused"]);
    s.retarget(&bad);
    let out = s.run(&["azure", "x509"], &["--force"]);
    assert_eq!(out.status.code(), Some(4), "the last path's exit code: {}", stderr(&out));
    assert_no_secret(&out);
    assert_eq!(s.token_bytes(), token, "the old token, byte for byte");
    assert_eq!(s.meta_bytes(), meta, "and its metadata");
    let err = stderr(&out);
    assert!(err.contains("wif-azure: ") && err.contains("wif-sts: "), "each step's own error: {err}");
    let last = last_line(&out);
    assert!(
        last.starts_with(
            "wif-refresh: azure failed at wif-azure (exit 5: remote unavailable); \
             x509 failed at wif-sts (exit 4: refused by the remote); kept the previous token (expires "
        ),
        "{last}"
    );
    assert_eq!(iam_calls(&bad), 0, "no path got as far as impersonation");

    let m = s.metrics();
    assert_eq!(m.get("wif_refresh_last_exit_code"), 4.0);
    assert_eq!(m.of("azure"), (1.0, 5.0), "the token in the file is still azure's");
    assert_eq!(m.of("x509"), (0.0, 4.0));
    assert_eq!(m.get("wif_refresh_last_failovers"), 1.0);
    let expiry = m.get("wif_refresh_token_expiry_timestamp_seconds");
    assert!(expiry > wif::core::clock::now_unix() as f64, "the kept token's expiry: {expiry}");
    assert!(m.get("wif_refresh_last_success_timestamp_seconds") > 0.0, "kept from the good run");

    // In the other order the exit code is azure's, the last one tried.
    let out = s.run(&["x509", "azure"], &["--force"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert_eq!(s.token_bytes(), token);
    let m = s.metrics();
    assert_eq!((m.of("x509"), m.of("azure")), ((0.0, 4.0), (1.0, 5.0)));
}

#[test]
fn refused_impersonation_is_not_retried_through_another_path() {
    // The service account's IAM policy is shared by every path: the emulator refuses a
    // service account that has no binding for the azure app's principal.
    let emu = emulator(&[]);
    let s = Setup::new(&emu);
    let mut azure = azure_settings(&emu);
    azure["service_account"] = json!("missing@wif-demo.iam.gserviceaccount.com");
    write_config(s.dir.path(), "azure.json", &azure);
    let out = s.run(&["azure", "x509"], &[]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert_no_secret(&out);
    assert!(!s.token.exists(), "no token written");
    let err = stderr(&out);
    assert!(err.contains("wif-impersonate: ") && err.contains("PERMISSION_DENIED"), "{err}");
    assert!(!err.contains("; trying x509"), "{err}");
    let last = last_line(&out);
    assert!(last.starts_with("wif-refresh: azure failed at wif-impersonate (exit 4: refused by the remote); not trying x509: the service account's IAM policy refuses impersonation whichever path federated; "), "{last}");
    assert!(last.ends_with("; there is no previous token"), "{last}");
    let (plain, mtls) = exchanges(&emu);
    assert_eq!(plain.len(), 1, "the azure path got its federated token");
    assert!(mtls.is_empty(), "the x509 path was never tried: {mtls:?}");

    let m = s.metrics();
    assert_eq!(m.get("wif_refresh_last_exit_code"), 4.0);
    assert_eq!(m.of("azure"), (0.0, 4.0));
    assert_eq!(m.of("x509"), (0.0, -1.0));
    assert_eq!(m.get("wif_refresh_last_failovers"), 0.0);
    assert!(!m.samples.has("wif_refresh_token_expiry_timestamp_seconds"));
}

#[test]
fn impersonation_unavailable_fails_over_to_the_other_path() {
    // IAM answers 503 once: not a policy verdict, and the x509 path reaches IAM at its own
    // endpoint with its own federated token.
    let emu = emulator(&["iam=unavailable:1"]);
    let s = Setup::new(&emu);
    let out = s.run(&["azure", "x509"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let last = last_line(&out);
    assert!(
        last.contains(" via x509; ") && last.ends_with("azure failed at wif-impersonate (exit 5: remote unavailable)"),
        "{last}"
    );
    assert_eq!(iam_calls(&emu), 2);
    let m = s.metrics();
    assert_eq!((m.of("azure"), m.of("x509")), ((0.0, 5.0), (1.0, 0.0)));
}

#[test]
fn x509_first_and_azure_as_its_fallback() {
    let emu = emulator(&[]);
    let s = Setup::new(&emu);
    let out = s.run(&["x509", "azure"], &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    let last = last_line(&out);
    assert!(last.contains(" via x509; expires ") && !last.contains("failed"), "{last}");
    let (plain, mtls) = exchanges(&emu);
    assert_eq!((plain.len(), mtls.len()), (0, 1), "azure was not needed");
    let m = s.metrics();
    assert_eq!((m.of("x509"), m.of("azure")), ((1.0, 0.0), (0.0, -1.0)));
    assert_eq!(m.get("wif_refresh_last_failovers"), 0.0);
    // The quiet form of a run that needed no other path says nothing.
    let out = s.run(&["x509", "azure"], &["--quiet", "--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));

    // STS unavailable for certificates: azure takes over, named in the summary.
    let down = emulator(&["sts-x509=unavailable"]);
    s.retarget(&down);
    let out = s.run(&["x509", "azure"], &["--force"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let last = last_line(&out);
    assert!(
        last.contains(" via azure; ") && last.ends_with("; x509 failed at wif-sts (exit 5: remote unavailable)"),
        "{last}"
    );
    let m = s.metrics();
    assert_eq!((m.of("x509"), m.of("azure")), ((0.0, 5.0), (1.0, 0.0)));
    assert_eq!(m.get("wif_refresh_last_failovers"), 1.0);
}

#[test]
fn a_path_with_a_bad_config_fails_over_with_a_loud_warning() {
    let emu = emulator(&[]);
    let s = Setup::new(&emu);
    // A config without the app's client_id: wif-sign's usage error (exit 2).
    let mut azure = azure_settings(&emu);
    azure.as_object_mut().unwrap().remove("client_id");
    write_config(s.dir.path(), "azure.json", &azure);
    let out = s.run(&["azure", "x509"], &["--quiet"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    let warning = format!(
        "wif-refresh: warning: the path azure cannot work as configured: wif-sign exited 2 (usage); check {} and the files it names",
        s.azure
    );
    assert!(err.contains(&warning), "loud, even with --quiet: {err}");
    assert!(last_line(&out).ends_with("; azure failed at wif-sign (exit 2: usage)"), "{err}");
    let m = s.metrics();
    assert_eq!((m.of("azure"), m.of("x509")), ((0.0, 2.0), (1.0, 0.0)));

    // A config file that is not there: wif-sign cannot read it (exit 6), also loud.
    let missing = s.dir.path().join("nowhere.json").display().to_string();
    let mut args = vec!["--path".to_string(), format!("azure={missing}")];
    args.extend(s.paths(&["x509"]));
    args.push("--force".into());
    let out = s.refresh(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("wif-sign: ") && err.contains("nowhere.json"), "the tool names the file: {err}");
    assert!(
        err.contains(&format!(
            "warning: the path azure cannot work as configured: wif-sign exited 6 (local I/O); check {missing}"
        )),
        "{err}"
    );
    assert_eq!(s.metrics().of("azure"), (0.0, 6.0));
}

#[test]
fn without_impersonation_each_path_publishes_its_federated_token() {
    let emu = emulator(&["azure=unavailable"]);
    let s = Setup::new(&emu);
    let out = s.run(&["azure", "x509"], &["--no-impersonate"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(last_line(&out).contains(" via x509; "), "{}", stderr(&out));
    let meta: Value = serde_json::from_slice(&s.meta_bytes()).unwrap();
    assert_eq!(meta["written_by"], "wif-sts", "the federated token, from the x509 exchange");
    assert_eq!(iam_calls(&emu), 0);
}

#[test]
fn the_paths_come_from_the_environment_and_are_checked() {
    let emu = emulator(&[]);
    let s = Setup::new(&emu);
    // WIF_REFRESH_PATHS, as a systemd unit or a container sets it.
    let mut c = s.refresh(&[]);
    c.env("WIF_REFRESH_PATHS", format!("azure={},x509={}", s.azure, s.x509));
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(last_line(&out).contains(" via azure; "), "{}", stderr(&out));
    assert_eq!(s.metrics().of("x509"), (0.0, -1.0), "x509 is configured, so it has samples");
    // --path wins over the environment; a path without =CONFIG takes --config.
    let mut c = s.refresh(&["--config".into(), s.x509.clone(), "--path".into(), "x509".into(), "--force".into()]);
    c.env("WIF_REFRESH_PATHS", format!("azure={}", s.azure));
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(last_line(&out).contains(" via x509; "), "{}", stderr(&out));
    assert!(!s.metrics().samples.values.keys().any(|(_, l)| l.get("path").is_some_and(|p| p == "azure")));

    // Mistakes in the list are usage errors before anything runs.
    let cases: [(&[&str], &str); 4] = [
        (&["--path", "oidc"], "--path 'oidc': unknown path 'oidc' (the paths are azure x509)"),
        (&["--path", "azure", "--path=azure"], "--path: the path 'azure' is given twice"),
        (&["--path", "x509="], "--path 'x509=': no config file after '='"),
        (&["--path"], "--path needs a value"),
    ];
    for (args, needle) in cases {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = s.refresh(&args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{needle}: {}", stderr(&out));
        assert!(stderr(&out).contains(needle), "{needle}: {}", stderr(&out));
    }
    let mut c = s.refresh(&[]);
    c.env("WIF_REFRESH_PATHS", "azure,x5O9");
    let out = c.output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("WIF_REFRESH_PATHS 'x5O9': unknown path"), "{}", stderr(&out));
}

#[test]
fn without_paths_the_metrics_and_messages_are_as_before() {
    let emu = emulator(&[]);
    let s = Setup::new(&emu);
    let out = s.refresh(&["--config".into(), s.azure.clone()]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let last = last_line(&out);
    assert!(last.starts_with("wif-refresh: refreshed ") && !last.contains(" via "), "{last}");
    let m = s.metrics();
    for name in ["wif_refresh_path", "wif_refresh_path_last_exit_code", "wif_refresh_last_failovers"] {
        assert!(!m.samples.has(name), "{name} only with --path");
    }
    assert_eq!(m.get("wif_refresh_last_exit_code"), 0.0);
}

#[test]
fn a_step_killed_by_a_signal_is_named_so_and_the_next_path_runs() {
    // wif-sign killed (a time-out's SIGKILL, the OOM killer): the warning says so rather than
    // calling the path misconfigured, and the x509 path still gets the token.
    let emu = emulator(&[]);
    let s = Setup::new(&emu);
    let bin = s.dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    for tool in ["wif-azure", "wif-sts", "wif-impersonate"] {
        std::os::unix::fs::symlink(Path::new(&bin_dir()).join(tool), bin.join(tool)).unwrap();
    }
    let killer = bin.join("wif-sign");
    std::fs::write(&killer, "#!/bin/sh\nkill -KILL $$\n").unwrap();
    set_mode(&killer, 0o755);
    let mut args = s.paths(&["azure", "x509"]);
    args.extend(["--bin-dir".to_string(), bin.display().to_string()]);
    let out = s.refresh(&args).output().unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("wif-sign of the path azure was killed by signal 9"), "{err}");
    assert!(!err.contains("cannot work as configured"), "{err}");
    assert!(err.contains("via x509"), "{err}");
}
