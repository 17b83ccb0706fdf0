//! C2SP tlog-policy: trusted logs, witnesses, witness groups and the quorum.
//!
//! Policy files are line based; items are separated by spaces and tabs; empty
//! lines and lines whose first non-blank character is `#` are ignored. Names
//! are compared as exact byte strings. This parser takes `&str`, so a policy
//! file that is not UTF-8 is refused (the spec strongly recommends UTF-8).

use std::collections::{HashMap, HashSet};
use std::fmt;

use bytes::Bytes;

use crate::NoteError;
use crate::checkpoint::Checkpoint;
use crate::cosignature::{CosignatureVerifier, parse_cosignature_verifier_key};
use crate::key::{Ed25519Verifier, Verifier, parse_verifier_key};
use crate::note::{MAX_NOTE_SIZE, Note};
use crate::signed::SignedCheckpoint;

/// Most logs, witnesses, or groups accepted in one policy (the spec asks
/// implementations to support at least 32 of each).
pub const MAX_POLICY_ENTRIES: usize = 256;

/// The predefined quorum name that requires no cosignature.
pub const QUORUM_NONE: &str = "none";

/// A trusted log: its checkpoint-signing key (whose name is its origin) and
/// an optional URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLog {
    /// The log's Ed25519 note verifier.
    pub verifier: Ed25519Verifier,
    /// Optional URL, meaning defined by the application.
    pub url: Option<String>,
}

/// A known witness: its policy name, cosignature verifier and optional URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWitness {
    /// Name used in groups and the quorum (meaningless outside the policy).
    pub name: String,
    /// The witness's cosignature/v1 verifier.
    pub verifier: CosignatureVerifier,
    /// Optional URL (e.g. the witness's tlog-witness submission prefix).
    pub url: Option<String>,
}

/// How many members of a group must have witnessed a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// At least one member (`any`).
    Any,
    /// Every member (`all`).
    All,
    /// At least k members, 1 <= k <= n.
    AtLeast(usize),
}

impl Threshold {
    fn required(self, members: usize) -> usize {
        match self {
            Threshold::Any => 1,
            Threshold::All => members,
            Threshold::AtLeast(k) => k,
        }
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Threshold::Any => f.write_str("any"),
            Threshold::All => f.write_str("all"),
            Threshold::AtLeast(k) => write!(f, "{k}"),
        }
    }
}

/// A named group of witnesses and/or earlier groups with a threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyGroup {
    /// The group's name.
    pub name: String,
    /// How many members must have witnessed.
    pub threshold: Threshold,
    /// Names of witnesses or groups defined before this group.
    pub members: Vec<String>,
}

/// A parsed, validated tlog-policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    groups: Vec<PolicyGroup>,
    quorum: String,
}

fn syntax(line: usize, reason: impl Into<String>) -> NoteError {
    NoteError::PolicySyntax {
        line,
        reason: reason.into(),
    }
}

/// State kept while parsing: which names exist and which are already members.
#[derive(Default)]
struct Builder {
    logs: Vec<PolicyLog>,
    witnesses: Vec<PolicyWitness>,
    groups: Vec<PolicyGroup>,
    quorum: Option<String>,
    defined: HashSet<String>,
    used_as_member: HashSet<String>,
}

impl Builder {
    fn define(&mut self, line: usize, name: &str) -> Result<(), NoteError> {
        if name == QUORUM_NONE || !self.defined.insert(name.to_owned()) {
            return Err(NoteError::PolicyDuplicateName {
                line,
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    fn log(&mut self, line: usize, args: &[&str]) -> Result<(), NoteError> {
        let (vkey, url) = match args {
            [vkey] => (*vkey, None),
            [vkey, url] => (*vkey, Some((*url).to_owned())),
            _ => return Err(syntax(line, "expected: log <vkey> [<url>]")),
        };
        let verifier = parse_verifier_key(vkey).map_err(|e| NoteError::PolicyKey {
            line,
            source: Box::new(e),
        })?;
        if self
            .logs
            .iter()
            .any(|l| l.verifier.public_key() == verifier.public_key())
        {
            return Err(NoteError::PolicyDuplicateKey { line });
        }
        limit(self.logs.len(), "logs")?;
        self.logs.push(PolicyLog { verifier, url });
        Ok(())
    }

    fn witness(&mut self, line: usize, args: &[&str]) -> Result<(), NoteError> {
        let (name, vkey, url) = match args {
            [name, vkey] => (*name, *vkey, None),
            [name, vkey, url] => (*name, *vkey, Some((*url).to_owned())),
            _ => return Err(syntax(line, "expected: witness <name> <vkey> [<url>]")),
        };
        let verifier = parse_cosignature_verifier_key(vkey).map_err(|e| NoteError::PolicyKey {
            line,
            source: Box::new(e),
        })?;
        if self
            .witnesses
            .iter()
            .any(|w| w.verifier.public_key() == verifier.public_key())
        {
            return Err(NoteError::PolicyDuplicateKey { line });
        }
        limit(self.witnesses.len(), "witnesses")?;
        self.define(line, name)?;
        self.witnesses.push(PolicyWitness {
            name: name.to_owned(),
            verifier,
            url,
        });
        Ok(())
    }

    fn group(&mut self, line: usize, args: &[&str]) -> Result<(), NoteError> {
        let [name, threshold, members @ ..] = args else {
            return Err(syntax(line, "expected: group <name> <k|any|all> <name>..."));
        };
        if members.is_empty() {
            return Err(syntax(line, "a group needs at least one member"));
        }
        limit(self.groups.len(), "groups")?;
        let n = members.len();
        let threshold = match *threshold {
            "any" => Threshold::Any,
            "all" => Threshold::All,
            k => match k
                .bytes()
                .all(|b| b.is_ascii_digit())
                .then(|| k.parse::<usize>())
            {
                Some(Ok(k)) if (1..=n).contains(&k) => Threshold::AtLeast(k),
                _ => {
                    return Err(NoteError::PolicyThreshold {
                        line,
                        threshold: k.chars().take(32).collect(),
                        members: n,
                    });
                }
            },
        };
        // Members must exist before the group's own name does (no self-reference),
        // and each name may be a member once in the whole policy.
        let mut fresh = HashSet::new();
        for &m in members {
            if m == QUORUM_NONE || self.used_as_member.contains(m) || !fresh.insert(m) {
                return Err(NoteError::PolicyMemberReused {
                    line,
                    name: m.to_owned(),
                });
            }
            if !self.defined.contains(m) {
                return Err(NoteError::PolicyUndefinedName {
                    line,
                    name: m.to_owned(),
                });
            }
        }
        self.define(line, name)?;
        self.used_as_member
            .extend(members.iter().map(|m| (*m).to_owned()));
        self.groups.push(PolicyGroup {
            name: (*name).to_owned(),
            threshold,
            members: members.iter().map(|m| (*m).to_owned()).collect(),
        });
        Ok(())
    }

    fn quorum(&mut self, line: usize, args: &[&str]) -> Result<(), NoteError> {
        let [name] = args else {
            return Err(syntax(line, "expected: quorum <name>"));
        };
        if self.quorum.is_some() {
            return Err(NoteError::PolicyQuorumCount { found: 2 });
        }
        if *name != QUORUM_NONE && !self.defined.contains(*name) {
            return Err(NoteError::PolicyUndefinedName {
                line,
                name: (*name).to_owned(),
            });
        }
        self.quorum = Some((*name).to_owned());
        Ok(())
    }
}

fn limit(count: usize, what: &'static str) -> Result<(), NoteError> {
    if count >= MAX_POLICY_ENTRIES {
        return Err(NoteError::PolicyLimit {
            what,
            max: MAX_POLICY_ENTRIES,
        });
    }
    Ok(())
}

impl Policy {
    /// Parses a policy file.
    pub fn parse(text: &str) -> Result<Policy, NoteError> {
        if text.len() > MAX_NOTE_SIZE {
            return Err(NoteError::TooLarge {
                size: text.len(),
                max: MAX_NOTE_SIZE,
            });
        }
        let mut b = Builder::default();
        for (i, line) in text.split('\n').enumerate() {
            let line_no = i + 1;
            // Allowed octets: tab, newline, 0x20-0x7E and anything >= 0x80.
            if line.bytes().any(|c| (c < 0x20 && c != b'\t') || c == 0x7f) {
                return Err(syntax(line_no, "control character"));
            }
            let tokens: Vec<&str> = line.split([' ', '\t']).filter(|t| !t.is_empty()).collect();
            let Some((keyword, args)) = tokens.split_first() else {
                continue;
            };
            if keyword.starts_with('#') {
                continue;
            }
            match *keyword {
                "log" => b.log(line_no, args)?,
                "witness" => b.witness(line_no, args)?,
                "group" => b.group(line_no, args)?,
                "quorum" => b.quorum(line_no, args)?,
                other => {
                    return Err(syntax(
                        line_no,
                        format!(
                            "unknown keyword {:?}",
                            other.chars().take(32).collect::<String>()
                        ),
                    ));
                }
            }
        }
        let quorum = b.quorum.ok_or(NoteError::PolicyQuorumCount { found: 0 })?;
        Ok(Policy {
            logs: b.logs,
            witnesses: b.witnesses,
            groups: b.groups,
            quorum,
        })
    }

    /// Serialises the policy in a canonical layout: logs, witnesses, groups
    /// (in definition order), then the quorum line. Parsing the output gives
    /// back an equal policy.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let url = |u: &Option<String>| u.as_ref().map(|u| format!(" {u}")).unwrap_or_default();
        for l in &self.logs {
            out.push_str(&format!("log {}{}\n", l.verifier.to_vkey(), url(&l.url)));
        }
        for w in &self.witnesses {
            out.push_str(&format!(
                "witness {} {}{}\n",
                w.name,
                w.verifier.to_vkey(),
                url(&w.url)
            ));
        }
        for g in &self.groups {
            out.push_str(&format!(
                "group {} {} {}\n",
                g.name,
                g.threshold,
                g.members.join(" ")
            ));
        }
        out.push_str(&format!("quorum {}\n", self.quorum));
        out
    }

    /// The trusted logs.
    pub fn logs(&self) -> &[PolicyLog] {
        &self.logs
    }

    /// The first trusted log whose key name (origin) is `origin`.
    pub fn log_verifier(&self, origin: &str) -> Option<&Ed25519Verifier> {
        self.logs
            .iter()
            .map(|l| &l.verifier)
            .find(|v| v.name() == origin)
    }

    /// The known witnesses.
    pub fn witnesses(&self) -> &[PolicyWitness] {
        &self.witnesses
    }

    /// The witness groups, in definition order.
    pub fn groups(&self) -> &[PolicyGroup] {
        &self.groups
    }

    /// The quorum name (a witness, a group, or `none`).
    pub fn quorum(&self) -> &str {
        &self.quorum
    }

    /// Whether witnesses with these policy names (those whose cosignatures
    /// verified) satisfy the quorum. Unknown names count for nothing.
    pub fn satisfied_by<'a>(&self, cosigned: impl IntoIterator<Item = &'a str>) -> bool {
        if self.quorum == QUORUM_NONE {
            return true;
        }
        let cosigned: HashSet<&str> = cosigned.into_iter().collect();
        let mut witnessed: HashMap<&str, bool> = self
            .witnesses
            .iter()
            .map(|w| (w.name.as_str(), cosigned.contains(w.name.as_str())))
            .collect();
        // Groups only name earlier definitions, so one pass in order suffices.
        for g in &self.groups {
            let count = g
                .members
                .iter()
                .filter(|m| witnessed.get(m.as_str()).copied().unwrap_or(false))
                .count();
            witnessed.insert(&g.name, count >= g.threshold.required(g.members.len()));
        }
        witnessed
            .get(self.quorum.as_str())
            .copied()
            .unwrap_or(false)
    }

    /// Verifies every cosignature from a known witness on `note` (one that
    /// fails rejects the note) and checks the quorum. Returns the policy names
    /// of the witnesses that cosigned.
    pub fn check_cosignatures(&self, note: &Note) -> Result<Vec<String>, NoteError> {
        let mut cosigners = Vec::new();
        for w in &self.witnesses {
            let mut ok = false;
            for sig in note
                .signatures()
                .iter()
                .filter(|s| s.name() == w.verifier.name() && s.key_id() == w.verifier.key_id())
            {
                w.verifier.verify_cosignature(note.text(), sig)?;
                ok = true;
            }
            if ok {
                cosigners.push(w.name.clone());
            }
        }
        if !self.satisfied_by(cosigners.iter().map(String::as_str)) {
            return Err(NoteError::QuorumNotSatisfied {
                cosigned: cosigners,
            });
        }
        Ok(cosigners)
    }

    /// Checks the witness cosignatures of a checkpoint whose log signature verified (as
    /// [`Policy::check_cosignatures`] does, the policy's `log` lines unused) and returns
    /// it with the names of its cosigners.
    pub fn check_witnesses(&self, signed: SignedCheckpoint) -> Result<SignedCheckpoint, NoteError> {
        let note = Note::parse(signed.note())?;
        let cosigners = self.check_cosignatures(&note)?;
        Ok(SignedCheckpoint::verified(
            signed.checkpoint().clone(),
            signed.note().clone(),
            cosigners,
        ))
    }

    /// Checks a signed checkpoint against the whole policy: signed by a listed
    /// log whose key name is the checkpoint's origin, and cosigned by a quorum.
    pub fn verify_checkpoint(&self, note_bytes: &[u8]) -> Result<SignedCheckpoint, NoteError> {
        let note = Note::parse(note_bytes)?;
        let checkpoint = Checkpoint::from_text(note.text())?;
        if self.log_verifier(&checkpoint.origin).is_none() {
            return Err(NoteError::UnknownLog {
                origin: checkpoint.origin,
            });
        }
        note.verify_by(|name, id| {
            self.logs
                .iter()
                .map(|l| &l.verifier)
                .find(|v| v.name() == name && v.key_id() == id && name == checkpoint.origin)
                .map(|v| v as &dyn Verifier)
        })?;
        let cosigners = self.check_cosignatures(&note)?;
        Ok(SignedCheckpoint::verified(
            checkpoint,
            Bytes::copy_from_slice(note_bytes),
            cosigners,
        ))
    }
}
