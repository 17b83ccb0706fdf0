//! Throwaway certificate authorities for TLS tests, generated with rcgen:
//! server certificates for 127.0.0.1 and `localhost`, client certificates by
//! common name, written as PEM files.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A CA that issues certificates.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM files.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The certificate.
    pub cert: PathBuf,
    /// Its private key.
    pub key: PathBuf,
}

impl Ca {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Ca { issuer }
    }

    /// The CA certificate as PEM.
    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// Writes the CA certificate to `path`.
    pub fn write(&self, path: &Path) -> PathBuf {
        std::fs::write(path, self.pem()).unwrap();
        path.to_owned()
    }

    /// A server certificate for 127.0.0.1 and `localhost` with common name `cn`,
    /// written to `<dir>/<stem>.crt` and `.key`.
    pub fn server(&self, dir: &Path, stem: &str, cn: &str) -> Issued {
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        self.issue(dir, stem, params)
    }

    /// A client certificate with common name `cn`, written to `<dir>/<stem>.crt`
    /// and `.key`.
    pub fn client(&self, dir: &Path, stem: &str, cn: &str) -> Issued {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.issue(dir, stem, params)
    }

    fn issue(&self, dir: &Path, stem: &str, params: CertificateParams) -> Issued {
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &*self.issuer).unwrap();
        let issued = Issued {
            cert: dir.join(format!("{stem}.crt")),
            key: dir.join(format!("{stem}.key")),
        };
        std::fs::write(&issued.cert, cert.pem()).unwrap();
        std::fs::write(&issued.key, key.serialize_pem()).unwrap();
        issued
    }
}

/// The common name of the certificate a TLS server at `addr` presents, read
/// with a client that trusts `ca_pem`: what tests use to see which of two
/// certificates is being served.
pub async fn served_common_name(addr: std::net::SocketAddr, ca_pem: &str) -> String {
    let chain = served_chain(addr, ca_pem).await.unwrap();
    common_name(chain[0].as_ref())
}

/// The certificate chain a TLS server at `addr` presents to a client that
/// trusts `ca_pem` and sends no certificate, or the handshake error.
pub async fn served_chain(
    addr: std::net::SocketAddr,
    ca_pem: &str,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (_, session) = tls.get_ref();
    Ok(session
        .peer_certificates()
        .unwrap()
        .iter()
        .map(|c| c.clone().into_owned())
        .collect())
}

/// The subject common name of a DER certificate (tests only: a byte search for
/// the CN attribute, enough for certificates rcgen made).
pub fn common_name(der: &[u8]) -> String {
    // OID 2.5.4.3 (commonName), then a string tag and a one-byte length.
    let oid = [0x06, 0x03, 0x55, 0x04, 0x03];
    let mut names = der
        .windows(oid.len())
        .enumerate()
        .filter(|(_, w)| *w == oid)
        .map(|(i, _)| {
            let at = i + oid.len();
            let len = usize::from(der[at + 1]);
            String::from_utf8_lossy(&der[at + 2..at + 2 + len]).into_owned()
        });
    // The issuer's CN comes first in a certificate, the subject's second.
    let first = names.next().unwrap();
    names.next().unwrap_or(first)
}
