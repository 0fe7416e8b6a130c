//! What the interoperability tests need from outside Rust, kept under the build directory:
//! Google's Node.js library (`node_modules`, installed by scripts/test.sh) and the Go client
//! (tests/interop/go, built here from Debian's Go packages, offline).

use super::{apt, needs, runs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Where scripts/test.sh keeps the interop tests' environments: `WIF_INTEROP_DIR` (it sets
/// it to `$target/interop`), else `interop` in the target directory of this test binary
/// (`target/debug/deps/integration-…`).
pub fn dir() -> PathBuf {
    if let Some(d) = std::env::var_os("WIF_INTEROP_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let target = exe.ancestors().nth(3).expect("the test binary lies in TARGET/PROFILE/deps");
    target.join("interop")
}

/// The `node_modules` holding google-auth-library: scripts/test.sh's under [`dir`], else one
/// made by `npm ci --prefix tests/interop/node`. `None` (the test recorded as not run, per
/// [`needs`]) when node or the library is missing.
pub fn node_modules() -> Option<PathBuf> {
    if !needs("node", runs("node", "--version"), &apt("nodejs npm")) {
        return None;
    }
    let source_tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node/node_modules");
    let found = [dir().join("node/node_modules"), source_tree]
        .into_iter()
        .find(|d| d.join("google-auth-library/package.json").is_file());
    let hint = "scripts/test.sh (it runs npm ci for tests/interop/node under the target directory)";
    needs("google-auth-library (tests/interop/node/package-lock.json)", found.is_some(), hint);
    found
}

/// Where Debian installs Go libraries for GOPATH mode.
const GOPATH: &str = "/usr/share/gocode";
/// The Go packages the client imports, as Debian names their directories and packages.
const GO_LIBRARIES: [&str; 2] = ["golang.org/x/oauth2/google", "cloud.google.com/go/compute/metadata"];
const GO_PACKAGES: &str = "golang-go golang-golang-x-oauth2-google-dev golang-google-cloud-compute-metadata-dev";

/// The Go client (tests/interop/go), built once per run into `dir()/go` from Debian's
/// packages, offline: GOPATH mode, no module proxy. `None` (the test recorded as not run, per
/// [`needs`]) when go or the libraries are missing; a build that fails with them present
/// fails the test.
pub fn go_client() -> Option<PathBuf> {
    let go = runs("go", "version");
    let missing: Vec<&str> =
        GO_LIBRARIES.into_iter().filter(|l| !Path::new(GOPATH).join("src").join(l).is_dir()).collect();
    let what = if go { format!("Go libraries {} in {GOPATH}", missing.join(", ")) } else { "go".to_string() };
    if !needs(&what, go && missing.is_empty(), &apt(GO_PACKAGES)) {
        return None;
    }
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    Some(BUILT.get_or_init(build_go_client).clone())
}

fn build_go_client() -> PathBuf {
    let out = dir().join("go");
    std::fs::create_dir_all(&out).unwrap_or_else(|e| panic!("making {}: {e}", out.display()));
    let exe = out.join("wif-go-client");
    // Built beside its final name and renamed over it, so a concurrent run never executes
    // a half-written binary.
    let partial = out.join(format!("wif-go-client.{}.partial", std::process::id()));
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&partial)
        .arg(".")
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/go"))
        .env("GO111MODULE", "off")
        .env("GOPATH", GOPATH)
        .env("GOCACHE", out.join("cache"))
        .env("GOFLAGS", "")
        .env("GOPROXY", "off")
        .env("GOTOOLCHAIN", "local")
        .env("CGO_ENABLED", "0")
        .output()
        .expect("running go build");
    assert!(built.status.success(), "go build of tests/interop/go failed:\n{}", String::from_utf8_lossy(&built.stderr));
    std::fs::rename(&partial, &exe)
        .unwrap_or_else(|e| panic!("renaming {} to {}: {e}", partial.display(), exe.display()));
    exe
}
