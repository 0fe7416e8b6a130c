//! The request path of a bearer client (`--bearer-issuers`, no certificate): each request's
//! `Authorization: Bearer` token verified before it is routed, the connection bound to the
//! first identity verified on it, that identity's connection limit and the allow-list. A
//! refusal is answered (401 with `WWW-Authenticate`, 403, 503) and the connection closed.

use super::allow::Principal;
use super::bearer::{BearerIdentity, Code};
use super::log::{BearerFields, Event};
use super::metrics::Refusal;
use super::shared::Shared;
use crate::server::http::Request;
use crate::server::Response;

/// The realm of `WWW-Authenticate`.
const REALM: &str = "wif-serve";

/// A bearer session's client: the issuer and `sub` its first verified token bound the
/// connection to.
#[derive(Default)]
pub(super) struct BearerClient {
    bound: Option<(String, String)>,
}

/// A bearer client's request refused: the answer, the code for the log, and the client
/// when its token verified.
pub(super) struct Denied {
    pub resp: Response,
    pub code: &'static str,
    pub client: Option<Principal>,
}

/// The log's view of a bearer client (never the token: its digest).
pub(super) fn log_fields(b: &BearerIdentity) -> BearerFields<'_> {
    BearerFields { issuer: &b.issuer, sub: &b.sub, jti: b.jti.as_deref(), token_sha256: &b.token_sha256 }
}

/// Verifies the request's token and decides whether it may be routed: `Ok` with its client,
/// or the refusal to answer before the connection is closed. `id` is the connection's, for
/// `--max-connections-per-client`.
pub(super) fn admit(
    shared: &Shared,
    client: &mut BearerClient,
    id: u64,
    peer: &str,
    req: &Request,
) -> Result<Principal, Box<Denied>> {
    let Some(verifier) = &shared.bearer else {
        return Err(refused(shared, Code::NoToken, "bearer clients are off".into(), None));
    };
    let authorization = req.authorization.as_ref().map(|s| s.expose());
    let identity = verifier
        .verify(authorization, req.extra_authorization, &req.query)
        .map_err(|r| refused(shared, r.code, r.detail, None))?;
    match &client.bound {
        Some((issuer, sub)) if *issuer != identity.issuer || *sub != identity.sub => {
            let detail = format!(
                "this connection is bound to {issuer} {}; the token is of {} {}",
                crate::core::secret::quote(sub, 200),
                identity.issuer,
                crate::core::secret::quote(&identity.sub, 200)
            );
            return Err(refused(shared, Code::IdentityChanged, detail, Some(identity)));
        }
        Some(_) => {}
        None => {
            let refused = || Event::new("connection_refused").peer(peer).bearer(log_fields(&identity));
            if let Err(resp) = shared.join_client(id, &identity.client_key(), "client", refused) {
                let client = Some(Principal::Bearer(identity));
                return Err(Box::new(Denied { resp, code: "too_many_connections", client }));
            }
            client.bound = Some((identity.issuer.clone(), identity.sub.clone()));
        }
    }
    let principal = Principal::Bearer(identity);
    if !shared.allow.allows(&principal) {
        let resp = shared.not_allowed("client");
        return Err(Box::new(Denied { resp, code: Refusal::NotAllowed.label(), client: Some(principal) }));
    }
    if let Principal::Bearer(b) = &principal {
        shared.metrics.bearer_accepted(&b.issuer);
    }
    Ok(principal)
}

/// Counts a refusal and makes its answer (`detail` for the log only).
fn refused(shared: &Shared, code: Code, detail: String, client: Option<BearerIdentity>) -> Box<Denied> {
    shared.metrics.bearer_refused(code);
    Box::new(Denied { resp: refusal(code, detail), code: code.label(), client: client.map(Principal::Bearer) })
}

/// The answer to a refused bearer token (RFC 6750 §3): the JSON error, `WWW-Authenticate`
/// (with the error and its description, except when no token was sent), `Retry-After`
/// when the refusal is worth retrying.
pub(super) fn refusal(code: Code, detail: String) -> Response {
    let (error, words) = (code.oauth_error(), code.client_words());
    let challenge = match code {
        Code::NoToken => format!("Bearer realm=\"{REALM}\""),
        _ => format!("Bearer realm=\"{REALM}\", error=\"{error}\", error_description=\"{words}\""),
    };
    let resp = Response::error(code.status(), error, words).header("WWW-Authenticate", challenge).because(detail);
    match code.retry_after() {
        Some(secs) => resp.header("Retry-After", secs),
        None => resp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_the_rfc_6750_challenge_and_words_fit_in_it() {
        for code in Code::ALL {
            let words = code.client_words();
            assert!(!words.contains('"') && !words.contains('\\'), "{code:?}: {words}");
            let resp = refusal(code, "detail".into());
            assert_eq!(resp.status, code.status());
            let header =
                |name: &str| resp.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
            let challenge = header("WWW-Authenticate").expect("a challenge");
            assert!(challenge.starts_with("Bearer realm=\"wif-serve\""), "{challenge}");
            assert_eq!(challenge.contains("error="), code != Code::NoToken, "{challenge}");
            assert_eq!(header("Retry-After").is_some(), code == Code::JwksUnavailable);
            let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            assert_eq!(body["error"], code.oauth_error());
            assert_eq!(body["message"], words);
        }
    }
}
