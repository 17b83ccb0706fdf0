//! Shared helpers: merklog-testkit's in-process server on port 0 and seeded RNG, and
//! merklog-testkit-tree's naive RFC 6962 tree to check every proof against.

use bytes::Bytes;
use merklog_merkle::{Hash, LeafIndex, TreeSize, hash_leaf};
use merklog_note::{Checkpoint, open_checkpoint};
use merklog_proto::convert::proof_from_wire;
use merklog_proto::v1;
pub(crate) use merklog_testkit::{ORIGIN, Rng, TestServer, test_config};
pub(crate) use merklog_testkit_tree::mth;

/// Opens a wire checkpoint: the signature verifies with the log key, the origin
/// is right, and the convenience fields equal the signed text.
pub(crate) fn open(server: &TestServer, checkpoint: &v1::Checkpoint) -> Checkpoint {
    let (parsed, _) = open_checkpoint(&checkpoint.note, &server.verifier(), Some(&server.origin))
        .expect("checkpoint signature");
    assert_eq!(parsed.size, checkpoint.size);
    assert_eq!(parsed.root.as_bytes(), &checkpoint.root[..]);
    parsed
}

pub(crate) fn entry(tag: &str, i: usize) -> Bytes {
    Bytes::from(format!("{tag}-entry-{i:06}"))
}

pub(crate) fn append_request(entries: Vec<Bytes>, tlog_proof: bool) -> v1::AppendRequest {
    v1::AppendRequest {
        entries,
        include_tlog_proof: tlog_proof,
    }
}

pub(crate) fn proof(bytes: &[u8]) -> Vec<Hash> {
    proof_from_wire("proof", bytes).unwrap()
}

/// A naive RFC 6962 tree over all leaves appended so far.
#[derive(Default, Clone)]
pub(crate) struct NaiveTree {
    pub(crate) entries: Vec<Bytes>,
    pub(crate) leaves: Vec<Hash>,
}

impl NaiveTree {
    pub(crate) fn push(&mut self, entry: Bytes) {
        self.leaves.push(hash_leaf(&entry));
        self.entries.push(entry);
    }

    pub(crate) fn root(&self, size: u64) -> Hash {
        mth(&self.leaves[..size as usize])
    }

    pub(crate) fn inclusion(&self, index: u64, size: u64) -> Vec<Hash> {
        merklog_testkit_tree::path(index as usize, &self.leaves[..size as usize]).unwrap()
    }

    pub(crate) fn consistency(&self, old: u64, new: u64) -> Vec<Hash> {
        merklog_testkit_tree::proof(old as usize, &self.leaves[..new as usize]).unwrap()
    }

    /// Checks a served inclusion proof both ways: merklog-merkle's verifier against
    /// the naive root, and equality with the naive path.
    pub(crate) fn check_inclusion(&self, index: u64, size: u64, served: &[Hash]) {
        let root = self.root(size);
        merklog_merkle::verify_inclusion(
            &self.leaves[index as usize],
            LeafIndex(index),
            TreeSize(size),
            served,
            &root,
        )
        .unwrap();
        assert_eq!(
            served,
            self.inclusion(index, size),
            "inclusion {index} in {size}"
        );
    }

    pub(crate) fn check_consistency(&self, old: u64, new: u64, served: &[Hash]) {
        merklog_merkle::verify_consistency(
            TreeSize(old),
            TreeSize(new),
            served,
            &self.root(old),
            &self.root(new),
        )
        .unwrap();
        assert_eq!(
            served,
            self.consistency(old, new),
            "consistency {old} -> {new}"
        );
    }
}
