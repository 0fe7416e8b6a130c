//! The human-readable report (without --json).

use super::report::{local_time, Ctx, Report, TokenKind};
use crate::core::clock;
use serde_json::Value;

/// The human-readable report.
pub fn render_text(r: &Report, ctx: &Ctx) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    if let Some(doc) = &r.document {
        let fields: Vec<&str> = doc
            .get("fields")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let _ = writeln!(s, "document (version {}): {}", doc.get("version").unwrap_or(&Value::Null), fields.join(", "));
        if let Some(Value::Object(c)) = doc.get("config") {
            let keys: Vec<&str> = c.keys().map(String::as_str).collect();
            let _ = writeln!(s, "  config: {}", keys.join(", "));
        }
        s.push('\n');
    }
    for t in &r.tokens {
        let what = match t.kind {
            TokenKind::Jwt => "JWT".to_string(),
            TokenKind::Opaque => format!("opaque token {}", t.preview.as_deref().unwrap_or("")),
            TokenKind::Withheld => "token not in the document".to_string(),
        };
        let _ = write!(s, "{}: {what}", t.source);
        if let Some(tt) = &t.token_type {
            let _ = write!(s, ", type {tt}");
        }
        if let Some(b) = t.bytes {
            let _ = write!(s, ", {b} bytes");
        }
        s.push('\n');
        if let (Some(e), Some(x)) = (&t.expires_at, &t.expiry) {
            let local = clock::parse_rfc3339(e).ok().map(|u| local_time(u, ctx.offset)).unwrap_or_default();
            let _ = writeln!(s, "  expiry:    {x} ({local})");
        }
        if let Some(sha) = &t.sha256 {
            let _ = writeln!(s, "  sha256:    {sha}");
        }
        for (k, v) in &t.facts {
            let _ = writeln!(s, "  {k}: {}", plain(v));
        }
        if let Some(h) = &t.header {
            let _ = writeln!(s, "  header:    {}", h);
        }
        if let Some(Value::Object(claims)) = &t.claims {
            s.push_str("  claims:\n");
            for (k, v) in claims {
                let _ = write!(s, "    {k}: {}", plain(v));
                if let Some(tr) = t.times.get(k) {
                    let _ = write!(
                        s,
                        "  ({}, {})",
                        tr.get("local").and_then(Value::as_str).unwrap_or(""),
                        tr.get("relative").and_then(Value::as_str).unwrap_or("")
                    );
                }
                s.push('\n');
            }
        }
        if let Some(m) = t.thumbprint_matches_cert {
            let _ = writeln!(
                s,
                "  thumbprint: {}",
                if m { "names the given certificate" } else { "names ANOTHER certificate" }
            );
        }
        if let Some(v) = &t.verification {
            if v.valid {
                let _ = writeln!(s, "  verified:  signature valid ({}), within its validity period", v.key);
            } else {
                let _ = writeln!(s, "  verified:  INVALID: {}", v.problems.join("; "));
            }
        }
        if let Some(tok) = &t.token {
            let _ = writeln!(s, "  token:     {}", tok.expose());
        }
        if let Some(sig) = &t.signature {
            let _ = writeln!(s, "  signature: {}", sig.expose());
        }
        s.push('\n');
    }
    for c in &r.certificates {
        let _ = writeln!(s, "certificate {} #{}", c.file, c.index);
        let _ = writeln!(s, "  subject:   {}", c.subject);
        let _ = writeln!(s, "  issuer:    {}", c.issuer);
        let _ = writeln!(s, "  serial:    {}", c.serial);
        if !c.san.is_empty() {
            let _ = writeln!(s, "  san:       {}", c.san.join(", "));
        }
        let _ = writeln!(s, "  valid:     {} to {} ({})", c.not_before.local, c.not_after.local, c.not_after.relative);
        let _ = writeln!(s, "  thumbprint (Azure portal, SHA-1): {}", c.thumbprint_sha1_hex);
        let _ = writeln!(s, "  x5t:       {}", c.x5t);
        let _ = writeln!(s, "  x5t#S256:  {}", c.x5t_s256);
        let _ = writeln!(s, "  SHA-256:   {}", c.thumbprint_sha256_hex);
        let _ = writeln!(s, "  customKeyIdentifier (app manifest): {}", c.custom_key_identifier);
        if let Some(m) = c.key_matches {
            let _ = writeln!(
                s,
                "  key:       {}",
                if m { "matches this certificate" } else { "does NOT belong to this certificate" }
            );
        }
        s.push('\n');
    }
    while s.ends_with("\n\n") {
        s.pop();
    }
    s
}

fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
