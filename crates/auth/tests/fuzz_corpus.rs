//! Replays the checked-in fuzz seed corpora through the same functions the
//! cargo-fuzz targets in `fuzz/` call, so CI (stable, no libFuzzer) checks
//! every seed. `cargo test -p merklog-auth --test fuzz_corpus -- --ignored`
//! regenerates the seeds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use merklog_auth::{
    Expiry, FILE_HEADER, Principal, Roles, TOKEN_PREFIX, Token, TokenRecord, fuzzing,
};
use rcgen::{CertificateParams, DnType, KeyPair, SanType};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz_corpus")
        .join(target)
}

/// Runs every seed: none may panic, `ok-*` must parse and `bad-*` must not.
fn replay(target: &str, run: fn(&[u8]) -> bool) {
    let dir = corpus_dir(target);
    let (mut total, mut accepted) = (0, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let Ok(ok) = std::panic::catch_unwind(|| run(&data)) else {
            panic!("{target}: seed {} panicked", path.display());
        };
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("ok-") {
            assert!(ok, "{target}: {name} was rejected");
        } else if name.starts_with("bad-") {
            assert!(!ok, "{target}: {name} was accepted");
        }
        total += 1;
        accepted += usize::from(ok);
    }
    assert!(
        total >= 10,
        "{target}: only {total} seeds in {}",
        dir.display()
    );
    assert!(accepted >= 3, "{target}: only {accepted} seeds parse");
}

#[test]
fn certificate_seeds() {
    replay("certificate", fuzzing::certificate);
}

#[test]
fn tokens_seeds() {
    replay("tokens", fuzzing::tokens);
}

fn write_seeds(target: &str, seeds: &[(&str, Vec<u8>)]) {
    let dir = corpus_dir(target);
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in seeds {
        std::fs::write(dir.join(name), data).unwrap();
    }
}

fn cert(sans: Vec<SanType>, common_name: Option<&str>) -> Vec<u8> {
    let mut params = CertificateParams::default();
    params.subject_alt_names = sans;
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = common_name {
        params.distinguished_name.push(DnType::CommonName, cn);
    }
    let key = KeyPair::generate().unwrap();
    params.self_signed(&key).unwrap().der().to_vec()
}

fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().unwrap())
}

fn dns(text: &str) -> SanType {
    SanType::DnsName(text.try_into().unwrap())
}

fn record(seed: u8, principal: &str, roles: &str, expires: Expiry) -> TokenRecord {
    TokenRecord {
        hash: Token::from_random(&[seed; 32]).hash(),
        principal: Principal::new(principal).unwrap(),
        roles: Roles::parse_list(roles).unwrap(),
        expires,
    }
}

#[test]
#[ignore = "regenerates the checked-in seed corpora"]
fn regenerate_seed_corpora() {
    let spiffe = cert(
        vec![
            dns("w.example"),
            uri("spiffe://prod.example/ns/audit/sa/writer"),
        ],
        Some("cn"),
    );
    let mut truncated = spiffe.clone();
    truncated.truncate(spiffe.len() / 2);
    let mut flipped = spiffe.clone();
    flipped[4] ^= 0xff;
    write_seeds(
        "certificate",
        &[
            ("ok-spiffe", spiffe.clone()),
            ("ok-dns", cert(vec![dns("writer.example.com")], Some("cn"))),
            ("ok-cn", cert(Vec::new(), Some("writer-7"))),
            (
                "ok-uri-not-spiffe",
                cert(vec![uri("https://example.com/")], Some("w")),
            ),
            ("bad-no-name", cert(Vec::new(), None)),
            (
                "bad-spiffe-upper",
                cert(vec![uri("spiffe://Prod.example/x")], None),
            ),
            (
                "bad-two-spiffe",
                cert(
                    vec![uri("spiffe://a.example/x"), uri("spiffe://a.example/y")],
                    None,
                ),
            ),
            ("bad-cn-space", cert(Vec::new(), Some("Jane Doe"))),
            ("bad-truncated", truncated),
            ("flipped", flipped),
            ("bad-empty", Vec::new()),
            ("bad-text", b"-----BEGIN CERTIFICATE-----\n".to_vec()),
        ],
    );
    let a = record(1, "ci", "append", Expiry::At(1_900_000_000));
    let b = record(2, "spiffe://x.example/auditor", "read,admin", Expiry::Never);
    let token = Token::from_random(&[7; 32]);
    let hash = a.hash.to_hex();
    write_seeds(
        "tokens",
        &[
            (
                "ok-file",
                format!("{FILE_HEADER}{}\n# gone\n{}", a.to_line(), b.to_line()).into_bytes(),
            ),
            ("ok-one-line", a.to_line().into_bytes()),
            ("ok-comments-only", FILE_HEADER.as_bytes().to_vec()),
            (
                "ok-bearer",
                format!("Bearer {}", token.expose()).into_bytes(),
            ),
            ("spiffe-id", b"spiffe://example.org/ns/x".to_vec()),
            ("bad-bearer-basic", b"Basic dXNlcjpwYXNz".to_vec()),
            (
                "bad-short-hash",
                format!("{} ci append never", &hash[..60]).into_bytes(),
            ),
            ("bad-role", format!("{hash} ci write never").into_bytes()),
            ("bad-fields", format!("{hash} ci append").into_bytes()),
            (
                "bad-duplicate",
                format!("{}{}", a.to_line(), a.to_line()).into_bytes(),
            ),
            (
                "bad-expiry",
                format!("{hash} ci append tomorrow").into_bytes(),
            ),
            ("bad-utf8", vec![0xff, 0xfe, b' ', b'x']),
            (
                "bad-prefix-only",
                format!("Bearer{TOKEN_PREFIX}").into_bytes(),
            ),
        ],
    );
}
