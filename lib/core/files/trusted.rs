//! Opening an existing token or metadata file safely: without blocking (a FIFO in its place
//! is refused at once), only when this user or root owns it and nobody else can write it, and
//! never half-written (a file rewritten in place is read again).

use super::outcome::{Distrust, Part, Stored};
use std::io::Read;
use std::path::Path;

/// The bytes of an existing file of kind `part` (the token or its metadata, or a file beside
/// them that decides what is handed out, such as a policy), if it is trusted. The file is
/// opened without blocking and checked before any read, so a FIFO (or device) put in its
/// place is refused at once instead of hanging the reader.
pub fn read_trusted(path: &Path, part: Part) -> std::result::Result<Vec<u8>, Stored> {
    read_part_with_stat(path, part).map(|(bytes, _)| bytes)
}

/// [`read_trusted`], with the status of the file that was read. A file rewritten in place (the
/// seed's generator truncates and writes) can be caught half-written: the read counts only
/// when the file's size and modification time were the same before and after it and the
/// bytes read are all of it; otherwise it is read again, a few times, then refused.
pub(super) fn read_part_with_stat(
    path: &Path,
    part: Part,
) -> std::result::Result<(Vec<u8>, std::fs::Metadata), Stored> {
    for attempt in 0..4 {
        if attempt > 0 {
            std::thread::sleep(std::time::Duration::from_millis(5 << attempt));
        }
        let (bytes, before, after) = read_part_once(path, part)?;
        if unchanged(&before, &after, bytes.len()) {
            return Ok((bytes, after));
        }
    }
    Err(Stored::Unusable(part, path.to_path_buf(), "it kept changing while it was read (rewritten in place?)".into()))
}

/// Whether a file's status before and after a read of `read` bytes says nothing wrote to it
/// meanwhile.
pub(super) fn unchanged(before: &std::fs::Metadata, after: &std::fs::Metadata, read: usize) -> bool {
    let same_time = match (before.modified(), after.modified()) {
        (Ok(a), Ok(b)) => a == b,
        _ => true,
    };
    same_time && before.len() == after.len() && after.len() == read as u64
}

/// One open and read of a token or metadata file: its bytes, and its status before and
/// after the read.
type ReadOnce = (Vec<u8>, std::fs::Metadata, std::fs::Metadata);

fn read_part_once(path: &Path, part: Part) -> std::result::Result<ReadOnce, Stored> {
    let unusable = |e: &std::io::Error| Stored::Unusable(part, path.to_path_buf(), crate::core::error::io_words(e));
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags((rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32);
    }
    let mut file = match opts.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Stored::Missing(part, path.to_path_buf())),
        Err(e) => return Err(unusable(&e)),
    };
    let before = file.metadata().map_err(|e| unusable(&e))?;
    if let Some(why) = distrust(&before) {
        return Err(Stored::Untrusted(part, path.to_path_buf(), why));
    }
    let mut bytes = Vec::new();
    (&mut file).take(part.limit() + 1).read_to_end(&mut bytes).map_err(|e| unusable(&e))?;
    if bytes.len() as u64 > part.limit() {
        return Err(Stored::Unusable(part, path.to_path_buf(), format!("it is larger than {} bytes", part.limit())));
    }
    let after = file.metadata().map_err(|e| unusable(&e))?;
    Ok((bytes, before, after))
}

/// Why an existing file may not be trusted, or `None` if it may: it must be a regular file,
/// owned by this process's effective user or root, and writable by nobody else. A file
/// another user could have made or changed (say, in a shared or world-writable directory)
/// could carry a token and an expiry of their choosing.
pub fn distrust(stat: &std::fs::Metadata) -> Option<Distrust> {
    let kind = stat.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_symlink() {
            "a symbolic link"
        } else {
            #[cfg(unix)]
            {
                use std::os::unix::fs::FileTypeExt;
                if kind.is_fifo() {
                    "a FIFO"
                } else if kind.is_socket() {
                    "a socket"
                } else {
                    "a device"
                }
            }
            #[cfg(not(unix))]
            "not a file"
        };
        return Some(Distrust::same(format!("it is {what}, not a regular file")));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let me = rustix::process::geteuid().as_raw();
        if stat.uid() != me && stat.uid() != 0 {
            return Some(Distrust {
                shown: "it is owned by another user than the reader's or root".into(),
                detail: format!("it is owned by uid {}, not by this user (uid {me}) or root", stat.uid()),
            });
        }
        if stat.mode() & 0o022 != 0 {
            return Some(Distrust::same(format!(
                "others can write it (mode {:04o}); only its owner may (chmod go-w)",
                stat.mode() & 0o7777
            )));
        }
    }
    None
}
