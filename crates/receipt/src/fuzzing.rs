//! Fuzz target bodies, shared by the cargo-fuzz targets in `fuzz/` and by the test that
//! replays the checked-in seed corpus. Not part of the API.

use merklog_merkle::hash_leaf;

use crate::{PublicKey, Receipt, SecretKey, SignedStatement, parse_problem_details};

fn fixed_keys() -> [PublicKey; 2] {
    use crate::ReceiptSigner as _;
    let ed = SecretKey::from_bytes(crate::Algorithm::EdDsa, &[7; 32]);
    let es = SecretKey::from_bytes(crate::Algorithm::Es256, &[7; 32]);
    match (ed, es) {
        (Ok(ed), Ok(es)) => [ed.public_key(), es.public_key()],
        // Both seeds are valid keys; failing here is a bug the fuzzer should report.
        _ => panic!("fixed fuzzing keys are invalid"),
    }
}

/// Parses arbitrary bytes as a receipt. A parsed receipt must expose a proof within the
/// limits, and verification against fixed keys must fail cleanly (nobody holds those
/// keys' receipts) without panicking.
pub fn receipt_parse_target(data: &[u8]) {
    let Ok(receipt) = Receipt::parse(data) else {
        return;
    };
    assert!(receipt.proof().path.len() <= crate::MAX_PROOF_HASHES);
    for key in fixed_keys() {
        let leaf = hash_leaf(data);
        assert!(receipt.verify(&leaf, &key).is_err());
    }
}

/// Parses arbitrary bytes as a signed statement, problem details and a key set; a
/// parsed statement has an issuer and subject and does not verify under fixed keys.
pub fn statement_parse_target(data: &[u8]) {
    let _ = parse_problem_details(data);
    let _ = PublicKey::decode_key_set(data);
    let Ok(statement) = SignedStatement::parse(data) else {
        return;
    };
    assert!(!statement.issuer().is_empty());
    assert!(!statement.subject().is_empty());
    for key in fixed_keys() {
        assert!(statement.verify(&key).is_err());
    }
}
