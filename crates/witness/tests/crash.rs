//! Process-level crash test: the real `merklog-witness` binary is SIGKILLed at each
//! failpoint of the persist step. No cosignature is ever returned for a state that
//! was not persisted, and after a restart the state is exactly the old or the new one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestLog;
use merklog_note::{Checkpoint, Note};
use merklog_witness::failpoint::FAILPOINT_MARKER;

struct Process {
    child: Child,
    addr: String,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(path: &Path, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !path.exists() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn start(data_dir: &Path, config: &Path, failpoint: Option<&str>) -> Process {
    let addr_file = data_dir.join("addr");
    let _ = std::fs::remove_file(&addr_file);
    let mut command = Command::new(env!("CARGO_BIN_EXE_merklog-witness"));
    command
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--addr-file")
        .arg(&addr_file)
        .env_remove("MERKLOG_WITNESS_TEST_FAILPOINT")
        .env("MERKLOG_WITNESS_LOG_LEVEL", "error")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if let Some(fp) = failpoint {
        command.env("MERKLOG_WITNESS_TEST_FAILPOINT", fp);
    }
    let child = command.spawn().unwrap();
    let mut process = Process {
        child,
        addr: String::new(),
    };
    wait_for(&addr_file, "the witness to bind");
    process.addr = std::fs::read_to_string(&addr_file)
        .unwrap()
        .trim()
        .to_owned();
    process
}

fn post(addr: &str, body: Vec<u8>) -> std::io::Result<(u16, Vec<u8>)> {
    raw_http::request(addr, "POST", "/add-checkpoint", &body)
}

mod raw_http {
    //! A minimal blocking HTTP/1.1 client over std, so the test sees exactly whether
    //! any answer came back before the kill.
    use std::io::{Error, Read as _, Write as _};

    pub(super) fn request(
        addr: &str,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<(u16, Vec<u8>), Error> {
        let mut stream = std::net::TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(30)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )?;
        stream.write_all(body)?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        let text = String::from_utf8_lossy(&response);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error::other(format!("no HTTP answer: {text:?}")))?;
        let body_start = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(response.len(), |p| p + 4);
        Ok((status, response[body_start..].to_vec()))
    }
}

fn latest_size(addr: &str, origin: &str) -> Option<(u64, Vec<u8>)> {
    let path = format!("/{}/checkpoint", merklog_witness::origin_hash_hex(origin));
    let (status, body) = raw_http::request(addr, "GET", &path, b"").unwrap();
    match status {
        404 => None,
        200 => {
            let note = Note::parse(&body).unwrap();
            Some((Checkpoint::from_text(note.text()).unwrap().size, body))
        }
        other => panic!("monitoring API answered {other}"),
    }
}

/// Sends `body` to a witness armed with `failpoint`, kills it once the failpoint is
/// reached, and checks that no answer (in particular no cosignature) came back.
fn crash_during(data_dir: &Path, config: &Path, failpoint: &str, body: Vec<u8>) {
    let process = start(data_dir, config, Some(failpoint));
    let addr = process.addr.clone();
    let request = std::thread::spawn(move || post(&addr, body));
    let marker = data_dir.join(FAILPOINT_MARKER);
    wait_for(&marker, failpoint);
    std::fs::remove_file(&marker).unwrap();
    drop(process); // SIGKILL, then reap.
    let answer = request.join().unwrap();
    assert!(
        answer.is_err(),
        "{failpoint}: the client got an answer from a killed witness: {answer:?}"
    );
}

#[test]
fn killed_between_verify_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir: PathBuf = dir.path().join("data");
    let mut log = TestLog::new("example.com/crash");
    log.grow_to(20);
    let config = dir.path().join("witness.toml");
    std::fs::write(
        &config,
        format!(
            "[[log]]\norigin = \"{}\"\nvkey = \"{}\"\n",
            log.origin, log.vkey
        ),
    )
    .unwrap();

    // Killed before anything is written, then after the temporary file is synced but
    // before the rename: the old state (never cosigned) survives.
    for failpoint in ["before-persist", "after-temp-write"] {
        crash_during(&data_dir, &config, failpoint, log.body(0, 4));
        let process = start(&data_dir, &config, None);
        assert_eq!(latest_size(&process.addr, &log.origin), None, "{failpoint}");
    }

    // Killed after the state is durable, before answering: the new state survives,
    // though its cosignature was never sent.
    crash_during(&data_dir, &config, "after-persist", log.body(0, 4));
    let process = start(&data_dir, &config, None);
    let (size, _) = latest_size(&process.addr, &log.origin).unwrap();
    assert_eq!(size, 4);
    // The restarted witness agrees: old 0 is a conflict at 4, and 4 -> 9 works.
    let (status, body) = post(&process.addr, log.body(0, 4)).unwrap();
    assert_eq!((status, body.as_slice()), (409, &b"4\n"[..]));
    let (status, _) = post(&process.addr, log.body(4, 9)).unwrap();
    assert_eq!(status, 200);
    drop(process);

    // A crash in the middle of a later advance (9 -> 20) keeps 9.
    crash_during(&data_dir, &config, "after-temp-write", log.body(9, 20));
    let process = start(&data_dir, &config, None);
    let (size, note) = latest_size(&process.addr, &log.origin).unwrap();
    assert_eq!(size, 9);
    let note = Note::parse(&note).unwrap();
    assert_eq!(note.signatures().len(), 2, "log signature and cosignature");
    let (status, _) = post(&process.addr, log.body(9, 20)).unwrap();
    assert_eq!(status, 200);
}
