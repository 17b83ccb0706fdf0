//! A real merklogd in the test's process.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use merklog_note::Ed25519Verifier;
use merklog_note::parse_verifier_key;
use merklog_proto::v1::log_client::LogClient;
use merklog_server::{BoundAddrs, Listeners, Server, ServerConfig, ServerError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// The origin of [`test_config`].
pub const ORIGIN: &str = "test.example/log";

/// The configuration tests start from: `data_dir`, every listener (OTLP too) on
/// loopback port 0, origin [`ORIGIN`], defaults for the rest.
pub fn test_config(data_dir: &Path) -> ServerConfig {
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    ServerConfig {
        data_dir: data_dir.to_owned(),
        listen: any,
        http_listen: any,
        metrics_listen: any,
        otlp_grpc_addr: merklog_server::otlp::settings::OtlpListen(Some(any)),
        otlp_http_addr: merklog_server::otlp::settings::OtlpListen(Some(any)),
        origin: Some(ORIGIN.to_owned()),
        ..ServerConfig::default()
    }
}

/// A merklogd serving in this process until [`TestServer::stop`] or drop.
pub struct TestServer {
    /// Where it listens.
    pub addrs: BoundAddrs,
    /// The log's origin.
    pub origin: String,
    /// The log's verifier key (note format).
    pub vkey: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServerError>>>,
}

impl TestServer {
    /// Starts with [`test_config`] on `data_dir`.
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(test_config(data_dir)).await
    }

    /// Starts with `config`; panics if it cannot.
    pub async fn start_with(config: ServerConfig) -> Self {
        Self::try_start(config).await.unwrap()
    }

    /// Binds the listeners (before opening the log, as merklogd does), opens the log
    /// and serves; the error is the server's own when either fails.
    pub async fn try_start(config: ServerConfig) -> Result<Self, ServerError> {
        let listeners = Listeners::bind(&config).await?;
        let addrs = listeners.local_addrs()?;
        let server = Server::open(config).await?;
        let origin = server.origin().to_owned();
        let vkey = server.vkey().to_owned();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.serve(listeners, async {
            let _ = stopped.await;
        }));
        Ok(Self {
            addrs,
            origin,
            vkey,
            stop: Some(stop),
            task: Some(task),
        })
    }

    /// The gRPC endpoint, `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addrs.grpc)
    }

    /// A gRPC client of the log that accepts answers up to 64 MiB.
    pub async fn client(&self) -> LogClient<Channel> {
        let channel = Channel::from_shared(self.url())
            .unwrap()
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .unwrap();
        LogClient::new(channel).max_decoding_message_size(64 << 20)
    }

    /// A plain channel to the gRPC listener (for the health and reflection services).
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// The URL of `path` on the tlog-tiles HTTP listener.
    pub fn http(&self, path: &str) -> String {
        format!(
            "http://{}/{}",
            self.addrs.http,
            path.trim_start_matches('/')
        )
    }

    /// The log's signature verifier.
    pub fn verifier(&self) -> Ed25519Verifier {
        parse_verifier_key(&self.vkey).unwrap()
    }

    /// Graceful stop; the server must exit cleanly within 30 s.
    pub async fn stop(mut self) {
        self.stop.take().unwrap().send(()).unwrap();
        let task = self.task.take().unwrap();
        tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("server did not stop in time")
            .unwrap()
            .unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
