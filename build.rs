//! Release builds of wif-serve place the functions it runs together in the binary, in the
//! order of bin/wif-serve.order (made by scripts/bench/orderfile.sh): the kernel maps code
//! 64 KiB at a time around each page touched, so scattered hot code made most of the binary
//! resident. Only the linker's layout changes, never what the program does; a linker that
//! cannot order symbols (GNU ld, an older Rust's default) simply builds it unordered.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ORDER_FILE: &str = "bin/wif-serve.order";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed={ORDER_FILE}");
    println!("cargo:rerun-if-env-changed=WIF_NO_ORDER_FILE");
    // The probe's answer is the linker's: asked again when the linker changes.
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    if env::var("PROFILE").as_deref() != Ok("release") || env::var_os("WIF_NO_ORDER_FILE").is_some() {
        return;
    }
    let order = Path::new(&env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default()).join(ORDER_FILE);
    if !order.is_file() {
        return;
    }
    let args = [
        format!("-Wl,--symbol-ordering-file={}", order.display()),
        // Names from another toolchain or Cargo.lock are simply not found: no warning each.
        "-Wl,--no-warn-symbol-ordering".to_string(),
    ];
    if linker_accepts(&args) {
        for arg in &args {
            println!("cargo:rustc-link-arg-bin=wif-serve={arg}");
        }
    } else {
        println!("cargo:warning=the linker cannot order symbols (--symbol-ordering-file): wif-serve is built unordered, with more of its code resident");
    }
}

/// Whether linking a small program for the target, with the same compiler, linker and
/// flags as this build, succeeds with `args` added.
fn linker_accepts(args: &[String]) -> bool {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap_or_default());
    let source = out.join("probe.rs");
    if std::fs::write(&source, "fn main() {}\n").is_err() {
        return false;
    }
    let mut rustc = Command::new(env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()));
    rustc.arg("--edition=2021").arg("--crate-type=bin").arg("-o").arg(out.join("probe")).arg(&source);
    if let Some(target) = env::var_os("TARGET") {
        rustc.arg("--target").arg(target);
    }
    if let Some(linker) = env::var_os("RUSTC_LINKER") {
        rustc.arg("-C").arg(format!("linker={}", linker.to_string_lossy()));
    }
    let flags = env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    rustc.args(flags.split('\x1f').filter(|f| !f.is_empty()));
    for arg in args {
        rustc.arg("-C").arg(format!("link-arg={arg}"));
    }
    rustc.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}
