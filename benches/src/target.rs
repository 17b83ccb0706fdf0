//! The servers a run talks to: a `merklogd` child process on a temporary data
//! directory, a server inside this process, a running server, and the echo baseline.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use merklog_note::{Ed25519Verifier, parse_verifier_key};
use merklog_proto::v1::log_client::LogClient;
use serde::Deserialize;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::BenchError;
use crate::echo::MAX_ENTRIES_PER_CALL;

/// The origin of logs the hammer creates.
pub const BENCH_ORIGIN: &str = "bench.merklog.example/hammer";
/// How long a server may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest gRPC message a client accepts (a 1,000-entry answer with proofs is ~1 MiB).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The addresses `merklogd --addr-file` (and the echo server) write.
#[derive(Debug, Clone, Copy, Deserialize)]
struct AddrFile {
    grpc: SocketAddr,
    metrics: Option<SocketAddr>,
    #[serde(default)]
    otlp_grpc: Option<SocketAddr>,
}

enum Kind {
    Child(Child),
    InProcess {
        stop: Option<oneshot::Sender<()>>,
        task: JoinHandle<Result<(), BenchError>>,
    },
    External,
}

/// A client of the log under test: a channel that adds the run's bearer token
/// (if any) to every call.
pub type Client = LogClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// Creates `path` (a tokens file) with one token for the principal `hammer`
/// with the append and read roles, and returns the token.
pub fn create_bench_token(path: &Path) -> Result<String, BenchError> {
    use merklog_auth::{Expiry, Principal, Role};
    let principal = Principal::new("hammer")
        .map_err(|e| BenchError::Setup(format!("the token principal: {e}")))?;
    let roles = [Role::Append, Role::Read].into_iter().collect();
    let (token, _) =
        merklog_server::auth::tokens::create_token(path, principal, roles, Expiry::Never)?;
    Ok(token.expose().to_owned())
}

/// A CA and a server certificate for 127.0.0.1, made for one run, as PEM files.
#[derive(Debug, Clone)]
pub struct TestCertificates {
    /// The server's certificate.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The CA certificate, as PEM.
    pub ca_pem: String,
}

impl TestCertificates {
    /// Makes the certificates in `dir`.
    pub fn create(dir: &Path) -> Result<Self, BenchError> {
        let tls = |e: rcgen::Error| BenchError::Setup(format!("making TLS certificates: {e}"));
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(tls)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "merklog-hammer CA");
        let ca = rcgen::CertifiedIssuer::self_signed(
            ca_params,
            rcgen::KeyPair::generate().map_err(tls)?,
        )
        .map_err(tls)?;
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).map_err(tls)?;
        let key = rcgen::KeyPair::generate().map_err(tls)?;
        let cert = params.signed_by(&key, &*ca).map_err(tls)?;
        let certs = Self {
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
            ca_pem: ca.pem(),
        };
        for (path, pem) in [(&certs.cert, cert.pem()), (&certs.key, key.serialize_pem())] {
            std::fs::write(path, pem)
                .map_err(|e| BenchError::io(format!("writing {}", path.display()), e))?;
        }
        Ok(certs)
    }

    fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&self.ca_pem))
    }
}

/// One server under test.
pub struct Target {
    /// Its gRPC endpoint, `http://host:port` or `https://host:port`.
    pub url: String,
    /// TLS settings for an `https://` URL (`None`: the public web roots).
    pub tls: Option<ClientTlsConfig>,
    /// The log's verifier key; `None` for the echo server.
    pub verifier: Option<Ed25519Verifier>,
    /// The log's origin, when known.
    pub origin: Option<String>,
    /// Its process id when it is a child of this process (CPU and RSS are read
    /// from `/proc/<pid>`).
    pub pid: Option<u32>,
    /// Its data directory, when the hammer created it (disk use is measured there).
    pub data_dir: Option<PathBuf>,
    /// Its Prometheus endpoint, when known.
    pub metrics: Option<SocketAddr>,
    /// Its OTLP/gRPC port, when known.
    pub otlp_grpc: Option<SocketAddr>,
    /// The bearer token every call carries, if any.
    token: Option<String>,
    kind: Kind,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.url)
            .field("pid", &self.pid)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

/// The `merklogd` binary to spawn: `explicit`, else `$MERKLOGD_BIN`, else the
/// release binary of this build's target directory, else a `merklogd` next to this
/// executable (the same profile).
pub fn find_merklogd(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(path.to_owned());
    }
    if let Some(path) = std::env::var_os("MERKLOGD_BIN") {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let profile_dir = exe.parent()?;
    // <target>/<profile>/merklog-hammer, or <target>/<profile>/deps/<test> in tests.
    let profile_dir = if profile_dir.ends_with("deps") {
        profile_dir.parent()?
    } else {
        profile_dir
    };
    let release = profile_dir.parent()?.join("release").join("merklogd");
    let sibling = profile_dir.join("merklogd");
    [release, sibling].into_iter().find(|p| p.is_file())
}

/// The gRPC URL of `addr`.
fn url(addr: SocketAddr, tls: bool) -> String {
    if tls {
        format!("https://{addr}")
    } else {
        format!("http://{addr}")
    }
}

/// Waits (bounded) for a child to write its address file.
async fn wait_for_addr_file(
    child: &mut Child,
    path: &Path,
    log: &Path,
) -> Result<AddrFile, BenchError> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(addrs) = serde_json::from_str::<AddrFile>(&text)
        {
            return Ok(addrs);
        }
        if let Some(status) = child
            .try_wait()
            .map_err(|e| BenchError::io("waiting for a server to start", e))?
        {
            return Err(BenchError::Setup(format!(
                "the server exited at start-up with {status}; see {}",
                log.display()
            )));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(BenchError::Setup(format!(
                "the server did not start within {START_TIMEOUT:?}; see {}",
                log.display()
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn spawn_logged(mut command: Command, log: &Path) -> Result<Child, BenchError> {
    let out = std::fs::File::create(log)
        .map_err(|e| BenchError::io(format!("creating {}", log.display()), e))?;
    let err = out
        .try_clone()
        .map_err(|e| BenchError::io("duplicating a log file handle", e))?;
    command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| BenchError::io("starting a server process", e))
}

/// What the merklogd the hammer starts serves with.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServeOptions<'a> {
    /// Serve TLS with this certificate.
    pub tls: Option<&'a TestCertificates>,
    /// Authenticate calls against this tokens file.
    pub tokens_file: Option<&'a Path>,
    /// Check signed source events against this sources registry.
    pub sources_file: Option<&'a Path>,
}

impl Target {
    /// Starts `merklogd` from `binary` on a new data directory `dir/data`, every
    /// listener on a loopback port 0, logging to `dir/merklogd.log`; serving TLS
    /// with `tls` if given.
    pub async fn spawn_merklogd(
        binary: &Path,
        dir: &Path,
        options: &ServeOptions<'_>,
    ) -> Result<Self, BenchError> {
        let ServeOptions {
            tls,
            tokens_file,
            sources_file,
        } = *options;
        let data_dir = dir.join("data");
        let addr_file = dir.join("merklogd.addrs");
        let log = dir.join("merklogd.log");
        let mut command = Command::new(binary);
        command
            .arg("--data-dir")
            .arg(&data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--http-listen", "127.0.0.1:0"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .args(["--otlp-grpc-addr", "127.0.0.1:0"])
            .args(["--otlp-http-addr", "127.0.0.1:0"])
            .args(["--origin", BENCH_ORIGIN])
            .args(["--max-entries-per-call", &MAX_ENTRIES_PER_CALL.to_string()])
            .args(["--log-level", "warn"])
            .arg("--addr-file")
            .arg(&addr_file);
        if let Some(tokens_file) = tokens_file {
            command.arg("--tokens-file").arg(tokens_file);
        }
        if let Some(sources_file) = sources_file {
            command.arg("--sources-file").arg(sources_file);
        }
        if let Some(tls) = tls {
            command
                .arg("--tls-cert")
                .arg(&tls.cert)
                .arg("--tls-key")
                .arg(&tls.key);
        }
        let mut child = spawn_logged(command, &log)?;
        let addrs = wait_for_addr_file(&mut child, &addr_file, &log).await?;
        let vkey_path = data_dir.join("log.vkey");
        let vkey = std::fs::read_to_string(&vkey_path)
            .map_err(|e| BenchError::io(format!("reading {}", vkey_path.display()), e))?;
        Ok(Self {
            url: url(addrs.grpc, tls.is_some()),
            tls: tls.map(TestCertificates::client_config),
            verifier: Some(parse_verifier_key(vkey.trim())?),
            origin: Some(BENCH_ORIGIN.to_owned()),
            pid: Some(child.id()),
            data_dir: Some(data_dir),
            metrics: addrs.metrics,
            otlp_grpc: addrs.otlp_grpc,
            token: None,
            kind: Kind::Child(child),
        })
    }

    /// Runs a merklog server inside this process on a new data directory `dir/data`.
    /// CPU and RSS then cannot be told apart from the client's.
    pub async fn in_process_merklogd(
        dir: &Path,
        options: &ServeOptions<'_>,
    ) -> Result<Self, BenchError> {
        let ServeOptions {
            tls,
            tokens_file,
            sources_file,
        } = *options;
        let data_dir = dir.join("data");
        let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
        let config = merklog_server::ServerConfig {
            data_dir: data_dir.clone(),
            listen: loopback,
            http_listen: loopback,
            metrics_listen: loopback,
            otlp_grpc_addr: merklog_server::otlp::settings::OtlpListen(Some(loopback)),
            otlp_http_addr: merklog_server::otlp::settings::OtlpListen(Some(loopback)),
            origin: Some(BENCH_ORIGIN.to_owned()),
            max_entries_per_call: MAX_ENTRIES_PER_CALL,
            log_level: "warn".to_owned(),
            tls_cert: tls.map(|t| t.cert.clone()),
            tls_key: tls.map(|t| t.key.clone()),
            tokens_file: tokens_file.map(Path::to_owned),
            sources_file: sources_file.map(Path::to_owned),
            ..merklog_server::ServerConfig::default()
        };
        let listeners = merklog_server::Listeners::bind(&config).await?;
        let addrs = listeners.local_addrs()?;
        let server = merklog_server::Server::open(config).await?;
        let verifier = parse_verifier_key(server.vkey())?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            server
                .serve(listeners, async {
                    let _ = stopped.await;
                })
                .await
                .map_err(BenchError::from)
        });
        Ok(Self {
            url: url(addrs.grpc, tls.is_some()),
            tls: tls.map(TestCertificates::client_config),
            verifier: Some(verifier),
            origin: Some(BENCH_ORIGIN.to_owned()),
            pid: None,
            data_dir: Some(data_dir),
            metrics: Some(addrs.metrics),
            otlp_grpc: addrs.otlp_grpc,
            token: None,
            kind: Kind::InProcess {
                stop: Some(stop),
                task,
            },
        })
    }

    /// Starts the echo baseline as a child process: this executable's hidden
    /// `echo-server` command.
    pub async fn spawn_echo(dir: &Path) -> Result<Self, BenchError> {
        let exe =
            std::env::current_exe().map_err(|e| BenchError::io("finding this executable", e))?;
        let addr_file = dir.join("echo.addrs");
        let log = dir.join("echo.log");
        let mut command = Command::new(exe);
        command
            .arg("echo-server")
            .arg("--addr-file")
            .arg(&addr_file);
        let mut child = spawn_logged(command, &log)?;
        let addrs = wait_for_addr_file(&mut child, &addr_file, &log).await?;
        Ok(Self {
            url: format!("http://{}", addrs.grpc),
            tls: None,
            verifier: None,
            origin: None,
            pid: Some(child.id()),
            data_dir: None,
            metrics: None,
            otlp_grpc: None,
            token: None,
            kind: Kind::Child(child),
        })
    }

    /// Runs the echo baseline inside this process.
    pub async fn in_process_echo() -> Result<Self, BenchError> {
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
            .await
            .map_err(|e| BenchError::io("binding the echo listener", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| BenchError::io("reading the echo address", e))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            crate::echo::serve(listener, async {
                let _ = stopped.await;
            })
            .await
        });
        Ok(Self {
            url: format!("http://{addr}"),
            tls: None,
            verifier: None,
            origin: None,
            pid: None,
            data_dir: None,
            metrics: None,
            otlp_grpc: None,
            token: None,
            kind: Kind::InProcess {
                stop: Some(stop),
                task,
            },
        })
    }

    /// A running server at `url`, verified with `vkey` (a verifier key, or a file
    /// holding one); an `https://` server's certificate must chain to `ca_cert`
    /// if given.
    pub fn external(url: &str, vkey: &str, ca_cert: Option<&Path>) -> Result<Self, BenchError> {
        let tls = ca_cert
            .map(|path| {
                std::fs::read(path)
                    .map(|pem| ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                    .map_err(|e| BenchError::io(format!("reading {}", path.display()), e))
            })
            .transpose()?;
        let text = if Path::new(vkey).is_file() {
            std::fs::read_to_string(vkey)
                .map_err(|e| BenchError::io(format!("reading {vkey}"), e))?
        } else {
            vkey.to_owned()
        };
        let verifier = parse_verifier_key(text.trim())?;
        let origin = merklog_note::Verifier::name(&verifier).to_owned();
        Ok(Self {
            url: url.to_owned(),
            tls,
            verifier: Some(verifier),
            origin: Some(origin),
            pid: None,
            data_dir: None,
            metrics: None,
            otlp_grpc: None,
            token: None,
            kind: Kind::External,
        })
    }

    /// Every call to this target carries `token` as a bearer token.
    pub fn with_token(mut self, token: String) -> Self {
        self.token = Some(token);
        self
    }

    /// Opens `n` connections (HTTP/2, each multiplexing many calls).
    pub async fn connect(&self, n: usize) -> Result<Vec<Client>, BenchError> {
        let bearer = match &self.token {
            Some(token) => Bearer(Some(format!("Bearer {token}").parse().map_err(|_| {
                BenchError::Usage("the bearer token is not a valid header value".into())
            })?)),
            None => Bearer(None),
        };
        let mut clients = Vec::with_capacity(n);
        for _ in 0..n.max(1) {
            let endpoint = Endpoint::from_shared(self.url.clone())
                .map_err(|source| BenchError::Connect {
                    url: self.url.clone(),
                    source,
                })?
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(60))
                .tcp_nodelay(true)
                .initial_stream_window_size(Some(2 << 20))
                .initial_connection_window_size(Some(8 << 20));
            let endpoint = if self.url.starts_with("https://") {
                let tls = self
                    .tls
                    .clone()
                    .unwrap_or_else(|| ClientTlsConfig::new().with_webpki_roots());
                endpoint
                    .tls_config(tls)
                    .map_err(|source| BenchError::Connect {
                        url: self.url.clone(),
                        source,
                    })?
            } else {
                endpoint
            };
            let channel = endpoint
                .connect()
                .await
                .map_err(|source| BenchError::Connect {
                    url: self.url.clone(),
                    source,
                })?;
            clients.push(
                LogClient::with_interceptor(channel, bearer.clone())
                    .max_decoding_message_size(MAX_MESSAGE_BYTES)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES),
            );
        }
        Ok(clients)
    }

    /// Stops the server: SIGTERM and a bounded wait for a child (then SIGKILL), the
    /// shutdown signal for an in-process server, nothing for an external one.
    pub async fn stop(mut self) -> Result<(), BenchError> {
        match &mut self.kind {
            Kind::Child(child) => {
                let terminated = Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status()
                    .is_ok_and(|s| s.success());
                let deadline = Instant::now() + Duration::from_secs(30);
                while terminated && Instant::now() < deadline {
                    if child
                        .try_wait()
                        .map_err(|e| BenchError::io("waiting for a server to stop", e))?
                        .is_some()
                    {
                        return Ok(());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = child.kill();
                let _ = child.wait();
                Ok(())
            }
            Kind::InProcess { stop, task } => {
                if let Some(stop) = stop.take() {
                    let _ = stop.send(());
                }
                match tokio::time::timeout(Duration::from_secs(30), task).await {
                    Ok(Ok(result)) => result,
                    Ok(Err(join)) => Err(BenchError::Setup(format!("server task: {join}"))),
                    Err(_) => Err(BenchError::Setup(
                        "the in-process server did not stop within 30 s".into(),
                    )),
                }
            }
            Kind::External => Ok(()),
        }
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        // Never leave a server behind a failed run.
        if let Kind::Child(child) = &mut self.kind
            && matches!(child.try_wait(), Ok(None))
        {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
