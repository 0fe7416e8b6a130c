//! Binding a listening socket, with a hint when the address is taken, not permitted or not
//! on this machine.

use crate::core::error::{Error, Result};
use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

/// Resolves `listen`, the value of `flag` (e.g. `--listen`), to its socket addresses; a usage
/// error with an example when it is not an address with a port.
pub fn resolve(listen: &str, flag: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = listen
        .to_socket_addrs()
        .map_err(|e| {
            Error::usage(format!("{flag} {listen:?} is not an address with a port: {e}"))
                .hint(format!("e.g. {flag} 127.0.0.1:8443, {flag} [::]:8443 or {flag} 127.0.0.1:0 for any free port"))
        })?
        .collect();
    if addrs.is_empty() {
        return Err(Error::usage(format!("{flag} {listen:?} resolves to no address")));
    }
    Ok(addrs)
}

/// Binds the first of `addrs` that can be bound. When none can, the error of the last one,
/// as `describe` words it (each tool keeps its own words), with a hint on what to do for
/// `flag` when the port is taken, needs privileges or the address is not this machine's.
pub fn bind(
    addrs: &[SocketAddr],
    flag: &str,
    describe: impl Fn(&SocketAddr, &std::io::Error) -> Error,
) -> Result<TcpListener> {
    let mut last = None;
    for addr in addrs {
        match TcpListener::bind(addr) {
            Ok(l) => return Ok(l),
            Err(e) => last = Some((addr, e)),
        }
    }
    let Some((addr, e)) = last else {
        return Err(Error::usage(format!("{flag}: no address to listen on")));
    };
    Err(with_hint(describe(addr, &e), addr, e.kind(), flag))
}

/// `err` with the hint for a listening socket that could not be bound to `addr`.
fn with_hint(err: Error, addr: &SocketAddr, kind: ErrorKind, flag: &str) -> Error {
    match kind {
        ErrorKind::AddrInUse => err.hint(format!(
            "another process listens on port {} (see: ss -ltnp 'sport = :{}'); stop it or choose another {flag} port",
            addr.port(),
            addr.port()
        )),
        ErrorKind::PermissionDenied => {
            err.hint("ports below 1024 need privileges (CAP_NET_BIND_SERVICE); use a port of 1024 or more")
        }
        ErrorKind::AddrNotAvailable => err.hint("this machine has no such address"),
        _ => err,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::Kind;

    #[test]
    fn a_taken_port_is_named_with_a_hint() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err =
            bind(&[addr], "--listen", |a, e| Error::new(Kind::Io, format!("cannot listen on {a}: {e}"))).unwrap_err();
        assert!(err.to_string().contains(&format!("cannot listen on {addr}")), "{err}");
        assert!(err.hint_text().is_some_and(|h| h.contains("another process listens")), "{err:?}");
    }

    #[test]
    fn addresses_without_a_port_are_refused_with_an_example() {
        let err = resolve("nowhere", "--metrics-listen").unwrap_err();
        assert!(err.to_string().starts_with("--metrics-listen \"nowhere\" is not an address with a port"), "{err}");
        assert!(err.hint_text().is_some_and(|h| h.contains("--metrics-listen 127.0.0.1:0")));
        assert_eq!(resolve("127.0.0.1:0", "--listen").unwrap().len(), 1);
    }
}
