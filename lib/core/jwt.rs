//! JWT helpers that do not verify: decoding a token's header and claims for display and
//! for the non-secret facts a later step needs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

/// A random RFC 4122 version-4 UUID, the form MSAL uses for `jti` (and Azure for ids).
pub fn random_uuid() -> String {
    let mut b = [0u8; 16];
    let _ = aws_lc_rs::rand::fill(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The decoded header and claims of a compact JWS, without verifying the signature.
pub fn decode_unverified(token: &str) -> Option<(Value, Value)> {
    let mut parts = token.trim().split('.');
    let (h, c, _s) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let header: Value = serde_json::from_slice(&b64url(h)?).ok()?;
    let claims: Value = serde_json::from_slice(&b64url(c)?).ok()?;
    (header.is_object() && claims.is_object()).then_some((header, claims))
}

fn b64url(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

/// The `exp` claim of a JWT (integer or float seconds), unverified.
pub fn unverified_exp(token: &str) -> Option<i64> {
    let (_, claims) = decode_unverified(token)?;
    let exp = claims.get("exp")?;
    exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make(h: &str, c: &str) -> String {
        format!("{}.{}.sig", URL_SAFE_NO_PAD.encode(h), URL_SAFE_NO_PAD.encode(c))
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
}
