//! Shared helpers: merklog-testkit's merklogd in this process on port 0 with a
//! verifying client for it, and the `merklog` binary run as a child process.

use std::net::SocketAddr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use merklog_client::{Client, ClientOptions, StateFile, TrustedLog, load_verifier_key};
use merklog_server::ServerConfig;
use tokio::io::AsyncWriteExt as _;

pub(crate) const ORIGIN: &str = "client-test.example/log";

/// merklog-testkit's in-process merklogd with origin [`ORIGIN`], and what the
/// client tests need on top of it.
pub(crate) struct TestServer(merklog_testkit::TestServer);

impl Deref for TestServer {
    type Target = merklog_testkit::TestServer;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl TestServer {
    pub(crate) async fn start(data_dir: &Path) -> Self {
        Self::start_at(data_dir, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Starts with gRPC on `grpc` (a restarted server keeps its address).
    pub(crate) async fn start_at(data_dir: &Path, grpc: SocketAddr) -> Self {
        let config = ServerConfig {
            listen: grpc,
            origin: Some(ORIGIN.to_owned()),
            ..merklog_testkit::test_config(data_dir)
        };
        Self(merklog_testkit::TestServer::start_with(config).await)
    }

    pub(crate) fn trust(&self) -> TrustedLog {
        TrustedLog::new(load_verifier_key(&self.vkey).unwrap(), None)
    }

    pub(crate) async fn client(&self, state: Option<&Path>) -> Client {
        Client::connect(
            &self.url(),
            self.trust(),
            state.map(StateFile::new),
            ClientOptions::default(),
        )
        .await
        .unwrap()
    }

    /// Graceful stop; the server must exit cleanly.
    pub(crate) async fn stop(self) {
        self.0.stop().await;
    }
}

/// What one run of the CLI did.
#[derive(Debug)]
pub(crate) struct Run {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Run {
    #[track_caller]
    pub(crate) fn ok(self) -> Self {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }

    #[track_caller]
    pub(crate) fn verification_failure(self) -> Self {
        assert_eq!(self.code, 1, "expected exit 1 (verification): {self:#?}");
        assert!(self.stderr.contains("VERIFICATION FAILED"), "{self:#?}");
        self
    }

    #[track_caller]
    pub(crate) fn error(self) -> Self {
        assert_eq!(self.code, 2, "expected exit 2 (error): {self:#?}");
        self
    }

    /// stdout as JSON lines.
    pub(crate) fn json_lines(&self) -> Vec<serde_json::Value> {
        self.stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect()
    }
}

/// How to run `merklog`: the environment every run gets.
#[derive(Clone)]
pub(crate) struct Merklog {
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: PathBuf,
}

impl Merklog {
    /// Runs against `server_url` with `vkey`, remembering state in `state`.
    pub(crate) fn new(server_url: &str, vkey: &str, state: &Path, cwd: &Path) -> Self {
        Self {
            env: vec![
                ("MERKLOG_SERVER".into(), server_url.into()),
                ("MERKLOG_LOG_KEY".into(), vkey.into()),
                ("MERKLOG_STATE_FILE".into(), state.display().to_string()),
            ],
            cwd: cwd.to_owned(),
        }
    }

    /// Only the working directory; no server, key or state.
    pub(crate) fn bare(cwd: &Path) -> Self {
        Self {
            env: Vec::new(),
            cwd: cwd.to_owned(),
        }
    }

    pub(crate) async fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None).await
    }

    pub(crate) async fn run_with_stdin(&self, args: &[&str], stdin: Option<&[u8]>) -> Run {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_merklog"));
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .current_dir(&self.cwd)
            .args(args)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap();
        if let Some(bytes) = stdin {
            let mut pipe = child.stdin.take().unwrap();
            pipe.write_all(bytes).await.unwrap();
            drop(pipe);
        }
        let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("merklog {args:?} did not finish within 60 s"))
            .unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}
