//! wif-rusage: runs one command and prints its wall time, CPU time (user, system) and peak RSS
//! as one JSON line on stderr, or into --out. The command is started from this small process
//! (not from Python), so its peak RSS is its own: a child forked from a big parent inherits the
//! parent's high-water mark until it execs.
//!
//! usage: wif-rusage [--in FILE] [--out JSON_FILE] -- COMMAND [ARGS...]
//!   --in FILE   the command's standard input (default: empty)
//!   stdout and stderr of the command are passed through

use std::fs::File;
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut input, mut out) = (None, None);
    let mut cmd = Vec::new();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--in" => input = args.next(),
            "--out" => out = args.next(),
            "--" => {
                cmd.extend(args.by_ref());
                break;
            }
            _ => {
                eprintln!("wif-rusage: unknown argument {a:?}; usage: wif-rusage [--in FILE] [--out FILE] -- CMD...");
                return ExitCode::from(2);
            }
        }
    }
    let Some((prog, rest)) = cmd.split_first() else {
        eprintln!("wif-rusage: no command given");
        return ExitCode::from(2);
    };
    let stdin = match &input {
        Some(path) => match File::open(path) {
            Ok(f) => Stdio::from(f),
            Err(e) => {
                eprintln!("wif-rusage: {path}: {e}");
                return ExitCode::from(2);
            }
        },
        None => Stdio::null(),
    };
    let start = Instant::now();
    let mut child = match Command::new(prog).args(rest).stdin(stdin).spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("wif-rusage: starting {prog}: {e}");
            return ExitCode::from(2);
        }
    };
    let mut status: libc::c_int = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill in.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid with valid pointers to stack variables.
    let rc = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    let wall = start.elapsed().as_secs_f64();
    if rc < 0 {
        eprintln!("wif-rusage: wait4: {}", std::io::Error::last_os_error());
        let _ = child.kill();
        return ExitCode::from(2);
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let exit = if libc::WIFEXITED(status) { libc::WEXITSTATUS(status) } else { 128 + libc::WTERMSIG(status) };
    let line = serde_json::json!({
        "exit": exit,
        "wall_s": wall,
        "user_s": tv(ru.ru_utime),
        "sys_s": tv(ru.ru_stime),
        "maxrss_kib": ru.ru_maxrss,
    })
    .to_string();
    match out {
        Some(path) => {
            if let Err(e) = std::fs::write(&path, line + "\n") {
                eprintln!("wif-rusage: {path}: {e}");
                return ExitCode::from(2);
            }
        }
        None => eprintln!("{line}"),
    }
    ExitCode::from(exit.clamp(0, 255) as u8)
}
