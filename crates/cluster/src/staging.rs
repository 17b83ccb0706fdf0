//! The staging bundle: every object one round uploads, in one create-only object
//! written before the lock swap, so a sequencer that dies between the swap and the
//! uploads leaves enough in the bucket for the next one to finish them.
//!
//! Encoding (all integers big-endian):
//!
//! ```text
//! "merklog-staging-v1\n"
//! u32 checkpoint length ‖ checkpoint note
//! u32 object count, then per object: u16 path length ‖ path ‖ u32 length ‖ bytes
//! ```
//!
//! It is named `staging/<size>.<first 16 hex digits of sha256(checkpoint)>`: the
//! checkpoint in the lock names the staging bundle that completes it.

use crate::ClusterError;
use crate::bucket::sha256_hex;

const MAGIC: &[u8] = b"merklog-staging-v1\n";

/// One round's objects and the checkpoint that covers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staged {
    /// The signed checkpoint of the round (the value swapped into the lock).
    pub checkpoint: Vec<u8>,
    /// (path, bytes) of every tile and bundle the round creates, at their widths.
    pub objects: Vec<(String, Vec<u8>)>,
}

/// The staging path for the round whose checkpoint is `checkpoint` at `size`.
pub fn staging_path(size: u64, checkpoint: &[u8]) -> String {
    let hash = sha256_hex(checkpoint);
    format!("staging/{size}.{}", hash.get(..16).unwrap_or(&hash))
}

impl Staged {
    /// The encoded bundle.
    pub fn encode(&self) -> Result<Vec<u8>, ClusterError> {
        let too_big = |what: &str| ClusterError::Malformed {
            what: "staging bundle".into(),
            reason: format!("{what} too large to encode"),
        };
        let size: usize = self
            .objects
            .iter()
            .map(|(p, b)| 6 + p.len() + b.len())
            .sum();
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + self.checkpoint.len() + size);
        out.extend_from_slice(MAGIC);
        let cp_len = u32::try_from(self.checkpoint.len()).map_err(|_| too_big("checkpoint"))?;
        out.extend_from_slice(&cp_len.to_be_bytes());
        out.extend_from_slice(&self.checkpoint);
        let count = u32::try_from(self.objects.len()).map_err(|_| too_big("object list"))?;
        out.extend_from_slice(&count.to_be_bytes());
        for (path, bytes) in &self.objects {
            let path_len = u16::try_from(path.len()).map_err(|_| too_big("path"))?;
            let len = u32::try_from(bytes.len()).map_err(|_| too_big("object"))?;
            out.extend_from_slice(&path_len.to_be_bytes());
            out.extend_from_slice(path.as_bytes());
            out.extend_from_slice(&len.to_be_bytes());
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }

    /// Parses an encoded bundle; any malformation is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Self, ClusterError> {
        let bad = |reason: &str| ClusterError::Malformed {
            what: "staging bundle".into(),
            reason: reason.into(),
        };
        let mut rest = bytes
            .strip_prefix(MAGIC)
            .ok_or_else(|| bad("no staging header"))?;
        let mut take = |n: usize| -> Result<&[u8], ClusterError> {
            if rest.len() < n {
                return Err(bad("truncated"));
            }
            let (head, tail) = rest.split_at(n);
            rest = tail;
            Ok(head)
        };
        let be32 = |b: &[u8]| -> usize {
            let mut a = [0u8; 4];
            a.copy_from_slice(b);
            u32::from_be_bytes(a) as usize
        };
        let cp_len = be32(take(4)?);
        let checkpoint = take(cp_len)?.to_vec();
        let count = be32(take(4)?);
        let mut objects = Vec::with_capacity(count.min(4096));
        for _ in 0..count {
            let path_len = take(2)?;
            let path_len = usize::from(u16::from_be_bytes([path_len[0], path_len[1]]));
            let path = std::str::from_utf8(take(path_len)?)
                .map_err(|_| bad("path is not UTF-8"))?
                .to_owned();
            let len = be32(take(4)?);
            objects.push((path, take(len)?.to_vec()));
        }
        if !rest.is_empty() {
            return Err(bad("trailing bytes"));
        }
        Ok(Self {
            checkpoint,
            objects,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_every_truncation() {
        let staged = Staged {
            checkpoint: b"origin\n3\nroot\n\n- sig\n".to_vec(),
            objects: vec![
                ("tile/0/000.p/3".into(), vec![7; 96]),
                ("tile/entries/000.p/3".into(), vec![0, 1, 9, 0, 0, 0, 1, 8]),
            ],
        };
        let bytes = staged.encode().unwrap();
        assert_eq!(Staged::decode(&bytes).unwrap(), staged);
        for cut in 0..bytes.len() {
            assert!(Staged::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(Staged::decode(&longer).is_err());
    }

    #[test]
    fn staging_path_names_size_and_checkpoint() {
        let a = staging_path(42, b"a");
        assert!(a.starts_with("staging/42."), "{a}");
        assert_eq!(a.len(), "staging/42.".len() + 16);
        assert_ne!(a, staging_path(42, b"b"));
    }
}
