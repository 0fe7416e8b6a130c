//! URLs: the scheme and host policy every request passes, query strings built and read,
//! and URLs made fit for messages.

use crate::core::error::{Error, Result};

/// Azure's instance metadata service: plain HTTP by design, link-local, never routed.
pub const AZURE_IMDS_HOST: &str = "169.254.169.254";

/// The scheme and host policy: `https://` anywhere, `http://` only to loopback (and the
/// link-local Azure metadata address, which is HTTP-only by design). The URL is split by
/// `http::Uri`, the parser ureq sends with, so the host judged here is the host connected to.
pub fn check_url(url: &str) -> Result<()> {
    let bad = |why: &str| Error::usage(format!("{url:?} {why}"));
    let uri: http::Uri = url.parse().map_err(|e| {
        bad(&format!("is not a valid URL ({e})"))
            .hint("write scheme://host[:port]/path, with spaces and other characters outside URLs percent-encoded")
    })?;
    let (Some(scheme), Some(host)) = (uri.scheme_str(), uri.host()) else {
        return Err(bad("is not an absolute URL"));
    };
    // An IPv6 literal comes bracketed, as in the URL.
    let host = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback(host) || host == AZURE_IMDS_HOST => Ok(()),
        "http" => Err(bad("uses http:// to a host that is not loopback")
            .hint("tokens travel only over https://; plain http:// is allowed for 127.0.0.1, ::1 and localhost (emulators, tests)")),
        _ => Err(bad("is not an http(s) URL")),
    }
}

fn is_loopback(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// A URL's host (the URL itself if it has none), to name a server in a message.
pub fn host_of(url: &str) -> String {
    url.parse::<http::Uri>().ok().and_then(|u| u.host().map(str::to_string)).unwrap_or_else(|| url.to_string())
}

/// A URL without its query string (queries can carry tokens).
pub fn redact_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

/// RFC 3986's unreserved characters, the only ones a query component keeps as they are.
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// Percent-encodes a query-string component (RFC 3986 unreserved characters stay).
pub fn encode_component(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// Appends `key=value` pairs to a URL's query string.
pub fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let mut u = url.to_string();
    for (k, v) in pairs {
        u.push(if u.contains('?') { '&' } else { '?' });
        u.push_str(&encode_component(k));
        u.push('=');
        u.push_str(&encode_component(v));
    }
    u
}

/// Decodes `application/x-www-form-urlencoded` text (also query strings).
pub fn parse_form(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// Percent-decoding; `plus` turns `+` into a space (forms). A `%` not followed by two hex
/// digits stays as it is, and bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(s: &str, plus: bool) -> String {
    let spaced;
    let s = if plus && s.contains('+') {
        spaced = s.replace('+', " ");
        &spaced
    } else {
        s
    };
    percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::Kind;

    #[test]
    fn hosts_for_messages() {
        assert_eq!(host_of("https://login.microsoftonline.com/t/oauth2/v2.0/token"), "login.microsoftonline.com");
        assert_eq!(host_of("http://127.0.0.1:8080/t"), "127.0.0.1");
    }

    #[test]
    fn url_policy() {
        for ok in [
            "https://login.microsoftonline.com/t/oauth2/v2.0/token",
            "http://127.0.0.1:8080/x",
            "http://localhost/x",
            "http://[::1]:9/x",
            "http://127.5.5.5/",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://sts.googleapis.com/v1/token",
            "http://10.0.0.1/",
            "ftp://127.0.0.1/",
            "sts.googleapis.com",
            "http:///x",
            "http://localhost.evil.com/",
        ] {
            let e = check_url(bad).unwrap_err();
            assert_eq!(e.kind(), Kind::Usage, "{bad}");
        }
    }

    #[test]
    fn url_policy_edge_cases() {
        for ok in [
            "HTTP://127.0.0.1/",
            "http://user:pw@127.0.0.1/",
            "http://evil.example@127.0.0.1/",
            "http://[0:0:0:0:0:0:0:1]:8080/x",
            "http://127.0.0.1?x",
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://127.0.0.1@evil.example/", "not loopback"),
            ("http://127.0.0.1:pw@evil.example/", "not loopback"),
            ("http://evil.example#@127.0.0.1/", "not loopback"),
            ("http://evil.example?@127.0.0.1/", "not loopback"),
            ("http://[::ffff:127.0.0.1]/", "not loopback"),
            ("http://127.1/", "not loopback"),
            ("http://localhost./", "not loopback"),
            ("https://:443/", "has no host"),
            ("https:a", "not an absolute URL"),
            ("http://::1/", "not a valid URL"),
            ("http://[::1/", "not a valid URL"),
            ("https://a b/", "not a valid URL"),
            ("https://", "not a valid URL"),
            ("ws://127.0.0.1/", "not an http(s) URL"),
        ] {
            let e = check_url(bad).unwrap_err();
            assert_eq!(e.kind(), Kind::Usage, "{bad}");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn query_components_keep_only_unreserved_characters() {
        assert_eq!(encode_component("AZaz09-._~"), "AZaz09-._~");
        assert_eq!(encode_component("api://x/.default y+z&=%"), "api%3A%2F%2Fx%2F.default%20y%2Bz%26%3D%25");
        assert_eq!(encode_component("caf\u{e9} \u{1F600}"), "caf%C3%A9%20%F0%9F%98%80");
        assert_eq!(with_query("https://h/p?a=1", &[("b c", "d/e")]), "https://h/p?a=1&b%20c=d%2Fe");
    }

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        assert_eq!(percent_decode("a%2fb%2Fc", false), "a/b/c");
        assert_eq!(percent_decode("a+b%2B", true), "a b+");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("%zz%4%", true), "%zz%4%");
        assert_eq!(percent_decode("%+1", false), "%+1");
        assert_eq!(percent_decode("%C3%A9%FF", false), "\u{e9}\u{fffd}");
    }

    #[test]
    fn query_strings_are_not_logged() {
        assert_eq!(redact_query("https://x/y?token=abc"), "https://x/y");
    }
}
