//! The request headers the client sends: checked with the HTTP syntax of `core::wire`.

use crate::core::error::{Error, Result};
use crate::core::secret::Secret;
use crate::core::wire::{is_header_name, is_header_value};

/// Refuses, before anything is sent, a request header that would not arrive as one header:
/// a name that is not an HTTP token, or a value (a bearer token too) with a line break or
/// another control character.
pub(super) fn check_request_headers(headers: &[(&str, String)], bearer: Option<&Secret>) -> Result<()> {
    for (name, value) in headers {
        if !is_header_name(name) {
            return Err(Error::input(format!("{name:?} is not an HTTP header name")));
        }
        if !is_header_value(value) {
            return Err(Error::input(format!(
                "the value of the {name} header holds a line break or a control character"
            )));
        }
    }
    if bearer.is_some_and(|b| !is_header_value(b.expose())) {
        return Err(Error::input("the bearer token holds a line break or a control character")
            .hint("a token is visible ASCII only; make it again"));
    }
    Ok(())
}
