//! The token file pair: round trips, refusals, and readers racing writers.

use super::token::{new_meta, write_meta};
use super::trusted::unchanged;
use super::*;
use crate::core::clock;
use crate::core::error::Kind;
use crate::core::secret::Secret;
use std::path::{Path, PathBuf};

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("wif-files-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A fresh directory and the path of a token file in it.
fn token_in(tag: &str) -> (PathBuf, PathBuf) {
    let d = tmpdir(tag);
    let p = d.join("t.txt");
    (d, p)
}

fn in_an_hour() -> String {
    clock::rfc3339(clock::now_unix() + 3600)
}

fn write(p: &Path, token: &str, exp: &str) -> TokenMeta {
    write_token(p, &Secret::new(token), "access_token", Some(exp), "test").unwrap()
}

/// The token read back, or the outcome's detail.
fn read(p: &Path) -> std::result::Result<String, String> {
    match read_token(p) {
        Stored::Found(t) => Ok(t.token.expose().to_string()),
        other => Err(other.detail()),
    }
}

#[test]
fn stale_temp_files_of_dead_writers_are_swept() {
    let d = tmpdir("sweep");
    let p = d.join("wif_token.txt");
    // 4000000000 is above Linux's pid_max, so no live process has it.
    let dead = d.join(".wif_token.txt.4000000000.abcdef.tmp");
    let unrelated = d.join(".other.txt.1.abcdef.tmp");
    std::fs::write(&dead, b"half a tok").unwrap();
    std::fs::write(&unrelated, b"x").unwrap();
    write_atomic(&p, b"token", 0o600).unwrap();
    assert!(!dead.exists(), "the dead writer's temp file is gone");
    assert!(unrelated.exists(), "other files' temp files are left alone");
    assert_eq!(std::fs::read(&p).unwrap(), b"token");
}

#[test]
fn token_file_round_trip_and_mode() {
    let d = tmpdir("rt");
    let p = d.join("wif_token.txt");
    let exp = in_an_hour();
    write(&p, "ya29.token", &exp);
    assert_eq!(std::fs::read(&p).unwrap(), b"ya29.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, 0o600);
    }
    let Stored::Found(t) = read_token(&p) else { panic!("{}", read_token(&p).detail()) };
    assert_eq!(t.token.expose(), "ya29.token");
    assert_eq!(t.meta.expires_at.to_string(), exp);
    assert_eq!(t.expires_at.unix(), clock::parse_rfc3339(&exp).unwrap());
    // Only the two files remain: no temp files left behind.
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 2);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn expired_token_never_replaces_the_old_one() {
    let (d, p) = token_in("exp");
    std::fs::write(&p, "old").unwrap();
    let past = clock::rfc3339(clock::now_unix() - 5);
    assert!(write_token(&p, &Secret::new("new"), "access_token", Some(&past), "test").is_err());
    assert!(write_token(&p, &Secret::new("new"), "access_token", None, "test").is_err());
    assert_eq!(std::fs::read(&p).unwrap(), b"old");
    assert!(!meta_path(&p).exists(), "nothing was written");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_token_edited_in_place_matches_no_entry() {
    let (d, p) = token_in("mm");
    write(&p, "one", &in_an_hour());
    write(&p, "two", &in_an_hour());
    std::fs::write(&p, "three").unwrap();
    assert!(matches!(read_token(&p), Stored::Mismatch(_)), "{}", read_token(&p).detail());
    assert!(read_token(&p).reason().contains("does not match its metadata"));
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn the_metadata_keeps_the_replaced_tokens_entry_and_old_readers_see_the_new_one() {
    let (d, p) = token_in("prev");
    let first = write(&p, "first", &clock::rfc3339(clock::now_unix() + 600));
    let second = write(&p, "second", &in_an_hour());
    let text: serde_json::Value = serde_json::from_slice(&std::fs::read(meta_path(&p)).unwrap()).unwrap();
    // Today's fields keep their meaning: the token in the file.
    assert_eq!(text["sha256"], crate::core::keys::sha256_hex(b"second"));
    assert_eq!(text["expires_at"], second.expires_at.to_string());
    assert_eq!(text["previous"]["sha256"], crate::core::keys::sha256_hex(b"first"));
    assert_eq!(text["previous"]["expires_at"], first.expires_at.to_string());
    assert!(text["previous"].get("previous").is_none(), "one level only");
    // The previous token's entry is carried, never an entry of a token older than that.
    write(&p, "third", &in_an_hour());
    let m: MetaFile = serde_json::from_slice(&std::fs::read(meta_path(&p)).unwrap()).unwrap();
    assert_eq!(m.previous, Some(TokenMeta { written_by: "test".into(), ..second }));
    assert!(m.entry_for(b"first").is_none());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_writer_stopped_between_the_two_renames_leaves_a_consistent_pair() {
    let (d, p) = token_in("kill");
    let old_exp = clock::rfc3339(clock::now_unix() + 600);
    write(&p, "old", &old_exp);
    // The first half of write_token: the new metadata is in place, the token is not.
    let meta = new_meta(&p, &Secret::new("new"), "access_token", Some(&in_an_hour()), "test").unwrap();
    write_meta(&p, &meta).unwrap();
    let Stored::Found(t) = read_token(&p) else { panic!("{}", read_token(&p).detail()) };
    assert_eq!(
        (t.token.expose(), t.meta.expires_at.to_string().as_str()),
        ("old", old_exp.as_str()),
        "the old token, its own expiry"
    );
    // The next write keeps the entry of the token really in the file.
    write(&p, "newer", &in_an_hour());
    let m: MetaFile = serde_json::from_slice(&std::fs::read(meta_path(&p)).unwrap()).unwrap();
    assert_eq!(m.previous.unwrap().sha256, crate::core::keys::sha256_hex(b"old"));
    assert_eq!(read(&p).unwrap(), "newer");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_reader_never_sees_a_mismatch_while_a_writer_rewrites_the_pair() {
    let (d, p) = token_in("race");
    write(&p, "token-0", &in_an_hour());
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (p, stop) = (p.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                write(&p, &format!("token-{n}"), &in_an_hour());
            }
            n
        })
    };
    let started = std::time::Instant::now();
    let mut reads = 0;
    while started.elapsed() < std::time::Duration::from_millis(1500) {
        let got = read(&p).unwrap_or_else(|e| panic!("read {reads}: {e}"));
        assert!(got.starts_with("token-"), "{got}");
        reads += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.join().unwrap();
    assert!(writes > 5 && reads > 5, "{writes} writes, {reads} reads");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_metadata_path_that_is_a_directory_fails_before_the_token_is_touched() {
    let (d, p) = token_in("dir");
    std::fs::write(&p, "old").unwrap();
    std::fs::create_dir(meta_path(&p)).unwrap();
    let e = write_token(&p, &Secret::new("new"), "access_token", Some(&in_an_hour()), "test").unwrap_err();
    assert_eq!(e.kind(), Kind::Io);
    assert_eq!(std::fs::read(&p).unwrap(), b"old");
    assert!(read_token(&p).detail().contains("a directory, not a regular file"), "{}", read_token(&p).detail());
    // And a token path that is a directory: refused before the metadata is written.
    let q = d.join("q.txt");
    std::fs::create_dir(&q).unwrap();
    assert!(write_token(&q, &Secret::new("new"), "access_token", Some(&in_an_hour()), "test").is_err());
    assert!(!meta_path(&q).exists());
    std::fs::remove_dir_all(&d).unwrap();
}

#[cfg(unix)]
#[test]
fn files_others_can_write_fifos_and_missing_files_are_told_apart() {
    use std::os::unix::fs::PermissionsExt;
    let (d, p) = token_in("trust");
    assert!(matches!(read_token(&p), Stored::Missing(Part::Token, _)));
    write(&p, "tok", &in_an_hour());
    std::fs::set_permissions(meta_path(&p), std::fs::Permissions::from_mode(0o666)).unwrap();
    let s = read_token(&p);
    assert!(matches!(s, Stored::Untrusted(Part::Meta, _, _)), "{}", s.detail());
    assert!(s.detail().contains("mode 0666") && s.detail().contains(".meta.json"), "{}", s.detail());
    assert_eq!(
        s.reason(),
        "the token metadata file is not trusted: others can write it (mode 0666); only its owner may (chmod go-w)",
        "no path"
    );
    std::fs::set_permissions(meta_path(&p), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o620)).unwrap();
    assert!(matches!(read_token(&p), Stored::Untrusted(Part::Token, _, _)));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(read(&p).unwrap(), "tok");
    // A FIFO is refused at once, never read (reading it would block until a writer came).
    std::fs::remove_file(&p).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(&p).status().unwrap().success());
    let s = read_token(&p);
    assert!(s.detail().contains("a FIFO, not a regular file"), "{}", s.detail());
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn failed_write_leaves_old_file_and_no_temp() {
    let d = tmpdir("fail");
    let p = d.join("missing-dir").join("t.txt");
    let e = write_atomic(&p, b"x", 0o600).unwrap_err();
    assert_eq!(e.kind(), Kind::Io);
    assert_eq!(std::fs::read_dir(&d).unwrap().count(), 0);
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_bare_file_that_is_empty_or_json_is_not_a_token() {
    let (d, p) = token_in("bare-shapes");
    for (content, why) in [
        ("", "it is empty"),
        ("\n", "it is empty"),
        (r#"{"access_token":"ya29.x","expires_in":3599}"#, "it holds JSON"),
        ("ya29.a b", "it holds a space"),
        ("ya29.a\nb", "it holds a line break"),
    ] {
        std::fs::write(&p, content).unwrap();
        match read_bare_token(&p) {
            Err(s @ Stored::Unusable(Part::Token, _, _)) => {
                assert!(s.reason().contains(why), "{content:?}: {}", s.reason());
                assert!(!s.reason().contains(&d.display().to_string()), "{}", s.reason());
            }
            Err(s) => panic!("{content:?}: {}", s.detail()),
            Ok(_) => panic!("{content:?} was taken for a token"),
        }
    }
    std::fs::write(&p, "ya29.bare\r\n").unwrap();
    assert_eq!(read_bare_token(&p).unwrap().token.expose(), "ya29.bare");
    std::fs::remove_dir_all(&d).unwrap();
}

#[test]
fn a_read_counts_only_when_the_file_did_not_change_under_it() {
    let (d, p) = token_in("unchanged");
    std::fs::write(&p, "abc").unwrap();
    let short = std::fs::metadata(&p).unwrap();
    std::fs::write(&p, "abcdef").unwrap();
    let long = std::fs::metadata(&p).unwrap();
    assert!(unchanged(&long, &long, 6));
    assert!(!unchanged(&long, &long, 3), "fewer bytes read than the file holds");
    assert!(!unchanged(&short, &long, 6), "the size changed during the read");
    std::fs::remove_dir_all(&d).unwrap();
}

/// The seed's generator rewrites its file in place (truncate, then write): a reader racing
/// it gets the whole token or an error, never a piece of one.
#[test]
fn a_file_rewritten_in_place_is_never_read_half_written() {
    use std::io::Write;
    let (d, p) = token_in("in-place");
    let token = format!("ya29.{}", "x".repeat(1500));
    std::fs::write(&p, &token).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (p, token, stop) = (p.clone(), token.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut f = std::fs::OpenOptions::new().write(true).truncate(true).open(&p).unwrap();
                f.write_all(token.as_bytes()).unwrap();
            }
        })
    };
    let (mut whole, mut refused) = (0, 0);
    for _ in 0..300 {
        match read_bare_token(&p) {
            Ok(t) => {
                assert_eq!(t.token.expose().len(), token.len(), "a piece of the token was read");
                whole += 1;
            }
            Err(Stored::Unusable(..)) => refused += 1,
            Err(s) => panic!("{}", s.detail()),
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(whole > 0, "never read whole ({refused} refused)");
    std::fs::remove_dir_all(&d).unwrap();
}
