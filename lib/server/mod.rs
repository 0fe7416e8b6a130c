//! The HTTP server core under wif-serve, wif-get's metadata server and wif-emulate: a bounded
//! request reader, a deadlined connection, a worker pool, and responses whose `Debug` never
//! shows a body.

pub mod deadline;
pub mod http;
pub mod pool;

pub use deadline::Deadlined;
