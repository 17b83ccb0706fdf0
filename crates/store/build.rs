//! No build step. This script exists so that the `[build-dependencies]` of this crate
//! count: they pin the features of RocksDB's build-time dependencies (bindgen's
//! parsers), which otherwise depend on which other crates a cargo command selects.
//! With them, `cargo test -p merklog-store`, `scripts/test` and `scripts/run` all
//! reuse one compiled RocksDB instead of compiling it again per selection.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
