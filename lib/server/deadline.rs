//! A connection whose every read and write must finish before one deadline.

use std::io::{IoSlice, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// What is left before `deadline`; `TimedOut` once it has passed.
fn remaining(deadline: Instant, now: Instant) -> std::io::Result<Duration> {
    let left = deadline.saturating_duration_since(now);
    if left.is_zero() {
        Err(std::io::ErrorKind::TimedOut.into())
    } else {
        Ok(left)
    }
}

/// How far past its deadline a read or write may end before the socket's time-out is set
/// again: deadlines are seconds long, and a time-out set a moment ago is as good as a new one.
pub const SLACK: Duration = Duration::from_millis(25);

/// One direction's time-out as last set on the socket.
#[derive(Clone, Copy, Default)]
struct Timeout {
    /// The time-out set (`None`: not set by this value yet).
    set: Option<Duration>,
}

impl Timeout {
    /// Sets the socket's time-out (through `apply`) for an operation starting `now` that must
    /// end by `deadline`, unless the one already set ends it by `deadline` + [`SLACK`]. A
    /// time-out that ends it earlier is kept: it is re-armed when it fires (see [`retry`]).
    fn arm(
        &mut self,
        deadline: Instant,
        now: Instant,
        apply: impl FnOnce(Option<Duration>) -> std::io::Result<()>,
    ) -> std::io::Result<()> {
        let left = remaining(deadline, now)?;
        if self.set.is_some_and(|set| now + set <= deadline + SLACK) {
            return Ok(());
        }
        apply(Some(left))?;
        self.set = Some(left);
        Ok(())
    }
}

/// Runs `op` (a read or a write) with the socket's time-out for it (`timeout`, set through
/// `apply`) armed for `deadline`, again when that time-out fires before the deadline.
fn before_deadline<T>(
    deadline: Instant,
    timeout: &mut Timeout,
    apply: impl Fn(Option<Duration>) -> std::io::Result<()>,
    mut op: impl FnMut() -> std::io::Result<T>,
) -> std::io::Result<T> {
    loop {
        timeout.arm(deadline, Instant::now(), &apply)?;
        match op() {
            Err(e) if retry(&e, deadline) => *timeout = Timeout::default(),
            other => return other,
        }
    }
}

/// Whether an operation that failed with `e` should be tried again: its time-out fired
/// before the deadline (one set for an earlier, shorter deadline).
fn retry(e: &std::io::Error, deadline: Instant) -> bool {
    matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) && Instant::now() < deadline
}

/// A socket whose every read and write must finish before a deadline, with the socket's
/// time-outs set only when they must change: once for a deadline, again
/// only when the deadline moved earlier than the time-out set, or the time-out fired before
/// the deadline. A keep-alive connection answering request after request sets none.
pub struct Armed<'a> {
    /// The connection.
    pub tcp: &'a TcpStream,
    /// When every read and write must have finished.
    pub deadline: Instant,
    read: Timeout,
    write: Timeout,
}

impl<'a> Armed<'a> {
    /// A socket with no time-out set by this value yet.
    pub fn new(tcp: &'a TcpStream, deadline: Instant) -> Armed<'a> {
        Armed { tcp, deadline, read: Timeout::default(), write: Timeout::default() }
    }
}

impl Read for Armed<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let tcp = self.tcp;
        before_deadline(self.deadline, &mut self.read, |t| tcp.set_read_timeout(t), || (&mut &*tcp).read(buf))
    }
}

impl Write for Armed<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_vectored(&[IoSlice::new(buf)])
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> std::io::Result<usize> {
        let tcp = self.tcp;
        before_deadline(
            self.deadline,
            &mut self.write,
            |t| tcp.set_write_timeout(t),
            || (&mut &*tcp).write_vectored(bufs),
        )
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_is_set_again_only_when_it_could_end_past_the_deadline() {
        let now = Instant::now();
        let mut t = Timeout::default();
        let mut applied = Vec::new();
        let mut arm = |t: &mut Timeout, deadline: Instant, at: Instant| {
            t.arm(deadline, at, |d| {
                applied.push(d);
                Ok(())
            })
        };
        arm(&mut t, now + Duration::from_secs(10), now).unwrap();
        // The same deadline a moment later, and a later deadline: the time-out set stands.
        arm(&mut t, now + Duration::from_secs(10), now + Duration::from_millis(5)).unwrap();
        arm(&mut t, now + Duration::from_secs(12), now + Duration::from_secs(2)).unwrap();
        // A deadline moved earlier: set again, to what is left.
        arm(&mut t, now + Duration::from_secs(3), now + Duration::from_secs(2)).unwrap();
        let expired = arm(&mut t, now + Duration::from_secs(3), now + Duration::from_secs(3)).unwrap_err();
        assert_eq!(expired.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(applied, vec![Some(Duration::from_secs(10)), Some(Duration::from_secs(1))]);
    }

    #[test]
    fn a_read_waits_for_its_deadline_not_for_an_earlier_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let start = Instant::now();
        let mut sock = Armed::new(&server, start + Duration::from_millis(50));
        // Armed for 50 ms; the deadline then moves later: the read waits until the new one.
        sock.read.set = Some(Duration::from_millis(50));
        server.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        sock.deadline = start + Duration::from_millis(300);
        let err = sock.read(&mut [0u8; 8]).unwrap_err();
        assert!(matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(300));
    }
}
