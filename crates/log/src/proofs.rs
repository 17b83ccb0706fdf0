//! Inclusion proofs read back from storage: for entries that were already in the log
//! before their round (duplicates), and for callers the witness stage answers with a
//! later checkpoint than their round's.

use std::collections::HashMap;

use merklog_merkle::{Hash, LeafIndex, NodeId, NodeReader, TreeSize, inclusion_plan};

use crate::LogError;
use crate::tiles::StoredTree;

/// Inclusion proofs at `size` of leaves already in the log, from ONE batched tile read.
/// A leaf given with its hash is read too and must equal it (a wrong dedup row never
/// yields a proof for another entry); repeated indexes are read once.
pub(crate) fn stored_proofs(
    tree: &StoredTree,
    leaves: &[(u64, Option<Hash>)],
    size: TreeSize,
) -> Result<HashMap<u64, Vec<Hash>>, LogError> {
    let mut leaves = leaves.to_vec();
    leaves.sort_unstable_by_key(|(index, _)| *index);
    leaves.dedup_by_key(|(index, _)| *index);
    let mut plans = Vec::with_capacity(leaves.len());
    let mut nodes: Vec<NodeId> = Vec::new();
    for (index, leaf_hash) in &leaves {
        let plan = inclusion_plan(LeafIndex(*index), size)
            .map_err(|e| LogError::Storage(e.to_string()))?;
        if leaf_hash.is_some() {
            nodes.push(NodeId::leaf(LeafIndex(*index)));
        }
        nodes.extend_from_slice(plan.nodes());
        plans.push(plan);
    }
    let hashes = tree.at(size).read_nodes(&nodes)?;
    let short = || LogError::Storage("short node read".into());
    let mut out = HashMap::with_capacity(leaves.len());
    let mut rest = hashes.as_slice();
    for ((index, leaf_hash), plan) in leaves.iter().zip(&plans) {
        if let Some(leaf_hash) = leaf_hash {
            let (stored_leaf, after) = rest.split_first().ok_or_else(short)?;
            if stored_leaf != leaf_hash {
                return Err(LogError::Storage(format!(
                    "dedup index maps an entry to leaf {index}, which holds another entry"
                )));
            }
            rest = after;
        }
        let (mine, after) = rest
            .split_at_checked(plan.nodes().len())
            .ok_or_else(short)?;
        out.insert(
            *index,
            plan.assemble(mine)
                .map_err(|e| LogError::Storage(e.to_string()))?,
        );
        rest = after;
    }
    Ok(out)
}
