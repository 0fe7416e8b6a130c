//! HTTP/1.1 syntax shared by the client and every server: what may be sent as a header
//! field, and the reason phrases wif's servers send. Knows nothing of who sends.

/// Whether `name` is an HTTP field name (an RFC 9110 token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| TCHAR[usize::from(b)])
}

/// Which bytes an RFC 9110 token may hold (one look-up per byte: every answer's headers are
/// checked).
const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        b += 1;
    }
    table
};

/// Names chosen in a configuration that go into headers, log lines and metric labels
/// (wif-serve's rules, token sources, bearer issuers): 1–64 of `A-Z a-z 0-9 . _ -`.
pub fn check_name(name: &str) -> std::result::Result<(), String> {
    let ok = (1..=64).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!("{name:?} is not a name: use 1 to 64 letters, digits, '.', '_' or '-'"))
    }
}

/// Whether `value` can go into an HTTP header as it is: visible ASCII, spaces and tabs
/// (RFC 9110 field-value without obs-text). A CR or LF would end the header there and let
/// whoever chose the value write headers, or a body, of their own.
pub fn is_header_value(value: &str) -> bool {
    value.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// Appends `name: value` and CRLF to a response head being written, unless the name or the
/// value fails [`is_header_name`] / [`is_header_value`]: such a header is never sent.
/// Returns whether it was appended. Used by every server wif has.
pub fn push_header(head: &mut String, name: &str, value: &str) -> bool {
    if !is_header_name(name) || !is_header_value(value) {
        return false;
    }
    head.push_str(name);
    head.push_str(": ");
    head.push_str(value);
    head.push_str("\r\n");
    true
}

/// The reason phrase of a status that wif's servers send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_are_rfc9110_tokens() {
        for b in 0..=255u8 {
            let token = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            let name = [b'X', b];
            assert_eq!(std::str::from_utf8(&name).is_ok_and(is_header_name), token, "byte {b:#x}");
        }
        assert!(!is_header_name("") && is_header_name("X-Token-Type"));
    }

    #[test]
    fn headers_that_would_split_are_never_written() {
        let mut head = String::new();
        assert!(push_header(&mut head, "X-Token-Type", "access_token"));
        assert!(push_header(&mut head, "Content-Type", "text/html; charset=UTF-8"));
        for (name, value) in [
            ("X-Token-Type", "Bearer\r\nX-Injected: yes"),
            ("X-Token-Type", "Bearer\nX-Injected: yes"),
            ("X-Token-Type", "Bearer\r"),
            ("X-Token-Type", "a\0b"),
            ("X-Token-Type", "a\u{7f}"),
            ("X-Token-Type", "caf\u{e9}"),
            ("X-Bad Name", "v"),
            ("X-Bad:Name", "v"),
            ("", "v"),
        ] {
            assert!(!push_header(&mut head, name, value), "{name:?}: {value:?}");
        }
        assert_eq!(head, "X-Token-Type: access_token\r\nContent-Type: text/html; charset=UTF-8\r\n");
    }
}
