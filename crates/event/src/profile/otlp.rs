//! The profile fields of an OTLP log record leaf: OpenTelemetry GenAI semantic
//! conventions where they name the concept, `merklog.*` attributes for the rest.
//!
//! An attribute is looked up on the record first, then on its scope, then on its
//! resource, so a deployment may set `gen_ai.agent.id` once on the resource.

use serde_json::{Map, Value};

use super::{
    Actor, ActorKind, AuditEvent, ConfigChange, Model, Oversight, PROFILE_AI_AUDIT_V1, Policy,
    ToolCall,
};
use crate::EventError;

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

/// The attribute lists of a leaf, record first.
struct Attributes<'a> {
    lists: [Option<&'a Map<String, Value>>; 3],
}

impl<'a> Attributes<'a> {
    fn of(leaf: &'a Map<String, Value>) -> Self {
        let list = |v: Option<&'a Value>| v.and_then(Value::as_object);
        let nested = |outer: &str| list(leaf.get(outer).and_then(|o| o.get("attributes")));
        Self {
            lists: [
                list(leaf.get("attributes")),
                nested("scope"),
                nested("resource"),
            ],
        }
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.lists
            .iter()
            .flatten()
            .find_map(|list| list.get(key))
            .filter(|v| !v.is_null())
    }

    /// A string attribute; another type is an error naming `field` and the key.
    fn string(&self, key: &str, field: &str) -> Result<Option<String>, EventError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(field, format!("attribute {key} must be a string"))),
        }
    }

    fn bool(&self, key: &str, field: &str) -> Result<Option<bool>, EventError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
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
        match self.get(key) {
            None => Ok(Vec::new()),
            Some(Value::String(s)) => Ok(vec![s.clone()]),
            Some(Value::Object(tagged)) => match tagged.get("array") {
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|v| v.as_str().map(str::to_owned).ok_or_else(wrong))
                    .collect(),
                _ => Err(wrong()),
            },
            Some(_) => Err(wrong()),
        }
    }
}

/// The time of a record: its `time_unix_nano`, or its observed time when the
/// record has none.
fn record_time(leaf: &Map<String, Value>) -> Result<String, EventError> {
    let nanos = |key: &str| {
        leaf.get(key)
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|n| *n != 0)
    };
    let n = nanos("time_unix_nano")
        .or_else(|| nanos("observed_time_unix_nano"))
        .ok_or_else(|| {
            bad(
                "time",
                "the record has neither time_unix_nano nor observed_time_unix_nano",
            )
        })?;
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(n);
    Ok(humantime::format_rfc3339_nanos(t).to_string())
}

fn id(leaf: &Map<String, Value>, key: &str) -> Option<String> {
    leaf.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The audit event of a parsed OTLP leaf, checked; the error names the profile
/// field and the attribute it comes from.
pub(super) fn from_otlp(leaf: &Map<String, Value>) -> Result<AuditEvent, EventError> {
    let a = Attributes::of(leaf);
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
        .or_else(|| id(leaf, "event_name"))
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
        time: record_time(leaf)?,
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
        trace_id: id(leaf, "trace_id"),
        span_id: id(leaf, "span_id"),
    };
    event.check()?;
    Ok(event)
}
