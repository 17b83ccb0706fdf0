//! Integration tests of merklog-client: one test binary (RocksDB links once).
//!
//! - `hostile`: merklog-testkit's fake server, lying in one way at a time;
//! - `library`: the library against a real merklogd on port 0;
//! - `cli`: every command of the `merklog` binary against a real merklogd.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod common;
mod hostile;
mod library;
