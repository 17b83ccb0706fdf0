//! The documentation and the deployment files are checked against the
//! repository: every relative link and every repository path named in README.md,
//! docs/ and deploy/ exists; the systemd units start the binaries this workspace
//! builds with the configuration files deploy/ ships; and where
//! `systemd-analyze` exists, both units rate at most 2.5 ("OK" or better).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// README.md and every Markdown file in docs/ and deploy/.
fn documents() -> Vec<PathBuf> {
    let root = repository();
    let mut files = vec![root.join("README.md")];
    for dir in ["docs", "deploy"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files
}

/// The targets of Markdown links `[text](target)` in `text`.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("](") {
        rest = &rest[at + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(rest[..end].trim().to_owned());
        }
    }
    targets
}

/// Backquoted words that name a file or directory of this repository
/// (`docs/x.md`, `deploy/merklogd.toml`, `crates/client`).
fn named_paths(text: &str) -> Vec<String> {
    const TOP: [&str; 8] = [
        "docs/", "deploy/", "crates/", "scripts/", "tests/", "benches/", "proto/", "fuzz/",
    ];
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| TOP.iter().any(|top| word.starts_with(top)))
        .filter(|word| {
            word.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-'))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_relative_link_and_named_path_resolves() {
    let root = repository();
    let mut broken = Vec::new();
    let mut checked = 0;
    for document in documents() {
        let text = std::fs::read_to_string(&document).unwrap();
        let base = document.parent().unwrap();
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with('#') || target.starts_with("mailto:") {
                continue;
            }
            let path = target.split('#').next().unwrap();
            checked += 1;
            if !base.join(path).exists() {
                broken.push(format!("{}: link {target}", document.display()));
            }
        }
        for named in named_paths(&text) {
            checked += 1;
            if !root.join(named.trim_end_matches('/')).exists() {
                broken.push(format!("{}: path `{named}`", document.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "broken references:\n{}",
        broken.join("\n")
    );
    assert!(
        checked > 10,
        "only {checked} references found: is the parser right?"
    );
}

#[test]
fn the_link_parser_finds_what_it_should() {
    assert_eq!(
        link_targets("see [a](docs/a.md) and [b](https://x.example/b) [c](#c)"),
        ["docs/a.md", "https://x.example/b", "#c"]
    );
    assert_eq!(
        named_paths("`docs/design.md`, `<data-dir>/log.vkey`, `deploy/`, `merklog watch`"),
        ["docs/design.md", "deploy/"]
    );
}

/// The `[Service]` lines of a unit as (key, value).
fn unit_settings(unit: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repository().join("deploy/systemd").join(unit)).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

#[test]
fn the_units_start_our_binaries_with_the_shipped_configuration() {
    for (unit, binary, state) in [
        ("merklogd.service", "merklogd", "merklog"),
        (
            "merklog-witness.service",
            "merklog-witness",
            "merklog-witness",
        ),
    ] {
        let settings = unit_settings(unit);
        let get = |key: &str| {
            settings
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("{unit}: no {key}"))
        };
        let exec = get("ExecStart");
        let words: Vec<&str> = exec.split_whitespace().collect();
        assert_eq!(words[0], format!("/usr/local/bin/{binary}"), "{unit}");
        assert_eq!(words[1], "--config", "{unit}");
        // deploy/README says to copy the TOML files to /etc/merklog/ as they are.
        let config = Path::new(words[2]);
        assert_eq!(
            config.parent().unwrap(),
            Path::new("/etc/merklog"),
            "{unit}"
        );
        let shipped = repository()
            .join("deploy")
            .join(config.file_name().unwrap());
        assert!(
            shipped.exists(),
            "{unit} reads {config:?}, deploy/ has no such file"
        );
        assert_eq!(get("StateDirectory"), state, "{unit}");
        assert_eq!(get("ReadWritePaths"), format!("/var/lib/{state}"), "{unit}");
        // The shipped configuration keeps its data where the unit lets it write.
        let toml = std::fs::read_to_string(&shipped).unwrap();
        assert!(
            toml.lines()
                .any(|l| l.starts_with("data-dir") && l.contains(&format!("/var/lib/{state}"))),
            "{unit}: {} does not use /var/lib/{state}",
            shipped.display()
        );
    }
}

#[test]
fn the_units_earn_the_word_sandbox() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: the exposure scores are not checked here");
        return;
    };
    assert!(version.status.success());
    for unit in ["merklogd.service", "merklog-witness.service"] {
        let path = repository().join("deploy/systemd").join(unit);
        let output = Command::new("systemd-analyze")
            .args(["security", "--offline=yes", "--no-pager"])
            .arg(&path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).into_owned()
            + &String::from_utf8_lossy(&output.stderr);
        let score: f64 = text
            .lines()
            .find_map(|l| {
                l.split_once("Overall exposure level for ")?
                    .1
                    .split_once(": ")
            })
            .and_then(|(_, rest)| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no score for {unit}:\n{text}"));
        assert!(score <= 2.5, "{unit} rates {score}:\n{text}");
    }
}
