//! Access control end to end over real TLS connections (in process, port 0):
//! every way a call can be refused, for Append, AppendStream, a read RPC and a
//! tiles GET, answers its exact status and writes nothing; certificate
//! principals and tokens side by side; the admin API for `admin` only.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use merklog_auth::{Expiry, Principal, Role, Roles};
use merklog_e2e::pki::{Ca, Issued};
use merklog_proto::v1::{self, log_client::LogClient};
use merklog_server::ServerConfig;
use merklog_server::auth::settings::{PrincipalConfig, ReadAccess};
use merklog_server::auth::tokens::{Revoke, create_token, revoke_tokens};
use merklog_testkit::{TestServer, test_config};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use tonic::{Code, Request};

fn roles(list: &[Role]) -> Roles {
    list.iter().copied().collect()
}

fn entry(tag: &str, i: usize) -> Bytes {
    Bytes::from(format!("{tag}-entry-{i:06}"))
}

fn append_request(entries: Vec<Bytes>) -> v1::AppendRequest {
    v1::AppendRequest {
        entries,
        include_tlog_proof: false,
    }
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

/// The test's certificates: a CA the server trusts for clients, the server's
/// own certificate, and client certificates (one from a CA nobody trusts).
struct Pki {
    ca: Ca,
    server: Issued,
    writer: Issued,
    reader: Issued,
    nobody: Issued,
    ops: Issued,
    rogue: Issued,
    ca_file: std::path::PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Self {
        let ca = Ca::new("merklog access test CA");
        let ca_file = ca.write(&dir.join("ca.pem"));
        let server = ca.server(dir, "server", "server");
        let writer = ca.client(dir, "writer", "writer.example");
        let reader = ca.client(dir, "reader", "reader.example");
        let nobody = ca.client(dir, "nobody", "nobody.example");
        let ops = ca.client(dir, "ops", "ops.example");
        // Same common name as a trusted writer, but signed by an unknown CA.
        let rogue = Ca::new("rogue CA").client(dir, "rogue", "writer.example");
        Pki {
            ca,
            server,
            writer,
            reader,
            nobody,
            ops,
            rogue,
            ca_file,
        }
    }

    /// `config` serving TLS with this PKI, client certificates from its CA.
    fn serve(&self, config: ServerConfig) -> ServerConfig {
        ServerConfig {
            tls_cert: Some(self.server.cert.clone()),
            tls_key: Some(self.server.key.clone()),
            tls_client_ca: Some(self.ca_file.clone()),
            ..config
        }
    }

    /// A gRPC client over TLS, presenting `identity` if given; `None` when the
    /// connection is refused.
    async fn grpc(
        &self,
        server: &TestServer,
        identity: Option<&Issued>,
    ) -> Option<LogClient<Channel>> {
        self.channel(server, identity).await.map(LogClient::new)
    }

    /// A TLS channel to the gRPC port, presenting `identity` if given.
    async fn channel(&self, server: &TestServer, identity: Option<&Issued>) -> Option<Channel> {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(self.ca.pem()))
            .domain_name("localhost");
        if let Some(issued) = identity {
            tls = tls.identity(Identity::from_pem(
                std::fs::read(&issued.cert).unwrap(),
                std::fs::read(&issued.key).unwrap(),
            ));
        }
        let channel =
            Channel::from_shared(format!("https://127.0.0.1:{}", server.addrs.grpc.port()))
                .unwrap()
                .tls_config(tls)
                .unwrap()
                .connect_timeout(Duration::from_secs(5))
                .timeout(Duration::from_secs(10))
                .connect()
                .await
                .ok()?;
        Some(channel)
    }

    /// An https client for the tiles port, presenting `identity` if given.
    fn https(&self, identity: Option<&Issued>) -> reqwest::Client {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca.pem().as_bytes()).unwrap())
            .timeout(Duration::from_secs(10));
        if let Some(issued) = identity {
            let mut pem = std::fs::read(&issued.cert).unwrap();
            pem.extend(std::fs::read(&issued.key).unwrap());
            builder = builder.identity(reqwest::Identity::from_pem(&pem).unwrap());
        }
        builder.build().unwrap()
    }
}

/// What one call answered: a gRPC code (`Ok` included), an HTTP status, or a
/// connection the TLS handshake refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Grpc(Code),
    Http(u16),
    Refused,
}

/// A call's status; transport failures (the handshake refused the client's
/// certificate) are `Refused`: the first call on such a channel fails with
/// UNAVAILABLE or UNKNOWN, later ones with CANCELLED, codes no handler answers
/// for a credential.
fn grpc_outcome(status: &tonic::Status) -> Outcome {
    match status.code() {
        Code::Unavailable | Code::Unknown | Code::Cancelled => Outcome::Refused,
        code => Outcome::Grpc(code),
    }
}

async fn append(
    client: Option<&mut LogClient<Channel>>,
    token: Option<&str>,
    tag: &str,
) -> Outcome {
    let Some(client) = client else {
        return Outcome::Refused;
    };
    let request = with_token(append_request(vec![entry(tag, 0)]), token);
    match client.append(request).await {
        Ok(_) => Outcome::Grpc(Code::Ok),
        Err(status) => grpc_outcome(&status),
    }
}

/// One request on a new append stream: the call's status if refused, else
/// the request's own answer.
async fn append_stream(
    client: Option<&mut LogClient<Channel>>,
    token: Option<&str>,
    tag: &str,
) -> Outcome {
    let Some(client) = client else {
        return Outcome::Refused;
    };
    let message = v1::AppendStreamRequest {
        sequence: 0,
        request: Some(append_request(vec![entry(tag, 1)])),
    };
    let outbound = tokio_stream::iter(vec![message]);
    let mut answers = match client.append_stream(with_token(outbound, token)).await {
        Ok(answers) => answers.into_inner(),
        Err(status) => return grpc_outcome(&status),
    };
    let answer = match answers.message().await {
        Ok(Some(answer)) => answer,
        Ok(None) => panic!("the stream ended without an answer"),
        Err(status) => return grpc_outcome(&status),
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

async fn read(client: Option<&mut LogClient<Channel>>, token: Option<&str>) -> Outcome {
    let Some(client) = client else {
        return Outcome::Refused;
    };
    match client
        .get_checkpoint(with_token(v1::GetCheckpointRequest {}, token))
        .await
    {
        Ok(_) => Outcome::Grpc(Code::Ok),
        Err(status) => grpc_outcome(&status),
    }
}

/// GET `path` on the tiles port over https.
async fn http_get(
    client: &reqwest::Client,
    server: &TestServer,
    path: &str,
    token: Option<&str>,
) -> (Outcome, String) {
    let url = format!("https://127.0.0.1:{}{path}", server.addrs.http.port());
    let mut request = client.get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let Ok(response) = request.send().await else {
        return (Outcome::Refused, String::new());
    };
    let status = response.status().as_u16();
    if status == 401 {
        assert_eq!(
            response.headers().get("www-authenticate").unwrap(),
            "Bearer"
        );
    }
    let body = response.text().await.unwrap_or_default();
    if let Some(token) = token {
        assert!(!body.contains(token), "the answer quotes the token");
    }
    (Outcome::Http(status), body)
}

async fn tree_size(client: &mut LogClient<Channel>, reader: &str) -> u64 {
    client
        .get_checkpoint(with_token(v1::GetCheckpointRequest {}, Some(reader)))
        .await
        .unwrap()
        .into_inner()
        .size
}

fn principal(name: &str, roles: &[&str]) -> PrincipalConfig {
    PrincipalConfig {
        name: name.into(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
        entries_per_second: None,
        entries_burst: None,
        bytes_per_second: None,
        bytes_burst: None,
        max_streams: None,
    }
}

/// One row of the table.
struct Row<'a> {
    case: &'a str,
    /// The client certificate of the connection, if any.
    cert: Option<&'a Issued>,
    /// Token for the appends and for the reads.
    append_token: Option<&'a str>,
    read_token: Option<&'a str>,
    /// Append, AppendStream, GetCheckpoint.
    expected: [Outcome; 3],
    /// GET /checkpoint on the tiles port.
    tiles: Outcome,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_its_status_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
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

    let config = pki.serve(ServerConfig {
        tokens_file: Some(tokens_file.clone()),
        tokens_reload_interval: Duration::from_millis(50).into(),
        read_access: ReadAccess::Authenticated,
        max_entries_per_call: 4,
        principal: vec![
            PrincipalConfig {
                entries_per_second: Some(1),
                entries_burst: Some(4),
                ..principal("slow", &[])
            },
            principal("writer.example", &["append", "read"]),
            principal("reader.example", &["read"]),
            principal("nobody.example", &[]),
        ],
        ..test_config(&dir.path().join("data"))
    });
    let server = TestServer::start_with(config).await;
    let mut client = pki.grpc(&server, None).await.unwrap();

    // The probes stay open while reads need a credential.
    for probe in ["/healthz", "/readyz"] {
        let (outcome, _) = http_get(&pki.https(None), &server, probe, None).await;
        assert_eq!(outcome, Outcome::Http(200), "{probe} without a credential");
    }
    let (outcome, _) = http_get(&pki.https(None), &server, "/checkpoint", None).await;
    assert_eq!(outcome, Outcome::Http(401));

    // The revoked token works until its line is deleted and the file reloaded.
    assert_eq!(
        read(Some(&mut client), Some(&revoked)).await,
        Outcome::Grpc(Code::Ok)
    );
    revoke_tokens(
        &tokens_file,
        &Revoke::Principal(Principal::new("gone").unwrap()),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while read(Some(&mut client), Some(&revoked)).await == Outcome::Grpc(Code::Ok) {
        assert!(Instant::now() < deadline, "the revocation was not reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // "slow" spends its whole burst, so its next entry is over the rate.
    let burst = append_request((0..4).map(|i| entry("burst", i)).collect());
    client.append(with_token(burst, Some(&slow))).await.unwrap();

    let unauthenticated = [Outcome::Grpc(Code::Unauthenticated); 3];
    let denied = [Outcome::Grpc(Code::PermissionDenied); 3];
    let wrong = "mlt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let row = |case, cert, append_token, read_token, expected, tiles| Row {
        case,
        cert,
        append_token,
        read_token,
        expected,
        tiles,
    };
    let table = [
        row(
            "no credential",
            None,
            None,
            None,
            unauthenticated,
            Outcome::Http(401),
        ),
        row(
            "wrong token",
            None,
            Some(wrong),
            Some(wrong),
            unauthenticated,
            Outcome::Http(401),
        ),
        row(
            "expired token",
            None,
            Some(&expired),
            Some(&expired),
            unauthenticated,
            Outcome::Http(401),
        ),
        row(
            "revoked token",
            None,
            Some(&revoked),
            Some(&revoked),
            unauthenticated,
            Outcome::Http(401),
        ),
        row(
            "client certificate from an unknown CA",
            Some(&pki.rogue),
            None,
            None,
            [Outcome::Refused; 3],
            Outcome::Refused,
        ),
        row(
            "token without the role",
            None,
            Some(&reads_only),
            Some(&appends_only),
            denied,
            Outcome::Http(403),
        ),
        row(
            "certificate without any role",
            Some(&pki.nobody),
            None,
            None,
            denied,
            Outcome::Http(403),
        ),
        row(
            "certificate with read only (reads tiles and RPCs)",
            Some(&pki.reader),
            None,
            None,
            [
                Outcome::Grpc(Code::PermissionDenied),
                Outcome::Grpc(Code::PermissionDenied),
                Outcome::Grpc(Code::Ok),
            ],
            Outcome::Http(200),
        ),
        row(
            "over its rate (reads are not rate-limited)",
            None,
            Some(&slow),
            Some(&slow),
            [
                Outcome::Grpc(Code::ResourceExhausted),
                Outcome::Grpc(Code::ResourceExhausted),
                Outcome::Grpc(Code::Ok),
            ],
            Outcome::Http(200),
        ),
    ];
    for row in table {
        let case = row.case;
        let before = tree_size(&mut client, &writer).await;
        let mut connection = pki.grpc(&server, row.cert).await;
        let got = [
            append(connection.as_mut(), row.append_token, case).await,
            append_stream(connection.as_mut(), row.append_token, case).await,
            read(connection.as_mut(), row.read_token).await,
        ];
        assert_eq!(got, row.expected, "{case}");
        let (tiles, _) =
            http_get(&pki.https(row.cert), &server, "/checkpoint", row.read_token).await;
        assert_eq!(tiles, row.tiles, "{case}");
        // Nothing was queued: the tree did not grow.
        assert_eq!(tree_size(&mut client, &writer).await, before, "{case}");
    }

    // The control rows: a token and a certificate with the roles pass and write.
    for (case, cert, token) in [
        ("token", None, Some(writer.as_str())),
        ("certificate", Some(&pki.writer), None),
    ] {
        let before = tree_size(&mut client, &writer).await;
        let mut connection = pki.grpc(&server, cert).await;
        assert_eq!(
            append(connection.as_mut(), token, case).await,
            Outcome::Grpc(Code::Ok),
            "{case}"
        );
        assert_eq!(
            append_stream(connection.as_mut(), token, case).await,
            Outcome::Grpc(Code::Ok),
            "{case}"
        );
        assert_eq!(
            read(connection.as_mut(), token).await,
            Outcome::Grpc(Code::Ok)
        );
        let (tiles, body) = http_get(&pki.https(cert), &server, "/checkpoint", token).await;
        assert_eq!(tiles, Outcome::Http(200), "{case}");
        assert!(body.starts_with(&server.origin), "{case}: {body}");
        assert_eq!(tree_size(&mut client, &writer).await, before + 2, "{case}");
    }

    // A unary over-rate answer carries the retry hint too.
    let status = client
        .append(with_token(
            append_request(vec![entry("again", 9)]),
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
    let pki = Pki::new(dir.path());
    let tokens_file = dir.path().join("tokens");
    let config = pki.serve(ServerConfig {
        tokens_file: Some(tokens_file),
        ..test_config(&dir.path().join("data"))
    });
    let server = TestServer::start_with(config).await;
    let mut client = pki.grpc(&server, None).await;
    assert_eq!(read(client.as_mut(), None).await, Outcome::Grpc(Code::Ok));
    let (tiles, _) = http_get(&pki.https(None), &server, "/checkpoint", None).await;
    assert_eq!(tiles, Outcome::Http(200));
    assert_eq!(
        append(client.as_mut(), None, "x").await,
        Outcome::Grpc(Code::Unauthenticated)
    );
    let channel = pki.channel(&server, None).await.unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let answer = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(answer.into_inner().status, 1, "SERVING");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_lists_and_revokes_tokens_for_admins_only() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let tokens_file = dir.path().join("tokens");
    let create = |name: &str, list: &[Role]| {
        let (token, record) = create_token(
            &tokens_file,
            Principal::new(name).unwrap(),
            roles(list),
            Expiry::Never,
        )
        .unwrap();
        (token.expose().to_owned(), record.id())
    };
    let (admin, _) = create("root", &[Role::Admin]);
    let (writer, writer_id) = create("ci-writer", &[Role::Append, Role::Read]);
    let config = pki.serve(ServerConfig {
        tokens_file: Some(tokens_file.clone()),
        // Long: a revocation through the API must not wait for a reload.
        tokens_reload_interval: Duration::from_secs(3600).into(),
        principal: vec![principal("ops.example", &["admin"])],
        ..test_config(&dir.path().join("data"))
    });
    let server = TestServer::start_with(config).await;
    let https = pki.https(None);

    let (outcome, _) = http_get(&https, &server, "/admin/tokens", None).await;
    assert_eq!(outcome, Outcome::Http(401));
    let (outcome, _) = http_get(&https, &server, "/admin/tokens", Some(&writer)).await;
    assert_eq!(outcome, Outcome::Http(403), "append and read are not admin");
    let (outcome, body) = http_get(&https, &server, "/admin/tokens", Some(&admin)).await;
    assert_eq!(outcome, Outcome::Http(200), "{body}");
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    let principals: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["principal"].as_str().unwrap())
        .collect();
    assert_eq!(principals, ["root", "ci-writer"]);
    // A certificate principal with the admin role lists them too.
    let (outcome, _) = http_get(&pki.https(Some(&pki.ops)), &server, "/admin/tokens", None).await;
    assert_eq!(outcome, Outcome::Http(200));

    let mut client = pki.grpc(&server, None).await.unwrap();
    assert_eq!(
        append(Some(&mut client), Some(&writer), "before").await,
        Outcome::Grpc(Code::Ok)
    );
    let url = format!(
        "https://127.0.0.1:{}/admin/tokens/{writer_id}",
        server.addrs.http.port()
    );
    let denied = https
        .delete(&url)
        .bearer_auth(&writer)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 403);
    let revoked = https.delete(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(revoked.status(), 200);
    // Refused at once, without waiting for the (hour-long) reload interval.
    assert_eq!(
        append(Some(&mut client), Some(&writer), "after").await,
        Outcome::Grpc(Code::Unauthenticated)
    );
    assert!(
        !std::fs::read_to_string(&tokens_file)
            .unwrap()
            .contains("ci-writer")
    );
    let again = https.delete(&url).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(again.status(), 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_authentication_the_admin_api_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start(&dir.path().join("data")).await;
    let response = reqwest::get(server.http("/admin/tokens")).await.unwrap();
    assert_eq!(response.status(), 403);
    server.stop().await;
}
