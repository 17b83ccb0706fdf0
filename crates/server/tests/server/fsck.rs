//! `merklog_server::fsck::check_store` on a real data directory: a clean log passes
//! with every tile counted, and a stored tile that differs from the entries (or a
//! rewritten entry) is named by its coordinates.

use merklog_log::{LogStore as _, RoundWrite, ValueWrite};
use merklog_merkle::tile::TileId;
use merklog_server::fsck::{FsckFinding, check_store};
use merklog_store::RocksStore;

use crate::common::{TestServer, append_request, entry, test_config};

/// A stopped log of `count` entries (appended in calls of 200) in a fresh directory.
async fn log_of(count: usize) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_with(test_config(dir.path())).await;
    let mut client = server.client().await;
    let entries: Vec<_> = (0..count).map(|i| entry("fsck", i)).collect();
    for call in entries.chunks(200) {
        client
            .append(append_request(call.to_vec(), false))
            .await
            .unwrap();
    }
    server.stop().await;
    let db = dir.path().join(merklog_server::keys::DB_DIR);
    (dir, db)
}

#[tokio::test]
async fn a_clean_log_passes_and_a_changed_tile_is_named() {
    let (_dir, db) = log_of(600).await;
    let store = RocksStore::open(&db).unwrap();
    let report = check_store(&store).unwrap();
    assert_eq!((report.size, report.bundles, report.tiles), (600, 3, 4));
    assert!(
        report.to_string().starts_with("ok: 600 entries"),
        "{report}"
    );

    // Tile 1/0 (width 2 at size 600) holds the roots of tiles 0/0 and 0/1.
    let tile = TileId {
        level: 1,
        index: 0,
        width: 2,
    };
    let mut bad = store_tile(&store, tile);
    bad[40] ^= 1;
    store
        .commit(&RoundWrite {
            tiles: vec![(tile, ValueWrite::Put(bad))],
            ..RoundWrite::default()
        })
        .unwrap();
    let finding = check_store(&store).unwrap_err();
    assert_eq!(
        finding,
        FsckFinding::Tile {
            tile,
            reason: "its hashes differ from the ones the entry bundles give".into()
        }
    );
    assert!(
        finding
            .to_string()
            .starts_with("bad tile: level 1, index 0, width 2 (tile/1/000.p/2)"),
        "{finding}"
    );
}

#[tokio::test]
async fn a_rewritten_entry_is_found_in_its_tile() {
    let (_dir, db) = log_of(300).await;
    let store = RocksStore::open(&db).unwrap();
    // Bundle 1 (44 entries at size 300): the same lengths, other bytes.
    let mut bundle = store.read_bundles(&[1]).unwrap()[0].clone().unwrap();
    let last = bundle.len() - 1;
    bundle[last] ^= 1;
    store
        .commit(&RoundWrite {
            bundles: vec![(1, ValueWrite::Put(bundle))],
            ..RoundWrite::default()
        })
        .unwrap();
    let finding = check_store(&store).unwrap_err();
    let FsckFinding::Tile { tile, .. } = finding else {
        panic!("expected a bad tile, got {finding}");
    };
    assert_eq!(
        tile,
        TileId {
            level: 0,
            index: 1,
            width: 44
        }
    );
}

fn store_tile(store: &RocksStore, tile: TileId) -> Vec<u8> {
    store.read_tiles(&[tile]).unwrap()[0].clone().unwrap()
}
