//! A recording HTTPS server on loopback with the test PKI's server certificate (localhost):
//! it does not require a client certificate (it asks for one, optionally, as wif-serve does
//! with bearer tokens on, and records whether one came), records every request and answers
//! from a queue of canned answers (the last one repeats). Stops when dropped.

use super::{pki_file, Canned, Recorded};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A request the HTTPS recorder received, and whether its connection presented a client
/// certificate.
#[derive(Clone, Debug)]
pub struct TlsRecorded {
    pub request: Recorded,
    pub client_certificate: bool,
}

/// The recording HTTPS server.
pub struct HttpsRecorder {
    pub port: u16,
    requests: Arc<Mutex<Vec<TlsRecorded>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// The server side: server-chain.crt + server.key; client certificates from ca-chain.crt
/// verified when presented, not required.
fn server_config() -> Arc<rustls::ServerConfig> {
    wif::core::tls::install_crypto_provider();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = wif::core::keys::load_certs(Path::new(&pki_file("server-chain.crt"))).unwrap();
    let key = wif::core::keys::load_key(Path::new(&pki_file("server.key")), None).unwrap().key;
    let roots = super::server::pki_roots("ca-chain.crt");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .unwrap();
    Arc::new(config)
}

impl HttpsRecorder {
    /// Starts answering on 127.0.0.1 with `answers`, in order.
    pub fn start(answers: Vec<Canned>) -> HttpsRecorder {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, stopped, config) = (requests.clone(), stop.clone(), server_config());
        let thread = std::thread::spawn(move || {
            let mut answered = 0usize;
            for tcp in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(tcp) = tcp else { continue };
                if let Some(recorded) = serve_one(tcp, config.clone(), &answers[answered.min(answers.len() - 1)]) {
                    reqs.lock().unwrap().push(recorded);
                    answered += 1;
                }
            }
        });
        HttpsRecorder { port, requests, stop, thread: Some(thread) }
    }

    /// The token URL on this server, by the name its certificate has.
    pub fn url(&self) -> String {
        format!("https://localhost:{}/get_wif_token", self.port)
    }

    pub fn requests(&self) -> Vec<TlsRecorded> {
        self.requests.lock().unwrap().clone()
    }

    /// Waits up to `secs` seconds until at least `n` requests have arrived; those requests.
    pub fn wait_for_requests(&self, n: usize, secs: u64) -> Vec<TlsRecorded> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while self.requests.lock().unwrap().len() < n {
            assert!(Instant::now() < deadline, "fewer than {n} requests in {secs} s: {:#?}", self.requests());
            std::thread::sleep(Duration::from_millis(20));
        }
        self.requests()
    }
}

/// Reads one request on `tcp` (after the handshake) and answers it with `answer`; `None`
/// if the handshake failed or the client sent no whole request head.
fn serve_one(tcp: TcpStream, config: Arc<rustls::ServerConfig>, answer: &Canned) -> Option<TlsRecorded> {
    tcp.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let conn = rustls::ServerConnection::new(config).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() > 64 * 1024 || tls.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let client_certificate = tls.conn.peer_certificates().is_some_and(|c| !c.is_empty());
    std::thread::sleep(answer.delay);
    let mut reply = format!(
        "HTTP/1.1 {} Canned\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.content_type,
        answer.body.len()
    );
    for (k, v) in &answer.headers {
        reply.push_str(&format!("{k}: {v}\r\n"));
    }
    reply.push_str("\r\n");
    reply.push_str(&answer.body);
    let _ = tls.write_all(reply.as_bytes());
    let _ = tls.flush();
    tls.conn.send_close_notify();
    let _ = tls.flush();
    Some(TlsRecorded { request: Recorded { method, path, headers, body: Vec::new() }, client_certificate })
}

impl Drop for HttpsRecorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
