//! Queries over audit events at the process level: profile documents appended with
//! `merklog append` and signed events with profile payloads sent with `merklog emit`
//! are found by `merklog query` (actor, model, action, source, time window, over
//! several pages), every proof verified by the client, exactly the expected
//! entries in time order; `--source` reports the source's numbers complete; after
//! a restart of merklogd the same queries give the same answers (the index rows
//! are in the data directory, written with the entries).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use merklog_e2e::{Daemon, client_binary};
use serde_json::Value;

const ORIGIN: &str = "example.com/query-test";
const SOURCE: &str = "agents.example.com/agent-q";
/// 2026-03-01T00:00:00Z.
const BASE_MS: u64 = 1_772_323_200_000;
/// Documents of the bulk actor: more than one page of the server's default (100).
const BULK: u64 = 230;
/// Everything must be done well within this.
const DEADLINE: Duration = Duration::from_secs(180);

fn rfc3339(ms: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + Duration::from_millis(ms)).to_string()
}

/// A profile document.
fn doc(actor: &str, action: &str, model: Option<&str>, time_ms: u64) -> String {
    let model = model
        .map(|m| format!(r#","model":{{"id":"{m}"}}"#))
        .unwrap_or_default();
    format!(
        r#"{{"profile":"ai-audit/v1","time":"{}","actor":{{"id":"{actor}","kind":"agent"}},"action":"{action}"{model}}}"#,
        rfc3339(time_ms)
    )
}

/// An event as `merklog --json query` prints it: index, actor, action, model, time.
type Printed = (u64, String, String, String, u64);
/// What a document says: actor, action, model, time.
type Said = (String, String, String, u64);

struct Setup {
    dir: PathBuf,
    url: String,
}

impl Setup {
    fn merklog(&self, args: &[&str]) -> Command {
        let mut command = Command::new(client_binary());
        command
            .env_clear()
            .arg("--server")
            .arg(&self.url)
            .arg("--log-key")
            .arg(self.dir.join("data").join("log.vkey"))
            .arg("--no-state")
            .args(["--timeout", "20s"])
            .args(args);
        command
    }

    /// `merklog --json query ARGS`: the events' (index, actor, action, model, time)
    /// and the completeness line, if any. Panics unless it exits 0.
    fn query(&self, args: &[&str]) -> (Vec<Printed>, Option<Value>) {
        let mut all = vec!["--json", "query"];
        all.extend_from_slice(args);
        let out = self.merklog(&all).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "query {args:?}: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut events = Vec::new();
        let mut completeness = None;
        for line in stdout.lines() {
            let value: Value = serde_json::from_str(line).unwrap();
            if let Some(c) = value.get("completeness") {
                completeness = Some(c.clone());
                continue;
            }
            events.push((
                value["index"].as_u64().unwrap(),
                value["actor"].as_str().unwrap().to_owned(),
                value["action"].as_str().unwrap().to_owned(),
                value["model"].as_str().unwrap_or("-").to_owned(),
                value["time_unix_ms"].as_u64().unwrap(),
            ));
        }
        (events, completeness)
    }
}

fn start(dir: &Path, vkey: &str) -> Daemon {
    let sources_file = dir.join("sources.toml");
    std::fs::write(
        &sources_file,
        format!("[[source]]\nname = \"{SOURCE}\"\nvkey = \"{vkey}\"\nprincipals = [\"*\"]\n"),
    )
    .unwrap();
    Daemon::start(
        &dir.join("data"),
        &[
            "--origin",
            ORIGIN,
            "--log-level",
            "warn",
            "--sources-file",
            sources_file.to_str().unwrap(),
        ],
    )
}

/// What the documents appended below say, as (actor, action, model, time).
struct Expected(Vec<Said>);

impl Expected {
    /// The (actor, action, model, time) of the matches, in time order.
    fn select(&self, keep: impl Fn(&Said) -> bool) -> Vec<Said> {
        let mut out: Vec<_> = self.0.iter().filter(|e| keep(e)).cloned().collect();
        out.sort_by_key(|e| e.3);
        out
    }
}

fn strip(events: &[Printed]) -> Vec<Said> {
    events
        .iter()
        .map(|(_, a, b, c, d)| (a.clone(), b.clone(), c.clone(), *d))
        .collect()
}

#[test]
fn queries_find_exactly_the_matching_events_with_verified_proofs_across_a_restart() {
    let started = Instant::now();
    let _ = client_binary();
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    // The source's key.
    let out = Command::new(client_binary())
        .env_clear()
        .args([
            "--json", "source", "key", "generate", "--name", SOURCE, "--out",
        ])
        .arg(dir.join("q.key"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vkey = std::fs::read_to_string(dir.join("q.vkey")).unwrap();
    let daemon = start(dir, vkey.trim());
    let setup = Setup {
        dir: dir.to_owned(),
        url: daemon.grpc_url(),
    };

    // Plain documents: three actors, two models, two actions, times out of order.
    let mut expected = Vec::new();
    let mut docs = Vec::new();
    let plan = [
        ("alice", "chat", Some("m1"), 50),
        ("bob", "chat", Some("m2"), 10),
        ("alice", "embed", Some("m2"), 30),
        ("alice", "chat", Some("m1"), 20),
        ("carol", "chat", None, 40),
        ("bob", "embed", Some("m1"), 60),
    ];
    for (actor, action, model, minute) in plan {
        let time = BASE_MS + minute * 60_000;
        docs.push(doc(actor, action, model, time));
        expected.push((
            actor.to_owned(),
            action.to_owned(),
            model.unwrap_or("-").to_owned(),
            time,
        ));
    }
    for i in 0..BULK {
        let time = BASE_MS + 86_400_000 + (BULK - i) * 1000;
        docs.push(doc("bulk", "tick", Some("m3"), time));
        expected.push(("bulk".into(), "tick".into(), "m3".into(), time));
    }
    let mut args: Vec<&str> = vec!["append"];
    args.extend(docs.iter().map(String::as_str));
    // Not audit events: never found.
    args.extend(["opaque entry", r#"{"profile":"other"}"#]);
    let out = setup.merklog(&args).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Signed events of the source, whose payloads are profile documents.
    let mut emit = setup
        .merklog(&["emit", "--source-key"])
        .arg(dir.join("q.key"))
        .arg("--spool")
        .arg(dir.join("q.spool"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = emit.stdin.take().unwrap();
        for minute in [5u64, 15, 25, 35] {
            let time = BASE_MS + minute * 60_000;
            writeln!(stdin, "{}", doc("dave", "tool", Some("m1"), time)).unwrap();
            expected.push(("dave".into(), "tool".into(), "m1".into(), time));
        }
    }
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = emit.try_wait().unwrap() {
            assert!(status.success(), "merklog emit failed");
            break;
        }
        assert!(Instant::now() < until, "merklog emit did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
    let expected = Expected(expected);

    let check = |setup: &Setup| {
        let (alice, _) = setup.query(&["--actor", "alice"]);
        assert_eq!(strip(&alice), expected.select(|e| e.0 == "alice"));
        let (m1_chat, _) = setup.query(&["--model", "m1", "--action", "chat"]);
        assert_eq!(
            strip(&m1_chat),
            expected.select(|e| e.2 == "m1" && e.1 == "chat")
        );
        let since = rfc3339(BASE_MS + 20 * 60_000);
        let until = (BASE_MS + 50 * 60_000).to_string();
        let (window, _) = setup.query(&["--model", "m1", "--since", &since, "--until", &until]);
        assert_eq!(
            strip(&window),
            expected.select(|e| e.2 == "m1"
                && e.3 >= BASE_MS + 20 * 60_000
                && e.3 < BASE_MS + 50 * 60_000)
        );
        assert_eq!(window.len(), 3, "{window:?}");
        // More than one page, in time order.
        let (bulk, _) = setup.query(&["--actor", "bulk"]);
        assert_eq!(bulk.len() as u64, BULK);
        assert_eq!(strip(&bulk), expected.select(|e| e.0 == "bulk"));
        // Nothing matches.
        let (none, _) = setup.query(&["--actor", "alice", "--model", "m3"]);
        assert!(none.is_empty());
        // The source's events, with its numbers checked complete.
        let (dave, completeness) = setup.query(&["--source", SOURCE, "--action", "tool"]);
        assert_eq!(strip(&dave), expected.select(|e| e.0 == "dave"));
        let completeness = completeness.expect("a completeness report");
        assert_eq!(completeness["complete"], true, "{completeness}");
        assert_eq!(completeness["events"], 4, "{completeness}");
        assert_eq!(completeness["first_sequence"], 0, "{completeness}");
        assert_eq!(completeness["last_sequence"], 3, "{completeness}");
        // The source filter alone, in a window that leaves out its first event.
        let since = (BASE_MS + 10 * 60_000).to_string();
        let (later, _) = setup.query(&["--source", SOURCE, "--since", &since]);
        assert_eq!(later.len(), 3);
        alice
    };
    let before = check(&setup);
    // Bad input: no filter is a usage error (exit 2).
    let out = setup.merklog(&["query", "--since", "0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));

    // Restart: the rows are in the data directory.
    let status = daemon.terminate();
    assert!(status.success());
    let daemon = start(dir, vkey.trim());
    let setup = Setup {
        dir: dir.to_owned(),
        url: daemon.grpc_url(),
    };
    let after = check(&setup);
    assert_eq!(before, after);
    assert!(started.elapsed() < DEADLINE, "took {:?}", started.elapsed());
}
