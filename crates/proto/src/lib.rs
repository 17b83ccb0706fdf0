//! merklog-proto: the gRPC wire API of merklog.
//!
//! This crate holds
//! - the code generated (tonic 0.14 + prost 0.14) from `proto/merklog/v1/log.proto`,
//!   the one source of truth for the `merklog.v1.Log` service, in [`v1`];
//! - the encoded `FileDescriptorSet` of those files, [`FILE_DESCRIPTOR_SET`], for
//!   gRPC server reflection;
//! - [`convert`]: the ONE place where untrusted wire messages become validated
//!   domain values (hash lengths, index < size, sizes in order, entry and batch
//!   limits). Every failure is a [`ProtoError`] naming the offending field, and
//!   maps to the right [`tonic::Status`] code.
//!
//! It is not a client or a server: it performs no I/O, holds no state and knows
//! nothing of storage or signing. Hashing and tree rules (RFC 6962 / RFC 9162
//! section 2.1) live in `merklog-merkle`; the signed-note and checkpoint formats
//! (C2SP signed-note, tlog-checkpoint) in `merklog-note`.
//!
//! The `.proto` files are compiled at build time with `protox` (pure Rust), so no
//! `protoc` is needed.
#![warn(missing_docs)]

pub mod convert;

pub use convert::ProtoError;

/// Generated messages, client and server of package `merklog.v1`.
#[allow(
    missing_docs,
    unreachable_pub,
    clippy::all,
    clippy::pedantic,
    rust_2018_idioms
)]
pub mod v1 {
    tonic::include_proto!("merklog.v1");
}

/// The encoded `google.protobuf.FileDescriptorSet` of merklog's `.proto` files,
/// for registration with a gRPC reflection service.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/merklog_descriptor.bin"));

/// The fully qualified gRPC service name of the log service.
pub const LOG_SERVICE_NAME: &str = "merklog.v1.Log";
