//! Why a bearer request is refused: the codes of the log, the metric and the docs, with the
//! status, the OAuth error and the client's words of each.

/// Why a bearer client's request is refused: the codes of the log, the metric and the docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Code {
    /// The token was sent in the query string.
    TokenInQuery,
    /// No `Authorization: Bearer` token.
    NoToken,
    /// Not a compact JWS, a member named twice, two Authorization headers, a `crit` header.
    Malformed,
    /// Longer than `max_token_bytes`.
    Oversized,
    /// `none`, HMAC, or an algorithm the issuer is not trusted with.
    AlgNotAllowed,
    /// `iss` is not a configured issuer.
    WrongIssuer,
    /// The issuer's keys are not available: 503.
    JwksUnavailable,
    /// No published key has the token's `kid`.
    UnknownKid,
    /// The signature does not verify.
    BadSignature,
    /// `aud` names none of the issuer's audiences.
    WrongAudience,
    /// Past `exp` (with the leeway).
    Expired,
    /// Before `nbf`, or issued in the future.
    NotYetValid,
    /// `exp` too far after `iat`.
    LifetimeTooLong,
    /// `exp` or `sub` missing or unusable.
    MissingClaim,
    /// A second identity on a connection bound to the first.
    IdentityChanged,
}

impl Code {
    /// Every code, in the order of the checks.
    pub const ALL: [Code; 15] = [
        Code::TokenInQuery,
        Code::NoToken,
        Code::Malformed,
        Code::Oversized,
        Code::AlgNotAllowed,
        Code::WrongIssuer,
        Code::JwksUnavailable,
        Code::UnknownKid,
        Code::BadSignature,
        Code::WrongAudience,
        Code::Expired,
        Code::NotYetValid,
        Code::LifetimeTooLong,
        Code::MissingClaim,
        Code::IdentityChanged,
    ];

    /// The code as logged and counted.
    pub fn label(self) -> &'static str {
        match self {
            Code::TokenInQuery => "token_in_query",
            Code::NoToken => "no_token",
            Code::Malformed => "malformed",
            Code::Oversized => "oversized",
            Code::AlgNotAllowed => "alg_not_allowed",
            Code::WrongIssuer => "wrong_issuer",
            Code::JwksUnavailable => "jwks_unavailable",
            Code::UnknownKid => "unknown_kid",
            Code::BadSignature => "bad_signature",
            Code::WrongAudience => "wrong_audience",
            Code::Expired => "expired",
            Code::NotYetValid => "not_yet_valid",
            Code::LifetimeTooLong => "lifetime_too_long",
            Code::MissingClaim => "missing_claim",
            Code::IdentityChanged => "identity_changed",
        }
    }

    /// What the client is told: what is wrong, without token content or the server's setup.
    pub fn client_words(self) -> &'static str {
        match self {
            Code::TokenInQuery => "a token in the query string is refused: send it in the Authorization header",
            Code::NoToken => "this server needs a client certificate or an Authorization: Bearer token",
            Code::Malformed => "the bearer token is not a well-formed signed JWT",
            Code::Oversized => "the bearer token is too long",
            Code::AlgNotAllowed => "the token's signing algorithm is not accepted",
            Code::WrongIssuer => "the token's issuer is not trusted by this server",
            Code::JwksUnavailable => "the keys of the token's issuer cannot be loaded right now; retry later",
            Code::UnknownKid => "the token's signing key is not one of its issuer's published keys",
            Code::BadSignature => "the token's signature does not verify",
            Code::WrongAudience => "the token's audience is not this server's",
            Code::Expired => "the token has expired",
            Code::NotYetValid => "the token is not valid yet",
            Code::LifetimeTooLong => "the token lives longer than this server accepts",
            Code::MissingClaim => "the token lacks a required claim (sub, exp)",
            Code::IdentityChanged => "this connection already serves another identity: open a new connection",
        }
    }

    /// The HTTP status of the refusal.
    pub fn status(self) -> u16 {
        match self {
            Code::JwksUnavailable => 503,
            _ => 401,
        }
    }

    /// The OAuth error (RFC 6750 §3.1) for the body and `WWW-Authenticate`.
    pub fn oauth_error(self) -> &'static str {
        match self {
            Code::NoToken => "unauthorized",
            Code::TokenInQuery | Code::Malformed => "invalid_request",
            Code::JwksUnavailable => "temporarily_unavailable",
            _ => "invalid_token",
        }
    }

    /// `Retry-After` of the refusal, if it is worth retrying.
    pub fn retry_after(self) -> Option<&'static str> {
        match self {
            Code::JwksUnavailable => Some("5"),
            _ => None,
        }
    }
}

/// A refused bearer request: its code, and the detail for the log (no token).
#[derive(Clone, Debug)]
pub struct Refused {
    /// Why, as counted.
    pub code: Code,
    /// Why, in the log's words (token-derived strings quoted through `secret::quote`).
    pub detail: String,
}
