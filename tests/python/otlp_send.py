"""Sends GenAI-attributed log records to merklogd with the OpenTelemetry Python SDK
(OTLP/gRPC with gzip, OTLP/HTTP protobuf) and one hand-made OTLP JSON request, then
prints, one per line in base64, the leaf bytes each record must have in the log,
computed here from what was sent: the second implementation of the
merklog.otlp-log/v1 encoding (docs/audit-events.md).

Usage: otlp_send.py GRPC_ADDR HTTP_ADDR TOKEN PRINCIPAL
Exit status 3 names a missing package; any other failure is an assertion.
"""

import base64
import json
import sys
import urllib.request

try:
    from google.protobuf import json_format
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import (
        OTLPLogExporter as GrpcExporter,
    )
    from opentelemetry.exporter.otlp.proto.http import Compression as HttpCompression
    from opentelemetry.exporter.otlp.proto.http._log_exporter import (
        OTLPLogExporter as HttpExporter,
    )
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.common.v1 import common_pb2
    from opentelemetry.proto.logs.v1 import logs_pb2
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.trace import TraceFlags
    import grpc
except ImportError as missing:
    print(f"MISSING {missing.name}: the OpenTelemetry Python SDK and OTLP exporters")
    sys.exit(3)


# --- The leaf encoding, written from the specification --------------------------

def any_value(v):
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "int_value":
        return {"int": str(v.int_value)}
    if kind == "bytes_value":
        return {"bytes": base64.b64encode(v.bytes_value).decode()}
    if kind == "array_value":
        return {"array": [any_value(x) for x in v.array_value.values]}
    if kind == "kvlist_value":
        return {"kvlist": attributes(v.kvlist_value.values)}
    # Doubles need ECMAScript number formatting (RFC 8785); this test sends none.
    raise AssertionError(f"value kind {kind} is not used by this test")


def attributes(kvs):
    out = {}
    for kv in kvs:
        assert kv.key not in out, f"duplicate key {kv.key}"
        out[kv.key] = any_value(kv.value)
    return out


def jcs(value):
    # RFC 8785 for the subset used here (no floats, keys compared as ASCII).
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def leaves(request, principal):
    out = []
    for rl in request.resource_logs:
        resource = {
            "attributes": attributes(rl.resource.attributes),
            "dropped_attributes_count": rl.resource.dropped_attributes_count,
            "schema_url": rl.schema_url,
        }
        for sl in rl.scope_logs:
            scope = {
                "name": sl.scope.name,
                "version": sl.scope.version,
                "attributes": attributes(sl.scope.attributes),
                "dropped_attributes_count": sl.scope.dropped_attributes_count,
                "schema_url": sl.schema_url,
            }
            for r in sl.log_records:
                out.append(jcs({
                    "type": "merklog.otlp-log/v1",
                    "principal": principal,
                    "resource": resource,
                    "scope": scope,
                    "time_unix_nano": str(r.time_unix_nano),
                    "observed_time_unix_nano": str(r.observed_time_unix_nano),
                    "severity_number": r.severity_number,
                    "severity_text": r.severity_text,
                    "body": any_value(r.body) if r.HasField("body") else None,
                    "attributes": attributes(r.attributes),
                    "dropped_attributes_count": r.dropped_attributes_count,
                    "flags": r.flags,
                    "trace_id": r.trace_id.hex(),
                    "span_id": r.span_id.hex(),
                    "event_name": r.event_name,
                }))
    return out


# --- Sending -------------------------------------------------------------------

class Capturing:
    """Wraps an exporter: keeps the request of every batch it exported."""

    def __init__(self, exporter):
        self.exporter = exporter
        self.sent = []

    def export(self, batch):
        result = self.exporter.export(batch)
        assert result == LogRecordExportResult.SUCCESS, f"export failed: {result}"
        self.sent.append(encode_logs(batch))
        return result

    def shutdown(self):
        self.exporter.shutdown()

    def force_flush(self, timeout_millis=30000):
        return True


def emit(exporter, transport, count):
    provider = LoggerProvider(resource=Resource.create({
        "service.name": "support-bot",
        "gen_ai.agent.id": f"agent-{transport}",
    }))
    capturing = Capturing(exporter)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(capturing, max_export_batch_size=4, schedule_delay_millis=50)
    )
    logger = provider.get_logger("merklog.test.audit", "1.0")
    for i in range(count):
        logger.emit(LogRecord(
            timestamp=1_772_366_400_000_000_000 + i,
            trace_id=0x0AF7651916CD43DD8448EB211C80319C + i,
            span_id=0xB7AD6B7169203331 + i,
            trace_flags=TraceFlags(1),
            severity_text="INFO",
            severity_number=SeverityNumber.INFO,
            event_name="gen_ai.client.inference.operation.details",
            body={"message": f"refund decision {i}", "steps": [1, "two", True],
                  "digest": b"\x00\xffmerklog"},
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-x",
                "gen_ai.tool.name": "search",
                "gen_ai.tool.call.id": f"call-{transport}-{i}",
                "gen_ai.data_source.id": ["kb-1", "kb-2"],
                "merklog.oversight.approved": i % 2 == 0,
                "merklog.decision": "approved",
                "sequence": i,
                "text": "caf\u00e9 \"quoted\" \\ \n\t\u0001",
            },
        ))
    provider.force_flush()
    provider.shutdown()
    return capturing.sent


def main():
    grpc_addr, http_addr, token, principal = sys.argv[1:5]
    headers = {"authorization": f"Bearer {token}"}
    out = []
    requests = emit(GrpcExporter(endpoint=f"http://{grpc_addr}", insecure=True, headers=headers,
                                 compression=grpc.Compression.Gzip, timeout=20), "grpc", 10)
    requests += emit(HttpExporter(endpoint=f"http://{http_addr}/v1/logs", headers=headers,
                                  compression=HttpCompression.NoCompression, timeout=20),
                     "http", 6)
    assert sum(len(l.log_records) for r in requests for rl in r.resource_logs
               for l in rl.scope_logs) == 16
    for request in requests:
        out += leaves(request, principal)

    # OTLP JSON (hex ids, enums as integers, camelCase, int64 as strings), by hand.
    request = logs_service_pb2.ExportLogsServiceRequest()
    rl = request.resource_logs.add()
    rl.resource.attributes.add(key="service.name", value=common_pb2.AnyValue(string_value="json-client"))
    rl.schema_url = "https://opentelemetry.io/schemas/1.30.0"
    sl = rl.scope_logs.add()
    sl.scope.name = "json-scope"
    record = sl.log_records.add()
    record.time_unix_nano = 1_772_366_400_999_000_000
    record.severity_number = logs_pb2.SEVERITY_NUMBER_WARN
    record.body.string_value = "over JSON"
    record.attributes.add(key="enduser.id", value=common_pb2.AnyValue(string_value="bob"))
    record.attributes.add(key="n", value=common_pb2.AnyValue(int_value=-9007199254740993))
    record.trace_id = bytes(range(16))
    record.span_id = bytes(range(8))
    body = json_format.MessageToDict(request, use_integers_for_enums=True)
    lr = body["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    lr["traceId"] = record.trace_id.hex()
    lr["spanId"] = record.span_id.hex()
    post = urllib.request.Request(
        f"http://{http_addr}/v1/logs", data=json.dumps(body).encode(), method="POST",
        headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(post, timeout=20) as answer:
        assert answer.status == 200, answer.status
        assert json.loads(answer.read()) == {}
    out += leaves(request, principal)

    for leaf in out:
        print(base64.b64encode(leaf).decode())


if __name__ == "__main__":
    main()
