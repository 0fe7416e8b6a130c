//! The HTTP client every exchange uses, wif-get's over mutual TLS included: ureq over rustls
//! (aws-lc-rs), strict URL policy, time-outs always set, bounded bodies, error bodies kept,
//! retries with backoff, and one classifier of what went wrong.
//!
//! - [`client`]: the [`Client`], its options and the one retry loop;
//! - [`failure`]: transport and status failures classified, worded for the audience;
//! - [`tls`]: the roots trusted and the client certificate presented;
//! - [`response`]: the answer as handed over;
//! - [`url`] and [`headers`]: what may be requested and sent (header syntax: `core::wire`).

pub mod client;
pub mod failure;
pub mod headers;
pub mod response;
pub mod tls;
pub mod url;

pub use client::{backoff, Attempt, Body, Client, GiveUp, HttpOptions, Request, CONNECT_TIMEOUT, MAX_BODY_BYTES};
pub use failure::{rustls_cause, Handshake, Status, TlsFailure, Trouble, Wording, Words};
pub use response::Response;
pub use tls::{ClientIdentity, Roots};
pub use url::{
    check_url, encode_component, host_of, parse_form, percent_decode, redact_query, with_query, AZURE_IMDS_HOST,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::Kind;
    use crate::core::secret::Secret;

    #[test]
    fn backoff_grows_and_honours_retry_after() {
        for a in 0..6 {
            let d = backoff(a, None).as_millis() as u64;
            let base = (500u64 << a.min(4)).min(8000);
            assert!(d >= base - base / 4 && d <= base + base / 4, "{a}: {d}");
        }
        assert_eq!(backoff(0, Some(7)).as_secs(), 7);
        assert_eq!(backoff(0, Some(9999)).as_secs(), 60);
    }

    #[test]
    fn requests_with_headers_that_would_split_are_not_sent() {
        let client = Client::new(HttpOptions::default()).unwrap();
        let injected = Secret::new("ya29.token\r\nX-Injected: yes");
        for req in [
            Request {
                method: "GET",
                url: "http://127.0.0.1:9/",
                headers: vec![("Metadata", "true\r\nX: y".into())],
                bearer: None,
                body: Body::Empty,
            },
            Request {
                method: "GET",
                url: "http://127.0.0.1:9/",
                headers: vec![("Bad Name", "v".into())],
                bearer: None,
                body: Body::Empty,
            },
            Request {
                method: "GET",
                url: "http://127.0.0.1:9/",
                headers: vec![],
                bearer: Some(&injected),
                body: Body::Empty,
            },
        ] {
            assert_eq!(client.send(&req).unwrap_err().kind(), Kind::Input);
        }
    }

    #[test]
    fn request_debug_shows_no_secret() {
        let token = Secret::new("ya29.debug-token");
        let fields = [("client_assertion", "eyJhbGciOi.secret.sig")];
        let req = Request {
            method: "POST",
            url: "https://sts.example/v1/token?key=k3y",
            headers: vec![("Metadata", "true-secret-value".into())],
            bearer: Some(&token),
            body: Body::Form(&fields),
        };
        let shown = format!("{req:?}");
        for secret in ["ya29.debug-token", "eyJhbGciOi", "true-secret-value", "k3y"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("Metadata") && shown.contains("https://sts.example/v1/token"), "{shown}");
    }
}
