//! OTLP writers: each call an OpenTelemetry `LogsService/Export` of `per_call` log
//! records to merklogd's OTLP/gRPC port, one record per entry the other modes
//! would send. A record's body is a string of the entry's size (the entry's bytes
//! in base64, cut to length, so records stay unique), which the server logs as
//! one canonical JSON leaf per record. The answers carry no indexes or proofs, so
//! the checker does not see them; throughput and latency are counted as for Append.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use tonic::Code;
use tonic::codec::CompressionEncoding;
use tonic::transport::Channel;

use crate::stats::{Phase, Recorder, code_label};

/// Pause after RESOURCE_EXHAUSTED before trying again.
const BACKOFF: Duration = Duration::from_millis(1);

/// A client of the OTLP/gRPC port, sending and accepting gzip when `gzip`.
pub async fn client(
    addr: SocketAddr,
    gzip: bool,
) -> Result<LogsServiceClient<Channel>, crate::BenchError> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| crate::BenchError::Setup(e.to_string()))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| crate::BenchError::Setup(format!("connecting to OTLP/gRPC {addr}: {e}")))?;
    let client = LogsServiceClient::new(channel);
    Ok(if gzip {
        client
            .send_compressed(CompressionEncoding::Gzip)
            .accept_compressed(CompressionEncoding::Gzip)
    } else {
        client
    })
}

fn text(key: &str, value: String) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value)),
        }),
        ..KeyValue::default()
    }
}

/// One Export request carrying `entries` as records, stamped with the current time
/// as an exporter stamps what it sends (a fixed time would file every record at one
/// instant, which no real source does, and scatter the index's inserts).
pub fn request(entries: &[Bytes], entry_bytes: usize) -> ExportLogsServiceRequest {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let records = entries
        .iter()
        .map(|entry| {
            let mut body = base64::engine::general_purpose::STANDARD.encode(entry);
            body.truncate(entry_bytes.max(1));
            LogRecord {
                time_unix_nano: now,
                severity_number: 9,
                body: Some(AnyValue {
                    value: Some(any_value::Value::StringValue(body)),
                }),
                attributes: vec![
                    text("gen_ai.agent.id", "hammer".into()),
                    text("gen_ai.operation.name", "chat".into()),
                ],
                ..LogRecord::default()
            }
        })
        .collect();
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..ScopeLogs::default()
            }],
            ..ResourceLogs::default()
        }],
    }
}

/// One Export, retried on RESOURCE_EXHAUSTED / UNAVAILABLE until answered or the
/// drain ends.
pub async fn export_until_answered(
    client: &mut LogsServiceClient<Channel>,
    request: ExportLogsServiceRequest,
    records: u64,
    started: Instant,
    phase: &Phase,
    recorder: &Recorder,
) {
    let deadline = tokio::time::Instant::from_std(phase.drain_until);
    loop {
        let answer = tokio::time::timeout_at(deadline, client.export(request.clone())).await;
        match answer {
            Err(_) => {
                recorder.with(|t| t.abandoned += 1);
                return;
            }
            Ok(Ok(_)) => {
                recorder.with(|t| t.success(phase, started, records));
                return;
            }
            Ok(Err(status))
                if matches!(status.code(), Code::ResourceExhausted | Code::Unavailable) =>
            {
                recorder.with(|t| t.rejected += 1);
                if Instant::now() + BACKOFF >= phase.drain_until {
                    recorder.with(|t| t.abandoned += 1);
                    return;
                }
                tokio::time::sleep(BACKOFF).await;
            }
            Ok(Err(status)) => {
                recorder.with(|t| t.error(code_label(status.code())));
                tokio::time::sleep(BACKOFF).await;
                return;
            }
        }
    }
}
