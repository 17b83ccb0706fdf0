//! Receipts and signed statements: round trips with both algorithms, and every kind of
//! tampering refused with the evidence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use coset::cbor::value::Value;
use coset::{CoseSign1, Label, TaggedCborSerializable as _};
use merklog_merkle::{BatchProofs, CompactRange, Hash, LeafIndex, TreeSize, hash_leaf};
use merklog_receipt::{
    Algorithm, PublicKey, Receipt, ReceiptError, ReceiptSigner as _, SecretKey, SignedStatement,
    SignedTreeHead, parse_problem_details, problem_details, sign_statement,
};

fn key(algorithm: Algorithm, seed: u8) -> SecretKey {
    SecretKey::from_bytes(algorithm, &[seed; 32]).unwrap()
}

fn tree(size: u64) -> (Vec<Vec<u8>>, BatchProofs) {
    let entries: Vec<Vec<u8>> = (0..size)
        .map(|i| format!("entry {i}").into_bytes())
        .collect();
    let leaves: Vec<Hash> = entries.iter().map(|e| hash_leaf(e)).collect();
    let proofs = BatchProofs::new(&CompactRange::new(), &leaves).unwrap();
    (entries, proofs)
}

#[test]
fn every_leaf_verifies_with_one_signature_per_tree_head() {
    for algorithm in [Algorithm::EdDsa, Algorithm::Es256] {
        let secret = key(algorithm, 3);
        let public = secret.public_key();
        for size in [1u64, 2, 3, 7, 8, 13] {
            let (entries, proofs) = tree(size);
            let head = SignedTreeHead::sign(&secret, TreeSize(size), proofs.root()).unwrap();
            let mut signatures = Vec::new();
            for (i, entry) in entries.iter().enumerate() {
                let index = LeafIndex(i as u64);
                let path = proofs.inclusion_proof(index).unwrap();
                let bytes = head.receipt(&hash_leaf(entry), index, &path).unwrap();
                let receipt = Receipt::parse(&bytes).unwrap();
                assert_eq!(receipt.algorithm(), algorithm);
                assert_eq!(receipt.key_id(), public.key_id().as_slice());
                let verified = receipt.verify_entry(entry, &public).unwrap();
                assert_eq!(verified.tree_size, TreeSize(size));
                assert_eq!(verified.leaf_index, index);
                assert_eq!(verified.root, proofs.root());
                signatures.push(CoseSign1::from_tagged_slice(&bytes).unwrap().signature);
            }
            signatures.dedup();
            assert_eq!(signatures.len(), 1, "{algorithm:?} size {size}");
        }
    }
}

/// A receipt of leaf 2 of 5 signed by `secret`, with its entry and public key.
fn sample(algorithm: Algorithm) -> (Vec<u8>, Vec<u8>, PublicKey) {
    let secret = key(algorithm, 9);
    let (entries, proofs) = tree(5);
    let head = SignedTreeHead::sign(&secret, TreeSize(5), proofs.root()).unwrap();
    let path = proofs.inclusion_proof(LeafIndex(2)).unwrap();
    let bytes = head
        .receipt(&hash_leaf(&entries[2]), LeafIndex(2), &path)
        .unwrap();
    (bytes, entries[2].clone(), secret.public_key())
}

/// Rewrites the receipt's inclusion proof `[size, index, path]` through `change`.
fn with_proof(bytes: &[u8], change: impl FnOnce(&mut Vec<Value>)) -> Vec<u8> {
    let mut sign1 = CoseSign1::from_tagged_slice(bytes).unwrap();
    let (_, Value::Map(vdp)) = sign1
        .unprotected
        .rest
        .iter_mut()
        .find(|(l, _)| *l == Label::Int(396))
        .unwrap()
    else {
        panic!("no vdp map")
    };
    let Value::Array(proofs) = &mut vdp[0].1 else {
        panic!()
    };
    let Value::Bytes(proof) = &mut proofs[0] else {
        panic!()
    };
    let mut value: Value = coset::cbor::de::from_reader(proof.as_slice()).unwrap();
    let Value::Array(items) = &mut value else {
        panic!()
    };
    change(items);
    proof.clear();
    coset::cbor::ser::into_writer(&value, &mut *proof).unwrap();
    sign1.to_tagged_vec().unwrap()
}

#[test]
fn tampering_is_refused_with_evidence() {
    for algorithm in [Algorithm::EdDsa, Algorithm::Es256] {
        let (bytes, entry, public) = sample(algorithm);
        Receipt::parse(&bytes)
            .unwrap()
            .verify_entry(&entry, &public)
            .unwrap();

        // A changed entry: the signature fails over the root it leads to.
        let err = Receipt::parse(&bytes)
            .unwrap()
            .verify_entry(b"entry 2 changed", &public)
            .unwrap_err();
        match err {
            ReceiptError::ReceiptSignature {
                leaf,
                leaf_index,
                tree_size,
                ..
            } => {
                assert_eq!(leaf, hash_leaf(b"entry 2 changed"));
                assert_eq!((leaf_index, tree_size), (2, 5));
            }
            other => panic!("{other}"),
        }

        // A changed audit path hash.
        let tampered = with_proof(&bytes, |items| {
            let Value::Array(path) = &mut items[2] else {
                panic!()
            };
            let Value::Bytes(h) = &mut path[0] else {
                panic!()
            };
            h[0] ^= 1;
        });
        let err = Receipt::parse(&tampered)
            .unwrap()
            .verify_entry(&entry, &public)
            .unwrap_err();
        assert!(
            matches!(err, ReceiptError::ReceiptSignature { .. }),
            "{err}"
        );

        // A changed leaf index (same path length): a different root.
        let tampered = with_proof(&bytes, |items| items[1] = Value::from(3u64));
        assert!(
            Receipt::parse(&tampered)
                .unwrap()
                .verify_entry(&entry, &public)
                .is_err()
        );

        // A changed tree size whose shape no longer fits: the proof arithmetic says so.
        let tampered = with_proof(&bytes, |items| items[0] = Value::from(64u64));
        let err = Receipt::parse(&tampered)
            .unwrap()
            .verify_entry(&entry, &public)
            .unwrap_err();
        assert!(matches!(err, ReceiptError::Proof { .. }), "{err}");

        // A flipped signature bit.
        let mut sign1 = CoseSign1::from_tagged_slice(&bytes).unwrap();
        sign1.signature[10] ^= 0x80;
        let tampered = sign1.to_tagged_vec().unwrap();
        assert!(
            Receipt::parse(&tampered)
                .unwrap()
                .verify_entry(&entry, &public)
                .is_err()
        );

        // Another key of the same algorithm: the kid differs.
        let other = key(algorithm, 10).public_key();
        let err = Receipt::parse(&bytes)
            .unwrap()
            .verify_entry(&entry, &other)
            .unwrap_err();
        assert!(matches!(err, ReceiptError::KeyId { .. }), "{err}");

        // A key of the other algorithm.
        let other_alg = match algorithm {
            Algorithm::EdDsa => Algorithm::Es256,
            Algorithm::Es256 => Algorithm::EdDsa,
        };
        let err = Receipt::parse(&bytes)
            .unwrap()
            .verify_entry(&entry, &key(other_alg, 9).public_key())
            .unwrap_err();
        assert!(matches!(err, ReceiptError::Algorithm(_)), "{err}");
    }
}

#[test]
fn a_signed_wrong_root_gives_no_receipt_and_a_receipt_over_it_fails() {
    let secret = key(Algorithm::EdDsa, 1);
    let (entries, proofs) = tree(6);
    let wrong_root = hash_leaf(b"not the root");
    let head = SignedTreeHead::sign(&secret, TreeSize(6), wrong_root).unwrap();
    let path = proofs.inclusion_proof(LeafIndex(1)).unwrap();
    let err = head
        .receipt(&hash_leaf(&entries[1]), LeafIndex(1), &path)
        .unwrap_err();
    assert!(matches!(err, ReceiptError::Proof { .. }), "{err}");
}

#[test]
fn structural_errors_name_the_field() {
    let (bytes, _, _) = sample(Algorithm::EdDsa);
    let mut sign1 = CoseSign1::from_tagged_slice(&bytes).unwrap();
    sign1.payload = Some(b"root".to_vec());
    let err = Receipt::parse(&sign1.to_tagged_vec().unwrap()).unwrap_err();
    assert!(err.to_string().contains("detached"), "{err}");

    let mut sign1 = CoseSign1::from_tagged_slice(&bytes).unwrap();
    sign1.unprotected.rest.clear();
    let err = Receipt::parse(&sign1.to_tagged_vec().unwrap()).unwrap_err();
    assert!(err.to_string().contains("vdp"), "{err}");

    let mut sign1 = CoseSign1::from_tagged_slice(&bytes).unwrap();
    sign1.protected.original_data = None;
    sign1.protected.header.rest[0].1 = Value::from(2);
    let err = Receipt::parse(&sign1.to_tagged_vec().unwrap()).unwrap_err();
    assert!(err.to_string().contains("vds"), "{err}");

    let tampered = with_proof(&bytes, |items| items.truncate(2));
    let err = Receipt::parse(&tampered).unwrap_err();
    assert!(err.to_string().contains("inclusion proof"), "{err}");

    assert!(Receipt::parse(b"").is_err());
    assert!(Receipt::parse(&bytes[..bytes.len() - 1]).is_err());
}

#[test]
fn statements_verify_with_their_issuer_key_only() {
    for algorithm in [Algorithm::EdDsa, Algorithm::Es256] {
        let issuer = key(algorithm, 21);
        let bytes = sign_statement(
            &issuer,
            "https://issuer.example",
            "pkg:example/app@1.0",
            "application/json",
            b"{\"ok\":true}",
        )
        .unwrap();
        let statement = SignedStatement::parse(&bytes).unwrap();
        assert_eq!(statement.issuer(), "https://issuer.example");
        assert_eq!(statement.subject(), "pkg:example/app@1.0");
        assert_eq!(statement.payload(), b"{\"ok\":true}");
        statement.verify(&issuer.public_key()).unwrap();
        let err = statement
            .verify(&key(algorithm, 22).public_key())
            .unwrap_err();
        assert!(
            matches!(err, ReceiptError::StatementSignature { ref issuer } if issuer == "https://issuer.example"),
            "{err}"
        );

        // A changed payload no longer verifies.
        let mut sign1 = CoseSign1::from_tagged_slice(&bytes).unwrap();
        sign1.payload = Some(b"{\"ok\":false}".to_vec());
        let changed = SignedStatement::parse(&sign1.to_tagged_vec().unwrap()).unwrap();
        assert!(changed.verify(&issuer.public_key()).is_err());
    }
    // No CWT claims: refused naming label 15.
    let (receipt, _, _) = sample(Algorithm::EdDsa);
    let err = SignedStatement::parse(&receipt).unwrap_err();
    assert!(err.to_string().contains("CWT claims"), "{err}");
}

#[test]
fn keys_round_trip_as_text_cose_key_and_key_set() {
    let keys: Vec<PublicKey> = [Algorithm::EdDsa, Algorithm::Es256]
        .into_iter()
        .map(|a| key(a, 5).public_key())
        .collect();
    for public in &keys {
        assert_eq!(&PublicKey::from_text(&public.to_text()).unwrap(), public);
        assert_eq!(
            &PublicKey::from_cose_key(&public.to_cose_key()).unwrap(),
            public
        );
        assert_eq!(public.to_cose_key().key_id, public.key_id());
    }
    let set = PublicKey::encode_key_set(&keys).unwrap();
    assert_eq!(PublicKey::decode_key_set(&set).unwrap(), keys);
    for algorithm in [Algorithm::EdDsa, Algorithm::Es256] {
        let secret = key(algorithm, 8);
        let again = SecretKey::from_secret_text(&secret.to_secret_text()).unwrap();
        assert_eq!(again.public_key(), secret.public_key());
        assert!(!format!("{secret:?}").contains(&secret.to_secret_text()));
    }
    assert!(PublicKey::from_text("ed25519:AAAA").is_err());
    assert!(SecretKey::from_bytes(Algorithm::Es256, &[0xff; 32]).is_err());
}

#[test]
fn problem_details_round_trip() {
    let bytes = problem_details("Unknown issuer", "issuer \"x\" is not registered");
    assert_eq!(
        parse_problem_details(&bytes).unwrap(),
        (
            "Unknown issuer".to_owned(),
            "issuer \"x\" is not registered".to_owned()
        )
    );
    assert!(parse_problem_details(b"\xa0").is_none());
}

#[test]
fn a_verified_tree_head_checks_and_reassembles_the_other_receipts_at_its_size() {
    for algorithm in [Algorithm::EdDsa, Algorithm::Es256] {
        let secret = key(algorithm, 4);
        let public = secret.public_key();
        let (entries, proofs) = tree(6);
        let signer = SignedTreeHead::sign(&secret, TreeSize(6), proofs.root()).unwrap();
        let receipt_of = |head: &SignedTreeHead, i: u64| {
            let index = LeafIndex(i);
            let path = proofs.inclusion_proof(index).unwrap();
            head.receipt(&hash_leaf(&entries[i as usize]), index, &path)
                .unwrap()
        };
        let first = Receipt::parse(&receipt_of(&signer, 0)).unwrap();
        let (verified, head) = first
            .verified_tree_head(&hash_leaf(&entries[0]), &public)
            .unwrap();
        assert_eq!(verified.root, proofs.root());
        for i in 0..6u64 {
            // The head taken from a verified receipt assembles the signer's bytes.
            assert_eq!(receipt_of(&head, i), receipt_of(&signer, i));
            let receipt = Receipt::parse(&receipt_of(&signer, i)).unwrap();
            let checked = head.check(&receipt, &hash_leaf(&entries[i as usize]));
            assert_eq!(checked.unwrap().leaf_index, LeafIndex(i));
            // Another leaf's receipt does not prove this entry.
            let other = (i + 1) % 6;
            assert!(
                head.check(&receipt, &hash_leaf(&entries[other as usize]))
                    .is_err()
            );
        }
        // A receipt signed by another key, or a head verified with the wrong key.
        let stranger = key(algorithm, 5);
        let foreign = SignedTreeHead::sign(&stranger, TreeSize(6), proofs.root()).unwrap();
        let forged = Receipt::parse(&receipt_of(&foreign, 3)).unwrap();
        assert!(head.check(&forged, &hash_leaf(&entries[3])).is_err());
        assert!(
            first
                .verified_tree_head(&hash_leaf(&entries[0]), &stranger.public_key())
                .is_err()
        );
    }
}
