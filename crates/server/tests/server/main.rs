//! Integration tests of merklog-server: one test binary (RocksDB links once).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod bad_input;
mod cli;
mod common;
mod fsck;
mod restart;
mod witness_client;
