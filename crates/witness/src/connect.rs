//! How the witness reaches the logs it follows: the gRPC endpoint of a
//! `grpc-url` and the TLS settings of `follow-ca-cert`.

use std::time::Duration;

use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};

use crate::error::WitnessError;

/// Timeout of one connection attempt to a followed log.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2 keep-alive, so a silently dead peer does not leave a stream hanging.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The gRPC endpoint of a `grpc_url` (`http://host:port`, `https://host:port`, or
/// a bare `host:port`). `https://` uses `tls`. What the witness trusts is the
/// log's signature; TLS keeps the connection private and the log's address
/// from being hijacked into a denial of service.
pub(crate) fn endpoint(url: &str, tls: &ClientTlsConfig) -> Result<Endpoint, String> {
    let full = if url.contains("://") {
        url.to_owned()
    } else {
        format!("http://{url}")
    };
    let https = full.starts_with("https://");
    if !https && !full.starts_with("http://") {
        return Err(format!(
            "{url:?}: use http://host:port or https://host:port"
        ));
    }
    let endpoint = Endpoint::from_shared(full)
        .map(|e| {
            e.connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
                .keep_alive_timeout(KEEPALIVE_TIMEOUT)
                .keep_alive_while_idle(true)
        })
        .map_err(|e| format!("{url:?}: {e}"))?;
    if https {
        return endpoint
            .tls_config(tls.clone())
            .map_err(|e| format!("{url:?}: {e}"));
    }
    Ok(endpoint)
}

/// The TLS settings of followers: the CA certificates of `follow-ca-cert`, else
/// the public web roots.
pub(crate) fn tls_config(
    ca_cert: Option<&std::path::Path>,
) -> Result<ClientTlsConfig, WitnessError> {
    let config = ClientTlsConfig::new();
    let Some(path) = ca_cert else {
        return Ok(config.with_webpki_roots());
    };
    let pem = std::fs::read(path)
        .map_err(|e| WitnessError::Config(format!("follow-ca-cert {}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(WitnessError::Config(format!(
            "follow-ca-cert {}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(config.ca_certificate(Certificate::from_pem(pem)))
}
