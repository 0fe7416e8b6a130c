//! Cloud Storage's answers about objects: the object resource, a listing with prefixes and
//! pages, and the media with the headers google-cloud-storage reads (`X-Goog-Hash`, …).

use super::super::errors;
use super::config::{BucketConfig, ObjectConfig};
use crate::core::clock;
use crate::http::encode_component;
use crate::server::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

/// Most entries on one page, as Cloud Storage.
const MAX_RESULTS: usize = 1000;

/// One entry of a listing: an object, or a prefix that folds several (with a delimiter).
enum Entry<'a> {
    Object(&'a ObjectConfig),
    Prefix(String),
}

impl Entry<'_> {
    /// Where the entry sorts, and what a page token names.
    fn key(&self) -> &str {
        match self {
            Entry::Object(o) => &o.name,
            Entry::Prefix(p) => p,
        }
    }
}

/// RFC 3339 with milliseconds, as Cloud Storage writes times.
fn gcs_time(generation: i64) -> String {
    clock::rfc3339(generation / 1_000_000).replace('Z', ".000Z")
}

/// The object resource (`storage#object`).
pub fn resource(b: &BucketConfig, o: &ObjectConfig, generation: i64, base: &str) -> Value {
    let (bucket, enc) = (&b.name, encode_component(&o.name));
    let time = gcs_time(generation);
    json!({
        "kind": "storage#object",
        "id": format!("{bucket}/{}/{generation}", o.name),
        "selfLink": format!("{base}/storage/v1/b/{bucket}/o/{enc}"),
        "mediaLink": format!("{base}/download/storage/v1/b/{bucket}/o/{enc}?generation={generation}&alt=media"),
        "name": o.name,
        "bucket": bucket,
        "generation": generation.to_string(),
        "metageneration": "1",
        "contentType": o.media_type,
        "storageClass": "STANDARD",
        "size": o.content.len().to_string(),
        "md5Hash": o.md5,
        "crc32c": o.crc32c,
        "etag": etag(generation),
        "timeCreated": time,
        "updated": time,
        "timeStorageClassUpdated": time,
        "timeFinalized": time,
    })
}

/// The etag Cloud Storage derives from the generation (metageneration 1).
fn etag(generation: i64) -> String {
    let mut bytes = generation.to_be_bytes().to_vec();
    bytes.push(1);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An object's bytes, with the headers of a Cloud Storage download.
pub fn media(o: &ObjectConfig, generation: i64) -> Response {
    Response::new(200, o.media_type, o.content.as_bytes().to_vec())
        .header("X-Goog-Hash", format!("crc32c={},md5={}", o.crc32c, o.md5))
        .header("X-Goog-Generation", generation.to_string())
        .header("X-Goog-Metageneration", "1")
        .header("X-Goog-Stored-Content-Encoding", "identity")
        .header("X-Goog-Stored-Content-Length", o.content.len().to_string())
        .header("X-Goog-Storage-Class", "STANDARD")
        .header("ETag", etag(generation))
        .because("ok")
}

/// The entries of a listing, in name order (the bucket's objects are sorted when the
/// configuration loads): objects under `prefix`, those with `delimiter` after the prefix
/// folded into one prefix entry each.
fn entries<'a>(b: &'a BucketConfig, prefix: &str, delimiter: &str) -> Vec<Entry<'a>> {
    let mut out: Vec<Entry> = Vec::new();
    for o in b.objects.iter().filter(|o| o.name.starts_with(prefix)) {
        let rest = &o.name[prefix.len()..];
        let folded = (!delimiter.is_empty()).then(|| rest.find(delimiter)).flatten();
        let entry = match folded {
            Some(i) => Entry::Prefix(format!("{prefix}{}", &rest[..i + delimiter.len()])),
            None => Entry::Object(o),
        };
        if !matches!((&entry, out.last()), (Entry::Prefix(p), Some(Entry::Prefix(q))) if p == q) {
            out.push(entry);
        }
    }
    out
}

/// `GET /storage/v1/b/{bucket}/o`: `prefix`, `delimiter`, `maxResults`, `pageToken`.
pub fn list<'q>(b: &BucketConfig, generation: i64, base: &str, param: &dyn Fn(&str) -> Option<&'q str>) -> Response {
    let max = match param("maxResults").map(str::parse::<usize>) {
        None => MAX_RESULTS,
        Some(Ok(n)) if n > 0 => n.min(MAX_RESULTS),
        Some(_) => {
            return errors::storage(
                400,
                "Invalid argument: maxResults must be a positive number.",
                "invalid",
                "invalid",
            )
        }
    };
    let after = match param("pageToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => match URL_SAFE_NO_PAD.decode(t).ok().and_then(|k| String::from_utf8(k).ok()) {
            Some(k) => Some(k),
            None => return errors::storage(400, "Invalid page token.", "invalid", "invalid"),
        },
    };
    let all = entries(b, param("prefix").unwrap_or(""), param("delimiter").unwrap_or(""));
    let mut rest = all.iter().filter(|e| after.as_deref().map_or(true, |a| e.key() > a)).peekable();
    let (mut items, mut prefixes, mut last) = (Vec::new(), Vec::new(), None);
    for e in rest.by_ref().take(max) {
        match e {
            Entry::Object(o) => items.push(resource(b, o, generation, base)),
            Entry::Prefix(p) => prefixes.push(json!(p)),
        }
        last = Some(e.key());
    }
    let mut body = json!({"kind": "storage#objects", "items": items, "prefixes": prefixes});
    if let (Some(k), Some(_)) = (last, rest.peek()) {
        body["nextPageToken"] = json!(URL_SAFE_NO_PAD.encode(k));
    }
    errors::json(200, &body, "ok")
}
