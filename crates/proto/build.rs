//! Compiles `proto/merklog/v1/*.proto` with protox (pure Rust, no `protoc`), writes
//! the encoded descriptor set to `OUT_DIR` for gRPC reflection, and generates the
//! tonic/prost code from that same descriptor set.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto");
    let log_proto = proto_root.join("merklog/v1/log.proto");
    let sources_proto = proto_root.join("merklog/v1/sources.proto");
    let query_proto = proto_root.join("merklog/v1/query.proto");
    let alerts_proto = proto_root.join("merklog/v1/alerts.proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());
    println!("cargo:rerun-if-changed={}", log_proto.display());
    println!("cargo:rerun-if-changed={}", sources_proto.display());
    println!("cargo:rerun-if-changed={}", query_proto.display());
    println!("cargo:rerun-if-changed={}", alerts_proto.display());

    let fds = protox::compile(
        [&log_proto, &sources_proto, &query_proto, &alerts_proto],
        [&proto_root],
    )?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("merklog_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        // Entries and hashes are handed to the log as `Bytes` without a copy.
        .bytes(".merklog.v1")
        .compile_fds(fds)?;
    Ok(())
}
