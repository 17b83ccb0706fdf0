//! The shipped `deploy/merklog-witness.toml` must stay a valid configuration: every key
//! known (the file config denies unknown keys), and, once its placeholder vkey is
//! replaced by a real one, the commented pull-mode example too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use merklog_note::generate_ed25519;
use merklog_witness::Cli;

fn example() -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/merklog-witness.toml");
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn deploy_example_parses_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let (_, vkey) = generate_ed25519("log.example.com/audit").unwrap();
    // Use the example as an operator would: fill in the log key, enable pull mode.
    let text = example()
        .lines()
        .map(|line| {
            let uncommented = line.strip_prefix("# ").filter(|rest| {
                [
                    "[[follow]]",
                    "origin =",
                    "vkey =",
                    "grpc-url =",
                    "poll-interval =",
                ]
                .iter()
                .any(|key| rest.starts_with(key))
            });
            match uncommented.unwrap_or(line) {
                l if l.starts_with("vkey =") => format!("vkey = \"{vkey}\""),
                l => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        text.contains("[[follow]]\n"),
        "the pull-mode example is uncommented"
    );
    let path = dir.path().join("witness.toml");
    std::fs::write(&path, &text).unwrap();

    let cli = Cli::try_load_from(["merklog-witness", "--config", path.to_str().unwrap()]).unwrap();
    let config = cli.witness_config();
    assert_eq!(config.logs.len(), 1);
    assert_eq!(config.follow.len(), 1);
    assert_eq!(config.logs[0].vkey, vkey);
    assert_eq!(config.follow[0].grpc_url, "http://log.example.com:7800");
    assert_eq!(config.follow[0].poll_interval.as_secs(), 2);
}

#[test]
fn the_shipped_example_has_only_known_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("witness.toml");
    std::fs::write(&path, example()).unwrap();
    Cli::try_load_from(["merklog-witness", "--config", path.to_str().unwrap()]).unwrap();
}
