//! wif-serve's per-connection path under attack (issue 19's reused threads and shedding):
//! the configuration of shed connections, driven in memory against the real one built from
//! the test PKI's files.

use crate::common::pki_file;
use crate::common::server::client_config;
use std::path::PathBuf;
use std::sync::Arc;
use wif::tools::serve::tls::{TlsFiles, TlsSource};

fn source() -> TlsSource {
    TlsSource::load(TlsFiles {
        cert: PathBuf::from(pki_file("server-chain.crt")),
        key: PathBuf::from(pki_file("server.key")),
        client_ca: PathBuf::from(pki_file("ca-chain.crt")),
        crls: vec![],
        certificate_optional: false,
    })
    .unwrap()
}

/// Runs a handshake between `client` and `server` in memory; the server's connection, or
/// the server's error.
fn handshake(
    client: Arc<rustls::ClientConfig>,
    server: Arc<rustls::ServerConfig>,
) -> Result<rustls::ServerConnection, rustls::Error> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut c = rustls::ClientConnection::new(client, name).unwrap();
    let mut s = rustls::ServerConnection::new(server).unwrap();
    for _ in 0..20 {
        let mut wire = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        let mut rd = &wire[..];
        while !rd.is_empty() {
            s.read_tls(&mut rd).unwrap();
        }
        s.process_new_packets()?;
        let mut wire = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut wire).unwrap();
        }
        let mut rd = &wire[..];
        while !rd.is_empty() {
            c.read_tls(&mut rd).unwrap();
        }
        // The client's own refusals are not what is tested; the server's are.
        let _ = c.process_new_packets();
        if !s.is_handshaking() && !c.is_handshaking() && !c.wants_write() {
            break;
        }
    }
    Ok(s)
}

#[test]
fn a_shed_handshake_picks_the_servers_cheaper_suite_like_a_full_one() {
    let built = source().current();
    // rustls' client lists TLS_AES_256_GCM_SHA384 first.
    let client = client_config(Some("client"), "ca-chain.crt", Some(&rustls::version::TLS13));
    for (what, config) in [("full", built.config.clone()), ("shed", built.shed.clone())] {
        let s = handshake(client.clone(), config).unwrap();
        assert_eq!(
            s.negotiated_cipher_suite().map(|c| c.suite()),
            Some(rustls::CipherSuite::TLS13_AES_128_GCM_SHA256),
            "{what} handshake"
        );
    }
}

#[test]
fn a_session_from_a_shed_handshake_never_resumes_into_a_verified_one() {
    let built = source().current();
    // A client without a certificate, whose session store keeps what the shed handshake gave.
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let anonymous = client_config(None, "ca-chain.crt", Some(version));
        let shed = handshake(anonymous.clone(), built.shed.clone()).unwrap();
        assert!(shed.peer_certificates().is_none(), "the shed path asked for a certificate");
        // The same client (same session store) on a full handshake: refused for want of a
        // certificate, never resumed into a session the server would serve a token on.
        match handshake(anonymous, built.config.clone()) {
            Err(e) => assert!(format!("{e}").to_lowercase().contains("certificate"), "{version:?}: {e}"),
            Ok(s) => assert!(
                s.is_handshaking() || s.peer_certificates().is_some_and(|c| !c.is_empty()),
                "{version:?}: a full-config session was established without a client certificate"
            ),
        }
    }
}
