//! The README's "First use" walkthrough, run from the README text itself against
//! the release binaries: each `sh` block is run with bash in a fresh directory,
//! and its output is compared with the plain block that follows it, except the
//! lines that depend on the log's key (signatures).
//!
//! What differs from a person following it, and why: the server is started by the
//! test (`Daemon::start`, on free ports, origin `vm/merklog` as in the README's
//! output) instead of by `scripts/run`; the client binary is put on PATH instead of
//! being built by the block's `cargo build` line; the client finds the server
//! through `MERKLOG_SERVER` and the tiles port replaces `127.0.0.1:7801` in the
//! commands; `merklog watch` runs in the background with `--max-updates 1` (in the
//! README, the third terminal stops with Ctrl-C); and the server is stopped where
//! the README says "Stop the server".
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Stdio};

use merklog_e2e::{Daemon, client_binary, merklogd_binary};

/// A fenced block of the README.
#[derive(Debug)]
struct Block {
    /// The info string (`sh`, or empty for output).
    lang: String,
    text: String,
}

/// The fenced blocks of the section whose heading is `heading`.
fn section_blocks(readme: &str, heading: &str) -> Vec<Block> {
    let start = readme
        .find(&format!("\n## {heading}\n"))
        .unwrap_or_else(|| panic!("no section {heading:?}"));
    let section = &readme[start + 1..];
    let end = section[3..].find("\n## ").map_or(section.len(), |e| e + 3);
    let mut blocks = Vec::new();
    let mut lines = section[..end].lines();
    while let Some(line) = lines.next() {
        if let Some(lang) = line.strip_prefix("```") {
            let mut text = String::new();
            for line in lines.by_ref() {
                if line == "```" {
                    break;
                }
                text.push_str(line);
                text.push('\n');
            }
            blocks.push(Block {
                lang: lang.trim().to_owned(),
                text,
            });
        }
    }
    blocks
}

/// The lines of an output that do not depend on the log's key or on timing.
fn comparable(output: &str) -> Vec<String> {
    output
        .lines()
        .filter(|line| !line.starts_with("— "))
        .map(str::to_owned)
        .collect()
}

/// Runs one block in `dir` with bash; stdout and stderr together, in order.
fn run_block(script: &str, dir: &Path, env: &[(&str, String)]) -> String {
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("exec 2>&1\n{script}"))
        .current_dir(dir)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn the_first_use_walkthrough_runs_as_written() {
    merklogd_binary();
    let client = client_binary();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let blocks = section_blocks(&readme, "First use");
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(
        &dir.path().join("merklog-data"),
        &["--origin", "vm/merklog"],
    );
    let path = format!(
        "{}:/usr/bin:/bin",
        client.parent().unwrap().to_str().unwrap()
    );
    let env = [
        ("PATH", path),
        ("HOME", dir.path().display().to_string()),
        ("MERKLOG_SERVER", daemon.grpc_url()),
    ];
    let tiles = daemon.addrs.http.to_string();

    // Pair each sh block with the plain blocks that follow it.
    let mut steps: Vec<(&Block, Vec<&Block>)> = Vec::new();
    for block in &blocks {
        if block.lang == "sh" {
            steps.push((block, Vec::new()));
        } else if let Some((_, outputs)) = steps.last_mut() {
            outputs.push(block);
        }
    }
    assert!(
        steps.len() >= 8,
        "the walkthrough has fewer steps than expected: {steps:#?}"
    );
    assert_eq!(
        steps[0].0.text.trim(),
        "scripts/run",
        "step 1 starts the server"
    );

    let mut exports = String::new();
    let mut daemon = Some(daemon);
    let mut watcher = None;
    let mut compared = 0;
    for (block, outputs) in &steps[1..] {
        let mut script = String::new();
        for line in block.text.lines() {
            // Built and put on PATH by the test.
            if line.starts_with("cargo build") || line.starts_with("export PATH=") {
                continue;
            }
            if line.starts_with("export ") {
                exports.push_str(line);
                exports.push('\n');
            }
            script.push_str(&line.replace("127.0.0.1:7801", &tiles));
            script.push('\n');
        }
        let script = format!("{exports}{script}");
        if block.text.trim() == "merklog watch" {
            // The third terminal: in the background until one update.
            let script = script.replace("merklog watch", "merklog watch --max-updates 1");
            let (dir, env) = (dir.path().to_owned(), env.clone());
            watcher = Some(std::thread::spawn(move || run_block(&script, &dir, &env)));
            // Give it time to subscribe and print the current checkpoint.
            std::thread::sleep(std::time::Duration::from_millis(1500));
            continue;
        }
        if block.text.contains("merklog verify") {
            // "Stop the server (Ctrl-C in terminal 1)."
            if let Some(daemon) = daemon.take() {
                assert!(daemon.terminate().success());
            }
        }
        let output = run_block(&script, dir.path(), &env);
        let Some(expected) = outputs.first() else {
            continue;
        };
        assert_eq!(
            comparable(&output),
            comparable(&expected.text),
            "the README's output of\n{}",
            block.text
        );
        compared += 1;
        if let (Some(watched), Some(handle)) = (outputs.get(1), watcher.take()) {
            // "The watcher prints:"
            let output = handle.join().unwrap();
            assert_eq!(
                comparable(&output),
                comparable(&watched.text),
                "the watcher"
            );
            compared += 1;
        }
    }
    assert!(watcher.is_none(), "the watcher's output was never compared");
    assert!(compared >= 8, "only {compared} outputs compared");
}
