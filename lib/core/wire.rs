//! HTTP/1.1 syntax shared by the client and every server: what may be sent as a header
//! field, and the reason phrases wif's servers send. Knows nothing of who sends.

/// Whether `name` is an HTTP field name (an RFC 9110 token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
