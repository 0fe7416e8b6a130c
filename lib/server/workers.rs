//! Threads kept for the next connection: a thread that finished serving one waits (up to
//! an idle time) for another from the accept loop instead of ending, so a new connection
//! costs no thread start (its system calls, a fresh stack's page faults, a new thread's
//! random-generator seeding). The accept loop hands each connection to an idle thread, or
//! starts a new one when none is idle: the number of threads busy is the number of
//! connections being served, which the caller bounds; idle ones end after the idle time.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// One connection's work.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Jobs handed over and not yet taken, and how many threads wait for one.
#[derive(Default)]
struct Queue {
    jobs: VecDeque<Job>,
    /// Threads waiting for a job (including those about to take one of `jobs`).
    idle: usize,
    /// Threads whose job said it is about to end (see [`finishing`]): each takes a job
    /// handed over in the meantime as soon as it is done.
    finishing: usize,
    /// Threads started and not ended.
    threads: usize,
}

struct Inner {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Threads that serve one job after another.
pub struct Workers {
    inner: Arc<Inner>,
    name: &'static str,
    stack_size: usize,
    idle_for: Duration,
    max_threads: usize,
}

impl Workers {
    /// Up to `max_threads` threads named `name` with `stack_size` bytes of stack, each
    /// ending after `idle_for` without a job.
    pub fn new(name: &'static str, stack_size: usize, idle_for: Duration, max_threads: usize) -> Workers {
        let inner = Arc::new(Inner { queue: Mutex::new(Queue::default()), ready: Condvar::new() });
        Workers { inner, name, stack_size, idle_for, max_threads: max_threads.max(1) }
    }

    /// Runs `job` on an idle thread, or on a new one when none is idle; with every thread
    /// started and busy, on the first one to be done. The error of a thread that could not
    /// be started.
    pub fn run(&self, job: Job) -> std::io::Result<()> {
        {
            let mut queue = self.inner.lock();
            if queue.idle + queue.finishing > queue.jobs.len() || queue.threads >= self.max_threads {
                queue.jobs.push_back(job);
                drop(queue);
                self.inner.ready.notify_one();
                return Ok(());
            }
            queue.threads += 1;
        }
        let inner = self.inner.clone();
        let idle_for = self.idle_for;
        std::thread::Builder::new()
            .name(self.name.into())
            .stack_size(self.stack_size)
            .spawn(move || {
                CURRENT.with(|c| *c.borrow_mut() = Some(Current { inner: inner.clone(), finishing: false }));
                let mut next = Some(job);
                while let Some(job) = next {
                    // A job that panics ends, not its thread, which may be counted on.
                    let _ = std::panic::catch_unwind(AssertUnwindSafe(job));
                    next = wait_for_job(&inner, idle_for);
                }
            })
            .map(drop)
            .inspect_err(|_| self.inner.lock().threads -= 1)
    }

    /// Threads waiting for a job now.
    pub fn idle(&self) -> usize {
        self.inner.lock().idle
    }
}

/// The pool of the thread running, and whether its job said it is finishing.
struct Current {
    inner: Arc<Inner>,
    finishing: bool,
}

thread_local! {
    static CURRENT: RefCell<Option<Current>> = const { RefCell::new(None) };
}

/// Says, from within a job, that it is about to end without waiting on anything again (its
/// last answer is written; what is left is tearing down). A connection arriving from now on
/// is handed to this thread rather than to a new one: a client that connects again the
/// moment it has its answer does not make the pool grow. Does nothing outside a pool.
pub fn finishing() {
    CURRENT.with(|c| {
        if let Some(current) = c.borrow_mut().as_mut().filter(|c| !c.finishing) {
            current.inner.lock().finishing += 1;
            current.finishing = true;
        }
    });
}

/// The next job handed over within `idle_for`; `None` when none came (the thread ends).
fn wait_for_job(inner: &Inner, idle_for: Duration) -> Option<Job> {
    let until = Instant::now() + idle_for;
    let was_finishing =
        CURRENT.with(|c| c.borrow_mut().as_mut().is_some_and(|c| std::mem::replace(&mut c.finishing, false)));
    let mut queue = inner.lock();
    if was_finishing {
        queue.finishing -= 1;
    }
    queue.idle += 1;
    loop {
        // A job counted on this thread is taken even when the wait just ran out.
        if let Some(job) = queue.jobs.pop_front() {
            queue.idle -= 1;
            return Some(job);
        }
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            queue.idle -= 1;
            queue.threads -= 1;
            return None;
        }
        queue = inner.ready.wait_timeout(queue, left).unwrap_or_else(|p| p.into_inner()).0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn thread_of(workers: &Workers) -> std::thread::ThreadId {
        let (tx, rx) = mpsc::channel();
        workers.run(Box::new(move || tx.send(std::thread::current().id()).unwrap())).unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap()
    }

    fn wait_idle(workers: &Workers, n: usize) {
        let until = Instant::now() + Duration::from_secs(10);
        while workers.idle() != n {
            assert!(Instant::now() < until, "idle threads: {} (expected {n})", workers.idle());
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn a_finished_thread_serves_the_next_job() {
        let workers = Workers::new("test", 64 * 1024, Duration::from_secs(30), 4);
        let first = thread_of(&workers);
        wait_idle(&workers, 1);
        assert_eq!(thread_of(&workers), first);
    }

    #[test]
    fn busy_threads_are_never_waited_for_and_idle_ones_end() {
        let workers = Workers::new("test", 64 * 1024, Duration::from_millis(100), 4);
        let (release, blocked) = mpsc::channel::<()>();
        let blocked = Arc::new(Mutex::new(blocked));
        let holder = blocked.clone();
        workers
            .run(Box::new(move || {
                let _ = holder.lock().unwrap().recv();
            }))
            .unwrap();
        // The first thread is busy: the next job runs at once, on another.
        let (tx, rx) = mpsc::channel();
        workers.run(Box::new(move || tx.send(()).unwrap())).unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        release.send(()).unwrap();
        wait_idle(&workers, 2);
        // After the idle time, both end.
        wait_idle(&workers, 0);
    }

    #[test]
    fn a_job_that_says_it_is_finishing_gets_the_next_one_and_a_panic_ends_only_the_job() {
        let workers = Workers::new("test", 64 * 1024, Duration::from_secs(30), 4);
        let (go, wait) = mpsc::channel::<()>();
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        let (flagged, said) = mpsc::channel();
        workers
            .run(Box::new(move || {
                finishing();
                flagged.send(()).unwrap();
                wait.recv().unwrap();
                tx2.send(std::thread::current().id()).unwrap();
                panic!("a job's panic");
            }))
            .unwrap();
        said.recv_timeout(Duration::from_secs(10)).unwrap();
        // Handed to the finishing thread, though it is not idle yet.
        workers.run(Box::new(move || tx.send(std::thread::current().id()).unwrap())).unwrap();
        go.send(()).unwrap();
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), first);
    }

    #[test]
    fn past_the_thread_limit_a_job_waits_for_the_first_thread_done() {
        let workers = Workers::new("test", 64 * 1024, Duration::from_secs(30), 1);
        let (go, wait) = mpsc::channel::<()>();
        let (tx, rx) = mpsc::channel();
        let tx2 = tx.clone();
        workers
            .run(Box::new(move || {
                wait.recv().unwrap();
                tx2.send(std::thread::current().id()).unwrap();
            }))
            .unwrap();
        workers.run(Box::new(move || tx.send(std::thread::current().id()).unwrap())).unwrap();
        assert!(rx.recv_timeout(Duration::from_millis(100)).is_err(), "the second job ran on a second thread");
        go.send(()).unwrap();
        let first = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), first);
    }
}
