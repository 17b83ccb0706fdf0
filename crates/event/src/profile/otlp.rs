//! The profile fields of an OTLP log record, read from its leaf or from the record
//! itself: OpenTelemetry GenAI semantic conventions where they name the concept,
//! `merklog.*` attributes for the rest.
//!
//! An attribute is looked up on the record first, then on its scope, then on its
//! resource, so a deployment may set `gen_ai.agent.id` once on the resource.

use serde_json::{Map, Value};

use super::{
    Actor, ActorKind, AuditEvent, ConfigChange, Model, Oversight, PROFILE_AI_AUDIT_V1, Policy,
    ToolCall,
};
use crate::EventError;
use crate::otlp::{AnyValue, KeyValue, LogRecord, Resource, Scope};

/// The attributes that name the actor, in order of preference, and the kind each
/// implies (`merklog.actor.kind` overrides it).
const ACTOR_ATTRIBUTES: [(&str, ActorKind); 4] = [
    ("merklog.actor.id", ActorKind::Service),
    ("gen_ai.agent.id", ActorKind::Agent),
    ("enduser.id", ActorKind::Human),
    ("gen_ai.agent.name", ActorKind::Agent),
];

/// The attributes that name the action, in order of preference.
const ACTION_ATTRIBUTES: [&str; 2] = ["gen_ai.operation.name", "merklog.action"];

fn bad(field: &str, reason: impl Into<String>) -> EventError {
    EventError::Profile {
        field: field.into(),
        reason: reason.into(),
    }
}

/// An attribute's value as the mapping sees it.
enum Attr<'a> {
    Str(&'a str),
    Bool(bool),
    /// An array: each item's text, `None` for an item that is not a string.
    Array(Vec<Option<&'a str>>),
    Other,
}

/// What the mapping reads of one record, whether from its leaf (parsed JSON) or
/// from the record itself before it is encoded: both must give the same event.
trait RecordView<'a> {
    /// The attribute `key` of the first of record, scope and resource naming it;
    /// `None` when none does or that one's value is unset.
    fn attribute(&self, key: &str) -> Option<Attr<'a>>;
    /// `time_unix_nano` (or `observed_time_unix_nano`), `None` when zero.
    fn nanos(&self, observed: bool) -> Option<u64>;
    /// A text member as the leaf spells it, `None` when empty.
    fn text(&self, member: Text) -> Option<String>;
}

/// The record's text members the profile reads.
#[derive(Clone, Copy)]
enum Text {
    EventName,
    TraceId,
    SpanId,
}

impl Text {
    /// The member's name in the leaf.
    fn name(self) -> &'static str {
        match self {
            Text::EventName => "event_name",
            Text::TraceId => "trace_id",
            Text::SpanId => "span_id",
        }
    }
}

/// The view of a parsed leaf.
struct LeafView<'a> {
    leaf: &'a Map<String, Value>,
    lists: [Option<&'a Map<String, Value>>; 3],
}

impl<'a> LeafView<'a> {
    fn of(leaf: &'a Map<String, Value>) -> Self {
        let list = |v: Option<&'a Value>| v.and_then(Value::as_object);
        let nested = |outer: &str| list(leaf.get(outer).and_then(|o| o.get("attributes")));
        Self {
            leaf,
            lists: [
                list(leaf.get("attributes")),
                nested("scope"),
                nested("resource"),
            ],
        }
    }
}

impl<'a> RecordView<'a> for LeafView<'a> {
    fn attribute(&self, key: &str) -> Option<Attr<'a>> {
        let value = self.lists.iter().flatten().find_map(|list| list.get(key))?;
        Some(match value {
            Value::Null => return None,
            Value::String(s) => Attr::Str(s),
            Value::Bool(b) => Attr::Bool(*b),
            Value::Object(tagged) => match tagged.get("array") {
                Some(Value::Array(items)) => Attr::Array(items.iter().map(Value::as_str).collect()),
                _ => Attr::Other,
            },
            _ => Attr::Other,
        })
    }

    fn nanos(&self, observed: bool) -> Option<u64> {
        let key = if observed {
            "observed_time_unix_nano"
        } else {
            "time_unix_nano"
        };
        self.leaf
            .get(key)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|n| *n != 0)
    }

    fn text(&self, member: Text) -> Option<String> {
        self.leaf
            .get(member.name())
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }
}

/// The view of a record before it is encoded.
struct StructView<'a> {
    lists: [&'a [KeyValue]; 3],
    record: &'a LogRecord,
}

impl<'a> RecordView<'a> for StructView<'a> {
    fn attribute(&self, key: &str) -> Option<Attr<'a>> {
        let value = self
            .lists
            .iter()
            .find_map(|list| list.iter().find(|kv| kv.key == key))
            .map(|kv| &kv.value)?;
        Some(match value {
            AnyValue::Empty => return None,
            AnyValue::String(s) => Attr::Str(s),
            AnyValue::Bool(b) => Attr::Bool(*b),
            AnyValue::Array(items) => Attr::Array(
                items
                    .iter()
                    .map(|item| match item {
                        AnyValue::String(s) => Some(s.as_str()),
                        _ => None,
                    })
                    .collect(),
            ),
            _ => Attr::Other,
        })
    }

    fn nanos(&self, observed: bool) -> Option<u64> {
        Some(if observed {
            self.record.observed_time_unix_nano
        } else {
            self.record.time_unix_nano
        })
        .filter(|n| *n != 0)
    }

    fn text(&self, member: Text) -> Option<String> {
        let hex = |bytes: &[u8]| {
            let mut out = Vec::with_capacity(bytes.len() * 2);
            crate::otlp::hex(&mut out, bytes);
            String::from_utf8(out).unwrap_or_default()
        };
        let text = match member {
            Text::EventName => self.record.event_name.clone(),
            Text::TraceId => hex(&self.record.trace_id),
            Text::SpanId => hex(&self.record.span_id),
        };
        Some(text).filter(|s| !s.is_empty())
    }
}

/// The typed reads of a view; a value of another type is an error naming `field`
/// and the key.
struct Attributes<'v, V> {
    view: &'v V,
}

impl<'a, V: RecordView<'a>> Attributes<'_, V> {
    fn string(&self, key: &str, field: &str) -> Result<Option<String>, EventError> {
        match self.view.attribute(key) {
            None => Ok(None),
            Some(Attr::Str(s)) => Ok(Some(s.to_owned())),
            Some(_) => Err(bad(field, format!("attribute {key} must be a string"))),
        }
    }

    fn bool(&self, key: &str, field: &str) -> Result<Option<bool>, EventError> {
        match self.view.attribute(key) {
            None => Ok(None),
            Some(Attr::Bool(b)) => Ok(Some(b)),
            Some(_) => Err(bad(field, format!("attribute {key} must be a boolean"))),
        }
    }

    /// A string or an array of strings.
    fn strings(&self, key: &str, field: &str) -> Result<Vec<String>, EventError> {
        let wrong = || {
            bad(
                field,
                format!("attribute {key} must be a string or an array of strings"),
            )
        };
        match self.view.attribute(key) {
            None => Ok(Vec::new()),
            Some(Attr::Str(s)) => Ok(vec![s.to_owned()]),
            Some(Attr::Array(items)) => items
                .into_iter()
                .map(|item| item.map(str::to_owned).ok_or_else(wrong))
                .collect(),
            Some(_) => Err(wrong()),
        }
    }
}

/// The time of a record: its `time_unix_nano`, or its observed time when the
/// record has none.
fn record_time<'a>(view: &impl RecordView<'a>) -> Result<String, EventError> {
    let n = view
        .nanos(false)
        .or_else(|| view.nanos(true))
        .ok_or_else(|| {
            bad(
                "time",
                "the record has neither time_unix_nano nor observed_time_unix_nano",
            )
        })?;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(n);
    Ok(humantime::format_rfc3339_nanos(t).to_string())
}

/// The audit event of a record before it is encoded as a leaf, checked: the same
/// event (or error) as reading its leaf would give, without encoding and parsing it.
pub(super) fn from_record(
    resource: &Resource,
    scope: &Scope,
    record: &LogRecord,
) -> Result<AuditEvent, EventError> {
    map(&StructView {
        lists: [&record.attributes, &scope.attributes, &resource.attributes],
        record,
    })
}

/// The audit event of a parsed OTLP leaf, checked; the error names the profile
/// field and the attribute it comes from.
pub(super) fn from_otlp(leaf: &Map<String, Value>) -> Result<AuditEvent, EventError> {
    map(&LeafView::of(leaf))
}

fn map<'a>(view: &impl RecordView<'a>) -> Result<AuditEvent, EventError> {
    let a = Attributes { view };
    let mut actor = None;
    for (key, kind) in ACTOR_ATTRIBUTES {
        if let Some(id) = a.string(key, "actor.id")? {
            actor = Some(Actor { id, kind });
            break;
        }
    }
    let mut actor = actor.ok_or_else(|| {
        bad(
            "actor.id",
            "no attribute names the actor (gen_ai.agent.id, enduser.id, gen_ai.agent.name or merklog.actor.id)",
        )
    })?;
    if let Some(kind) = a.string("merklog.actor.kind", "actor.kind")? {
        actor.kind = serde_json::from_value(Value::String(kind)).map_err(|_| {
            bad(
                "actor.kind",
                "attribute merklog.actor.kind must be human, agent or service",
            )
        })?;
    }
    let mut action = None;
    for key in ACTION_ATTRIBUTES {
        if let Some(found) = a.string(key, "action")? {
            action = Some(found);
            break;
        }
    }
    let action = action
        .or_else(|| view.text(Text::EventName))
        .ok_or_else(|| {
            bad("action", "no attribute names the action (gen_ai.operation.name, merklog.action) and the record has no event_name")
        })?;
    let model = Model {
        provider: a.string("gen_ai.provider.name", "model.provider")?,
        id: match a.string("gen_ai.response.model", "model.id")? {
            Some(id) => Some(id),
            None => a.string("gen_ai.request.model", "model.id")?,
        },
        version: a.string("merklog.model.version", "model.version")?,
        digest: a.string("merklog.model.digest", "model.digest")?,
    };
    let tool_calls = match a.string("gen_ai.tool.name", "tool_calls.name")? {
        Some(name) => vec![ToolCall {
            name,
            id: a.string("gen_ai.tool.call.id", "tool_calls.id")?,
        }],
        None => Vec::new(),
    };
    let oversight = Oversight {
        reviewer: a.string("merklog.oversight.reviewer", "oversight.reviewer")?,
        approved: a.bool("merklog.oversight.approved", "oversight.approved")?,
    };
    let policy = match a.string("merklog.policy.id", "policy.id")? {
        Some(id) => Some(Policy {
            id,
            version: a.string("merklog.policy.version", "policy.version")?,
        }),
        None => None,
    };
    let config_change = match a.string("merklog.config.setting", "config_change.setting")? {
        Some(setting) => Some(ConfigChange {
            setting,
            old: a.string("merklog.config.old", "config_change.old")?,
            new: a.string("merklog.config.new", "config_change.new")?,
        }),
        None => None,
    };
    let event = AuditEvent {
        profile: PROFILE_AI_AUDIT_V1.to_owned(),
        time: record_time(view)?,
        actor,
        action,
        resource: a.string("merklog.resource", "resource")?,
        model: (model != Model::default()).then_some(model),
        datasets: a.strings("gen_ai.data_source.id", "datasets")?,
        prompt_hash: a.string("merklog.prompt.hash", "prompt_hash")?,
        tool_calls,
        decision: a.string("merklog.decision", "decision")?,
        oversight: (oversight.reviewer.is_some() || oversight.approved.is_some())
            .then_some(oversight),
        policy,
        config_change,
        trace_id: view.text(Text::TraceId),
        span_id: view.text(Text::SpanId),
    };
    event.check()?;
    Ok(event)
}
