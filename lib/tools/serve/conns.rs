//! The table of open connections and the rules for closing one to make room.
//!
//! Every connection is in one phase. When a new client needs a slot, a connection gives way
//! if holding it costs its client nothing and serves nobody: one refused after its handshake,
//! one in its handshake waiting for its client, one idle between requests, or one whose
//! request or answer has been taking longer than a real client ever takes. What a real client
//! does in its first moments is protected for a short grace: the second after its handshake,
//! its first request arriving, an answer being written. A handshake the server owes work to
//! (accepted and not yet read by its thread, or its client's bytes in hand and not yet
//! processed: what `wif_serve_handshakes_waiting` counts; or its client's bytes waiting
//! unread on the socket for its thread to run) is never closed to make room: that
//! would throw away work half done to start the same work again for a newcomer, which is how
//! a herd past `--max-connections` used to be cut off over and over. It costs its client
//! nothing to be protected only while the server is the one behind: once its flight is
//! written the handshake waits for its client again and gives way at once, and a herd beyond
//! `--max-handshake-queue` is shed before it is read, so those protected are at most the queue
//! plus the connections accepted whose threads have not run yet. When nothing can give way the
//! newcomer is refused. The per-address and per-client limits use the same rules, restricted
//! to the connections of that address or client, so one party can only ever push out its own.

use crate::server::state::{AtomicState, ConnState};
use std::collections::HashMap;
use std::net::{IpAddr, Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// How long a connection is protected in a phase a real client passes through quickly: just
/// verified and about to send its first request, that request arriving, or its answer being
/// written. Real clients send a request in one packet and read their answer at once; a
/// connection still there after this is slow or stalling on purpose.
pub const GRACE: Duration = Duration::from_secs(1);

/// Where a connection is in its life.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// The TLS handshake is in progress.
    Handshake = 0,
    /// Verified; its first request has not begun.
    Fresh = 1,
    /// Between requests (after at least one answer), nothing of the next one received.
    Idle = 2,
    /// A request head has begun to arrive and is not complete.
    Reading = 3,
    /// Answering: from a complete request until its answer is written; requests pipelined
    /// behind it and answered at once belong to the same span.
    Busy = 4,
    /// Being closed: refused after its handshake (not allowed, over its client's limit) and
    /// answering its first request if it sends one at once, or its last answer written
    /// (`Connection: close`) and its thread tearing it down. It no longer counts as its
    /// client's: a client fetching once per connection is never over its limit because the
    /// server has not yet finished closing the connections it already answered.
    Closing = 5,
    /// Closed.
    Closed = 6,
}

impl ConnState for Phase {
    const ALL: &'static [Phase] =
        &[Phase::Handshake, Phase::Fresh, Phase::Idle, Phase::Reading, Phase::Busy, Phase::Closing, Phase::Closed];
    fn to_byte(self) -> u8 {
        self as u8
    }
}

impl Phase {
    /// Why a connection in this phase was chosen, for the log.
    fn words(self) -> &'static str {
        match self {
            Phase::Handshake => "was in its TLS handshake, waiting for its client",
            Phase::Fresh => "had sent no request in the second after its handshake",
            Phase::Idle => "was idle between requests",
            Phase::Reading => "had an incomplete request (for over a second, or after earlier answers)",
            Phase::Busy => "had been slow to take its answers for over a second",
            Phase::Closing => "was being closed (refused after its handshake, or answered for the last time)",
            Phase::Closed => "was open",
        }
    }
}

/// One open connection, shared between its own thread and the table.
pub struct Conn {
    /// A handle on the socket, to shut it down from outside its thread.
    stream: TcpStream,
    phase: AtomicState<Phase>,
    /// When the current phase began, in milliseconds on the table's clock.
    since_ms: AtomicU64,
    /// The client's address and port, for the log.
    pub peer: String,
    /// The client's address, for the per-address limit.
    pub addr: Option<IpAddr>,
    /// The verified client (its certificate's fingerprint), once the handshake is done.
    client: OnceLock<String>,
    /// Whether a request has been answered on it: only the first request's arrival is
    /// protected by the grace.
    served: AtomicBool,
    /// Whether the server owes its handshake work: accepted and not yet read by its thread,
    /// or its client's bytes in hand and not yet processed (set and cleared by the handshake,
    /// with the `wif_serve_handshakes_waiting` gauge). Such a handshake never gives way, nor
    /// one whose client's bytes wait unread on the socket for its thread to run.
    owed: AtomicBool,
    /// When it was accepted.
    pub born: Instant,
    /// The table's clock.
    epoch: Instant,
}

impl Conn {
    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase.load()
    }

    /// Moves from `from` to `to`; false if the connection is not (any more) in `from`, e.g.
    /// because it was closed to make room or by the shutdown.
    pub fn enter(&self, from: Phase, to: Phase) -> bool {
        let moved = self.phase.moved(from, to);
        if moved {
            self.since_ms.store(self.epoch.elapsed().as_millis() as u64, Ordering::SeqCst);
        }
        moved
    }

    /// Closes the connection if it is in phase `from`; false if it is not (any more).
    pub fn close_if(&self, from: Phase) -> bool {
        let closed = self.enter(from, Phase::Closed);
        if closed {
            let _ = self.stream.shutdown(Shutdown::Both);
        }
        closed
    }

    /// Records whether the server owes its handshake work (see [`Conn::owed`]).
    pub fn set_owed(&self, owed: bool) {
        self.owed.store(owed, Ordering::SeqCst);
    }

    /// Whether the server owes its handshake work: accepted and not yet read by its thread,
    /// or its client's bytes in hand and not yet processed.
    pub fn owed(&self) -> bool {
        self.owed.load(Ordering::SeqCst)
    }

    /// Records that a request was answered on it.
    pub fn mark_served(&self) {
        self.served.store(true, Ordering::Relaxed);
    }

    /// Whether its client's bytes wait unread on its socket: the client has done its part and
    /// its thread has not yet run to read them (a thread in its handshake is otherwise always
    /// in a read, or processing what it read).
    fn client_bytes_unread(&self) -> bool {
        #[cfg(unix)]
        return rustix::io::ioctl_fionread(&self.stream).is_ok_and(|n| n > 0);
        #[cfg(not(unix))]
        return false;
    }

    fn in_phase_for(&self) -> Duration {
        let since = self.since_ms.load(Ordering::SeqCst);
        Duration::from_millis((self.epoch.elapsed().as_millis() as u64).saturating_sub(since))
    }
}

/// Which connections a limit counts, and may close to make room.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    /// Every connection (`--max-connections`).
    All,
    /// The connections from one address (`--max-connections-per-address`).
    Address(IpAddr),
    /// The connections of one verified client (`--max-connections-per-client`).
    Client(&'a str),
}

impl Scope<'_> {
    /// Whether `c` counts towards this scope's limit (and may give way for it). A client's
    /// connections being refused do not count as its own: closing them frees nothing for it.
    fn covers(&self, c: &Conn) -> bool {
        let phase = c.phase();
        phase != Phase::Closed
            && match self {
                Scope::All => true,
                Scope::Address(a) => c.addr == Some(*a),
                Scope::Client(k) => phase != Phase::Closing && c.client.get().is_some_and(|v| v == k),
            }
    }
}

/// What of a connection decides whether, and in what order, it gives way.
#[derive(Clone, Copy, Debug)]
struct Standing {
    phase: Phase,
    /// How long it has been in its phase.
    in_phase: Duration,
    /// Whether a request has been answered on it.
    served: bool,
    /// Whether the server owes its handshake work (see [`Conn::owed`]).
    owed: bool,
}

impl Standing {
    /// As the connection's own records say (no system call).
    fn of(c: &Conn) -> Standing {
        Standing {
            phase: c.phase(),
            in_phase: c.in_phase_for(),
            served: c.served.load(Ordering::Relaxed),
            owed: c.owed(),
        }
    }

    /// As now, a handshake also owed work when its client's next bytes wait unread on the
    /// socket (one system call: only for the connection about to be closed).
    fn checked(c: &Conn) -> Standing {
        let s = Standing::of(c);
        Standing { owed: s.owed || (s.phase == Phase::Handshake && c.client_bytes_unread()), ..s }
    }
}

/// The order in which connections give way: refused ones first, then handshakes waiting for
/// their client, idle keep-alive connections, requests stalled or arriving on a connection
/// already served, connections that sent nothing after their handshake, and answers not
/// taken, each oldest first. `None` for a connection that must be left alone: a handshake the
/// server owes work to, or one in the grace of its first moments or of an answer.
fn eviction_rank(s: Standing) -> Option<u8> {
    let late = s.in_phase >= GRACE;
    let (phase, served) = (s.phase, s.served);
    match phase {
        Phase::Closing => Some(0),
        Phase::Handshake if s.owed => None,
        Phase::Handshake => Some(1),
        Phase::Idle => Some(2),
        Phase::Reading if late || served => Some(3),
        Phase::Fresh if late => Some(3),
        Phase::Busy if late => Some(4),
        Phase::Reading | Phase::Fresh | Phase::Busy | Phase::Closed => None,
    }
}

/// A connection closed to make room: who, why, and how many were open.
pub struct Evicted {
    /// The closed connection's peer.
    pub peer: String,
    /// Why it was the one, in words.
    pub why: &'static str,
    /// Connections open when it was chosen.
    pub open: usize,
}

/// Every open connection, by id (ids grow, so a smaller id is an older connection).
pub struct Table {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    epoch: Instant,
}

impl Default for Table {
    fn default() -> Self {
        Table { conns: Mutex::new(HashMap::new()), next_id: AtomicU64::new(0), epoch: Instant::now() }
    }
}

impl Table {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections open now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no connection is open.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Connections open in `scope`, not counting connection `except`.
    pub fn count(&self, scope: Scope<'_>, except: Option<u64>) -> usize {
        self.lock().iter().filter(|(id, c)| Some(**id) != except && scope.covers(c)).count()
    }

    /// Adds a connection in its handshake; `None` if its socket cannot be shared.
    pub fn insert(&self, stream: &TcpStream, peer: String, addr: Option<IpAddr>) -> Option<(u64, Arc<Conn>)> {
        let conn = Arc::new(Conn {
            stream: stream.try_clone().ok()?,
            phase: AtomicState::new(Phase::Handshake),
            since_ms: AtomicU64::new(self.epoch.elapsed().as_millis() as u64),
            peer,
            addr,
            client: OnceLock::new(),
            served: AtomicBool::new(false),
            owed: AtomicBool::new(false),
            born: Instant::now(),
            epoch: self.epoch,
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(id, conn.clone());
        Some((id, conn))
    }

    /// Records that connection `id` belongs to the verified client `key`, and returns how
    /// many other connections that client holds (one step, so that two connections of a
    /// client finishing their handshakes together cannot both see the other missing).
    pub fn join_client(&self, id: u64, key: &str) -> usize {
        let conns = self.lock();
        if let Some(c) = conns.get(&id) {
            let _ = c.client.set(key.to_string());
        }
        let scope = Scope::Client(key);
        conns.iter().filter(|(other, c)| **other != id && scope.covers(c)).count()
    }

    /// Removes a connection (its thread ended).
    pub fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }

    /// Closes the connection in `scope` that gives way first (see [`eviction_rank`]), never
    /// `except`; `None` when every one there must be left alone.
    pub fn make_room(&self, scope: Scope<'_>, except: Option<u64>) -> Option<Evicted> {
        let conns = self.lock();
        let mut candidates: Vec<(u8, u64, &Arc<Conn>)> = conns
            .iter()
            .filter(|(id, c)| Some(**id) != except && scope.covers(c))
            .filter_map(|(id, c)| eviction_rank(Standing::of(c)).map(|r| (r, *id, c)))
            .collect();
        candidates.sort_unstable_by_key(|(rank, id, _)| (*rank, *id));
        // One may have moved on since it was looked at (to a phase that is left alone, or its
        // client's bytes arrived): then the next.
        candidates.into_iter().find_map(|(_, _, c)| {
            let now = Standing::checked(c);
            (eviction_rank(now).is_some() && c.close_if(now.phase)).then(|| Evicted {
                peer: c.peer.clone(),
                why: now.phase.words(),
                open: conns.len(),
            })
        })
    }

    /// Closes every connection that is waiting for its client: in its handshake, before or
    /// between requests, or being refused (shutdown).
    pub fn close_waiting(&self) {
        for c in self.lock().values() {
            let _ = [Phase::Idle, Phase::Fresh, Phase::Handshake, Phase::Closing].into_iter().any(|p| c.close_if(p));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rank of a connection in `phase` for `in_phase`, `served` or not, that the server
    /// owes nothing.
    fn rank(phase: Phase, in_phase: Duration, served: bool) -> Option<u8> {
        eviction_rank(Standing { phase, in_phase, served, owed: false })
    }

    #[test]
    fn connections_give_way_in_order_and_only_after_their_grace() {
        let (now, late) = (Duration::ZERO, GRACE + Duration::from_millis(1));
        assert_eq!(rank(Phase::Closing, now, false), Some(0));
        assert_eq!(rank(Phase::Handshake, now, false), Some(1), "a handshake waiting for its client");
        assert_eq!(rank(Phase::Idle, now, true), Some(2));
        assert_eq!(rank(Phase::Fresh, now, false), None, "a client just verified is about to ask");
        assert_eq!(rank(Phase::Fresh, late, false), Some(3));
        assert_eq!(rank(Phase::Reading, now, false), None, "a first request arriving now is left to finish");
        assert_eq!(rank(Phase::Reading, late, false), Some(3), "a stalled request head gives way");
        assert_eq!(rank(Phase::Reading, now, true), Some(3), "only the first request has the grace");
        assert_eq!(rank(Phase::Busy, now, true), None, "an answer being written is left to finish");
        assert_eq!(rank(Phase::Busy, late, true), Some(4), "answers not taken give way");
        assert_eq!(rank(Phase::Closed, late, true), None);
    }

    #[test]
    fn a_handshake_the_server_owes_work_to_never_gives_way_however_old() {
        let long = Duration::from_secs(3600);
        for in_phase in [Duration::ZERO, GRACE, long] {
            let owed = Standing { phase: Phase::Handshake, in_phase, served: false, owed: true };
            assert_eq!(eviction_rank(owed), None, "{owed:?}");
        }
        // Owing is about the handshake only: the phases after it keep their own rules.
        let closing = Standing { phase: Phase::Closing, in_phase: Duration::ZERO, served: false, owed: true };
        assert_eq!(eviction_rank(closing), Some(0));
    }

    #[test]
    fn a_handshake_whose_client_bytes_wait_unread_gives_way_only_once_they_are_read() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (mut server_end, peer) = listener.accept().unwrap();
        let table = Table::default();
        let (_, cx) = table.insert(&server_end, peer.to_string(), Some(peer.ip())).unwrap();
        std::io::Write::write_all(&mut client, b"a ClientHello").unwrap();
        let until = Instant::now() + Duration::from_secs(10);
        while !cx.client_bytes_unread() {
            assert!(Instant::now() < until, "the bytes never arrived");
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(table.make_room(Scope::All, None).is_none(), "its client's bytes wait for its thread");
        assert_eq!(cx.phase(), Phase::Handshake);
        let mut read = [0u8; 13];
        std::io::Read::read_exact(&mut server_end, &mut read).unwrap();
        assert_eq!(table.make_room(Scope::All, None).unwrap().why, Phase::Handshake.words());
        assert_eq!(cx.phase(), Phase::Closed);
    }

    #[test]
    fn make_room_stays_in_its_scope_and_takes_the_oldest_of_the_first_rank() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let table = Table::default();
        let mut held = Vec::new();
        let mut add = |client: Option<&str>| {
            let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let (id, c) =
                table.insert(&s, format!("peer-{}", held.len()), s.local_addr().ok().map(|a| a.ip())).unwrap();
            if let Some(k) = client {
                assert!(c.enter(Phase::Handshake, Phase::Fresh) && c.enter(Phase::Fresh, Phase::Idle));
                table.join_client(id, k);
            }
            held.push(s);
            (id, c)
        };
        let (_, idle_a) = add(Some("a"));
        let (_, idle_b) = add(Some("b"));
        // An older handshake the server owes work to, and a younger one waiting for its client.
        let (owed_id, owed) = add(None);
        owed.set_owed(true);
        let (hs_id, handshaking) = add(None);
        let (busy_id, busy_a) = add(Some("a"));
        assert!(busy_a.enter(Phase::Idle, Phase::Reading) && busy_a.enter(Phase::Reading, Phase::Busy));
        assert_eq!(table.count(Scope::Client("a"), None), 2);
        assert_eq!(table.count(Scope::Client("a"), Some(busy_id)), 1);
        assert_eq!(table.join_client(busy_id, "a"), 1);

        // Client b can only push out its own connection.
        let e = table.make_room(Scope::Client("b"), None).unwrap();
        assert_eq!(e.peer, "peer-1");
        assert_eq!(idle_b.phase(), Phase::Closed);
        assert!(table.make_room(Scope::Client("b"), None).is_none());
        // Globally the handshake waiting for its client goes first (the older one the server
        // owes work to is left alone), then the idle one; the busy one never.
        let e = table.make_room(Scope::All, None).unwrap();
        assert_eq!((e.peer.as_str(), e.why), ("peer-3", Phase::Handshake.words()));
        assert_eq!(handshaking.phase(), Phase::Closed);
        table.remove(hs_id);
        assert_eq!(table.make_room(Scope::All, None).unwrap().peer, "peer-0");
        assert_eq!(idle_a.phase(), Phase::Closed);
        assert!(table.make_room(Scope::All, None).is_none());
        assert_eq!(busy_a.phase(), Phase::Busy);
        assert_eq!(owed.phase(), Phase::Handshake);
        // Once its work is done and it waits for its client again, it gives way.
        owed.set_owed(false);
        assert_eq!(table.make_room(Scope::All, None).unwrap().peer, "peer-2");
        assert_eq!(owed.phase(), Phase::Closed);
        table.remove(owed_id);
    }
}
