//! Helpers shared by merklog's process-level tests: find (or build) the
//! `merklogd` and `merklog-witness` binaries, start them on port 0 and read back
//! their addresses, kill them, and verify what they answer.
#![warn(missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use merklog_note::{Checkpoint, Ed25519Verifier, Hash, open_checkpoint, parse_verifier_key};
use merklog_proto::v1::{self, log_client::LogClient};
use tonic::transport::Channel;

pub mod pki;
pub mod witnesses;

/// The `merklogd` binary of this build (`MERKLOGD_BIN` overrides it).
pub fn merklogd_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| workspace_binary("merklog-server", "merklogd", "MERKLOGD_BIN"))
        .clone()
}

/// The `merklog-witness` binary of this build (`MERKLOG_WITNESS_BIN` overrides it).
pub fn witness_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            workspace_binary("merklog-witness", "merklog-witness", "MERKLOG_WITNESS_BIN")
        })
        .clone()
}

/// The `merklog` client binary of this build (`MERKLOG_BIN` overrides it).
pub fn client_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| workspace_binary("merklog-client", "merklog", "MERKLOG_BIN"))
        .clone()
}

/// A binary of a workspace package, from the running test's target directory and
/// profile.
///
/// `scripts/test` (like any `cargo test --workspace --all-targets`) builds every
/// binary before the first test runs, so this only finds it. When a test of this
/// package is run alone, the binary of another package is not built for it: then
/// this runs `cargo build -p <package> --bin <bin>` with the same profile and target
/// directory, but only if the binary is missing. One that exists is used as it is,
/// even if older than the sources (after a change to the server, build it before
/// running one test alone): building from inside a test inherits the variables
/// cargo sets for tests, which makes some build scripts run again, so asking cargo
/// every time would rebuild part of the tree on every run. Tests call it before
/// starting any clock. The environment variable `override_var` names a prebuilt
/// binary instead.
fn workspace_binary(package: &str, bin: &str, override_var: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(override_var) {
        return PathBuf::from(path);
    }
    // <target>/<profile>/deps/<test binary>
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().unwrap().parent().unwrap().to_owned();
    let binary = profile_dir.join(bin);
    if binary.exists() {
        return binary;
    }
    let target_dir = profile_dir.parent().unwrap().to_owned();
    let profile = match profile_dir.file_name().unwrap().to_str().unwrap() {
        "debug" => "dev".to_owned(),
        other => other.to_owned(),
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let status = Command::new(cargo)
        .current_dir(workspace)
        .args(["build", "--quiet", "-p", package, "--bin", bin])
        .args(["--profile", &profile])
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .unwrap_or_else(|e| panic!("running cargo to build {bin}: {e}"));
    assert!(status.success(), "building {bin} failed");
    assert!(binary.exists(), "{} was not built", binary.display());
    binary
}

/// The addresses `merklogd --addr-file` writes: the server's own type, which the
/// in-process servers of merklog-testkit report too.
pub use merklog_server::BoundAddrs as Addrs;

/// A running `merklogd` process.
pub struct Daemon {
    child: Child,
    /// Where it listens.
    pub addrs: Addrs,
}

impl Daemon {
    /// Starts `merklogd` on `data_dir` with every listener on port 0 and extra
    /// arguments, appending its output to `<data_dir>.log`; returns once it
    /// serves (its address file appeared).
    pub fn start(data_dir: &Path, extra: &[&str]) -> Daemon {
        Self::start_with_env(data_dir, extra, &[])
    }

    /// Like [`Daemon::start`], with these environment variables (and no others).
    pub fn start_with_env(data_dir: &Path, extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let addr_file = data_dir.with_extension("addrs");
        let _ = std::fs::remove_file(&addr_file);
        let log = File::options()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .unwrap();
        let mut child = Command::new(merklogd_binary())
            .env_clear()
            .envs(env.iter().copied())
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--http-listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--otlp-grpc-addr", "127.0.0.1:0"])
            .args(["--otlp-http-addr", "127.0.0.1:0"])
            .arg("--addr-file")
            .arg(&addr_file)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file) {
                let addrs = serde_json::from_str(&text).unwrap();
                return Daemon { child, addrs };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "merklogd exited at start-up with {status}; see {}.log",
                    data_dir.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "merklogd did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The gRPC endpoint URL.
    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.addrs.grpc)
    }

    /// The process id (to send it signals).
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then wait (bounded) for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("merklogd did not stop within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Never leave a server behind a failed test.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Connects a log client (bounded connect time).
pub async fn connect(url: &str) -> Result<LogClient<Channel>, tonic::transport::Error> {
    // Large HTTP/2 windows: answers with many proofs are hundreds of KiB.
    let channel = Channel::from_shared(url.to_owned())
        .expect("a valid URL")
        .initial_stream_window_size(Some(4 << 20))
        .initial_connection_window_size(Some(16 << 20))
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(10))
        .connect()
        .await?;
    Ok(LogClient::new(channel).max_decoding_message_size(64 << 20))
}

/// The log's verifier key from its data directory.
pub fn read_verifier(data_dir: &Path) -> Ed25519Verifier {
    let text = std::fs::read_to_string(data_dir.join("log.vkey")).unwrap();
    parse_verifier_key(text.trim_end()).unwrap()
}

/// Opens a wire checkpoint with the log key and checks its convenience fields.
pub fn open_wire_checkpoint(
    verifier: &Ed25519Verifier,
    checkpoint: &v1::Checkpoint,
) -> Result<Checkpoint, String> {
    let (parsed, _) = open_checkpoint(&checkpoint.note, verifier, None)
        .map_err(|e| format!("checkpoint signature: {e}"))?;
    if parsed.size != checkpoint.size
        || Hash::try_from(&checkpoint.root[..]).ok() != Some(parsed.root)
    {
        return Err("checkpoint fields differ from the signed text".into());
    }
    Ok(parsed)
}

/// Reads every entry of `[0, size)` with `GetEntries`, page by page.
pub async fn read_all_entries(
    client: &mut LogClient<Channel>,
    size: u64,
) -> Result<Vec<bytes::Bytes>, tonic::Status> {
    let mut entries = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let mut start = 0;
    while start < size {
        let page = client
            .get_entries(v1::GetEntriesRequest { start, end: size })
            .await?
            .into_inner();
        assert_eq!(page.start, start);
        assert!(!page.entries.is_empty());
        start += page.entries.len() as u64;
        entries.extend(page.entries);
    }
    Ok(entries)
}
