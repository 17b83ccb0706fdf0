//! The bearer token a client presents (`authorization: Bearer <token>` on
//! every call), kept out of every printout.

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;

use crate::ClientError;

/// A bearer token. `Debug` and `Display` print `<redacted>`; the only way to
/// the text is the header this crate sends.
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(String);

impl BearerToken {
    /// Checks a token's text (surrounding whitespace, such as a token file's
    /// final newline, is dropped): printable ASCII without spaces, as an HTTP
    /// header needs. The error never quotes the text.
    pub fn new(text: &str) -> Result<Self, ClientError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ClientError::Input("the bearer token is empty".into()));
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ClientError::Input(
                "the bearer token holds characters other than printable ASCII".into(),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    fn header(&self) -> Result<MetadataValue<Ascii>, ClientError> {
        let mut value: MetadataValue<Ascii> = format!("Bearer {}", self.0)
            .parse()
            .map_err(|_| ClientError::Input("the bearer token is not a valid header".into()))?;
        // Kept out of HPACK's dynamic table and out of `Debug` output.
        value.set_sensitive(true);
        Ok(value)
    }
}

impl std::fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerToken(<redacted>)")
    }
}

impl std::fmt::Display for BearerToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Adds the `authorization` header, when there is a token, to every call.
#[derive(Clone, Default)]
pub(crate) struct Credentials {
    authorization: Option<MetadataValue<Ascii>>,
}

impl Credentials {
    pub(crate) fn new(token: Option<&BearerToken>) -> Result<Self, ClientError> {
        Ok(Self {
            authorization: token.map(BearerToken::header).transpose()?,
        })
    }
}

impl Interceptor for Credentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.authorization {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted_and_sent_as_bearer() {
        let token = BearerToken::new(" mlt_secret\n").unwrap();
        assert_eq!(
            format!("{token:?} {token}"),
            "BearerToken(<redacted>) <redacted>"
        );
        let mut credentials = Credentials::new(Some(&token)).unwrap();
        let request = credentials.call(tonic::Request::new(())).unwrap();
        let header = request.metadata().get("authorization").unwrap();
        assert_eq!(header.to_str().unwrap(), "Bearer mlt_secret");
        assert!(!format!("{header:?}").contains("mlt_secret"));
        let mut none = Credentials::new(None).unwrap();
        assert!(
            none.call(tonic::Request::new(()))
                .unwrap()
                .metadata()
                .is_empty()
        );
        for bad in ["", "  \n", "a b", "tök"] {
            let error = BearerToken::new(bad).unwrap_err().to_string();
            assert!(
                !error.contains(bad.trim()) || bad.trim().is_empty(),
                "{error}"
            );
        }
    }
}
