//! The only module that knows about `fred`, the Redis client.
//!
//! fred has had no release since early 2025, so everything it does for us sits behind the
//! small surface here: open a [`Connection`] to a [`Target`], ask it for `INFO` (or one
//! `CONFIG GET`), close it. Replacing the client means rewriting this file only.
//!
//! Reconnection is deliberately *not* fred's: a connection that fails or times out is
//! dropped by the poller and a fresh one is opened on the next poll, inside that poll's
//! deadline. That keeps a frozen server from queueing commands behind a dead socket.
//!
//! - `connection`: [`Connection`] and its commands, [`ClientError`].
//! - `private_dir`: the relay sockets' folder: random name, ours, 0700, checked.
//! - `relay`: the byte-budget relay every connection goes through.
//! - `resp_shape`: the relay's check of each reply's nesting and element count.
//! - `reply_path`: the shape check and the client's decoder together, for the fuzzer.
//! - `tls`: the rustls client configuration for `rediss://`.
//! - `tls_upstream`: the relay's TLS connection to a `rediss://` target.

mod connection;
mod private_dir;
mod relay;
mod reply_path;
mod resp_shape;
mod tls;
mod tls_upstream;

pub use connection::{ClientError, Connection, InfoScope};
pub use reply_path::check as fuzz_reply;

/// Removes the folder that holds this process's relay sockets. Call once polling stopped.
pub fn cleanup() {
    relay::remove_own_dir();
}
