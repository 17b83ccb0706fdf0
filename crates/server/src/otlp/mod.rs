//! OpenTelemetry logs ingest: `opentelemetry.proto.collector.logs.v1.LogsService/Export`
//! over gRPC (gzip accepted) on its own port, and OTLP/HTTP `POST /v1/logs`
//! (`application/x-protobuf` or OTLP JSON, optionally `Content-Encoding: gzip`) on
//! another.
//!
//! Each log record becomes one entry, the canonical JSON leaf of
//! `merklog_event::otlp` holding the record, its resource and scope, and the
//! authenticated principal. An Export is one append call: it is answered only once
//! every record is sealed in a signed checkpoint, and it is never partly accepted.
//! A malformed request (a duplicate attribute key, a trace id of the wrong length,
//! a record over `max-entry-bytes`, more records than `max-entries-per-call`, a
//! record that does not conform to the log's schema) is refused whole with
//! INVALID_ARGUMENT (HTTP 400) naming the record and the field; overload and
//! witness waits are RESOURCE_EXHAUSTED / UNAVAILABLE (HTTP 429 / 503 with
//! `Retry-After`), which exporters retry. The ports share TLS and access control
//! with the gRPC port; Export needs the `append` role.

mod convert;
mod grpc;
mod http;
pub mod settings;

use std::sync::Arc;

use bytes::Bytes;
use merklog_daemon::tls::{ReloadingTls, TlsListener};
use merklog_log::IndexTerm;
use merklog_proto::convert::Limits;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::Status;

use crate::auth::{Authenticator, Caller};
use crate::query::terms::event_terms;
use crate::schema::Schema;
use crate::sources::{AppendError, Sources};
use crate::{ServerError, status, telemetry};

/// What both OTLP listeners share: turning a request into entries and appending
/// them as one call.
pub(crate) struct OtlpIngest {
    sources: Arc<Sources>,
    auth: Arc<Authenticator>,
    limits: Limits,
    schema: Option<Schema>,
}

impl OtlpIngest {
    pub(crate) fn new(
        sources: Arc<Sources>,
        auth: Arc<Authenticator>,
        limits: Limits,
        schema: Option<Schema>,
    ) -> Self {
        Self {
            sources,
            auth,
            limits,
            schema,
        }
    }

    /// The leaves of a request in request order, checked against the log's limits
    /// and schema, with each one's index terms (no lists at all when no record is an
    /// audit event); or why the request is refused.
    fn entries(
        &self,
        caller: &Caller,
        request: ExportLogsServiceRequest,
    ) -> Result<(Vec<Bytes>, Vec<Vec<IndexTerm>>), Status> {
        let principal = self
            .auth
            .is_enabled()
            .then(|| caller.principal.as_str().to_owned());
        let max_records = self.limits.max_entries_per_call();
        let count = convert::record_count(&request);
        if count > max_records {
            return Err(Status::invalid_argument(format!(
                "the request holds {count} log records, more than max-entries-per-call ({max_records}); \
                 send smaller batches"
            )));
        }
        let leaves =
            convert::leaves(request, principal.as_deref()).map_err(Status::invalid_argument)?;
        let max_bytes = self.limits.max_entry_bytes();
        let mut entries = Vec::with_capacity(leaves.len());
        let mut terms = Vec::with_capacity(leaves.len());
        for convert::Leaf {
            place,
            bytes,
            event,
        } in leaves
        {
            if bytes.len() > max_bytes {
                return Err(Status::invalid_argument(format!(
                    "{place}: the record is {} bytes as a log entry, more than max-entry-bytes ({max_bytes})",
                    bytes.len()
                )));
            }
            // The event read from the record is what reading its leaf would give,
            // so the schema check and the index need not parse the leaf.
            if let (Some(schema), Err(e)) = (self.schema, &event) {
                return Err(Status::invalid_argument(format!(
                    "{place}: not a {schema} audit event: {e} (this log has schema = \"{schema}\")"
                )));
            }
            terms.push(
                event
                    .map(|event| event_terms(&event, None))
                    .unwrap_or_default(),
            );
            entries.push(Bytes::from(bytes));
        }
        if terms.iter().all(Vec::is_empty) {
            terms.clear();
        }
        Ok((entries, terms))
    }

    /// Appends every record of `request` as one call; returns once all are sealed.
    pub(crate) async fn export(
        &self,
        caller: &Caller,
        request: ExportLogsServiceRequest,
    ) -> Result<(), Status> {
        let (entries, terms) = self.entries(caller, request)?;
        if entries.is_empty() {
            return Ok(());
        }
        let bytes = entries.iter().map(Bytes::len).sum();
        let count = entries.len();
        self.auth
            .limiter
            .check_append(&caller.principal, count, bytes)
            .inspect_err(|_| telemetry::record_auth_rejection(crate::auth::limits::RATE_LIMITED))?;
        self.sources
            .append_checked(&caller.principal, entries, terms)
            .await
            .map_err(|e| match e {
                AppendError::Refused(status) => status,
                AppendError::Log(error) => status::log_status(error),
            })?;
        telemetry::record_append(caller.principal.as_str(), count);
        Ok(())
    }
}

/// The OTLP listeners: their sockets, and what they need to serve.
pub(crate) struct OtlpListeners {
    pub(crate) grpc: Option<TcpListener>,
    pub(crate) http: Option<TcpListener>,
}

/// Starts the OTLP listeners that are configured.
pub(crate) fn spawn(
    listeners: OtlpListeners,
    ingest: Arc<OtlpIngest>,
    tls: Option<(Arc<ReloadingTls>, Arc<ReloadingTls>)>,
    reload_interval: std::time::Duration,
    stop: &watch::Receiver<bool>,
) -> Result<Vec<JoinHandle<Result<(), ServerError>>>, ServerError> {
    let mut tasks = Vec::new();
    if let Some(listener) = listeners.grpc {
        tasks.push(grpc::spawn(
            listener,
            Arc::clone(&ingest),
            tls.as_ref().map(|(grpc, _)| grpc.clone()),
            reload_interval,
            stop,
        )?);
    }
    if let Some(listener) = listeners.http {
        let router = http::router(Arc::clone(&ingest));
        let task = match tls.map(|(_, http)| http) {
            Some(http_tls) => {
                let listener =
                    TlsListener::new(listener, http_tls, reload_interval).map_err(|source| {
                        ServerError::Io {
                            context: "serving TLS on the OTLP/HTTP listener".into(),
                            source,
                        }
                    })?;
                let stop = stop.clone();
                let service = crate::tls::WithPeerCertificates(router);
                tokio::spawn(async move {
                    axum::serve(listener, service)
                        .with_graceful_shutdown(crate::serve::stopped(stop))
                        .await
                        .map_err(|e| ServerError::Serve {
                            listener: "otlp-http",
                            message: e.to_string(),
                        })
                })
            }
            None => crate::serve::spawn_axum("otlp-http", listener, router, stop),
        };
        tasks.push(task);
    }
    Ok(tasks)
}
