//! One rule: its `[[rule]]` table, its CEL compiled once at start, and its
//! evaluation over one audit event, with the windowed count of matches per key.
//!
//! The CEL names a rule sees: `event` (the `ai-audit/v1` profile document as a map,
//! with the profile's own field names; absent optional fields are absent keys, so a
//! rule tests them with `has(...)`), `leaf_index` (int), `principal` (string, who
//! appended it) and `source` (string, the signed event's source, empty for an
//! unsigned entry). Nothing here performs I/O.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use merklog_daemon::ConfigDuration;
use merklog_event::profile::AuditEvent;
use serde::{Deserialize, Serialize};

/// Distinct count-by keys a rule keeps before expired ones are pruned.
const MAX_KEYS: usize = 100_000;
/// The largest threshold: a key keeps at most `threshold + 1` match times.
const MAX_THRESHOLD: u64 = 1_000_000;

/// One `[[rule]]` table of the configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RuleConfig {
    /// Unique name; alerts carry it.
    pub name: String,
    /// CEL boolean expression: the event matches when it is true.
    pub when: String,
    /// CEL expression giving the key matches are counted under (a string, int or
    /// bool); with `threshold` and `window`. Absent: one count for all matches.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count_by: Option<String>,
    /// The rule fires when MORE than this many matches share a key within `window`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<u64>,
    /// The counting window (e.g. `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<ConfigDuration>,
}

/// What one rule found in one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Firing {
    /// Matches of the key within the window when it fired (0 for a rule without a
    /// window).
    pub(crate) window_count: u64,
    /// The count-by key, if the rule has one.
    pub(crate) key: Option<String>,
}

/// The facts about one entry that rules see besides the event.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Facts<'a> {
    pub(crate) leaf_index: u64,
    pub(crate) principal: &'a str,
    pub(crate) source: &'a str,
}

/// A compiled rule with its counting state.
pub(crate) struct Rule {
    name: String,
    when: cel::Program,
    count_by: Option<cel::Program>,
    window: Option<Window>,
}

impl std::fmt::Debug for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rule")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Compiles every rule; the first problem names its rule.
pub(crate) fn compile_all(configs: &[RuleConfig]) -> Result<Vec<Rule>, String> {
    let mut rules: Vec<Rule> = Vec::with_capacity(configs.len());
    for config in configs {
        if rules.iter().any(|r| r.name == config.name) {
            return Err(format!(
                "[[rule]] {:?}: the name is used twice",
                config.name
            ));
        }
        rules.push(Rule::compile(config)?);
    }
    Ok(rules)
}

impl Rule {
    /// Compiles one rule's CEL and checks its counting settings.
    pub(crate) fn compile(config: &RuleConfig) -> Result<Rule, String> {
        let name = &config.name;
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(format!(
                "[[rule]] {name:?}: a name is 1 to 128 characters, none of them control characters"
            ));
        }
        let program = |field: &str, text: &str| {
            cel::Program::compile(text)
                .map_err(|e| format!("[[rule]] {name:?}: {field} {text:?} is not valid CEL: {e}"))
        };
        let when = program("when", &config.when)?;
        let count_by = config
            .count_by
            .as_deref()
            .map(|text| program("count-by", text))
            .transpose()?;
        let window = match (config.threshold, config.window) {
            (Some(threshold), Some(window)) => {
                if threshold > MAX_THRESHOLD {
                    return Err(format!(
                        "[[rule]] {name:?}: threshold {threshold} is over {MAX_THRESHOLD}"
                    ));
                }
                if window.get().is_zero() {
                    return Err(format!("[[rule]] {name:?}: window must be more than 0"));
                }
                Some(Window::new(threshold, window.get()))
            }
            (None, None) if count_by.is_none() => None,
            _ => {
                return Err(format!(
                    "[[rule]] {name:?}: count-by needs threshold and window, and threshold \
                     and window go together"
                ));
            }
        };
        Ok(Rule {
            name: name.clone(),
            when,
            count_by,
            window,
        })
    }

    /// The rule's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Evaluates the rule in `context` (see [`context`]) at `now_ms`: `Some` when
    /// it fires.
    pub(crate) fn evaluate(
        &mut self,
        context: &cel::Context<'_, '_>,
        now_ms: u64,
    ) -> Result<Option<Firing>, String> {
        let matched = match self.when.execute(context) {
            Ok(cel::Value::Bool(b)) => b,
            Ok(other) => return Err(format!("when gave {other:?}, not a bool")),
            Err(e) => return Err(format!("when: {e}")),
        };
        if !matched {
            return Ok(None);
        }
        let key = match &self.count_by {
            Some(program) => Some(match program.execute(context) {
                Ok(cel::Value::String(s)) => s.as_str().to_owned(),
                Ok(cel::Value::Int(i)) => i.to_string(),
                Ok(cel::Value::UInt(u)) => u.to_string(),
                Ok(cel::Value::Bool(b)) => b.to_string(),
                Ok(other) => {
                    return Err(format!(
                        "count-by gave {other:?}, not a string, int or bool"
                    ));
                }
                Err(e) => return Err(format!("count-by: {e}")),
            }),
            None => None,
        };
        let Some(window) = &mut self.window else {
            return Ok(Some(Firing {
                window_count: 0,
                key,
            }));
        };
        Ok(window
            .record(key.clone().unwrap_or_default(), now_ms)
            .map(|window_count| Firing { window_count, key }))
    }
}

/// The names one event's rules see; built once per event, shared by its rules.
pub(crate) fn context(event: cel::Value, facts: Facts<'_>) -> cel::Context<'static, 'static> {
    let mut context = cel::Context::default();
    context.add_variable_from_value("event", event);
    context.add_variable_from_value(
        "leaf_index",
        cel::Value::Int(i64::try_from(facts.leaf_index).unwrap_or(i64::MAX)),
    );
    context.add_variable_from_value("principal", facts.principal.to_owned());
    context.add_variable_from_value("source", facts.source.to_owned());
    context
}

/// The profile document as a CEL value.
pub(crate) fn event_value(event: &AuditEvent) -> Result<cel::Value, String> {
    cel::to_value(event).map_err(|e| format!("the event as CEL: {e}"))
}

/// Counts matches per key in a sliding window and says when a count crosses the
/// threshold: once per crossing, again only after the count fell back to at most
/// the threshold.
#[derive(Debug)]
struct Window {
    threshold: u64,
    window_ms: u64,
    keys: HashMap<String, KeyWindow>,
}

#[derive(Debug, Default)]
struct KeyWindow {
    /// Times of the newest matches, oldest first; at most `threshold + 1` are
    /// kept, which is all it takes to tell whether the count is over the threshold.
    times: VecDeque<u64>,
    fired: bool,
}

impl Window {
    fn new(threshold: u64, window: Duration) -> Window {
        Window {
            threshold,
            window_ms: u64::try_from(window.as_millis()).unwrap_or(u64::MAX),
            keys: HashMap::new(),
        }
    }

    /// Records a match of `key` at `now_ms`; the count in the window when this
    /// match makes it cross the threshold.
    fn record(&mut self, key: String, now_ms: u64) -> Option<u64> {
        let window_ms = self.window_ms;
        // A match at `t` is in the window (now - window, now].
        let expired = move |t: u64| now_ms.saturating_sub(t) >= window_ms;
        if self.keys.len() >= MAX_KEYS && !self.keys.contains_key(&key) {
            self.keys
                .retain(|_, w| w.times.back().is_some_and(|t| !expired(*t)));
        }
        let keep = usize::try_from(self.threshold.saturating_add(1)).unwrap_or(usize::MAX);
        let w = self.keys.entry(key).or_default();
        while w.times.front().is_some_and(|t| expired(*t)) {
            w.times.pop_front();
        }
        w.times.push_back(now_ms);
        while w.times.len() > keep {
            w.times.pop_front();
        }
        let count = w.times.len() as u64;
        if count <= self.threshold {
            w.fired = false;
            return None;
        }
        if w.fired {
            return None;
        }
        w.fired = true;
        Some(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(name: &str, when: &str) -> RuleConfig {
        RuleConfig {
            name: name.into(),
            when: when.into(),
            count_by: None,
            threshold: None,
            window: None,
        }
    }

    fn event(json: &str) -> cel::Context<'static, 'static> {
        let value = event_value(&AuditEvent::from_document(json.as_bytes()).unwrap()).unwrap();
        context(value, FACTS)
    }

    const FACTS: Facts<'static> = Facts {
        leaf_index: 7,
        principal: "alice",
        source: "",
    };

    const DENIAL: &str = r#"{"profile":"ai-audit/v1","time":"2026-03-01T12:00:00Z",
        "actor":{"id":"agent-7","kind":"agent"},"action":"tool.call","decision":"deny"}"#;

    #[test]
    fn bad_cel_is_refused_naming_the_rule() {
        let error = Rule::compile(&config("broken", "event.action ==")).unwrap_err();
        assert!(error.contains("\"broken\""), "{error}");
        assert!(error.contains("not valid CEL"), "{error}");
        let mut counted = config("counted", "true");
        counted.count_by = Some("event.actor.id +".into());
        counted.threshold = Some(1);
        counted.window = Some(ConfigDuration(Duration::from_secs(1)));
        let error = Rule::compile(&counted).unwrap_err();
        assert!(error.contains("count-by"), "{error}");
    }

    #[test]
    fn counting_settings_go_together_and_names_are_unique() {
        let mut rule = config("r", "true");
        rule.threshold = Some(3);
        assert!(Rule::compile(&rule).unwrap_err().contains("go together"));
        let mut rule = config("r", "true");
        rule.count_by = Some("event.actor.id".into());
        assert!(Rule::compile(&rule).is_err());
        let error = compile_all(&[config("r", "true"), config("r", "false")]).unwrap_err();
        assert!(error.contains("twice"), "{error}");
        assert!(Rule::compile(&config("", "true")).is_err());
    }

    #[test]
    fn cel_sees_the_profile_fields_and_the_facts() {
        let approved = r#"{"profile":"ai-audit/v1","time":"2026-03-01T12:00:00Z",
            "actor":{"id":"ops","kind":"human"},"action":"config.change",
            "model":{"id":"m","digest":"sha256:aa"},
            "config_change":{"setting":"safety","old":"on","new":"off"},
            "oversight":{"reviewer":"bob","approved":true}}"#;
        let cases = [
            (
                "event.actor.kind == 'human' && event.actor.id == 'ops'",
                true,
            ),
            ("event.model.digest in ['sha256:aa', 'sha256:bb']", true),
            ("!(event.model.digest in ['sha256:bb'])", true),
            (
                "has(event.config_change) && event.config_change.new == 'off'",
                true,
            ),
            ("has(event.oversight) && event.oversight.approved", true),
            ("has(event.policy)", false),
            (
                "leaf_index == 7 && principal == 'alice' && source == ''",
                true,
            ),
            ("event.time.startsWith('2026-03-01')", true),
        ];
        let value = event(approved);
        for (when, expected) in cases {
            let mut rule = Rule::compile(&config("r", when)).unwrap();
            let fired = rule.evaluate(&value, 0).unwrap();
            assert_eq!(fired.is_some(), expected, "{when}");
        }
    }

    #[test]
    fn evaluation_errors_are_errors_not_matches() {
        let value = event(DENIAL);
        // No model in this event: reading its digest is an error.
        let mut rule = Rule::compile(&config("r", "event.model.digest == 'x'")).unwrap();
        assert!(rule.evaluate(&value, 0).is_err());
        let mut rule = Rule::compile(&config("r", "event.action")).unwrap();
        let error = rule.evaluate(&value, 0).unwrap_err();
        assert!(error.contains("not a bool"), "{error}");
    }

    fn denials(threshold: u64) -> Rule {
        let mut rule = config("denials", "event.decision == 'deny'");
        rule.count_by = Some("event.actor.id".into());
        rule.threshold = Some(threshold);
        rule.window = Some(ConfigDuration(Duration::from_secs(60)));
        Rule::compile(&rule).unwrap()
    }

    fn firings(
        rule: &mut Rule,
        value: &cel::Context<'static, 'static>,
        times: impl Iterator<Item = u64>,
    ) -> Vec<u64> {
        times
            .filter_map(|t| rule.evaluate(value, t).unwrap())
            .map(|f| f.window_count)
            .collect()
    }

    #[test]
    fn windowed_count_fires_once_per_crossing() {
        let value = event(DENIAL);
        // 21 within the minute: exactly one firing, at the 21st, and none after.
        let mut rule = denials(20);
        assert_eq!(
            firings(&mut rule, &value, (0..21).map(|i| i * 1000)),
            vec![21]
        );
        assert!(firings(&mut rule, &value, (21..40).map(|i| i * 1000)).is_empty());
        // 20 within the minute: none.
        let mut rule = denials(20);
        assert!(firings(&mut rule, &value, (0..20).map(|i| i * 1000)).is_empty());
        // 21 spread over more than the window: none.
        let mut rule = denials(20);
        assert!(firings(&mut rule, &value, (0..21).map(|i| i * 3001)).is_empty());
        // After the count fell back, a new crossing fires again.
        let mut rule = denials(2);
        assert_eq!(
            firings(&mut rule, &value, [0, 1, 2, 3].into_iter()),
            vec![3]
        );
        assert_eq!(
            firings(&mut rule, &value, [100_000, 100_001, 100_002].into_iter()),
            vec![3]
        );
    }

    #[test]
    fn keys_are_counted_apart() {
        let value = event(DENIAL);
        let other = event(&DENIAL.replace("agent-7", "agent-8"));
        let mut rule = denials(1);
        assert!(rule.evaluate(&value, 0).unwrap().is_none());
        assert!(rule.evaluate(&other, 1).unwrap().is_none());
        let fired = rule.evaluate(&value, 2).unwrap().unwrap();
        assert_eq!(fired.key.as_deref(), Some("agent-7"));
        assert_eq!(fired.window_count, 2);
    }
}
