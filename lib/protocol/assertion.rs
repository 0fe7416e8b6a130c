//! The RFC 7523 client assertion wif-sign makes, in the form MSAL makes it for Azure AD: the
//! claims, the header with the certificate thumbprint (`x5t` or `x5t#S256`, optionally `x5c`),
//! the lifetime rules and the signing itself; loading the key and its certificate (checked
//! against each other), and the recipe (`assertion.signer`) by which wif-azure signs the same
//! assertion again, once, at a token endpoint's time when this machine's clock is off.

use crate::core::clock;
use crate::core::document::SignerRecipe;
use crate::core::error::{Error, Kind, Result};
use crate::core::keys::{self, CertChain, KeyType, SigningKey};
use crate::core::secret::Secret;
use crate::core::settings::FileSetting;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rustls::pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523), also the token type
/// wif-sign records for it.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far `nbf`/`iat` are back-dated: a verifier whose clock runs a little behind ours would
/// otherwise see an assertion from the future and refuse it (AADSTS700024).
pub const CLOCK_SKEW_MARGIN: i64 = 30;

/// Lifetime of an assertion when none is asked for: Azure AD's default limit, 10 minutes.
pub const DEFAULT_LIFETIME_SECS: i64 = 600;

/// Longest lifetime wif signs an assertion for: a day.
pub const MAX_LIFETIME_SECS: i64 = 86_400;

/// Signing algorithms of a client assertion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RSA keys; MSAL's default).
    Rs256,
    /// RSASSA-PSS with SHA-256 (RSA keys; pairs with x5t#S256).
    Ps256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// ECDSA P-384 with SHA-384.
    Es384,
}

impl Alg {
    /// The JOSE name, e.g. `RS256`.
    pub fn name(self) -> &'static str {
        match self {
            Alg::Rs256 => "RS256",
            Alg::Ps256 => "PS256",
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
        }
    }

    /// Whether a key of type `key` signs with it.
    fn fits(self, key: KeyType) -> bool {
        matches!(
            (self, key),
            (Alg::Rs256 | Alg::Ps256, KeyType::Rsa) | (Alg::Es256, KeyType::EcP256) | (Alg::Es384, KeyType::EcP384)
        )
    }

    /// The algorithm that verifies its signatures.
    fn verification(self) -> &'static dyn aws_lc_rs::signature::VerificationAlgorithm {
        use aws_lc_rs::signature;
        match self {
            Alg::Rs256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Alg::Ps256 => &signature::RSA_PSS_2048_8192_SHA256,
            Alg::Es256 => &signature::ECDSA_P256_SHA256_FIXED,
            Alg::Es384 => &signature::ECDSA_P384_SHA384_FIXED,
        }
    }

    /// The algorithm as the JWT library names it.
    fn jwt(self) -> Algorithm {
        match self {
            Alg::Rs256 => Algorithm::RS256,
            Alg::Ps256 => Algorithm::PS256,
            Alg::Es256 => Algorithm::ES256,
            Alg::Es384 => Algorithm::ES384,
        }
    }
}

/// Which certificate thumbprint the header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Thumbprint {
    /// `x5t`: SHA-1 of the certificate (what Azure AD shows and MSAL sends).
    Sha1,
    /// `x5t#S256`: SHA-256 of the certificate (Azure's newer form, signed with PS256 for RSA).
    Sha256,
}

/// What to sign: everything but the key and the certificates.
#[derive(Clone, Debug)]
pub struct AssertionRequest {
    /// The client (application) id: `iss` and `sub`.
    pub client_id: String,
    /// The `aud`: the exact token endpoint the assertion is presented at.
    pub audience: String,
    /// Seconds from now until `exp` (see [`check_lifetime`]).
    pub lifetime_secs: i64,
    /// The algorithm to sign with (see [`choose_alg`]).
    pub alg: Alg,
    /// The thumbprint header to send.
    pub thumbprint: Thumbprint,
    /// Also send the whole certificate chain as `x5c`.
    pub x5c: bool,
}

/// The claims of a client assertion, as signed.
#[derive(Clone, Debug, Serialize)]
pub struct Claims {
    /// The token endpoint.
    pub aud: String,
    /// The client id.
    pub iss: String,
    /// The client id again.
    pub sub: String,
    /// A random UUID, so the assertion cannot be replayed.
    pub jti: String,
    /// Not before: now minus [`CLOCK_SKEW_MARGIN`].
    pub nbf: i64,
    /// Issued at: the same as `nbf`.
    pub iat: i64,
    /// Expiry: now plus the lifetime.
    pub exp: i64,
}

/// A signed assertion with the header and claims it carries.
pub struct Signed {
    /// The compact JWT.
    pub jwt: Secret,
    /// The header as signed.
    pub header: Header,
    /// The claims as signed.
    pub claims: Claims,
}

/// Refuses a lifetime outside 1 s to 24 h.
pub fn check_lifetime(secs: i64) -> Result<i64> {
    if (1..=MAX_LIFETIME_SECS).contains(&secs) {
        Ok(secs)
    } else {
        Err(Error::usage("--lifetime must be between 1s and 24h")
            .hint("Azure AD accepts assertions valid for up to 10 minutes by default"))
    }
}

/// Signs the assertion with `key` for the leaf certificate of `chain` (the first one), now.
pub fn sign(req: &AssertionRequest, key: &SigningKey, chain: &[CertificateDer<'_>]) -> Result<Signed> {
    sign_at(req, key, chain, clock::now_unix())
}

/// Signs the assertion as [`sign`] does, as if it were `now` (Unix seconds): a token
/// endpoint's time when this machine's clock is off.
fn sign_at(req: &AssertionRequest, key: &SigningKey, chain: &[CertificateDer<'_>], now: i64) -> Result<Signed> {
    let Some(leaf) = chain.first() else {
        return Err(Error::new(Kind::Internal, "no certificate to name in the assertion"));
    };
    let mut header = Header::new(req.alg.jwt());
    match req.thumbprint {
        Thumbprint::Sha1 => header.x5t = Some(keys::thumbprint_sha1(leaf)),
        Thumbprint::Sha256 => header.x5t_s256 = Some(keys::thumbprint_sha256(leaf)),
    }
    if req.x5c {
        header.x5c = Some(chain.iter().map(|c| keys::x5c_entry(c)).collect());
    }
    let claims = Claims {
        aud: req.audience.clone(),
        iss: req.client_id.clone(),
        sub: req.client_id.clone(),
        jti: crate::core::jwt::random_uuid(),
        nbf: now - CLOCK_SKEW_MARGIN,
        iat: now - CLOCK_SKEW_MARGIN,
        exp: now + req.lifetime_secs,
    };
    let encoding = match key.key_type {
        KeyType::Rsa => EncodingKey::from_rsa_der(&key.jwt_der),
        KeyType::EcP256 | KeyType::EcP384 => EncodingKey::from_ec_der(&key.jwt_der),
    };
    let jwt = jsonwebtoken::encode(&header, &claims, &encoding)
        .map_err(|e| Error::input(format!("signing the assertion failed: {e}")))?;
    Ok(Signed { jwt: Secret::new(jwt), header, claims })
}

/// The key an assertion is signed with and the certificate chain it names, checked to belong
/// together.
pub struct KeyMaterial {
    /// The private key.
    pub key: SigningKey,
    /// The certificate (leaf first, then what came with it).
    pub chain: CertChain,
}

/// What `--key` names, for the hint when it names no file.
const KEY_FILE: &str = "the application's private key: PEM (PKCS#8, PKCS#1, SEC1) or PKCS#12 (.p12/.pfx)";
/// What `--cert` names, likewise.
const CERT_FILE: &str = "the certificate (PEM or DER) registered with the identity provider";

/// The recipe wif-sign records beside the assertion: absolute paths and the choices made,
/// never a secret.
pub fn recipe(files: &SignerFiles<'_>, req: &AssertionRequest) -> Result<SignerRecipe> {
    let absolute = crate::core::files::absolute;
    Ok(SignerRecipe {
        key_file: absolute(&files.key_file.path)?,
        cert_file: files.cert_file.map(|f| absolute(&f.path)).transpose()?,
        key_password_file: files.key_password_file.map(|f| absolute(&f.path)).transpose()?,
        key_password_env: files.key_password_env.map(str::to_string),
        alg: req.alg.name().to_string(),
        thumbprint: match req.thumbprint {
            Thumbprint::Sha1 => "sha1",
            Thumbprint::Sha256 => "sha256",
        }
        .to_string(),
        x5c: req.x5c,
        lifetime_secs: req.lifetime_secs,
    })
}

/// The files (and password variable) an assertion's key material comes from.
pub struct SignerFiles<'a> {
    /// The private key.
    pub key_file: &'a FileSetting,
    /// The certificate, unless the key file holds it.
    pub cert_file: Option<&'a FileSetting>,
    /// The PKCS#12 password's file.
    pub key_password_file: Option<&'a FileSetting>,
    /// The PKCS#12 password's environment variable.
    pub key_password_env: Option<&'a str>,
}

impl SignerFiles<'_> {
    /// Reads the password (if any) and loads the private key and the certificate: the
    /// certificate file, else the certificates the key file holds; refuses a key that is not
    /// the certificate's.
    pub fn load(&self) -> Result<KeyMaterial> {
        let password = keys::read_password(self.key_password_file, self.key_password_env, "key password")?;
        let bundle = keys::load_key(&self.key_file.path, password.as_ref()).map_err(self.key_file.explain(KEY_FILE))?;
        let chain = match (self.cert_file, bundle.chain) {
            (Some(f), _) => keys::load_chain(&f.path).map_err(f.explain(CERT_FILE))?,
            (None, Some(chain)) => chain,
            (None, None) => {
                return Err(Error::usage("--cert is required: the assertion names the certificate by its thumbprint")
                    .hint("give the certificate registered with the app (--cert, WIF_CERT or \"cert\" in the config)"))
            }
        };
        let key = keys::signing_key(&bundle.key)
            .map_err(|e| e.context(format!("loading the private key {}", self.key_file.path.display())))?;
        keys::check_key_matches_cert(&key, chain.leaf())
            .map_err(|e| e.context("checking the key against the certificate"))?;
        Ok(KeyMaterial { key, chain })
    }
}

/// Signs again, by `recipe`, the assertion `original` for `client_id` at `audience`, as if it
/// were `now` (the token endpoint's time): the same key, certificate, algorithm, header and
/// lifetime as wif-sign used, a new `jti`. Only an `original` that the recipe's key signed,
/// for this `client_id` and `audience`, is signed again: a document from elsewhere cannot
/// name a key and have wif sign claims it chose (see [`signed_by`]).
pub fn sign_again(
    recipe: &SignerRecipe,
    original: &Secret,
    client_id: &str,
    audience: &str,
    now: i64,
) -> Result<Signed> {
    let doing = "signing the assertion again by the document's assertion.signer";
    let setting = |path: &std::path::Path, field: &str| FileSetting {
        path: path.to_path_buf(),
        origin: format!("assertion.signer.{field}"),
    };
    let key_file = setting(&recipe.key_file, "key_file");
    let cert_file = recipe.cert_file.as_deref().map(|p| setting(p, "cert_file"));
    let password_file = recipe.key_password_file.as_deref().map(|p| setting(p, "key_password_file"));
    let files = SignerFiles {
        key_file: &key_file,
        cert_file: cert_file.as_ref(),
        key_password_file: password_file.as_ref(),
        key_password_env: recipe.key_password_env.as_deref(),
    };
    let material = files.load().map_err(|e| e.context(doing))?;
    if !signed_by(original.expose(), &material.key, client_id, audience) {
        return Err(Error::input(format!(
            "{doing}: the document's assertion was not signed with {} for {client_id} at {audience}",
            recipe.key_file.display()
        ))
        .hint("only an assertion wif-sign made with that key is signed again; run the pipeline from wif-sign"));
    }
    let thumbprint: Thumbprint = recorded("thumbprint", &recipe.thumbprint).map_err(|e| e.context(doing))?;
    let alg: Alg = recorded("alg", &recipe.alg).map_err(|e| e.context(doing))?;
    let alg = choose_alg(Some(alg), material.key.key_type, thumbprint).map_err(|e| e.context(doing))?;
    let request = AssertionRequest {
        client_id: client_id.to_string(),
        audience: audience.to_string(),
        lifetime_secs: check_lifetime(recipe.lifetime_secs).map_err(|e| e.context(doing))?,
        alg,
        thumbprint,
        x5c: recipe.x5c,
    };
    sign_at(&request, &material.key, material.chain.certs(), now)
}

/// Whether `jwt` is an assertion `key` signed (by the algorithm its header names) whose
/// `iss` and `sub` are `client_id` and whose `aud` is `audience`.
fn signed_by(jwt: &str, key: &SigningKey, client_id: &str, audience: &str) -> bool {
    let Some(jws) = crate::core::jwt::Jws::parse(jwt) else { return false };
    let claim = |name: &str| jws.claims.get(name).and_then(serde_json::Value::as_str);
    if claim("iss") != Some(client_id) || claim("sub") != Some(client_id) || claim("aud") != Some(audience) {
        return false;
    }
    let alg = jws.header.get("alg").and_then(|a| Alg::deserialize(a).ok());
    let Some(alg) = alg.filter(|a| a.fits(key.key_type)) else { return false };
    aws_lc_rs::signature::UnparsedPublicKey::new(alg.verification(), &key.public_key)
        .verify(jws.signing_input.as_bytes(), &jws.signature)
        .is_ok()
}

/// A choice the recipe names as wif-sign wrote it (`RS256`, `sha1`).
fn recorded<T: serde::de::DeserializeOwned>(field: &str, value: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|_| Error::input(format!("assertion.signer.{field} {value:?} is not one wif-sign writes")))
}

/// The algorithm to sign with: the one asked for, which must fit the key, else the key's
/// default (PS256 for RSA with the SHA-256 thumbprint, as Azure AD expects).
pub fn choose_alg(requested: Option<Alg>, key: KeyType, thumb: Thumbprint) -> Result<Alg> {
    let alg = match (requested, key) {
        (None, KeyType::Rsa) if thumb == Thumbprint::Sha256 => Alg::Ps256,
        (None, KeyType::Rsa) => Alg::Rs256,
        (None, KeyType::EcP256) => Alg::Es256,
        (None, KeyType::EcP384) => Alg::Es384,
        (Some(a), _) => a,
    };
    if !alg.fits(key) {
        return Err(Error::usage(format!("--alg {} does not fit a {key:?} key", alg.name()))
            .hint("RSA keys sign RS256 or PS256, P-256 keys ES256, P-384 keys ES384"));
    }
    Ok(alg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jti_is_uuid4() {
        let j = crate::core::jwt::random_uuid();
        assert_eq!(j.len(), 36);
        assert_eq!(&j[14..15], "4");
        assert_ne!(j, crate::core::jwt::random_uuid());
    }

    #[test]
    fn alg_must_fit_key() {
        assert_eq!(choose_alg(None, KeyType::Rsa, Thumbprint::Sha256).unwrap(), Alg::Ps256);
        assert_eq!(choose_alg(None, KeyType::EcP256, Thumbprint::Sha1).unwrap(), Alg::Es256);
        assert!(choose_alg(Some(Alg::Es256), KeyType::Rsa, Thumbprint::Sha1).is_err());
    }

    #[test]
    fn lifetimes() {
        assert_eq!(check_lifetime(600).unwrap(), 600);
        assert!(check_lifetime(0).is_err());
        assert!(check_lifetime(MAX_LIFETIME_SECS + 1).is_err());
    }
}
