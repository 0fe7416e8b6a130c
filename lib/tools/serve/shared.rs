//! What every connection thread of wif-serve shares, and the admission of new connections.

use super::allow::AllowList;
use super::bearer::Bearer;
use super::broker::Broker;
use super::conns::{Scope, Table};
use super::log::Event;
use super::metrics::{Metrics, Refusal};
use super::options::Limits;
use super::tls;
use crate::server::Response;
use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// What every connection thread shares.
pub(super) struct Shared {
    pub tls: tls::TlsSource,
    pub broker: Broker,
    pub allow: AllowList,
    pub limits: Limits,
    pub shutting_down: AtomicBool,
    pub conns: Table,
    pub metrics: Metrics,
    /// The bearer-token verifier, with `--bearer-issuers`.
    pub bearer: Option<Bearer>,
}

impl Shared {
    pub fn open_connections(&self) -> usize {
        self.conns.len()
    }

    /// Makes room for a new connection from `ip`: `Err` with why it must be refused when
    /// every connection it could replace is busy with a request.
    pub fn admit(&self, ip: Option<IpAddr>) -> std::result::Result<(), String> {
        let max = self.limits.max_connections;
        if self.conns.len() >= max
            && !self.evict(
                Scope::All,
                None,
                format!("the connection limit (--max-connections {max}) was reached and this, the oldest connection,"),
            )
        {
            return Err(format!("too many connections (--max-connections {max})"));
        }
        if let (Some(cap), Some(ip)) = (self.limits.max_per_address, ip) {
            if self.conns.count(Scope::Address(ip), None) >= cap
                && !self.evict(
                    Scope::Address(ip),
                    None,
                    format!(
                        "{ip} reached its limit (--max-connections-per-address {cap}) and this, its oldest connection,"
                    ),
                )
            {
                return Err(format!("too many connections from {ip} (--max-connections-per-address {cap})"));
            }
        }
        Ok(())
    }

    /// Counts connection `id` as one of client `key`'s (`--max-connections-per-client`),
    /// making room among the client's others when it is at its limit. When none of them
    /// can give way, logs `refused` (the client's `connection_refused` line) with why and
    /// returns the 503 to answer (`who`: "client certificate" or "client").
    pub fn join_client<'e>(
        &self,
        id: u64,
        key: &str,
        who: &str,
        refused: impl FnOnce() -> Event<'e>,
    ) -> std::result::Result<(), Response> {
        let cap = self.limits.max_per_client;
        if self.conns.join_client(id, key) >= cap
            && !self.evict(
                Scope::Client(key),
                Some(id),
                format!("its client reached its limit (--max-connections-per-client {cap}) and this, its oldest connection,"),
            )
        {
            self.metrics.connection_refused();
            let why = format!("this client holds too many connections at once (--max-connections-per-client {cap})");
            refused().reason(&why).emit();
            return Err(too_many_connections(who, why));
        }
        Ok(())
    }

    /// Counts and answers a verified client that is not on `--allow` (`who`: "client
    /// certificate" or "client").
    pub fn not_allowed(&self, who: &str) -> Response {
        self.metrics.refused(Refusal::NotAllowed);
        Response::error(403, "forbidden", &format!("this {who} is not on the server's allow-list"))
            .because("client identity not in the allow-list")
    }

    /// Closes the connection in `scope` that gives way first (see [`conns::Table::make_room`])
    /// and logs why (`words` leads into the phase it was in); false when there is none.
    pub fn evict(&self, scope: Scope<'_>, except: Option<u64>, words: String) -> bool {
        let Some(e) = self.conns.make_room(scope, except) else { return false };
        // Logged outside the table's lock: a slow stdout must not hold up the connections.
        self.metrics.connection_evicted();
        Event::new("connection_closed")
            .peer(&e.peer)
            .reason(format!("{words} {}", e.why))
            .code("evicted")
            .connections(e.open)
            .emit();
        true
    }
}

/// Removes a connection from the table when its thread ends, however it ends.
pub(super) struct ConnGuard {
    pub shared: Arc<Shared>,
    pub id: u64,
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.shared.conns.remove(self.id);
    }
}

/// The 503 for a client over `--max-connections-per-client` (`who`: "client certificate" or
/// "client"; `why` for the log).
fn too_many_connections(who: &str, why: String) -> Response {
    Response::error(
        503,
        "too_many_connections",
        &format!("this {who} holds too many connections to the server at once; retry shortly"),
    )
    .header("Retry-After", "1")
    .because(why)
}
