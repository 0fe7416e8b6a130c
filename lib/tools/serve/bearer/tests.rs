use super::cache::{Cache, Fetch, Lookup, MAX_KEY_AGE, RETRY_INTERVAL, UNKNOWN_KID_INTERVAL};
use super::issuers::{IssuerConfig, IssuersFile, KeySource};
use super::verify::{self, identity_claims, Issuer, Presented};
use super::*;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

const NOW: i64 = 1_750_000_000;
const ISS: &str = "https://issuer.example.org";
const AUD: &str = "wif-serve";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A test-held signing key of each kind the verifier takes.
enum Signer {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    P384(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

impl Signer {
    fn rsa() -> Signer {
        Signer::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
    }
    fn p256() -> Signer {
        Signer::P256(EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
    }
    fn p384() -> Signer {
        Signer::P384(EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING).unwrap())
    }
    fn ed() -> Signer {
        Signer::Ed(Ed25519KeyPair::generate().unwrap())
    }

    fn jwk(&self, kid: &str) -> Value {
        match self {
            Signer::Rsa(k) => {
                let pk = k.public_key();
                json!({"kty": "RSA", "kid": kid, "use": "sig",
                       "n": b64(pk.modulus().big_endian_without_leading_zero()),
                       "e": b64(pk.exponent().big_endian_without_leading_zero())})
            }
            Signer::P256(k) | Signer::P384(k) => {
                let point = k.public_key().as_ref();
                let len = (point.len() - 1) / 2;
                let crv = if len == 32 { "P-256" } else { "P-384" };
                json!({"kty": "EC", "kid": kid, "crv": crv, "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])})
            }
            Signer::Ed(k) => json!({"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64(k.public_key().as_ref())}),
        }
    }

    /// Signs `header.claims` as given (the header names its own alg).
    fn sign(&self, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
        let alg = header["alg"].as_str().unwrap_or("RS256");
        let rng = SystemRandom::new();
        let sig = match self {
            Signer::Rsa(k) => {
                let padding: &'static dyn signature::RsaEncoding = match alg {
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    _ => &signature::RSA_PKCS1_SHA256,
                };
                let mut sig = vec![0; k.public_modulus_len()];
                k.sign(padding, &rng, input.as_bytes(), &mut sig).unwrap();
                sig
            }
            Signer::P256(k) | Signer::P384(k) => k.sign(&rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            Signer::Ed(k) => k.sign(input.as_bytes()).as_ref().to_vec(),
        };
        format!("{input}.{}", b64(&sig))
    }
}

/// One RSA key for the whole run: generating them is the slow part.
fn rsa() -> &'static Signer {
    static KEY: OnceLock<Signer> = OnceLock::new();
    KEY.get_or_init(Signer::rsa)
}

fn rsa2() -> &'static Signer {
    static KEY: OnceLock<Signer> = OnceLock::new();
    KEY.get_or_init(Signer::rsa)
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": AUD, "sub": "system:serviceaccount:batch:report", "iat": NOW - 10,
           "nbf": NOW - 10, "exp": NOW + 600, "jti": "j-1",
           "kubernetes.io": {"namespace": "batch", "serviceaccount": {"name": "report", "uid": "u-1"}}})
}

fn rs256(kid: &str) -> Value {
    json!({"alg": "RS256", "kid": kid, "typ": "JWT"})
}

/// A JWKS served by a test: its body, how often it was fetched, and how long a fetch takes.
#[derive(Clone, Default)]
struct FakeUrl {
    body: Arc<Mutex<Vec<u8>>>,
    fetches: Arc<AtomicUsize>,
    delay: Duration,
}

impl FakeUrl {
    fn serving(keys: &[Value]) -> FakeUrl {
        let fake = FakeUrl::default();
        fake.serve(keys);
        fake
    }
    fn serve(&self, keys: &[Value]) {
        *self.body.lock().unwrap() = json!({ "keys": keys }).to_string().into_bytes();
    }
    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

impl Fetch for FakeUrl {
    fn fetch(&self) -> std::result::Result<Vec<u8>, String> {
        self.fetches.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(self.delay);
        let body = self.body.lock().unwrap().clone();
        if body.is_empty() {
            Err("HTTP 503: down".into())
        } else {
            Ok(body)
        }
    }
    fn origin(&self) -> String {
        "https://issuer.example.org/jwks".into()
    }
    fn is_url(&self) -> bool {
        true
    }
}

fn config(extra: Value) -> IssuerConfig {
    let mut issuer = json!({"name": "k8s", "kind": "kubernetes", "issuer": ISS, "audience": AUD,
                            "jwks_uri": "https://issuer.example.org/jwks", "algorithms": ["RS256", "PS256", "ES256", "ES384", "EdDSA"]});
    for (k, v) in extra.as_object().unwrap() {
        issuer[k] = v.clone();
    }
    let file = json!({"version": 1, "issuers": [issuer]});
    IssuersFile::parse(file.to_string().as_bytes(), Path::new("/etc/wif")).unwrap().issuers.remove(0)
}

/// An issuer whose keys come from `fake`, loaded once at `NOW` (if the fake serves).
fn issuer_with(fake: &FakeUrl, extra: Value) -> Issuer {
    let cfg = config(extra);
    let cache = Arc::new(Cache::new(&cfg.name, Box::new(fake.clone())));
    let _ = cache.load(NOW);
    Issuer { config: cfg, cache }
}

fn check(issuer: &Issuer, token: &str, now: i64) -> std::result::Result<BearerIdentity, Refused> {
    let auth = format!("Bearer {token}");
    let presented = Presented { authorization: Some(&auth), extra_authorization: false, query: "" };
    verify::verify(std::slice::from_ref(issuer), 4096, &presented, now)
}

fn code(issuer: &Issuer, token: &str, now: i64) -> Code {
    match check(issuer, token, now) {
        Ok(id) => panic!("accepted: {id:?}"),
        Err(r) => r.code,
    }
}

fn standard() -> (FakeUrl, Issuer) {
    let fake = FakeUrl::serving(&[rsa().jwk("r1")]);
    let issuer = issuer_with(&fake, json!({}));
    (fake, issuer)
}

// ---- the issuers file ----

fn file_flaw(issuers: Value) -> String {
    file_flaw_of(json!({"version": 1, "issuers": [issuers]}))
}

fn file_flaw_of(file: Value) -> String {
    let err = IssuersFile::parse(file.to_string().as_bytes(), Path::new("/etc/wif")).unwrap_err();
    assert_eq!(err.kind(), crate::core::error::Kind::Usage, "{err}");
    err.to_string()
}

fn good_issuer() -> Value {
    json!({"name": "gh", "issuer": "https://token.actions.githubusercontent.com", "audience": "wif-serve",
           "jwks_file": "gh.json"})
}

fn with(mut v: Value, key: &str, value: Value) -> Value {
    if value.is_null() {
        v.as_object_mut().unwrap().remove(key);
    } else {
        v[key] = value;
    }
    v
}

#[test]
fn issuers_file_defaults_and_paths() {
    let file = json!({"version": 1, "issuers": [
        with(good_issuer(), "kind", json!("github")),
        {"name": "k8s", "kind": "kubernetes", "issuer": "http://127.0.0.1:8080/k8s", "audience": ["a", "b"],
         "jwks_uri": "http://127.0.0.1:8080/jwks", "jwks_ca_file": "ca.pem", "algorithms": ["ES384", "ES384"],
         "max_lifetime": "24h", "leeway": "0s", "claims": ["/a~1b", "plain"]}]});
    let parsed = IssuersFile::parse(file.to_string().as_bytes(), Path::new("/etc/wif")).unwrap();
    assert_eq!(parsed.max_token_bytes, 4096);
    let [gh, k8s] = &parsed.issuers[..] else { panic!() };
    assert_eq!(gh.keys, KeySource::File("/etc/wif/gh.json".into()));
    assert_eq!(gh.algorithms, vec![jwks::Alg::RS256, jwks::Alg::ES256]);
    assert_eq!((gh.max_lifetime, gh.leeway), (7200, 30));
    let names: Vec<&str> = gh.claims.iter().map(|c| c.as_str()).collect();
    assert_eq!(names, ["repository", "repository_owner", "ref", "environment", "job_workflow_ref"]);
    assert_eq!(
        k8s.keys,
        KeySource::Url { uri: "http://127.0.0.1:8080/jwks".into(), ca_file: Some("/etc/wif/ca.pem".into()) }
    );
    assert_eq!(k8s.audiences, ["a", "b"]);
    assert_eq!(k8s.algorithms, vec![jwks::Alg::ES384]);
    assert_eq!((k8s.max_lifetime, k8s.leeway), (86_400, 0));
    let azure = config(json!({"kind": "azure"}));
    assert_eq!(azure.claims.len(), 5);
    assert!(config(json!({"kind": "oidc"})).claims.is_empty());
}

#[test]
fn issuers_file_flaws_name_their_path() {
    let cases: Vec<(Value, &str)> = vec![
        (with(good_issuer(), "name", json!("a b")), "issuers[0].name:"),
        (with(good_issuer(), "name", json!("x".repeat(65))), "issuers[0].name:"),
        (with(good_issuer(), "kind", json!("gitlab")), "unknown variant"),
        (with(good_issuer(), "issuer", json!("http://issuer.example.org")), "issuers[0].issuer:"),
        (with(good_issuer(), "issuer", json!("not a url")), "issuers[0].issuer:"),
        (with(good_issuer(), "audience", json!([])), "issuers[0].audience: is an empty list"),
        (with(good_issuer(), "audience", json!(["ok", ""])), "issuers[0].audience[1]: is empty"),
        (with(good_issuer(), "audience", json!(" wif")), "issuers[0].audience: \" wif\" has white space"),
        (with(good_issuer(), "jwks_uri", json!("https://x.example/jwks")), "issuers[0].jwks_uri: and jwks_file"),
        (with(good_issuer(), "jwks_file", Value::Null), "issuers[0]: names no keys"),
        (with(good_issuer(), "jwks_file", json!("")), "issuers[0].jwks_file: is empty"),
        (with(good_issuer(), "jwks_ca_file", json!("ca.pem")), "issuers[0].jwks_ca_file: is only for jwks_uri"),
        (
            with(with(good_issuer(), "jwks_file", Value::Null), "jwks_uri", json!("http://10.0.0.1/jwks")),
            "issuers[0].jwks_uri:",
        ),
        (
            with(good_issuer(), "algorithms", json!(["RS256", "HS256"])),
            "issuers[0].algorithms[1]: \"HS256\" is not an asymmetric algorithm",
        ),
        (with(good_issuer(), "algorithms", json!(["none"])), "HMAC and none are never accepted"),
        (with(good_issuer(), "algorithms", json!(["rs256"])), "issuers[0].algorithms[0]:"),
        (with(good_issuer(), "algorithms", json!([])), "issuers[0].algorithms: is an empty list"),
        (with(good_issuer(), "max_lifetime", json!("30s")), "issuers[0].max_lifetime: \"30s\" is out of range"),
        (with(good_issuer(), "max_lifetime", json!("25h")), "issuers[0].max_lifetime:"),
        (with(good_issuer(), "max_lifetime", json!("soon")), "issuers[0].max_lifetime: \"soon\" is not a duration"),
        (with(good_issuer(), "leeway", json!("6m")), "issuers[0].leeway: \"6m\" is out of range"),
        (with(good_issuer(), "claims", json!(["/a~2"])), "issuers[0].claims[0]: \"/a~2\" is not a JSON Pointer"),
        (with(good_issuer(), "claims", json!(["tid", "tid"])), "issuers[0].claims[1]: \"tid\" is named twice"),
        (with(good_issuer(), "claims", json!([""])), "issuers[0].claims[0]:"),
        (with(good_issuer(), "claims", json!(["sub"])), "issuers[0].claims[0]: \"sub\" is always"),
        (
            with(good_issuer(), "claims", json!((0..17).map(|i| format!("c{i}")).collect::<Vec<_>>())),
            "issuers[0].claims: names 17 claims",
        ),
        (with(good_issuer(), "colour", json!("blue")), "unknown field `colour`"),
    ];
    for (issuer, want) in cases {
        let got = file_flaw(issuer.clone());
        assert!(got.contains(want), "{issuer}\n  got:  {got}\n  want: {want}");
    }
    let file_cases: Vec<(Value, &str)> = vec![
        (json!({"version": 2, "issuers": [good_issuer()]}), "version: 2 is not a version"),
        (json!({"version": 1, "issuers": []}), "issuers: is empty"),
        (
            json!({"version": 1, "max_token_bytes": 511, "issuers": [good_issuer()]}),
            "max_token_bytes: 511 is out of range",
        ),
        (json!({"version": 1, "max_token_bytes": 7169, "issuers": [good_issuer()]}), "max_token_bytes: 7169"),
        (json!({"version": 1, "issuers": [good_issuer(), good_issuer()]}), "issuers[1].name: \"gh\" names an earlier"),
        (
            json!({"version": 1, "issuers": [good_issuer(), with(good_issuer(), "name", json!("gh2"))]}),
            "issuers[1].issuer:",
        ),
        (json!({"version": 1, "issuers": [good_issuer()], "extra": 1}), "unknown field `extra`"),
        (json!([]), "not a valid bearer issuers file"),
    ];
    for (file, want) in file_cases {
        let got = file_flaw_of(file.clone());
        assert!(got.contains(want), "{file}\n  got:  {got}\n  want: {want}");
    }
    // The bounds themselves are allowed.
    for (key, value) in [("max_lifetime", "1m"), ("max_lifetime", "1d"), ("leeway", "5m"), ("leeway", "0")] {
        let file = json!({"version": 1, "max_token_bytes": 7168, "issuers": [with(good_issuer(), key, json!(value))]});
        IssuersFile::parse(file.to_string().as_bytes(), Path::new("/")).unwrap();
    }
}

// ---- JWKS ----

#[test]
fn jwks_keys_are_skipped_with_their_reason() {
    let mut weak = rsa().jwk("weak");
    weak["n"] = json!(b64(&[0xff; 128]));
    let mut rs_on_ec = Signer::p256().jwk("ec-rs");
    rs_on_ec["alg"] = json!("RS256");
    let mut enc = rsa().jwk("enc");
    enc["use"] = json!("enc");
    let mut short_ec = Signer::p256().jwk("short");
    short_ec["x"] = json!(b64(&[1; 31]));
    let set = json!({"keys": [
        {"kty": "oct", "kid": "hmac", "k": b64(b"secret")},
        weak, rs_on_ec, enc, short_ec,
        {"kty": "EC", "kid": "p521", "crv": "P-521", "x": "AA", "y": "AA"},
        {"kty": "XYZ", "kid": "odd"},
        {"kid": "nokty"},
        "not an object",
        rsa().jwk("good"), Signer::p384().jwk("p384"), Signer::ed().jwk("ed"),
    ]});
    let parsed = jwks::parse(set.to_string().as_bytes()).unwrap();
    assert_eq!(parsed.set.kids(), ["good", "p384", "ed"]);
    let skipped = parsed.skipped.join("\n");
    for want in [
        "kid hmac: a symmetric key (kty oct)",
        "kid weak: an RSA key of 1024 bits is too weak",
        "kid ec-rs: its alg RS256 is not an accepted algorithm for an EC P-256 key",
        "kid enc: \"use\" is \"enc\"",
        "kid short: its x and y are 31 and 32 bytes",
        "kid p521: kty EC with crv P-521",
        "kid odd: kty XYZ is not used",
        "kid nokty: the JWK has no \"kty\"",
        "keys[8]: not a JWK object",
    ] {
        assert!(skipped.contains(want), "{skipped}\n  want: {want}");
    }
    assert_eq!(parsed.skipped.len(), 9);
    // Nothing usable is a failed load; so are too many keys, too many bytes, and not JSON.
    let only_hmac = json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).to_string();
    assert!(jwks::parse(only_hmac.as_bytes()).unwrap_err().contains("no usable key"));
    let many = json!({ "keys": vec![rsa().jwk("k"); 101] }).to_string();
    assert!(jwks::parse(many.as_bytes()).unwrap_err().contains("101 keys"));
    assert!(jwks::parse(&vec![b' '; jwks::MAX_JWKS_BYTES + 1]).unwrap_err().contains("larger than"));
    assert!(jwks::parse(b"<html>").unwrap_err().contains("not a JWKS"));
}

// ---- the codes of §3 ----

#[test]
fn every_key_type_verifies_and_gives_the_identity() {
    let signers = [(Signer::p256(), "ES256"), (Signer::p384(), "ES384"), (Signer::ed(), "EdDSA")];
    let mut keys: Vec<Value> = signers.iter().map(|(s, alg)| s.jwk(alg)).collect();
    keys.push(rsa().jwk("r1"));
    let fake = FakeUrl::serving(&keys);
    let issuer = issuer_with(&fake, json!({}));
    for (signer, alg) in &signers {
        let token = signer.sign(&json!({"alg": alg, "kid": alg}), &claims());
        check(&issuer, &token, NOW).unwrap_or_else(|r| panic!("{alg}: {r:?}"));
    }
    let token = rsa().sign(&json!({"alg": "PS256", "kid": "r1"}), &claims());
    let id = check(&issuer, &token, NOW).unwrap();
    assert_eq!(id.issuer, "k8s");
    assert_eq!(id.iss, ISS);
    assert_eq!(id.sub, "system:serviceaccount:batch:report");
    assert_eq!(id.jti.as_deref(), Some("j-1"));
    assert_eq!(id.expires_at, NOW + 600);
    assert_eq!(id.token_sha256, crate::core::keys::sha256_hex(token.as_bytes())[..16]);
    assert_eq!(id.claims["/kubernetes.io/namespace"], ClaimValue::One("batch".into()));
    assert_eq!(id.claims["/kubernetes.io/serviceaccount/name"], ClaimValue::One("report".into()));
    assert_eq!(id.client_key(), "bearer:k8s:system:serviceaccount:batch:report");
    // The identity's Debug and the refusal's detail hold no token.
    let shown = format!("{id:?}");
    assert!(!shown.contains(&token) && !shown.contains(token.split('.').nth(2).unwrap()), "{shown}");
    assert_eq!(fake.fetches(), 1);
}

#[test]
fn refusals_before_the_key() {
    let (_fake, issuer) = standard();
    let good = rsa().sign(&rs256("r1"), &claims());
    let run = |auth: Option<&str>, extra: bool, query: &str| {
        let presented = Presented { authorization: auth, extra_authorization: extra, query };
        verify::verify(std::slice::from_ref(&issuer), 1024, &presented, NOW).map(|_| ()).unwrap_err().code
    };
    let bearer = format!("Bearer {good}");
    assert_eq!(run(Some(&bearer), false, "access_token=x"), Code::TokenInQuery);
    assert_eq!(run(Some(&bearer), false, "a=1&ACCESS_TOKEN=x"), Code::TokenInQuery);
    assert_eq!(run(None, false, &format!("t={good}")), Code::TokenInQuery);
    assert_eq!(run(None, false, "a=1.2.3&b=x"), Code::NoToken, "dots alone are not a JWT");
    assert_eq!(run(None, false, ""), Code::NoToken);
    assert_eq!(run(Some("Basic dXNlcjpwYXNz"), false, ""), Code::NoToken);
    assert_eq!(run(Some("Bearer"), false, ""), Code::NoToken);
    assert_eq!(run(Some("Bearer   "), false, ""), Code::NoToken);
    assert_eq!(run(Some(&bearer), true, ""), Code::Malformed);
    let long = format!("Bearer {}", "a".repeat(1025));
    assert_eq!(run(Some(&long), false, ""), Code::Oversized);
    for bad in ["a.b", "e30.e30.e30.e30", "e30.e30.e30.e30.e30", "eyJhbGciOiJSUzI1NiJ9.e30.c2ln=", "W10.e30.c2ln"] {
        assert_eq!(run(Some(&format!("Bearer {bad}")), false, ""), Code::Malformed, "{bad}");
    }
    // The scheme in any case; the token itself is not trimmed inside.
    let id = check(&issuer, &good, NOW).unwrap();
    let presented = Presented { authorization: Some(&format!("bEaReR {good}")), extra_authorization: false, query: "" };
    assert_eq!(verify::verify(std::slice::from_ref(&issuer), 4096, &presented, NOW).unwrap(), id);
}

#[test]
fn refusals_of_the_header_and_issuer() {
    let (fake, issuer) = standard();
    let unsigned = |header: Value, claims: Value| {
        format!("{}.{}.", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()))
    };
    assert_eq!(code(&issuer, &unsigned(json!({"alg": "none"}), claims()), NOW), Code::AlgNotAllowed);
    assert_eq!(code(&issuer, &unsigned(json!({"alg": "RS256", "crit": ["b64"]}), claims()), NOW), Code::Malformed);
    assert_eq!(code(&issuer, &unsigned(json!({"typ": "JWT"}), claims()), NOW), Code::Malformed);
    assert_eq!(code(&issuer, &unsigned(json!({"alg": "RSA-OAEP", "enc": "A256GCM"}), claims()), NOW), Code::Malformed);
    // HS256 "signed" with the issuer's public key (the key-confusion attack): never tried.
    let public_der = match rsa() {
        Signer::Rsa(k) => k.public_key().as_ref().to_vec(),
        _ => unreachable!(),
    };
    let header = json!({"alg": "HS256", "kid": "r1"});
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims().to_string().as_bytes()));
    let mac =
        aws_lc_rs::hmac::sign(&aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &public_der), input.as_bytes());
    let hs256 = format!("{input}.{}", b64(mac.as_ref()));
    assert_eq!(code(&issuer, &hs256, NOW), Code::AlgNotAllowed);
    // The issuer: missing, other, a trailing slash.
    for iss in [Value::Null, json!("https://other.example.org"), json!(format!("{ISS}/")), json!(5)] {
        let mut c = claims();
        c["iss"] = iss.clone();
        assert_eq!(code(&issuer, &rsa().sign(&rs256("r1"), &c), NOW), Code::WrongIssuer, "{iss}");
    }
    // An accepted algorithm the issuer is not trusted with.
    let only_rs = issuer_with(&fake, json!({"algorithms": ["RS256"]}));
    let ps = rsa().sign(&json!({"alg": "PS256", "kid": "r1"}), &claims());
    assert_eq!(code(&only_rs, &ps, NOW), Code::AlgNotAllowed);
    let detail = check(&only_rs, &ps, NOW).unwrap_err().detail;
    assert!(detail.contains("PS256") && detail.contains("k8s"), "{detail}");
}

#[test]
fn refusals_of_key_and_signature() {
    let (fake, issuer) = standard();
    // A kid the issuer does not publish; an embedded jwk or jku is never used to find a key.
    let mut header = rs256("nope");
    header["jwk"] = rsa2().jwk("nope");
    header["jku"] = json!("https://attacker.example/jwks");
    let forged = rsa2().sign(&header, &claims());
    assert_eq!(code(&issuer, &forged, NOW), Code::UnknownKid);
    // The right kid, another key's signature; a tampered payload.
    assert_eq!(code(&issuer, &rsa2().sign(&rs256("r1"), &claims()), NOW), Code::BadSignature);
    let good = rsa().sign(&rs256("r1"), &claims());
    let parts: Vec<&str> = good.split('.').collect();
    let mut c = claims();
    c["sub"] = json!("system:serviceaccount:kube-system:admin");
    let tampered = format!("{}.{}.{}", parts[0], b64(c.to_string().as_bytes()), parts[2]);
    assert_eq!(code(&issuer, &tampered, NOW), Code::BadSignature);
    // An RSA kid named by an ES256 token: the key is not tried with another algorithm.
    let es = Signer::p256().sign(&json!({"alg": "ES256", "kid": "r1"}), &claims());
    assert_eq!(code(&issuer, &es, NOW), Code::UnknownKid);
    // A kid that is not a string.
    assert_eq!(code(&issuer, &rsa().sign(&json!({"alg": "RS256", "kid": 1}), &claims()), NOW), Code::Malformed);
    // Keys never loaded: 503.
    let down = FakeUrl::default();
    let unavailable = issuer_with(&down, json!({}));
    let refused = check(&unavailable, &good, NOW).unwrap_err();
    assert_eq!(
        (refused.code, refused.code.status(), refused.code.retry_after()),
        (Code::JwksUnavailable, 503, Some("5"))
    );
    // No detail holds the token or its signature.
    for r in [check(&issuer, &forged, NOW).unwrap_err(), check(&issuer, &tampered, NOW).unwrap_err()] {
        assert!(!r.detail.contains(parts[2]) && !r.detail.contains("eyJ"), "{}", r.detail);
    }
    assert_eq!(fake.fetches(), 2, "the start, and one refetch for the unknown kid");
}

#[test]
fn refusals_of_the_claims_in_order() {
    let (_fake, issuer) = standard();
    let signed = |edit: &dyn Fn(&mut Value)| {
        let mut c = claims();
        edit(&mut c);
        rsa().sign(&rs256("r1"), &c)
    };
    type Edit = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Edit, Code)> = vec![
        ("no aud", Box::new(|c| drop(c.as_object_mut().unwrap().remove("aud"))), Code::WrongAudience),
        ("other aud", Box::new(|c| c["aud"] = json!("other")), Code::WrongAudience),
        ("aud list without us", Box::new(|c| c["aud"] = json!(["a", "b"])), Code::WrongAudience),
        ("aud of another case", Box::new(|c| c["aud"] = json!("WIF-SERVE")), Code::WrongAudience),
        ("aud not a string", Box::new(|c| c["aud"] = json!(7)), Code::WrongAudience),
        ("no exp", Box::new(|c| drop(c.as_object_mut().unwrap().remove("exp"))), Code::MissingClaim),
        ("exp a string", Box::new(|c| c["exp"] = json!("soon")), Code::MissingClaim),
        ("expired", Box::new(|c| c["exp"] = json!(NOW - 30)), Code::Expired),
        ("nbf ahead", Box::new(|c| c["nbf"] = json!(NOW + 31)), Code::NotYetValid),
        ("iat ahead", Box::new(|c| c["iat"] = json!(NOW + 31)), Code::NotYetValid),
        ("nbf a string", Box::new(|c| c["nbf"] = json!("x")), Code::Malformed),
        ("too long", Box::new(|c| c["exp"] = json!(NOW - 10 + 7201)), Code::LifetimeTooLong),
        ("no sub", Box::new(|c| drop(c.as_object_mut().unwrap().remove("sub"))), Code::MissingClaim),
        ("empty sub", Box::new(|c| c["sub"] = json!("")), Code::MissingClaim),
        ("numeric sub", Box::new(|c| c["sub"] = json!(5)), Code::MissingClaim),
        ("sub with a line break", Box::new(|c| c["sub"] = json!("alice\nadmin")), Code::MissingClaim),
        ("sub with a bidi override", Box::new(|c| c["sub"] = json!("report\u{202e}nimda")), Code::MissingClaim),
        ("long sub", Box::new(|c| c["sub"] = json!("s".repeat(1025))), Code::MissingClaim),
        // First failure wins: a wrong audience on an expired token is a wrong audience.
        (
            "aud before exp",
            Box::new(|c| {
                c["aud"] = json!("x");
                c["exp"] = json!(NOW - 100)
            }),
            Code::WrongAudience,
        ),
        (
            "exp before sub",
            Box::new(|c| {
                c["sub"] = json!("");
                c["exp"] = json!(NOW - 100)
            }),
            Code::Expired,
        ),
    ];
    for (what, edit, want) in cases {
        assert_eq!(code(&issuer, &signed(&*edit), NOW), want, "{what}");
    }
    // Accepted: the audience list holding ours, a float exp, a sub of 1024 bytes.
    for edit in [
        Box::new(|c: &mut Value| c["aud"] = json!(["x", AUD])) as Edit,
        Box::new(|c: &mut Value| c["exp"] = json!(NOW as f64 + 0.5)),
        Box::new(|c: &mut Value| c["sub"] = json!("s".repeat(1024))),
    ] {
        check(&issuer, &signed(&*edit), NOW).unwrap();
    }
    let detail = check(&issuer, &signed(&|c| c["aud"] = json!(["a", "b"])), NOW).unwrap_err().detail;
    assert!(detail.contains(r#"["a","b"]"#), "{detail}");
}

#[test]
fn leeway_and_lifetime_edges() {
    let (_fake, issuer) = standard();
    let at = |exp: i64, iat: Option<i64>, nbf: Option<i64>| {
        let mut c = claims();
        c["exp"] = json!(exp);
        c["iat"] = iat.map_or(Value::Null, |v| json!(v));
        c["nbf"] = nbf.map_or(Value::Null, |v| json!(v));
        let obj = c.as_object_mut().unwrap();
        obj.retain(|_, v| !v.is_null());
        rsa().sign(&rs256("r1"), &c)
    };
    // exp + leeway (30 s) is the first refused second.
    assert!(check(&issuer, &at(NOW - 29, Some(NOW - 60), None), NOW).is_ok());
    assert_eq!(code(&issuer, &at(NOW - 30, Some(NOW - 60), None), NOW), Code::Expired);
    // nbf and iat up to now + leeway are fine, one second more is not.
    assert!(check(&issuer, &at(NOW + 60, Some(NOW + 30), Some(NOW + 30)), NOW).is_ok());
    assert_eq!(code(&issuer, &at(NOW + 60, Some(NOW), Some(NOW + 31)), NOW), Code::NotYetValid);
    // Lifetime: from iat, else nbf, else now; exactly max_lifetime is allowed.
    assert!(check(&issuer, &at(NOW + 7200, Some(NOW), None), NOW).is_ok());
    assert_eq!(code(&issuer, &at(NOW + 7201, Some(NOW), None), NOW), Code::LifetimeTooLong);
    assert_eq!(code(&issuer, &at(NOW + 7201, None, Some(NOW)), NOW), Code::LifetimeTooLong);
    assert!(check(&issuer, &at(NOW + 7000, None, Some(NOW - 200)), NOW).is_ok());
    assert_eq!(code(&issuer, &at(NOW + 7001, None, Some(NOW - 200)), NOW), Code::LifetimeTooLong);
    assert!(check(&issuer, &at(NOW + 7200, None, None), NOW).is_ok());
    assert_eq!(code(&issuer, &at(NOW + 7201, None, None), NOW), Code::LifetimeTooLong);
    // Leeway 0.
    let fake = FakeUrl::serving(&[rsa().jwk("r1")]);
    let strict = issuer_with(&fake, json!({"leeway": "0s", "max_lifetime": "1m"}));
    assert_eq!(code(&strict, &at(NOW, Some(NOW - 10), None), NOW), Code::Expired);
    assert_eq!(code(&strict, &at(NOW + 50, Some(NOW + 1), None), NOW), Code::NotYetValid);
    assert_eq!(code(&strict, &at(NOW + 61, Some(NOW), None), NOW), Code::LifetimeTooLong);
}

#[test]
fn without_kid_only_a_single_fitting_key_is_used() {
    let no_kid = json!({"alg": "RS256"});
    let one = FakeUrl::serving(&[rsa().jwk("r1"), Signer::p256().jwk("e1")]);
    let issuer = issuer_with(&one, json!({}));
    check(&issuer, &rsa().sign(&no_kid, &claims()), NOW).unwrap();
    let two = FakeUrl::serving(&[rsa().jwk("r1"), rsa2().jwk("r2")]);
    let issuer = issuer_with(&two, json!({}));
    assert_eq!(code(&issuer, &rsa().sign(&no_kid, &claims()), NOW), Code::UnknownKid);
    // A JWK alg pins its key: an RS256-only key is not the one key for PS256.
    let mut pinned = rsa().jwk("r1");
    pinned["alg"] = json!("RS256");
    let pinned = FakeUrl::serving(&[pinned]);
    let issuer = issuer_with(&pinned, json!({}));
    check(&issuer, &rsa().sign(&no_kid, &claims()), NOW).unwrap();
    assert_eq!(code(&issuer, &rsa().sign(&json!({"alg": "PS256"}), &claims()), NOW), Code::UnknownKid);
    assert_eq!(code(&issuer, &rsa().sign(&json!({"alg": "PS256", "kid": "r1"}), &claims()), NOW), Code::UnknownKid);
    assert_eq!(two.fetches() + one.fetches() + pinned.fetches(), 3, "no refetch without a kid");
}

#[test]
fn unknown_kids_cost_one_fetch_a_minute_and_rotation_is_picked_up() {
    let (fake, issuer) = standard();
    let made_up = |i: usize| rsa2().sign(&rs256(&format!("made-up-{i}")), &claims());
    for i in 0..50 {
        assert_eq!(code(&issuer, &made_up(i), NOW + (i as i64)), Code::UnknownKid);
    }
    assert_eq!(fake.fetches(), 2, "the start and one refetch in the first minute");
    assert_eq!(code(&issuer, &made_up(99), NOW + UNKNOWN_KID_INTERVAL - 1), Code::UnknownKid);
    assert_eq!(fake.fetches(), 2);
    assert_eq!(code(&issuer, &made_up(100), NOW + UNKNOWN_KID_INTERVAL), Code::UnknownKid);
    assert_eq!(fake.fetches(), 3, "a minute later: one more");
    // The issuer rotates: the first token with the new kid fetches and is accepted.
    fake.serve(&[rsa2().jwk("r2"), rsa().jwk("r1")]);
    let rotated = rsa2().sign(&rs256("r2"), &claims());
    let later = NOW + 2 * UNKNOWN_KID_INTERVAL;
    assert_eq!(check(&issuer, &rotated, later).unwrap().sub, "system:serviceaccount:batch:report");
    assert_eq!(fake.fetches(), 4);
    check(&issuer, &rotated, later).unwrap();
    check(&issuer, &rsa().sign(&rs256("r1"), &claims()), later).unwrap();
    assert_eq!(fake.fetches(), 4, "known kids never fetch");
    // A failed refetch keeps the keys.
    fake.serve(&[]);
    *fake.body.lock().unwrap() = Vec::new();
    assert_eq!(code(&issuer, &made_up(1), later + UNKNOWN_KID_INTERVAL), Code::UnknownKid);
    assert_eq!(fake.fetches(), 5);
    check(&issuer, &rotated, later + UNKNOWN_KID_INTERVAL).unwrap();
}

#[test]
fn concurrent_unknown_kids_wait_for_one_fetch_and_look_again() {
    let fake = FakeUrl { delay: Duration::from_millis(300), ..FakeUrl::serving(&[rsa().jwk("r1")]) };
    let issuer = issuer_with(&fake, json!({}));
    fake.serve(&[rsa().jwk("r1"), rsa2().jwk("r2")]);
    let rotated = rsa2().sign(&rs256("r2"), &claims());
    let results: Vec<_> = std::thread::scope(|s| {
        let running: Vec<_> = (0..8).map(|_| s.spawn(|| check(&issuer, &rotated, NOW).map(|id| id.sub))).collect();
        running.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(fake.fetches(), 2, "the start and one refetch for all eight");
    // Made-up kids arriving together: one fetch, the others wait and are refused.
    let made_up = rsa2().sign(&rs256("made-up"), &claims());
    let later = NOW + UNKNOWN_KID_INTERVAL;
    let codes: Vec<Code> = std::thread::scope(|s| {
        let running: Vec<_> = (0..8).map(|_| s.spawn(|| code(&issuer, &made_up, later))).collect();
        running.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(codes.iter().all(|c| *c == Code::UnknownKid), "{codes:?}");
    assert!(fake.fetches() <= 4, "{} fetches", fake.fetches());
}

#[test]
fn within_the_minute_an_unknown_kid_is_refused_at_once_even_behind_a_hanging_load() {
    let fake = FakeUrl { delay: Duration::from_millis(1500), ..FakeUrl::serving(&[rsa().jwk("r1")]) };
    let issuer = issuer_with(&fake, json!({}));
    let made_up = |i: usize| rsa2().sign(&rs256(&format!("made-up-{i}")), &claims());
    assert_eq!(code(&issuer, &made_up(0), NOW), Code::UnknownKid);
    assert_eq!(fake.fetches(), 2, "the start and the minute's refetch");
    // A refresh hangs (a slow issuer); an unknown kid within the minute does not wait for it.
    issuer.cache.spawn_load();
    while fake.fetches() < 3 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let started = std::time::Instant::now();
    assert_eq!(code(&issuer, &made_up(1), NOW + 5), Code::UnknownKid);
    assert!(started.elapsed() < Duration::from_millis(500), "waited {:?} behind the refresh", started.elapsed());
    // A known kid never waits either.
    check(&issuer, &rsa().sign(&rs256("r1"), &claims()), NOW + 5).unwrap();
    assert!(started.elapsed() < Duration::from_millis(500));
}

#[test]
fn url_keys_retry_refresh_and_age_out() {
    let fake = FakeUrl::default();
    let cache = Arc::new(Cache::new("k8s", Box::new(fake.clone())));
    assert!(cache.load(NOW).is_err());
    assert!(matches!(cache.lookup(NOW), Lookup::Unavailable));
    assert!(!cache.due(NOW + RETRY_INTERVAL - 1));
    assert!(cache.due(NOW + RETRY_INTERVAL));
    fake.serve(&[rsa().jwk("r1")]);
    cache.load(NOW + RETRY_INTERVAL).unwrap();
    let loaded = NOW + RETRY_INTERVAL;
    assert!(!cache.due(loaded + 3599));
    assert!(cache.due(loaded + 3600), "hourly refresh");
    let stats = cache.stats(loaded + 5);
    assert_eq!((stats.keys, stats.age_secs, stats.fetches_ok, stats.fetches_failed), (1, Some(5), 1, 1));
    // Refreshes fail for a day: the keys stay until then, then are dropped.
    *fake.body.lock().unwrap() = Vec::new();
    assert!(cache.load(loaded + 3600).is_err());
    assert!(!cache.due(loaded + 3600 + 59), "a failed refresh is retried after a minute");
    assert!(matches!(cache.lookup(loaded + MAX_KEY_AGE - 1), Lookup::Keys(..)));
    assert!(matches!(cache.lookup(loaded + MAX_KEY_AGE), Lookup::Unavailable));
    assert_eq!(cache.stats(loaded + MAX_KEY_AGE).keys, 0);
    assert!(cache.due(loaded + MAX_KEY_AGE));
    // The background load from tick.
    fake.serve(&[rsa().jwk("r1")]);
    cache.tick(loaded + MAX_KEY_AGE + RETRY_INTERVAL);
    for _ in 0..200 {
        if cache.stats(0).fetches_ok == 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(cache.stats(0).fetches_ok, 2);
}

#[test]
fn identity_claims_by_name_and_pointer() {
    let cfg = config(json!({"claims": ["repository", "/kubernetes.io/serviceaccount/name", "run", "ok",
                                      "roles", "mixed", "obj", "absent", "/a~1b"]}));
    let claims = json!({"repository": "octo/app", "run": 42, "ok": true, "roles": ["r1", "r2"],
                        "mixed": ["a", 1], "obj": {"x": 1}, "a/b": "slash",
                        "kubernetes.io": {"serviceaccount": {"name": "report"}}});
    let got = identity_claims(&cfg, &claims);
    let want: BTreeMap<String, ClaimValue> = [
        ("repository", ClaimValue::One("octo/app".into())),
        ("/kubernetes.io/serviceaccount/name", ClaimValue::One("report".into())),
        ("run", ClaimValue::One("42".into())),
        ("ok", ClaimValue::One("true".into())),
        ("roles", ClaimValue::Many(vec!["r1".into(), "r2".into()])),
        ("/a~1b", ClaimValue::One("slash".into())),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    assert_eq!(got, want);
    assert!(got["roles"].has("r2") && !got["roles"].has("r3"));
}

// ---- Bearer::load with files ----

fn write(dir: &Path, name: &str, body: &str) {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, body).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[test]
fn load_from_files_verify_and_follow_changes() {
    let dir = tempfile::tempdir().unwrap();
    let es = Signer::p256();
    let file = json!({"version": 1, "issuers": [{"name": "ci", "kind": "github", "issuer": ISS,
                      "audience": ["https://tokens.example.org", AUD], "jwks_file": "ci.json"}]});
    write(dir.path(), "issuers.json", &file.to_string());
    // A missing or keyless JWKS file stops the start.
    let err = Bearer::load(&dir.path().join("issuers.json")).err().unwrap();
    assert_eq!(err.kind(), crate::core::error::Kind::Usage, "{err}");
    write(dir.path(), "ci.json", &json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}).to_string());
    let err = Bearer::load(&dir.path().join("issuers.json")).err().unwrap().to_string();
    assert!(err.contains("bearer issuer ci") && err.contains("no usable key"), "{err}");
    write(dir.path(), "ci.json", &json!({"keys": [es.jwk("e1")]}).to_string());
    let bearer = Bearer::load(&dir.path().join("issuers.json")).unwrap();
    assert_eq!(bearer.issuer_names(), ["ci"]);
    let now = crate::core::clock::now_unix();
    let mut c = claims();
    for (k, v) in [("iat", now), ("nbf", now), ("exp", now + 300)] {
        c[k] = json!(v);
    }
    c["repository"] = json!("octo/app");
    let token = es.sign(&json!({"alg": "ES256", "kid": "e1"}), &c);
    let id = bearer.verify(Some(&format!("Bearer {token}")), false, "").unwrap();
    assert_eq!(id.claims.get("repository"), Some(&ClaimValue::One("octo/app".into())));
    assert_eq!(bearer.verify(None, false, "").unwrap_err().code, Code::NoToken);
    // A new key in the file is picked up by tick; a bad new file keeps the keys.
    let es2 = Signer::p256();
    write(dir.path(), "ci.json", &json!({"keys": [es2.jwk("e2")]}).to_string());
    bearer.tick();
    let token2 = es2.sign(&json!({"alg": "ES256", "kid": "e2"}), &c);
    bearer.verify(Some(&format!("Bearer {token2}")), false, "").unwrap();
    write(dir.path(), "ci.json", "{not json");
    bearer.tick();
    bearer.verify(Some(&format!("Bearer {token2}")), false, "").unwrap();
    let stats = bearer.stats();
    assert_eq!((stats[0].name.as_str(), stats[0].keys, stats[0].fetches_ok, stats[0].fetches_failed), ("ci", 1, 2, 1));
    // SIGHUP re-reads the file at once.
    write(dir.path(), "ci.json", &json!({"keys": [es.jwk("e1")]}).to_string());
    bearer.reload();
    bearer.verify(Some(&format!("Bearer {token}")), false, "").unwrap();
    assert_eq!(bearer.verify(Some(&format!("Bearer {token2}")), false, "").unwrap_err().code, Code::UnknownKid);
}

#[test]
fn an_unreachable_jwks_url_does_not_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = json!({"version": 1, "issuers": [{"name": "k8s", "issuer": ISS, "audience": AUD,
                      "jwks_uri": "http://127.0.0.1:9/jwks"}]});
    write(dir.path(), "issuers.json", &file.to_string());
    let bearer = Bearer::load(&dir.path().join("issuers.json")).unwrap();
    let token = rsa().sign(&rs256("r1"), &claims());
    let refused = bearer.verify(Some(&format!("Bearer {token}")), false, "").unwrap_err();
    assert_eq!(refused.code, Code::JwksUnavailable);
    assert_eq!(bearer.stats()[0].fetches_failed, 1);
    assert_eq!(bearer.stats()[0].age_secs, None);
}

#[test]
fn codes_have_their_words() {
    for code in Code::ALL {
        let words = code.client_words();
        assert!(!words.contains('"') && !words.contains('\\'), "{words}");
        assert_eq!(code.status() == 503, code == Code::JwksUnavailable);
    }
    assert_eq!(Code::NoToken.oauth_error(), "unauthorized");
    assert_eq!(Code::Malformed.oauth_error(), "invalid_request");
    assert_eq!(Code::Expired.oauth_error(), "invalid_token");
    let labels: std::collections::BTreeSet<&str> = Code::ALL.iter().map(|c| c.label()).collect();
    assert_eq!(labels.len(), Code::ALL.len());
}
