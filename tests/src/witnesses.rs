//! Witnessed set-ups: keys generated ahead of time (so the policy, the log and
//! the witnesses can be configured before anything starts), `merklog-witness`
//! processes, the tlog-policy text tying them together, the `merklog` command
//! line, and fork evidence to make a witness freeze the log.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use merklog_note::{
    Checkpoint, generate_cosigner, generate_ed25519, keyfile, parse_signer_key, sign_checkpoint,
};

/// Writes a fresh log key for `origin` into `data_dir` (created if needed) the
/// way `merklogd` would on first start (`log.key`, mode 0600); `merklogd` then
/// adopts it. Returns the verifier key.
pub fn prepare_log_key(data_dir: &Path, origin: &str) -> String {
    std::fs::create_dir_all(data_dir).unwrap();
    let (key, vkey) = generate_ed25519(origin).unwrap();
    keyfile::write_signer_key(&data_dir.join("log.key"), &key).unwrap();
    vkey
}

/// The `merklog` command line of this build (`MERKLOG_BIN` overrides it).
pub fn client_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| crate::workspace_binary("merklog-client", "merklog", "MERKLOG_BIN"))
        .clone()
}

/// A checkpoint of `size` for `origin` with a root the real log does not have,
/// signed with the log key in `data_dir`: given to a witness that cosigned the
/// log's checkpoint of that size, it is proof of a fork, and merklog-witness
/// freezes the log.
pub fn conflicting_checkpoint(data_dir: &Path, origin: &str, size: u64) -> Vec<u8> {
    let key = keyfile::read_signer_key(&data_dir.join("log.key")).unwrap();
    let signer = parse_signer_key(key.expose_secret()).unwrap();
    let checkpoint = Checkpoint {
        origin: origin.to_owned(),
        size,
        root: [0x5a; 32].into(),
        extensions: Vec::new(),
    };
    sign_checkpoint(&checkpoint, &signer).unwrap()
}

/// A witness's files, ready to start: its data directory (with its key) and its
/// TOML configuration trusting one log.
#[derive(Debug, Clone)]
pub struct WitnessSetup {
    /// The witness key name (also its policy name in these tests).
    pub name: String,
    /// Its cosignature verifier key.
    pub vkey: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its configuration file.
    pub config: PathBuf,
}

impl WitnessSetup {
    /// Creates `<dir>/<short>-data` with a fresh key named `name`, and a
    /// configuration that trusts the log `origin` with key `log_vkey`.
    pub fn create(dir: &Path, short: &str, name: &str, origin: &str, log_vkey: &str) -> Self {
        let data_dir = dir.join(format!("{short}-data"));
        std::fs::create_dir_all(&data_dir).unwrap();
        let (key, vkey) = generate_cosigner(name).unwrap();
        keyfile::write_signer_key(&data_dir.join("witness.key"), &key).unwrap();
        let config = dir.join(format!("{short}.toml"));
        std::fs::write(
            &config,
            format!("[[log]]\norigin = \"{origin}\"\nvkey = \"{log_vkey}\"\n"),
        )
        .unwrap();
        Self {
            name: name.to_owned(),
            vkey,
            data_dir,
            config,
        }
    }

    /// The policy line of this witness at `url`.
    pub fn policy_line(&self, url: &str) -> String {
        format!("witness {} {} {url}\n", self.name, self.vkey)
    }
}

/// A running `merklog-witness` process.
pub struct WitnessProcess {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl WitnessProcess {
    /// Starts the witness on `listen` (port 0 picks one), logging to
    /// `<data_dir>.log`; returns once it listens.
    pub fn start(setup: &WitnessSetup, listen: SocketAddr) -> Self {
        let addr_file = setup.data_dir.with_extension("addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = File::options()
            .create(true)
            .append(true)
            .open(setup.data_dir.with_extension("log"))
            .unwrap();
        let mut child = Command::new(crate::witness_binary())
            .env_clear()
            .env("MERKLOG_WITNESS_LOG_LEVEL", "warn")
            .arg("--config")
            .arg(&setup.config)
            .arg("--data-dir")
            .arg(&setup.data_dir)
            .arg("--listen")
            .arg(listen.to_string())
            .arg("--addr-file")
            .arg(&addr_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file) {
                let addr = text.trim().parse().unwrap();
                return Self { child, addr };
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "merklog-witness exited at start-up with {status}; see {}.log",
                    setup.data_dir.display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "merklog-witness did not start within 30 s"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Its URL (the submission prefix is empty).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// SIGKILL, then reap.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for WitnessProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A tlog-policy: this log, the witnesses at their URLs, and a quorum of all of
/// them (`group all-witnesses all ...`).
pub fn policy_all_of(log_vkey: &str, witnesses: &[(&WitnessSetup, String)]) -> String {
    let mut text = format!("log {log_vkey}\n");
    for (setup, url) in witnesses {
        text.push_str(&setup.policy_line(url));
    }
    let names: Vec<&str> = witnesses.iter().map(|(s, _)| s.name.as_str()).collect();
    text.push_str(&format!(
        "group all-witnesses all {}\nquorum all-witnesses\n",
        names.join(" ")
    ));
    text
}

/// Copies a directory tree (files and directories only).
pub fn copy_dir(from: &Path, to: &Path) {
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
