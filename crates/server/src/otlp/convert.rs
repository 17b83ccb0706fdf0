//! OTLP wire messages into the plain records of `merklog_event::otlp`, each named
//! by its place in the request (`resource_logs[0].scope_logs[1].log_records[2]`).

use merklog_event::otlp::{AnyValue, KeyValue, LogRecord, OtlpLog, Resource, Scope};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1 as pb;

/// One record of a request with its context, and where it was in the request.
pub(crate) struct Located {
    /// `resource_logs[i].scope_logs[j].log_records[k]`.
    pub(crate) path: String,
    pub(crate) log: OtlpLog,
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

/// Every record of `request`, in request order, with `principal` as its sender;
/// or the first value that cannot be logged, with its place.
pub(crate) fn records(
    request: ExportLogsServiceRequest,
    principal: Option<&str>,
) -> Result<Vec<Located>, String> {
    let mut out = Vec::new();
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
            for (k, record) in scope_logs.log_records.into_iter().enumerate() {
                let path = format!("resource_logs[{i}].scope_logs[{j}].log_records[{k}]");
                let body = any_value(record.body).map_err(at(format!("{path}.body")))?;
                let attributes =
                    key_values(record.attributes).map_err(at(format!("{path}.attributes")))?;
                out.push(Located {
                    path,
                    log: OtlpLog {
                        principal: principal.map(str::to_owned),
                        resource: resource.clone(),
                        scope: scope.clone(),
                        record: LogRecord {
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
                        },
                    },
                });
            }
        }
    }
    Ok(out)
}
