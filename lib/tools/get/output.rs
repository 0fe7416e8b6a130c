//! What wif-get prints: the document, the token, a shell line, or google-auth's
//! executable-sourced credential response.

use super::args::{Format, SubjectTokenType};
use super::fetched::Fetched;
use super::plan::Plan;
use crate::cli;
use crate::core::clock::Timestamp;
use crate::core::document::Document;
use crate::core::error::{Error, Kind, Result};
use crate::core::secret::Secret;
use clap::ValueEnum;
use serde::Serialize;
use std::path::Path;

/// Prints what `--format` asks for: the document with `fetched` added, the token, a shell
/// line, or the executable response.
pub(crate) fn print(plan: &Plan, doc: &mut Document, fetched: &Fetched) -> Result<()> {
    let token = &fetched.token;
    match plan.format {
        Format::Json => {
            doc.set(&fetched.section)?;
            cli::write_document(doc)
        }
        Format::Token => cli::write_stdout(token.expose().as_bytes()),
        Format::Export => {
            let line = format!("export {}={}\n", plan.export_name, shell_quote(token.expose()));
            cli::write_stdout(line.as_bytes())
        }
        Format::Gcloud => {
            let out = plan.out.as_deref().unwrap_or(Path::new(""));
            let abs = std::fs::canonicalize(out).map_err(|e| Error::io(out, &e).context("resolving --out"))?;
            let path = abs.to_str().ok_or_else(|| {
                Error::usage(format!("{} is not valid UTF-8; a shell export line cannot carry it", abs.display()))
            })?;
            let line = format!("export CLOUDSDK_AUTH_ACCESS_TOKEN_FILE={}\n", shell_quote(path));
            cli::write_stdout(line.as_bytes())
        }
        Format::Executable => {
            let resp = executable_response(token, Some(fetched.expires_at), plan.subject_token_type)?;
            let mut text =
                serde_json::to_string_pretty(&resp).map_err(|e| Error::new(Kind::Internal, e.to_string()))?;
            text.push('\n');
            cli::write_stdout(text.as_bytes())
        }
    }
}

/// Quotes a value for a POSIX shell: single quotes, with `'` written as `'\''`.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A google-auth executable-sourced credential response.
#[derive(Serialize)]
struct ExecutableResponse<'a> {
    version: u8,
    success: bool,
    token_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    saml_response: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expiration_time: Option<i64>,
}

/// Builds the executable response: JWTs as `id_token` (type `id_token` for an OpenID Connect
/// ID token, else `jwt`; see [`jwt_kind`]), SAML assertions as `saml_response`; `wanted`
/// overrides the type, but a JWT type needs a JWT and `saml2` a SAML assertion. Opaque
/// access tokens are refused, since google-auth would hand them to STS as a subject token.
fn executable_response<'a>(
    token: &'a Secret,
    expires_at: Option<Timestamp>,
    wanted: Option<SubjectTokenType>,
) -> Result<ExecutableResponse<'a>> {
    let t = token.expose();
    let expiration_time = expires_at.map(Timestamp::unix);
    let found = match crate::core::jwt::decode_unverified(t) {
        Some((header, claims)) => Some(jwt_kind(&header, &claims)),
        None => is_saml(t).then_some(SubjectTokenType::Saml2),
    };
    let kind = match (found, wanted) {
        (Some(SubjectTokenType::Saml2), Some(w @ (SubjectTokenType::Jwt | SubjectTokenType::IdToken))) => {
            let name = w.to_possible_value().map(|v| v.get_name().to_string()).unwrap_or_default();
            return Err(Error::input(format!(
                "--subject-token-type {name} needs a JWT, and this token is a SAML assertion"
            )));
        }
        (Some(SubjectTokenType::Jwt | SubjectTokenType::IdToken), Some(SubjectTokenType::Saml2)) => {
            return Err(Error::input("--subject-token-type saml2 needs a SAML assertion, and this token is a JWT"))
        }
        (Some(found), wanted) => wanted.unwrap_or(found),
        (None, _) => {
            return Err(Error::input(
                "--format executable carries a subject token (JWT or SAML), and this token is neither",
            )
            .hint("an access token is used directly: try --format token or --format export"))
        }
    };
    let saml = kind == SubjectTokenType::Saml2;
    Ok(ExecutableResponse {
        version: 1,
        success: true,
        token_type: kind.urn(),
        id_token: (!saml).then_some(t),
        saml_response: saml.then_some(t),
        expiration_time,
    })
}

/// Claims only access tokens carry: OAuth scopes (`scp`, `scope`), Azure AD's client of an
/// access token (`azpacr`, v1 `appid`/`appidacr`) and token type (`idtyp`), RFC 9068's
/// `client_id`.
const ACCESS_TOKEN_CLAIMS: &[&str] = &["scp", "scope", "azpacr", "appid", "appidacr", "idtyp", "client_id"];
/// Claims only OpenID Connect ID tokens carry (OpenID Connect Core 1.0, section 2 and 3.1.3.6).
const ID_TOKEN_CLAIMS: &[&str] = &["nonce", "auth_time", "at_hash", "c_hash"];

/// Whether a JWT is an OpenID Connect ID token or another JWT. The marks of an access token
/// come first: an Azure AD v2 access token carries `azp` (the client that asked for it) as
/// an ID token may, but also `azpacr` (and `scp` or `idtyp`; `roles` is no mark, ID tokens
/// carry it too); RFC 9068 access tokens say `typ: at+jwt`. Then an ID token's own claims, or `azp` without those marks (Google's
/// ID tokens from generateIdToken: `azp`, `email`, no nonce).
fn jwt_kind(header: &serde_json::Value, claims: &serde_json::Value) -> SubjectTokenType {
    let typ = header.get("typ").and_then(|t| t.as_str()).unwrap_or("").to_ascii_lowercase();
    let has = |names: &[&str]| names.iter().any(|n| claims.get(n).is_some());
    if typ == "at+jwt" || typ == "application/at+jwt" || has(ACCESS_TOKEN_CLAIMS) {
        SubjectTokenType::Jwt
    } else if has(ID_TOKEN_CLAIMS) || has(&["azp"]) {
        SubjectTokenType::IdToken
    } else {
        SubjectTokenType::Jwt
    }
}

fn is_saml(t: &str) -> bool {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .is_some_and(|x| x.contains("urn:oasis:names:tc:SAML:2.0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(shell_quote("ya29.a-b_c"), "'ya29.a-b_c'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[test]
    fn opaque_tokens_are_not_executable_responses() {
        assert!(executable_response(&Secret::new("ya29.opaque"), None, None).is_err());
        assert!(executable_response(&Secret::new("ya29.opaque"), None, Some(SubjectTokenType::Jwt)).is_err());
    }

    fn jwt(header: serde_json::Value, claims: serde_json::Value) -> Secret {
        use base64::Engine;
        let b64 = |v: &serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        Secret::new(format!("{}.{}.c2ln", b64(&header), b64(&claims)))
    }

    fn token_type_of(token: &Secret, wanted: Option<SubjectTokenType>) -> &'static str {
        executable_response(token, None, wanted).unwrap().token_type
    }

    #[test]
    fn executable_token_types_follow_the_kind_of_token() {
        let rs256 = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "k"});
        // An Azure AD v2 app-only access token (client credentials), claims as Microsoft documents them.
        let azure_access = jwt(
            rs256.clone(),
            serde_json::json!({"aud": "api://wif", "iss": "https://login.microsoftonline.com/t/v2.0", "iat": 1, "nbf": 1,
                "exp": 2, "aio": "x", "azp": "client-id", "azpacr": "2", "oid": "o", "rh": "r", "roles": ["Read"],
                "sub": "o", "tid": "t", "uti": "u", "ver": "2.0", "idtyp": "app"}),
        );
        // A delegated one: scp instead of roles and idtyp.
        let azure_delegated = jwt(
            rs256.clone(),
            serde_json::json!({"aud": "api://wif", "azp": "client-id", "azpacr": "0", "scp": "user.read", "ver": "2.0"}),
        );
        let v1_access =
            jwt(rs256.clone(), serde_json::json!({"aud": "api://wif", "appid": "c", "appidacr": "2", "ver": "1.0"}));
        let rfc9068 =
            jwt(serde_json::json!({"alg": "ES256", "typ": "at+jwt"}), serde_json::json!({"aud": "x", "sub": "y"}));
        // A Google ID token from generateIdToken: azp and email, no nonce.
        let google_id = jwt(
            rs256.clone(),
            serde_json::json!({"aud": "https://x", "azp": "1234", "email": "sa@p.iam.gserviceaccount.com", "iss": "https://accounts.google.com"}),
        );
        let oidc_id =
            jwt(rs256.clone(), serde_json::json!({"aud": "client-id", "nonce": "n", "sub": "s", "ver": "2.0"}));
        let plain =
            jwt(rs256, serde_json::json!({"iss": "https://sts.windows.net/t/", "sub": "s", "aud": "api://wif"}));
        for t in [&azure_access, &azure_delegated, &v1_access, &rfc9068, &plain] {
            assert_eq!(token_type_of(t, None), "urn:ietf:params:oauth:token-type:jwt", "{:?}", t.expose());
        }
        for t in [&google_id, &oidc_id] {
            assert_eq!(token_type_of(t, None), "urn:ietf:params:oauth:token-type:id_token", "{:?}", t.expose());
        }
        // The user's word wins, within kind: a JWT type for a JWT.
        assert_eq!(
            token_type_of(&azure_access, Some(SubjectTokenType::IdToken)),
            "urn:ietf:params:oauth:token-type:id_token"
        );
        assert_eq!(token_type_of(&google_id, Some(SubjectTokenType::Jwt)), "urn:ietf:params:oauth:token-type:jwt");
        assert!(executable_response(&azure_access, None, Some(SubjectTokenType::Saml2)).is_err());
        let resp = executable_response(&azure_access, None, None).unwrap();
        assert_eq!((resp.id_token, resp.saml_response), (Some(azure_access.expose()), None));
    }

    #[test]
    fn saml_assertions_go_in_saml_response() {
        use base64::Engine;
        let saml = Secret::new(
            base64::engine::general_purpose::STANDARD
                .encode("<saml2:Assertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\">x</saml2:Assertion>"),
        );
        let resp = executable_response(&saml, None, None).unwrap();
        assert_eq!(resp.token_type, "urn:ietf:params:oauth:token-type:saml2");
        assert_eq!((resp.id_token, resp.saml_response), (None, Some(saml.expose())));
        assert!(executable_response(&saml, None, Some(SubjectTokenType::IdToken)).is_err());
    }
}
