//! What wif-inspect was given: a token file (with its metadata), a wif document, an OAuth
//! token response or a bare token; and the tokens found in it.

use super::report::{Ctx, TokenReport};
use super::token::{bare, describe, Found, PREFERRED_SECTIONS};
use crate::cli;
use crate::core::document::MAX_DOCUMENT_BYTES;
use crate::core::error::{Error, Kind, Result};
use crate::core::files;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// The input to inspect.
pub enum Input {
    /// A document or a token, as read from FILE or stdin.
    Bytes(Vec<u8>),
    /// `--token-file`: a token file and the metadata beside it.
    TokenFile(PathBuf),
}

/// Reads FILE (or stdin for `-` or nothing); `None` when there is nothing to read (a
/// terminal, or only whitespace).
pub fn read_input(path: Option<&Path>) -> Result<Option<Input>> {
    let buf = match path {
        Some(p) if p != Path::new("-") => {
            let f = std::fs::File::open(p).map_err(|e| Error::io(p, &e).context("reading the input"))?;
            cli::read_bounded(f).map_err(|e| Error::io(p, &e).context("reading the input"))?
        }
        _ => match cli::read_stdin().map_err(|e| Error::new(Kind::Io, format!("reading stdin: {e}")))? {
            Some(buf) => buf,
            None => return Ok(None),
        },
    };
    if buf.len() > MAX_DOCUMENT_BYTES {
        return Err(Error::input(format!("the input is larger than {MAX_DOCUMENT_BYTES} bytes")));
    }
    if buf.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    Ok(Some(Input::Bytes(buf)))
}

/// The tokens of the input (only `section`'s, if given) described, and the document's
/// outline when the input was a document.
pub fn collect(input: Input, section: Option<&str>, ctx: &Ctx) -> Result<(Vec<TokenReport>, Option<Value>)> {
    let (found, document) = match input {
        Input::TokenFile(path) => (vec![from_token_file(&path)?], None),
        Input::Bytes(bytes) => {
            let text = String::from_utf8(bytes).map_err(|_| Error::input("the input is not UTF-8 text"))?;
            let trimmed = text.trim();
            if trimmed.starts_with('{') {
                let value: Value = serde_json::from_str(trimmed).map_err(|e| {
                    Error::input(format!(
                        "the input looks like JSON but does not parse (line {} column {})",
                        e.line(),
                        e.column()
                    ))
                })?;
                let Value::Object(fields) = value else {
                    return Err(Error::input("the input is JSON but not an object"));
                };
                let found = from_document(&fields);
                let outline: Vec<Value> = fields.keys().map(|k| Value::String(k.clone())).collect();
                let mut doc = Map::new();
                if let Some(v) = fields.get("version") {
                    doc.insert("version".into(), v.clone());
                }
                doc.insert("fields".into(), Value::Array(outline));
                if let Some(c) = fields.get("config") {
                    doc.insert("config".into(), c.clone());
                }
                (found, Some(Value::Object(doc)))
            } else {
                if trimmed.chars().any(char::is_whitespace) {
                    return Err(Error::input("the input is neither a JSON document nor a single token"));
                }
                (vec![bare("token", trimmed)], None)
            }
        }
    };
    let found: Vec<Found> = match section {
        Some(name) => {
            let kept: Vec<Found> = found.into_iter().filter(|f| f.source == name).collect();
            if kept.is_empty() {
                return Err(Error::input(format!("the input has no token in a \"{name}\" section"))
                    .hint(format!("token sections: {}", PREFERRED_SECTIONS.join(", "))));
            }
            kept
        }
        None => found,
    };
    if found.is_empty() {
        return Err(Error::input("no token found in the input").hint(
            "wif-inspect reads a JWT, a token, or a wif document with assertion/azure/sts/impersonated/fetched sections",
        ));
    }
    Ok((found.into_iter().map(|f| describe(f, ctx)).collect(), document))
}

/// Token-bearing objects of a document: any section with a string `token` (or a `fetched`
/// section, which holds only facts), plus OAuth responses' `access_token`/`id_token`.
fn from_document(fields: &Map<String, Value>) -> Vec<Found> {
    let mut out = Vec::new();
    for (name, v) in fields {
        match v {
            Value::Object(sec) if sec.get("token").is_some_and(Value::is_string) || name == "fetched" => {
                let mut facts = Map::new();
                for (k, fv) in sec {
                    if !matches!(k.as_str(), "token" | "header" | "claims" | "token_type" | "expires_at") {
                        facts.insert(k.clone(), fv.clone());
                    }
                }
                out.push(Found {
                    source: name.clone(),
                    token: sec.get("token").and_then(Value::as_str).map(str::to_string),
                    token_type: sec.get("token_type").and_then(Value::as_str).map(str::to_string),
                    expires_at: sec.get("expires_at").and_then(Value::as_str).map(str::to_string),
                    bytes: sec.get("bytes").and_then(Value::as_u64).map(|b| b as usize),
                    sha256: sec.get("sha256").and_then(Value::as_str).map(str::to_string),
                    facts,
                });
            }
            Value::String(s) if matches!(name.as_str(), "access_token" | "id_token" | "saml_response") => {
                let mut f = bare(name, s);
                f.token_type = fields.get("token_type").and_then(Value::as_str).map(str::to_string);
                if let Some(secs) = fields.get("expires_in").and_then(Value::as_i64) {
                    f.facts.insert("expires_in".into(), Value::from(secs));
                }
                out.push(f);
            }
            _ => {}
        }
    }
    out
}

fn from_token_file(path: &Path) -> Result<Found> {
    // The expiry beside the token is believed only as wif-serve and wif-get believe it: both
    // files trusted, and an entry of the metadata matching the token.
    let meta_path = files::meta_path(path);
    if meta_path.symlink_metadata().is_ok() {
        match files::read_token(path) {
            files::Stored::Found(t) => {
                let mut found = bare(&format!("file:{}", path.display()), t.token.expose());
                found.expires_at = Some(t.meta.expires_at);
                found.token_type = Some(t.meta.token_type);
                found.facts.insert("written_at".into(), Value::from(t.meta.written_at));
                found.facts.insert("written_by".into(), Value::from(t.meta.written_by));
                found.facts.insert("meta".into(), Value::from(meta_path.display().to_string()));
                return Ok(found);
            }
            files::Stored::Mismatch(_) => crate::core::diag::warn(format!(
                "{} does not belong to the token in {} (SHA-256 differs); its expiry is ignored",
                meta_path.display(),
                path.display()
            )),
            files::Stored::Missing(files::Part::Token, _) => {}
            other => crate::core::diag::warn(format!("{}; the metadata is ignored", other.detail())),
        }
    }
    // Any file the user names, a pipe included (--token-file <(...)).
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, &e).context("reading --token-file"))?;
    let token = String::from_utf8(bytes).map_err(|_| Error::input(format!("{} is not text", path.display())))?;
    Ok(bare(&format!("file:{}", path.display()), token.trim_end_matches(['\r', '\n'])))
}
