//! The plain-HTTP listeners (wif-serve's `--metrics-listen`, wif-get's `--metadata-server`):
//! each connection answered on a thread of its own, up to a cap.
//!
//! At the cap, the oldest connection whose request has not fully arrived is closed to make
//! room for the newcomer. Holding such a connection costs its client nothing (a socket that
//! says nothing, or a byte a second), so keeping it would let anyone who can connect lock out
//! the kubelet's probes or a client library; a real client sends its request as soon as it is
//! connected, so it is the newest connection that gets the slot, and only a flood of more
//! connections than the cap within that moment could close it. A connection whose request
//! is complete is being answered and is left to finish (each listener bounds that with its
//! own deadline); only when every slot is answering does a newcomer get `full` at once.

use super::state::{AtomicState, ConnState};
use std::io::Write as _;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where a pooled connection is in its life.
#[repr(u8)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// Accepted; its request has not fully arrived.
    Waiting = 0,
    /// Its request is complete: being answered.
    Answering = 1,
    /// Closed to make room.
    Closed = 2,
}

impl ConnState for SlotState {
    const ALL: &'static [SlotState] = &[SlotState::Waiting, SlotState::Answering, SlotState::Closed];
    fn to_byte(self) -> u8 {
        self as u8
    }
}

/// One connection's standing in its [`Pool`], handed to the handler.
pub(crate) struct Slot {
    state: Arc<AtomicState<SlotState>>,
}

impl Slot {
    /// To call once the request has fully arrived: from then on the connection is not closed
    /// to make room. False if it already was; the handler then drops it unanswered.
    pub(crate) fn answering(&self) -> bool {
        self.state.moved(SlotState::Waiting, SlotState::Answering)
    }
}

/// A connection being served: a handle on its socket to close it, and its state.
struct Entry {
    id: u64,
    socket: TcpStream,
    state: Arc<AtomicState<SlotState>>,
}

/// The connections of one listener.
pub(crate) struct Pool {
    name: &'static str,
    max: usize,
    /// In the order they were accepted, oldest first.
    conns: Mutex<Vec<Entry>>,
}

impl Pool {
    /// A pool of at most `max` connections whose threads are called `name`.
    pub(crate) fn new(name: &'static str, max: usize) -> Pool {
        Pool { name, max, conns: Mutex::new(Vec::new()) }
    }

    fn conns(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.conns.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Connections whose thread has not ended yet (for a graceful shutdown).
    pub(crate) fn open(&self) -> usize {
        self.conns().len()
    }

    /// At the cap: closes the oldest connection still waiting for its request. False when
    /// every connection is answering.
    fn make_room(&self) -> bool {
        let conns = self.conns();
        let live = conns.iter().filter(|c| c.state.load() != SlotState::Closed).count();
        if live < self.max {
            return true;
        }
        // The oldest first; one may have moved on meanwhile, then the next.
        let closed = conns.iter().find(|c| c.state.moved(SlotState::Waiting, SlotState::Closed));
        match closed {
            // Its thread's read returns at once and the thread ends.
            Some(c) => {
                let _ = c.socket.shutdown(Shutdown::Both);
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        self.conns().retain(|c| c.id != id);
    }

    /// Accepts connections on `listener` until `stopped()` says so after an accept, and
    /// hands each to `handle` on a thread of its own. Returns once every thread has ended.
    pub(crate) fn serve(
        &self,
        listener: &TcpListener,
        stopped: impl Fn() -> bool,
        full: &[u8],
        handle: impl Fn(&TcpStream, &Slot) + Sync,
    ) {
        let handle = &handle;
        std::thread::scope(|scope| {
            let mut next_id = 0u64;
            for conn in listener.incoming() {
                if stopped() {
                    break;
                }
                let Ok(stream) = conn else {
                    // Out of descriptors or an aborted handshake: pause rather than spin.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                if !self.make_room() {
                    // Say so rather than vanish: clients retry a 503. Non-blocking, as the
                    // accept thread must never wait on a client; a fresh socket's buffer
                    // takes the answer.
                    let _ = stream.set_nonblocking(true);
                    let _ = (&stream).write_all(full);
                    continue;
                }
                let Ok(socket) = stream.try_clone() else { continue };
                let (id, state) = (next_id, Arc::new(AtomicState::new(SlotState::Waiting)));
                next_id += 1;
                self.conns().push(Entry { id, socket, state: state.clone() });
                let spawned = std::thread::Builder::new().name(self.name.into()).spawn_scoped(scope, move || {
                    let _gone = Gone { pool: self, id };
                    handle(&stream, &Slot { state });
                });
                if spawned.is_err() {
                    self.remove(id);
                }
            }
        });
    }
}

/// Takes a connection out of its pool when its thread ends, however it ends.
struct Gone<'a> {
    pool: &'a Pool,
    id: u64,
}

impl Drop for Gone<'_> {
    fn drop(&mut self) {
        self.pool.remove(self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::sync::mpsc;
    use std::time::Instant;

    /// A pool of 2 on a loopback listener; the handler reads one byte, then (if it was `a`)
    /// marks itself answering and holds the connection until `release` says so, then writes
    /// `ok`.
    fn start(release: mpsc::Receiver<()>) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let release = Mutex::new(release);
        std::thread::spawn(move || {
            let pool = Pool::new("pool-test", 2);
            pool.serve(
                &listener,
                || false,
                b"full",
                |mut s, slot| {
                    let mut b = [0u8; 1];
                    if s.read(&mut b).unwrap_or(0) == 0 || !slot.answering() {
                        return;
                    }
                    if b[0] == b'a' {
                        let _ = release.lock().unwrap().recv_timeout(Duration::from_secs(10));
                    }
                    let _ = s.write_all(b"ok");
                },
            );
        });
        addr
    }

    fn answer(mut s: TcpStream) -> String {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn at_the_cap_the_oldest_waiting_connection_makes_room() {
        let (_tx, rx) = mpsc::channel();
        let addr = start(rx);
        let silent: Vec<TcpStream> = (0..2).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(100));
        // Two silent connections fill the pool; a third closes the oldest and is answered.
        let started = Instant::now();
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"b").unwrap();
        assert_eq!(answer(s), "ok");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        assert_eq!(answer(silent.into_iter().next().unwrap()), "", "the oldest was closed, unanswered");
    }

    #[test]
    fn when_every_slot_is_answering_a_newcomer_gets_full() {
        let (tx, rx) = mpsc::channel();
        let addr = start(rx);
        let busy: Vec<TcpStream> = (0..2)
            .map(|_| {
                let mut s = TcpStream::connect(addr).unwrap();
                s.write_all(b"a").unwrap();
                s
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(answer(TcpStream::connect(addr).unwrap()), "full");
        // Released, both finish their answers and the slots are free again.
        for _ in &busy {
            tx.send(()).unwrap();
        }
        for s in busy {
            assert_eq!(answer(s), "ok");
        }
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"b").unwrap();
        assert_eq!(answer(s), "ok");
    }
}
