//! What a token looks like: one run of printable ASCII with no space, the same test for a
//! token in a service's answer, in a file and in an HTTP body.

/// What is wrong with a token for storing it in a file, serving it and sending it in an
/// `Authorization` header, if anything. Tokens are visible ASCII (JWTs, RFC 6750
/// `b64token`, Google's `ya29.`): never spaces, line breaks, control or non-ASCII
/// characters. Says what is wrong, never what the token is.
pub fn token_flaw(token: &str) -> Option<&'static str> {
    if token.is_empty() {
        return Some("is empty");
    }
    token.bytes().find(|b| !(0x21..0x7f).contains(b)).map(byte_flaw)
}

/// What a byte that has no place in a token or a token type makes of it.
pub fn byte_flaw(b: u8) -> &'static str {
    match b {
        b' ' => "holds a space",
        b'\r' | b'\n' => "holds a line break",
        0x80.. => "holds a non-ASCII character",
        0..=0x1f | 0x7f => "holds a control character",
        _ => "holds a character that no token type has",
    }
}

/// Checks a token that a file or an answer carries alone (the seed's `wif_token.txt` and its
/// Flask server's body), once the caller has taken off the line ends it allows around it: it
/// must be one token ([`token_flaw`]). On failure, what is wrong, never what the text is.
pub fn bare_token(token: &str) -> std::result::Result<&str, &'static str> {
    match token_flaw(token) {
        Some(flaw) => Err(flaw),
        None => Ok(token),
    }
}
