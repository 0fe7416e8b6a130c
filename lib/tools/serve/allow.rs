//! Which verified clients may fetch the token: an optional allow-list of identities taken
//! from the client certificate (subject CN, DNS or URI SAN such as a SPIFFE ID, or a pin of
//! the public key or of the whole certificate) or from a verified bearer token (its issuer,
//! and its `sub`).

use super::bearer::BearerIdentity;
use crate::core::error::{Error, Result};
use base64::Engine;
use std::sync::Arc;
use x509_parser::extensions::GeneralName;

/// What a client certificate says about its holder.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// The subject as RFC 4514 text, e.g. `CN=wif-client, O=wif test`.
    pub subject: String,
    /// The subject's common names.
    pub common_names: Vec<String>,
    /// DNS names from the subjectAltName extension.
    pub dns: Vec<String>,
    /// URIs from the subjectAltName extension (SPIFFE IDs).
    pub uris: Vec<String>,
    /// SHA-256 of the SubjectPublicKeyInfo, hex.
    pub spki_sha256: String,
    /// SHA-256 of the certificate, hex (the log's fingerprint).
    pub fingerprint: String,
    /// The end of the certificate's validity, Unix seconds (0 when it cannot be read).
    pub not_after: i64,
}

impl Identity {
    /// Reads the identity of a DER certificate (already verified by the TLS layer).
    pub fn from_der(der: &[u8]) -> Identity {
        let fingerprint = crate::core::keys::sha256_hex(der);
        let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
            return Identity { subject: "<unparsable certificate>".into(), fingerprint, ..Identity::default() };
        };
        let mut id = Identity {
            subject: cert.subject().to_string(),
            common_names: cert
                .subject()
                .iter_common_name()
                .filter_map(|a| a.as_str().ok().map(str::to_string))
                .collect(),
            spki_sha256: crate::core::keys::sha256_hex(cert.public_key().raw),
            fingerprint,
            not_after: cert.validity().not_after.timestamp(),
            ..Identity::default()
        };
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for name in &san.value.general_names {
                match name {
                    GeneralName::DNSName(d) => id.dns.push(d.to_string()),
                    GeneralName::URI(u) => id.uris.push(u.to_string()),
                    _ => {}
                }
            }
        }
        id
    }
}

/// A verified client: by its certificate, or by its bearer token (`--bearer-issuers`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// A client that presented a certificate the TLS handshake verified (shared with its
    /// connection: each request's client is a reference count, not a copy).
    Certificate(Arc<Identity>),
    /// A client without a certificate whose `Authorization: Bearer` token verified.
    Bearer(BearerIdentity),
}

/// One allowed identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rule {
    /// `cn:NAME` — a subject common name, exactly.
    Cn(String),
    /// `dns:NAME` — a DNS subjectAltName, case-insensitively.
    Dns(String),
    /// `uri:URI` — a URI subjectAltName (e.g. `spiffe://example.org/wif-client`), exactly.
    Uri(String),
    /// `spki-sha256:HEX|BASE64` — the SHA-256 of the public key (survives renewals with the same key).
    Spki(String),
    /// `cert-sha256:HEX` — the SHA-256 of the certificate itself.
    Cert(String),
    /// `bearer:ISSUER` — any token from the configured issuer of that name.
    BearerIssuer(String),
    /// `bearer:ISSUER:SUB` — tokens of that issuer with that `sub`, exactly.
    BearerSub(String, String),
}

/// The forms `--allow` accepts, for messages.
pub const RULE_FORMS: &str =
    "cn:NAME, dns:NAME, uri:URI, spki-sha256:HEX, cert-sha256:HEX, bearer:ISSUER or bearer:ISSUER:SUB";

impl std::str::FromStr for Rule {
    type Err = Error;

    fn from_str(s: &str) -> Result<Rule> {
        let bad = || Error::usage(format!("--allow {s:?} is not an identity")).hint(format!("use {RULE_FORMS}"));
        let (kind, value) = s.split_once(':').ok_or_else(bad)?;
        let value = value.trim();
        if value.is_empty() {
            return Err(bad());
        }
        match kind.trim().to_ascii_lowercase().as_str() {
            // The sub may hold colons (system:serviceaccount:NS:SA): split at the first only.
            "bearer" => Ok(match value.split_once(':') {
                None => Rule::BearerIssuer(value.to_string()),
                Some((issuer, sub)) if !issuer.is_empty() && !sub.is_empty() => {
                    Rule::BearerSub(issuer.to_string(), sub.to_string())
                }
                Some(_) => return Err(bad()),
            }),
            "cn" => Ok(Rule::Cn(value.to_string())),
            "dns" => Ok(Rule::Dns(value.to_ascii_lowercase())),
            "uri" => Ok(Rule::Uri(value.to_string())),
            "spki-sha256" | "spki" | "pin-sha256" => Ok(Rule::Spki(digest_hex(value).ok_or_else(bad)?)),
            "cert-sha256" | "sha256" | "fingerprint" => Ok(Rule::Cert(digest_hex(value).ok_or_else(bad)?)),
            _ => Err(bad()),
        }
    }
}

/// A SHA-256 digest given as hex (colons allowed) or base64 (`sha256//` prefix allowed, as curl
/// writes pins), as lower-case hex.
pub(super) fn digest_hex(s: &str) -> Option<String> {
    let mut digest = [0u8; 32];
    let unseparated: String = s.chars().filter(|c| *c != ':').collect();
    if hex::decode_to_slice(&unseparated, &mut digest).is_err() {
        let b64 = s.strip_prefix("sha256//").unwrap_or(s);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .or_else(|| crate::core::jwt::base64url_decode(b64))?;
        digest = bytes.try_into().ok()?;
    }
    Some(hex::encode(digest))
}

impl Rule {
    /// Whether the client matches this rule: certificate forms match only certificate
    /// clients, bearer forms only bearer clients.
    pub fn matches(&self, client: &Principal) -> bool {
        match client {
            Principal::Certificate(id) => self.matches_certificate(id),
            Principal::Bearer(b) => match self {
                Rule::BearerIssuer(issuer) => b.issuer == *issuer,
                Rule::BearerSub(issuer, sub) => b.issuer == *issuer && b.sub == *sub,
                _ => false,
            },
        }
    }

    fn matches_certificate(&self, id: &Identity) -> bool {
        match self {
            Rule::Cn(n) => id.common_names.iter().any(|c| c == n),
            Rule::Dns(n) => id.dns.iter().any(|d| d.eq_ignore_ascii_case(n)),
            Rule::Uri(u) => id.uris.iter().any(|x| x == u),
            Rule::Spki(h) => id.spki_sha256 == *h,
            Rule::Cert(h) => id.fingerprint == *h,
            Rule::BearerIssuer(_) | Rule::BearerSub(..) => false,
        }
    }

    /// The issuer name a bearer form names.
    fn issuer(&self) -> Option<&str> {
        match self {
            Rule::BearerIssuer(i) | Rule::BearerSub(i, _) => Some(i),
            _ => None,
        }
    }
}

/// The allow-list; empty means every client the CA vouches for.
#[derive(Clone, Debug, Default)]
pub struct AllowList {
    rules: Vec<Rule>,
}

impl AllowList {
    /// Parses `--allow` values.
    pub fn parse(values: &[String]) -> Result<AllowList> {
        let rules = values.iter().map(|v| v.parse()).collect::<Result<Vec<Rule>>>()?;
        Ok(AllowList { rules })
    }

    /// Checks that every `bearer:ISSUER` form names an issuer of `--bearer-issuers`
    /// (`issuers`: their names; empty when bearer clients are off).
    pub fn check_issuers(&self, issuers: &[&str]) -> Result<()> {
        for issuer in self.rules.iter().filter_map(Rule::issuer) {
            if !issuers.contains(&issuer) {
                let known = if issuers.is_empty() {
                    "bearer clients are off: give --bearer-issuers FILE".to_string()
                } else {
                    format!("the issuers of --bearer-issuers are {}", issuers.join(", "))
                };
                return Err(Error::usage(format!("--allow bearer:{issuer}: no issuer of that name")).hint(known));
            }
        }
        Ok(())
    }

    /// Whether a verified client may be served.
    pub fn allows(&self, client: &Principal) -> bool {
        self.rules.is_empty() || self.rules.iter().any(|r| r.matches(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> Identity {
        Identity {
            subject: "O=wif test, CN=wif-client".into(),
            common_names: vec!["wif-client".into()],
            dns: vec!["client.example.org".into()],
            uris: vec!["spiffe://example.org/wif-client".into()],
            spki_sha256: "ab".repeat(32),
            fingerprint: "cd".repeat(32),
            not_after: 0,
        }
    }

    fn allows(rule: &str) -> bool {
        AllowList::parse(&[rule.to_string()]).unwrap().allows(&Principal::Certificate(Arc::new(id())))
    }

    fn bearer(issuer: &str, sub: &str) -> Principal {
        Principal::Bearer(BearerIdentity {
            issuer: issuer.into(),
            iss: "https://issuer.example".into(),
            sub: sub.into(),
            claims: Default::default(),
            jti: None,
            token_sha256: "0123456789abcdef".into(),
            expires_at: 0,
        })
    }

    #[test]
    fn bearer_forms_match_bearer_clients_only_and_subs_keep_their_colons() {
        let list = |r: &str| AllowList::parse(&[r.to_string()]).unwrap();
        let sa = bearer("k8s-prod", "system:serviceaccount:batch:report");
        assert!(list("bearer:k8s-prod").allows(&sa));
        assert!(list("bearer:k8s-prod:system:serviceaccount:batch:report").allows(&sa));
        assert!(!list("bearer:k8s-prod:system:serviceaccount:batch").allows(&sa));
        assert!(!list("bearer:github").allows(&sa));
        assert!(!list("bearer:k8s-prod").allows(&Principal::Certificate(Arc::new(id()))));
        assert!(!list("cn:wif-client").allows(&bearer("k8s-prod", "wif-client")));
        assert!(AllowList::default().allows(&sa));
        for bad in ["bearer:", "bearer::sub", "bearer:k8s-prod:"] {
            assert!(AllowList::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert!(list("bearer:k8s-prod:x").check_issuers(&["k8s-prod"]).is_ok());
        let e = list("bearer:k8s-dev").check_issuers(&["k8s-prod"]).unwrap_err();
        assert_eq!(e.kind(), crate::core::error::Kind::Usage);
        assert!(list("bearer:k8s-prod").check_issuers(&[]).is_err());
        assert!(list("cn:x").check_issuers(&[]).is_ok());
    }

    #[test]
    fn each_kind_matches_its_field_only() {
        assert!(allows("cn:wif-client"));
        assert!(!allows("cn:wif-client-2"));
        assert!(!allows("cn:client.example.org"));
        assert!(allows("dns:Client.Example.org"));
        assert!(allows("uri:spiffe://example.org/wif-client"));
        assert!(!allows("uri:spiffe://example.org/wif-client-2"));
        assert!(allows(&format!("spki-sha256:{}", "AB".repeat(32))));
        assert!(allows(&format!("cert-sha256:{}", ["cd"; 32].join(":"))));
        assert!(!allows(&format!("cert-sha256:{}", "ab".repeat(32))));
    }

    #[test]
    fn base64_pins_like_curl() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([0xab; 32]);
        assert!(allows(&format!("spki-sha256:sha256//{b64}")));
    }

    #[test]
    fn digests_come_out_as_lower_case_hex() {
        let want = Some("ab".repeat(32));
        let url_safe = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([0xab; 32]);
        for given in ["AB".repeat(32), ["Ab"; 32].join(":"), url_safe] {
            assert_eq!(digest_hex(&given), want, "{given}");
        }
        for wrong in ["ab".repeat(31), "ab".repeat(33), format!("{}zz", "ab".repeat(31)), String::new()] {
            assert_eq!(digest_hex(&wrong), None, "{wrong}");
        }
    }

    #[test]
    fn empty_list_allows_all_and_bad_rules_are_usage_errors() {
        assert!(AllowList::default().allows(&Principal::Certificate(Arc::new(id()))));
        for bad in ["wif-client", "cn:", "email:a@b", "spki-sha256:zz"] {
            let e = AllowList::parse(&[bad.to_string()]).unwrap_err();
            assert_eq!(e.kind(), crate::core::error::Kind::Usage, "{bad}");
        }
    }
}
