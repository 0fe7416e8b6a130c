//! The one answer type of every server: status, content type, headers and body. A body may
//! hold a token, so `Debug` shows its length only.

/// An answer: status, content type, extra headers and body.
#[derive(Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type`.
    pub content_type: &'static str,
    /// Headers beyond the server's standard ones, in order.
    pub headers: Vec<(&'static str, String)>,
    /// The body (left out of the wire for HEAD).
    pub body: Vec<u8>,
    /// Why the request was refused, or what the log records of it: never sent.
    pub reason: Option<String>,
}

/// Status, content type, header names, the body's length and the reason: never the body, nor
/// a header's value.
impl std::fmt::Debug for Response {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(name, _)| *name).collect();
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("content_type", &self.content_type)
            .field("headers", &names)
            .field("body", &format_args!("<{} bytes>", self.body.len()))
            .field("reason", &self.reason)
            .finish()
    }
}

/// The headers one server puts on every answer, and where: `first` before the content type
/// and length, `standard` right after them, then the answer's own headers, then `last`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Framing<'a> {
    /// Before `Content-Type`.
    pub first: &'a [(&'a str, &'a str)],
    /// After `Content-Length`, before the answer's own headers.
    pub standard: &'a [(&'a str, &'a str)],
    /// After the answer's own headers.
    pub last: &'a [(&'a str, &'a str)],
}

/// An answer on the wire, and the headers left out of it.
pub struct Encoded {
    /// The bytes to send.
    pub bytes: Vec<u8>,
    /// Headers whose value would have split the head (a line break or a control character).
    pub left_out: Vec<String>,
}

/// Never the bytes: they hold the body, a token for the token routes.
impl std::fmt::Debug for Encoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoded").field("bytes", &self.bytes.len()).field("left_out", &self.left_out).finish()
    }
}

impl Response {
    /// An answer with this status, content type and body.
    pub fn new(status: u16, content_type: &'static str, body: Vec<u8>) -> Response {
        Response { status, content_type, headers: Vec::new(), body, reason: None }
    }

    /// A JSON answer (one line, ending with a line feed).
    pub fn json(status: u16, body: &impl serde::Serialize) -> Response {
        let mut bytes = serde_json::to_vec(body).unwrap_or_default();
        bytes.push(b'\n');
        Response::new(status, "application/json", bytes)
    }

    /// A JSON error answer `{"error": code, "message": text}`.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(status, &serde_json::json!({"error": code, "message": message}))
    }

    /// Adds a header.
    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Records why the request was refused, or what the log records (never sent).
    pub fn because(mut self, reason: impl Into<String>) -> Response {
        self.reason = Some(reason.into());
        self
    }

    /// The bytes on the wire, framed by the server's `framing`; `head_only` for HEAD
    /// (Content-Length still tells the size).
    ///
    /// A header whose value would split the head (CR, LF, NUL or another control character,
    /// e.g. a token type from a tampered metadata file) is left out and named in
    /// [`Encoded::left_out`]: the client gets the answer without that header, never a header
    /// of someone else's making.
    pub fn encode(&self, framing: &Framing<'_>, head_only: bool) -> Encoded {
        let reason = crate::core::wire::reason_phrase(self.status);
        let (mut length_digits, mut status_digits) = ([0u8; 20], [0u8; 20]);
        let length = decimal(self.body.len(), &mut length_digits);
        let content = [("Content-Type", self.content_type), ("Content-Length", length)];
        let own = self.headers.iter().map(|(k, v)| (*k, v.as_str()));
        let all = framing.first.iter().copied().chain(content).chain(framing.standard.iter().copied());
        let all = all.chain(own).chain(framing.last.iter().copied());
        // One buffer, sized once: the status line, each header, the blank line, the body.
        let lines: usize = all.clone().map(|(name, value)| name.len() + value.len() + 4).sum();
        let body = if head_only { &[][..] } else { &self.body[..] };
        let mut head = String::with_capacity("HTTP/1.1 000 \r\n\r\n".len() + reason.len() + lines + body.len());
        head.push_str("HTTP/1.1 ");
        head.push_str(decimal(usize::from(self.status), &mut status_digits));
        head.push(' ');
        head.push_str(reason);
        head.push_str("\r\n");
        let mut left_out = Vec::new();
        for (name, value) in all {
            if !crate::core::wire::push_header(&mut head, name, value) {
                left_out.push(name.to_string());
            }
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        Encoded { bytes, left_out }
    }
}

/// `n` in decimal, written into `digits` (no allocation).
fn decimal(mut n: usize, digits: &mut [u8; 20]) -> &str {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&digits[at..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "ya29.a-token-that-must-never-be-printed";

    #[test]
    fn debug_never_shows_the_body() {
        let r = Response::new(200, "text/plain", TOKEN.as_bytes().to_vec()).header("X-Token-Type", "Bearer");
        let shown = format!("{r:?} {r:#?}");
        assert!(!shown.contains(TOKEN) && !shown.contains("ya29"), "{shown}");
        assert!(shown.contains("200") && shown.contains("X-Token-Type"), "{shown}");
        assert!(shown.contains(&format!("<{} bytes>", TOKEN.len())), "{shown}");
        let wire = r.encode(&Framing::default(), false);
        let shown = format!("{wire:?} {wire:#?}");
        assert!(!shown.contains("ya29") && shown.contains("bytes"), "{shown}");
    }

    #[test]
    fn header_values_that_would_split_the_head_are_left_out() {
        let r = Response::error(503, "x", "y")
            .header("X-Token-Type", "Bearer\r\nX-Injected: yes")
            .header("X-Token-Expires-At", "2099-01-01T00:00:00Z\r\n")
            .header("Retry-After", "30");
        let wire = r.encode(&Framing::default(), false);
        let text = String::from_utf8(wire.bytes).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(!head.contains("X-Injected") && !head.contains("X-Token"), "{head}");
        assert!(head.ends_with("\r\nRetry-After: 30"), "the other headers stay: {head}");
        assert_eq!(body.as_bytes(), r.body);
        assert_eq!(wire.left_out, ["X-Token-Type", "X-Token-Expires-At"]);
    }

    #[test]
    fn decimals() {
        let mut digits = [0u8; 20];
        for n in [0, 7, 10, 1536, 65_535, usize::MAX] {
            assert_eq!(decimal(n, &mut digits), n.to_string());
        }
    }

    #[test]
    fn the_framing_goes_around_the_content_headers_and_the_answers_own() {
        let framing = Framing { first: &[("A", "1")], standard: &[("B", "2")], last: &[("C", "3")] };
        let r = Response::new(404, "text/plain", b"no".to_vec()).header("X", "y");
        let head = String::from_utf8(r.encode(&framing, true).bytes).unwrap();
        assert_eq!(
            head,
            "HTTP/1.1 404 Not Found\r\nA: 1\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nB: 2\r\nX: y\r\nC: 3\r\n\r\n"
        );
    }
}
