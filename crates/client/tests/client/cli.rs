//! Every `merklog` command, run as a process, against a real merklogd.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use merklog_merkle::hash_leaf;
use merklog_note::{parse_cosignature_verifier_key, parse_verifier_key};

use crate::common::{Merklog, ORIGIN, TestServer};

fn write(path: &Path, bytes: impl AsRef<[u8]>) {
    std::fs::write(path, bytes).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn every_command_has_help() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Merklog::bare(dir.path());
    let top = cli.run(&["--help"]).await.ok();
    assert!(top.stdout.contains("Exit codes"), "{}", top.stdout);
    for command in [
        &["key", "generate"][..],
        &["append"],
        &["checkpoint"],
        &["prove"],
        &["verify"],
        &["consistency"],
        &["watch"],
        &["audit"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let run = cli.run(&args).await.ok();
        assert!(
            run.stdout.contains("Usage: merklog"),
            "{command:?}: {}",
            run.stdout
        );
        assert!(
            run.stdout.contains("--json"),
            "{command:?}: global flags are listed"
        );
    }
    // A usage error is exit 2.
    cli.run(&["prove"]).await.error();
    cli.run(&["no-such-command"]).await.error();
}

#[tokio::test]
async fn key_generate_writes_a_key_pair_merklogd_can_use() {
    let dir = tempfile::tempdir().unwrap();
    let cli = Merklog::bare(dir.path());
    let run = cli
        .run(&["key", "generate", "--name", "example.com/log"])
        .await
        .ok();
    let key_file = dir.path().join("example.com_log.key");
    let vkey_text = std::fs::read_to_string(dir.path().join("example.com_log.vkey")).unwrap();
    let verifier = parse_verifier_key(vkey_text.trim()).unwrap();
    assert_eq!(merklog_note::Verifier::name(&verifier), "example.com/log");
    assert!(run.stdout.contains(vkey_text.trim()));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let key_before = std::fs::read(&key_file).unwrap();
    // Never overwritten.
    cli.run(&["key", "generate", "--name", "example.com/log"])
        .await
        .error();
    assert_eq!(std::fs::read(&key_file).unwrap(), key_before);

    let witness = cli
        .run(&[
            "--json",
            "key",
            "generate",
            "--name",
            "witness.example",
            "--witness",
            "--key-file",
            "keys/w.key",
        ])
        .await
        .ok();
    let json = &witness.json_lines()[0];
    assert_eq!(json["kind"], "witness");
    parse_cosignature_verifier_key(json["vkey"].as_str().unwrap()).unwrap();

    // A log key generated into a fresh data directory is the key merklogd uses.
    let data = dir.path().join("data");
    cli.run(&[
        "key",
        "generate",
        "--name",
        ORIGIN,
        "--key-file",
        data.join("log.key").to_str().unwrap(),
    ])
    .await
    .ok();
    let vkey = std::fs::read_to_string(data.join("log.vkey")).unwrap();
    let server = TestServer::start(&data).await;
    assert_eq!(server.vkey, vkey.trim());
}

#[tokio::test]
async fn proofs_saved_by_append_verify_offline_and_alterations_fail() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data")).await;
    let vkey = server.vkey.clone();
    let cli = Merklog::new(
        &server.url(),
        &vkey,
        &dir.path().join("state.json"),
        dir.path(),
    );
    let run = cli
        .run(&[
            "--json",
            "append",
            "--proof-dir",
            "proofs",
            "alpha",
            "beta",
            "gamma",
        ])
        .await
        .ok();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 3);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i as u64);
        assert_eq!(line["duplicate"], false);
        assert_eq!(line["checkpoint_size"], 3);
    }
    server.stop().await;

    // The server is gone; the address now belongs to a listener that must never
    // see a connection.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut offline = cli.clone();
    offline.env.retain(|(k, _)| k != "MERKLOG_SERVER");
    offline.env.push((
        "MERKLOG_SERVER".into(),
        format!("http://{}", trap.local_addr().unwrap()),
    ));
    for (i, entry) in ["alpha", "beta", "gamma"].iter().enumerate() {
        write(&dir.path().join(format!("e{i}")), entry);
        let run = offline
            .run(&[
                "verify",
                &format!("proofs/{i}.tlog-proof"),
                "--entry",
                &format!("e{i}"),
            ])
            .await
            .ok();
        assert!(run.stdout.starts_with("OK"), "{}", run.stdout);
        assert!(run.stdout.contains(&format!("at index {i} of {ORIGIN}")));
    }
    let json = offline
        .run(&["--json", "verify", "proofs/1.tlog-proof", "--entry", "e1"])
        .await
        .ok();
    assert_eq!(json.json_lines()[0]["size"], 3);
    // The entry from stdin.
    let piped = offline
        .run_with_stdin(
            &["verify", "proofs/2.tlog-proof", "--entry", "-"],
            Some(b"gamma"),
        )
        .await;
    piped.ok();
    assert!(
        tokio::time::timeout(Duration::from_millis(200), trap.accept())
            .await
            .is_err(),
        "verify opened a network connection"
    );

    let proof = std::fs::read_to_string(dir.path().join("proofs/0.tlog-proof")).unwrap();
    let verify = |file: &'static str| {
        let offline = offline.clone();
        async move { offline.run(&["verify", file, "--entry", "e0"]).await }
    };
    // Altered entry.
    write(&dir.path().join("e0-altered"), "alphA");
    let run = offline
        .run(&["verify", "proofs/0.tlog-proof", "--entry", "e0-altered"])
        .await
        .verification_failure();
    assert!(run.stderr.contains("inclusion proof"), "{}", run.stderr);
    // Altered index.
    write(
        &dir.path().join("index"),
        proof.replace("index 0\n", "index 1\n"),
    );
    verify("index").await.verification_failure();
    // Altered checkpoint: a different size in the signed text.
    let note_start = proof.find(&format!("\n\n{ORIGIN}\n")).unwrap() + 2;
    let (head, note) = proof.split_at(note_start);
    write(
        &dir.path().join("size"),
        format!("{head}{}", note.replacen("\n3\n", "\n4\n", 1)),
    );
    verify("size").await.verification_failure();
    // Altered signature.
    let signature_start = proof.rfind(' ').unwrap() + 1;
    let mut signature_altered = proof.clone().into_bytes();
    let target = signature_start + 10;
    signature_altered[target] = if signature_altered[target] == b'A' {
        b'B'
    } else {
        b'A'
    };
    write(&dir.path().join("signature"), signature_altered);
    let run = verify("signature").await.verification_failure();
    assert!(run.stderr.contains("signature"), "{}", run.stderr);
    // Another log's key: a configuration error naming both keys.
    let (_, other) = merklog_note::generate_ed25519(ORIGIN).unwrap();
    let run = offline
        .run(&[
            "verify",
            "proofs/0.tlog-proof",
            "--entry",
            "e0",
            "--log-key",
            &other,
        ])
        .await
        .error();
    let key_id = |vkey: &str| vkey.split('+').nth(1).unwrap().to_owned();
    assert!(
        run.stderr.contains("does not belong to this log")
            && run.stderr.contains(&key_id(&other))
            && run.stderr.contains(&key_id(&vkey)),
        "{}",
        run.stderr
    );
    // Garbage instead of a proof.
    write(&dir.path().join("garbage"), "not a proof\n");
    verify("garbage").await.verification_failure();
    // Usage and file errors are exit 2.
    verify("missing-file").await.error();
    Merklog::bare(dir.path())
        .run(&["verify", "proofs/0.tlog-proof", "--entry", "e0"])
        .await
        .error();
    // The key can also come from a file.
    write(&dir.path().join("log.vkey"), format!("{vkey}\n"));
    Merklog::bare(dir.path())
        .run(&[
            "verify",
            "proofs/0.tlog-proof",
            "--entry",
            "e0",
            "--log-key",
            "log.vkey",
        ])
        .await
        .ok();

    // A witness policy: the proof must carry the quorum's cosignatures.
    let witness = merklog_note::CosignatureSigner::from_seed("witness.example", &[3; 32]).unwrap();
    write(
        &dir.path().join("policy"),
        format!(
            "log {vkey}\nwitness w1 {}\nquorum w1\n",
            witness.verifier().to_vkey()
        ),
    );
    let mut cosigned = merklog_note::TlogProof::parse(proof.as_bytes()).unwrap();
    let mut note = merklog_note::Note::parse(&cosigned.checkpoint).unwrap();
    note.add_signature(witness.cosign(note.text(), 1_800_000_000).unwrap())
        .unwrap();
    cosigned.checkpoint = note.to_bytes();
    write(&dir.path().join("cosigned"), cosigned.to_bytes());
    let bare = Merklog::bare(dir.path());
    let run = bare
        .run(&["verify", "cosigned", "--entry", "e0", "--policy", "policy"])
        .await
        .ok();
    assert!(run.stdout.contains("witness quorum"), "{}", run.stdout);
    bare.run(&[
        "verify",
        "cosigned",
        "--entry",
        "e0",
        "--policy",
        "policy",
        "--log-key",
        "log.vkey",
    ])
    .await
    .ok();
    let run = bare
        .run(&[
            "verify",
            "proofs/0.tlog-proof",
            "--entry",
            "e0",
            "--policy",
            "policy",
        ])
        .await
        .verification_failure();
    assert!(run.stderr.contains("quorum"), "{}", run.stderr);
}

#[tokio::test]
async fn append_from_stdin_keeps_each_line_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data")).await;
    let cli = Merklog::new(
        &server.url(),
        &server.vkey,
        &dir.path().join("state.json"),
        dir.path(),
    );
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"event\":\"login\",\"user\":\"ann\"}\n");
    input.extend_from_slice(b"crlf line\r\n");
    input.extend_from_slice(b"\n");
    input.extend_from_slice(b"  spaces kept  \n");
    for i in 0..300 {
        input.extend_from_slice(format!("generated line {i}\n").as_bytes());
    }
    input.extend_from_slice(b"last line without newline");
    let run = cli
        .run_with_stdin(
            &["--json", "append", "--batch-size", "16", "--proof-dir", "p"],
            Some(&input),
        )
        .await
        .ok();
    assert!(
        run.stderr.contains("skipped 1 empty line"),
        "{}",
        run.stderr
    );
    let lines = run.json_lines();
    assert_eq!(lines.len(), 304);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["index"], i as u64, "input order is kept");
    }
    let expected_leaf = hash_leaf(b"{\"event\":\"login\",\"user\":\"ann\"}");
    assert_eq!(lines[0]["leaf_hash"], expected_leaf.to_string());
    assert_eq!(lines[1]["leaf_hash"], hash_leaf(b"crlf line\r").to_string());
    assert_eq!(
        lines[2]["leaf_hash"],
        hash_leaf(b"  spaces kept  ").to_string()
    );
    assert_eq!(
        lines[303]["leaf_hash"],
        hash_leaf(b"last line without newline").to_string()
    );

    // The exact line bytes reproduce the leaf hash for prove and verify.
    write(
        &dir.path().join("login.json"),
        b"{\"event\":\"login\",\"user\":\"ann\"}",
    );
    cli.run(&[
        "prove",
        "--entry",
        "login.json",
        "--out",
        "login.tlog-proof",
    ])
    .await
    .ok();
    cli.run(&["verify", "login.tlog-proof", "--entry", "login.json"])
        .await
        .ok();
    cli.run(&["verify", "p/0.tlog-proof", "--entry", "login.json"])
        .await
        .ok();
    write(&dir.path().join("crlf"), b"crlf line\r");
    cli.run(&["verify", "p/1.tlog-proof", "--entry", "crlf"])
        .await
        .ok();
    write(&dir.path().join("crlf-stripped"), b"crlf line");
    cli.run(&["verify", "p/1.tlog-proof", "--entry", "crlf-stripped"])
        .await
        .verification_failure();

    // The same input again: every entry is a duplicate at its old index.
    let again = cli
        .run_with_stdin(&["--json", "append", "--batch-size", "100"], Some(&input))
        .await
        .ok();
    let again = again.json_lines();
    assert_eq!(again.len(), 304);
    assert!(again.iter().all(|l| l["duplicate"] == true));
    assert_eq!(again[303]["index"], 303);

    // Files, one entry each, binary allowed; an oversize line is refused (exit 2).
    write(&dir.path().join("binary"), [0u8, 159, 146, 150, 255]);
    let human = cli
        .run(&["append", "--file", "binary", "an argument"])
        .await
        .ok();
    assert!(human.stdout.contains("#304 appended"), "{}", human.stdout);
    assert!(human.stdout.contains("#305 appended"), "{}", human.stdout);
    assert!(human.stderr.contains("every inclusion proof verified"));
    let mut huge = vec![b'x'; 70_000];
    huge.push(b'\n');
    let refused = cli.run_with_stdin(&["append"], Some(&huge)).await.error();
    assert!(refused.stderr.contains("65535"), "{}", refused.stderr);
}

#[tokio::test]
async fn checkpoint_prove_consistency_audit_and_watch() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data")).await;
    let state = dir.path().join("state.json");
    let cli = Merklog::new(&server.url(), &server.vkey, &state, dir.path());

    let first = cli.run(&["checkpoint"]).await.ok();
    assert!(
        first
            .stdout
            .contains(&format!("verified checkpoint: {ORIGIN} size 0")),
        "{}",
        first.stdout
    );
    assert!(
        first.stdout.contains("first checkpoint"),
        "{}",
        first.stdout
    );
    cli.run(&["append", "a", "b", "c"]).await.ok();
    let third = cli.run(&["checkpoint", "--out", "cp3.note"]).await.ok();
    assert!(third.stdout.contains("size 3"), "{}", third.stdout);
    assert!(
        third.stdout.contains(&format!("\n{ORIGIN}\n3\n")),
        "the note is printed"
    );
    cli.run(&["append", "d", "e"]).await.ok();
    let json = cli.run(&["--json", "checkpoint"]).await.ok();
    let json = &json.json_lines()[0];
    assert_eq!(json["size"], 5);
    assert_eq!(json["origin"], ORIGIN);
    assert!(json["note"].as_str().unwrap().starts_with(ORIGIN));

    // prove, by index, hash and entry file.
    cli.run(&["prove", "1", "--out", "p1"]).await.ok();
    write(&dir.path().join("b"), "b");
    cli.run(&["verify", "p1", "--entry", "b"]).await.ok();
    let by_hash = cli
        .run(&["--json", "prove", "--hash", &hash_leaf(b"c").to_string()])
        .await
        .ok();
    assert_eq!(by_hash.json_lines()[0]["index"], 2);
    assert!(dir.path().join("2.tlog-proof").exists(), "default --out");
    let to_stdout = cli.run(&["prove", "0", "--out", "-"]).await.ok();
    assert!(
        to_stdout
            .stdout
            .starts_with("c2sp.org/tlog-proof@v1\nindex 0\n")
    );
    cli.run(&["prove", "99"]).await.error();
    cli.run(&["prove", "--hash", "not-a-hash"]).await.error();
    cli.run(&["prove", "1", "--hash", &hash_leaf(b"c").to_string()])
        .await
        .error();

    // consistency between sizes, files and the latest checkpoint.
    let run = cli.run(&["consistency", "3", "5"]).await.ok();
    assert!(
        run.stdout.starts_with("consistent: size 3"),
        "{}",
        run.stdout
    );
    let run = cli.run(&["--json", "consistency", "cp3.note"]).await.ok();
    let value = &run.json_lines()[0];
    assert_eq!(value["old"]["size"], 3);
    assert_eq!(value["new"]["size"], 5);
    assert!(!value["proof"].as_array().unwrap().is_empty());
    cli.run(&["consistency", "5", "3"]).await.error();
    cli.run(&["consistency", "no-such-file"]).await.error();

    // audit.
    let run = cli.run(&["audit"]).await.ok();
    assert!(
        run.stdout.starts_with("audit OK: 5 entries"),
        "{}",
        run.stdout
    );
    let run = cli.run(&["--json", "audit"]).await.ok();
    assert_eq!(run.json_lines()[0]["entries"], 5);

    // watch: bounded by --timeout, then by --max-updates while entries arrive.
    let idle = cli.run(&["watch", "--stop-after", "300ms"]).await.ok();
    assert!(idle.stdout.contains("(current)"), "{}", idle.stdout);
    let watcher = {
        let cli = cli.clone();
        tokio::spawn(async move { cli.run(&["--json", "watch", "--max-updates", "2"]).await })
    };
    let mut client = server.client(None).await;
    let mut appended = Vec::new();
    for i in 0..200 {
        if watcher.is_finished() {
            break;
        }
        let entry = format!("watched {i}");
        client
            .append(vec![Bytes::from(entry.clone())])
            .await
            .unwrap();
        appended.push(entry);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let run = watcher.await.unwrap().ok();
    let events = run.json_lines();
    let checkpoints = events.iter().filter(|e| e["event"] == "checkpoint").count();
    assert_eq!(
        checkpoints, 3,
        "the current one and two updates: {events:#?}"
    );
    let entries: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "entry")
        .map(|e| e["entry"].as_str().unwrap())
        .collect();
    assert!(!entries.is_empty());
    assert!(entries.iter().all(|e| appended.iter().any(|a| a == e)));
}

#[tokio::test]
async fn a_restored_backup_is_caught_as_rollback_then_fork() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backup = dir.path().join("backup");
    let state = dir.path().join("state.json");

    let server = TestServer::start(&data).await;
    let vkey = server.vkey.clone();
    Merklog::new(&server.url(), &vkey, &state, dir.path())
        .run(&["append", "a", "b", "c"])
        .await
        .ok();
    server.stop().await;
    copy_dir(&data, &backup);

    let server = TestServer::start(&data).await;
    let cli = Merklog::new(&server.url(), &vkey, &state, dir.path());
    cli.run(&["append", "d", "e"]).await.ok();
    server.stop().await;

    // The operator restores the backup: the log goes back to size 3.
    let server = TestServer::start(&backup).await;
    assert_eq!(server.vkey, vkey);
    let cli = Merklog::new(&server.url(), &vkey, &state, dir.path());
    let run = cli.run(&["checkpoint"]).await.verification_failure();
    assert!(run.stderr.contains("rollback"), "{}", run.stderr);
    cli.run(&["audit"]).await.verification_failure();

    // And then signs new entries: size 5 again, with another root.
    let mut client = server.client(None).await;
    client
        .append(vec![Bytes::from("x"), Bytes::from("y")])
        .await
        .unwrap();
    let run = cli.run(&["checkpoint"]).await.verification_failure();
    assert!(run.stderr.contains("fork"), "{}", run.stderr);
    let run = cli.run(&["append", "z"]).await.verification_failure();
    assert!(run.stderr.contains("not consistent"), "{}", run.stderr);
    // Without the state file the client has nothing to compare with.
    cli.run(&["--no-state", "checkpoint"]).await.ok();
}

#[tokio::test]
async fn the_default_state_file_follows_xdg_then_home() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data")).await;
    let mut cli = Merklog::bare(dir.path());
    cli.env.push(("MERKLOG_SERVER".into(), server.url()));
    cli.env
        .push(("MERKLOG_LOG_KEY".into(), server.vkey.clone()));
    let xdg = dir.path().join("xdg");
    let home = dir.path().join("home");
    let mut with_xdg = cli.clone();
    with_xdg
        .env
        .push(("XDG_STATE_HOME".into(), xdg.display().to_string()));
    with_xdg
        .env
        .push(("HOME".into(), home.display().to_string()));
    with_xdg.run(&["checkpoint"]).await.ok();
    assert!(xdg.join("merklog/state.json").exists());
    assert!(!home.exists());
    let mut with_home = cli.clone();
    with_home
        .env
        .push(("HOME".into(), home.display().to_string()));
    with_home.run(&["checkpoint"]).await.ok();
    assert!(home.join(".local/state/merklog/state.json").exists());
    // Neither: a warning, and the command still works.
    let run = cli.run(&["checkpoint"]).await.ok();
    assert!(run.stderr.contains("no state file"), "{}", run.stderr);
    // A bare host:port is accepted; other schemes are refused (exit 2).
    let mut bare_address = cli.clone();
    bare_address
        .env
        .push(("XDG_STATE_HOME".into(), xdg.display().to_string()));
    bare_address
        .run(&["--server", &server.addrs.grpc.to_string(), "checkpoint"])
        .await
        .ok();
    let run = cli
        .run(&["--server", "https://127.0.0.1:1", "checkpoint"])
        .await
        .error();
    assert!(run.stderr.contains("TLS"), "{}", run.stderr);
}
