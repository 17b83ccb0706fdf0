//! Every kind of bad input gets its exact status code, nothing is written, and
//! the server keeps working.

use bytes::Bytes;
use merklog_proto::v1::{self, get_inclusion_proof_request::Leaf, log_client::LogClient};
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::common::*;

/// One bad request and what it must get.
struct Case {
    name: &'static str,
    call: Call,
    code: Code,
    /// A fragment the message must contain.
    message: &'static str,
}

enum Call {
    Append(Vec<Bytes>),
    Inclusion(Option<Leaf>, Option<u64>),
    Consistency(u64, Option<u64>),
    Entries(u64, u64),
}

async fn run(client: &mut LogClient<Channel>, call: Call) -> Result<(), Status> {
    match call {
        Call::Append(entries) => client
            .append(append_request(entries, false))
            .await
            .map(drop),
        Call::Inclusion(leaf, tree_size) => client
            .get_inclusion_proof(v1::GetInclusionProofRequest { leaf, tree_size })
            .await
            .map(drop),
        Call::Consistency(old_size, new_size) => client
            .get_consistency_proof(v1::GetConsistencyProofRequest { old_size, new_size })
            .await
            .map(drop),
        Call::Entries(start, end) => client
            .get_entries(v1::GetEntriesRequest { start, end })
            .await
            .map(drop),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_inputs_get_exact_codes_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.max_entries_per_call = 4;
    let server = TestServer::start_with(config).await;
    let mut client = server.client().await;
    let seeded: Vec<Bytes> = (0..10).map(|i| entry("seed", i)).collect();
    for chunk in seeded.chunks(4) {
        client
            .append(append_request(chunk.to_vec(), false))
            .await
            .unwrap();
    }
    let before = client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(before.size, 10);

    let big = Bytes::from(vec![b'x'; 70_000]);
    let max = Bytes::from(vec![b'y'; 65_535]);
    let unknown = Bytes::from_static(&[0xab; 32]);
    let cases = vec![
        Case {
            name: "empty entry",
            call: Call::Append(vec![Bytes::from_static(b"ok"), Bytes::new()]),
            code: Code::InvalidArgument,
            message: "entries[1]: entry is empty",
        },
        Case {
            name: "oversize entry",
            call: Call::Append(vec![big.clone()]),
            code: Code::InvalidArgument,
            message: "entries[0]: entry is 70000 bytes, the limit is 65535",
        },
        Case {
            name: "no entries",
            call: Call::Append(Vec::new()),
            code: Code::InvalidArgument,
            message: "entries: the request holds no entries",
        },
        Case {
            name: "too many entries",
            call: Call::Append((0..5).map(|i| entry("many", i)).collect()),
            code: Code::InvalidArgument,
            message: "the request holds 5 entries, the limit is 4",
        },
        Case {
            // 5 maximal entries exceed the derived cap of 4 x (65535 + 4) + 64 bytes:
            // refused from the gRPC length prefix, before the body is buffered, so
            // the code is the framing layer's, not INVALID_ARGUMENT.
            name: "oversize request",
            call: Call::Append(vec![max.clone(); 5]),
            code: Code::OutOfRange,
            message: "message length too large",
        },
        Case {
            name: "bad hash length",
            call: Call::Inclusion(Some(Leaf::LeafHash(Bytes::from_static(&[1; 31]))), None),
            code: Code::InvalidArgument,
            message: "leaf_hash: a hash is 32 bytes, got 31",
        },
        Case {
            name: "missing leaf",
            call: Call::Inclusion(None, None),
            code: Code::InvalidArgument,
            message: "leaf: required field is missing",
        },
        Case {
            name: "index >= size",
            call: Call::Inclusion(Some(Leaf::Index(10)), None),
            code: Code::OutOfRange,
            message: "index: 10 is not below the tree size 10",
        },
        Case {
            name: "index >= explicit size",
            call: Call::Inclusion(Some(Leaf::Index(5)), Some(5)),
            code: Code::OutOfRange,
            message: "index: 5 is not below the tree size 5",
        },
        Case {
            name: "size > tree",
            call: Call::Inclusion(Some(Leaf::Index(0)), Some(11)),
            code: Code::OutOfRange,
            message: "tree_size: 11 is beyond the published tree size 10",
        },
        Case {
            name: "huge index",
            call: Call::Inclusion(Some(Leaf::Index(u64::MAX)), Some(u64::MAX)),
            code: Code::OutOfRange,
            message: "beyond the published tree size",
        },
        Case {
            name: "unknown leaf hash",
            call: Call::Inclusion(Some(Leaf::LeafHash(unknown)), None),
            code: Code::NotFound,
            message: "leaf_hash: no entry with this hash",
        },
        Case {
            name: "known hash beyond an explicit size",
            call: Call::Inclusion(
                Some(Leaf::LeafHash(Bytes::copy_from_slice(
                    merklog_merkle::hash_leaf(&seeded[9]).as_bytes(),
                ))),
                Some(9),
            ),
            code: Code::NotFound,
            message: "tree of size 9",
        },
        Case {
            name: "old > new",
            call: Call::Consistency(6, Some(5)),
            code: Code::InvalidArgument,
            message: "old_size: 6 is greater than new_size 5",
        },
        Case {
            name: "old = 0",
            call: Call::Consistency(0, None),
            code: Code::InvalidArgument,
            message: "old_size: must be at least 1",
        },
        Case {
            name: "new > tree",
            call: Call::Consistency(1, Some(11)),
            code: Code::OutOfRange,
            message: "new_size: 11 is beyond the published tree size 10",
        },
        Case {
            name: "old > tree",
            call: Call::Consistency(11, None),
            code: Code::OutOfRange,
            message: "old_size: 11 is beyond the published tree size 10",
        },
        Case {
            name: "empty range",
            call: Call::Entries(3, 3),
            code: Code::InvalidArgument,
            message: "start: 3 is not below end 3",
        },
        Case {
            name: "range beyond the tree",
            call: Call::Entries(5, 11),
            code: Code::OutOfRange,
            message: "end: 11 is beyond the published tree size 10",
        },
    ];
    for case in cases {
        let status = run(&mut client, case.call).await.unwrap_err();
        assert_eq!(status.code(), case.code, "{}: {status:?}", case.name);
        assert!(
            status.message().contains(case.message),
            "{}: {:?} lacks {:?}",
            case.name,
            status.message(),
            case.message
        );
    }

    // The same oversize message on a stream ends that stream with the framing error.
    let request = v1::AppendStreamRequest {
        sequence: 1,
        request: Some(append_request(vec![max; 5], false)),
    };
    let mut client2 = server.client().await;
    let outcome = match client2
        .append_stream(futures::stream::iter([request]))
        .await
    {
        Ok(response) => response.into_inner().message().await.map(|_| ()),
        Err(status) => Err(status),
    };
    assert_eq!(outcome.unwrap_err().code(), Code::OutOfRange);

    // Nothing was written, and the server still serves.
    let after = client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.note, before.note);
    let response = client
        .append(append_request(vec![entry("after", 0)], false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.entries[0].index, 10);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tile_paths_are_400_and_unpublished_ones_404() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    client
        .append(append_request(
            vec![entry("tiles", 0), entry("tiles", 1)],
            false,
        ))
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let table: &[(&str, u16)] = &[
        ("tile/0/000.p/2", 200),
        ("tile/0/000.p/1", 200),
        ("tile/entries/000.p/2", 200),
        ("tile/0/000.p/3", 404),
        ("tile/0/000", 404),
        ("tile/entries/000", 404),
        ("tile/0/001.p/1", 404),
        ("tile/0/0", 400),
        ("tile/0/0000", 400),
        ("tile/00/000", 400),
        ("tile/64/000", 400),
        ("tile/0/000.p/0", 400),
        ("tile/0/000.p/256", 400),
        ("tile/0/000.p/02", 400),
        ("tile/0/x000/001", 400),
        ("tile/0/001/002", 400),
        ("tile/0/-01", 400),
        ("tile/entries/abc", 400),
        ("tile/0/000.p/", 400),
        ("tile/", 404),
        ("tiles/0/000", 404),
        ("checkpoint/extra", 404),
    ];
    for (path, status) in table {
        let response = http.get(server.http(path)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), *status, "{path}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_requests_never_break_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(dir.path()).await;
    let mut client = server.client().await;
    client
        .append(append_request(
            (0..20).map(|i| entry("rand", i)).collect(),
            false,
        ))
        .await
        .unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("seed {seed}");
    let mut rng = Rng::new(seed);
    let value = |rng: &mut Rng| match rng.below(4) {
        0 => rng.below(25),
        1 => u64::MAX - rng.below(3),
        2 => 1 << rng.below(64),
        _ => rng.next_u64(),
    };
    let allowed = [
        Code::Ok,
        Code::InvalidArgument,
        Code::OutOfRange,
        Code::NotFound,
    ];
    for _ in 0..300 {
        let call = match rng.below(4) {
            0 => {
                let len = rng.below(40) as usize;
                let hash: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
                Call::Inclusion(Some(Leaf::LeafHash(hash.into())), Some(value(&mut rng)))
            }
            1 => Call::Inclusion(Some(Leaf::Index(value(&mut rng))), Some(value(&mut rng))),
            2 => Call::Consistency(value(&mut rng), Some(value(&mut rng))),
            _ => Call::Entries(value(&mut rng), value(&mut rng)),
        };
        let code = match run(&mut client, call).await {
            Ok(()) => Code::Ok,
            Err(status) => status.code(),
        };
        assert!(allowed.contains(&code), "seed {seed}: {code:?}");
    }
    let http = reqwest::Client::new();
    let alphabet = b"0123456789x./pentries/tile";
    for _ in 0..200 {
        let len = rng.below(30) as usize;
        let tail: String = (0..len)
            .map(|_| alphabet[rng.below(alphabet.len() as u64) as usize] as char)
            .collect();
        let response = http
            .get(server.http(&format!("tile/{tail}")))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        assert!(
            [200, 400, 404].contains(&status),
            "seed {seed}: tile/{tail} -> {status}"
        );
    }
    let size = client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap()
        .into_inner()
        .size;
    assert_eq!(size, 20);
    server.stop().await;
}
