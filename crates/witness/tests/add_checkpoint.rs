//! The tlog-witness status-code matrix, driven over HTTP against an in-process witness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use common::{TestLog, check_cosignature, start_witness};
use merklog_merkle::empty_root;
use merklog_note::{CosignatureVerifier, Note, Verifiers, parse_verifier_key};
use merklog_witness::{TLOG_SIZE_CONTENT_TYPE, encode_add_checkpoint};

const TEXT: &str = "text/plain; charset=utf-8";

#[tokio::test]
async fn status_code_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new("example.com/matrix");
    log.grow_to(20);
    let stranger = {
        let mut l = TestLog::new("example.com/unknown");
        l.grow_to(3);
        l
    };
    let witness = start_witness(dir.path(), &[&log]).await;
    let verifier = witness.verifier();

    // ---- 400: malformed requests ----
    let cp4 = log.checkpoint(4);
    let mut bad_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", vec![]),
        ("no old line", cp4.clone()),
        ("leading zero", [b"old 00\n\n".as_slice(), &cp4].concat()),
        ("trailing space", [b"old 0 \n\n".as_slice(), &cp4].concat()),
        ("CRLF", [b"old 0\r\n\r\n".as_slice(), &cp4].concat()),
        (
            "bad proof line",
            [b"old 0\nnot-base64\n\n".as_slice(), &cp4].concat(),
        ),
        ("no checkpoint", b"old 0\n\n".to_vec()),
        ("checkpoint not a note", b"old 0\n\nhello\n".to_vec()),
        (
            "64 proof lines",
            encode_add_checkpoint(2, &[[9u8; 32].into(); 64], &cp4),
        ),
    ];
    // A note whose text is not a checkpoint (size line missing), validly signed.
    let not_a_checkpoint = Note::sign("example.com/matrix\n", &[&log.signer])
        .unwrap()
        .to_bytes();
    bad_bodies.push((
        "note is not a checkpoint",
        encode_add_checkpoint(0, &[], &not_a_checkpoint),
    ));
    // Trailing garbage after the signature block.
    let mut trailing = log.body(0, 4);
    trailing.extend_from_slice(b"garbage");
    bad_bodies.push(("trailing garbage", trailing));
    for (what, body) in bad_bodies {
        let answer = witness.add(body).await;
        assert_eq!(answer.status, 400, "{what}: {}", answer.text());
        assert_eq!(answer.content_type, TEXT, "{what}");
    }
    // Old size larger than the checkpoint size.
    let answer = witness
        .add(encode_add_checkpoint(5, &[], &log.checkpoint(4)))
        .await;
    assert_eq!(answer.status, 400, "{}", answer.text());

    // ---- 413: over the body cap, refused before buffering everything ----
    let huge = vec![b'a'; (1 << 20) + 1];
    assert_eq!(witness.add(huge).await.status, 413);

    // ---- 404: unknown origin (validly signed by its own key) ----
    let answer = witness.add(stranger.body(0, 3)).await;
    assert_eq!(answer.status, 404, "{}", answer.text());

    // ---- 403: no trusted signature ----
    let impostor = TestLog::new("example.com/matrix"); // same name, other key
    let mut impostor = impostor;
    impostor.grow_to(4);
    let answer = witness.add(impostor.body(0, 4)).await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    // 403: a signature line from the trusted (name, key ID) that does not verify.
    let mut note = String::from_utf8(log.checkpoint(4)).unwrap();
    let sig_start = note.rfind(' ').unwrap() + 1;
    let mut raw = STANDARD.decode(note[sig_start..].trim_end()).unwrap();
    raw[10] ^= 1; // inside the signature, key ID intact
    note.replace_range(sig_start.., &format!("{}\n", STANDARD.encode(&raw)));
    let answer = witness
        .add(encode_add_checkpoint(0, &[], note.as_bytes()))
        .await;
    assert_eq!(answer.status, 403, "{}", answer.text());
    // The same corrupted line next to a valid trusted signature still fails (main's rule).
    let mut both = log.checkpoint(4);
    let bad_line = note.lines().last().unwrap().to_owned();
    both.extend_from_slice(format!("{bad_line}\n").as_bytes());
    let answer = witness.add(encode_add_checkpoint(0, &[], &both)).await;
    assert_eq!(answer.status, 403, "{}", answer.text());

    // ---- 422: size-0 checkpoint with a non-empty-tree root ----
    let answer = witness
        .add(encode_add_checkpoint(
            0,
            &[],
            &log.checkpoint_with_root(0, [7u8; 32].into()),
        ))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text());

    // ---- 422: non-empty proof with old 0 (handled before any verification) ----
    let answer = witness
        .add(encode_add_checkpoint(
            0,
            &log.proof(2, 4),
            &log.checkpoint(4),
        ))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(answer.text().contains("old size 0"), "{}", answer.text());

    // Nothing so far changed the state.
    assert_eq!(witness.get_checkpoint(&log.origin).await.status, 404);

    // ---- 200: a size-0 checkpoint with the empty root ----
    let cp0 = log.checkpoint(0);
    assert_eq!(log.root(0), empty_root());
    let answer = witness.add(encode_add_checkpoint(0, &[], &cp0)).await;
    check_cosignature(&verifier, &cp0, &answer);
    assert_eq!(answer.content_type, TEXT);

    // ---- 200: old 0 -> 4 ----
    let answer = witness.add(log.body(0, 4)).await;
    check_cosignature(&verifier, &cp4, &answer);

    // ---- 409: old size differs from the stored size (4) ----
    for old in [0u64, 3, 5] {
        let body = encode_add_checkpoint(old, &log.proof(old, 8), &log.checkpoint(8));
        let answer = witness.add(body).await;
        assert_eq!(answer.status, 409, "old {old}: {}", answer.text());
        assert_eq!(answer.content_type, TLOG_SIZE_CONTENT_TYPE);
        assert_eq!(answer.body, b"4\n");
    }

    // ---- replays ----
    // The exact request that advanced the log, sent again: 409 with the stored size.
    let answer = witness.add(log.body(0, 4)).await;
    assert_eq!((answer.status, answer.body.as_slice()), (409, &b"4\n"[..]));
    // The stored checkpoint at the stored size: cosigned again.
    let answer = witness.add(log.body(4, 4)).await;
    check_cosignature(&verifier, &cp4, &answer);

    // ---- 422: consistency proof does not verify ----
    let mut wrong = log.proof(4, 8);
    let mut bytes = *wrong[0].as_bytes();
    bytes[0] ^= 1;
    wrong[0] = bytes.into();
    let answer = witness
        .add(encode_add_checkpoint(4, &wrong, &log.checkpoint(8)))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    // Wrong proof length (an extra hash).
    let mut long = log.proof(4, 8);
    long.push([0u8; 32].into());
    let answer = witness
        .add(encode_add_checkpoint(4, &long, &log.checkpoint(8)))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    // A proof for other sizes.
    let answer = witness
        .add(encode_add_checkpoint(
            4,
            &log.proof(3, 8),
            &log.checkpoint(8),
        ))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    // A non-empty proof at the stored size with the stored root.
    let answer = witness
        .add(encode_add_checkpoint(4, &[[1u8; 32].into()], &cp4))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert_eq!(witness.witness.is_frozen(&log.origin), Some(false));

    // ---- 200: 4 -> 8 with a good proof; then the monitoring API serves it ----
    let cp8 = log.checkpoint(8);
    let answer = witness.add(log.body(4, 8)).await;
    let time = check_cosignature(&verifier, &cp8, &answer);
    let latest = witness.get_checkpoint(&log.origin).await;
    assert_eq!(latest.status, 200);
    check_monitoring_checkpoint(&latest.body, &log, &verifier, 8, time);

    // ---- 422: same size, different root (a fork: the last check of the matrix,
    // since it freezes the log) ----
    let mut other = log.fork("other");
    other.grow_to(8);
    let answer = witness
        .add(encode_add_checkpoint(8, &[], &other.checkpoint(8)))
        .await;
    assert_eq!(answer.status, 422, "{}", answer.text());
    assert!(answer.text().contains("fork"), "{}", answer.text());

    // Metrics counted the answers.
    let metrics = witness.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    let text = metrics.text();
    assert!(
        text.contains("merklog_witness_add_checkpoint_requests_total{status=\"413\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("merklog_witness_cosignatures_total 4\n"),
        "{text}"
    );
    assert!(
        text.contains("merklog_witness_forks_detected_total 1\n"),
        "{text}"
    );
    assert!(
        text.contains("merklog_witness_bad_consistency_proofs_total 4\n"),
        "{text}"
    );

    // Monitoring API: unknown or non-canonical hashes are 404.
    assert_eq!(witness.get_checkpoint(&stranger.origin).await.status, 404);
    let upper = merklog_witness::origin_hash_hex(&log.origin).to_uppercase();
    assert_eq!(
        witness.get(&format!("/{upper}/checkpoint")).await.status,
        404
    );
    witness.stop().await;
}

/// The monitoring checkpoint carries the log's signature and the witness cosignature
/// that add-checkpoint returned (same timestamp).
fn check_monitoring_checkpoint(
    bytes: &[u8],
    log: &TestLog,
    witness: &CosignatureVerifier,
    size: u64,
    time: u64,
) {
    let note = Note::parse(bytes).unwrap();
    let cp = merklog_note::Checkpoint::from_text(note.text()).unwrap();
    assert_eq!((cp.origin.as_str(), cp.size), (log.origin.as_str(), size));
    assert_eq!(cp.root, log.root(size));
    assert_eq!(note.signatures().len(), 2);
    let mut log_verifiers = Verifiers::new();
    log_verifiers
        .add(parse_verifier_key(&log.vkey).unwrap())
        .unwrap();
    note.verify(&log_verifiers).unwrap();
    let cosig = &note.signatures()[1];
    assert_eq!(
        witness.verify_cosignature(note.text(), cosig).unwrap(),
        time
    );
}

#[tokio::test]
async fn concurrent_requests_at_one_old_size_advance_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new("example.com/race");
    log.grow_to(40);
    let witness = start_witness(dir.path(), &[&log]).await;
    let answer = witness.add(log.body(0, 10)).await;
    check_cosignature(&witness.verifier(), &log.checkpoint(10), &answer);

    // Sixteen requests from old size 10 to sizes 11..=26, all valid on their own.
    let witness = std::sync::Arc::new(witness);
    let mut tasks = Vec::new();
    for new in 11..=26u64 {
        let body = log.body(10, new);
        let w = witness.clone();
        tasks.push(tokio::spawn(async move { (new, w.add(body).await) }));
    }
    let mut winners = Vec::new();
    let mut conflicts = Vec::new();
    for task in tasks {
        let (new, answer) = task.await.unwrap();
        match answer.status {
            200 => winners.push(new),
            409 => conflicts.push(answer.body),
            other => panic!("unexpected {other}: {}", answer.text()),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one request advances the log");
    let winner = winners[0];
    let expected = format!("{winner}\n").into_bytes();
    assert_eq!(conflicts.len(), 15);
    assert!(conflicts.iter().all(|b| *b == expected));

    // The stored state is the winner's, and it moves on from there.
    let latest = witness.get_checkpoint(&log.origin).await;
    let cp =
        merklog_note::Checkpoint::from_text(Note::parse(&latest.body).unwrap().text()).unwrap();
    assert_eq!(cp.size, winner);
    let answer = witness.add(log.body(winner, 40)).await;
    check_cosignature(&witness.verifier(), &log.checkpoint(40), &answer);

    // The same request sent concurrently many times: one 200, the rest 409.
    let body = log.body(40, 40);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let w = witness.clone();
        let b = body.clone();
        tasks.push(tokio::spawn(async move { w.add(b).await.status }));
    }
    for task in tasks {
        // At the stored size with the stored root, every replay is cosigned.
        assert_eq!(task.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn prefixes_route_both_apis() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new("example.com/prefixed");
    log.grow_to(2);
    let mut config = merklog_witness::WitnessConfig::new(dir.path(), vec![log.config()]);
    config.submission_prefix = "/submit".into();
    config.monitoring_prefix = "/monitor/v1".into();
    let witness = common::start_witness_with(config).await;
    let answer = witness.add(log.body(0, 2)).await;
    check_cosignature(&witness.verifier(), &log.checkpoint(2), &answer);
    assert_eq!(witness.get_checkpoint(&log.origin).await.status, 200);
    // The unprefixed paths are not served.
    assert_eq!(witness.get("/add-checkpoint").await.status, 404);
    let hash = merklog_witness::origin_hash_hex(&log.origin);
    assert_eq!(
        witness.get(&format!("/{hash}/checkpoint")).await.status,
        404
    );
    witness.stop().await;
}

#[tokio::test]
async fn storage_failure_is_500_then_503_until_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = TestLog::new("example.com/disk-trouble");
    log.grow_to(6);
    let witness = start_witness(dir.path(), &[&log]).await;
    assert_eq!(witness.add(log.body(0, 3)).await.status, 200);

    // A directory where the temporary state file goes makes the write fail (even as root).
    let log_dir = witness.witness.log_dir(&log.origin).unwrap().to_path_buf();
    let blocker = log_dir.join("checkpoint.tmp");
    std::fs::create_dir(&blocker).unwrap();
    let answer = witness.add(log.body(3, 6)).await;
    assert_eq!(answer.status, 500, "{}", answer.text());
    assert_eq!(
        answer.body, b"internal error\n",
        "no cosignature, no details"
    );
    // Disabled until a restart, even once the disk is fine again.
    std::fs::remove_dir(&blocker).unwrap();
    assert_eq!(witness.add(log.body(3, 6)).await.status, 503);
    witness.stop().await;

    // The stored state is still size 3; after a restart the advance succeeds.
    let witness = start_witness(dir.path(), &[&log]).await;
    let answer = witness.add(log.body(3, 6)).await;
    check_cosignature(&witness.verifier(), &log.checkpoint(6), &answer);
    witness.stop().await;
}
