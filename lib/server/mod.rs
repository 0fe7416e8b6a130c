//! The HTTP server core under wif-serve, wif-get's metadata server and wif-emulate: a bounded
//! request reader, a deadlined connection, binding with hints, a worker pool with typed
//! connection states, threads reused from one connection to the next, and one `Response` whose `Debug` never shows a body.

pub mod bind;
pub mod deadline;
pub mod http;
pub mod pool;
pub mod response;
pub mod state;
pub mod workers;

pub use bind::bind;
pub use deadline::Armed;
pub use response::{Encoded, Framing, Response};
