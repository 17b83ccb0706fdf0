//! COSE receipts end to end: `merklog prove --format cose` and `GetReceipt` give
//! receipts an independent verifier (pycose + hashlib, tests/python/cose_receipts.py)
//! accepts, and a changed entry fails; SCITT statements signed in Python are registered
//! over `POST /entries` and their receipts verify in Python and in Rust; an unregistered
//! issuer or a bad signature gets CBOR problem details and writes nothing.
//!
//! Needs pycose 1.1.0 and cbor2<6 (scripts/interop-prereqs); with
//! MERKLOG_SKIP_INTEROP=1 a missing pycose skips the test instead of failing it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use merklog_e2e::{Daemon, client_binary, connect, merklogd_binary};
use merklog_merkle::hash_leaf;
use merklog_proto::v1;
use merklog_receipt::{PublicKey, Receipt, parse_problem_details};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/python/cose_receipts.py");

/// True if pycose and cbor2 import; false (after saying why) when they are missing and
/// MERKLOG_SKIP_INTEROP=1; a missing package otherwise fails the test naming it.
fn pycose_available() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import pycose, cbor2"])
        .output();
    match probe {
        Ok(out) if out.status.success() => true,
        other => {
            let why = match other {
                Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                Err(e) => format!("python3: {e}"),
            };
            if std::env::var("MERKLOG_SKIP_INTEROP").as_deref() == Ok("1") {
                eprintln!("skipping: pycose/cbor2 are missing (MERKLOG_SKIP_INTEROP=1): {why}");
                false
            } else {
                panic!(
                    "this test needs pycose 1.1.0 and cbor2<6 (run scripts/interop-prereqs, \
                     or set MERKLOG_SKIP_INTEROP=1 to skip): {why}"
                );
            }
        }
    }
}

/// Runs the Python script; (success, stdout + stderr).
fn python(args: &[&dyn AsRef<std::ffi::OsStr>]) -> (bool, String) {
    let mut command = Command::new("timeout");
    command.arg("60").arg("python3").arg(SCRIPT);
    for arg in args {
        command.arg(arg);
    }
    let out = command.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// GETs bytes from the tiles port.
async fn get(url: &str) -> (reqwest::StatusCode, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    (response.status(), response.bytes().await.unwrap().to_vec())
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receipts_from_prove_and_get_receipt_verify_in_python() {
    if !pycose_available() {
        return;
    }
    let _ = merklogd_binary();
    let client = client_binary();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let daemon = Daemon::start(&data, &["--origin", "receipts.example/log"]);
    let merklog = |args: &[&str]| {
        Command::new("timeout")
            .arg("60")
            .arg(&client)
            .env_clear()
            .args(["--server", &daemon.grpc_url(), "--log-key"])
            .arg(data.join("log.vkey"))
            .arg("--state-file")
            .arg(dir.path().join("state.json"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let entries: Vec<String> = (0..7).map(|i| format!("receipt entry {i}")).collect();
    for entry in &entries {
        let out = merklog(&["append", entry]);
        assert!(out.status.success(), "{out:?}");
    }
    let (status, key_set) = get(&format!(
        "http://{}/.well-known/scitt-keys",
        daemon.addrs.http
    ))
    .await;
    assert_eq!(status, 200);
    let keys = PublicKey::decode_key_set(&key_set).unwrap();
    assert_eq!(keys.len(), 1);
    // The key set names the key the data directory holds.
    let pub_text = std::fs::read_to_string(data.join("receipt.pub")).unwrap();
    assert_eq!(keys[0].to_text(), pub_text.trim_end());
    assert_eq!(keys[0].algorithm(), merklog_receipt::Algorithm::EdDsa);
    let key_set_file = write(dir.path(), "keys.cbor", &key_set);

    // merklog prove --format cose, by index and by entry, pinned to receipt.pub.
    let pin = data.join("receipt.pub");
    for (i, entry) in entries.iter().enumerate() {
        let out_file = dir.path().join(format!("{i}.cose"));
        let entry_file = write(dir.path(), &format!("{i}.entry"), entry.as_bytes());
        let select: Vec<String> = if i % 2 == 0 {
            vec![i.to_string()]
        } else {
            vec!["--entry".into(), entry_file.display().to_string()]
        };
        let mut args: Vec<&str> = vec!["prove", "--format", "cose", "--receipt-key"];
        args.push(pin.to_str().unwrap());
        args.extend(["--out", out_file.to_str().unwrap()]);
        args.extend(select.iter().map(String::as_str));
        let out = merklog(&args);
        assert!(out.status.success(), "{out:?}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.contains("COSE receipt verified with the pinned"),
            "{stdout}"
        );

        let (ok, text) = python(&[&"verify", &key_set_file, &entry_file, &out_file]);
        assert!(ok, "{text}");
        assert!(text.starts_with(&format!("ok 7 {i} ")), "{text}");
        // The same receipt for a changed entry fails.
        let changed = write(dir.path(), "changed.entry", format!("{entry}!").as_bytes());
        let (ok, text) = python(&[&"verify", &key_set_file, &changed, &out_file]);
        assert!(!ok, "a changed entry verified: {text}");
        assert!(text.starts_with("fail "), "{text}");
        // A flipped signature bit fails too (the signature is really checked).
        let mut tampered = std::fs::read(&out_file).unwrap();
        *tampered.last_mut().unwrap() ^= 1;
        let tampered_file = write(dir.path(), "tampered.cose", &tampered);
        let (ok, text) = python(&[&"verify", &key_set_file, &entry_file, &tampered_file]);
        assert!(!ok && text.starts_with("fail signature"), "{text}");
        // And the Rust verifier agrees on both.
        let receipt = Receipt::parse(&std::fs::read(&out_file).unwrap()).unwrap();
        receipt.verify_entry(entry.as_bytes(), &keys[0]).unwrap();
        assert!(receipt.verify_entry(b"other", &keys[0]).is_err());
    }

    // One signature served all seven receipts at size 7 (and the key set's fetch signs
    // nothing).
    let (_, metrics) = get(&format!("http://{}/metrics", daemon.addrs.metrics)).await;
    let metrics = String::from_utf8(metrics).unwrap();
    let signed = |cached: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("merklog_receipt_signatures_total")
                    && l.contains(&format!("cached=\"{cached}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .map(|n| n.parse::<u64>().unwrap())
    };
    assert_eq!(signed("false"), Some(1), "{metrics}");
    assert_eq!(signed("true"), Some(6), "{metrics}");

    // A wrong pinned key is refused.
    let other = merklog_receipt::SecretKey::from_bytes(merklog_receipt::Algorithm::EdDsa, &[1; 32])
        .unwrap();
    let other_text = merklog_receipt::ReceiptSigner::public_key(&other).to_text();
    let out = merklog(&[
        "prove",
        "--format",
        "cose",
        "--receipt-key",
        &other_text,
        "0",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not the pinned receipt key"),
        "{out:?}"
    );

    // GetReceipt: by leaf hash at the latest size, and at an older checkpointed size.
    let mut rpc = connect(&daemon.grpc_url()).await.unwrap();
    let latest = rpc
        .get_receipt(v1::GetReceiptRequest {
            leaf: Some(v1::get_receipt_request::Leaf::LeafHash(
                hash_leaf(entries[3].as_bytes()).as_bytes().to_vec().into(),
            )),
            tree_size: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((latest.index, latest.tree_size), (3, 7));
    assert_eq!(
        PublicKey::from_cose_key_bytes(&latest.receipt_key).unwrap(),
        keys[0]
    );
    let verified = Receipt::parse(&latest.receipt)
        .unwrap()
        .verify_entry(entries[3].as_bytes(), &keys[0])
        .unwrap();
    assert_eq!(
        verified.root.as_bytes().as_slice(),
        &latest.checkpoint.unwrap().root[..]
    );
    // Each append was its own round, so size 4 has a checkpoint.
    let older = rpc
        .get_receipt(v1::GetReceiptRequest {
            leaf: Some(v1::get_receipt_request::Leaf::Index(2)),
            tree_size: Some(4),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(older.tree_size, 4);
    let receipt_file = write(dir.path(), "older.cose", &older.receipt);
    let entry_file = write(dir.path(), "older.entry", entries[2].as_bytes());
    let (ok, text) = python(&[&"verify", &key_set_file, &entry_file, &receipt_file]);
    assert!(ok && text.starts_with("ok 4 2 "), "{text}");

    // Errors: an index beyond the tree, an unknown hash, a missing leaf.
    for (request, code) in [
        (
            v1::GetReceiptRequest {
                leaf: Some(v1::get_receipt_request::Leaf::Index(7)),
                tree_size: None,
            },
            tonic::Code::OutOfRange,
        ),
        (
            v1::GetReceiptRequest {
                leaf: Some(v1::get_receipt_request::Leaf::LeafHash(
                    hash_leaf(b"never appended").as_bytes().to_vec().into(),
                )),
                tree_size: None,
            },
            tonic::Code::NotFound,
        ),
        (
            v1::GetReceiptRequest {
                leaf: None,
                tree_size: None,
            },
            tonic::Code::InvalidArgument,
        ),
        (
            v1::GetReceiptRequest {
                leaf: Some(v1::get_receipt_request::Leaf::Index(0)),
                tree_size: Some(9),
            },
            tonic::Code::OutOfRange,
        ),
    ] {
        let status = rpc.get_receipt(request).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
    }
    daemon.terminate();
}

/// Writes a merklogd config registering `issuer` with `key`.
fn issuer_config(dir: &Path, issuer: &str, key: &str) -> PathBuf {
    write(
        dir,
        "merklogd.toml",
        format!("[[scitt-issuer]]\nname = \"{issuer}\"\nkey = \"{key}\"\n").as_bytes(),
    )
}

async fn post(url: &str, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(url)
        .header("content-type", content_type)
        .body(body)
        .timeout(Duration::from_secs(20))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scitt_statements_register_over_scrapi_with_es256_receipts() {
    if !pycose_available() {
        return;
    }
    let _ = merklogd_binary();
    let dir = tempfile::tempdir().unwrap();
    let issuer_key = dir.path().join("issuer.cosekey");
    let (ok, public) = python(&[&"keygen", &"es256", &issuer_key]);
    assert!(ok, "{public}");
    let issuer = "https://issuer.example/build";
    let config = issuer_config(dir.path(), issuer, public.trim());
    let data = dir.path().join("data");
    let daemon = Daemon::start(
        &data,
        &[
            "--config",
            config.to_str().unwrap(),
            "--receipt-algorithm",
            "es256",
        ],
    );
    let base = format!("http://{}", daemon.addrs.http);
    let (_, key_set) = get(&format!("{base}/.well-known/scitt-keys")).await;
    let receipt_key = PublicKey::decode_key_set(&key_set).unwrap().remove(0);
    assert_eq!(receipt_key.algorithm(), merklog_receipt::Algorithm::Es256);
    let key_set_file = write(dir.path(), "keys.cbor", &key_set);

    let mut registered = Vec::new();
    for n in 0..3 {
        let statement_file = dir.path().join(format!("statement-{n}.cose"));
        let (ok, text) = python(&[
            &"sign",
            &issuer_key,
            &issuer,
            &format!("pkg:example/app@1.{n}"),
            &format!("release {n}"),
            &statement_file,
        ]);
        assert!(ok, "{text}");
        let statement = std::fs::read(&statement_file).unwrap();
        let response = post(
            &format!("{base}/entries"),
            "application/cose",
            statement.clone(),
        )
        .await;
        assert_eq!(response.status(), 201, "{response:?}");
        assert_eq!(response.headers()["content-type"], "application/cose");
        let location = response.headers()["location"].to_str().unwrap().to_owned();
        assert_eq!(location, format!("/entries/{}", hash_leaf(&statement)));
        let receipt = response.bytes().await.unwrap().to_vec();
        // Rust: the leaf is the exact statement bytes.
        let verified = Receipt::parse(&receipt)
            .unwrap()
            .verify_entry(&statement, &receipt_key)
            .unwrap();
        assert_eq!(verified.leaf_index.0, n);
        // Python: pycose, root recomputed from the proof.
        let receipt_file = write(dir.path(), &format!("receipt-{n}.cose"), &receipt);
        let (ok, text) = python(&[&"verify", &key_set_file, &statement_file, &receipt_file]);
        assert!(ok, "{text}");
        assert!(text.starts_with(&format!("ok {} {n} ", n + 1)), "{text}");
        registered.push((statement_file, statement));
    }
    // GET /entries/{id}, by leaf hash and by index, at the latest size.
    for (id, n) in [
        (hash_leaf(&registered[0].1).to_string(), 0usize),
        ("1".to_owned(), 1),
    ] {
        let (status, receipt) = get(&format!("{base}/entries/{id}")).await;
        assert_eq!(status, 200);
        let verified = Receipt::parse(&receipt)
            .unwrap()
            .verify_entry(&registered[n].1, &receipt_key)
            .unwrap();
        assert_eq!(verified.tree_size.0, 3);
        let receipt_file = write(dir.path(), "got.cose", &receipt);
        let (ok, text) = python(&[&"verify", &key_set_file, &registered[n].0, &receipt_file]);
        assert!(ok && text.starts_with(&format!("ok 3 {n} ")), "{text}");
    }
    let (status, body) = get(&format!("{base}/entries/{}", hash_leaf(b"nothing"))).await;
    assert_eq!(status, 404);
    assert!(parse_problem_details(&body).is_some());
    let (status, _) = get(&format!("{base}/entries/not-an-id")).await;
    assert_eq!(status, 400);

    // Refusals: problem details, and the log does not grow.
    let stranger_key = dir.path().join("stranger.cosekey");
    let (ok, text) = python(&[&"keygen", &"ed25519", &stranger_key]);
    assert!(ok, "{text}");
    let cases: Vec<(&str, PathBuf, &str, &str)> = vec![
        (
            "unknown issuer",
            stranger_key.clone(),
            "https://stranger.example",
            "Unknown issuer",
        ),
        // The registered issuer's name with someone else's key.
        (
            "forged issuer",
            stranger_key.clone(),
            issuer,
            "Invalid signature",
        ),
    ];
    let mut rpc = connect(&daemon.grpc_url()).await.unwrap();
    for (what, key, iss, title) in cases {
        let file = dir.path().join(format!("{}.cose", what.replace(' ', "-")));
        let (ok, text) = python(&[&"sign", &key, &iss, &"pkg:x", &"evil", &file]);
        assert!(ok, "{text}");
        let statement = std::fs::read(&file).unwrap();
        let response = post(
            &format!("{base}/entries"),
            "application/cose",
            statement.clone(),
        )
        .await;
        assert_eq!(response.status(), 400, "{what}");
        assert_eq!(
            response.headers()["content-type"],
            "application/concise-problem-details+cbor",
            "{what}"
        );
        let (got_title, detail) = parse_problem_details(&response.bytes().await.unwrap()).unwrap();
        assert_eq!(got_title, title, "{what}: {detail}");
        let status = rpc
            .get_inclusion_proof(v1::GetInclusionProofRequest {
                leaf: Some(v1::get_inclusion_proof_request::Leaf::LeafHash(
                    hash_leaf(&statement).as_bytes().to_vec().into(),
                )),
                tree_size: None,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::NotFound, "{what}");
    }
    // Not COSE at all, and the wrong media type.
    let response = post(
        &format!("{base}/entries"),
        "application/cose",
        b"not cbor".to_vec(),
    )
    .await;
    assert_eq!(response.status(), 400);
    let response = post(
        &format!("{base}/entries"),
        "text/plain",
        registered[0].1.clone(),
    )
    .await;
    assert_eq!(response.status(), 415);
    let checkpoint = rpc
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(checkpoint.size, 3, "a refused statement was written");
    daemon.terminate();
}

/// With a witness policy whose witness is down, a registration outlasts the short
/// wait: 303 to `/entries/<leaf hash>` with Retry-After; that URL is 404 (with
/// Retry-After) until the witness comes up and cosigns, then it serves the receipt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_waiting_for_witnesses_answers_see_other() {
    use merklog_e2e::witness_binary;
    use merklog_e2e::witnesses::{WitnessProcess, WitnessSetup, policy_all_of, prepare_log_key};
    use merklog_receipt::{Algorithm, ReceiptSigner as _, SecretKey, sign_statement};

    let _ = merklogd_binary();
    let _ = witness_binary();
    const ORIGIN: &str = "scitt-wait.example/log";
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log-data");
    let log_vkey = prepare_log_key(&data, ORIGIN);
    let setup = WitnessSetup::create(dir.path(), "w1", "w1.example/witness", ORIGIN, &log_vkey);
    // A free port nobody listens on yet: the witness starts there later.
    let witness_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let policy = write(
        dir.path(),
        "policy.txt",
        policy_all_of(&log_vkey, &[(&setup, format!("http://{witness_addr}"))]).as_bytes(),
    );
    let issuer = SecretKey::from_bytes(Algorithm::EdDsa, &[42; 32]).unwrap();
    let config = issuer_config(
        dir.path(),
        "https://issuer.example",
        &issuer.public_key().to_text(),
    );
    let daemon = Daemon::start(
        &data,
        &[
            "--origin",
            ORIGIN,
            "--config",
            config.to_str().unwrap(),
            "--policy",
            policy.to_str().unwrap(),
            "--witness-timeout",
            "500ms",
            "--witness-resend-interval",
            "300ms",
            "--append-timeout",
            "30s",
        ],
    );
    let base = format!("http://{}", daemon.addrs.http);
    let statement = sign_statement(
        &issuer,
        "https://issuer.example",
        "pkg:example/waiting",
        "text/plain",
        b"waiting for a witness",
    )
    .unwrap();
    let leaf = hash_leaf(&statement);
    let response = post(
        &format!("{base}/entries"),
        "application/cose",
        statement.clone(),
    )
    .await;
    assert_eq!(response.status(), 303, "{response:?}");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(location, format!("/entries/{leaf}"));
    assert!(response.headers().contains_key("retry-after"));
    let pending = reqwest::Client::new()
        .get(format!("{base}{location}"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(pending.status(), 404);
    assert!(pending.headers().contains_key("retry-after"));

    // The witness comes up; the log's resends reach the quorum and publish.
    let _witness = WitnessProcess::start(&setup, witness_addr);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let receipt = loop {
        let (status, body) = get(&format!("{base}{location}")).await;
        if status == 200 {
            break body;
        }
        assert_eq!(status, 404, "{}", String::from_utf8_lossy(&body));
        assert!(
            std::time::Instant::now() < deadline,
            "the receipt never appeared at {location}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let (_, key_set) = get(&format!("{base}/.well-known/scitt-keys")).await;
    let key = PublicKey::decode_key_set(&key_set).unwrap().remove(0);
    let verified = Receipt::parse(&receipt)
        .unwrap()
        .verify_entry(&statement, &key)
        .unwrap();
    assert_eq!(verified.leaf_index.0, 0);
    daemon.terminate();
}

/// Creates a token of `principal` with `role` in the tokens file.
fn create_token(tokens: &Path, principal: &str, role: &str) -> String {
    let out = Command::new(merklogd_binary())
        .env_clear()
        .args(["token", "create", "--principal", principal, "--role", role])
        .arg("--tokens-file")
        .arg(tokens)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// With authentication on, `POST /entries` needs the append role: no credential is
/// 401, a reader's token 403 (both as problem details, nothing written), a writer's
/// token 201.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_needs_the_append_role() {
    use merklog_receipt::{Algorithm, ReceiptSigner as _, SecretKey, sign_statement};

    let _ = merklogd_binary();
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let reader = create_token(&tokens, "auditor", "read");
    let writer = create_token(&tokens, "builder", "append");
    let issuer = SecretKey::from_bytes(Algorithm::Es256, &[5; 32]).unwrap();
    let config = issuer_config(dir.path(), "issuer.example", &issuer.public_key().to_text());
    let daemon = Daemon::start(
        &dir.path().join("data"),
        &[
            "--config",
            config.to_str().unwrap(),
            "--tokens-file",
            tokens.to_str().unwrap(),
        ],
    );
    let url = format!("http://{}/entries", daemon.addrs.http);
    let statement =
        sign_statement(&issuer, "issuer.example", "s", "text/plain", b"authorized").unwrap();
    let send = |token: Option<&str>| {
        let mut request = reqwest::Client::new()
            .post(&url)
            .header("content-type", "application/cose")
            .body(statement.clone())
            .timeout(Duration::from_secs(20));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    for (token, status) in [(None, 401), (Some(reader.as_str()), 403)] {
        let response = send(token).await.unwrap();
        assert_eq!(response.status(), status);
        let body = response.bytes().await.unwrap();
        let (title, _) = parse_problem_details(&body).unwrap();
        assert_eq!(title, "Not allowed");
    }
    let mut rpc = connect(&daemon.grpc_url()).await.unwrap();
    let size = |rpc: &mut merklog_proto::v1::log_client::LogClient<tonic::transport::Channel>| {
        let mut rpc = rpc.clone();
        async move {
            rpc.get_checkpoint(v1::GetCheckpointRequest {})
                .await
                .unwrap()
                .into_inner()
                .size
        }
    };
    assert_eq!(size(&mut rpc).await, 0);
    let response = send(Some(&writer)).await.unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(size(&mut rpc).await, 1);
    daemon.terminate();
}
