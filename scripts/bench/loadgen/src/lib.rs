//! What the load generators share: durations and URLs on the command line, the caching
//! server-certificate verifier, PEM reading, a server process's CPU time and peak RSS, and
//! percentiles.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

/// `10`, `10s`, `1.5s`, `500ms`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else {
        (s, 1.0)
    };
    let v: f64 = num.trim().parse().map_err(|_| format!("not a duration: {s:?} (e.g. 10s, 500ms)"))?;
    if !(0.0..1e7).contains(&v) {
        return Err(format!("duration out of range: {s:?}"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}

/// The parts of an https URL the load generator needs.
#[derive(Debug)]
pub struct Target {
    /// The host as written in the URL (the TLS server name).
    pub host: String,
    /// Where to connect.
    pub addr: SocketAddr,
    /// The path (and query) to GET.
    pub path: String,
}

pub fn parse_url(url: &str) -> Result<Target, String> {
    let rest = url.strip_prefix("https://").ok_or_else(|| format!("{url}: only https:// URLs are supported"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or_else(|| format!("{url}: unclosed [ in host"))?;
        (h, p.strip_prefix(':').unwrap_or("443"))
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (authority, "443"),
        }
    };
    let port: u16 = port.parse().map_err(|_| format!("{url}: bad port {port:?}"))?;
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("{url}: resolving {host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: {host} has no address"))?;
    Ok(Target { host: host.to_string(), addr, path: path.to_string() })
}

/// Remembers server chains that verified, so the client spends its CPU on the per-handshake work
/// (key exchange, the server's signature, its own signature) and can keep up with fast servers.
#[derive(Debug)]
pub struct CachingVerifier {
    /// The verifier that checks a chain the first time.
    pub inner: Arc<WebPkiServerVerifier>,
    /// The chains that verified.
    pub verified: Mutex<Vec<Vec<Vec<u8>>>>,
}

impl ServerCertVerifier for CachingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let chain: Vec<Vec<u8>> =
            std::iter::once(end_entity).chain(intermediates).map(|c| c.as_ref().to_vec()).collect();
        if self.verified.lock().map(|v| v.contains(&chain)).unwrap_or(false) {
            return Ok(ServerCertVerified::assertion());
        }
        let ok = self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        if let Ok(mut v) = self.verified.lock() {
            v.push(chain);
        }
        Ok(ok)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("reading {}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("reading {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificates found", path.display()));
    }
    Ok(certs)
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// CPU time (utime+stime, seconds) and peak RSS (VmHWM, KiB) of one process.
pub fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
    let after = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0);
    Some((ticks as f64 / clock_ticks() as f64, hwm))
}

/// USER_HZ; 100 on every Linux this runs on (getconf CLK_TCK), without a libc dependency.
pub fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

pub fn servers_cpu(pids: &[u32]) -> f64 {
    pids.iter().filter_map(|p| proc_usage(*p)).map(|(cpu, _)| cpu).sum()
}

pub fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

pub fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}
