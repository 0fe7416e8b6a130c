//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz), kept in the library so the
//! regression test in `tests/fuzz_corpus.rs` replays the checked-in corpus through exactly
//! the same code on every `cargo test`. Each function must never panic, whatever the input.

use crate::document::{AssertionSection, AzureSection, Document, ImpersonatedSection, StsSection};
use crate::settings::Settings;

/// The JSON document parser and merger: parse, merge settings, read every typed section,
/// and check that printing and re-parsing gives the same document.
pub fn document(data: &[u8]) {
    let Ok(mut doc) = Document::parse(data) else { return };
    let Ok(settings) = Settings::load(&mut doc, None) else { return };
    let _ = settings.pick::<String>(None, "client_id");
    let _ = settings.pick::<u32>(None, "retries");
    let _ = doc.section::<AssertionSection>("assertion");
    let _ = doc.section::<AzureSection>("azure");
    let _ = doc.section::<StsSection>("sts");
    let _ = doc.section::<ImpersonatedSection>("impersonated");
    let printed = doc.to_json();
    let again = Document::parse(printed.as_bytes()).expect("a printed document parses again");
    // Keys and order survive (float digits may differ by one ulp without float_roundtrip).
    assert!(again.fields().keys().eq(doc.fields().keys()), "printing and re-parsing keeps the document");
}

/// PEM and PKCS#12 key and certificate loading, up to preparing the key for signing.
pub fn keys(data: &[u8]) {
    let _ = crate::keys::certs_from_bytes(data);
    if let Ok(bundle) = crate::keys::key_from_pem(data) {
        let _ = crate::keys::signing_key(&bundle.key);
    }
    let password = crate::secret::Secret::new("correct horse battery staple");
    if let Ok(bundle) = crate::keys::key_from_pkcs12(data, Some(&password)) {
        let _ = crate::keys::signing_key(&bundle.key);
    }
}

/// Unverified JWT decoding, as wif-inspect and wif-azure do it.
pub fn jwt(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = crate::jwt::decode_unverified(text);
    let _ = crate::jwt::unverified_exp(text);
    let _ = crate::secret::scrub(text);
}

/// wif-serve's HTTP/1.1 request-head parser, fed as one buffer and as a pipelined stream.
pub fn http_request(data: &[u8]) {
    use crate::serve::http::{parse, read_request, route, Incoming, Parsed};
    if let Parsed::Complete(req, len) = parse(data) {
        assert!(len <= data.len(), "a request head cannot be longer than the input");
        let _ = route(&req.method, &req.path);
    }
    let mut stream = std::io::Cursor::new(data);
    let mut buf = Vec::new();
    for _ in 0..64 {
        match read_request(&mut stream, &mut buf, || true) {
            Incoming::Request(req) => {
                let _ = route(&req.method, &req.path);
            }
            _ => break,
        }
    }
}
