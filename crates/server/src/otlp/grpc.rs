//! `opentelemetry.proto.collector.logs.v1.LogsService` on the OTLP/gRPC port.

use std::sync::Arc;
use std::time::Duration;

use merklog_daemon::tls::{ReloadingTls, TlsListener};
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::codec::CompressionEncoding;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use super::OtlpIngest;
use crate::ServerError;
use crate::auth::Caller;
use crate::auth::grpc_layer::AuthLayer;

struct Logs {
    ingest: Arc<OtlpIngest>,
}

#[tonic::async_trait]
impl LogsService for Logs {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let caller = request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("the call was not authenticated"))?;
        self.ingest.export(&caller, request.into_inner()).await?;
        // Never a partial success: every record was appended.
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: None,
        }))
    }
}

/// Serves the logs service (behind access control and the RPC metrics) on `listener`.
pub(super) fn spawn(
    listener: TcpListener,
    ingest: Arc<OtlpIngest>,
    tls: Option<Arc<ReloadingTls>>,
    reload_interval: Duration,
    stop: &watch::Receiver<bool>,
) -> Result<JoinHandle<Result<(), ServerError>>, ServerError> {
    let max_bytes = ingest.limits.max_request_bytes();
    let auth = Arc::clone(&ingest.auth);
    // Answers go uncompressed: an Export answer is an empty message, and gzip would
    // set up a compressor per call to wrap nothing (a client accepts identity always).
    let service = LogsServiceServer::new(Logs { ingest })
        .accept_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_bytes);
    let service = tower::Layer::layer(
        &crate::telemetry::RpcMetricsLayer,
        tower::Layer::layer(&AuthLayer::new(auth), service),
    );
    let routes = tonic::transport::Server::builder().add_service(service);
    let stopped = crate::serve::stopped(stop.clone());
    Ok(match tls {
        Some(tls) => {
            let incoming = TlsListener::new(listener, tls, reload_interval).map_err(|source| {
                ServerError::Io {
                    context: "serving TLS on the OTLP/gRPC listener".into(),
                    source,
                }
            })?;
            crate::serve::spawn_grpc(
                "otlp-grpc",
                routes.serve_with_incoming_shutdown(incoming, stopped),
            )
        }
        None => {
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            crate::serve::spawn_grpc(
                "otlp-grpc",
                routes.serve_with_incoming_shutdown(incoming, stopped),
            )
        }
    })
}
