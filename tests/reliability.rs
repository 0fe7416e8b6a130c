//! Faults the token writer survives: SIGKILL at any moment, a full disk, a write error at
//! the file layer. Readers only ever see a complete old or new token with metadata that
//! describes it, and the previous token stays byte-identical when a run fails.

use crate::common::{bin, stderr, tempdir, Canned, TestServer};
use serde_json::json;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const SA: &str = "deployer@my-project.iam.gserviceaccount.com";

fn rfc(offset_secs: i64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(offset_secs);
    t.replace_nanosecond(0).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap()
}

/// A document as wif-sts leaves it, for wif-impersonate.
fn sts_doc() -> String {
    json!({"version": 1, "sts": {"token": "ya29.federated", "token_type": "Bearer", "expires_at": rfc(3600),
        "endpoint": "https://sts", "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/r",
        "scope": "https://www.googleapis.com/auth/cloud-platform", "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}})
    .to_string()
}

/// An IAM double that always answers with `token`.
fn iam_serving(token: &str) -> TestServer {
    TestServer::start(vec![Canned::json(200, json!({"accessToken": token, "expireTime": rfc(3600)}))])
}

/// Writes a first good token with the real tool.
fn seed_token(iam: &TestServer, out: &Path) {
    let o = bin("wif-impersonate")
        .args(["--service-account", SA, "--endpoint", &iam.url, "--token-out"])
        .arg(out)
        .write_stdin(sts_doc())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// The token in `out` if the pair is consistent as any reader judges it: an entry of the
/// metadata (the top-level one, or `previous`) has the token file's SHA-256. A writer may
/// finish whole writes between the two reads, so a token that matches no entry counts only
/// when it did not change meanwhile.
fn pair(out: &Path) -> Result<String, String> {
    let meta = wif::core::files::meta_path(out);
    let read = |p: &Path| std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut token = read(out)?;
    for _ in 0..3 {
        let m: serde_json::Value = serde_json::from_slice(&read(&meta)?).map_err(|e| format!("metadata: {e}"))?;
        let sha = wif::core::keys::sha256_hex(&token);
        if m["sha256"] == sha || m["previous"]["sha256"] == sha {
            return Ok(String::from_utf8_lossy(&token).into_owned());
        }
        let again = read(out)?;
        if again == token {
            return Err(format!("the token ({} bytes) matches no entry of its metadata {m}", token.len()));
        }
        token = again;
    }
    Err("the pair kept changing under the reader".into())
}

/// What is wrong with the pair at `out`, if anything: it must be one of `tokens`, whole,
/// with metadata describing it.
fn pair_problem(out: &Path, tokens: &[String]) -> Option<String> {
    match pair(out) {
        Ok(got) if tokens.contains(&got) => None,
        Ok(got) => Some(format!("a torn token of {} bytes", got.len())),
        Err(e) => Some(e),
    }
}

/// A reader polling the pair at `out` on its own thread, as wif-serve or wif-get would,
/// recording every [`pair_problem`] until it is stopped.
struct PairWatcher {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, Vec<String>)>,
}

impl PairWatcher {
    fn start(out: &Path, tokens: &[String]) -> PairWatcher {
        let stop = Arc::new(AtomicBool::new(false));
        let (flag, out, tokens) = (stop.clone(), out.to_path_buf(), tokens.to_vec());
        let thread = std::thread::spawn(move || {
            let (mut reads, mut problems) = (0u64, Vec::new());
            while !flag.load(Ordering::Relaxed) {
                reads += 1;
                problems.extend(pair_problem(&out, &tokens));
            }
            (reads, problems)
        });
        PairWatcher { stop, thread }
    }

    /// Stops the reader: how many times it read the pair, and what it found wrong.
    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

/// Kills `child` after `delay` (SIGKILL); whether it had already finished successfully.
fn kill_after(mut child: std::process::Child, delay: Duration) -> bool {
    std::thread::sleep(delay);
    let _ = child.kill();
    child.wait().unwrap().success()
}

/// How long `run` takes: the slowest of three runs, so one lucky run does not set the pace.
fn slowest_of_three(mut run: impl FnMut()) -> Duration {
    (0..3)
        .map(|_| {
            let t = std::time::Instant::now();
            run();
            t.elapsed()
        })
        .max()
        .unwrap()
}

fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn sigkill_at_random_moments_never_tears_the_token_or_piles_up_temp_files() {
    let old = format!("ya29.{}", "A".repeat(1500));
    let new = format!("ya29.{}", "B".repeat(1500));
    let dir = tempdir();
    let out = dir.path().join("wif_token.txt");
    seed_token(&iam_serving(&old), &out);
    // A reader polls the pair the whole time and records anything that is not a whole token
    // with metadata describing it.
    let tokens = [old.clone(), new.clone()];
    let reader = PairWatcher::start(&out, &tokens);
    let iam = iam_serving(&new);
    // How long one whole run takes on this machine now (beside the busy reader); the kills
    // are spread over 0–3 times it.
    let run_time = slowest_of_three(|| seed_token(&iam, &out));
    seed_token(&iam_serving(&old), &out);

    let exe = assert_cmd::cargo::cargo_bin("wif-impersonate");
    let doc = sts_doc();
    let (mut killed_early, mut completed, mut unpaired) = (0, 0, Vec::new());
    for i in 0..120u64 {
        let mut child = std::process::Command::new(&exe)
            .args(["--service-account", SA, "--endpoint", &iam.url, "--token-out"])
            .arg(&out)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        let _ = child.stdin.take().unwrap().write_all(doc.as_bytes());
        // Spread the kills over the process's whole life (0–3 times a measured run), writes included.
        if kill_after(child, run_time.mul_f64(((i * 37) % 40) as f64 / 13.0)) {
            completed += 1;
        } else {
            killed_early += 1;
        }
        unpaired.extend(pair_problem(&out, &tokens).map(|e| format!("after kill {i}: {e}")));
    }
    let (reads, torn) = reader.finish();
    assert!(unpaired.is_empty(), "kills left {} inconsistent pairs: {unpaired:#?}", unpaired.len());
    assert!(torn.is_empty(), "readers saw {} torn tokens or pairs: {:#?}", torn.len(), torn);
    assert!(reads > 100, "the reader really polled ({reads} reads)");
    assert!(killed_early > 10 && completed > 10, "kills hit all phases: {killed_early} killed, {completed} done");
    eprintln!(
        "{killed_early} of 120 writers killed mid-run ({completed} finished; a run takes {run_time:?}); \
         the reader read the pair {reads} times, never torn or inconsistent"
    );

    // One clean run afterwards leaves exactly the new token and no temp files at all, even
    // one planted as a writer that died (pid above pid_max) would leave it.
    let left_by_kills = temp_files(dir.path()).len();
    std::fs::write(dir.path().join(".wif_token.txt.4000000000.dead00.tmp"), &new[..700]).unwrap();
    seed_token(&iam, &out);
    eprintln!("{left_by_kills} temp files were left by killed writers before the clean run");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), new);
    assert_eq!(pair(&out).unwrap(), new);
    assert_eq!(temp_files(dir.path()), Vec::<String>::new(), "stale temp files were swept");
}

#[test]
fn sigkill_of_wif_get_never_leaves_a_token_beside_the_wrong_metadata() {
    use crate::common::pki_file;
    use crate::common::server::{get, token_dir, write_token, Server};
    let tokens = [format!("ya29.{}", "E".repeat(1500)), format!("ya29.{}", "F".repeat(1500))];
    let (_served_dir, served) = token_dir();
    write_token(&served, &tokens[0], 3600);
    let srv = Server::start(&served, &[]);
    let dir = tempdir();
    let out = dir.path().join("token.txt");
    let exe = assert_cmd::cargo::cargo_bin("wif-get");
    let wif_get = || {
        let mut c = std::process::Command::new(&exe);
        c.args(["--url", &format!("https://localhost:{}/get_wif_token", srv.port)])
            .args([
                "--cert",
                &pki_file("client.crt"),
                "--key",
                &pki_file("client.key"),
                "--ca",
                &pki_file("ca-chain.crt"),
            ])
            .arg("--out")
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        c
    };
    // How long a whole run takes on this machine now, to start from.
    let run_time = slowest_of_three(|| assert!(wif_get().status().unwrap().success()));

    // A reader polls the pair the whole time, as a wif-serve started at any moment would.
    let reader = PairWatcher::start(&out, &tokens);
    let (mut killed_early, mut completed, mut unpaired) = (0, 0, Vec::new());
    // Each kill lands a little earlier after a run that finished, a little later after one
    // that did not: the kills home in on the end of the run, where the two files are written,
    // whatever the load on this machine.
    let mut delay = run_time;
    for i in 0..60u64 {
        // The server hands out the other token each time, so every write changes the pair.
        write_token(&served, &tokens[((i + 1) % 2) as usize], 3600);
        if kill_after(wif_get().spawn().unwrap(), delay) {
            completed += 1;
            delay = delay.mul_f64(0.8);
        } else {
            killed_early += 1;
            delay = delay.mul_f64(1.2);
        }
        unpaired.extend(pair_problem(&out, &tokens).map(|e| format!("after kill {i}: {e}")));
    }
    let (reads, seen) = reader.finish();
    eprintln!(
        "{killed_early} of 60 wif-get runs killed mid-run, {completed} finished; {} pairs inconsistent after a \
         kill, {} of {reads} reads saw an inconsistent pair",
        unpaired.len(),
        seen.len()
    );
    assert!(unpaired.is_empty(), "kills left {} inconsistent pairs: {unpaired:#?}", unpaired.len());
    assert!(seen.is_empty(), "readers saw {} inconsistent pairs: {seen:#?}", seen.len());
    assert!(killed_early >= 10 && completed >= 10, "kills hit all phases: {killed_early} killed, {completed} done");
    // What the kills left is served by a wif-serve started afresh on it.
    let in_file = std::fs::read(&out).unwrap();
    let fresh = Server::start(&out, &[]);
    let r = get(fresh.port, "client", "/get_wif_token");
    assert_eq!((r.status, r.body), (200, in_file));
}

/// Runs wif-impersonate under a shell prelude (limits, signal dispositions).
fn impersonate_under(prelude: &str, iam: &TestServer, out: &Path) -> std::process::Output {
    let exe = assert_cmd::cargo::cargo_bin("wif-impersonate");
    let script = format!("{prelude}; exec \"$0\" --service-account {SA} --endpoint {} --token-out \"$1\"", iam.url);
    std::process::Command::new("bash")
        .args(["-c", &script])
        .arg(&exe)
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(sts_doc().as_bytes())?;
            c.wait_with_output()
        })
        .unwrap()
}

#[test]
fn a_write_error_at_the_file_layer_keeps_the_old_token() {
    // RLIMIT_FSIZE makes write(2) fail with EFBIG once the file would pass 1 KiB (SIGXFSZ is
    // ignored, so the error reaches the tool): a real I/O error, injected without touching code.
    let dir = tempdir();
    let out = dir.path().join("wif_token.txt");
    let old = "ya29.small-old-token";
    seed_token(&iam_serving(old), &out);
    let big = format!("ya29.{}", "C".repeat(4000));
    let o = impersonate_under("trap '' XFSZ; ulimit -f 1", &iam_serving(&big), &out);
    assert_eq!(o.status.code(), Some(6), "local I/O exit code; stderr: {}", stderr(&o));
    assert!(o.stdout.is_empty(), "nothing on stdout when the step fails");
    let err = stderr(&o);
    assert!(err.contains("wif-impersonate: ") && err.contains("wif_token.txt"), "{err}");
    assert!(!err.contains(&big[..40]), "the token is not on stderr");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), old, "the old token is byte-identical");
    assert!(temp_files(dir.path()).is_empty(), "the failed temp file was removed");
}

/// A small tmpfs, when this machine lets the tests mount one (root in a container usually can).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = std::env::temp_dir().join(format!("wif-tmpfs-{}-{size}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            Some(Tmpfs(dir))
        } else {
            let _ = std::fs::remove_dir(&dir);
            None
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn a_full_disk_keeps_the_old_token() {
    let Some(fs) = Tmpfs::mount("64k") else {
        // Covered by a_write_error_at_the_file_layer_keeps_the_old_token on such machines.
        crate::common::not_run("a tmpfs mount (root, and a sandbox that allows mount)", "sudo scripts/test.sh");
        return;
    };
    let out = fs.0.join("wif_token.txt");
    let old = "ya29.old-token-on-a-small-disk";
    seed_token(&iam_serving(old), &out);
    // Fill the file system to the last block.
    let filler = fs.0.join("filler");
    let mut f = std::fs::File::create(&filler).unwrap();
    use std::io::Write;
    while f.write_all(&[0u8; 4096]).is_ok() {}
    let _ = f.write_all(&[0u8; 1]);
    drop(f);
    let big = format!("ya29.{}", "D".repeat(8000));
    let o = impersonate_under("true", &iam_serving(&big), &out);
    assert_eq!(o.status.code(), Some(6), "stderr: {}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("file system is full"), "a hint says why: {err}");
    assert_eq!(std::fs::read_to_string(&out).unwrap(), old, "the old token is byte-identical");
    assert!(temp_files(&fs.0).is_empty(), "the failed temp file was removed");
}

/// A TCP server on loopback that runs `answer` on each connection, counting them.
struct RawServer {
    url: String,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl RawServer {
    fn start(answer: fn(std::net::TcpStream)) -> RawServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = connections.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                count.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || answer(stream));
            }
        });
        RawServer { url, connections }
    }
}

/// Reads the request head so the client has finished sending.
fn read_head(s: &mut std::net::TcpStream) {
    use std::io::Read;
    let mut buf = [0u8; 8192];
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.read(&mut buf);
}

const PREVIOUS: &str = "ya29.the-previous-good-token";

/// A directory whose `wif_token.txt` holds `PREVIOUS`, written by the real tool.
fn previous_token() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempdir();
    let out = dir.path().join("wif_token.txt");
    seed_token(&iam_serving(PREVIOUS), &out);
    (dir, out)
}

/// wif-impersonate against `endpoint` with `--retries` and `--token-out out`.
fn impersonate(endpoint: &str, retries: &str, out: &Path) -> std::process::Output {
    bin("wif-impersonate")
        .args(["--service-account", SA, "--endpoint", endpoint, "--retries", retries, "--token-out"])
        .arg(out)
        .write_stdin(sts_doc())
        .output()
        .unwrap()
}

#[test]
fn connection_resets_are_retried_a_bounded_number_of_times_each_visible() {
    let srv = RawServer::start(|mut s| {
        read_head(&mut s);
        // Close at once without an answer: the client sees a reset / early EOF.
        drop(s);
    });
    let (_dir, out_file) = previous_token();
    let started = std::time::Instant::now();
    let o = impersonate(&srv.url, "2", &out_file);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "retryable exit code: {err}");
    assert_eq!(srv.connections.load(Ordering::SeqCst), 3, "one try and two retries");
    assert_eq!(err.lines().filter(|l| l.contains("retry ")).count(), 2, "one stderr line per retry: {err}");
    assert!(started.elapsed() < Duration::from_secs(20), "bounded total time");
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), PREVIOUS);
}

#[test]
fn a_huge_remote_body_is_capped_and_refused_without_touching_the_token() {
    let srv = RawServer::start(|mut s| {
        use std::io::Write;
        read_head(&mut s);
        // 8 MiB of JSON-looking body: the client must stop reading at its 1 MiB cap.
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8388608\r\n\r\n";
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(b"{\"accessToken\":\"ya29.");
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..128 {
            if s.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let (_dir, out_file) = previous_token();
    let o = impersonate(&srv.url, "0", &out_file);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(5), "{err}");
    assert!(err.contains("larger than 1048576 bytes"), "says why: {err}");
    assert!(o.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), PREVIOUS);
}

#[test]
fn wrong_content_types_and_truncated_bodies_keep_the_old_token() {
    let (_dir, out_file) = previous_token();
    let cases = [
        (Canned::raw(200, "text/html", "<html><body>Sign in to the proxy</body></html>"), "not JSON"),
        (Canned::raw(200, "application/json", "{\"accessToken\": \"ya29.trunc"), "truncated"),
        (Canned::json(200, json!({"unexpected": true})), "no accessToken"),
        (Canned::json(200, json!({"accessToken": "ya29.x", "expireTime": rfc(-60)})), "expired"),
    ];
    for (answer, needle) in cases {
        let srv = TestServer::start(vec![answer]);
        let o = impersonate(&srv.url, "0", &out_file);
        let err = stderr(&o);
        assert!(!o.status.success() && o.stdout.is_empty(), "{needle}: {err}");
        assert!(err.contains(needle), "{needle}: {err}");
        assert_eq!(std::fs::read_to_string(&out_file).unwrap(), PREVIOUS, "{needle}");
    }
}

#[test]
fn retry_after_is_honoured_and_4xx_is_never_retried() {
    let dir = tempdir();
    let out_file = dir.path().join("wif_token.txt");
    let busy = Canned::json(503, json!({"error": {"code": 503, "message": "busy", "status": "UNAVAILABLE"}}))
        .header("Retry-After", "2");
    let srv = TestServer::start(vec![
        busy,
        Canned::json(200, json!({"accessToken": "ya29.after-wait", "expireTime": rfc(3600)})),
    ]);
    let started = std::time::Instant::now();
    let o = impersonate(&srv.url, "3", &out_file);
    let waited = started.elapsed();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(waited >= Duration::from_secs(2), "waited the server's 2 s Retry-After ({waited:?})");
    assert!(stderr(&o).contains("in 2.0 s"), "the retry line says how long: {}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "ya29.after-wait");

    let refused =
        Canned::json(403, json!({"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}));
    let srv = TestServer::start(vec![refused]);
    let o = bin("wif-impersonate")
        .args(["--service-account", SA, "--endpoint", &srv.url, "--retries", "3"])
        .write_stdin(sts_doc())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(4));
    assert_eq!(srv.requests().len(), 1, "a 4xx is final");
    assert!(!stderr(&o).contains("retry"), "{}", stderr(&o));
}
