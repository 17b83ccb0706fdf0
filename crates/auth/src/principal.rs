//! Principals: the names callers are known by, and how a client certificate
//! names one.
//!
//! A principal name is 1 to [`MAX_PRINCIPAL_LEN`] bytes of UTF-8 without
//! whitespace or control characters (it is one field of a tokens-file line, a
//! log field and a metric label), and is neither `anonymous` (the caller of a
//! server without authentication) nor `other` (the metric label of principals
//! beyond the label cap).
//!
//! A certificate's principal is, in this order:
//! 1. its SPIFFE ID: a URI SAN with the `spiffe` scheme, validated as the SPIFFE
//!    ID standard says (lowercase trust domain of `a-z 0-9 . - _`; path segments
//!    of `a-z A-Z 0-9 . - _`, none empty, `.` or `..`; no trailing slash, query,
//!    fragment, port or user info). An invalid SPIFFE ID, or more than one, is an
//!    error rather than a reason to fall back to another name;
//! 2. else its first DNS SAN;
//! 3. else its subject's first common name.

use x509_cert::Certificate;
use x509_cert::der::Decode as _;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;

use crate::{AuthError, printable};

/// Longest principal name in bytes (the SPIFFE ID limit).
pub const MAX_PRINCIPAL_LEN: usize = 2048;

/// The principal of every caller when the server has no authentication set up.
pub const ANONYMOUS: &str = "anonymous";

/// Names no configured principal may take (see the module documentation).
const RESERVED: [&str; 2] = [ANONYMOUS, "other"];

/// A validated principal name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Principal(String);

impl Principal {
    /// Validates a principal name.
    pub fn new(name: &str) -> Result<Self, AuthError> {
        let bad = |reason| AuthError::BadPrincipal {
            name: printable(name),
            reason,
        };
        if name.is_empty() {
            return Err(bad("is empty"));
        }
        if name.len() > MAX_PRINCIPAL_LEN {
            return Err(bad("is longer than 2048 bytes"));
        }
        if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("holds whitespace or a control character"));
        }
        if RESERVED.contains(&name) {
            return Err(bad("is reserved"));
        }
        Ok(Self(name.to_owned()))
    }

    /// The principal of callers of a server without authentication.
    pub fn anonymous() -> Self {
        Self(ANONYMOUS.to_owned())
    }

    /// True for [`Principal::anonymous`].
    pub fn is_anonymous(&self) -> bool {
        self.0 == ANONYMOUS
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Principal {
    type Err = AuthError;

    fn from_str(name: &str) -> Result<Self, AuthError> {
        Self::new(name)
    }
}

/// A validated SPIFFE ID (`spiffe://trust-domain/path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpiffeId {
    id: String,
    domain_len: usize,
}

impl SpiffeId {
    const SCHEME: &'static str = "spiffe://";

    /// Validates a SPIFFE ID.
    pub fn parse(id: &str) -> Result<Self, AuthError> {
        let bad = |reason| AuthError::BadSpiffeId {
            id: printable(id),
            reason,
        };
        if id.len() > MAX_PRINCIPAL_LEN {
            return Err(bad("is longer than 2048 bytes"));
        }
        let rest = id
            .strip_prefix(Self::SCHEME)
            .ok_or(bad("does not start with spiffe://"))?;
        let (domain, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if domain.is_empty() {
            return Err(bad("has an empty trust domain"));
        }
        let domain_char = |c: u8| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_');
        if !domain.bytes().all(domain_char) {
            return Err(bad(
                "trust domain may hold only lowercase letters, digits, '.', '-' and '_'",
            ));
        }
        if !path.is_empty() {
            let path_char = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'-' | b'_');
            // `path` starts with '/', so the first split piece is empty.
            for segment in path.split('/').skip(1) {
                if segment.is_empty() {
                    return Err(bad("has an empty path segment or a trailing slash"));
                }
                if segment == "." || segment == ".." {
                    return Err(bad("has a '.' or '..' path segment"));
                }
                if !segment.bytes().all(path_char) {
                    return Err(bad(
                        "path may hold only letters, digits, '.', '-', '_' and '/'",
                    ));
                }
            }
        }
        Ok(Self {
            id: id.to_owned(),
            domain_len: domain.len(),
        })
    }

    /// The trust domain.
    pub fn trust_domain(&self) -> &str {
        let start = Self::SCHEME.len();
        self.id.get(start..start + self.domain_len).unwrap_or("")
    }

    /// The whole ID.
    pub fn as_str(&self) -> &str {
        &self.id
    }
}

/// The principal a DER-encoded X.509 certificate names (see the module
/// documentation for the order). The certificate's chain must have been
/// verified already; this only reads names.
pub fn principal_from_der(der: &[u8]) -> Result<Principal, AuthError> {
    let bad = |reason: String| AuthError::BadCertificate(reason);
    // `from_der` refuses trailing bytes after the certificate.
    let cert = Certificate::from_der(der).map_err(|e| bad(format!("does not parse: {e}")))?;
    let tbs = cert.tbs_certificate();
    let names: Vec<GeneralName> = tbs
        .get_extension::<SubjectAltName>()
        .map_err(|e| bad(format!("subject alternative names: {e}")))?
        .map(|(_critical, san)| san.0)
        .unwrap_or_default();
    let mut spiffe = names.iter().filter_map(|name| match name {
        GeneralName::UniformResourceIdentifier(uri) if has_spiffe_scheme(uri.as_str()) => {
            Some(uri.as_str())
        }
        _ => None,
    });
    if let Some(uri) = spiffe.next() {
        if spiffe.next().is_some() {
            return Err(bad("holds more than one SPIFFE ID".into()));
        }
        let id = SpiffeId::parse(uri)?;
        return Principal::new(id.as_str());
    }
    if let Some(dns) = names.iter().find_map(|name| match name {
        GeneralName::DnsName(dns) => Some(dns.as_str()),
        _ => None,
    }) {
        return Principal::new(dns);
    }
    let common_name = tbs
        .subject()
        .common_name()
        .map_err(|e| bad(format!("common name is not a string: {e}")))?
        .ok_or_else(|| bad("names no SPIFFE ID, DNS name or common name".into()))?;
    Principal::new(&common_name.value())
}

/// True if a URI has the `spiffe` scheme (schemes are case-insensitive, so a
/// `SPIFFE://` URI is taken as a SPIFFE ID and then refused as one).
fn has_spiffe_scheme(uri: &str) -> bool {
    uri.get(..SpiffeId::SCHEME.len())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case(SpiffeId::SCHEME))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair, SanType};

    fn cert(sans: Vec<SanType>, common_name: Option<&str>) -> Vec<u8> {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = common_name {
            params.distinguished_name.push(DnType::CommonName, cn);
        }
        let key = KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().to_vec()
    }

    fn uri(text: &str) -> SanType {
        SanType::URI(text.try_into().unwrap())
    }

    fn dns(text: &str) -> SanType {
        SanType::DnsName(text.try_into().unwrap())
    }

    #[test]
    fn spiffe_id_wins_over_dns_and_cn() {
        let der = cert(
            vec![
                dns("writer.example.com"),
                uri("https://example.com/x"),
                uri("spiffe://prod.example/ns/audit/sa/writer"),
            ],
            Some("writer-cn"),
        );
        let principal = principal_from_der(&der).unwrap();
        assert_eq!(
            principal.as_str(),
            "spiffe://prod.example/ns/audit/sa/writer"
        );
    }

    #[test]
    fn dns_name_then_common_name() {
        let der = cert(vec![dns("a.example.com"), dns("b.example.com")], Some("cn"));
        assert_eq!(principal_from_der(&der).unwrap().as_str(), "a.example.com");
        let der = cert(vec![uri("https://example.com/")], Some("writer-7"));
        assert_eq!(principal_from_der(&der).unwrap().as_str(), "writer-7");
    }

    #[test]
    fn certificates_naming_nobody_usable_are_refused() {
        let no_name = cert(Vec::new(), None);
        assert!(matches!(
            principal_from_der(&no_name),
            Err(AuthError::BadCertificate(_))
        ));
        let bad_spiffe = cert(
            vec![uri("spiffe://Prod.example/x"), dns("ok.example")],
            None,
        );
        assert!(matches!(
            principal_from_der(&bad_spiffe),
            Err(AuthError::BadSpiffeId { .. })
        ));
        let two = cert(
            vec![uri("spiffe://a.example/x"), uri("spiffe://a.example/y")],
            None,
        );
        assert!(principal_from_der(&two).is_err());
        let spaced_cn = cert(Vec::new(), Some("Jane Doe"));
        assert!(principal_from_der(&spaced_cn).is_err());
        let reserved = cert(Vec::new(), Some("anonymous"));
        assert!(principal_from_der(&reserved).is_err());
        assert!(principal_from_der(b"not a certificate").is_err());
        let mut trailing = cert(Vec::new(), Some("x"));
        trailing.push(0);
        assert!(principal_from_der(&trailing).is_err());
    }

    #[test]
    fn spiffe_id_rules() {
        for good in [
            "spiffe://example.org",
            "spiffe://example.org/workload",
            "spiffe://a-b_c.9/ns/A.b-c_D/sa/x",
        ] {
            let id = SpiffeId::parse(good).unwrap();
            assert_eq!(id.as_str(), good);
        }
        assert_eq!(
            SpiffeId::parse("spiffe://td.example/a")
                .unwrap()
                .trust_domain(),
            "td.example"
        );
        for bad in [
            "spiffe://",
            "spiffe:///path",
            "spiffe://Example.org/x",
            "spiffe://example.org:443/x",
            "spiffe://user@example.org/x",
            "spiffe://example.org/",
            "spiffe://example.org//x",
            "spiffe://example.org/x/",
            "spiffe://example.org/./x",
            "spiffe://example.org/../x",
            "spiffe://example.org/x?y",
            "spiffe://example.org/x#y",
            "spiffe://example.org/%41",
            "SPIFFE://example.org/x",
            "https://example.org/x",
        ] {
            assert!(SpiffeId::parse(bad).is_err(), "{bad}");
        }
        let long = format!("spiffe://example.org/{}", "a".repeat(MAX_PRINCIPAL_LEN));
        assert!(SpiffeId::parse(&long).is_err());
    }

    #[test]
    fn principal_names() {
        assert!(Principal::new("writer@example").is_ok());
        for bad in ["", "a b", "a\tb", "a\u{7f}", "anonymous", "other"] {
            assert!(Principal::new(bad).is_err(), "{bad:?}");
        }
        assert!(Principal::new(&"x".repeat(MAX_PRINCIPAL_LEN)).is_ok());
        assert!(Principal::new(&"x".repeat(MAX_PRINCIPAL_LEN + 1)).is_err());
        assert!(Principal::anonymous().is_anonymous());
    }
}
