//! Serving helpers shared by every listener: the stop future and the tasks that run a
//! tonic or axum server until it ends, with its error named after the listener.

use std::future::Future;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ServerError;

/// Completes once the stop flag is set (or its sender is gone).
pub(crate) async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

pub(crate) fn spawn_grpc(
    listener: &'static str,
    serve: impl Future<Output = Result<(), tonic::transport::Error>> + Send + 'static,
) -> JoinHandle<Result<(), ServerError>> {
    tokio::spawn(async move {
        serve.await.map_err(|e| ServerError::Serve {
            listener,
            message: e.to_string(),
        })
    })
}

pub(crate) fn spawn_axum(
    listener_name: &'static str,
    listener: TcpListener,
    router: axum::Router,
    stop: &watch::Receiver<bool>,
) -> JoinHandle<Result<(), ServerError>> {
    let stop = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(stopped(stop))
            .await
            .map_err(|e| ServerError::Serve {
                listener: listener_name,
                message: e.to_string(),
            })
    })
}
