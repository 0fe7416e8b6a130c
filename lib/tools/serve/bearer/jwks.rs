//! An issuer's published keys: the asymmetric algorithms a bearer token may use, and a JWKS
//! read into the keys that can verify them (symmetric, weak, unknown and encryption keys
//! skipped, each with its reason).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::DecodingKey;
use serde::Deserialize;

/// Largest JWKS read (a file or a fetched body).
pub const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys one JWKS may hold.
pub const MAX_KEYS: usize = 100;
/// Smallest RSA modulus used, in bits.
const MIN_RSA_BITS: usize = 2048;

/// The asymmetric signature algorithms a bearer token may be signed with. HMAC and `none`
/// are not among them: nothing here can be verified with a shared secret.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(clippy::upper_case_acronyms)]
pub enum Alg {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
    /// Ed25519.
    EdDSA,
}

impl Alg {
    /// Every accepted algorithm.
    pub const ALL: [Alg; 9] =
        [Alg::RS256, Alg::RS384, Alg::RS512, Alg::PS256, Alg::PS384, Alg::PS512, Alg::ES256, Alg::ES384, Alg::EdDSA];

    /// The algorithm of a JOSE `alg` name, if it is an accepted one (exact case).
    pub fn parse(name: &str) -> Option<Alg> {
        Alg::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::RS384 => "RS384",
            Alg::RS512 => "RS512",
            Alg::PS256 => "PS256",
            Alg::PS384 => "PS384",
            Alg::PS512 => "PS512",
            Alg::ES256 => "ES256",
            Alg::ES384 => "ES384",
            Alg::EdDSA => "EdDSA",
        }
    }

    /// jsonwebtoken's name for it.
    pub fn jwt(self) -> jsonwebtoken::Algorithm {
        use jsonwebtoken::Algorithm as A;
        match self {
            Alg::RS256 => A::RS256,
            Alg::RS384 => A::RS384,
            Alg::RS512 => A::RS512,
            Alg::PS256 => A::PS256,
            Alg::PS384 => A::PS384,
            Alg::PS512 => A::PS512,
            Alg::ES256 => A::ES256,
            Alg::ES384 => A::ES384,
            Alg::EdDSA => A::EdDSA,
        }
    }

    /// The one key type that verifies it.
    pub fn key_type(self) -> KeyType {
        match self {
            Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512 => KeyType::Rsa,
            Alg::ES256 => KeyType::P256,
            Alg::ES384 => KeyType::P384,
            Alg::EdDSA => KeyType::Ed25519,
        }
    }
}

/// What a usable key is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    /// RSA, at least 2048 bits.
    Rsa,
    /// EC on P-256.
    P256,
    /// EC on P-384.
    P384,
    /// OKP Ed25519.
    Ed25519,
}

impl KeyType {
    /// In words, for log lines.
    pub fn words(self) -> &'static str {
        match self {
            KeyType::Rsa => "an RSA key",
            KeyType::P256 => "an EC P-256 key",
            KeyType::P384 => "an EC P-384 key",
            KeyType::Ed25519 => "an Ed25519 key",
        }
    }
}

/// One usable key. Public material only; its `Debug` shows no key bytes anyway.
#[derive(Clone)]
pub struct Key {
    /// Its `kid`, if it has one.
    pub kid: Option<String>,
    /// Its `alg`, if the JWK names one: then only that algorithm may use it.
    pub alg: Option<String>,
    /// Its type.
    pub key_type: KeyType,
    /// The verifying key.
    pub decoding: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Key({:?}, {})", self.kid, self.key_type.words())
    }
}

impl Key {
    /// Whether this key may verify a token signed with `alg`: its type fits, and its own
    /// `alg`, if any, is the same.
    pub fn fits(&self, alg: Alg) -> bool {
        self.key_type == alg.key_type() && self.alg.as_deref().is_none_or(|a| a == alg.name())
    }
}

/// The usable keys of one JWKS.
#[derive(Clone, Debug, Default)]
pub struct KeySet {
    /// The keys, in the set's order.
    pub keys: Vec<Key>,
}

impl KeySet {
    /// The kids, for log lines (`(no kid)` for keys without one).
    pub fn kids(&self) -> Vec<String> {
        self.keys.iter().map(|k| k.kid.clone().unwrap_or_else(|| "(no kid)".into())).collect()
    }
}

/// A JWKS read: its usable keys, and the keys skipped with why.
#[derive(Debug)]
pub struct Parsed {
    /// The usable keys (at least one).
    pub set: KeySet,
    /// One line per skipped key: its kid (or position) and why.
    pub skipped: Vec<String>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<serde_json::Value>,
}

/// The JWK members looked at; every other member is ignored.
#[derive(Deserialize)]
struct RawJwk {
    kty: Option<String>,
    kid: Option<String>,
    #[serde(rename = "use")]
    usage: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// Reads a JWKS (`{"keys": [...]}`): at most [`MAX_KEYS`] keys, at most
/// [`MAX_JWKS_BYTES`]; a set with no usable key is an error.
pub fn parse(bytes: &[u8]) -> std::result::Result<Parsed, String> {
    if bytes.len() > MAX_JWKS_BYTES {
        return Err(format!("the JWKS is larger than {MAX_JWKS_BYTES} bytes"));
    }
    let raw: RawJwks = serde_json::from_slice(bytes).map_err(|e| {
        format!("not a JWKS ({{\"keys\": [...]}}): {}", crate::core::secret::quote(&e.to_string(), 200))
    })?;
    if raw.keys.len() > MAX_KEYS {
        return Err(format!("the JWKS has {} keys: at most {MAX_KEYS} are read", raw.keys.len()));
    }
    let mut set = KeySet::default();
    let mut skipped = Vec::new();
    for (i, value) in raw.keys.iter().enumerate() {
        let label = value
            .get("kid")
            .and_then(serde_json::Value::as_str)
            .map_or_else(|| format!("keys[{i}]"), |k| format!("kid {}", crate::core::secret::quote(k, 100)));
        match usable(value) {
            Ok(key) => set.keys.push(key),
            Err(why) => skipped.push(format!("{label}: {why}")),
        }
    }
    if set.keys.is_empty() {
        let why = if skipped.is_empty() { "no keys".to_string() } else { skipped.join("; ") };
        return Err(format!("the JWKS has no usable key ({why})"));
    }
    Ok(Parsed { set, skipped })
}

/// One JWK as a usable key, or why it is skipped.
pub fn usable(value: &serde_json::Value) -> std::result::Result<Key, String> {
    let jwk: RawJwk = serde_json::from_value(value.clone()).map_err(|_| "not a JWK object".to_string())?;
    if let Some(u) = jwk.usage.as_deref().filter(|u| *u != "sig") {
        return Err(format!("\"use\" is {:?}, not \"sig\"", crate::core::secret::quote(u, 40)));
    }
    let missing = |m: &str| format!("the JWK has no {m:?}");
    let (key_type, decoding) = match (jwk.kty.as_deref(), jwk.crv.as_deref()) {
        (Some("RSA"), _) => {
            let (n, e) = (jwk.n.as_deref().ok_or_else(|| missing("n"))?, jwk.e.as_deref().ok_or_else(|| missing("e"))?);
            (KeyType::Rsa, rsa_key(n, e)?)
        }
        (Some("EC"), Some(crv @ ("P-256" | "P-384"))) => {
            let (x, y) = (jwk.x.as_deref().ok_or_else(|| missing("x"))?, jwk.y.as_deref().ok_or_else(|| missing("y"))?);
            let (key_type, len) = if crv == "P-256" { (KeyType::P256, 32) } else { (KeyType::P384, 48) };
            (key_type, ec_key(x, y, len)?)
        }
        (Some("OKP"), Some("Ed25519")) => {
            let x = jwk.x.as_deref().ok_or_else(|| missing("x"))?;
            let bytes = component(x, "x")?;
            if bytes.len() != 32 {
                return Err(format!("its x is {} bytes, not the 32 of an Ed25519 key", bytes.len()));
            }
            (KeyType::Ed25519, DecodingKey::from_ed_der(&bytes))
        }
        (Some("oct"), _) => return Err("a symmetric key (kty oct) never verifies a bearer token".into()),
        (Some(kty @ ("EC" | "OKP")), crv) => {
            return Err(format!(
                "kty {kty} with crv {} is not used (P-256, P-384 and Ed25519 are)",
                crate::core::secret::quote(crv.unwrap_or("(none)"), 40)
            ))
        }
        (Some(kty), _) => return Err(format!("kty {} is not used", crate::core::secret::quote(kty, 40))),
        (None, _) => return Err(missing("kty")),
    };
    if let Some(alg) = jwk.alg.as_deref() {
        match Alg::parse(alg) {
            Some(a) if a.key_type() == key_type => {}
            _ => {
                let alg = crate::core::secret::quote(alg, 40);
                return Err(format!("its alg {alg} is not an accepted algorithm for {}", key_type.words()));
            }
        }
    }
    Ok(Key { kid: jwk.kid, alg: jwk.alg, key_type, decoding })
}

fn component(text: &str, name: &str) -> std::result::Result<Vec<u8>, String> {
    URL_SAFE_NO_PAD.decode(text).map_err(|_| format!("its {name} is not unpadded base64url"))
}

fn rsa_key(n: &str, e: &str) -> std::result::Result<DecodingKey, String> {
    let n = component(n, "n")?;
    let e = component(e, "e")?;
    let n_trimmed: &[u8] = &n[n.iter().take_while(|b| **b == 0).count()..];
    let bits = n_trimmed.first().map_or(0, |b| n_trimmed.len() * 8 - b.leading_zeros() as usize);
    if bits < MIN_RSA_BITS {
        return Err(format!("an RSA key of {bits} bits is too weak (at least {MIN_RSA_BITS})"));
    }
    if e.is_empty() || e.iter().all(|b| *b == 0) {
        return Err("its RSA exponent is zero".into());
    }
    Ok(DecodingKey::from_rsa_raw_components(n_trimmed, &e))
}

fn ec_key(x: &str, y: &str, len: usize) -> std::result::Result<DecodingKey, String> {
    let (x, y) = (component(x, "x")?, component(y, "y")?);
    if x.len() != len || y.len() != len {
        return Err(format!("its x and y are {} and {} bytes, not {len} each", x.len(), y.len()));
    }
    let mut point = Vec::with_capacity(1 + 2 * len);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    Ok(DecodingKey::from_ec_der(&point))
}
