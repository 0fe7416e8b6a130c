//! A string that must never be printed: tokens, assertions, client secrets, passwords.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Mutex;

/// Every secret this process has held, so that text about to be printed (an error that
/// quotes a remote answer, which might echo what we sent) can be scrubbed of them.
static HELD: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Secrets shorter than this are not scrubbed from text (too likely to hit ordinary words).
const MIN_SCRUB_LEN: usize = 8;

fn hold(s: &str) {
    if s.len() >= MIN_SCRUB_LEN {
        if let Ok(mut held) = HELD.lock() {
            if !held.iter().any(|h| h == s) {
                held.push(s.to_string());
            }
        }
    }
}

/// Replaces, in text meant for a person, every secret this process holds and anything
/// shaped like a bearer token (a JWT, a Google `ya29.` access token) with `<redacted>`.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    if let Ok(held) = HELD.lock() {
        for h in held.iter() {
            if out.contains(h.as_str()) {
                out = out.replace(h.as_str(), "<redacted>");
            }
        }
    }
    scrub_token_shapes(&out)
}

/// Redacts words that look like JWTs (`eyJ….….…`) or Google access tokens (`ya29.…`).
fn scrub_token_shapes(text: &str) -> String {
    let is_tok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=');
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(|c: char| is_tok(c)) {
        out.push_str(&rest[..i]);
        let word_len = rest[i..].find(|c: char| !is_tok(c)).unwrap_or(rest.len() - i);
        let word = &rest[i..i + word_len];
        let jwt = word.starts_with("eyJ") && word.matches('.').count() >= 2 && word.len() > 20;
        let google = word.starts_with("ya29.") && word.len() > 12;
        if jwt || google {
            out.push_str(&word[..if google { 5 } else { 3 }]);
            out.push_str("<redacted>");
        } else {
            out.push_str(word);
        }
        rest = &rest[i + word_len..];
    }
    out.push_str(rest);
    out
}

/// Holds a secret value. `Debug` and `Display` show only its length, so a secret that
/// reaches a log line, a panic or `{:?}` by mistake is not disclosed.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        let s = s.into();
        hold(&s);
        Secret(s)
    }

    /// The secret itself, for the one place that must send or store it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// A shortened form safe to show a person: first 6 and last 4 characters of long tokens.
    pub fn preview(&self) -> String {
        let s = &self.0;
        if s.len() <= 16 || !s.is_ascii() {
            return format!("<{} bytes>", s.len());
        }
        format!("{}…{} ({} bytes)", &s[..6], &s[s.len() - 4..], s.len())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret(<{} bytes>)", self.0.len())
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<secret, {} bytes>", self.0.len())
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let s = Secret::new("hunter2-very-secret-token");
        assert!(!format!("{s:?}").contains("hunter2"));
        assert!(!format!("{s}").contains("hunter2"));
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2-very-secret-token\"");
    }

    #[test]
    fn scrub_removes_held_secrets_and_token_shapes() {
        let _held: Secret = serde_json::from_str("\"client-secret-canary-42\"").unwrap();
        let text = "invalid_client: bad secret client-secret-canary-42 for eyJhbGciOi.eyJzdWIiOiJ4In0.c2ln and ya29.a0AfH6SMB, ok";
        assert_eq!(scrub(text), "invalid_client: bad secret <redacted> for eyJ<redacted> and ya29.<redacted>, ok");
        assert_eq!(scrub("AADSTS700027: Client assertion failed."), "AADSTS700027: Client assertion failed.");
    }
}
