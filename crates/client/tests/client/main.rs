//! Integration tests of merklog-client: one test binary (RocksDB links once).
//!
//! - `hostile`: a fake server that lies in one way at a time;
//! - `library`: the library against a real merklogd on port 0;
//! - `cli`: every command of the `merklog` binary against a real merklogd.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cli;
mod common;
mod fake;
mod hostile;
mod library;
