//! Unit tests of the token source: reading, judging and re-reading the token file.

use super::*;
use crate::core::files::write_token;

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wif-serve-token-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh directory with the pair for `token` (expiring in 10 minutes) written in it:
/// the directory, the token path and the expiry.
fn written(tag: &str, token: &str) -> (PathBuf, PathBuf, String) {
    let d = dir(tag);
    let p = d.join("t.txt");
    let exp = clock::rfc3339(clock::now_unix() + 600);
    write_token(&p, &Secret::new(token), "access_token", Some(&exp), "test").unwrap();
    (d, p, exp)
}

fn token_of(s: &TokenSource) -> Option<String> {
    match s.current() {
        State::Ready(l) => Some(l.token.expose().to_string()),
        State::Unavailable { .. } => None,
    }
}

/// A source that looks at the files at every call: these tests change them between calls.
fn looking_every_time(path: PathBuf) -> TokenSource {
    TokenSource { recheck: Duration::ZERO, ..TokenSource::new(path) }
}

#[test]
fn follows_rewrites_and_refuses_expired_and_missing() {
    let d = dir("rw");
    let p = d.join("t.txt");
    let src = looking_every_time(p.clone());
    assert!(token_of(&src).is_none());
    let exp = clock::rfc3339(clock::now_unix() + 600);
    write_token(&p, &Secret::new("first"), "access_token", Some(&exp), "test").unwrap();
    assert_eq!(token_of(&src).as_deref(), Some("first"));
    write_token(&p, &Secret::new("second"), "access_token", Some(&exp), "test").unwrap();
    assert_eq!(token_of(&src).as_deref(), Some("second"));
    // Metadata saying it expired: refused.
    let meta = meta_path(&p);
    let text = std::fs::read_to_string(&meta).unwrap().replace(&exp, "2020-01-01T00:00:00Z");
    std::fs::write(&meta, text).unwrap();
    match src.current() {
        State::Unavailable { reason, .. } => assert!(reason.contains("expired"), "{reason}"),
        State::Ready(_) => panic!("served an expired token"),
    }
    std::fs::remove_file(&p).unwrap();
    assert!(token_of(&src).is_none());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn an_empty_token_is_never_served() {
    let (d, p, _) = written("empty", "x");
    std::fs::write(&p, "").unwrap();
    let meta = std::fs::read_to_string(meta_path(&p)).unwrap();
    let meta = meta.replace(&crate::core::keys::sha256_hex(b"x"), &crate::core::keys::sha256_hex(b""));
    std::fs::write(meta_path(&p), meta).unwrap();
    match looking_every_time(p).current() {
        State::Unavailable { reason, .. } => assert!(reason.contains("empty"), "{reason}"),
        State::Ready(_) => panic!("served an empty token"),
    }
    std::fs::remove_dir_all(&d).unwrap();
}

/// The state of a writer stopped between its two renames: the metadata describes `new`
/// and keeps the entry of `old`, the token file still holds `old`.
fn metadata_written_first(p: &Path, old: &str, new: &str, exp: &str) {
    let entry = |t: &str| crate::core::files::TokenMeta {
        expires_at: exp.to_string(),
        token_type: "access_token".into(),
        written_at: clock::rfc3339(clock::now_unix()),
        written_by: "test".into(),
        bytes: t.len(),
        sha256: crate::core::keys::sha256_hex(t.as_bytes()),
    };
    let m = crate::core::files::MetaFile { current: entry(new), previous: Some(entry(old)) };
    std::fs::write(meta_path(p), serde_json::to_vec(&m).unwrap()).unwrap();
}

fn unavailable(s: &TokenSource) -> (String, String) {
    match s.current() {
        State::Unavailable { reason, detail, .. } => (reason, detail),
        State::Ready(l) => panic!("served {:?}", l.token),
    }
}

#[test]
fn a_pair_caught_between_the_two_renames_serves_the_token_in_the_file() {
    let (d, p, exp) = written("half", "old");
    let src = looking_every_time(p.clone());
    assert_eq!(token_of(&src).as_deref(), Some("old"));
    metadata_written_first(&p, "old", "new", &exp);
    assert_eq!(token_of(&src).as_deref(), Some("old"), "a server that served the old token");
    assert_eq!(token_of(&looking_every_time(p.clone())).as_deref(), Some("old"), "a fresh server");
    std::fs::write(&p, "new").unwrap();
    assert_eq!(token_of(&src).as_deref(), Some("new"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_token_edited_in_place_stops_being_served() {
    let (d, p, exp) = written("edit", "old");
    write_token(&p, &Secret::new("good"), "access_token", Some(&exp), "test").unwrap();
    let src = looking_every_time(p.clone());
    assert_eq!(token_of(&src).as_deref(), Some("good"));
    std::fs::write(&p, "edited by hand").unwrap();
    for s in [&src, &looking_every_time(p.clone())] {
        let (reason, detail) = unavailable(s);
        assert_eq!(reason, "the token file does not match its metadata");
        assert!(detail.contains(&p.display().to_string()) && detail.contains("edited in place"), "{detail}");
    }
    assert_eq!(src.reload_counts(), (1, 1));
    std::fs::remove_dir_all(&d).unwrap();
}

/// Sets the modification time of `p` to `secs` seconds from now.
fn touch(p: &Path, secs: i64) {
    let t = std::time::SystemTime::now()
        .checked_add(Duration::from_secs(secs.max(0) as u64))
        .and_then(|t| t.checked_sub(Duration::from_secs((-secs).max(0) as u64)))
        .unwrap();
    std::fs::File::options().write(true).open(p).unwrap().set_modified(t).unwrap();
}

/// The seed's generator's file: the token alone, no metadata, mode 0600.
fn bare(tag: &str, contents: &str) -> (PathBuf, PathBuf) {
    let d = dir(tag);
    let p = d.join("wif_token.txt");
    crate::core::files::write_atomic(&p, contents.as_bytes(), 0o600).unwrap();
    (d, p)
}

fn ready(s: &TokenSource) -> Arc<Loaded> {
    match s.current() {
        State::Ready(l) => l,
        State::Unavailable { detail, .. } => panic!("not served: {detail}"),
    }
}

#[test]
fn a_token_file_without_metadata_is_served_until_its_mtime_plus_the_assumed_lifetime() {
    let (d, p) = bare("bare", "ya29.bare-token");
    touch(&p, -600);
    let written = clock::now_unix() - 600;
    let src = looking_every_time(p.clone());
    let l = ready(&src);
    assert_eq!(l.token.expose(), "ya29.bare-token");
    assert_eq!(l.expiry, Expiry::Assumed(DEFAULT_ASSUME_TTL));
    assert!((l.expires_at - (written + 3300)).abs() <= 1, "{} vs {}", l.expires_at, written + 3300);
    assert_eq!(l.expires_at_text, clock::rfc3339(l.expires_at));
    assert_eq!((l.token_type.as_str(), l.written_by.as_deref()), ("access_token", None));
    // A shorter lifetime, and one the file has outlived: 503, saying why without the path.
    assert!(
        (ready(&looking_every_time(p.clone()).assume_ttl(Some(Duration::from_secs(900)))).expires_at - (written + 900))
            .abs()
            <= 1
    );
    let (reason, detail) = unavailable(&looking_every_time(p.clone()).assume_ttl(Some(Duration::from_secs(300))));
    assert!(reason.contains("expired") && reason.contains("no metadata") && reason.contains("5 min"), "{reason}");
    assert!(!reason.contains(&d.display().to_string()) && !detail.contains("ya29"), "{reason} / {detail}");
    // --assume-ttl 0: not served at all, as before.
    let (reason, _) = unavailable(&looking_every_time(p.clone()).assume_ttl(None));
    assert_eq!(reason, "there is no token metadata file");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_bare_token_keeps_its_exact_bytes_but_not_a_trailing_line_end() {
    for (contents, served) in [
        ("ya29.exact", Some("ya29.exact")),
        ("ya29.lf\n", Some("ya29.lf")),
        ("ya29.crlf\r\n", Some("ya29.crlf")),
        ("two words", None),
        ("ya29.a\n\n", None),
    ] {
        let (d, p) = bare("bytes", contents);
        assert_eq!(token_of(&looking_every_time(p)).as_deref(), served, "{contents:?}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[test]
fn a_future_mtime_or_a_sooner_jwt_exp_never_stretches_the_assumed_lifetime() {
    let (d, p) = bare("future", "ya29.future");
    touch(&p, 86_400);
    let now = clock::now_unix();
    let l = ready(&looking_every_time(p.clone()));
    assert!(l.expires_at <= now + 3300 + 1, "{} > {}", l.expires_at, now + 3300);
    use base64::Engine;
    let b64 = |v: serde_json::Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let exp = now + 120;
    let jwt = format!("{}.{}.c2ln", b64(serde_json::json!({"alg": "RS256"})), b64(serde_json::json!({"exp": exp})));
    crate::core::files::write_atomic(&p, jwt.as_bytes(), 0o600).unwrap();
    let l = ready(&looking_every_time(p.clone()));
    assert_eq!((l.expires_at, l.token_type.as_str()), (exp, "jwt"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn metadata_appearing_or_disappearing_is_a_change_like_any_other() {
    let (d, p) = bare("appear", "ya29.seed");
    let src = looking_every_time(p.clone());
    assert_eq!(ready(&src).expiry, Expiry::Assumed(DEFAULT_ASSUME_TTL));
    // The wif tools take over the file: the metadata's expiry from then on.
    let exp = clock::rfc3339(clock::now_unix() + 1200);
    write_token(&p, &Secret::new("ya29.wif"), "access_token", Some(&exp), "test").unwrap();
    let l = ready(&src);
    assert_eq!((l.token.expose(), l.expiry, l.expires_at_text.as_str()), ("ya29.wif", Expiry::Metadata, exp.as_str()));
    // The metadata removed: the file is bare again.
    std::fs::remove_file(meta_path(&p)).unwrap();
    let l = ready(&src);
    assert_eq!((l.token.expose(), l.expiry), ("ya29.wif", Expiry::Assumed(DEFAULT_ASSUME_TTL)));
    // Metadata of another token is a mismatch still, never "no metadata".
    let other = d.join("other.txt");
    write_token(&other, &Secret::new("ya29.other"), "access_token", Some(&exp), "test").unwrap();
    std::fs::copy(meta_path(&other), meta_path(&p)).unwrap();
    assert_eq!(unavailable(&src).0, "the token file does not match its metadata");
    assert_eq!(src.reload_counts(), (3, 1));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_bare_file_is_trusted_as_little_as_a_pair() {
    use std::os::unix::fs::PermissionsExt;
    let (d, p) = bare("trust", "ya29.planted");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o666)).unwrap();
    let (reason, detail) = unavailable(&looking_every_time(p.clone()));
    assert_eq!(
        reason,
        "the token file is not trusted: others can write it (mode 0666); only its owner may (chmod go-w)"
    );
    assert!(detail.contains("mode 0666"), "{detail}");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_fifo_or_another_users_file_is_refused_at_once_and_named_only_in_the_detail() {
    let (d, p, _) = written("fifo", "tok");
    let src = looking_every_time(p.clone());
    assert_eq!(token_of(&src).as_deref(), Some("tok"));
    std::fs::remove_file(&p).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&p).status().unwrap().success());
    let started = std::time::Instant::now();
    let (reason, detail) = unavailable(&src);
    assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(reason, "the token file is not trusted: it is a FIFO, not a regular file");
    assert!(detail.contains("a FIFO") && detail.contains(&p.display().to_string()), "{detail}");
    // Missing files: the reason names no path either.
    std::fs::remove_file(&p).unwrap();
    let (reason, detail) = unavailable(&src);
    assert_eq!(reason, "there is no token file");
    assert!(detail.contains(&p.display().to_string()), "{detail}");
    std::fs::remove_dir_all(&d).unwrap();
}
