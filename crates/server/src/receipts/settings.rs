//! The receipt settings: the receipt key's algorithm and the SCITT issuers whose
//! signed statements `POST /entries` registers.

use std::collections::HashMap;

use merklog_receipt::PublicKey;
use serde::{Deserialize, Serialize};

use crate::ServerError;

/// Algorithm of a receipt key generated on first start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ReceiptAlgorithm {
    /// EdDSA with Ed25519 (COSE alg -8).
    #[default]
    Ed25519,
    /// ECDSA with P-256 and SHA-256 (COSE alg -7).
    Es256,
}

impl ReceiptAlgorithm {
    /// The receipt crate's algorithm.
    pub fn algorithm(self) -> merklog_receipt::Algorithm {
        match self {
            Self::Ed25519 => merklog_receipt::Algorithm::EdDsa,
            Self::Es256 => merklog_receipt::Algorithm::Es256,
        }
    }
}

impl std::fmt::Display for ReceiptAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.algorithm().name())
    }
}

/// One `[[scitt-issuer]]` table: an issuer (the `iss` claim of its statements) and
/// its public key, `ed25519:<base64 32 bytes>` or `es256:<base64 SEC1 point>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct IssuerConfig {
    /// The issuer, exactly as its statements' `iss` claim spells it.
    pub name: String,
    /// Its public key.
    pub key: String,
}

/// The registered issuers by name, after checking every key parses and no name
/// appears twice.
pub fn issuer_registry(
    issuers: &[IssuerConfig],
) -> Result<HashMap<String, PublicKey>, ServerError> {
    let mut registry = HashMap::new();
    for issuer in issuers {
        if issuer.name.is_empty() {
            return Err(ServerError::Config(
                "[[scitt-issuer]]: name must not be empty".into(),
            ));
        }
        let key = PublicKey::from_text(&issuer.key).map_err(|e| {
            ServerError::Config(format!("[[scitt-issuer]] {:?}: key: {e}", issuer.name))
        })?;
        if registry.insert(issuer.name.clone(), key).is_some() {
            return Err(ServerError::Config(format!(
                "[[scitt-issuer]] {:?} appears twice",
                issuer.name
            )));
        }
    }
    Ok(registry)
}
