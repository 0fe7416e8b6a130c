//! Atomic writes: a same-directory temp file (created exclusively, with its mode), fsync,
//! rename over the target, fsync of the directory; stale temp files of killed writers swept.

use crate::core::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes `bytes` to `path` atomically with `mode`: readers see the old file or the new
/// one, never a mix, and a failure leaves the old file as it was.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path.file_name().ok_or_else(|| Error::usage(format!("{} is not a file path", path.display())))?;
    let mut rnd = [0u8; 6];
    let _ = aws_lc_rs::rand::fill(&mut rnd);
    let suffix = hex::encode(rnd);
    let prefix = format!(".{}.", name.to_string_lossy());
    sweep_stale_temps(&dir, &prefix);
    let tmp = dir.join(format!("{prefix}{}.{suffix}.tmp", std::process::id()));
    let result = write_new(&tmp, bytes, mode).and_then(|()| std::fs::rename(&tmp, path)).and_then(|()| sync_dir(&dir));
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        let hint = match e.raw_os_error() {
            Some(28) => Some("the file system is full; the previous file was kept"),
            Some(30) => Some("the file system is read-only"),
            Some(18) => Some("the temporary file and the target must be on one file system"),
            _ => None,
        };
        let err = Error::io(path, &e).context(format!("writing {}", path.display()));
        match hint {
            Some(h) => err.hint(h),
            None => err,
        }
    })
}

/// Removes temp files that an earlier writer of the same file left behind when it was
/// killed (SIGKILL, power loss) between creating and renaming them: those whose process is
/// gone, or that are older than ten minutes. Best effort; errors are ignored.
fn sweep_stale_temps(dir: &Path, prefix: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(prefix)).and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let Some(pid) = rest.split('.').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > std::time::Duration::from_secs(600));
        if pid != std::process::id() && (!process_alive(pid) || old) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

fn write_new(tmp: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(tmp)?;
    f.write_all(bytes)?;
    f.sync_all()
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}
