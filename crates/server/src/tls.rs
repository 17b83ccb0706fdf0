//! TLS on merklogd's gRPC and tiles HTTP ports, and the verified client
//! certificate chain each request carries.
//!
//! The certificate, key and client CA files, their reloading and the handshake
//! live in `merklog_daemon::tls`; this module hands the verified chain to the
//! handlers. On the gRPC port tonic does that itself: `Request::peer_certs()`
//! returns the chain of a connection served through a rustls stream. On the
//! tiles HTTP port each request gets a [`PeerCertificates`] extension.
//!
//! With `tls-client-ca` set, a client certificate is required and must chain to
//! that bundle; without a certificate, or with one from another CA, the
//! handshake fails and no request is ever seen.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::Request;
use axum::serve::IncomingStream;
use merklog_daemon::tls::TlsListener;
use rustls::pki_types::CertificateDer;
use tower::Service;

/// The client's certificate chain (leaf first) as verified in the TLS
/// handshake, in the extensions of every request on a TLS connection where the
/// client presented one.
#[derive(Debug, Clone)]
pub struct PeerCertificates(pub Arc<Vec<CertificateDer<'static>>>);

/// Makes, for each TLS connection, the router service that adds the
/// connection's [`PeerCertificates`] to each of its requests.
#[derive(Clone)]
pub(crate) struct WithPeerCertificates(pub(crate) axum::Router);

impl Service<IncomingStream<'_, TlsListener>> for WithPeerCertificates {
    type Response = AddPeerCertificates;
    type Error = Infallible;
    type Future = std::future::Ready<Result<AddPeerCertificates, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, connection: IncomingStream<'_, TlsListener>) -> Self::Future {
        let (_, session) = connection.io().get_ref();
        let certificates = session.peer_certificates().map(|chain| {
            PeerCertificates(Arc::new(
                chain.iter().map(|cert| cert.clone().into_owned()).collect(),
            ))
        });
        std::future::ready(Ok(AddPeerCertificates {
            router: self.0.clone(),
            certificates,
        }))
    }
}

/// The router of one connection, adding its verified client chain to requests.
#[derive(Clone)]
pub(crate) struct AddPeerCertificates {
    router: axum::Router,
    certificates: Option<PeerCertificates>,
}

impl Service<Request> for AddPeerCertificates {
    type Response = axum::response::Response;
    type Error = Infallible;
    type Future = <axum::Router as Service<Request>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.router, cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        if let Some(certificates) = &self.certificates {
            request.extensions_mut().insert(certificates.clone());
        }
        self.router.call(request)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use axum::Extension;
    use merklog_daemon::tls::{ALPN_HTTP, ClientAuth, ReloadingTls, TlsFiles};
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

    use super::*;

    fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    /// A certificate for `names` from `ca`: (certificate PEM, key PEM, DER).
    fn issue(ca: &CertifiedIssuer<'static, KeyPair>, names: &[&str]) -> (String, String, Vec<u8>) {
        let params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &**ca).unwrap();
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    /// What the handler saw: the DER of the leaf of `PeerCertificates`, hex, or "none".
    async fn seen(certificates: Option<Extension<PeerCertificates>>) -> String {
        match certificates {
            Some(Extension(PeerCertificates(chain))) => merklog_merkle::to_hex(chain[0].as_ref()),
            None => "none".to_owned(),
        }
    }

    #[tokio::test]
    async fn tiles_handlers_see_the_verified_client_chain() {
        let dir = tempfile::tempdir().unwrap();
        let server_ca = ca("server CA");
        let client_ca = ca("client CA");
        let (cert, key, _) = issue(&server_ca, &["127.0.0.1"]);
        let (client_cert, client_key, client_der) = issue(&client_ca, &["client.example"]);
        let path = |name: &str| dir.path().join(name);
        std::fs::write(path("tls.crt"), cert).unwrap();
        std::fs::write(path("tls.key"), key).unwrap();
        std::fs::write(path("clients.pem"), client_ca.pem()).unwrap();
        let files = TlsFiles {
            cert: path("tls.crt"),
            key: path("tls.key"),
            client_ca: Some(path("clients.pem")),
            // Optional, so that one server shows both cases.
            client_auth: ClientAuth::Optional,
        };
        let tls = ReloadingTls::load("test", files, ALPN_HTTP).unwrap();
        let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let listener = TlsListener::new(tcp, tls, Duration::from_secs(3600)).unwrap();
        let router = axum::Router::new().route("/seen", axum::routing::get(seen));
        tokio::spawn(async move { axum::serve(listener, WithPeerCertificates(router)).await });

        let client = |identity: Option<String>| {
            let mut builder = reqwest::Client::builder()
                .tls_built_in_root_certs(false)
                .add_root_certificate(
                    reqwest::Certificate::from_pem(server_ca.pem().as_bytes()).unwrap(),
                );
            if let Some(pem) = identity {
                builder = builder.identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap());
            }
            builder.build().unwrap()
        };
        let url = format!("https://{addr}/seen");
        let with_cert = client(Some(format!("{client_cert}{client_key}")));
        let body = with_cert
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let expected = merklog_merkle::to_hex(&client_der);
        assert_eq!(body, expected);
        let body = client(None)
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "none");
        // A certificate from another CA is refused in the handshake.
        let (rogue_cert, rogue_key, _) = issue(&ca("rogue"), &["client.example"]);
        let rogue = client(Some(format!("{rogue_cert}{rogue_key}")));
        assert!(rogue.get(&url).send().await.is_err());
    }
}
