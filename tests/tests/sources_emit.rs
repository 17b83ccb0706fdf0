//! Signed sources through `merklog emit`, at the process level: two sources emit
//! at once; one follows two growing input files (one of them rotated on the way)
//! and is killed with SIGKILL twice and restarted on the same spool, the other
//! reads stdin. Afterwards:
//! - every input line is in the log exactly once, as a data event of its source
//!   whose signature verifies;
//! - no sequence number carries two different envelopes;
//! - every number from 0 to the highest is an event or declared unused by a signed
//!   declaration (the crashes left reserved numbers, declared on restart);
//! - `merklog source audit` reports both sources complete (the log checks every
//!   event on ingest against its sources registry).
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

/// Generates a source key DIR/<key>.key (and .vkey) with `merklog source key
/// generate`; returns the vkey.
fn generate_key(dir: &Path, key: &str, name: &str) -> String {
    let out = Command::new(client_binary())
        .env_clear()
        .args([
            "--json", "source", "key", "generate", "--name", name, "--out",
        ])
        .arg(dir.join(format!("{key}.key")))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let vkey = std::fs::read_to_string(dir.join(format!("{key}.vkey"))).unwrap();
    assert_eq!(printed["vkey"].as_str().unwrap(), vkey.trim());
    vkey.trim().to_owned()
}

/// Starts merklogd on DIR/data with these sources registered (`*`: any caller,
/// anonymous on this loopback log without authentication, may write for them).
fn start_log(dir: &Path, origin: &str, sources: &[(&str, &str)]) -> (Daemon, Setup) {
    let registry: String = sources
        .iter()
        .map(|(name, vkey)| {
            format!("[[source]]\nname = \"{name}\"\nvkey = \"{vkey}\"\nprincipals = [\"*\"]\n\n")
        })
        .collect();
    let sources_file = dir.join("sources.toml");
    std::fs::write(&sources_file, registry).unwrap();
    let data_dir = dir.join("data");
    let daemon = Daemon::start(
        &data_dir,
        &[
            "--origin",
            origin,
            "--log-level",
            "warn",
            "--sources-file",
            sources_file.to_str().unwrap(),
        ],
    );
    let setup = Setup {
        dir: dir.to_owned(),
        url: daemon.grpc_url(),
        log_vkey: data_dir.join("log.vkey"),
    };
    (daemon, setup)
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
    let vkey_a = generate_key(dir.path(), "a", SOURCE_A);
    let vkey_b = generate_key(dir.path(), "b", SOURCE_B);
    let mut keys = HashMap::new();
    keys.insert("a", parse_verifier_key(&vkey_a).unwrap());
    keys.insert("b", parse_verifier_key(&vkey_b).unwrap());
    let (daemon, setup) = start_log(
        dir.path(),
        "sources.example/log",
        &[(SOURCE_A, &vkey_a), (SOURCE_B, &vkey_b)],
    );

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

    // The auditor's view, through the log's Sources service.
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
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
    drop(daemon);
}

/// What the fake Sources front tells the auditor.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Lie {
    /// Nothing: the log's events as they are.
    None,
    /// Leaves this number's event out of its page.
    Drop(u64),
    /// Serves this number's event with one payload byte changed.
    Tamper(u64),
    /// Reports an equivocation at this number with a second envelope signed by the
    /// source's key.
    Equivocate(u64, Vec<u8>),
}

/// A Log and Sources service in front of a real merklogd: the Log calls are
/// forwarded, the Sources answers are computed from the log's entries (as a
/// server would, pages of 64 numbers) and then altered by the current [`Lie`].
#[derive(Clone)]
struct Front {
    log: v1::log_client::LogClient<tonic::transport::Channel>,
    source: String,
    vkey: String,
    highest: u64,
    lie: std::sync::Arc<std::sync::Mutex<Lie>>,
}

type Stream<T> =
    std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<T, tonic::Status>> + Send>>;

#[tonic::async_trait]
impl v1::log_server::Log for Front {
    async fn append(
        &self,
        request: tonic::Request<v1::AppendRequest>,
    ) -> Result<tonic::Response<v1::AppendResponse>, tonic::Status> {
        self.log.clone().append(request.into_inner()).await
    }
    type AppendStreamStream = Stream<v1::AppendStreamResponse>;
    async fn append_stream(
        &self,
        _: tonic::Request<tonic::Streaming<v1::AppendStreamRequest>>,
    ) -> Result<tonic::Response<Self::AppendStreamStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in this test"))
    }
    async fn get_checkpoint(
        &self,
        request: tonic::Request<v1::GetCheckpointRequest>,
    ) -> Result<tonic::Response<v1::Checkpoint>, tonic::Status> {
        self.log.clone().get_checkpoint(request.into_inner()).await
    }
    async fn get_inclusion_proof(
        &self,
        request: tonic::Request<v1::GetInclusionProofRequest>,
    ) -> Result<tonic::Response<v1::GetInclusionProofResponse>, tonic::Status> {
        self.log
            .clone()
            .get_inclusion_proof(request.into_inner())
            .await
    }
    async fn get_receipt(
        &self,
        _request: tonic::Request<v1::GetReceiptRequest>,
    ) -> Result<tonic::Response<v1::GetReceiptResponse>, tonic::Status> {
        Err(tonic::Status::unimplemented("the front issues no receipts"))
    }

    async fn get_consistency_proof(
        &self,
        request: tonic::Request<v1::GetConsistencyProofRequest>,
    ) -> Result<tonic::Response<v1::GetConsistencyProofResponse>, tonic::Status> {
        self.log
            .clone()
            .get_consistency_proof(request.into_inner())
            .await
    }
    async fn get_entries(
        &self,
        request: tonic::Request<v1::GetEntriesRequest>,
    ) -> Result<tonic::Response<v1::GetEntriesResponse>, tonic::Status> {
        self.log.clone().get_entries(request.into_inner()).await
    }
    type WatchCheckpointsStream = Stream<v1::Checkpoint>;
    async fn watch_checkpoints(
        &self,
        _: tonic::Request<v1::WatchCheckpointsRequest>,
    ) -> Result<tonic::Response<Self::WatchCheckpointsStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in this test"))
    }
}

#[tonic::async_trait]
impl v1::sources_server::Sources for Front {
    async fn list_sources(
        &self,
        _: tonic::Request<v1::ListSourcesRequest>,
    ) -> Result<tonic::Response<v1::ListSourcesResponse>, tonic::Status> {
        Ok(tonic::Response::new(v1::ListSourcesResponse {
            sources: vec![v1::SourceStatus {
                name: self.source.clone(),
                vkey: self.vkey.clone(),
                has_events: true,
                highest_sequence: self.highest,
                ..v1::SourceStatus::default()
            }],
        }))
    }

    async fn get_source_events(
        &self,
        request: tonic::Request<v1::GetSourceEventsRequest>,
    ) -> Result<tonic::Response<v1::GetSourceEventsResponse>, tonic::Status> {
        let request = request.into_inner();
        let mut log = self.log.clone();
        let checkpoint = log
            .get_checkpoint(v1::GetCheckpointRequest {})
            .await?
            .into_inner();
        let entries = read_all_entries(&mut log, checkpoint.size).await?;
        let last = request.to_sequence.min(request.from_sequence + 63);
        let lie = self.lie.lock().unwrap().clone();
        let mut response = v1::GetSourceEventsResponse {
            next_sequence: (last < request.to_sequence).then_some(last + 1),
            ..v1::GetSourceEventsResponse::default()
        };
        for (index, entry) in entries.iter().enumerate() {
            let Some(event) = parse_envelope(entry) else {
                continue;
            };
            if event.source != request.source {
                continue;
            }
            if event.media_type == UNUSED {
                let first = u64::from_be_bytes(event.payload[..8].try_into().unwrap());
                let end = u64::from_be_bytes(event.payload[8..].try_into().unwrap());
                if end >= request.from_sequence && first <= last {
                    response
                        .declared_unused
                        .push(v1::SequenceRange { first, last: end });
                }
            }
            if event.sequence < request.from_sequence || event.sequence > last {
                continue;
            }
            if lie == Lie::Drop(event.sequence) {
                continue;
            }
            let proof = log
                .get_inclusion_proof(v1::GetInclusionProofRequest {
                    leaf: Some(v1::get_inclusion_proof_request::Leaf::Index(index as u64)),
                    tree_size: Some(checkpoint.size),
                })
                .await?
                .into_inner();
            let mut envelope = entry.to_vec();
            if lie == Lie::Tamper(event.sequence) {
                let at = envelope.len() - 65;
                envelope[at] ^= 1;
            }
            if let Lie::Equivocate(n, other) = &lie
                && *n == event.sequence
            {
                response.equivocations.push(v1::Equivocation {
                    sequence: *n,
                    logged_envelope: entry.clone(),
                    logged_index: index as u64,
                    other_envelope: other.clone().into(),
                    seen_unix_ms: 1,
                });
            }
            response.events.push(v1::SourceEvent {
                sequence: event.sequence,
                index: index as u64,
                envelope: envelope.into(),
                inclusion_proof: proof.proof,
            });
        }
        response.events.sort_by_key(|e| e.sequence);
        response.checkpoint = Some(checkpoint);
        Ok(tonic::Response::new(response))
    }

    type WatchSourcesStream = Stream<v1::SourceStatus>;
    async fn watch_sources(
        &self,
        _: tonic::Request<v1::WatchSourcesRequest>,
    ) -> Result<tonic::Response<Self::WatchSourcesStream>, tonic::Status> {
        Err(tonic::Status::unimplemented("not in this test"))
    }
}

/// A second envelope for the number of `logged`, with another payload, signed
/// with the source's signing key as docs/event-format.md says.
fn forge_other(logged: &Envelope, key_file: &Path) -> Vec<u8> {
    let text = std::fs::read_to_string(key_file).unwrap();
    let signer = merklog_note::parse_signer_key(text.trim()).unwrap();
    let mut body = b"MLEV\x01".to_vec();
    body.push(logged.source.len() as u8);
    body.extend_from_slice(logged.source.as_bytes());
    body.extend_from_slice(&logged.key_id.to_be_bytes());
    body.extend_from_slice(&logged.sequence.to_be_bytes());
    body.extend_from_slice(&1u64.to_be_bytes());
    body.push(logged.media_type.len() as u8);
    body.extend_from_slice(logged.media_type.as_bytes());
    let payload = b"something else";
    body.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    body.extend_from_slice(payload);
    let mut message = b"merklog event signature v1\0".to_vec();
    message.extend_from_slice(&body);
    let signature = merklog_note::Signer::sign(&signer, &message).unwrap();
    body.extend_from_slice(&signature);
    body
}

/// Runs `merklog source audit` with arguments; returns exit code, JSON, stderr.
fn audit(setup: &Setup, url: &str, args: &[&str]) -> (i32, serde_json::Value, String) {
    let front = Setup {
        dir: setup.dir.clone(),
        url: url.to_owned(),
        log_vkey: setup.log_vkey.clone(),
    };
    let out = front
        .client()
        .args(["--json", "source", "audit", SOURCE_A])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let report = stdout
        .lines()
        .next()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or(serde_json::Value::Null);
    (
        out.status.code().unwrap(),
        report,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn source_audit_verifies_everything_and_names_what_is_missing_forged_or_equivocated() {
    client_binary();
    merklog_e2e::merklogd_binary();
    let dir = tempfile::tempdir().unwrap();
    let vkey = generate_key(dir.path(), "a", SOURCE_A);
    let vkey_file = dir.path().join("a.vkey");
    let (daemon, setup) = start_log(dir.path(), "audit.example/log", &[(SOURCE_A, &vkey)]);

    // 200 lines, a SIGKILL (reserved numbers, declared unused on restart, after a
    // pause the audit can see as a silence), 100 more lines.
    let input = dir.path().join("input.log");
    let text: String = (0..200).map(|i| format!("first {i}\n")).collect();
    std::fs::write(&input, text).unwrap();
    let first = Process(
        setup
            .emit("a", &[input.as_path()], &["--follow"], 0)
            .spawn()
            .unwrap(),
    );
    let journal = dir.path().join("a.spool").join("journal");
    wait_for(
        "the first lines to be acknowledged",
        Duration::from_secs(30),
        || {
            let entries = log_entries(&setup.url);
            entries.len() >= 200 && std::fs::metadata(&journal).is_ok_and(|m| m.len() > 0)
        },
    );
    first.kill();
    std::thread::sleep(Duration::from_millis(300));
    let more: String = (0..100).map(|i| format!("second {i}\n")).collect();
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap()
        .write_all(more.as_bytes())
        .unwrap();
    assert!(
        Process(setup.emit("a", &[input.as_path()], &[], 1).spawn().unwrap())
            .wait(Duration::from_secs(60)),
        "{}",
        setup.output("a", 1)
    );
    let logged = logged(
        &log_entries(&setup.url),
        &parse_verifier_key(&vkey).unwrap(),
    );
    let highest = *logged.events.keys().last().unwrap();
    assert!(!logged.declared_unused.is_empty());

    // The front, on port 0.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let lie = std::sync::Arc::new(std::sync::Mutex::new(Lie::None));
    let front_url = runtime.block_on(async {
        let front = Front {
            log: connect(&setup.url).await.unwrap(),
            source: SOURCE_A.to_owned(),
            vkey: vkey.clone(),
            highest,
            lie: lie.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(v1::log_server::LogServer::new(front.clone()))
                .add_service(v1::sources_server::SourcesServer::new(front))
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        format!("http://{addr}")
    });
    let vkey_arg = vkey_file.to_str().unwrap();

    // `source status` shows the registry's view.
    let front = Setup {
        dir: setup.dir.clone(),
        url: front_url.clone(),
        log_vkey: setup.log_vkey.clone(),
    };
    let out = front
        .client()
        .args(["--json", "source", "status", SOURCE_A])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(status["name"], SOURCE_A);
    assert_eq!(status["vkey"], vkey.as_str());
    assert_eq!(status["highest_sequence"], highest);
    let out = front
        .client()
        .args(["source", "status", "agents.example.com/nobody"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));

    // Honest: complete, the crash's numbers declared unused, every page verified.
    let (code, report, stderr) = audit(&setup, &front_url, &["--source-vkey", vkey_arg]);
    assert_eq!(code, 0, "{report} {stderr}");
    assert_eq!(report["complete"], true);
    assert_eq!(report["to"], highest);
    assert_eq!(report["events"], logged.events.len() as u64);
    assert_eq!(report["key_from_server"], false);
    assert!(
        !report["declared_unused"].as_array().unwrap().is_empty(),
        "{report}"
    );

    // Without the auditor's key: the registry's, and the report says so.
    let (code, report, _) = audit(&setup, &front_url, &[]);
    assert_eq!(code, 0);
    assert_eq!(report["key_from_server"], true);

    // The pause around the SIGKILL is a silence for a short interval.
    let (code, report, _) = audit(
        &setup,
        &front_url,
        &["--source-vkey", vkey_arg, "--silence-after", "250ms"],
    );
    assert_eq!(code, 1, "{report}");
    assert!(!report["silent_periods"].as_array().unwrap().is_empty());

    // A number left out is missing, by number.
    let data: Vec<u64> = logged
        .events
        .values()
        .filter(|e| e.media_type == "text/plain")
        .map(|e| e.sequence)
        .collect();
    let dropped = data[70];
    *lie.lock().unwrap() = Lie::Drop(dropped);
    let (code, report, stderr) = audit(&setup, &front_url, &["--source-vkey", vkey_arg]);
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(
        report["missing"],
        serde_json::json!([{"first": dropped, "last": dropped}])
    );
    assert!(stderr.contains(&format!("missing {dropped}")), "{stderr}");

    // A changed payload fails verification.
    *lie.lock().unwrap() = Lie::Tamper(data[10]);
    let (code, _, stderr) = audit(&setup, &front_url, &["--source-vkey", vkey_arg]);
    assert_eq!(code, 1);
    assert!(stderr.contains("does not verify"), "{stderr}");

    // Two envelopes signed for one number: equivocation, named.
    let other = forge_other(&logged.events[&data[20]], &dir.path().join("a.key"));
    *lie.lock().unwrap() = Lie::Equivocate(data[20], other);
    let (code, report, _) = audit(&setup, &front_url, &["--source-vkey", vkey_arg]);
    assert_eq!(code, 1);
    assert_eq!(report["equivocations"][0]["sequence"], data[20]);
    drop(runtime);
    drop(daemon);
}

#[test]
fn emit_sends_heartbeats_follows_a_truncated_file_and_stops_cleanly_on_sigterm() {
    client_binary();
    merklog_e2e::merklogd_binary();
    let dir = tempfile::tempdir().unwrap();
    let vkey = generate_key(dir.path(), "a", SOURCE_A);
    let key = parse_verifier_key(&vkey).unwrap();
    let (daemon, setup) = start_log(dir.path(), "beat.example/log", &[(SOURCE_A, &vkey)]);
    let input = dir.path().join("app.log");
    std::fs::write(&input, "one\ntwo\nthree\n").unwrap();
    let running = Process(
        setup
            .emit(
                "a",
                &[input.as_path()],
                &["--follow", "--heartbeat-every", "100ms"],
                0,
            )
            .spawn()
            .unwrap(),
    );
    let payloads = |media: &str| -> Vec<Vec<u8>> {
        logged(&log_entries(&setup.url), &key)
            .events
            .values()
            .filter(|e| e.media_type == media)
            .map(|e| e.payload.clone())
            .collect()
    };
    wait_for("the first lines", Duration::from_secs(30), || {
        payloads("text/plain").len() == 3
    });
    // copytruncate: the file starts over, shorter than what was read.
    std::fs::write(&input, "four\n").unwrap();
    wait_for(
        "the line after the truncation",
        Duration::from_secs(30),
        || payloads("text/plain").len() == 4,
    );
    wait_for("heartbeats", Duration::from_secs(30), || {
        payloads(HEARTBEAT).len() >= 2
    });
    let pid = running.0.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        running.wait(Duration::from_secs(30)),
        "{}",
        setup.output("a", 0)
    );
    assert_eq!(
        payloads("text/plain"),
        vec![
            b"one".to_vec(),
            b"two".to_vec(),
            b"three".to_vec(),
            b"four".to_vec()
        ]
    );
    let logged_now = logged(&log_entries(&setup.url), &key);
    assert!(logged_now.declared_unused.is_empty());
    assert_complete(&logged_now, SOURCE_A);

    // After a clean stop nothing is declared unused, numbering continues, and
    // nothing is read twice.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&input)
        .unwrap()
        .write_all(b"five\n")
        .unwrap();
    assert!(
        Process(setup.emit("a", &[input.as_path()], &[], 1).spawn().unwrap())
            .wait(Duration::from_secs(30)),
        "{}",
        setup.output("a", 1)
    );
    let output = setup.output("a", 1);
    assert!(!output.contains("declared unused"), "{output}");
    assert!(output.contains("1 lines journaled"), "{output}");
    let logged_after = logged(&log_entries(&setup.url), &key);
    assert!(logged_after.declared_unused.is_empty());
    assert_complete(&logged_after, SOURCE_A);
    assert_eq!(payloads("text/plain").len(), 5);
    drop(daemon);
}
