//! What wif-get presents to the server, loaded and checked for each fetch: its client
//! certificate and key, or (`--bearer-file`) a bearer token read from a file.

use super::args::Cli;
use super::plan::{Auth, Plan};
use crate::core::clock;
use crate::core::error::{Error, Kind, Result};
use crate::core::files::{self, Part, Stored};
use crate::core::keys;
use crate::core::secret::Secret;
use crate::core::settings::Settings;
use crate::core::settings::{key, FileSetting};
use crate::http::ClientIdentity;
use std::path::PathBuf;

/// What `--cert` names, for the hint when it names no file.
const CLIENT_CERT: &str = "the client certificate (PEM chain, leaf first, or PKCS#12) from the CA wif-serve trusts";
/// What `--bearer-file` names, for hints.
const BEARER_FILE: &str =
    "the file holding the JWT the server accepts (e.g. a Kubernetes projected service-account token)";
/// Largest bearer token file read: a JWT is a few KiB; a server takes at most 7 KiB of it.
pub const MAX_BEARER_BYTES: usize = 16 * 1024;
/// Most characters of a claim taken from the token quoted in a message.
const MAX_CLAIM_CHARS: usize = 200;

/// What wif-get presents for one fetch.
pub(crate) enum Credential {
    /// A client certificate and key, presented in the TLS handshake.
    Certificate(Identity),
    /// A JWT, sent as `Authorization: Bearer`; no client certificate.
    Bearer(BearerToken),
}

impl Credential {
    /// Loads what the plan says to present: the certificate and key, or the bearer token
    /// file (read now: it may have rotated since the last fetch).
    pub(crate) fn load(cli: &Cli, s: &Settings, plan: &Plan) -> Result<Credential> {
        match &plan.auth {
            Auth::Certificate => load_identity(cli, s).map(Credential::Certificate),
            Auth::Bearer(file) => {
                let token = read_bearer(file)?;
                warn_if_expired(&token, clock::now_unix());
                Ok(Credential::Bearer(token))
            }
        }
    }

    /// The client certificate and key the TLS client presents, if any.
    pub(crate) fn tls(&self) -> Option<ClientIdentity> {
        match self {
            Credential::Certificate(id) => Some(id.tls.clone()),
            Credential::Bearer(_) => None,
        }
    }

    /// The token to send as `Authorization: Bearer`, if any.
    pub(crate) fn bearer(&self) -> Option<&Secret> {
        match self {
            Credential::Certificate(_) => None,
            Credential::Bearer(b) => Some(&b.token),
        }
    }
}

/// The client certificate chain and key, with facts for error hints.
pub(crate) struct Identity {
    /// What the HTTP client presents.
    pub(crate) tls: ClientIdentity,
    /// The certificate's subject, for the hint when the server does not allow it.
    pub(crate) subject: String,
    /// The certificate's SHA-256 (hex), likewise.
    pub(crate) sha256: String,
}

/// Loads `--cert` / `--key` (PEM or PKCS#12), checks that they belong together, and warns
/// when the certificate has expired.
pub(crate) fn load_identity(cli: &Cli, s: &Settings) -> Result<Identity> {
    let cert = s.require_file(cli.cert.clone(), "cert", key::GET_CERT, "--cert")?;
    let key_file = s.pick_file(cli.key.clone(), "key", key::GET_KEY)?;
    let password = keys::read_password(
        s.pick_file(cli.key_password_file.clone(), "key_password_file", key::GET_KEY_PASSWORD_FILE)?.as_ref(),
        s.pick::<String>(cli.key_password_env.clone(), key::GET_KEY_PASSWORD_ENV)?.as_deref(),
        "key password",
    )?;
    let (chain, key) = keys::load_cert_and_key(&cert, key_file.as_ref(), password.as_ref(), CLIENT_CERT)?;
    let subject = x509_parser::parse_x509_certificate(chain.leaf().as_ref())
        .map(|(_, c)| c.subject().to_string())
        .unwrap_or_else(|_| "(unparsable)".into());
    let sha256 = keys::sha256_hex(chain.leaf().as_ref());
    let _ = keys::warn_if_not_current(
        chain.leaf(),
        "the client certificate",
        "the server will refuse it",
        keys::ValidityCheck::Expiry,
    );
    Ok(Identity { tls: ClientIdentity { chain: chain.into_vec(), key }, subject, sha256 })
}

/// A bearer token read from `--bearer-file`, and what its claims say, read without
/// verifying (the server verifies): for the `fetched` section and for hints. Its `Debug`
/// never shows the token: a [`Secret`] prints only its length.
#[derive(Debug)]
pub(crate) struct BearerToken {
    /// The JWT.
    pub(crate) token: Secret,
    /// The file it was read from, absolute.
    pub(crate) file: PathBuf,
    /// Its `iss` claim, if a string.
    pub(crate) iss: Option<String>,
    /// Its `sub` claim, if a string.
    pub(crate) sub: Option<String>,
    /// Its `exp` claim, Unix seconds, if a number.
    pub(crate) expires_at: Option<i64>,
}

impl BearerToken {
    /// The token's issuer and subject for a message: quoted, bounded, `?` when absent.
    pub(crate) fn who(&self) -> String {
        let shown = |v: &Option<String>| {
            v.as_deref().map_or_else(|| "?".to_string(), |v| crate::core::secret::quote(v, MAX_CLAIM_CHARS))
        };
        format!("iss \"{}\", sub \"{}\"", shown(&self.iss), shown(&self.sub))
    }
}

/// Why the text of a bearer token file is not a compact JWT (names no content).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwtFlaw {
    /// Nothing but whitespace.
    Empty,
    /// Whitespace or a control character inside the token (two tokens, a wrapped line).
    Inside,
    /// Not three dot-separated segments (a JWE has five, an opaque token one).
    Segments(usize),
    /// A segment is empty.
    EmptySegment(Segment),
    /// A segment is not unpadded base64url.
    NotBase64url(Segment),
    /// The header or the payload does not decode to a JSON object.
    NotObject(Segment),
}

/// One of the three segments of a compact JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Segment {
    Header,
    Payload,
    Signature,
}

impl Segment {
    const ALL: [Segment; 3] = [Segment::Header, Segment::Payload, Segment::Signature];

    fn name(self) -> &'static str {
        match self {
            Segment::Header => "header",
            Segment::Payload => "payload",
            Segment::Signature => "signature",
        }
    }
}

impl std::fmt::Display for JwtFlaw {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwtFlaw::Empty => f.write_str("it is empty"),
            JwtFlaw::Inside => f.write_str("it holds whitespace or a control character inside the token"),
            JwtFlaw::Segments(n) => write!(f, "it has {n} dot-separated part(s), not the 3 of a compact JWT"),
            JwtFlaw::EmptySegment(s) => write!(f, "the JWT's {} is empty", s.name()),
            JwtFlaw::NotBase64url(s) => write!(f, "the JWT's {} is not unpadded base64url", s.name()),
            JwtFlaw::NotObject(s) => write!(f, "the JWT's {} is not a JSON object", s.name()),
        }
    }
}

/// What is wrong with `token` (whitespace around it already dropped) as a compact JWT:
/// three non-empty unpadded base64url segments, header and payload JSON objects.
pub(crate) fn jwt_flaw(token: &str) -> Option<JwtFlaw> {
    if token.is_empty() {
        return Some(JwtFlaw::Empty);
    }
    if token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Some(JwtFlaw::Inside);
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Some(JwtFlaw::Segments(parts.len()));
    }
    let base64url = |p: &str| p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    for (part, segment) in parts.iter().zip(Segment::ALL) {
        if part.is_empty() {
            return Some(JwtFlaw::EmptySegment(segment));
        }
        if !base64url(part) || crate::core::jwt::base64url_decode(part).is_none() {
            return Some(JwtFlaw::NotBase64url(segment));
        }
    }
    let object = |p: &str| {
        crate::core::jwt::base64url_decode(p)
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .is_some_and(|v| v.is_object())
    };
    [Segment::Header, Segment::Payload]
        .into_iter()
        .zip(&parts)
        .find(|(_, p)| !object(p))
        .map(|(s, _)| JwtFlaw::NotObject(s))
}

/// Reads the bearer token file: trusted as a token file is (a regular file, or a link to
/// one, owned by this user or root, writable by nobody else), at most MAX_BEARER_BYTES,
/// UTF-8, whitespace around the token dropped, a compact JWT. Errors name the file and the
/// setting, never its content.
pub(crate) fn read_bearer(file: &FileSetting) -> Result<BearerToken> {
    let shown = file.path.display().to_string();
    let refuse = |kind: Kind, why: String| {
        Error::new(kind, format!("the bearer token file {shown} {why}"))
            .context("reading the bearer token")
            .file_setting(&file.origin, BEARER_FILE)
    };
    let bytes = files::read_trusted(&file.path, Part::Token).map_err(|stored| match stored {
        Stored::Missing(..) => refuse(Kind::Io, "does not exist".into())
            .hint(format!("check {}: it names {BEARER_FILE}", file.origin)),
        Stored::Untrusted(_, _, why) => refuse(Kind::Io, format!("is not trusted: {}", why.detail)).hint(
            "a bearer token is a credential: the file must be owned by this user or root and writable by nobody else (chmod go-w)",
        ),
        Stored::Unusable(_, _, why) => refuse(Kind::Io, format!("cannot be read: {why}")),
        other => refuse(Kind::Io, format!("cannot be used: {}", other.reason())),
    })?;
    if bytes.len() > MAX_BEARER_BYTES {
        return Err(refuse(Kind::Input, format!("is larger than {MAX_BEARER_BYTES} bytes; a JWT is a few KiB"))
            .hint(format!("check {}: it names {BEARER_FILE}", file.origin)));
    }
    let text = String::from_utf8(bytes).map_err(|_| refuse(Kind::Input, "is not UTF-8 text".into()))?;
    let token = text.trim();
    if let Some(flaw) = jwt_flaw(token) {
        return Err(refuse(Kind::Input, format!("does not hold a compact JWT: {flaw}"))
            .hint(format!("{} must name {BEARER_FILE}, holding the token alone", file.origin)));
    }
    let claims = crate::core::jwt::decode_unverified(token).map(|(_, claims)| claims).unwrap_or_default();
    let text_claim = |name: &str| claims.get(name).and_then(|v| v.as_str()).map(str::to_string);
    Ok(BearerToken {
        iss: text_claim("iss"),
        sub: text_claim("sub"),
        expires_at: crate::core::jwt::numeric_claim(&claims, "exp"),
        file: files::absolute(&file.path)
            .map_err(|e| e.context("reading the bearer token").file_setting(&file.origin, BEARER_FILE))?,
        token: Secret::new(token),
    })
}

/// Warns when the token's `exp` has passed by this clock; the fetch goes on (the server
/// judges, with its leeway and its clock).
fn warn_if_expired(token: &BearerToken, now: i64) {
    let Some(exp) = token.expires_at.filter(|exp| *exp <= now) else { return };
    crate::core::diag::warn(format!(
        "the bearer token in {} expired at {} ({} ago by this clock); sending it anyway, the server will likely refuse it: is whatever writes the file still refreshing it?",
        token.file.display(),
        clock::rfc3339(exp),
        clock::human(now - exp)
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn segment(v: &str) -> String {
        URL_SAFE_NO_PAD.encode(v)
    }

    #[test]
    fn compact_jwts_and_their_flaws() {
        let (h, p, sig) = (segment(r#"{"alg":"RS256"}"#), segment(r#"{"sub":"a"}"#), segment("sig"));
        assert_eq!(jwt_flaw(&format!("{h}.{p}.{sig}")), None);
        assert_eq!(jwt_flaw(""), Some(JwtFlaw::Empty));
        assert_eq!(jwt_flaw(&format!("{h}.{p}.{sig}\n{h}.{p}.{sig}")), Some(JwtFlaw::Inside));
        assert_eq!(jwt_flaw("ya29.opaque"), Some(JwtFlaw::Segments(2)));
        assert_eq!(jwt_flaw(&format!("{h}.{p}.{sig}.{sig}.{sig}")), Some(JwtFlaw::Segments(5)));
        assert_eq!(jwt_flaw(&format!("{h}.{p}.")), Some(JwtFlaw::EmptySegment(Segment::Signature)));
        assert_eq!(jwt_flaw(&format!("{h}.{p}=.{sig}")), Some(JwtFlaw::NotBase64url(Segment::Payload)));
        assert_eq!(jwt_flaw(&format!("{h}.{}.{sig}", segment("[1]"))), Some(JwtFlaw::NotObject(Segment::Payload)));
        assert_eq!(jwt_flaw(&format!("{}.{p}.{sig}", segment("x"))), Some(JwtFlaw::NotObject(Segment::Header)));
        // The words name the flaw, never the content.
        assert!(!JwtFlaw::NotObject(Segment::Header).to_string().contains(&h));
    }

    #[test]
    fn debug_never_shows_the_token() {
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        let b = BearerToken {
            token: Secret::new(token),
            file: PathBuf::from("/t"),
            iss: Some("https://issuer".into()),
            sub: Some("a\nb".into()),
            expires_at: None,
        };
        assert!(!format!("{b:?}").contains(token));
        assert_eq!(b.who(), "iss \"https://issuer\", sub \"a b\"");
    }
}
