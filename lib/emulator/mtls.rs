//! The TLS listener's client authentication, as Google's mtls endpoints do it: a client
//! certificate is requested but optional, any chain is accepted at the TLS layer (the
//! endpoint does not know yet which pool's trust store applies: STS checks the chain
//! against the provider named in the request), but the handshake signature must verify,
//! which proves the client holds the certificate's key.

use super::x509;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};

/// Requests a client certificate, accepts any chain, verifies the handshake signature (with
/// [`x509::algorithms`]).
#[derive(Debug)]
pub struct AnyClientCert;

impl ClientCertVerifier for AnyClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    /// Clients without a certificate (MSAL, google-auth without one) keep working.
    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No hint: a client sends the certificate it has, whoever issued it.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    /// Any chain: STS checks it against the provider's trust store.
    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &x509::algorithms())
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &x509::algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        x509::algorithms().supported_schemes()
    }
}
