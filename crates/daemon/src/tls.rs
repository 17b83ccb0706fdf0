//! TLS on a daemon's listening socket: a certificate chain and key from PEM
//! files, optionally a client CA bundle, reloaded without a restart.
//!
//! The files are read again every reload interval and on SIGHUP; when their
//! bytes changed, a new rustls configuration is built and used for every
//! connection accepted from then on (connections already open keep theirs). A
//! new set of files that does not load (a half-written file, a key that does
//! not match the certificate) is logged at error level and the previous
//! configuration stays in use, so a botched rotation never takes the listener
//! down. This is what certificate managers and ACME clients that rewrite the
//! files in place need.
//!
//! The handshake of each connection runs in its own task with a timeout, so a
//! client that connects and sends nothing holds up no one else; a failed
//! handshake (an unknown client CA, a client that does not speak TLS) only
//! closes that connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::DaemonError;

/// Default interval between checks of the certificate files.
pub const DEFAULT_RELOAD_INTERVAL: Duration = Duration::from_secs(60);
/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest accepted PEM file: far above any real chain or CA bundle.
const MAX_PEM_BYTES: u64 = 4 << 20;
/// Connections handshaken but not yet picked up by the server.
const ACCEPT_QUEUE: usize = 64;

/// ALPN for a gRPC listener (HTTP/2 only).
pub const ALPN_H2: &[&[u8]] = &[b"h2"];
/// ALPN for an HTTP listener that speaks both HTTP/2 and HTTP/1.1.
pub const ALPN_HTTP: &[&[u8]] = &[b"h2", b"http/1.1"];

/// Whether a listener with a client CA demands a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every client must present a certificate that chains to the client CA.
    Required,
    /// A client may connect without a certificate (it authenticates some other
    /// way); a certificate it does present must chain to the client CA, or the
    /// handshake fails.
    Optional,
}

/// The PEM files of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates that client certificates must chain to; none: no client
    /// certificates are requested.
    pub client_ca: Option<PathBuf>,
    /// With a client CA: whether a client certificate is required.
    pub client_auth: ClientAuth,
}

/// The files' bytes, compared to see whether anything changed.
#[derive(PartialEq, Eq)]
struct Material {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

fn read_pem(path: &Path, what: &str) -> Result<Vec<u8>, DaemonError> {
    let fail = |reason: String| DaemonError::Tls(format!("{what} {}: {reason}", path.display()));
    let len = std::fs::metadata(path)
        .map_err(|e| fail(e.to_string()))?
        .len();
    if len > MAX_PEM_BYTES {
        return Err(fail(format!("larger than {MAX_PEM_BYTES} bytes")));
    }
    std::fs::read(path).map_err(|e| fail(e.to_string()))
}

impl Material {
    fn read(files: &TlsFiles) -> Result<Self, DaemonError> {
        Ok(Self {
            cert: read_pem(&files.cert, "tls-cert")?,
            key: read_pem(&files.key, "tls-key")?,
            client_ca: files
                .client_ca
                .as_deref()
                .map(|path| read_pem(path, "tls-client-ca"))
                .transpose()?,
        })
    }
}

/// Parses every certificate of a PEM bundle; at least one is required.
pub fn parse_certificates(
    pem: &[u8],
    what: &str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, DaemonError> {
    let fail = |reason: String| DaemonError::Tls(format!("{what} {}: {reason}", path.display()));
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Builds the rustls configuration from the files' bytes.
fn build(
    files: &TlsFiles,
    material: &Material,
    alpn: &[&[u8]],
) -> Result<ServerConfig, DaemonError> {
    let chain = parse_certificates(&material.cert, "tls-cert", &files.cert)?;
    let key = PrivateKeyDer::from_pem_slice(&material.key).map_err(|e| {
        DaemonError::Tls(format!(
            "tls-key {}: no usable private key ({e})",
            files.key.display()
        ))
    })?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DaemonError::Tls(format!("TLS versions: {e}")))?;
    let builder = match (&files.client_ca, &material.client_ca) {
        (Some(path), Some(pem)) => {
            let mut roots = RootCertStore::empty();
            for cert in parse_certificates(pem, "tls-client-ca", path)? {
                roots.add(cert).map_err(|e| {
                    DaemonError::Tls(format!("tls-client-ca {}: {e}", path.display()))
                })?;
            }
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let verifier = match files.client_auth {
                ClientAuth::Required => verifier,
                ClientAuth::Optional => verifier.allow_unauthenticated(),
            };
            let verifier = verifier
                .build()
                .map_err(|e| DaemonError::Tls(format!("tls-client-ca {}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(chain, key).map_err(|e| {
        DaemonError::Tls(format!(
            "tls-cert {} and tls-key {}: {e}",
            files.cert.display(),
            files.key.display()
        ))
    })?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(config)
}

/// The current TLS configuration of one listener, and the files it came from.
pub struct ReloadingTls {
    name: &'static str,
    files: TlsFiles,
    alpn: Vec<&'static [u8]>,
    current: RwLock<(Arc<ServerConfig>, Arc<Material>)>,
}

impl std::fmt::Debug for ReloadingTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingTls")
            .field("name", &self.name)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// What a reload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reload {
    /// The files are unchanged.
    Unchanged,
    /// New files were loaded and are in use.
    Loaded,
    /// New files did not load; the previous configuration stays in use.
    Failed,
}

impl ReloadingTls {
    /// Loads the files for the listener `name` (used in log lines); an error
    /// here stops start-up.
    pub fn load(
        name: &'static str,
        files: TlsFiles,
        alpn: &[&'static [u8]],
    ) -> Result<Arc<Self>, DaemonError> {
        let material = Material::read(&files)?;
        let config = build(&files, &material, alpn)?;
        Ok(Arc::new(Self {
            name,
            files,
            alpn: alpn.to_vec(),
            current: RwLock::new((Arc::new(config), Arc::new(material))),
        }))
    }

    /// The configuration new connections get.
    pub fn current(&self) -> Arc<ServerConfig> {
        match self.current.read() {
            Ok(guard) => guard.0.clone(),
            Err(poisoned) => poisoned.into_inner().0.clone(),
        }
    }

    /// Reads the files again and, if they changed (or `force`), builds and
    /// installs a new configuration. A failure is logged and keeps the old one.
    pub fn reload(&self, force: bool) -> Reload {
        let loaded = Material::read(&self.files).and_then(|material| {
            let old = match self.current.read() {
                Ok(guard) => guard.1.clone(),
                Err(poisoned) => poisoned.into_inner().1.clone(),
            };
            if !force && *old == material {
                return Ok(None);
            }
            let config = build(&self.files, &material, &self.alpn)?;
            Ok(Some((config, material)))
        });
        match loaded {
            Ok(None) => Reload::Unchanged,
            Ok(Some((config, material))) => {
                let new = (Arc::new(config), Arc::new(material));
                match self.current.write() {
                    Ok(mut guard) => *guard = new,
                    Err(poisoned) => *poisoned.into_inner() = new,
                }
                tracing::info!(
                    listener = self.name,
                    cert = %self.files.cert.display(),
                    "TLS certificate reloaded"
                );
                Reload::Loaded
            }
            Err(error) => {
                tracing::error!(
                    listener = self.name,
                    %error,
                    "TLS files did not reload; the previous certificate stays in use"
                );
                Reload::Failed
            }
        }
    }

    /// Reloads every `interval` and on SIGHUP until the task is aborted.
    pub fn spawn_reloader(self: &Arc<Self>, interval: Duration) -> JoinHandle<()> {
        let tls = self.clone();
        tokio::spawn(async move {
            let mut hangup = match tokio::signal::unix::signal(
                tokio::signal::unix::SignalKind::hangup(),
            ) {
                Ok(signal) => Some(signal),
                Err(error) => {
                    tracing::warn!(%error, "cannot watch SIGHUP; TLS files reload on the interval only");
                    None
                }
            };
            // A zero interval would make `interval` panic.
            let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(10)));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticks.tick().await;
            loop {
                let hup = async {
                    match hangup.as_mut() {
                        Some(signal) => signal.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let forced = tokio::select! {
                    _ = ticks.tick() => false,
                    received = hup => {
                        if received.is_none() {
                            hangup = None;
                            continue;
                        }
                        true
                    }
                };
                // File reads and PEM parsing are blocking but small.
                let tls = tls.clone();
                let _ = tokio::task::spawn_blocking(move || tls.reload(forced)).await;
            }
        })
    }
}

/// Accepts TCP connections and completes their TLS handshakes, handing out
/// only connections whose handshake succeeded. It serves both tonic (as a
/// stream of connections) and axum (as an [`axum::serve::Listener`]).
#[derive(Debug)]
pub struct TlsListener {
    local: SocketAddr,
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    tasks: Vec<JoinHandle<()>>,
}

impl TlsListener {
    /// Serves TLS on `listener` with `tls`, reloading its files every
    /// `reload_interval` and on SIGHUP.
    pub fn new(
        listener: TcpListener,
        tls: Arc<ReloadingTls>,
        reload_interval: Duration,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (sender, accepted) = mpsc::channel(ACCEPT_QUEUE);
        let reloader = tls.spawn_reloader(reload_interval);
        let acceptor = tokio::spawn(accept_loop(listener, tls, sender));
        Ok(Self {
            local,
            accepted,
            tasks: vec![reloader, acceptor],
        })
    }
}

/// The connections as a stream of results, as tonic's `serve_with_incoming`
/// takes them; it never yields an error (failed handshakes are dropped).
impl tokio_stream::Stream for TlsListener {
    type Item = Result<TlsStream<TcpStream>, std::io::Error>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.accepted
            .poll_recv(cx)
            .map(|connection| connection.map(|(stream, _)| Ok(stream)))
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(connection) => connection,
            // The accept loop is gone (the runtime is shutting down): no
            // connection will come.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

async fn accept_loop(
    listener: TcpListener,
    tls: Arc<ReloadingTls>,
    sender: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: pause rather than spin.
                tracing::warn!(listener = tls.name, %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if sender.is_closed() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let acceptor = TlsAcceptor::from(tls.current());
        let sender = sender.clone();
        let name = tls.name;
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let _ = sender.send((stream, peer)).await;
                }
                // Per-connection failures are the client's problem; debug level
                // keeps a scanner from flooding the log.
                Ok(Err(error)) => {
                    tracing::debug!(listener = name, %peer, %error, "TLS handshake failed");
                }
                Err(_) => {
                    tracing::debug!(listener = name, %peer, "TLS handshake timed out");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A self-signed certificate for `cn` and its key, as PEM.
    fn self_signed(cn: &str) -> (String, String) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn files(dir: &Path) -> TlsFiles {
        TlsFiles {
            cert: dir.join("tls.crt"),
            key: dir.join("tls.key"),
            client_ca: None,
            client_auth: ClientAuth::Required,
        }
    }

    fn write(files: &TlsFiles, (cert, key): &(String, String)) {
        std::fs::write(&files.cert, cert).unwrap();
        std::fs::write(&files.key, key).unwrap();
    }

    #[test]
    fn a_bad_new_file_keeps_the_old_configuration_and_a_good_one_replaces_it() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        write(&files, &self_signed("first"));
        let tls = ReloadingTls::load("test", files.clone(), ALPN_H2).unwrap();
        let first = tls.current();
        assert_eq!(first.alpn_protocols, vec![b"h2".to_vec()]);
        assert_eq!(tls.reload(false), Reload::Unchanged);
        assert!(Arc::ptr_eq(&first, &tls.current()));

        // A key that belongs to another certificate, then a file that is not PEM.
        let other = self_signed("other");
        std::fs::write(&files.key, &other.1).unwrap();
        assert_eq!(tls.reload(false), Reload::Failed);
        assert!(Arc::ptr_eq(&first, &tls.current()));
        std::fs::write(&files.cert, "not a certificate").unwrap();
        assert_eq!(tls.reload(false), Reload::Failed);
        assert!(Arc::ptr_eq(&first, &tls.current()));
        std::fs::remove_file(&files.cert).unwrap();
        assert_eq!(tls.reload(true), Reload::Failed);
        assert!(Arc::ptr_eq(&first, &tls.current()));

        write(&files, &self_signed("second"));
        assert_eq!(tls.reload(false), Reload::Loaded);
        assert!(!Arc::ptr_eq(&first, &tls.current()));
        assert_eq!(tls.current().alpn_protocols, vec![b"h2".to_vec()]);
    }

    #[test]
    fn start_up_refuses_unusable_files_by_setting_name() {
        let dir = tempfile::tempdir().unwrap();
        let files = files(dir.path());
        let err = ReloadingTls::load("test", files.clone(), ALPN_HTTP).unwrap_err();
        assert!(err.to_string().contains("tls-cert"), "{err}");
        let (cert, _) = self_signed("a");
        let (_, key) = self_signed("b");
        write(&files, &(cert.clone(), key));
        let err = ReloadingTls::load("test", files.clone(), ALPN_HTTP).unwrap_err();
        assert!(err.to_string().contains("tls-key"), "{err}");
        write(&files, &self_signed("c"));
        let with_ca = TlsFiles {
            client_ca: Some(dir.path().join("ca.pem")),
            ..files
        };
        std::fs::write(dir.path().join("ca.pem"), "-----BEGIN NOTHING-----\n").unwrap();
        let err = ReloadingTls::load("test", with_ca.clone(), ALPN_HTTP).unwrap_err();
        assert!(err.to_string().contains("tls-client-ca"), "{err}");
        std::fs::write(dir.path().join("ca.pem"), cert).unwrap();
        ReloadingTls::load("test", with_ca, ALPN_HTTP).unwrap();
    }
}
