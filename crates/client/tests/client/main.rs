//! Integration tests of merklog-client: one test binary (RocksDB links once).
//!
//! - `hostile`: merklog-testkit's fake server, lying in one way at a time;
//! - `library`: the library against a real merklogd on port 0;
//! - `cli`: every command of the `merklog` binary against a real merklogd;
//! - `first_hour`: what a new user trips over: silent servers, wrong ports and
//!   keys, a bad line in a batch, a server restart under `watch`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod common;
mod first_hour;
mod hostile;
mod library;
