//! The witness's own key: generated on first start, then loaded.
//!
//! `<data-dir>/witness.key` holds the cosigner signer key (tlog-cosignature Ed25519,
//! type 0x04 key ID) written by `merklog-note`'s keyfile module (mode 0600, never
//! overwritten); `<data-dir>/witness.vkey` holds the matching cosigner vkey
//! `name+hexid+base64(0x04 || public key)`, the form tlog-cosignature defines, which
//! is what log operators and clients configure.

use std::path::Path;

use merklog_note::{CosignatureSigner, generate_cosigner, keyfile, parse_cosigner_key};

use crate::error::WitnessError;

/// File name of the witness signer key.
pub const KEY_FILE: &str = "witness.key";
/// File name of the witness verifier key.
pub const VKEY_FILE: &str = "witness.vkey";

/// Loads the witness key, generating it (and `witness.vkey`) on first start.
///
/// `name` is the key name to generate with (default `<hostname>/merklog-witness`); if
/// a key exists and `name` is given, they must agree.
pub(crate) fn load_or_generate(
    data_dir: &Path,
    name: Option<&str>,
) -> Result<CosignatureSigner, WitnessError> {
    let key_path = data_dir.join(KEY_FILE);
    let signer = if key_path.exists() {
        let text = keyfile::read_signer_key(&key_path).map_err(WitnessError::Key)?;
        let signer = parse_cosigner_key(text.expose_secret()).map_err(WitnessError::Key)?;
        if let Some(name) = name
            && name != merklog_note::Signer::name(&signer)
        {
            return Err(WitnessError::Config(format!(
                "--name {name:?} differs from the name {:?} of the existing key {}",
                merklog_note::Signer::name(&signer),
                key_path.display()
            )));
        }
        signer
    } else {
        let name = match name {
            Some(name) => name.to_owned(),
            None => default_name()?,
        };
        let (key_text, vkey) = generate_cosigner(&name).map_err(WitnessError::Key)?;
        keyfile::write_signer_key(&key_path, &key_text).map_err(WitnessError::Key)?;
        tracing::info!(path = %key_path.display(), %vkey, "generated witness key");
        parse_cosigner_key(key_text.expose_secret()).map_err(WitnessError::Key)?
    };
    let vkey = signer.verifier().to_vkey();
    let vkey_path = data_dir.join(VKEY_FILE);
    let current = std::fs::read_to_string(&vkey_path).ok();
    if current.as_deref().map(str::trim_end) != Some(vkey.as_str()) {
        crate::store::write_atomic(&vkey_path, format!("{vkey}\n").as_bytes(), None)?;
    }
    Ok(signer)
}

fn default_name() -> Result<String, WitnessError> {
    let host = hostname::get()
        .map_err(|e| WitnessError::Config(format!("cannot read the host name for --name: {e}")))?;
    let host = host.to_string_lossy();
    if host.is_empty() {
        return Err(WitnessError::Config(
            "empty host name; set --name for the witness key".into(),
        ));
    }
    Ok(format!("{host}/merklog-witness"))
}
