//! The `merklog-witness` binary's settings: flag > environment > file > default,
//! `--print-config`, and errors that name the setting.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_merklog-witness");

fn witness() -> Command {
    let mut command = Command::new(BIN);
    // Only what the test sets: no MERKLOG_WITNESS_* from the developer's shell.
    command.env_clear();
    command
}

/// `merklog-witness --print-config` with `env` set and `args` given.
fn print_config(env: &[(&str, &str)], args: &[&str]) -> serde_json::Value {
    let output = witness()
        .envs(env.iter().copied())
        .args(args)
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn flag_beats_env_beats_toml_beats_default() {
    // Per setting: key (flag and file key), environment variable, then the
    // value given in the file, the environment and the flag, and the printed
    // default, file, environment and flag values.
    #[rustfmt::skip]
    let table: &[(&str, &str, [&str; 3], [serde_json::Value; 4])] = &[
        ("listen", "MERKLOG_WITNESS_LISTEN",
         ["\"127.0.0.1:1111\"", "127.0.0.1:2222", "127.0.0.1:3333"],
         ["127.0.0.1:7900".into(), "127.0.0.1:1111".into(), "127.0.0.1:2222".into(), "127.0.0.1:3333".into()]),
        ("webhook-timeout", "MERKLOG_WITNESS_WEBHOOK_TIMEOUT",
         ["\"4s\"", "1h30m", "250ms"],
         ["10s".into(), "4s".into(), "1h 30m".into(), "250ms".into()]),
        ("monitoring-prefix", "MERKLOG_WITNESS_MONITORING_PREFIX",
         ["\"/file\"", "/env", "/flag"],
         ["".into(), "/file".into(), "/env".into(), "/flag".into()]),
        ("name", "MERKLOG_WITNESS_NAME",
         ["\"file.example/w\"", "env.example/w", "flag.example/w"],
         [serde_json::Value::Null, "file.example/w".into(), "env.example/w".into(), "flag.example/w".into()]),
        ("log-format", "MERKLOG_WITNESS_LOG_FORMAT",
         ["\"json\"", "text", "json"],
         ["text".into(), "json".into(), "text".into(), "json".into()]),
        ("data-dir", "MERKLOG_WITNESS_DATA_DIR",
         ["\"/from/toml\"", "/from/env", "/from/flag"],
         ["./witness-data".into(), "/from/toml".into(), "/from/env".into(), "/from/flag".into()]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("witness.toml");
    let mut file: String = table
        .iter()
        .map(|(key, _, [value, _, _], _)| format!("{key} = {value}\n"))
        .collect();
    file.push_str("\n[[log]]\norigin = \"example.com/a\"\nvkey = \"example.com/a+00000000+AQ\"\n");
    std::fs::write(&toml, file).unwrap();
    let config_arg = ["--config", toml.to_str().unwrap()];
    let env: Vec<(&str, &str)> = table
        .iter()
        .map(|(_, var, [_, v, _], _)| (*var, *v))
        .collect();
    let mut flags = Vec::new();
    for (key, _, [_, _, value], _) in table {
        flags.push(format!("--{key}"));
        flags.push((*value).to_owned());
    }
    let flags: Vec<&str> = config_arg
        .iter()
        .copied()
        .chain(flags.iter().map(String::as_str))
        .collect();
    let layers = [
        ("default", print_config(&[], &[])),
        ("file", print_config(&[], &config_arg)),
        ("environment", print_config(&env, &config_arg)),
        ("flag", print_config(&env, &flags)),
    ];
    for (key, _, _, expected) in table {
        for ((layer, config), expected) in layers.iter().zip(expected) {
            assert_eq!(&config[*key], expected, "{key} from the {layer}");
        }
    }
    // The logs come from the file; `--follow` adds to its `[[follow]]` entries.
    let (_, config) = &layers[3];
    assert_eq!(config["log"][0]["origin"], "example.com/a");
    let config = print_config(
        &[],
        &[
            "--config",
            toml.to_str().unwrap(),
            "--follow",
            "example.com/b",
            "example.com/b+00000000+AQ",
            "127.0.0.1:7800",
        ],
    );
    assert_eq!(config["follow"][0]["origin"], "example.com/b");
    assert_eq!(config["follow"][0]["poll-interval"], "2s");
}

#[test]
fn unknown_keys_and_bad_durations_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("witness.toml");
    for (text, named) in [
        ("lisen = \"127.0.0.1:1\"\n", "lisen"),
        ("data_dir = \"/x\"\n", "data_dir"),
        ("webhook-timeout-secs = 10\n", "webhook-timeout-secs"),
        ("webhook-timeout = \"10\"\n", "`webhook-timeout`"),
    ] {
        std::fs::write(&toml, text).unwrap();
        let output = witness()
            .args(["--config", toml.to_str().unwrap(), "--print-config"])
            .output()
            .unwrap();
        assert!(!output.status.success(), "{text}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(named), "{text}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "printed once: {stderr}");
    }
    let output = witness()
        .env("MERKLOG_WITNESS_WEBHOOK_TIMEOUT", "ten seconds")
        .arg("--print-config")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--webhook-timeout") && stderr.contains("500ms, 5s"),
        "{stderr}"
    );
}
