//! Asking a server whether it serves: the standard gRPC health service, as a
//! load balancer or a container health check does.

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::client::connect_channel;
use crate::{ClientError, ClientOptions};

/// The server's answer, for the service `""` (the whole server).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving {
    /// SERVING: it takes appends.
    Serving,
    /// Any other answer (NOT_SERVING, UNKNOWN, SERVICE_UNKNOWN), by its name.
    Not(&'static str),
}

/// Connects to `url` and asks the gRPC health service for the overall status.
/// Fails only when the server cannot be reached or does not answer in time.
pub async fn check_health(url: &str, options: &ClientOptions) -> Result<Serving, ClientError> {
    let channel = connect_channel(url, options).await?;
    let mut health = HealthClient::new(channel);
    let call = health.check(HealthCheckRequest {
        service: String::new(),
    });
    let answer = match tokio::time::timeout(options.request_timeout, call).await {
        Ok(answer) => answer.map_err(|status| ClientError::Rpc {
            rpc: "health check",
            status: Box::new(status),
        })?,
        Err(_) => {
            return Err(ClientError::Timeout {
                rpc: "health check",
                server: url.to_owned(),
                after: options.request_timeout,
            });
        }
    };
    let status =
        ServingStatus::try_from(answer.into_inner().status).unwrap_or(ServingStatus::Unknown);
    Ok(match status {
        ServingStatus::Serving => Serving::Serving,
        other => Serving::Not(other.as_str_name()),
    })
}
