//! The C2SP tlog-tiles (v0.1.0) read API:
//! - `GET /checkpoint`: the latest published checkpoint, `text/plain; charset=utf-8`,
//!   cacheable for two seconds (the spec: no caching beyond a few seconds);
//! - `GET /tile/<L>/<N>[.p/<W>]`: hash tiles;
//! - `GET /tile/entries/<N>[.p/<W>]`: entry bundles (big-endian u16 length || entry).
//!
//! Tiles and bundles are `application/octet-stream` and immutable: a full one never
//! changes, and a partial one of width W is a prefix of every later version of its
//! tile, so its bytes never change either. Both are served with
//! `Cache-Control: public, max-age=31536000, immutable`, which lets the files be
//! mirrored to a CDN.
//!
//! Which widths are served: a tile of width W exists once the published tree
//! covers W hashes of it (`tile_width_at(L, N, size) >= W`; W = 256 for a full
//! tile). Every partial width up to the current one is served, so every published
//! size stays readable, as the spec requires; a full tile is served only once it
//! is complete; an empty tile never. Anything beyond the published tree is 404
//! with `Cache-Control: no-store` (it will exist later, so no cache may keep the
//! 404). Paths that are not canonical tlog-tiles paths (leading zeros, level above
//! 63, missing `x` prefixes, width 0 or 256 in `.p/W`) are 400. A tile whose
//! stored bytes are damaged is 500 with a body saying so, and turns health
//! NOT_SERVING.

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use merklog_log::{Log, LogError};
use merklog_merkle::TreeSize;
use merklog_merkle::tile::{TileId, parse_entry_bundle_path, parse_tile_path, tile_width_at};

use crate::health::Health;

/// `Cache-Control` of the checkpoint: a few seconds at most.
pub const CHECKPOINT_CACHE_CONTROL: &str = "public, max-age=2";
/// `Cache-Control` of tiles and entry bundles: they never change.
pub const TILE_CACHE_CONTROL: &str = "public, max-age=31536000, immutable";
/// `Content-Type` of the checkpoint.
pub const CHECKPOINT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";
/// `Content-Type` of tiles and bundles.
pub const TILE_CONTENT_TYPE: &str = "application/octet-stream";

/// What the handlers read: the log, and the health that damaged storage turns
/// NOT_SERVING.
#[derive(Clone)]
struct Tiles {
    log: Log,
    health: Health,
}

impl FromRef<Tiles> for Log {
    fn from_ref(tiles: &Tiles) -> Log {
        tiles.log.clone()
    }
}

/// The tlog-tiles router.
pub(crate) fn router(log: Log, health: Health) -> Router {
    Router::new()
        .route("/checkpoint", get(checkpoint))
        .route("/tile/{*path}", get(tile))
        .fallback(fallback)
        .with_state(Tiles { log, health })
}

fn count(kind: &'static str, status: StatusCode) {
    metrics::counter!(
        "merklog_http_requests_total",
        "kind" => kind,
        "status" => status.as_str().to_owned()
    )
    .increment(1);
}

fn body(
    status: StatusCode,
    content_type: &'static str,
    cache_control: &'static str,
    body: Bytes,
) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(cache_control),
            ),
        ],
        body,
    )
        .into_response()
}

fn text(status: StatusCode, cache_control: &'static str, message: String) -> Response {
    body(
        status,
        CHECKPOINT_CONTENT_TYPE,
        cache_control,
        Bytes::from(message),
    )
}

fn not_found(what: &str) -> Response {
    text(
        StatusCode::NOT_FOUND,
        "no-store",
        format!("{what} is not in the published tree\n"),
    )
}

async fn fallback(uri: Uri) -> Response {
    count("other", StatusCode::NOT_FOUND);
    text(
        StatusCode::NOT_FOUND,
        "no-store",
        format!("{} is not a tlog-tiles resource\n", uri.path()),
    )
}

async fn checkpoint(State(log): State<Log>) -> Response {
    count("checkpoint", StatusCode::OK);
    body(
        StatusCode::OK,
        CHECKPOINT_CONTENT_TYPE,
        CHECKPOINT_CACHE_CONTROL,
        log.latest().note().clone(),
    )
}

/// What a `/tile/...` path names.
enum Resource {
    Tile { level: u8, index: u64, width: u16 },
    Bundle { index: u64, width: u16 },
}

impl Resource {
    fn parse(path: &str) -> Result<Self, String> {
        if path.starts_with("tile/entries/") {
            let (index, width) = parse_entry_bundle_path(path).map_err(|e| e.to_string())?;
            Ok(Self::Bundle { index, width })
        } else {
            let id = parse_tile_path(path).map_err(|e| e.to_string())?;
            Ok(Self::Tile {
                level: id.level,
                index: id.index,
                width: id.width,
            })
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Self::Tile { .. } => "tile",
            Self::Bundle { .. } => "entries",
        }
    }

    /// True if the tree of `size` holds at least `width` hashes of this tile.
    fn published_in(&self, size: TreeSize) -> bool {
        let (level, index, width) = match *self {
            Self::Tile {
                level,
                index,
                width,
            } => (level, index, width),
            Self::Bundle { index, width } => (0, index, width),
        };
        width >= 1 && width <= tile_width_at(level, index, size)
    }

    async fn read(&self, log: &Log) -> Result<Option<Bytes>, LogError> {
        match *self {
            Self::Tile {
                level,
                index,
                width,
            } => {
                log.tile(TileId {
                    level,
                    index,
                    width,
                })
                .await
            }
            Self::Bundle { index, width } => log.entry_bundle(index, width).await,
        }
    }
}

async fn tile(State(Tiles { log, health }): State<Tiles>, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let resource = match Resource::parse(path) {
        Ok(resource) => resource,
        Err(reason) => {
            count("tile", StatusCode::BAD_REQUEST);
            return text(
                StatusCode::BAD_REQUEST,
                "no-store",
                format!("{path}: not a canonical tlog-tiles path: {reason}\n"),
            );
        }
    };
    let kind = resource.kind();
    if !resource.published_in(log.latest().size()) {
        count(kind, StatusCode::NOT_FOUND);
        return not_found(path);
    }
    match resource.read(&log).await {
        Ok(Some(bytes)) => {
            count(kind, StatusCode::OK);
            body(StatusCode::OK, TILE_CONTENT_TYPE, TILE_CACHE_CONTROL, bytes)
        }
        Ok(None) => {
            count(kind, StatusCode::NOT_FOUND);
            not_found(path)
        }
        Err(LogError::DataLoss(reason)) => {
            health.storage_corrupted(&reason);
            count(kind, StatusCode::INTERNAL_SERVER_ERROR);
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "no-store",
                format!("{path}: stored data is damaged: {reason}\n"),
            )
        }
        Err(error) => {
            tracing::warn!(%error, path, "tile read failed");
            count(kind, StatusCode::SERVICE_UNAVAILABLE);
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "no-store",
                format!("{path}: {error}\n"),
            )
        }
    }
}
