//! The `merklogd` binary: flags, environment, TOML precedence, first start, and
//! graceful shutdown on SIGTERM.

use std::io::Read as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_merklogd");

fn merklogd() -> Command {
    let mut command = Command::new(BIN);
    // Only what the test sets: no MERKLOGD_* from the developer's shell.
    command.env_clear();
    // No fixed OTLP ports: tests run in parallel.
    command.env("MERKLOGD_OTLP_GRPC_ADDR", "off");
    command.env("MERKLOGD_OTLP_HTTP_ADDR", "off");
    command
}

#[test]
fn help_documents_every_flag_and_its_environment_variable() {
    let output = merklogd().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for (flag, env) in [
        ("--data-dir", "MERKLOGD_DATA_DIR"),
        ("--listen", "MERKLOGD_LISTEN"),
        ("--http-listen", "MERKLOGD_HTTP_LISTEN"),
        ("--metrics-listen", "MERKLOGD_METRICS_LISTEN"),
        ("--origin", "MERKLOGD_ORIGIN"),
        ("--config", "MERKLOGD_CONFIG"),
        ("--log-format", "MERKLOGD_LOG_FORMAT"),
        ("--max-batch-entries", "MERKLOGD_MAX_BATCH_ENTRIES"),
        ("--max-batch-wait", "MERKLOGD_MAX_BATCH_WAIT"),
        ("--max-entry-bytes", "MERKLOGD_MAX_ENTRY_BYTES"),
        ("--max-entries-per-call", "MERKLOGD_MAX_ENTRIES_PER_CALL"),
        ("--policy", "MERKLOGD_POLICY"),
        ("--witness-timeout", "MERKLOGD_WITNESS_TIMEOUT"),
        ("--fail-open-after", "MERKLOGD_FAIL_OPEN_AFTER"),
        (
            "--witness-resend-interval",
            "MERKLOGD_WITNESS_RESEND_INTERVAL",
        ),
        ("--append-timeout", "MERKLOGD_APPEND_TIMEOUT"),
        ("--otlp-grpc-addr", "MERKLOGD_OTLP_GRPC_ADDR"),
        ("--otlp-http-addr", "MERKLOGD_OTLP_HTTP_ADDR"),
        ("--schema", "MERKLOGD_SCHEMA"),
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
        assert!(help.contains(env), "--help lacks {env}");
    }
    assert!(help.contains("./merklog-data") && help.contains("127.0.0.1:7800"));
}

/// `merklogd --print-config` with `env` set and `args` given.
fn print_config(env: &[(&str, &str)], args: &[&str]) -> serde_json::Value {
    let output = merklogd()
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
        ("listen", "MERKLOGD_LISTEN",
         ["\"127.0.0.1:1111\"", "127.0.0.1:2222", "127.0.0.1:3333"],
         ["127.0.0.1:7800".into(), "127.0.0.1:1111".into(), "127.0.0.1:2222".into(), "127.0.0.1:3333".into()]),
        ("max-batch-wait", "MERKLOGD_MAX_BATCH_WAIT",
         ["\"4ms\"", "1h30m", "2m"],
         ["0s".into(), "4ms".into(), "1h 30m".into(), "2m".into()]),
        ("max-entries-per-page", "MERKLOGD_MAX_ENTRIES_PER_PAGE",
         ["100", "200", "300"],
         [256.into(), 100.into(), 200.into(), 300.into()]),
        ("log-level", "MERKLOGD_LOG_LEVEL",
         ["\"warn\"", "debug", "error"],
         ["info".into(), "warn".into(), "debug".into(), "error".into()]),
        ("fail-open-after", "MERKLOGD_FAIL_OPEN_AFTER",
         ["\"30s\"", "1m", "500ms"],
         [serde_json::Value::Null, "30s".into(), "1m".into(), "500ms".into()]),
        ("data-dir", "MERKLOGD_DATA_DIR",
         ["\"/from/toml\"", "/from/env", "/from/flag"],
         ["./merklog-data".into(), "/from/toml".into(), "/from/env".into(), "/from/flag".into()]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("merklogd.toml");
    let file: String = table
        .iter()
        .map(|(key, _, [value, _, _], _)| format!("{key} = {value}\n"))
        .collect();
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

    // The config file can come from the environment too.
    let config = print_config(&[("MERKLOGD_CONFIG", toml.to_str().unwrap())], &[]);
    assert_eq!(config["listen"], "127.0.0.1:1111");

    // A typo in the file is an error naming the key, not silently ignored.
    std::fs::write(&toml, "data_dir = \"/x\"\n").unwrap();
    let output = merklogd()
        .args(["--config", toml.to_str().unwrap(), "--print-config"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("data_dir"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "printed once: {stderr}");
}

#[test]
fn witness_settings_in_print_config() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("merklogd.toml");
    let (_, log_vkey) = merklog_note::generate_ed25519("print.example/log").unwrap();
    let (_, w1) = merklog_note::generate_cosigner("w1.example/w").unwrap();
    let policy = dir.path().join("policy.txt");
    std::fs::write(
        &policy,
        format!("log {log_vkey}\nwitness w1 {w1} http://127.0.0.1:1\nquorum w1\n"),
    )
    .unwrap();
    std::fs::write(
        &toml,
        format!(
            "policy = {:?}\nwitness-timeout = \"2500ms\"\nfail-open-after = \"2m\"\n",
            policy.to_str().unwrap()
        ),
    )
    .unwrap();
    let config = print_config(
        &[("MERKLOGD_WITNESS_RESEND_INTERVAL", "30s")],
        &["--config", toml.to_str().unwrap()],
    );
    assert_eq!(config["policy"], policy.to_str().unwrap());
    assert_eq!(config["witness-timeout"], "2s 500ms");
    assert_eq!(config["fail-open-after"], "2m");
    assert_eq!(config["witness-resend-interval"], "30s");
    assert_eq!(config["append-timeout"], "10s", "default");
    // The parsed policy: its log, its witnesses and the quorum.
    let parsed = &config["parsed-policy"];
    assert_eq!(parsed["logs"][0], log_vkey.as_str());
    assert_eq!(parsed["witnesses"][0]["name"], "w1");
    assert_eq!(parsed["witnesses"][0]["vkey"], w1.as_str());
    assert_eq!(parsed["witnesses"][0]["url"], "http://127.0.0.1:1");
    assert_eq!(parsed["quorum"], "w1");

    // Without a policy nothing fails open and nothing is parsed.
    let config = print_config(&[], &[]);
    assert_eq!(config["policy"], serde_json::Value::Null);
    assert_eq!(config["fail-open-after"], serde_json::Value::Null);
    assert_eq!(config["witness-timeout"], "5s");
    assert!(config.get("parsed-policy").is_none());

    // A bad duration is refused naming the setting and the expected form, from
    // a flag, the environment or the file alike.
    for (env, args) in [
        (vec![], vec!["--witness-timeout", "5"]),
        (vec![("MERKLOGD_WITNESS_TIMEOUT", "5")], vec![]),
    ] {
        let output = merklogd()
            .envs(env)
            .args(args)
            .arg("--print-config")
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--witness-timeout") && stderr.contains("500ms, 5s"),
            "{stderr}"
        );
    }
    std::fs::write(&toml, "witness-timeout = \"5\"\n").unwrap();
    let output = merklogd()
        .args(["--config", toml.to_str().unwrap(), "--print-config"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`witness-timeout`"), "{stderr}");

    // A policy that does not parse is refused here as at start.
    std::fs::write(&policy, "quorum nobody\n").unwrap();
    let output = merklogd()
        .args(["--policy", policy.to_str().unwrap(), "--print-config"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("policy file"));
}

#[test]
fn a_policy_for_another_log_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (_, other_log) = merklog_note::generate_ed25519("other.example/log").unwrap();
    let (_, witness) = merklog_note::generate_cosigner("w.example/w").unwrap();
    let policy = dir.path().join("policy.txt");
    std::fs::write(
        &policy,
        format!("log {other_log}\nwitness w {witness} http://127.0.0.1:1\nquorum w\n"),
    )
    .unwrap();
    let output = merklogd()
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--origin", "this.example/log", "--policy"])
        .arg(&policy)
        .args(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"])
        .args(["--metrics-listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let vkey = std::fs::read_to_string(data_dir.join("log.vkey")).unwrap();
    assert!(stderr.contains("no `log` line"), "{stderr}");
    assert!(stderr.contains(vkey.trim_end()), "{stderr}");
}

/// Starts `merklogd` on port 0 with an address file; waits until it serves.
/// The caller reaps the returned child (`terminate`).
#[allow(clippy::zombie_processes)]
fn start(data_dir: &Path, extra: &[&str]) -> (Child, serde_json::Value) {
    let addr_file = data_dir.with_extension("addrs");
    let _ = std::fs::remove_file(&addr_file);
    let mut child = merklogd()
        .arg("--data-dir")
        .arg(data_dir)
        .args([
            "--listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--log-format",
            "json",
            "--addr-file",
        ])
        .arg(&addr_file)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(&addr_file) {
            return (child, serde_json::from_str(&text).unwrap());
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("merklogd did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM, then the exit status and the captured output.
fn terminate(mut child: Child) -> (bool, String, String) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("merklogd did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    (status.success(), stdout, stderr)
}

#[test]
fn first_start_prints_the_vkey_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let (child, addrs) = start(&data_dir, &["--origin", "cli.example/log"]);
    let grpc = addrs["grpc"].as_str().unwrap().to_owned();
    assert!(grpc.starts_with("127.0.0.1:") && !grpc.ends_with(":0"));
    let (ok, stdout, stderr) = terminate(child);
    assert!(ok, "exit status; stderr:\n{stderr}");

    // stdout holds exactly the verifier key, which is also in log.vkey.
    let vkey = std::fs::read_to_string(data_dir.join("log.vkey")).unwrap();
    assert_eq!(stdout, vkey);
    assert!(vkey.starts_with("cli.example/log+"));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(data_dir.join("log.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // JSON logs name the bound addresses, and never the private key.
    let serving = stderr
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|v| v["message"] == "merklogd serving")
        .expect("a 'merklogd serving' log line");
    assert_eq!(serving["grpc"], grpc.as_str());
    assert!(!stderr.contains("PRIVATE+KEY"));
    assert!(stderr.contains("merklogd stopped"));

    // A later start keeps the origin without --origin and prints nothing.
    let (child, _) = start(&data_dir, &[]);
    let (ok, stdout, _) = terminate(child);
    assert!(ok);
    assert_eq!(stdout, "");

    // A conflicting origin stops the process with a clear error.
    let output = merklogd()
        .arg("--data-dir")
        .arg(&data_dir)
        .args(["--origin", "else.example/log", "--listen", "127.0.0.1:0"])
        .args([
            "--http-listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cli.example/log") && stderr.contains("else.example/log"),
        "{stderr}"
    );
    // The fatal error is printed once, not repeated as its own cause.
    assert_eq!(
        stderr.matches("refusing to start it as").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("Caused by"), "{stderr}");
}
