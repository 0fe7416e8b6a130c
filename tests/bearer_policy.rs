//! wif-serve's bearer clients beside certificate clients: sessions, identities, the
//! allow-list, the policy, the ledger, the logs and the metrics (spec §4).

use crate::common::jwt;
use serde_json::json;

#[test]
fn test_keys_sign_tokens_that_verify_with_their_jwks() {
    for key in [jwt::signing_key_rsa(), jwt::signing_key_ec()] {
        let claims = jwt::claims("https://issuer.test", "wif-serve", "workload-1");
        let token = jwt::sign(&key, &json!({}), &claims);
        let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_str(&jwt::jwks_json(&[&key])).unwrap();
        let jwk = jwks.find(&key.kid).expect("the key is in its JWKS");
        let alg: jsonwebtoken::Algorithm = key.alg().parse().unwrap();
        let mut v = jsonwebtoken::Validation::new(alg);
        v.set_audience(&["wif-serve"]);
        let data =
            jsonwebtoken::decode::<serde_json::Value>(&token, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &v)
                .unwrap_or_else(|e| panic!("{} token does not verify: {e}", key.alg()));
        assert_eq!(data.claims["sub"], "workload-1");
        // A token without kid, and one whose payload is swapped, do not verify.
        let no_kid = jwt::sign(&key, &json!({"kid": null}), &claims);
        let header: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                no_kid.split('.').next().unwrap(),
            )
            .unwrap(),
        )
        .unwrap();
        assert!(header.get("kid").is_none(), "{header}");
        let other = jwt::sign(&key, &json!({}), &jwt::claims("https://issuer.test", "wif-serve", "workload-2"));
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], other.split('.').nth(1).unwrap(), parts[2]);
        assert!(jsonwebtoken::decode::<serde_json::Value>(
            &tampered,
            &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(),
            &v
        )
        .is_err());
    }
}
