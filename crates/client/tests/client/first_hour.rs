//! What a new user trips over, run as the `merklog` process against a real
//! merklogd: a server that never answers, the wrong port, the wrong key, a batch
//! with one bad line, and `watch` across a server restart.

use std::time::{Duration, Instant};

use merklog_proto::convert::MAX_ENTRY_BYTES_CAP;

use crate::common::{Merklog, ORIGIN, TestServer};

/// A TCP listener that accepts connections and never writes a byte.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (format!("http://{addr}"), task)
}

#[tokio::test]
async fn a_server_that_accepts_and_never_answers_fails_within_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _task) = silent_server().await;
    let (_, vkey) = merklog_note::generate_ed25519(ORIGIN).unwrap();
    let cli = Merklog::new(&url, &vkey, &dir.path().join("state.json"), dir.path());
    for (args, stdin) in [
        (&["--timeout", "1s", "append", "an event"][..], None),
        (
            &["--timeout", "1s", "append"][..],
            Some(&b"from stdin\n"[..]),
        ),
        (&["--timeout", "1s", "checkpoint"][..], None),
        (&["--timeout", "1s", "watch"][..], None),
        (&["--timeout", "1s", "audit"][..], None),
    ] {
        let started = Instant::now();
        let run = cli.run_with_stdin(args, stdin).await.error();
        // Bounded well below the harness's own limit: the client gave up by itself.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{args:?} took {:?}",
            started.elapsed()
        );
        assert!(
            run.stderr.contains("no answer from") && run.stderr.contains("within 1s (--timeout)"),
            "{args:?}: {}",
            run.stderr
        );
    }
    // An unusable limit is refused up front.
    cli.run(&["--timeout", "0s", "checkpoint"]).await.error();
}

#[tokio::test]
async fn the_tiles_and_metrics_ports_are_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data")).await;
    let state = dir.path().join("state.json");
    for (addr, name) in [
        (server.addrs.http, "tlog-tiles port"),
        (server.addrs.metrics, "metrics port"),
    ] {
        let cli = Merklog::new(&format!("http://{addr}"), &server.vkey, &state, dir.path());
        for args in [&["checkpoint"][..], &["append", "x"], &["watch"]] {
            let run = cli.run(args).await.error();
            assert!(
                run.stderr.contains("is not merklogd's gRPC port") && run.stderr.contains(name),
                "{args:?} on {addr}: {}",
                run.stderr
            );
            assert!(!run.stderr.contains("compression flag"), "{}", run.stderr);
        }
        let run = cli.run_with_stdin(&["append"], Some(b"x\n")).await.error();
        assert!(run.stderr.contains(name), "{}", run.stderr);
    }
}

#[tokio::test]
async fn wrong_keys_are_configuration_errors_that_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start(&data).await;
    let state = dir.path().join("state.json");
    let id = |vkey: &str| vkey.split('+').nth(1).unwrap().to_owned();
    // Another log's key, and this origin with another key.
    for other_origin in ["other.example/log", ORIGIN] {
        let (_, other) = merklog_note::generate_ed25519(other_origin).unwrap();
        let cli = Merklog::new(&server.url(), &other, &state, dir.path());
        let run = cli.run(&["checkpoint"]).await.error();
        assert!(
            run.stderr.contains("does not belong to this log")
                && run
                    .stderr
                    .contains(&format!("{other_origin}+{}", id(&other)))
                && run
                    .stderr
                    .contains(&format!("{ORIGIN}+{}", id(&server.vkey))),
            "{}",
            run.stderr
        );
        assert!(
            !run.stderr.contains("VERIFICATION FAILED"),
            "{}",
            run.stderr
        );
    }
    // The private key where the verifier key belongs.
    let key_file = data.join("log.key");
    let cli = Merklog::new(
        &server.url(),
        key_file.to_str().unwrap(),
        &state,
        dir.path(),
    );
    let run = cli.run(&["checkpoint"]).await.error();
    assert!(
        run.stderr.contains("holds a private signing key") && run.stderr.contains("log.vkey"),
        "{}",
        run.stderr
    );
    // A key file that is not there.
    let cli = Merklog::new(&server.url(), "keys/log.vkey", &state, dir.path());
    let run = cli.run(&["checkpoint"]).await.error();
    assert!(
        run.stderr.contains("cannot read keys/log.vkey"),
        "{}",
        run.stderr
    );
    // A missing entry file.
    let cli = Merklog::new(&server.url(), &server.vkey, &state, dir.path());
    let run = cli
        .run(&["append", "--file", "no-such-event.json"])
        .await
        .error();
    assert!(
        run.stderr.contains("cannot read no-such-event.json"),
        "{}",
        run.stderr
    );
    // A status from the log carries its code name, not tonic's sentence.
    let run = cli.run(&["prove", "99"]).await.error();
    assert!(run.stderr.contains("OUT_OF_RANGE"), "{}", run.stderr);
    assert!(
        !run.stderr.contains("Some requested entity"),
        "{}",
        run.stderr
    );
}

#[tokio::test]
async fn a_batch_with_one_bad_line_reports_exactly_what_is_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data")).await;
    let cli = Merklog::new(
        &server.url(),
        &server.vkey,
        &dir.path().join("state.json"),
        dir.path(),
    );
    let mut input = String::new();
    for i in 0..300 {
        input.push_str(&format!("{{\"event\":{i}}}\n"));
    }
    input.push_str(&"x".repeat(MAX_ENTRY_BYTES_CAP + 1));
    input.push('\n');
    input.push_str("{\"event\":\"after\"}\n");
    let run = cli
        .run_with_stdin(&["append", "--batch-size", "8"], Some(input.as_bytes()))
        .await
        .error();
    // One receipt per line before the bad one, in order, and nothing else.
    let receipts: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(receipts.len(), 300, "{}", run.stdout);
    for (i, line) in receipts.iter().enumerate() {
        assert!(line.starts_with(&format!("#{i} appended ")), "{line}");
    }
    assert!(
        run.stderr.contains("300 entries acknowledged")
            && run
                .stderr
                .contains("every line before stdin line 301 is in the log")
            && run
                .stderr
                .contains("stdin line 301: the entry is 65536 bytes"),
        "{}",
        run.stderr
    );
    let checkpoint = cli.run(&["--json", "checkpoint"]).await.ok();
    assert_eq!(checkpoint.json_lines()[0]["size"], 300);

    // The same with --json: receipts, then a summary naming the line.
    let mut input = String::from("{\"event\":\"json\"}\n\n");
    input.push_str(&"y".repeat(MAX_ENTRY_BYTES_CAP + 5));
    input.push('\n');
    let run = cli
        .run_with_stdin(&["--json", "append"], Some(input.as_bytes()))
        .await
        .error();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0]["index"], 300);
    assert_eq!(lines[0]["duplicate"], false);
    assert_eq!(lines[1]["event"], "summary");
    assert_eq!(lines[1]["ok"], false);
    assert_eq!(lines[1]["acknowledged"], 1);
    assert_eq!(lines[1]["first_unsent_line"], 3);
    assert_eq!(lines[2]["ok"], false);
    assert!(lines[2]["error"].as_str().unwrap().contains("stdin line 3"));

    // Arguments are all checked before anything is sent.
    let run = cli.run(&["append", "fine", ""]).await.error();
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(run.stderr.contains("argument 2"), "{}", run.stderr);
    let checkpoint = cli.run(&["--json", "checkpoint"]).await.ok();
    assert_eq!(checkpoint.json_lines()[0]["size"], 301);
}

/// The entry lines of a `--json watch`, as (index, text).
fn watched_entries(run: &crate::common::Run) -> Vec<(u64, String)> {
    run.json_lines()
        .iter()
        .filter(|e| e["event"] == "entry")
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["entry"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn watch_follows_the_log_across_a_server_restart_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = TestServer::start(&data).await;
    let grpc = server.addrs.grpc;
    let state = dir.path().join("state.json");
    let cli = Merklog::new(&server.url(), &server.vkey, &state, dir.path());
    cli.run(&["append", "e0", "e1", "e2"]).await.ok();

    let watcher = {
        let cli = cli.clone();
        tokio::spawn(async move {
            cli.run(&[
                "--json",
                "watch",
                "--max-updates",
                "2",
                "--stop-after",
                "50s",
            ])
            .await
        })
    };
    // The watcher has seen size 3 once it is in the state file (bounded wait).
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.stop().await;
    // Down for a while: the watcher loses the stream and retries.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let server = TestServer::start_at(&data, grpc).await;
    // Appends that never touch the watcher's state.
    let mut client = server.client(None).await;
    client.append(vec!["e3".into(), "e4".into()]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    client.append(vec!["e5".into()]).await.unwrap();
    let run = watcher.await.unwrap().ok();
    assert!(run.stderr.contains("reconnecting"), "{}", run.stderr);
    let entries = watched_entries(&run);
    let expected: Vec<(u64, String)> = (3..6).map(|i| (i, format!("e{i}"))).collect();
    assert_eq!(entries, expected, "no entry missed or repeated: {run:#?}");

    // While no watch runs, two more; a new watch starts with them.
    client.append(vec!["e6".into(), "e7".into()]).await.unwrap();
    let run = cli
        .run(&["--json", "watch", "--stop-after", "500ms"])
        .await
        .ok();
    let expected: Vec<(u64, String)> = (6..8).map(|i| (i, format!("e{i}"))).collect();
    assert_eq!(watched_entries(&run), expected, "{run:#?}");
    // --from INDEX replays from there, verified.
    let run = cli
        .run(&["--json", "watch", "--from", "1", "--stop-after", "500ms"])
        .await
        .ok();
    let expected: Vec<(u64, String)> = (1..8).map(|i| (i, format!("e{i}"))).collect();
    assert_eq!(watched_entries(&run), expected, "{run:#?}");
    let run = cli.run(&["watch", "--from", "9"]).await.error();
    assert!(
        run.stderr.contains("the log has 8 entries"),
        "{}",
        run.stderr
    );
    // Without a server at all, a watch fails at once instead of waiting.
    server.stop().await;
    cli.run(&["watch"]).await.error();
}

#[tokio::test]
async fn an_unsigned_size_names_the_nearest_signed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data")).await;
    let cli = Merklog::new(
        &server.url(),
        &server.vkey,
        &dir.path().join("state.json"),
        dir.path(),
    );
    // One call, one round, one signed size: 1, then 4, then 5.
    cli.run(&["append", "a"]).await.ok();
    cli.run(&["append", "b", "c", "d"]).await.ok();
    cli.run(&["append", "e"]).await.ok();
    let run = cli.run(&["consistency", "3", "5"]).await.error();
    assert!(
        run.stderr
            .contains("the log signed no checkpoint of size 3")
            && run.stderr.contains("the nearest signed sizes are 1 and 4"),
        "{}",
        run.stderr
    );
    cli.run(&["consistency", "4", "5"]).await.ok();
}
