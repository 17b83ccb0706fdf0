//! The C2SP tlog-witness `add-checkpoint` request body, as a log sends it: `old N`,
//! the consistency proof in base64 one hash per line, an empty line, the signed
//! checkpoint. Shared by the log's witness client and the witness's own pull mode;
//! the witness crate parses it.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::Hash;

/// Encodes a tlog-witness `add-checkpoint` request body.
pub fn encode_add_checkpoint(old_size: u64, proof: &[Hash], checkpoint: &[u8]) -> Vec<u8> {
    // "old " + 20 digits + newline, 45 bytes a base64 hash line, the empty line.
    let mut body = Vec::with_capacity(26 + proof.len() * 45 + 1 + checkpoint.len());
    body.extend_from_slice(format!("old {old_size}\n").as_bytes());
    for hash in proof {
        body.extend_from_slice(STANDARD.encode(hash).as_bytes());
        body.push(b'\n');
    }
    body.push(b'\n');
    body.extend_from_slice(checkpoint);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_spec_example_shape() {
        let body = encode_add_checkpoint(2, &[[0u8; 32], [0xff; 32]], b"o\n3\nroot\n\n- sig\n");
        let expected = "old 2\n\
            AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\
            //////////////////////////////////////////8=\n\
            \n\
            o\n3\nroot\n\n- sig\n";
        assert_eq!(String::from_utf8(body).unwrap(), expected);
        assert_eq!(encode_add_checkpoint(0, &[], b"cp"), b"old 0\n\ncp");
    }
}
