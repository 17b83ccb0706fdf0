//! Signed sources through `merklog emit`, at the process level: two sources emit
//! at once; one follows two growing input files (one of them rotated on the way)
//! and is killed with SIGKILL twice and restarted on the same spool, the other
//! reads stdin. Afterwards:
//! - every input line is in the log exactly once, as a data event of its source
//!   whose signature verifies;
//! - no sequence number carries two different envelopes;
//! - every number from 0 to the highest is an event or declared unused by a signed
//!   declaration (the crashes left reserved numbers, declared on restart);
//! - `merklog source audit` reports both sources complete, when the log serves
//!   the Sources service.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use merklog_e2e::{Daemon, client_binary, connect, read_all_entries};
use merklog_note::{Ed25519Verifier, Verifier as _, parse_verifier_key};
use merklog_proto::v1;

/// Lines written to each followed file.
const LINES_PER_FILE: usize = 1500;
/// Lines the stdin source emits.
const STDIN_LINES: usize = 2000;
/// Everything must be done well within this.
const DEADLINE: Duration = Duration::from_secs(180);

const SOURCE_A: &str = "agents.example.com/agent-a";
const SOURCE_B: &str = "agents.example.com/agent-b";

/// A child process killed (SIGKILL) when dropped, so a failed test leaves none.
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl Process {
    fn kill(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }

    /// Waits (bounded) for the exit and returns whether it succeeded.
    fn wait(mut self, limit: Duration) -> bool {
        let until = Instant::now() + limit;
        loop {
            if let Some(status) = self.0.try_wait().unwrap() {
                return status.success();
            }
            assert!(
                Instant::now() < until,
                "merklog emit did not finish in time"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

struct Setup {
    dir: PathBuf,
    url: String,
    log_vkey: PathBuf,
}

impl Setup {
    fn client(&self) -> Command {
        let mut command = Command::new(client_binary());
        command
            .env_clear()
            .arg("--server")
            .arg(&self.url)
            .arg("--log-key")
            .arg(&self.log_vkey)
            .arg("--no-state")
            .args(["--timeout", "20s", "--retries", "20"]);
        command
    }

    /// `merklog emit` for a source, output to DIR/<name>.<n>.log.
    fn emit(&self, key: &str, files: &[&Path], extra: &[&str], run: usize) -> Command {
        let log = std::fs::File::create(self.dir.join(format!("{key}.{run}.log"))).unwrap();
        let mut command = self.client();
        command
            .arg("emit")
            .arg("--source-key")
            .arg(self.dir.join(format!("{key}.key")))
            .arg("--spool")
            .arg(self.dir.join(format!("{key}.spool")))
            .args(["--poll", "20ms"])
            .args(extra)
            .args(files)
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        command
    }

    fn output(&self, key: &str, run: usize) -> String {
        std::fs::read_to_string(self.dir.join(format!("{key}.{run}.log"))).unwrap_or_default()
    }
}

/// Appends the lines to the files in small bursts, rotating the first file
/// (renamed to `.1`, a new file created at its path) halfway.
fn write_inputs(files: [PathBuf; 2], lines: [Vec<String>; 2]) {
    let mut open: Vec<std::fs::File> = files
        .iter()
        .map(|f| std::fs::OpenOptions::new().append(true).open(f).unwrap())
        .collect();
    for (i, burst) in (0..LINES_PER_FILE).step_by(25).enumerate() {
        if burst == LINES_PER_FILE / 2 {
            std::fs::rename(&files[0], files[0].with_extension("log.1")).unwrap();
            open[0] = std::fs::File::create(&files[0]).unwrap();
        }
        for (file, lines) in open.iter_mut().zip(&lines) {
            let mut text = String::new();
            for line in &lines[burst..(burst + 25).min(LINES_PER_FILE)] {
                text.push_str(line);
                text.push('\n');
            }
            file.write_all(text.as_bytes()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(if i % 4 == 0 { 80 } else { 25 }));
    }
}

/// Waits until `check` holds, or fails after `limit`.
fn wait_for(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !check() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The log's entries.
fn log_entries(url: &str) -> Vec<bytes::Bytes> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut client = connect(url).await.unwrap();
        let checkpoint = client
            .get_checkpoint(v1::GetCheckpointRequest {})
            .await
            .unwrap()
            .into_inner();
        read_all_entries(&mut client, checkpoint.size)
            .await
            .unwrap()
    })
}

/// Whether the log serves the Sources service.
fn serves_sources(url: &str) -> bool {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let channel = tonic::transport::Channel::from_shared(url.to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut sources = v1::sources_client::SourcesClient::new(channel);
        match sources.list_sources(v1::ListSourcesRequest {}).await {
            Ok(_) => true,
            Err(status) if status.code() == tonic::Code::Unimplemented => false,
            Err(status) => panic!("ListSources: {status}"),
        }
    })
}

const HEARTBEAT: &str = "application/vnd.merklog.heartbeat";
const UNUSED: &str = "application/vnd.merklog.unused-sequence";

/// A signed event envelope, read as docs/event-format.md lays it out (this test
/// does not use the merklog-event crate: the envelopes `merklog emit` wrote are
/// checked against the document).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Envelope {
    bytes: Vec<u8>,
    source: String,
    key_id: u32,
    sequence: u64,
    media_type: String,
    payload: Vec<u8>,
}

fn parse_envelope(bytes: &[u8]) -> Option<Envelope> {
    fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Option<&'a [u8]> {
        let field = bytes.get(*at..*at + n)?;
        *at += n;
        Some(field)
    }
    let mut at = 0;
    if take(bytes, &mut at, 5)? != b"MLEV\x01" {
        return None;
    }
    let source_len = take(bytes, &mut at, 1)?[0] as usize;
    let source = String::from_utf8(take(bytes, &mut at, source_len)?.to_vec()).ok()?;
    let key_id = u32::from_be_bytes(take(bytes, &mut at, 4)?.try_into().ok()?);
    let sequence = u64::from_be_bytes(take(bytes, &mut at, 8)?.try_into().ok()?);
    let _timestamp = take(bytes, &mut at, 8)?;
    let media_len = take(bytes, &mut at, 1)?[0] as usize;
    let media_type = String::from_utf8(take(bytes, &mut at, media_len)?.to_vec()).ok()?;
    let payload_len = u32::from_be_bytes(take(bytes, &mut at, 4)?.try_into().ok()?) as usize;
    let payload = take(bytes, &mut at, payload_len)?.to_vec();
    take(bytes, &mut at, 64)?;
    (at == bytes.len()).then(|| Envelope {
        bytes: bytes.to_vec(),
        source,
        key_id,
        sequence,
        media_type,
        payload,
    })
}

/// The document's signature check: Ed25519 over the context string, a zero
/// byte and the envelope up to the signature.
fn signature_verifies(envelope: &Envelope, key: &Ed25519Verifier) -> bool {
    let split = envelope.bytes.len() - 64;
    let mut message = b"merklog event signature v1\0".to_vec();
    message.extend_from_slice(&envelope.bytes[..split]);
    envelope.source == key.name()
        && envelope.key_id == key.key_id()
        && key.verify(&message, &envelope.bytes[split..])
}

/// What the log holds for one source: number -> envelope, all verified.
struct Logged {
    events: BTreeMap<u64, Envelope>,
    declared_unused: Vec<(u64, u64)>,
}

fn logged(entries: &[bytes::Bytes], key: &Ed25519Verifier) -> Logged {
    let mut events: BTreeMap<u64, Envelope> = BTreeMap::new();
    let mut declared_unused = Vec::new();
    for entry in entries {
        let Some(event) = parse_envelope(entry) else {
            continue;
        };
        if event.source != key.name() {
            continue;
        }
        assert!(signature_verifies(&event, key), "{event:?}");
        if event.media_type == UNUSED {
            let first = u64::from_be_bytes(event.payload[..8].try_into().unwrap());
            let last = u64::from_be_bytes(event.payload[8..].try_into().unwrap());
            assert!(first <= last && !(first..=last).contains(&event.sequence));
            declared_unused.push((first, last));
        }
        if event.media_type == HEARTBEAT {
            assert!(event.payload.is_empty());
        }
        if let Some(other) = events.get(&event.sequence) {
            panic!(
                "number {} of {} carries two envelopes: {other:?} and {event:?}",
                event.sequence,
                key.name()
            );
        }
        events.insert(event.sequence, event);
    }
    Logged {
        events,
        declared_unused,
    }
}

/// Every number 0..=highest is an event or declared unused.
fn assert_complete(logged: &Logged, name: &str) {
    let highest = *logged.events.keys().last().unwrap();
    for n in 0..=highest {
        let covered = logged.events.contains_key(&n)
            || logged
                .declared_unused
                .iter()
                .any(|(first, last)| (*first..=*last).contains(&n));
        assert!(
            covered,
            "{name}: number {n} is neither logged nor declared unused"
        );
    }
}

/// Each expected line is the payload of exactly one data event, and no data event
/// carries anything else.
fn assert_lines_once(logged: &Logged, expected: &[String], name: &str) {
    let mut seen: HashMap<&[u8], usize> = HashMap::new();
    for event in logged.events.values() {
        if event.media_type != UNUSED && event.media_type != HEARTBEAT {
            assert_eq!(event.media_type, "text/plain");
            *seen.entry(&event.payload).or_default() += 1;
        }
    }
    for line in expected {
        let count = seen.remove(line.as_bytes()).unwrap_or(0);
        assert_eq!(
            count, 1,
            "{name}: line {line:?} is in the log {count} times"
        );
    }
    assert!(
        seen.is_empty(),
        "{name}: unexpected events: {:?}",
        seen.keys().take(5).collect::<Vec<_>>()
    );
}

#[test]
fn two_sources_emit_through_two_sigkills_and_every_line_is_logged_once() {
    // Found (or built) before the clock starts.
    client_binary();
    merklog_e2e::merklogd_binary();
    let started = Instant::now();
    let (mut rng, seed) = merklog_testkit::Rng::from_env_or_clock();
    println!("seed {seed} (set MERKLOG_TEST_SEED to repeat)");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let daemon = Daemon::start(
        &data_dir,
        &["--origin", "sources.example/log", "--log-level", "warn"],
    );
    let setup = Setup {
        dir: dir.path().to_owned(),
        url: daemon.grpc_url(),
        log_vkey: data_dir.join("log.vkey"),
    };
    let mut keys = HashMap::new();
    for (key, name) in [("a", SOURCE_A), ("b", SOURCE_B)] {
        let out = setup
            .client()
            .args([
                "--json", "source", "key", "generate", "--name", name, "--out",
            ])
            .arg(dir.path().join(format!("{key}.key")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let vkey = std::fs::read_to_string(dir.path().join(format!("{key}.vkey"))).unwrap();
        assert_eq!(printed["vkey"].as_str().unwrap(), vkey.trim());
        keys.insert(key, parse_verifier_key(vkey.trim()).unwrap());
    }

    // Source A follows two files that grow while it runs.
    let inputs = [dir.path().join("a1.log"), dir.path().join("a2.log")];
    for input in &inputs {
        std::fs::File::create(input).unwrap();
    }
    let lines_a: [Vec<String>; 2] = [
        (0..LINES_PER_FILE)
            .map(|i| format!("a1 event {i}"))
            .collect(),
        (0..LINES_PER_FILE)
            .map(|i| format!("a2 event {i} {{\"k\": {i}}}"))
            .collect(),
    ];
    let expected_a: Vec<String> = lines_a.iter().flatten().cloned().collect();
    let input_refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let mut a = Process(
        setup
            .emit("a", &input_refs, &["--follow"], 0)
            .spawn()
            .unwrap(),
    );
    let writer = {
        let inputs = inputs.clone();
        let lines = lines_a.clone();
        std::thread::spawn(move || write_inputs(inputs, lines))
    };

    // Source B reads stdin at the same time.
    let expected_b: Vec<String> = (0..STDIN_LINES).map(|i| format!("b says {i}")).collect();
    let mut b_child = setup
        .emit("b", &[], &[], 0)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut b_stdin = b_child.stdin.take().unwrap();
    let b = Process(b_child);
    let b_lines = expected_b.clone();
    let feeder = std::thread::spawn(move || {
        for chunk in b_lines.chunks(100) {
            let text: String = chunk.iter().map(|l| format!("{l}\n")).collect();
            b_stdin.write_all(text.as_bytes()).unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
    });

    // Kill A twice while it works, each time once it has journaled something
    // (so a reservation block is open), and restart it on the same spool.
    let journal = dir.path().join("a.spool").join("journal");
    for run in 1..=2 {
        let size_before = std::fs::metadata(&journal).map_or(0, |m| m.len());
        wait_for(
            "source A to journal events",
            Duration::from_secs(30),
            || std::fs::metadata(&journal).is_ok_and(|m| m.len() > size_before + 2000),
        );
        std::thread::sleep(Duration::from_millis(rng.below(300)));
        a.kill();
        a = Process(
            setup
                .emit("a", &input_refs, &["--follow"], run)
                .spawn()
                .unwrap(),
        );
    }
    writer.join().unwrap();
    feeder.join().unwrap();
    // The last run kills it once more, then a run without --follow reads the
    // rest and exits once everything is acknowledged.
    std::thread::sleep(Duration::from_millis(200));
    a.kill();
    let last = Process(setup.emit("a", &input_refs, &[], 3).spawn().unwrap());
    assert!(
        last.wait(Duration::from_secs(60)),
        "last run of A failed: {}",
        setup.output("a", 3)
    );
    assert!(
        b.wait(Duration::from_secs(60)),
        "source B failed: {}",
        setup.output("b", 0)
    );
    for run in 0..=3 {
        println!("source A, run {run}:\n{}", setup.output("a", run));
    }
    println!("source B:\n{}", setup.output("b", 0));
    for run in 1..=3 {
        let output = setup.output("a", run);
        assert!(
            output.contains("declared unused"),
            "run {run} after a SIGKILL declared nothing unused: {output}"
        );
    }

    let entries = log_entries(&setup.url);
    let a_logged = logged(&entries, &keys["a"]);
    let b_logged = logged(&entries, &keys["b"]);
    assert_lines_once(&a_logged, &expected_a, SOURCE_A);
    assert_lines_once(&b_logged, &expected_b, SOURCE_B);
    assert_complete(&a_logged, SOURCE_A);
    assert_complete(&b_logged, SOURCE_B);
    assert!(
        !a_logged.declared_unused.is_empty(),
        "the SIGKILLs left no declared unused numbers"
    );
    assert!(b_logged.declared_unused.is_empty());

    if serves_sources(&setup.url) {
        for (key, name) in [("a", SOURCE_A), ("b", SOURCE_B)] {
            let out = setup
                .client()
                .args(["--json", "source", "audit", name, "--source-vkey"])
                .arg(dir.path().join(format!("{key}.vkey")))
                .output()
                .unwrap();
            let report: serde_json::Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)));
            assert!(
                out.status.success(),
                "{name}: {report} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(report["complete"], true, "{report}");
            assert_eq!(report["missing"], serde_json::json!([]), "{report}");
        }
    } else {
        println!("the log does not serve the Sources service: audit not run");
    }
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
    drop(daemon);
}
