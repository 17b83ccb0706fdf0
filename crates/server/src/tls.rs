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
