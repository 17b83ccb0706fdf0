//! OTLP wire messages into leaves: each record with its resource and scope through
//! `merklog_event::otlp`, the shared members encoded once per `ScopeLogs`. A record
//! is named by its place in the request (`resource_logs[0].scope_logs[1].log_records[2]`).

use std::fmt;

use merklog_event::EventError;
use merklog_event::otlp::{AnyValue, KeyValue, LeafContext, LogRecord, Resource, Scope};
use merklog_event::profile::AuditEvent;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pb;

/// Where a record was in its request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place {
    resource: usize,
    scope: usize,
    record: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "resource_logs[{}].scope_logs[{}].log_records[{}]",
            self.resource, self.scope, self.record
        )
    }
}

/// One record's leaf, where the record was, and the ai-audit/v1 event it is (read
/// from the record, so its leaf need not be parsed again) or why it is not one.
pub(crate) struct Leaf {
    pub(crate) place: Place,
    pub(crate) bytes: Vec<u8>,
    pub(crate) event: Result<AuditEvent, EventError>,
}

/// Why a value cannot be logged (it names no field: the caller adds the path).
const STRINDEX: &str =
    "an AnyValue uses string_value_strindex, which only the profiles signal defines";

fn any_value(value: Option<pb::AnyValue>) -> Result<AnyValue, &'static str> {
    use pb::any_value::Value;
    Ok(match value.and_then(|v| v.value) {
        None => AnyValue::Empty,
        Some(Value::StringValueStrindex(_)) => return Err(STRINDEX),
        Some(Value::StringValue(s)) => AnyValue::String(s),
        Some(Value::BoolValue(b)) => AnyValue::Bool(b),
        Some(Value::IntValue(i)) => AnyValue::Int(i),
        Some(Value::DoubleValue(d)) => AnyValue::Double(d),
        Some(Value::BytesValue(b)) => AnyValue::Bytes(b),
        Some(Value::ArrayValue(a)) => AnyValue::Array(
            a.values
                .into_iter()
                .map(|v| any_value(Some(v)))
                .collect::<Result<_, _>>()?,
        ),
        Some(Value::KvlistValue(list)) => AnyValue::KvList(key_values(list.values)?),
    })
}

fn key_values(list: Vec<pb::KeyValue>) -> Result<Vec<KeyValue>, &'static str> {
    list.into_iter()
        .map(|kv| {
            if kv.key_strindex != 0 {
                return Err(STRINDEX);
            }
            Ok(KeyValue {
                key: kv.key,
                value: any_value(kv.value)?,
            })
        })
        .collect()
}

/// How many log records `request` holds (counted before any is converted, so an
/// oversized request costs nothing more).
pub(crate) fn record_count(request: &ExportLogsServiceRequest) -> usize {
    request
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum()
}

/// The leaf of every record of `request`, in request order, with `principal` as
/// its sender; or the first value that cannot be logged, with its place.
pub(crate) fn leaves(
    request: ExportLogsServiceRequest,
    principal: Option<&str>,
) -> Result<Vec<Leaf>, String> {
    let mut out = Vec::with_capacity(record_count(&request));
    for (i, resource_logs) in request.resource_logs.into_iter().enumerate() {
        let at = |path: String| move |e: &str| format!("{path}: {e}");
        let resource = resource_logs.resource.unwrap_or_default();
        let resource = Resource {
            attributes: key_values(resource.attributes)
                .map_err(at(format!("resource_logs[{i}].resource.attributes")))?,
            dropped_attributes_count: resource.dropped_attributes_count,
            schema_url: resource_logs.schema_url,
        };
        for (j, scope_logs) in resource_logs.scope_logs.into_iter().enumerate() {
            let scope = scope_logs.scope.unwrap_or_default();
            let scope = Scope {
                name: scope.name,
                version: scope.version,
                attributes: key_values(scope.attributes).map_err(at(format!(
                    "resource_logs[{i}].scope_logs[{j}].scope.attributes"
                )))?,
                dropped_attributes_count: scope.dropped_attributes_count,
                schema_url: scope_logs.schema_url,
            };
            if scope_logs.log_records.is_empty() {
                continue;
            }
            // A bad resource or scope is reported at the first record it would
            // have been logged with.
            let first = Place {
                resource: i,
                scope: j,
                record: 0,
            };
            let context = LeafContext::new(principal, &resource, &scope)
                .map_err(|e| format!("{first}: {e}"))?;
            for (k, record) in scope_logs.log_records.into_iter().enumerate() {
                let place = Place {
                    resource: i,
                    scope: j,
                    record: k,
                };
                let body = any_value(record.body).map_err(|e| format!("{place}.body: {e}"))?;
                let attributes = key_values(record.attributes)
                    .map_err(|e| format!("{place}.attributes: {e}"))?;
                let record = LogRecord {
                    time_unix_nano: record.time_unix_nano,
                    observed_time_unix_nano: record.observed_time_unix_nano,
                    severity_number: record.severity_number,
                    severity_text: record.severity_text,
                    body,
                    attributes,
                    dropped_attributes_count: record.dropped_attributes_count,
                    flags: record.flags,
                    trace_id: record.trace_id,
                    span_id: record.span_id,
                    event_name: record.event_name,
                };
                let bytes = context.leaf(&record).map_err(|e| format!("{place}: {e}"))?;
                let event = AuditEvent::from_otlp_record(&resource, &scope, &record);
                out.push(Leaf {
                    place,
                    bytes,
                    event,
                });
            }
        }
    }
    Ok(out)
}
