//! A connection's state shared between its thread and its listener, as an enum in an atomic.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU8, Ordering};

/// A connection-state enum that fits in a byte (`#[repr(u8)]`, every value listed).
pub trait ConnState: Copy + Eq + 'static {
    /// Every state, in the order of their byte values.
    const ALL: &'static [Self];
    /// The byte stored for this state.
    fn to_byte(self) -> u8;
}

/// A connection's state, read and moved atomically.
pub struct AtomicState<S: ConnState> {
    byte: AtomicU8,
    kind: PhantomData<S>,
}

impl<S: ConnState> AtomicState<S> {
    /// A cell holding `state`.
    pub fn new(state: S) -> Self {
        AtomicState { byte: AtomicU8::new(state.to_byte()), kind: PhantomData }
    }

    /// The state now.
    pub fn load(&self) -> S {
        let byte = self.byte.load(Ordering::SeqCst);
        // Only `to_byte` values are ever stored; the first state is never read for another.
        S::ALL.iter().copied().find(|s| s.to_byte() == byte).unwrap_or(S::ALL[0])
    }

    /// Moves from `from` to `to`; false if the state is not (any more) `from`.
    pub fn moved(&self, from: S, to: S) -> bool {
        self.byte.compare_exchange(from.to_byte(), to.to_byte(), Ordering::SeqCst, Ordering::SeqCst).is_ok()
    }
}
