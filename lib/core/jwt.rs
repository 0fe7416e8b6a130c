//! JWT helpers that do not verify: taking a compact JWS apart (for a verifier, which then
//! checks the signature itself, and for display), reading numeric claims, and the
//! non-secret facts a later step needs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// A random RFC 4122 version-4 UUID, the form MSAL uses for `jti` (and Azure for ids).
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid_text(b)
}

/// Sixteen bytes in a UUID's text form: lowercase hex, grouped 8-4-4-4-12.
pub fn uuid_text(b: [u8; 16]) -> String {
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// A compact JWS taken apart, header and claims decoded; the signature is not verified.
pub struct Jws {
    /// The protected header (a JSON object).
    pub header: Value,
    /// The claims (a JSON object).
    pub claims: Value,
    /// `header.payload`: what the signature covers.
    pub signing_input: String,
    /// The signature bytes.
    pub signature: Vec<u8>,
    /// Whether the header or the claims name a member twice in one object, at any depth.
    /// RFC 7515 §5.2 and RFC 7519 §4 let a parser either refuse such a token or keep the last
    /// member; a verifier refuses it, so that what it checks can never differ from what
    /// another reader of the same token (or the issuer that signed it) takes it to say.
    pub repeats_a_member: bool,
}

/// How the segments of a compact JWS are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// As a verifier reads them: unpadded base64url, nothing around the token.
    Strict,
    /// As a display reads them: whitespace around the token and `=` padding tolerated.
    Lenient,
}

/// The three segments of a compact JWS (exactly three).
fn segments(token: &str) -> Option<[&str; 3]> {
    let mut parts = token.split('.');
    let found = [parts.next()?, parts.next()?, parts.next()?];
    parts.next().is_none().then_some(found)
}

fn decode_segment(segment: &str, reading: Reading) -> Option<Vec<u8>> {
    match reading {
        Reading::Strict => URL_SAFE_NO_PAD.decode(segment).ok(),
        Reading::Lenient => base64url_decode(segment),
    }
}

/// A JSON object and the bytes it was read from.
type Decoded = (Value, Vec<u8>);

/// A segment holding a JSON object, and its decoded bytes.
fn object_segment(segment: &str, reading: Reading) -> Option<Decoded> {
    let bytes = decode_segment(segment, reading)?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value.is_object().then_some((value, bytes))
}

/// The header and claims of a compact JWS, and the segments they came from.
fn read(token: &str, reading: Reading) -> Option<([Decoded; 2], [&str; 3])> {
    let token = if reading == Reading::Lenient { token.trim() } else { token };
    let parts = segments(token)?;
    let header = object_segment(parts[0], reading)?;
    let claims = object_segment(parts[1], reading)?;
    Some(([header, claims], parts))
}

impl Jws {
    /// Parses a compact JWS strictly, as a verifier must: three unpadded base64url
    /// segments, header and claims JSON objects, nothing around it.
    pub fn parse(token: &str) -> Option<Jws> {
        let ([(header, header_bytes), (claims, claims_bytes)], [h, c, s]) = read(token, Reading::Strict)?;
        let signature = decode_segment(s, Reading::Strict)?;
        let repeats_a_member =
            [header_bytes, claims_bytes].iter().any(|b| serde_json::from_slice::<unique::Unique>(b).is_err());
        Some(Jws { header, claims, signing_input: format!("{h}.{c}"), signature, repeats_a_member })
    }
}

/// A JSON value read only to find an object that repeats a member name (an error then).
mod unique {
    use serde::de::{Deserialize, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use std::collections::HashSet;

    pub struct Unique;

    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Unique, D::Error> {
            d.deserialize_any(Check)
        }
    }

    struct Check;

    impl<'de> Visitor<'de> for Check {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON value")
        }
        fn visit_bool<E: Error>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E: Error>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E: Error>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E: Error>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E: Error>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E: Error>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut seen = HashSet::new();
            while let Some(name) = map.next_key::<String>()? {
                if !seen.insert(name) {
                    return Err(A::Error::custom("a member name repeated"));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
    }
}

/// The decoded header and claims of a compact JWS, without verifying the signature
/// (whitespace around the token and `=` padding tolerated).
pub fn decode_unverified(token: &str) -> Option<(Value, Value)> {
    read(token, Reading::Lenient).map(|([(header, _), (claims, _)], _)| (header, claims))
}

/// Base64url with or without `=` padding (MSAL pads thumbprints), as JWT fields carry it.
pub fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// A JSON number, integer or float, as whole seconds (a float is cut toward zero, as
/// MSAL's float `exp` is meant).
pub fn whole_seconds(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| value.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// A numeric claim (`exp`, `iat`, `nbf`, …): a JSON integer or float, in whole seconds.
pub fn numeric_claim(claims: &Value, name: &str) -> Option<i64> {
    claims.get(name).and_then(whole_seconds)
}

/// The `exp` claim of a JWT (integer or float seconds), unverified.
pub fn unverified_exp(token: &str) -> Option<i64> {
    let (_, claims) = decode_unverified(token)?;
    numeric_claim(&claims, "exp")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(h: &str, c: &str) -> String {
        format!("{}.{}.sig", URL_SAFE_NO_PAD.encode(h), URL_SAFE_NO_PAD.encode(c))
    }

    fn repeats_a_member(token: &str) -> bool {
        Jws::parse(token).unwrap().repeats_a_member
    }

    #[test]
    fn repeated_member_names_are_found_at_any_depth() {
        assert!(!repeats_a_member(&make(r#"{"alg":"RS256"}"#, r#"{"sub":"a","x":{"sub":"b"},"l":[{"a":1},{"a":2}]}"#)));
        assert!(repeats_a_member(&make(r#"{"alg":"HS256","alg":"RS256"}"#, "{}")));
        assert!(repeats_a_member(&make(r#"{"alg":"RS256"}"#, r#"{"sub":"a","sub":"admin"}"#)));
        assert!(repeats_a_member(&make(r#"{"alg":"RS256"}"#, r#"{"k":[{"ns":"a","ns":"b"}]}"#)));
        // Escapes name the same member: "s\u0075b" is "sub".
        assert!(repeats_a_member(&make(r#"{"alg":"RS256"}"#, r#"{"sub":"a","s\u0075b":"b"}"#)));
    }

    #[test]
    fn decodes_and_rejects() {
        let t = make(r#"{"alg":"RS256"}"#, r#"{"sub":"a","exp":1700000000.5}"#);
        let (h, c) = decode_unverified(&t).unwrap();
        assert_eq!(h["alg"], "RS256");
        assert_eq!(c["sub"], "a");
        assert_eq!(unverified_exp(&t), Some(1_700_000_000));
        for bad in ["", "a.b", "a.b.c.d", "ya29.opaque-token", &make("[]", "{}")] {
            assert!(decode_unverified(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn strict_parse_keeps_what_was_signed() {
        let t = make(r#"{"alg":"RS256"}"#, r#"{"sub":"a"}"#);
        let jws = Jws::parse(&t).unwrap();
        assert_eq!(jws.claims["sub"], "a");
        assert_eq!(format!("{}.sig", jws.signing_input), t);
        assert_eq!(jws.signature, URL_SAFE_NO_PAD.decode("sig").unwrap());
        // A verifier takes no padding and nothing around the token; a display does.
        let padded = format!("{}=.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256"}"#), &t[t.find('.').unwrap() + 1..]);
        for lenient_only in [format!(" {t}\n"), padded] {
            assert!(Jws::parse(&lenient_only).is_none(), "{lenient_only}");
            assert!(decode_unverified(&lenient_only).is_some(), "{lenient_only}");
        }
        assert!(Jws::parse(&t.replace(".sig", ".s!g")).is_none());
    }

    #[test]
    fn numbers_may_be_floats() {
        let c = serde_json::json!({"exp": 1700000000.7, "iat": 5, "nbf": "5"});
        assert_eq!(numeric_claim(&c, "exp"), Some(1_700_000_000));
        assert_eq!(numeric_claim(&c, "iat"), Some(5));
        assert_eq!(numeric_claim(&c, "nbf"), None);
        assert_eq!(numeric_claim(&c, "auth_time"), None);
        assert_eq!(base64url_decode("AAE="), Some(vec![0, 1]));
        assert_eq!(base64url_decode("AAE"), Some(vec![0, 1]));
    }
}
