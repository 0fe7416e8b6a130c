//! A string that must never be printed: tokens, assertions, client secrets, passwords.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::sync::Mutex;

/// Every secret this process has held, so that text about to be printed (an error that
/// quotes a remote answer, which might echo what we sent) can be scrubbed of them.
static HELD: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Secrets shorter than this are not scrubbed from text (too likely to hit ordinary words).
const MIN_SCRUB_LEN: usize = 8;

/// What replaces a secret in scrubbed text.
const REDACTED: &str = "<redacted>";

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
/// shaped like a bearer token (a JWT, a Google `ya29.` access token or `1//` refresh token) with `<redacted>`.
///
/// A remote service that echoes our request quotes a secret the way it travelled, or the way
/// the service re-encoded it, so each secret is found in every encoding wif sends it in and
/// a server may answer with, character by character and in any mix: as is, percent-encoded
/// (`%2B` or `%2b`, `+` for a space, doubly encoded `%252B`: forms, query strings),
/// JSON-escaped (`\"`, `\\`, `\/`, `\u00e9`), as an HTML character reference (`&amp;`,
/// `&#43;`), and inside base64 (standard or URL-safe, padded or not, at any offset of a
/// larger blob such as an HTTP Basic `client_id:secret`), where the whole blob goes.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    if let Ok(held) = HELD.lock() {
        for h in held.iter() {
            out = scrub_encoded(&out, h);
        }
        out = scrub_base64(&out, &held);
    }
    scrub_token_shapes(&out)
}

/// Replaces every place where `secret` occurs in `text`, each of its characters written in
/// any of the encodings `char_ends` knows.
fn scrub_encoded(text: &str, secret: &str) -> String {
    let Some(&first) = secret.as_bytes().first() else { return text.to_string() };
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        // A match begins with the secret's first byte or with an escape.
        let may_start = bytes[i] == first || matches!(bytes[i], b'%' | b'+' | b'\\' | b'&');
        match may_start.then(|| match_end(bytes, i, secret)).flatten() {
            Some(end) => {
                out.push_str(&text[copied..i]);
                out.push_str(REDACTED);
                copied = end;
                i = end;
            }
            None => i += 1,
        }
    }
    if copied == 0 {
        return text.to_string();
    }
    out.push_str(&text[copied..]);
    out
}

/// Where a match of `secret` that starts at `start` ends (the longest one), if there is one.
/// A character may be written in several ways of different lengths, so this follows all of
/// them at once: the set of positions reachable after each character. Every way ends on a
/// character boundary of `text`.
fn match_end(text: &[u8], start: usize, secret: &str) -> Option<usize> {
    let mut ends = vec![start];
    let mut next = Vec::new();
    for c in secret.chars() {
        next.clear();
        for &at in &ends {
            char_ends(text, at, c, &mut |end| {
                if !next.contains(&end) {
                    next.push(end);
                }
            });
        }
        if next.is_empty() {
            return None;
        }
        std::mem::swap(&mut ends, &mut next);
    }
    ends.into_iter().max()
}

/// Calls `found` with the end of every way the character `c` is written at `text[at..]`.
fn char_ends(text: &[u8], at: usize, c: char, found: &mut dyn FnMut(usize)) {
    let mut utf8 = [0u8; 4];
    let utf8 = c.encode_utf8(&mut utf8).as_bytes();
    if text[at..].starts_with(utf8) {
        found(at + utf8.len());
    }
    match text.get(at) {
        Some(b'%') => percent_ends(text, at, utf8, found),
        Some(b'+') if c == ' ' => found(at + 1),
        Some(b'\\') => json_escape_ends(text, at, c, found),
        Some(b'&') => {
            if let Some(end) = html_reference_end(text, at, c) {
                found(end);
            }
        }
        _ => {}
    }
}

/// Ends of `bytes` percent-encoded at `text[at..]` (forms, query strings): each byte as
/// `%XX` in either case, or encoded twice as `%25XX`.
fn percent_ends(text: &[u8], at: usize, bytes: &[u8], found: &mut dyn FnMut(usize)) {
    let Some((&b, rest)) = bytes.split_first() else { return found(at) };
    if text.get(at) != Some(&b'%') {
        return;
    }
    if hex2(text, at + 1) == Some(b) {
        percent_ends(text, at + 3, rest, found);
    }
    if hex2(text, at + 1) == Some(b'%') && hex2(text, at + 3) == Some(b) {
        percent_ends(text, at + 5, rest, found);
    }
}

/// The byte two hex digits at `text[at..]` stand for.
fn hex2(text: &[u8], at: usize) -> Option<u8> {
    let mut byte = [0u8; 1];
    hex::decode_to_slice(text.get(at..at + 2)?, &mut byte).ok()?;
    Some(byte[0])
}

/// Ends of the JSON string escapes of `c` at `text[at..]`: `\"`, `\/`, `\n`… and `\uXXXX` (a
/// surrogate pair beyond the BMP).
fn json_escape_ends(text: &[u8], at: usize, c: char, found: &mut dyn FnMut(usize)) {
    let short = match c {
        '"' => Some(b'"'),
        '\\' => Some(b'\\'),
        '/' => Some(b'/'),
        '\u{8}' => Some(b'b'),
        '\u{c}' => Some(b'f'),
        '\n' => Some(b'n'),
        '\r' => Some(b'r'),
        '\t' => Some(b't'),
        _ => None,
    };
    if short.is_some() && text.get(at + 1).copied() == short {
        found(at + 2);
    }
    let mut units = [0u16; 2];
    let mut pos = at;
    for &unit in c.encode_utf16(&mut units).iter() {
        let escaped =
            text.get(pos..pos + 6).filter(|e| e.starts_with(b"\\u") && e[2..].iter().all(u8::is_ascii_hexdigit));
        match escaped.and_then(|e| u16::from_str_radix(std::str::from_utf8(&e[2..]).ok()?, 16).ok()) {
            Some(v) if v == unit => pos += 6,
            _ => return,
        }
    }
    found(pos);
}

/// The end of an HTML character reference for `c` at `text[at..]`: `&amp;`, `&#43;`, `&#x2B;`.
fn html_reference_end(text: &[u8], at: usize, c: char) -> Option<usize> {
    let rest = &text[at..];
    let named: Option<&[u8]> = match c {
        '&' => Some(b"&amp;"),
        '<' => Some(b"&lt;"),
        '>' => Some(b"&gt;"),
        '"' => Some(b"&quot;"),
        '\'' => Some(b"&apos;"),
        _ => None,
    };
    if let Some(n) = named.filter(|n| rest.len() >= n.len() && rest[..n.len()].eq_ignore_ascii_case(n)) {
        return Some(at + n.len());
    }
    let body = rest.strip_prefix(b"&#")?;
    let (radix, digits) = match body.first() {
        Some(b'x' | b'X') => (16, &body[1..]),
        _ => (10, body),
    };
    let len = digits.iter().take(9).position(|&b| b == b';')?;
    let number =
        digits[..len].iter().all(u8::is_ascii_hexdigit).then(|| std::str::from_utf8(&digits[..len]).ok())??;
    let code = u32::from_str_radix(number, radix).ok()?;
    (code == c as u32).then_some(at + (rest.len() - digits.len()) + len + 1)
}

/// Characters of base64 (both alphabets, without the `=` padding).
fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// The 6 bits a base64 character stands for (standard and URL-safe alphabets alike).
fn sextet(b: u8) -> u8 {
    match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' | b'-' => 62,
        _ => 63,
    }
}

/// Decodes base64 characters (a trailing partial group gives the whole bytes it holds).
fn decode_base64(chars: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chars.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in chars {
        acc = (acc << 6) | u32::from(sextet(c));
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Redacts every run of base64 characters (with its `=` padding) that decodes, at one of the
/// four character offsets where its groups may begin, to bytes that contain a held secret:
/// a secret at any byte offset of a blob is whole in one of those decodings.
fn scrub_base64(text: &str, held: &[String]) -> String {
    // A secret of MIN_SCRUB_LEN bytes takes at least this many base64 characters.
    const MIN_RUN: usize = MIN_SCRUB_LEN * 4 / 3;
    if held.is_empty() {
        return text.to_string();
    }
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !is_base64(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_base64(bytes[i]) {
            i += 1;
        }
        let run = &bytes[start..i];
        let holds_secret = run.len() >= MIN_RUN
            && (0..4).any(|skip| {
                let decoded = decode_base64(&run[skip.min(run.len())..]);
                held.iter().any(|h| contains(&decoded, h.as_bytes()))
            });
        if holds_secret {
            while i < bytes.len() && bytes[i] == b'=' {
                i += 1;
            }
            out.push_str(&text[copied..start]);
            out.push_str(REDACTED);
            copied = i;
        }
    }
    if copied == 0 {
        return text.to_string();
    }
    out.push_str(&text[copied..]);
    out
}

/// Whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// `text` from elsewhere (a service's answer, a server's error message) made fit to quote
/// in a message: scrubbed ([`scrub`]) before it is cut, so that no cut falls inside a secret
/// and leaves half of it unrecognised; control characters dropped and whitespace run into
/// single spaces, so it is one line that cannot drive a terminal; at most `max` characters,
/// with `…` when cut.
pub fn quote(text: &str, max: usize) -> String {
    let scrubbed = scrub(text);
    let words: Vec<&str> =
        scrubbed.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()).collect();
    let one_line = words.join(" ");
    let mut cut: String = one_line.chars().take(max).collect();
    if cut.len() < one_line.len() {
        cut.push('…');
    }
    cut
}

/// Redacts words that look like JWTs (`eyJ….….…`), Google access tokens (`ya29.…`) or
/// Google refresh tokens (`1//…`).
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
        let refresh = word.starts_with("1//") && word.len() > 12;
        if jwt || google || refresh {
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

    /// Wraps a secret received from a peer (e.g. a client's `Authorization` header) without
    /// remembering it for [`scrub`]: a server receives new ones all the time, and the list
    /// of held secrets must not grow with what clients send. Token-shaped text is still
    /// scrubbed by shape.
    pub fn received(s: impl Into<String>) -> Self {
        Secret(s.into())
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
        assert_eq!(scrub("refresh 1//0gLEAKREFRESHtoken-x, 1//2"), "refresh 1//<redacted>, 1//2");
        assert_eq!(scrub("AADSTS700027: Client assertion failed."), "AADSTS700027: Client assertion failed.");
    }

    /// Asserts that `secret`, written as each of `forms` in the middle of a sentence, is scrubbed.
    fn assert_scrubbed(secret: &str, forms: &[String]) {
        for form in forms {
            let text = format!("invalid_client: client_secret={form}; try again");
            let out = scrub(&text);
            assert_eq!(out, "invalid_client: client_secret=<redacted>; try again", "{form}");
        }
        assert!(!scrub(&format!("echo: {secret}")).contains(secret));
    }

    #[test]
    fn scrub_finds_secrets_form_and_percent_encoded() {
        let secret = "s3cr+t/va=lue&x%y";
        let _held = Secret::new(secret);
        let every_byte: String = secret.bytes().map(|b| format!("%{b:02x}")).collect();
        assert_scrubbed(
            secret,
            &[
                secret.to_string(),
                "s3cr%2Bt%2Fva%3Dlue%26x%25y".into(), // ureq's form encoding, as wif sends it
                "s3cr%2bt%2fva%3dlue%26x%25y".into(), // lower-case hex
                "s3cr%2Bt/va=lue%26x%25y".into(),     // a server that re-encoded only some
                "s3cr%252Bt%252Fva%253Dlue%2526x%2525y".into(), // encoded twice
                every_byte,
            ],
        );
        let spaced = "pass phrase with spaces";
        let _held = Secret::new(spaced);
        assert_scrubbed(spaced, &["pass+phrase+with+spaces".into(), "pass%20phrase%20with+spaces".into()]);
    }

    #[test]
    fn scrub_finds_secrets_json_and_html_escaped() {
        let secret = "qu\"ote\\back/slash-é😀";
        let _held = Secret::new(secret);
        assert_scrubbed(
            secret,
            &[
                serde_json::to_string(secret).unwrap().trim_matches('"').to_string(),
                r#"qu\"ote\\back\/slash-\u00e9\ud83d\ude00"#.into(),
                r#"\u0071\u0075\u0022ote\u005Cback\u002fslash-\u00E9\uD83D\uDE00"#.into(),
                "qu%22ote%5Cback%2Fslash-%C3%A9%F0%9F%98%80".into(),
                "qu&quot;ote\\back/slash-&#233;&#x1F600;".into(),
            ],
        );
    }

    #[test]
    fn scrub_finds_secrets_inside_base64_at_any_offset() {
        use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
        use base64::Engine;
        let secret = "b64-s3cr+t/va=lue&x%y";
        let _held = Secret::new(secret);
        let mut forms = vec![STANDARD.encode(secret), URL_SAFE_NO_PAD.encode(secret), URL_SAFE.encode(secret)];
        // HTTP Basic `client_id:secret`: the secret starts at every offset modulo 3.
        for id in ["app", "app1", "app12"] {
            forms.push(STANDARD.encode(format!("{id}:{secret}")));
            forms.push(URL_SAFE_NO_PAD.encode(format!("{{\"id\":\"{id}\",\"secret\":\"{secret}\",\"n\":1}}")));
        }
        for form in &forms {
            let out = scrub(&format!("Authorization: Basic {form} was refused"));
            assert_eq!(out, "Authorization: Basic <redacted> was refused", "{form}");
        }
        let other = STANDARD.encode("app:another-value-entirely");
        assert_eq!(scrub(&format!("Basic {other}")), format!("Basic {other}"), "other blobs stay");
    }

    #[test]
    fn quotes_are_one_scrubbed_line_cut_after_scrubbing() {
        assert_eq!(
            quote("token\n  expired\x1b[31m at ya29.a0AfH6SMBxyz", 100),
            "token expired [31m at ya29.<redacted>"
        );
        // The cut falls inside the token: it is still recognised, none of it printed.
        let q = quote("why: ya29.a0AfH6SMBsecretsecret", 12);
        assert_eq!(q, "why: ya29.<r…");
        assert_eq!(quote(" \t\r\n", 10), "");
    }

    #[test]
    fn scrub_leaves_text_without_secrets_alone() {
        let _held = Secret::new("plain-canary-Vb7");
        for text in [
            "plain-canary and %41%42 \\u0041 &amp; + &#; &#x; %2 %zz \\u12",
            "plain-canary-Vb",
            "ünïcödé text with no secret: 100% sure & done\\",
            "",
        ] {
            assert_eq!(scrub(text), text);
        }
    }
}
