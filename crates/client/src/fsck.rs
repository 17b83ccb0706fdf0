//! Checking a log through its C2SP tlog-tiles HTTP API (`merklog fsck`): the
//! checkpoint is verified with the log key, every entry bundle is fetched and
//! hashed, every hash tile is recomputed from the leaves and compared with the one
//! served, and the recomputed root with the signed one. The first bad tile is
//! reported by its coordinates; a tile the server cannot read (HTTP 500, damaged
//! storage) counts as bad.

use std::time::Duration;

use merklog_merkle::bundle::{bundle_prefix_len, split_bundle};
use merklog_merkle::tile::{TILE_WIDTH, TileId, entry_bundle_path, tile_bytes, tile_width_at};
use merklog_merkle::{Hash, TileRebuild, hash_leaf};

use crate::{ClientError, SignedCheckpoint, TrustedLog};

/// What a clean check covered.
#[derive(Debug, Clone)]
pub struct FsckReport {
    /// The verified checkpoint whose tree was checked.
    pub checkpoint: SignedCheckpoint,
    /// Entry bundles fetched and hashed.
    pub bundles: u64,
    /// Hash tiles recomputed and compared.
    pub tiles: u64,
}

/// A tiles server: its base URL and an HTTP client.
struct Tiles {
    base: String,
    http: reqwest::Client,
}

/// What a fetch found: the bytes, or why the resource counts as bad.
enum Fetched {
    Ok(Vec<u8>),
    Bad(String),
}

impl Tiles {
    async fn get(&self, path: &str) -> Result<Fetched, ClientError> {
        let url = format!("{}/{path}", self.base);
        let failed = |reason: String| ClientError::Tiles {
            url: url.clone(),
            reason,
        };
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| failed(error_chain(&e)))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| failed(error_chain(&e)))?;
        match status.as_u16() {
            200 => Ok(Fetched::Ok(body.to_vec())),
            404 => Ok(Fetched::Bad(
                "missing (404), though the checkpoint covers it".into(),
            )),
            500 => Ok(Fetched::Bad(format!(
                "the server cannot read it (500): {}",
                String::from_utf8_lossy(&body).trim()
            ))),
            _ => Err(failed(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&body).trim()
            ))),
        }
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn bad_tile(tile: TileId, reason: String) -> ClientError {
    ClientError::Fsck(format!(
        "bad tile: level {}, index {}, width {} ({}): {reason}",
        tile.level,
        tile.index,
        tile.width,
        tile.path()
    ))
}

/// Checks the log served at `base` (the tiles HTTP address, such as
/// `http://127.0.0.1:7801`) against `trust`. `ca_cert` is a PEM bundle trusted
/// for `https://` besides the public roots. `progress` gets (entries done, total).
pub async fn fsck_tiles(
    base: &str,
    trust: &TrustedLog,
    ca_cert: Option<&[u8]>,
    timeout: Duration,
    mut progress: impl FnMut(u64, u64),
) -> Result<FsckReport, ClientError> {
    let base = base.trim_end_matches('/').to_owned();
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(pem) = ca_cert {
        for certificate in reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| ClientError::Input(format!("--ca-cert: {e}")))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    let http = builder
        .build()
        .map_err(|e| ClientError::Input(format!("HTTP client: {e}")))?;
    let tiles = Tiles { base, http };
    let note = match tiles.get("checkpoint").await? {
        Fetched::Ok(note) => note,
        Fetched::Bad(reason) => {
            return Err(ClientError::Tiles {
                url: format!("{}/checkpoint", tiles.base),
                reason,
            });
        }
    };
    let checkpoint = trust.open(&note)?;
    let size = checkpoint.size();
    let bundles = size.0.div_ceil(u64::from(TILE_WIDTH));
    let mut rebuild = TileRebuild::new();
    let mut compared = 0u64;
    for index in 0..bundles {
        let width = tile_width_at(0, index, size);
        let path = entry_bundle_path(index, width);
        let bad_bundle = |reason: String| {
            ClientError::Fsck(format!(
                "bad entry bundle: index {index}, width {width} ({path}): {reason}"
            ))
        };
        let bundle = match tiles.get(&path).await? {
            Fetched::Ok(bytes) => bytes,
            Fetched::Bad(reason) => return Err(bad_bundle(reason)),
        };
        let len = bundle_prefix_len(&bundle, usize::from(width))
            .map_err(|e| bad_bundle(e.to_string()))?;
        let entries = split_bundle(bundle.get(..len).unwrap_or_default())
            .map_err(|e| bad_bundle(e.to_string()))?;
        let leaves: Vec<Hash> = entries.into_iter().map(hash_leaf).collect();
        let done = rebuild
            .push(&leaves)
            .map_err(|e| bad_bundle(e.to_string()))?;
        for tile in done {
            compare(&tiles, tile.id, &tile.hashes).await?;
            compared += 1;
        }
        progress(
            (index + 1)
                .saturating_mul(u64::from(TILE_WIDTH))
                .min(size.0),
            size.0,
        );
    }
    let (partial, root) = rebuild.finish();
    for tile in partial {
        compare(&tiles, tile.id, &tile.hashes).await?;
        compared += 1;
    }
    if root != checkpoint.root() {
        return Err(ClientError::Fsck(format!(
            "root mismatch: the entries give {root}, the signed checkpoint says {}",
            checkpoint.root()
        )));
    }
    Ok(FsckReport {
        checkpoint,
        bundles,
        tiles: compared,
    })
}

async fn compare(tiles: &Tiles, id: TileId, hashes: &[Hash]) -> Result<(), ClientError> {
    let served = match tiles.get(&id.path()).await? {
        Fetched::Ok(bytes) => bytes,
        Fetched::Bad(reason) => return Err(bad_tile(id, reason)),
    };
    if served != tile_bytes(hashes) {
        return Err(bad_tile(
            id,
            "its hashes differ from the ones the entry bundles give".into(),
        ));
    }
    Ok(())
}
