//! The ai-audit/v1 profile read from its three entry shapes, and its JSON Schema
//! checked against the Rust checks by an outside validator (Python `jsonschema`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use merklog_event::otlp::{AnyValue, KeyValue, LogRecord, OtlpLog, Resource, Scope};
use merklog_event::profile::{ActorKind, AuditEvent};
use merklog_event::{Event, EventDraft, EventError};
use merklog_note::Ed25519Signer;

fn kv(key: &str, value: AnyValue) -> KeyValue {
    KeyValue {
        key: key.into(),
        value,
    }
}

fn s(text: &str) -> AnyValue {
    AnyValue::String(text.into())
}

fn genai_record() -> OtlpLog {
    OtlpLog {
        principal: Some("runner".into()),
        resource: Resource {
            attributes: vec![
                kv("service.name", s("support-bot")),
                kv("gen_ai.agent.id", s("agent-7")),
            ],
            ..Resource::default()
        },
        scope: Scope {
            name: "audit".into(),
            ..Scope::default()
        },
        record: LogRecord {
            time_unix_nano: 1_772_366_400_123_000_000,
            attributes: vec![
                kv("gen_ai.provider.name", s("openai")),
                kv("gen_ai.request.model", s("gpt-x")),
                kv("gen_ai.response.model", s("gpt-x-2026")),
                kv("gen_ai.operation.name", s("chat")),
                kv("gen_ai.tool.name", s("search")),
                kv("gen_ai.tool.call.id", s("call-1")),
                kv(
                    "gen_ai.data_source.id",
                    AnyValue::Array(vec![s("kb-1"), s("kb-2")]),
                ),
                kv("merklog.decision", s("refund approved")),
                kv("merklog.oversight.reviewer", s("alice")),
                kv("merklog.oversight.approved", AnyValue::Bool(true)),
                kv("merklog.model.digest", s("sha256:ab01")),
                kv("merklog.model.version", s("2026-01")),
                kv("merklog.policy.id", s("refunds")),
                kv("merklog.policy.version", s("3")),
                kv("merklog.resource", s("order/42")),
                kv("merklog.prompt.hash", s("sha256:cd")),
            ],
            trace_id: vec![0xab; 16],
            span_id: vec![0xcd; 8],
            ..LogRecord::default()
        },
    }
}

#[test]
fn an_otlp_record_maps_to_the_profile() {
    let leaf = genai_record().to_leaf().unwrap();
    let event = AuditEvent::from_leaf(&leaf).expect("a conforming record");
    let expected = r#"{"profile":"ai-audit/v1","time":"2026-03-01T12:00:00.123000000Z",
        "actor":{"id":"agent-7","kind":"agent"},"action":"chat","resource":"order/42",
        "model":{"provider":"openai","id":"gpt-x-2026","version":"2026-01","digest":"sha256:ab01"},
        "datasets":["kb-1","kb-2"],"prompt_hash":"sha256:cd",
        "tool_calls":[{"name":"search","id":"call-1"}],"decision":"refund approved",
        "oversight":{"reviewer":"alice","approved":true},
        "policy":{"id":"refunds","version":"3"},
        "trace_id":"abababababababababababababababab","span_id":"cdcdcdcdcdcdcdcd"}"#;
    assert_eq!(
        event,
        AuditEvent::from_document(expected.as_bytes()).unwrap()
    );
    assert_eq!(event.time_unix_ms(), Some(1_772_366_400_123));
}

#[test]
fn record_attributes_win_and_actor_kind_overrides() {
    let mut log = genai_record();
    log.record.attributes.extend([
        kv("enduser.id", s("bob")),
        kv("merklog.actor.kind", s("human")),
        kv("merklog.config.setting", s("safety.level")),
        kv("merklog.config.old", s("high")),
        kv("merklog.config.new", s("low")),
    ]);
    // gen_ai.agent.id (resource) is preferred to enduser.id (record) by the
    // order of the actor attributes, but the kind attribute overrides the kind.
    let event = AuditEvent::from_leaf(&log.to_leaf().unwrap()).unwrap();
    assert_eq!(event.actor.id, "agent-7");
    assert_eq!(event.actor.kind, ActorKind::Human);
    let change = event.config_change.unwrap();
    assert_eq!(
        (
            change.setting.as_str(),
            change.old.as_deref(),
            change.new.as_deref()
        ),
        ("safety.level", Some("high"), Some("low"))
    );
}

#[test]
fn a_non_conforming_record_names_the_field() {
    let field_of = |log: &OtlpLog| match AuditEvent::from_entry(&log.to_leaf().unwrap()) {
        Err(EventError::Profile { field, .. }) => field,
        other => panic!("{other:?}"),
    };
    let mut log = genai_record();
    log.resource.attributes.pop();
    assert_eq!(field_of(&log), "actor.id");
    let mut log = genai_record();
    log.record
        .attributes
        .retain(|a| a.key != "gen_ai.operation.name");
    assert_eq!(field_of(&log), "action");
    log.record.event_name = "agent.step".into();
    assert_eq!(
        AuditEvent::from_leaf(&log.to_leaf().unwrap())
            .unwrap()
            .action,
        "agent.step"
    );
    let mut log = genai_record();
    for attribute in &mut log.record.attributes {
        if attribute.key == "merklog.prompt.hash" {
            attribute.value = s("md5:x");
        }
    }
    assert_eq!(field_of(&log), "prompt_hash");
    let mut log = genai_record();
    log.record.attributes[0] = kv("gen_ai.provider.name", AnyValue::Int(3));
    assert_eq!(field_of(&log), "model.provider");
    let mut log = genai_record();
    log.record.time_unix_nano = 0;
    assert_eq!(field_of(&log), "time");
    log.record.observed_time_unix_nano = 1;
    assert!(AuditEvent::from_entry(&log.to_leaf().unwrap()).is_ok());
}

#[test]
fn a_signed_event_carries_a_document() {
    let signer = Ed25519Signer::from_seed("agents.example/a7", &[7; 32]).unwrap();
    let sign = |media_type: &str, payload: &[u8]| {
        Event::sign(
            &signer,
            &EventDraft {
                source: "agents.example/a7",
                sequence: 1,
                timestamp_ms: 1_700_000_000_000,
                media_type,
                payload,
            },
        )
        .unwrap()
        .into_bytes()
    };
    let doc = br#"{"profile":"ai-audit/v1","time":"2026-03-01T12:00:00Z","actor":{"id":"a7","kind":"agent"},"action":"chat"}"#;
    let event = AuditEvent::from_leaf(&sign("application/json", doc)).unwrap();
    assert_eq!(event.actor.id, "a7");
    match AuditEvent::from_entry(&sign("text/plain", doc)) {
        Err(EventError::Profile { field, .. }) => assert_eq!(field, "media_type"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        AuditEvent::from_leaf(&sign("application/json", b"{}")),
        None
    );
}

/// Documents both checks must judge alike: (document, conforms).
fn schema_cases() -> Vec<(String, bool)> {
    let base = serde_json::json!({
        "profile": "ai-audit/v1", "time": "2026-03-01T12:00:00.5Z",
        "actor": {"id": "agent-7", "kind": "agent"}, "action": "chat",
        "resource": "order/42",
        "model": {"provider": "p", "id": "m", "version": "1", "digest": "sha256:00ff"},
        "datasets": ["d1"], "prompt_hash": "sha256:12",
        "tool_calls": [{"name": "search", "id": "c1"}], "decision": "ok",
        "oversight": {"reviewer": "alice", "approved": false},
        "policy": {"id": "p1", "version": "2"},
        "config_change": {"setting": "s", "old": "a", "new": "b"},
        "trace_id": "0123456789abcdef0123456789abcdef", "span_id": "0123456789abcdef"
    });
    let with = |pointer: &str, value: serde_json::Value| {
        let mut doc = base.clone();
        *doc.pointer_mut(pointer).unwrap() = value;
        (doc.to_string(), false)
    };
    let without = |key: &str| {
        let mut doc = base.clone();
        doc.as_object_mut().unwrap().remove(key);
        doc.to_string()
    };
    use serde_json::json;
    let mut cases = vec![
        (base.to_string(), true),
        (
            r#"{"profile":"ai-audit/v1","time":"1999-12-31T23:59:59Z","actor":{"id":"x","kind":"human"},"action":"a"}"#.into(),
            true,
        ),
        (without("resource"), true),
        (without("oversight"), true),
        (without("time"), false),
        (without("actor"), false),
        (without("action"), false),
        (without("profile"), false),
        with("/profile", json!("ai-audit/v2")),
        with("/time", json!("2026-03-01 12:00:00Z")),
        with("/time", json!("2026-03-01T12:00:00+01:00")),
        with("/time", json!(12)),
        with("/actor/id", json!("")),
        with("/actor/kind", json!("robot")),
        with("/action", json!("")),
        with("/resource", json!(null)),
        with("/model/digest", json!("md5:00")),
        with("/model/digest", json!("sha256:")),
        with("/model/digest", json!("sha256:AB")),
        with("/prompt_hash", json!("abc")),
        with("/datasets", json!("d1")),
        with("/datasets/0", json!(1)),
        with("/tool_calls/0/name", json!("")),
        with("/tool_calls/0", json!({"id": "c1"})),
        with("/oversight/approved", json!("yes")),
        with("/policy/id", json!("")),
        with("/config_change/setting", json!("")),
        with("/trace_id", json!("0123")),
        with("/trace_id", json!("0123456789ABCDEF0123456789ABCDEF")),
        with("/span_id", json!("0123456789abcdeg")),
        with("/model", json!({"extra": "x"})),
        with("/actor", json!({"id": "x", "kind": "agent", "extra": 1})),
    ];
    let mut extra = base.clone();
    extra["unknown"] = json!(1);
    cases.push((extra.to_string(), false));
    cases
}

#[test]
fn the_json_schema_and_the_rust_checks_agree() {
    let cases = schema_cases();
    for (doc, conforms) in &cases {
        assert_eq!(
            AuditEvent::from_document(doc.as_bytes()).is_ok(),
            *conforms,
            "Rust check of {doc}"
        );
    }
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/ai-audit-v1.schema.json"
    );
    let script = r#"
import json, sys
try:
    import jsonschema
except ImportError:
    print("MISSING jsonschema"); sys.exit(3)
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
v = jsonschema.Draft202012Validator(schema)
for line in sys.stdin:
    print("ok" if v.is_valid(json.loads(line)) else "bad")
"#;
    let input: String = cases.iter().map(|(d, _)| format!("{d}\n")).collect();
    let output = std::process::Command::new("python3")
        .args(["-c", script, schema])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child.stdin.take().unwrap().write_all(input.as_bytes())?;
            child.wait_with_output()
        });
    let missing = match &output {
        Err(e) => Some(format!("python3: {e}")),
        Ok(o) if o.status.code() == Some(3) => Some("the Python package jsonschema".into()),
        Ok(_) => None,
    };
    if let Some(what) = missing {
        if std::env::var_os("MERKLOG_SKIP_INTEROP").is_some_and(|v| v == "1") {
            eprintln!("MERKLOG_SKIP_INTEROP=1: skipping the schema check, {what} is missing");
            return;
        }
        panic!("{what} is missing (scripts/interop-prereqs installs it)");
    }
    let output = output.unwrap();
    assert!(output.status.success(), "{output:?}");
    let verdicts: Vec<bool> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| l == "ok")
        .collect();
    assert_eq!(verdicts.len(), cases.len());
    for ((doc, conforms), verdict) in cases.iter().zip(verdicts) {
        assert_eq!(verdict, *conforms, "jsonschema on {doc}");
    }
}

mod read_from_the_record {
    //! `AuditEvent::from_otlp_record` against reading the encoded leaf: random
    //! records over the attributes the profile maps, with every value type.
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = String> {
        prop::sample::select(vec![
            "merklog.actor.id",
            "gen_ai.agent.id",
            "enduser.id",
            "gen_ai.agent.name",
            "merklog.actor.kind",
            "gen_ai.operation.name",
            "merklog.action",
            "gen_ai.provider.name",
            "gen_ai.response.model",
            "gen_ai.request.model",
            "merklog.model.digest",
            "gen_ai.tool.name",
            "gen_ai.tool.call.id",
            "gen_ai.data_source.id",
            "merklog.oversight.reviewer",
            "merklog.oversight.approved",
            "merklog.policy.id",
            "merklog.config.setting",
            "merklog.config.new",
            "merklog.resource",
            "service.name",
        ])
        .prop_map(str::to_owned)
    }

    fn value() -> impl Strategy<Value = AnyValue> {
        let text = prop::sample::select(vec!["agent", "human", "service", "", "m-42", "x\u{e9}"])
            .prop_map(|t| AnyValue::String(t.to_owned()));
        let scalar = prop_oneof![
            4 => text,
            1 => Just(AnyValue::Empty),
            1 => any::<bool>().prop_map(AnyValue::Bool),
            1 => any::<i64>().prop_map(AnyValue::Int),
            1 => Just(AnyValue::Double(1.5)),
            1 => Just(AnyValue::Bytes(vec![1, 2])),
        ];
        scalar.prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(AnyValue::Array),
                prop::collection::vec(inner, 0..2).prop_map(|values| {
                    AnyValue::KvList(values.into_iter().map(|v| kv("k", v)).collect())
                }),
            ]
        })
    }

    /// An attribute list without repeated keys (a leaf refuses those).
    fn attributes() -> impl Strategy<Value = Vec<KeyValue>> {
        prop::collection::btree_map(key(), value(), 0..6)
            .prop_map(|map| map.into_iter().map(|(k, v)| kv(&k, v)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3000))]
        #[test]
        fn gives_what_the_leaf_gives(
            lists in (attributes(), attributes(), attributes()),
            times in (prop::sample::select(vec![0u64, 1, 1_772_366_400_123_456_789]),
                      prop::sample::select(vec![0u64, 7, u64::MAX])),
            event_name in prop::sample::select(vec!["", "chat"]),
            ids in (prop::sample::select(vec![vec![], vec![0xab; 16]]),
                    prop::sample::select(vec![vec![], vec![0x0c; 8]])),
        ) {
            let log = OtlpLog {
                principal: None,
                resource: Resource { attributes: lists.0, ..Resource::default() },
                scope: Scope { attributes: lists.1, ..Scope::default() },
                record: LogRecord {
                    time_unix_nano: times.0,
                    observed_time_unix_nano: times.1,
                    attributes: lists.2,
                    event_name: event_name.to_owned(),
                    trace_id: ids.0,
                    span_id: ids.1,
                    ..LogRecord::default()
                },
            };
            let leaf = log.to_leaf().unwrap();
            let direct = AuditEvent::from_otlp_record(&log.resource, &log.scope, &log.record);
            prop_assert_eq!(direct, AuditEvent::from_entry(&leaf));
        }
    }

    #[test]
    fn a_conforming_record_and_a_shadowing_unset_value() {
        let mut log = genai_record();
        let event = AuditEvent::from_otlp_record(&log.resource, &log.scope, &log.record).unwrap();
        assert_eq!(Ok(event), AuditEvent::from_entry(&log.to_leaf().unwrap()));
        // An unset value on the record hides the resource's actor: no actor at all.
        log.record
            .attributes
            .push(kv("gen_ai.agent.id", AnyValue::Empty));
        let direct = AuditEvent::from_otlp_record(&log.resource, &log.scope, &log.record);
        assert!(matches!(&direct, Err(EventError::Profile { field, .. }) if field == "actor.id"));
        assert_eq!(direct, AuditEvent::from_entry(&log.to_leaf().unwrap()));
    }
}
