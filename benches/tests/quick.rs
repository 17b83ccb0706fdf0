//! Runs `merklog-hammer --quick` end to end (server in process, every workload,
//! both baselines, every acknowledgement verified), and checks that the hammer
//! exits non-zero when the answers do not verify.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const HAMMER: &str = env!("CARGO_BIN_EXE_merklog-hammer");

/// Kills the child if the test fails before it exits.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn run_bounded(command: &mut Command, limit: Duration) -> (std::process::ExitStatus, String) {
    let mut child = Reaper(
        command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let stdout = child.0.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the hammer ran longer than {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    (status, reader.join().unwrap())
}

#[test]
fn quick_mode_runs_every_workload_and_verifies_everything() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let (status, table) = run_bounded(
        Command::new(HAMMER)
            .args(["--quick", "--in-process"])
            .arg("--work-dir")
            .arg(dir.path())
            .arg("--json")
            .arg(&json),
        Duration::from_secs(240),
    );
    assert!(status.success(), "{status}\n{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let steps = report["steps"].as_array().unwrap();
    let workloads: std::collections::BTreeSet<&str> = steps
        .iter()
        .map(|s| s["workload"].as_str().unwrap())
        .collect();
    assert_eq!(
        workloads.into_iter().collect::<Vec<_>>(),
        ["R", "W1", "W2", "W3", "W4", "W5", "W6"]
    );
    for step in steps {
        let systems: Vec<&str> = step["runs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["system"].as_str().unwrap())
            .collect();
        let expected: &[&str] = match step["workload"].as_str().unwrap() {
            "R" => &["rocksdb"],
            "W6" => &["merklog", "grpc_echo"],
            _ => &["merklog", "grpc_echo", "rocksdb"],
        };
        assert_eq!(systems, expected, "{}", step["id"]);
        for run in step["runs"].as_array().unwrap() {
            assert!(
                run["latency"]["count"].as_u64().unwrap() > 0,
                "{}",
                step["id"]
            );
        }
    }
    let checked = &report["checked"];
    assert_eq!(checked["failures"], 0);
    assert_eq!(
        checked["unsampled_entries"], 0,
        "quick mode checks every entry"
    );
    assert!(checked["acknowledged_entries"].as_u64().unwrap() > 1000);
    assert!(checked["inclusion_proofs"].as_u64().unwrap() > 0);
    assert!(checked["consistency_proofs"].as_u64().unwrap() > 0);
    assert!(report["final_tree_size"].as_u64().unwrap() >= 20_000);
    assert!(table.contains("| W5/400 |"), "{table}");
}

#[test]
fn answers_that_do_not_verify_make_it_exit_non_zero() {
    // The echo signs real checkpoints but answers filler proofs: pointed at it as if
    // it were a log (with its checkpoint key), the hammer must catch every proof.
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("echo.addrs");
    let echo = Reaper(
        Command::new(HAMMER)
            .arg("echo-server")
            .arg("--addr-file")
            .arg(&addr_file)
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let addr: serde_json::Value = loop {
        if let Ok(text) = std::fs::read_to_string(&addr_file) {
            break serde_json::from_str(&text).unwrap();
        }
        assert!(Instant::now() < deadline, "the echo did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    let url = format!("http://{}", addr["grpc"].as_str().unwrap());
    let (status, table) = run_bounded(
        Command::new(HAMMER)
            .args(["--quick", "--no-baselines", "--only", "W2"])
            .args(["--server", &url])
            .args(["--vkey", &merklog_bench::echo::echo_vkey().unwrap()])
            .arg("--work-dir")
            .arg(dir.path()),
        Duration::from_secs(60),
    );
    drop(echo);
    assert_eq!(status.code(), Some(1), "{table}");
    assert!(table.contains("failures"), "{table}");
}
