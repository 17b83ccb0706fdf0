//! Opening the log and serving it on three listeners.

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use merklog_daemon::tls::{ALPN_H2, ALPN_HTTP, ReloadingTls, TlsListener};
use merklog_log::{ALGORITHM_ED25519, Log, LogConfig, LogMetadata, LogStore};
use merklog_note::Ed25519Signer;
use merklog_proto::v1::alerts_server::AlertsServer;
use merklog_proto::v1::log_server::LogServer;
use merklog_proto::v1::query_server::QueryServer;
use merklog_proto::v1::sources_server::SourcesServer;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tracing::{info, warn};

use crate::auth::Authenticator;
use crate::auth::grpc_layer::AuthLayer;
use crate::config::VerifyOnStart;
use crate::grpc::LogService;
use crate::health::Health;
use crate::keys::{self, DB_DIR, KeyPaths};
use crate::query::service::QueryService;
use crate::receipts::Receipts;
use crate::receipts::scrapi::{self, Scrapi};
use crate::rules::Rules;
use crate::rules::service::AlertsService;
use crate::serve::{spawn_axum, spawn_grpc, stopped};
use crate::sources::Sources;
use crate::sources::service::SourcesService;
use crate::tls::WithPeerCertificates;
use crate::{ServerConfig, ServerError, auth, fsck, http, probes, telemetry};

/// How long in-flight calls may take to finish after the shutdown signal before
/// connections are dropped.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2 flow-control windows: large enough that a client streaming batches of
/// entries is not throttled by round trips.
const STREAM_WINDOW_BYTES: u32 = 2 << 20;
const CONNECTION_WINDOW_BYTES: u32 = 8 << 20;

/// The three bound listening sockets.
#[derive(Debug)]
pub struct Listeners {
    /// gRPC.
    pub grpc: TcpListener,
    /// tlog-tiles HTTP.
    pub http: TcpListener,
    /// Prometheus metrics.
    pub metrics: TcpListener,
    /// OTLP/gRPC, unless `off`.
    pub otlp_grpc: Option<TcpListener>,
    /// OTLP/HTTP, unless `off`.
    pub otlp_http: Option<TcpListener>,
}

/// The addresses the listeners are bound to (port 0 resolved).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundAddrs {
    /// gRPC.
    pub grpc: SocketAddr,
    /// tlog-tiles HTTP.
    pub http: SocketAddr,
    /// Prometheus metrics.
    pub metrics: SocketAddr,
    /// OTLP/gRPC, unless `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP, unless `off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub otlp_http: Option<SocketAddr>,
}

impl Listeners {
    /// Binds the configured addresses.
    pub async fn bind(config: &ServerConfig) -> Result<Self, ServerError> {
        async fn one(name: &str, addr: SocketAddr) -> Result<TcpListener, ServerError> {
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Io {
                    context: format!("binding the {name} listener to {addr}"),
                    source,
                })
        }
        let grpc = one("gRPC", config.listen).await?;
        let http = one("HTTP", config.http_listen).await?;
        let metrics = one("metrics", config.metrics_listen).await?;
        let otlp_grpc = match config.otlp_grpc_addr.0 {
            Some(addr) => Some(one("OTLP/gRPC", addr).await?),
            None => None,
        };
        let otlp_http = match config.otlp_http_addr.0 {
            Some(addr) => Some(one("OTLP/HTTP", addr).await?),
            None => None,
        };
        Ok(Self {
            grpc,
            http,
            metrics,
            otlp_grpc,
            otlp_http,
        })
    }

    /// The bound addresses.
    pub fn local_addrs(&self) -> Result<BoundAddrs, ServerError> {
        let addr = |listener: &TcpListener| {
            listener.local_addr().map_err(|source| ServerError::Io {
                context: "reading a listener's address".into(),
                source,
            })
        };
        Ok(BoundAddrs {
            grpc: addr(&self.grpc)?,
            http: addr(&self.http)?,
            metrics: addr(&self.metrics)?,
            otlp_grpc: self.otlp_grpc.as_ref().map(addr).transpose()?,
            otlp_http: self.otlp_http.as_ref().map(addr).transpose()?,
        })
    }
}

/// An opened log, ready to serve.
pub struct Server {
    config: ServerConfig,
    log: Log,
    /// The log's key, also for the log-signed source status records; `None` on a
    /// read-only node.
    signer: Option<Arc<Ed25519Signer>>,
    origin: String,
    vkey: String,
    created: bool,
    /// Cluster mode: what the follow-or-lead task drives.
    role: Option<crate::failover::Role>,
    /// The receipt issuer; `None` on a read-only node without `receipt.key`.
    receipts: Option<Arc<Receipts>>,
    /// The alert entries' key; `None` on a read-only node.
    alert_signer: Option<Arc<Ed25519Signer>>,
}

impl Server {
    /// Opens the data directory, creating the log on first start (origin from the
    /// configuration or the host name, a fresh key, the store's metadata record),
    /// and starts the sequencer. A later start takes the origin from the store and
    /// refuses a different configured origin.
    pub async fn open(config: ServerConfig) -> Result<Self, ServerError> {
        config.validate()?;
        crate::cluster::validate(&config)?;
        tokio::task::spawn_blocking(move || open_blocking(config))
            .await
            .map_err(|e| ServerError::Config(format!("start-up task failed: {e}")))?
    }

    /// The log's origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The log's verifier key text (`<origin>+<id>+<base64>`).
    pub fn vkey(&self) -> &str {
        &self.vkey
    }

    /// True if this start created the log (and its key).
    pub fn created(&self) -> bool {
        self.created
    }

    /// A handle on the running log (for embedding and tests).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Serves until `shutdown` completes, then drains: streams end, in-flight
    /// calls finish (up to 10 s), and the sequencer completes its round in flight.
    pub async fn serve(
        self,
        listeners: Listeners,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        let addrs = listeners.local_addrs()?;
        let limits = self.config.limits()?;
        // Both ports serve the same files; each listener has its own ALPN.
        let tls = match self.config.tls_files() {
            Some(files) => {
                let load = |name: &'static str, alpn: &'static [&'static [u8]]| {
                    ReloadingTls::load(name, files.clone(), alpn)
                        .map_err(|e| ServerError::Config(e.to_string()))
                };
                Some((load("grpc", ALPN_H2)?, load("http", ALPN_HTTP)?))
            }
            None => None,
        };
        let reload_interval = self.config.tls_reload_interval.get();
        let auth = Arc::new(Authenticator::from_config(&self.config)?);
        let prometheus = telemetry::prometheus_handle()?;
        let upkeep = telemetry::spawn_upkeep(prometheus.clone());
        let clock = telemetry::PublishClock::watch(&self.log);

        let (stop_tx, stop_rx) = watch::channel(false);
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = Health::new(reporter);
        if let Some(reason) = self.log.signing_refused() {
            warn!(%reason, "the log refuses to sign: serving reads only");
            health.signing_refused();
        }
        health.set(true).await;
        // The witness check at start-up runs in the background, so a refusal to
        // sign can come after this point: watch for it.
        let refusal_watch = watch_signing_refusal(&self.log, health.clone());

        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(merklog_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .map_err(|e| ServerError::Config(format!("reflection: {e}")))?;
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(merklog_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .map_err(|e| ServerError::Config(format!("reflection: {e}")))?;
        let reloader = auth.spawn_reloader(&self.config, stop_rx.clone());
        let rules = Arc::new(
            Rules::start(
                &self.config,
                self.log.clone(),
                self.alert_signer.clone(),
                stop_rx.clone(),
            )
            .await?,
        );
        let sources = Sources::start(
            &self.config,
            self.log.clone(),
            self.signer.clone(),
            Arc::clone(&rules),
            stop_rx.clone(),
        )
        .await?;
        let role_task = self.role.map(|role| {
            let advertise = self
                .config
                .cluster_advertise
                .clone()
                .unwrap_or_else(|| format!("http://{}", addrs.grpc));
            crate::failover::spawn(role, self.log.clone(), advertise, stop_rx.clone())
        });
        let sources_service = tower::Layer::layer(
            &telemetry::RpcMetricsLayer,
            tower::Layer::layer(
                &AuthLayer::new(Arc::clone(&auth)),
                SourcesServer::new(SourcesService::new(Arc::clone(&sources), stop_rx.clone())),
            ),
        );
        let alerts_service = tower::Layer::layer(
            &telemetry::RpcMetricsLayer,
            tower::Layer::layer(
                &AuthLayer::new(Arc::clone(&auth)),
                AlertsServer::new(AlertsService::new(Arc::clone(&rules), stop_rx.clone())),
            ),
        );
        let query_service = tower::Layer::layer(
            &telemetry::RpcMetricsLayer,
            tower::Layer::layer(
                &AuthLayer::new(Arc::clone(&auth)),
                QueryServer::new(QueryService::new(self.log.clone())),
            ),
        );
        // Metrics outside access control, so refused calls are counted too.
        let log_service = tower::Layer::layer(
            &telemetry::RpcMetricsLayer,
            tower::Layer::layer(
                &AuthLayer::new(Arc::clone(&auth)),
                LogServer::new(
                    LogService::new(
                        self.log.clone(),
                        limits,
                        Arc::clone(&auth),
                        health.clone(),
                        stop_rx.clone(),
                        Arc::clone(&sources),
                    )
                    .with_receipts(self.receipts.clone()),
                )
                .max_decoding_message_size(limits.max_request_bytes()),
            ),
        );

        let config = &self.config;
        let mut builder = tonic::transport::Server::builder()
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES)
            .max_concurrent_streams(config.max_streams_per_connection)
            .http2_max_header_list_size(config.max_header_list_bytes)
            .http2_keepalive_interval(Some(config.http2_keepalive_interval.get()))
            .http2_keepalive_timeout(Some(config.http2_keepalive_timeout.get()));
        if let Some(age) = config.max_connection_age {
            builder = builder.max_connection_age(age.get());
        }
        let routes = builder
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(log_service)
            .add_service(sources_service)
            .add_service(query_service)
            .add_service(alerts_service);
        let grpc_stopped = stopped(stop_rx.clone());
        let grpc: JoinHandle<Result<(), ServerError>> = match &tls {
            Some((grpc_tls, _)) => {
                let incoming = TlsListener::new(listeners.grpc, grpc_tls.clone(), reload_interval)
                    .map_err(|source| ServerError::Io {
                        context: "serving TLS on the gRPC listener".into(),
                        source,
                    })?;
                spawn_grpc(
                    "grpc",
                    routes.serve_with_incoming_shutdown(incoming, grpc_stopped),
                )
            }
            None => {
                let incoming = TcpIncoming::from(listeners.grpc).with_nodelay(Some(true));
                spawn_grpc(
                    "grpc",
                    routes.serve_with_incoming_shutdown(incoming, grpc_stopped),
                )
            }
        };
        let scrapi = Scrapi {
            log: self.log.clone(),
            receipts: self.receipts.clone(),
            issuers: Arc::new(crate::receipts::settings::issuer_registry(
                &config.scitt_issuer,
            )?),
            sources: Arc::clone(&sources),
            auth: Arc::clone(&auth),
            max_entry_bytes: config.max_entry_bytes,
        };
        // The probes are merged after the access layer, so they stay open; SCITT
        // registration checks the append role itself.
        let http_routes = http::router(self.log.clone(), health.clone())
            .merge(scrapi::read_router(scrapi.clone()))
            .layer(axum::middleware::from_fn_with_state(
                Arc::clone(&auth),
                auth::http_layer::require_read,
            ))
            .merge(auth::admin_http::router(
                Arc::clone(&auth),
                config.tokens_file.clone(),
            ))
            .merge(scrapi::register_router(scrapi))
            .merge(probes::router(health.clone()));
        let http = match &tls {
            Some((_, http_tls)) => {
                let listener = TlsListener::new(listeners.http, http_tls.clone(), reload_interval)
                    .map_err(|source| ServerError::Io {
                        context: "serving TLS on the HTTP listener".into(),
                        source,
                    })?;
                let stop = stop_rx.clone();
                let service = WithPeerCertificates(http_routes);
                tokio::spawn(async move {
                    axum::serve(listener, service)
                        .with_graceful_shutdown(stopped(stop))
                        .await
                        .map_err(|e| ServerError::Serve {
                            listener: "http",
                            message: e.to_string(),
                        })
                })
            }
            None => spawn_axum("http", listeners.http, http_routes, &stop_rx),
        };
        let metrics = spawn_axum(
            "metrics",
            listeners.metrics,
            telemetry::router(prometheus, clock),
            &stop_rx,
        );
        let otlp = crate::otlp::spawn(
            crate::otlp::OtlpListeners {
                grpc: listeners.otlp_grpc,
                http: listeners.otlp_http,
            },
            Arc::new(crate::otlp::OtlpIngest::new(
                Arc::clone(&sources),
                Arc::clone(&auth),
                limits,
                config.schema,
            )),
            tls.clone(),
            reload_interval,
            &stop_rx,
        )?;

        info!(
            origin = %self.origin,
            grpc = %addrs.grpc,
            http = %addrs.http,
            metrics = %addrs.metrics,
            otlp_grpc = ?addrs.otlp_grpc,
            otlp_http = ?addrs.otlp_http,
            tree_size = self.log.latest().size().0,
            "merklogd serving"
        );
        if tls.is_some() {
            info!(
                client_certificates = self.config.tls_client_ca.is_some(),
                "the gRPC and tiles HTTP ports serve TLS"
            );
        }
        if let Some(path) = &self.config.addr_file {
            write_addr_file(path, &addrs)?;
        }

        let mut servers = vec![grpc, http, metrics];
        servers.extend(otlp);
        let early = tokio::select! {
            () = shutdown => None,
            (result, index, _) = futures::future::select_all(servers.iter_mut()) => {
                Some((index, result))
            }
        };
        info!("shutting down: finishing in-flight calls and the current round");
        let _ = stop_tx.send(true);
        health.set(false).await;

        let mut outcome = Ok(());
        if let Some((index, result)) = early {
            outcome = flatten(result);
            if let Err(error) = &outcome {
                warn!(%error, "a listener stopped unexpectedly");
            }
            // That handle has completed; awaiting it again would panic.
            servers[index] = tokio::spawn(async { Ok(()) });
        }
        let aborts: Vec<_> = servers.iter().map(JoinHandle::abort_handle).collect();
        let drain = futures::future::join_all(servers);
        match tokio::time::timeout(DRAIN_TIMEOUT, drain).await {
            Ok(results) => {
                for result in results {
                    if let (Ok(()), Err(error)) = (&outcome, flatten(result)) {
                        outcome = Err(error);
                    }
                }
            }
            Err(_) => {
                warn!("in-flight calls did not finish within {DRAIN_TIMEOUT:?}; dropping them");
                aborts.iter().for_each(tokio::task::AbortHandle::abort);
            }
        }
        if let Some(task) = role_task {
            // It resigns (leader) or stops following on the stop flag.
            if tokio::time::timeout(DRAIN_TIMEOUT, task).await.is_err() {
                warn!("the cluster role task did not stop in time");
            }
        }
        // The watcher waits for a refusal that may never come.
        refusal_watch.abort();
        let _ = refusal_watch.await;
        if let Some(reloader) = reloader {
            reloader.abort();
            let _ = reloader.await;
        }
        sources.abort();
        self.log.shutdown().await;
        upkeep.abort();
        info!("merklogd stopped");
        outcome
    }
}

/// Opens the data directory (the blocking part of [`Server::open`]).
fn open_blocking(config: ServerConfig) -> Result<Server, ServerError> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| ServerError::Io {
        context: format!("creating the data directory {}", config.data_dir.display()),
        source,
    })?;
    let store = merklog_store::RocksStore::open(config.data_dir.join(DB_DIR))?;
    let paths = KeyPaths::new(&config.data_dir);
    if config.read_only {
        return open_reader(config, store, &paths);
    }
    let stored = store.metadata().map_err(|e| ServerError::Log(e.into()))?;
    let (origin, key, created) = match stored {
        Some(metadata) => {
            if let Some(requested) = config.origin.as_ref().filter(|o| **o != metadata.origin) {
                return Err(ServerError::Identity(format!(
                    "the data directory {} holds the log {:?}; refusing to start it as {:?} \
                     (drop --origin, or use another --data-dir for a new log)",
                    config.data_dir.display(),
                    metadata.origin,
                    requested
                )));
            }
            let key = keys::load_or_create_key(&paths, &metadata.origin, false)?;
            if key.vkey != metadata.verifier_key {
                return Err(ServerError::Identity(format!(
                    "{} does not hold the key this log was created with ({})",
                    paths.key.display(),
                    metadata.verifier_key
                )));
            }
            (metadata.origin, key, false)
        }
        None => {
            if config.require_origin && config.origin.is_none() {
                return Err(ServerError::Config(format!(
                    "no origin is configured and require-origin is set: {} holds no log yet, \
                     and a new log's origin can never change; set --origin (MERKLOGD_ORIGIN), \
                     e.g. log.example.com/audit",
                    config.data_dir.display()
                )));
            }
            let origin = config.origin.clone().unwrap_or_else(keys::default_origin);
            keys::check_origin(&origin)?;
            let key = keys::load_or_create_key(&paths, &origin, true)?;
            store.initialize(&LogMetadata {
                origin: origin.clone(),
                verifier_key: key.vkey.clone(),
                algorithm: ALGORITHM_ED25519.to_owned(),
            })?;
            info!(%origin, vkey = %key.vkey, data_dir = %config.data_dir.display(), "created a new log");
            (origin, key, true)
        }
    };
    let vkey = key.vkey.clone();
    let log_config = LogConfig {
        witnessing: crate::witnessing::witnessing(&config, &origin, &vkey)?,
        ..config.log_config()
    };
    if config.verify_on_start == VerifyOnStart::Full {
        let report = fsck::check_store(&store)
            .map_err(|finding| ServerError::Fsck(format!("verify-on-start=full: {finding}")))?;
        info!(%report, "verify-on-start=full");
    }
    let store: Arc<dyn LogStore> = Arc::new(store);
    let (store, node) = crate::cluster::store(
        &config,
        store,
        &origin,
        key.signer.verifier(),
        log_config.witnessing.is_some(),
    )?;
    let signer = Arc::new(key.signer);
    let receipts = receipts(&config, true)?;
    let alert_signer = Arc::new(crate::rules::entry::load_or_create(&config.data_dir)?);
    let log = Log::open(store, signer.clone(), origin.clone(), log_config)?;
    let role = node.and_then(|node| {
        let election = node.election?;
        // Nothing is appended before the election says this node leads.
        log.set_standby(Some(
            "this node is a standby and has not found the leader yet; retry another node".into(),
        ));
        Some(crate::failover::Role::Elect {
            store: node.store,
            election,
        })
    });
    Ok(Server {
        config,
        log,
        signer: Some(signer),
        origin,
        vkey,
        created: created || key.created,
        role,
        receipts,
        alert_signer: Some(alert_signer),
    })
}

/// The receipt key, loaded (or, when `create` is set, generated on first start).
fn receipts(config: &ServerConfig, create: bool) -> Result<Option<Arc<Receipts>>, ServerError> {
    let key = crate::receipts::key::load_or_create(
        &config.data_dir,
        config.receipt_algorithm.algorithm(),
        create,
    )?;
    Ok(key.map(|key| Arc::new(Receipts::new(key))))
}

/// Opens a read-only node: the cache brought to the bucket's public checkpoint, the
/// log opened without a key.
fn open_reader(
    config: ServerConfig,
    store: merklog_store::RocksStore,
    paths: &KeyPaths,
) -> Result<Server, ServerError> {
    let (origin, vkey, verifier) = crate::cluster::reader_identity(&config, &store, &paths.vkey)?;
    let store: Arc<dyn LogStore> = Arc::new(store);
    let reader = crate::cluster::reader(&config, store.clone(), &origin, verifier)?;
    let log = Log::open_reader(store, origin.clone(), config.log_config())?;
    let receipts = receipts(&config, false)?;
    Ok(Server {
        config,
        log,
        signer: None,
        origin,
        vkey,
        created: false,
        role: Some(crate::failover::Role::Read(reader)),
        receipts,
        alert_signer: None,
    })
}

/// The resolved settings as JSON (the file's key names), and with a policy
/// its parsed content under `parsed-policy`: what `merklogd --print-config`
/// prints. A policy that does not parse is an error here as at start-up.
pub fn resolved_config(config: &ServerConfig) -> Result<serde_json::Value, ServerError> {
    let mut json = serde_json::to_value(config)
        .map_err(|e| ServerError::Config(format!("encoding the settings: {e}")))?;
    if let (Some(path), serde_json::Value::Object(map)) = (&config.policy, &mut json) {
        let policy = crate::witnessing::read_policy(path)?;
        map.insert(
            "parsed-policy".to_owned(),
            crate::witnessing::policy_summary(&policy),
        );
    }
    Ok(json)
}

/// Opens the log and serves it until `shutdown` completes: [`Server::open`] then
/// [`Server::serve`]. When this start created the log, its verifier key is
/// printed on stdout first: auditors and clients need it, and scripts read it
/// there.
pub async fn run(
    config: ServerConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let server = Server::open(config).await?;
    if server.created() {
        println!("{}", server.vkey());
    }
    server.serve(listeners, shutdown).await
}

/// Turns health NOT_SERVING as soon as the log refuses to sign (e.g. a witness
/// has cosigned a larger tree than the log holds: the data directory was
/// restored from an old copy). A refusal is final for the process.
fn watch_signing_refusal(log: &Log, health: Health) -> JoinHandle<()> {
    let mut refusals = log.watch_signing_refused();
    tokio::spawn(async move {
        // Err: the log is gone (shutdown), nothing left to report.
        let Ok(reason) = refusals.wait_for(Option::is_some).await else {
            return;
        };
        let reason = reason.clone().unwrap_or_default();
        if !health.is_refused() {
            warn!(%reason, "the log refuses to sign: serving reads only");
            health.signing_refused();
        }
    })
}

fn flatten(
    result: Result<Result<(), ServerError>, tokio::task::JoinError>,
) -> Result<(), ServerError> {
    match result {
        Ok(inner) => inner,
        Err(join) => Err(ServerError::Serve {
            listener: "task",
            message: join.to_string(),
        }),
    }
}

/// Writes the bound addresses as JSON, atomically (write then rename), so a
/// reader never sees a partial file.
fn write_addr_file(path: &Path, addrs: &BoundAddrs) -> Result<(), ServerError> {
    let json = serde_json::to_string(addrs)
        .map_err(|e| ServerError::Config(format!("encoding the bound addresses: {e}")))?;
    merklog_daemon::write_addr_file(path, &format!("{json}\n")).map_err(|source| ServerError::Io {
        context: format!("writing the address file {}", path.display()),
        source,
    })
}
