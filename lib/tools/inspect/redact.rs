//! `--redact`: the document (or one section) with every token shortened to its preview,
//! for bug reports and terminals.

use crate::cli;
use crate::core::document::Document;
use crate::core::error::{Error, Kind, Result};
use crate::core::secret::{self, Secret};
use serde_json::Value;

/// Prints a document (or one section) as JSON with every token replaced by its preview.
pub fn print_redacted(bytes: &[u8], section: Option<&str>) -> Result<()> {
    let doc = Document::parse(bytes)?;
    let mut value = match section {
        Some(name) => {
            let v = doc.get(name).cloned().ok_or_else(|| {
                Error::input(format!("the document has no \"{name}\" section"))
                    .hint(format!("its sections: {}", doc.fields().keys().cloned().collect::<Vec<_>>().join(", ")))
            })?;
            serde_json::json!({ name: v })
        }
        None => Value::Object(doc.fields().clone()),
    };
    redact(&mut value, false);
    let mut text = serde_json::to_string_pretty(&value).map_err(|e| Error::new(Kind::Internal, e.to_string()))?;
    text.push('\n');
    cli::write_stdout(text.as_bytes())
}

/// Shortens secret strings in place: fields named like tokens, and anything token-shaped.
fn redact(v: &mut Value, secret_field: bool) {
    match v {
        Value::String(s) if secret_field || secret::scrub(s) != *s => {
            *s = Secret::new(std::mem::take(s)).preview();
        }
        Value::Array(items) => items.iter_mut().for_each(|i| redact(i, secret_field)),
        Value::Object(map) => {
            for (k, item) in map.iter_mut() {
                let named_secret = k == "token"
                    || k.ends_with("_token")
                    || (k.contains("secret") && !k.ends_with("_file") && !k.ends_with("_env"));
                redact(item, named_secret && item.is_string());
            }
        }
        _ => {}
    }
}
