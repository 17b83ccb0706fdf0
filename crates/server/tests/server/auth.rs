//! Access control end to end, in process: every way a call can be refused, for
//! Append, AppendStream, a read RPC and a tiles GET, answers its exact status
//! and writes nothing.

use std::time::{Duration, Instant};

use merklog_auth::{Expiry, Principal, Role, Roles};
use merklog_proto::v1::{self, log_client::LogClient};
use merklog_server::ServerConfig;
use merklog_server::auth::settings::{PrincipalConfig, ReadAccess};
use merklog_server::auth::tokens::{Revoke, create_token, revoke_tokens};
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::common::{TestServer, append_request, entry, test_config};

fn roles(list: &[Role]) -> Roles {
    list.iter().copied().collect()
}

/// A request carrying `token` (if any) as `authorization: Bearer`.
fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

/// What one call answered: a gRPC code (`Ok` included) or an HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Grpc(Code),
    Http(u16),
}

async fn append(client: &mut LogClient<Channel>, token: Option<&str>, tag: &str) -> Outcome {
    let request = with_token(append_request(vec![entry(tag, 0)], false), token);
    let code = client
        .append(request)
        .await
        .map_or_else(|status| status.code(), |_| Code::Ok);
    Outcome::Grpc(code)
}

/// One request on a new append stream: the call's status if refused, else
/// the request's own answer.
async fn append_stream(client: &mut LogClient<Channel>, token: Option<&str>, tag: &str) -> Outcome {
    let message = v1::AppendStreamRequest {
        sequence: 0,
        request: Some(append_request(vec![entry(tag, 1)], false)),
    };
    let outbound = tokio_stream::iter(vec![message]);
    let mut answers = match client.append_stream(with_token(outbound, token)).await {
        Ok(answers) => answers.into_inner(),
        Err(status) => return Outcome::Grpc(status.code()),
    };
    let answer = match answers.message().await {
        Ok(Some(answer)) => answer,
        Ok(None) => panic!("the stream ended without an answer"),
        Err(status) => return Outcome::Grpc(status.code()),
    };
    let (_, result) = merklog_proto::convert::stream_answer(answer).unwrap();
    match result {
        Ok(_) => Outcome::Grpc(Code::Ok),
        Err(status) => {
            if status.code() == Code::ResourceExhausted {
                let hint = merklog_proto::convert::retry_after(&status);
                assert!(
                    hint.is_some_and(|h| h > Duration::ZERO),
                    "no retry hint: {status:?}"
                );
            }
            Outcome::Grpc(status.code())
        }
    }
}

async fn read(client: &mut LogClient<Channel>, token: Option<&str>) -> Outcome {
    let request = with_token(v1::GetCheckpointRequest {}, token);
    let code = client
        .get_checkpoint(request)
        .await
        .map_or_else(|status| status.code(), |_| Code::Ok);
    Outcome::Grpc(code)
}

async fn tiles(server: &TestServer, token: Option<&str>) -> Outcome {
    let mut request = reqwest::Client::new().get(server.http("/checkpoint"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    if status == 401 {
        assert_eq!(
            response.headers().get("www-authenticate").unwrap(),
            "Bearer"
        );
    }
    let body = response.text().await.unwrap();
    if let Some(token) = token {
        assert!(!body.contains(token), "the answer quotes the token");
    }
    Outcome::Http(status)
}

async fn tree_size(client: &mut LogClient<Channel>, reader: &str) -> u64 {
    client
        .get_checkpoint(with_token(v1::GetCheckpointRequest {}, Some(reader)))
        .await
        .unwrap()
        .into_inner()
        .size
}

/// (case, token for the appends, token for the reads, expected outcomes of
/// Append, AppendStream and GetCheckpoint, expected tiles HTTP status)
type Row<'a> = (&'a str, Option<&'a str>, Option<&'a str>, [Outcome; 3], u16);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tokens_file = dir.path().join("tokens");
    let create = |name: &str, list: &[Role], expires| {
        let (token, _) = create_token(
            &tokens_file,
            Principal::new(name).unwrap(),
            roles(list),
            expires,
        )
        .unwrap();
        token.expose().to_owned()
    };
    let everything = [Role::Append, Role::Read];
    let writer = create("writer", &everything, Expiry::Never);
    let expired = create("late", &everything, Expiry::At(1));
    let revoked = create("gone", &everything, Expiry::Never);
    let reads_only = create("reader", &[Role::Read], Expiry::Never);
    let appends_only = create("appender", &[Role::Append], Expiry::Never);
    let slow = create("slow", &everything, Expiry::Never);

    let config = ServerConfig {
        tokens_file: Some(tokens_file.clone()),
        tokens_reload_interval: Duration::from_millis(50).into(),
        read_access: ReadAccess::Authenticated,
        max_entries_per_call: 4,
        principal: vec![PrincipalConfig {
            name: "slow".into(),
            roles: Vec::new(),
            entries_per_second: Some(1),
            entries_burst: Some(4),
            bytes_per_second: None,
            bytes_burst: None,
            max_streams: None,
        }],
        ..test_config(&dir.path().join("data"))
    };
    let server = TestServer::start_with(config).await;
    let mut client = server.client().await;

    // The probes stay open while reads need a credential.
    for probe in ["/healthz", "/readyz"] {
        let response = reqwest::get(server.http(probe)).await.unwrap();
        assert_eq!(response.status(), 200, "{probe} without a credential");
    }
    let response = reqwest::get(server.http("/checkpoint")).await.unwrap();
    assert_eq!(response.status(), 401);

    // The revoked token works until its line is deleted and the file reloaded.
    assert_eq!(
        read(&mut client, Some(&revoked)).await,
        Outcome::Grpc(Code::Ok)
    );
    revoke_tokens(
        &tokens_file,
        &Revoke::Principal(Principal::new("gone").unwrap()),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(&mut client, Some(&revoked)).await == Outcome::Grpc(Code::Ok) {
        assert!(Instant::now() < deadline, "the revocation was not reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // "slow" spends its whole burst, so its next entry is over the rate.
    let burst = append_request((0..4).map(|i| entry("burst", i)).collect(), false);
    client.append(with_token(burst, Some(&slow))).await.unwrap();

    let unauthenticated = [Outcome::Grpc(Code::Unauthenticated); 3];
    let denied = [Outcome::Grpc(Code::PermissionDenied); 3];
    let wrong = "mlt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    // (case, token for the appends, token for the reads, expected:
    //  [Append, AppendStream, GetCheckpoint], tiles HTTP status)
    let table: [Row<'_>; 6] = [
        ("no credential", None, None, unauthenticated, 401),
        (
            "wrong token",
            Some(wrong),
            Some(wrong),
            unauthenticated,
            401,
        ),
        (
            "expired token",
            Some(&expired),
            Some(&expired),
            unauthenticated,
            401,
        ),
        (
            "revoked token",
            Some(&revoked),
            Some(&revoked),
            unauthenticated,
            401,
        ),
        (
            "without the role",
            Some(&reads_only),
            Some(&appends_only),
            denied,
            403,
        ),
        (
            "over its rate (reads are not rate-limited)",
            Some(&slow),
            Some(&slow),
            [
                Outcome::Grpc(Code::ResourceExhausted),
                Outcome::Grpc(Code::ResourceExhausted),
                Outcome::Grpc(Code::Ok),
            ],
            200,
        ),
    ];
    for (case, append_token, read_token, expected, http) in table {
        let before = tree_size(&mut client, &writer).await;
        let got = [
            append(&mut client, append_token, case).await,
            append_stream(&mut client, append_token, case).await,
            read(&mut client, read_token).await,
        ];
        assert_eq!(got, expected, "{case}");
        assert_eq!(
            tiles(&server, read_token).await,
            Outcome::Http(http),
            "{case}"
        );
        // Nothing was queued: a later append lands right after `before`.
        assert_eq!(tree_size(&mut client, &writer).await, before, "{case}");
    }

    // The control row: the same calls with a good token pass and write.
    let before = tree_size(&mut client, &writer).await;
    assert_eq!(
        append(&mut client, Some(&writer), "ok").await,
        Outcome::Grpc(Code::Ok)
    );
    assert_eq!(
        append_stream(&mut client, Some(&writer), "ok").await,
        Outcome::Grpc(Code::Ok)
    );
    assert_eq!(
        read(&mut client, Some(&writer)).await,
        Outcome::Grpc(Code::Ok)
    );
    assert_eq!(tiles(&server, Some(&writer)).await, Outcome::Http(200));
    assert_eq!(tree_size(&mut client, &writer).await, before + 2);

    // A unary over-rate answer carries the retry hint too.
    let status = client
        .append(with_token(
            append_request(vec![entry("again", 9)], false),
            Some(&slow),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert!(merklog_proto::convert::retry_after(&status).is_some());
    assert!(!status.message().contains(&slow));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_reads_need_no_credential_and_health_stays_open() {
    let dir = tempfile::tempdir().unwrap();
    let tokens_file = dir.path().join("tokens");
    let config = ServerConfig {
        tokens_file: Some(tokens_file),
        ..test_config(&dir.path().join("data"))
    };
    let server = TestServer::start_with(config).await;
    let mut client = server.client().await;
    assert_eq!(read(&mut client, None).await, Outcome::Grpc(Code::Ok));
    assert_eq!(tiles(&server, None).await, Outcome::Http(200));
    assert_eq!(
        append(&mut client, None, "x").await,
        Outcome::Grpc(Code::Unauthenticated)
    );
    let mut health = tonic_health::pb::health_client::HealthClient::new(server.channel().await);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status, 1, "SERVING");
    server.stop().await;
}
