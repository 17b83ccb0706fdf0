//! # merklog-testkit
//!
//! Test support, not published: what the integration tests of merklog-server,
//! merklog-client, merklog-witness and the process-level tests share instead of
//! copying.
//!
//! What it is:
//! - [`TestServer`]: a real merklogd (merklog-server's `Server`) running in the test's
//!   process, every listener on 127.0.0.1 port 0, stopped on [`TestServer::stop`]
//!   (which insists on a clean exit) or on drop.
//! - [`FakeServer`]: a fake `merklog.v1.Log` service on port 0, an honest in-memory
//!   RFC 9162 log whose answers a test can corrupt one way at a time ([`Tamper`]), or
//!   whose history it can rewrite to present a fork.
//! - [`Rng`]: a small seeded generator, so a failing randomised test repeats from its
//!   seed.
//!
//! What it is not: not part of any shipped binary, and no second Merkle
//! implementation of its own; proofs the fake serves come from the naive tree of
//! merklog-testkit-tree. Processes (`merklogd` as a child) are merklog-e2e's.
//!
//! A test helper that cannot do its job fails the test, so this crate may panic on
//! setup errors (unwrap and expect are allowed here as in tests).
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![warn(missing_docs)]

mod fake;
mod rng;
mod server;

pub use fake::{FAKE_ORIGIN, FakeLog, FakeServer, FakeState, Tamper, fake_signer};
pub use rng::Rng;
pub use server::{ORIGIN, TestServer, test_config};
