//! A running wif-serve for tests (its JSON log as a stream of values) and rustls clients
//! with the test PKI: shared by the serve and server_abuse tests.

use super::*;
use rustls::pki_types::ServerName;
use serde_json::Value;
use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Unix seconds now.
pub fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Writes a token file and its metadata the way --token-out does; returns the expiry text.
pub fn write_token(path: &Path, token: &str, ttl: i64) -> String {
    let exp = wif::core::clock::rfc3339(now() + ttl);
    wif::core::files::write_token(path, &wif::core::secret::Secret::new(token), "access_token", Some(&exp), "test")
        .unwrap();
    token_settles();
    exp
}

/// wif-serve looks at its token files at most every 25 ms (lib/tools/serve/token, RECHECK):
/// a request begun this long after a change to them is answered from the files as changed.
/// Not a guess at a duration: the server's own rule, with a margin.
pub const TOKEN_RECHECK: std::time::Duration = std::time::Duration::from_millis(40);

/// Waits until a change to the token files is sure to be seen by the next request.
pub fn token_settles() {
    std::thread::sleep(TOKEN_RECHECK);
}

/// Sets a file's modification time to `unix` (seconds), as `touch -d` would: how a test
/// makes a token file look written long ago without sleeping.
pub fn set_mtime(path: &Path, unix: i64) {
    let t = std::time::UNIX_EPOCH + Duration::from_secs(unix.max(0) as u64);
    std::fs::File::options().write(true).open(path).unwrap().set_modified(t).unwrap();
}

/// The required flags.
pub fn server_args_with(cert: &str, key: &str, client_ca: &str, token: &Path) -> Vec<String> {
    let token = token.to_string_lossy();
    let pairs = [
        ("--listen", "127.0.0.1:0"),
        ("--cert", cert),
        ("--key", key),
        ("--client-ca", client_ca),
        ("--token", &token),
    ];
    pairs.iter().flat_map(|(f, v)| [f.to_string(), v.to_string()]).collect()
}

/// The required flags, with the test PKI's server certificate and key.
pub fn server_args(client_ca: &str, token: &Path) -> Vec<String> {
    server_args_with(&pki_file("server-chain.crt"), &pki_file("server.key"), client_ca, token)
}

/// Replaces `dst` with a copy of `src` the careful way: a new file renamed over it.
pub fn replace_file(src: &str, dst: &Path) {
    let staged = dst.with_extension("staged");
    std::fs::copy(src, &staged).unwrap();
    std::fs::rename(&staged, dst).unwrap();
}

/// A running wif-serve; killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
    pub first: Value,
    lines: Receiver<Value>,
    pub seen: Vec<Value>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Server {
    /// Starts wif-serve with the test PKI's server certificate and client CA, plus `extra`.
    pub fn start(token: &Path, extra: &[&str]) -> Server {
        let mut args = server_args(&pki_file("ca-chain.crt"), token);
        args.extend(extra.iter().map(|s| s.to_string()));
        Server::spawn(&args, None)
    }

    pub fn spawn(args: &[String], stdin: Option<&str>) -> Server {
        let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("wif-serve"));
        for (k, _) in std::env::vars() {
            if k.starts_with("WIF_") {
                cmd.env_remove(k);
            }
        }
        cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() });
        let mut child = cmd.spawn().expect("starting wif-serve");
        if let Some(input) = stdin {
            let mut w = child.stdin.take().unwrap();
            w.write_all(input.as_bytes()).unwrap();
        }
        let out = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value =
                    serde_json::from_str(&line).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        let mut err = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let first = match lines.recv_timeout(Duration::from_secs(20)) {
            Ok(v) => v,
            Err(_) => {
                let _ = child.kill();
                panic!("wif-serve printed no first line; stderr: {}", stderr.join().unwrap());
            }
        };
        assert_eq!(first["event"], "listening", "{first}");
        let address = first["address"].as_str().unwrap();
        let port: u16 = address.rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(first["url"], format!("https://127.0.0.1:{port}/get_wif_token"));
        Server { child, port, first, lines, seen: Vec::new(), stderr: Some(stderr) }
    }

    /// Waits for a log line matching `pred` (lines seen before count too).
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!("no log line for {what}; seen: {:#?}", self.seen)
                }
            }
        }
    }

    /// Waits until `n` log lines match `pred`; returns them.
    pub fn wait_count(&mut self, what: &str, n: usize, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found: Vec<Value> = self.seen.iter().filter(|v| pred(v)).cloned().collect();
            if found.len() >= n {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(_) => panic!("fewer than {n} log lines for {what}; seen: {:#?}", self.seen),
            }
        }
    }

    /// Every log line so far (waiting briefly for stragglers).
    pub fn drain(&mut self) -> Vec<Value> {
        while let Ok(v) = self.lines.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(v);
        }
        self.seen.clone()
    }

    pub fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill").args([sig, &self.child.id().to_string()]).status().unwrap();
        assert!(ok.success());
    }

    /// Waits for the process to end; its exit code and stderr.
    pub fn wait_exit(&mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let err = self.stderr.take().map(|h| h.join().unwrap()).unwrap_or_default();
                return (st.code(), err);
            }
            assert!(Instant::now() < deadline, "wif-serve did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many file descriptors the server has open.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map(|d| d.count()).unwrap_or(0)
    }

    /// A field of /proc/PID/status in its unit (kB for Vm*), e.g. `VmRSS` or `Threads`.
    pub fn status(&self, field: &str) -> u64 {
        let text = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        text.lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU time the server has used so far (user + system), in seconds.
    pub fn cpu_secs(&self) -> f64 {
        cpu_secs(&format!("/proc/{}/stat", self.pid()))
    }

    /// Makes connections arrive all at once: stops the server (SIGSTOP) while `start` opens
    /// `n` connections that each send their first bytes (the kernel still completes their TCP
    /// handshakes into the listen backlog and buffers what they send), waits until all `n`
    /// have bytes waiting (a bounded poll: at most [`AT_ONCE_WAIT`], well within any client's
    /// time-out), then continues the server (SIGCONT), which finds them all ready together.
    /// Returns what `start` returned and how many were waiting.
    pub fn all_at_once<T>(&self, n: usize, start: impl FnOnce() -> T) -> (T, usize) {
        self.signal("-STOP");
        let started = start();
        let until = Instant::now() + AT_ONCE_WAIT;
        let mut waiting = connections_with_unread_bytes(self.port);
        while waiting < n && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(5));
            waiting = connections_with_unread_bytes(self.port);
        }
        self.signal("-CONT");
        (started, waiting)
    }

    /// SIGTERM, then expects exit 0 and no panic on stderr; returns the whole log.
    pub fn stop_cleanly(mut self) -> Vec<Value> {
        assert!(self.child.try_wait().unwrap().is_none(), "wif-serve died: {:?}", self.wait_exit());
        self.signal("-TERM");
        let (code, err) = self.wait_exit();
        assert!(!err.contains("panicked"), "wif-serve panicked: {err}");
        assert_eq!(code, Some(0), "stderr: {err}");
        self.drain()
    }

    /// Stops the server and checks the token never reached its stdout or stderr.
    pub fn finish_checking_secrecy(mut self, secrets: &[&str]) {
        let _ = self.child.kill();
        let (_, err) = self.wait_exit();
        let log: String = self.drain().iter().map(|v| v.to_string()).collect::<Vec<_>>().join("\n");
        for s in secrets {
            assert!(!log.contains(s), "the token appeared in the log");
            assert!(!err.contains(s), "the token appeared on stderr");
            assert!(!self.first.to_string().contains(s), "the token appeared in the first line");
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The certificates of the test PKI's file `ca` as a root store.
pub fn pki_roots(ca: &str) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for c in wif::core::keys::load_certs(Path::new(&pki_file(ca))).unwrap() {
        roots.add(c).unwrap();
    }
    roots
}

/// A rustls client configuration trusting the test PKI's `ca` (TLS 1.3 and 1.2, or only
/// `version`), before its client certificate is chosen.
pub fn client_builder(
    ca: &str,
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::client::WantsClientCert> {
    wif::core::tls::install_crypto_provider();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match version {
        Some(v) => vec![v],
        None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    };
    rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .unwrap()
        .with_root_certificates(pki_roots(ca))
}

/// A rustls client configuration with the test PKI (client certificate `client`, if any).
pub fn client_config(
    client: Option<&str>,
    ca: &str,
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> Arc<rustls::ClientConfig> {
    let builder = client_builder(ca, version);
    let config = match client {
        Some(name) => {
            let chain = wif::core::keys::load_certs(Path::new(&pki_file(&format!("{name}.crt")))).unwrap();
            let key = wif::core::keys::load_key(Path::new(&pki_file(&format!("{name}.key"))), None).unwrap().key;
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

pub type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

pub fn connect(port: u16, config: Arc<rustls::ClientConfig>) -> Tls {
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let conn = rustls::ClientConnection::new(config, ServerName::try_from("localhost").unwrap()).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }
}

/// Reads one answer (no body for HEAD).
pub fn read_response(s: &mut impl Read, head: bool) -> std::io::Result<Resp> {
    let mut raw = Vec::new();
    let mut byte = [0u8; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        raw.push(byte[0]);
    }
    let text = String::from_utf8(raw).unwrap();
    let mut lines = text.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let len: usize = headers.iter().find(|(k, _)| k.eq_ignore_ascii_case("content-length")).unwrap().1.parse().unwrap();
    let mut body = vec![0u8; if head { 0 } else { len }];
    s.read_exact(&mut body)?;
    Ok(Resp { status, headers, body })
}

/// Sends raw request bytes on a new connection and reads the answer.
pub fn request_raw(port: u16, client: Option<&str>, raw: &[u8], head: bool) -> std::io::Result<Resp> {
    let mut s = connect(port, client_config(client, "ca-chain.crt", None));
    s.write_all(raw)?;
    s.flush()?;
    read_response(&mut s, head)
}

pub fn get(port: u16, client: &str, path: &str) -> Resp {
    request_raw(port, Some(client), format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes(), false)
        .unwrap_or_else(|e| panic!("GET {path} as {client}: {e}"))
}

pub fn token_dir() -> (tempfile::TempDir, PathBuf) {
    let d = tempdir();
    let p = d.path().join("wif_token.txt");
    (d, p)
}

/// User + system CPU seconds from a /proc/PID/stat file (clock ticks of 1/100 s).
pub fn cpu_secs(stat: &str) -> f64 {
    let text = std::fs::read_to_string(stat).unwrap_or_default();
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    let ticks: u64 = after.split_whitespace().skip(11).take(2).filter_map(|v| v.parse::<u64>().ok()).sum();
    ticks as f64 / 100.0
}

/// The longest [`Server::all_at_once`] keeps the server stopped waiting for its connections.
pub const AT_ONCE_WAIT: Duration = Duration::from_secs(5);

/// Connections to local port `port` on loopback that the kernel holds with bytes not yet
/// read by the server (in the listen backlog or accepted), from /proc/net/tcp and tcp6: a
/// stopped server's connections whose clients have sent their first flight.
pub fn connections_with_unread_bytes(port: u16) -> usize {
    let port = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|table| std::fs::read_to_string(table).ok())
        .flat_map(|text| text.lines().skip(1).map(str::to_owned).collect::<Vec<_>>())
        .filter(|line| {
            // sl local_address rem_address st tx_queue:rx_queue ...
            let fields: Vec<&str> = line.split_whitespace().collect();
            let unread = fields.get(4).and_then(|q| q.split_once(':')).map(|(_, rx)| rx.trim_start_matches('0'));
            fields.len() > 4
                && fields[1].ends_with(&port)
                && fields[3] == "01"
                && unread.is_some_and(|rx| !rx.is_empty())
        })
        .count()
}
