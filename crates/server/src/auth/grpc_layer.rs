//! Access control of the `merklog.v1.Log` gRPC service, as a tower layer: it
//! authenticates each call that needs a role before the service sees it, puts
//! the [`Caller`] into the request's extensions, and answers refused calls
//! itself (UNAUTHENTICATED or PERMISSION_DENIED).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::http;
use merklog_auth::Role;
use tonic::metadata::MetadataMap;
use tonic::server::NamedService;
use tower::Service;

use crate::auth::{Authenticator, Caller};

/// Wraps the log service with access control.
#[derive(Clone)]
pub(crate) struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    pub(crate) fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            auth: Arc::clone(&self.auth),
        }
    }
}

/// The service [`AuthLayer`] wraps around the log service.
#[derive(Clone)]
pub(crate) struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

impl<S: NamedService> NamedService for AuthService<S> {
    const NAME: &'static str = S::NAME;
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<ResBody>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<ReqBody>) -> Self::Future {
        let method = request.uri().path().rsplit('/').next().unwrap_or_default();
        let role = match method {
            // `Export`: the OTLP logs service, wrapped by this layer on its own port.
            "Append" | "AppendStream" | "Export" => Some(Role::Append),
            _ => self.auth.read_role(),
        };
        if let Some(role) = role {
            // The verified client chain is read the way tonic exposes it to
            // handlers; the extensions are moved out and back, not copied.
            let probe = tonic::Request::from_parts(
                MetadataMap::new(),
                std::mem::take(request.extensions_mut()),
                (),
            );
            let peer_certs = probe.peer_certs();
            let (_, extensions, ()) = probe.into_parts();
            *request.extensions_mut() = extensions;
            let authorization = request
                .headers()
                .get(http::header::AUTHORIZATION)
                .map(http::HeaderValue::as_bytes);
            let peer_certs = peer_certs.as_deref().map(Vec::as_slice);
            match self.auth.authorize(authorization, peer_certs, role) {
                Ok(caller) => {
                    request.extensions_mut().insert::<Caller>(caller);
                }
                Err(rejection) => {
                    let response = rejection.into_status().into_http();
                    return Box::pin(async move { Ok(response) });
                }
            }
        }
        Box::pin(self.inner.call(request))
    }
}
