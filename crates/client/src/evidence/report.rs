//! `report.html`: the pack for people. One self-contained file (inline CSS and SVG, no
//! script, nothing fetched), rendered only from the pack's verified contents, so the
//! same pack always gives the same bytes and the verifier can rebuild it.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use merklog_event::EventKind;

use super::manifest::hex;
use super::model::{Findings, Pack, Role, ranges_text, time_text};

/// Rows of the event table: beyond this, the first and the last half are shown.
const MAX_TABLE_ROWS: usize = 2000;
/// Characters of a text payload shown.
const PREVIEW_CHARS: usize = 80;
/// Bars of the chart at most: longer periods get buckets of several hours.
const MAX_BARS: u64 = 168;
const HOUR_MS: u64 = 3_600_000;

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2em;\
color:#1b1f24;max-width:76em}h1{font-size:1.6em}h2{font-size:1.25em;border-bottom:1px solid \
#ccd;padding-bottom:.2em;margin-top:1.6em}table{border-collapse:collapse;margin:.5em 0}\
td,th{border:1px solid #ccd;padding:.25em .6em;text-align:left;vertical-align:top;\
font-size:.92em}th{background:#eef1f6}code,.mono{font-family:ui-monospace,Menlo,Consolas,\
monospace;font-size:.9em;word-break:break-all}.ok{color:#116329;font-weight:bold}.bad{color:\
#b42318;font-weight:bold}.note{color:#555;font-size:.9em}.status{font-size:1.2em;padding:.4em \
.8em;display:inline-block;border-radius:.3em}.status.ok{background:#e6f4ea}.status.bad{\
background:#fdecea}svg text{font-family:inherit;font-size:11px}";

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\t' => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A short preview of a payload, for text media types that are UTF-8.
fn preview(media_type: &str, payload: &[u8]) -> Option<String> {
    let textual = media_type.starts_with("text/")
        || media_type.contains("json")
        || media_type.contains("xml");
    let text = std::str::from_utf8(payload).ok().filter(|_| textual)?;
    let mut shown: String = text.chars().take(PREVIEW_CHARS).collect();
    if text.chars().count() > PREVIEW_CHARS {
        shown.push('\u{2026}');
    }
    Some(shown)
}

fn row(out: &mut String, label: &str, value: &str) {
    let _ = write!(out, "<tr><th>{}</th><td>{value}</td></tr>", escape(label));
}

/// The whole report.
pub fn render(pack: &Pack, findings: &Findings) -> String {
    let mut out = String::new();
    let source = &pack.selection.source;
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Evidence pack: {}</title><style>{STYLE}</style></head><body>\n",
        escape(source)
    );
    let _ = writeln!(
        out,
        "<h1>Evidence pack for source <code>{}</code></h1>",
        escape(source)
    );
    summary(&mut out, pack, findings);
    chart(&mut out, pack, findings);
    checks(&mut out, pack);
    duties(&mut out);
    table(&mut out, pack, findings);
    out.push_str("</body></html>\n");
    out
}

fn summary(out: &mut String, pack: &Pack, findings: &Findings) {
    let selection = &pack.selection;
    out.push_str("<h2 id=\"summary\">Summary</h2>\n");
    let (class, word) = if findings.is_complete() {
        ("ok", "COMPLETE")
    } else {
        ("bad", "INCOMPLETE")
    };
    let _ = writeln!(out, "<p id=\"status\" class=\"status {class}\">{word}</p>");
    if !findings.missing.is_empty() {
        let _ = writeln!(
            out,
            "<p id=\"missing\" class=\"bad\">Missing sequence numbers ({}): {}</p>",
            findings.missing_count(),
            escape(&ranges_text(&findings.missing))
        );
    } else {
        out.push_str("<p id=\"missing\" class=\"ok\">Missing sequence numbers: none</p>\n");
    }
    out.push_str("<table>");
    row(
        out,
        "Log origin",
        &format!("<code>{}</code>", escape(pack.checkpoint.origin())),
    );
    row(
        out,
        "Log key",
        &format!("<code>{}</code>", escape(&pack.log_key_vkey())),
    );
    row(
        out,
        "Checkpoint size",
        &pack.checkpoint.size().0.to_string(),
    );
    row(
        out,
        "Checkpoint root",
        &format!("<code>{}</code>", hex(pack.checkpoint.root().as_bytes())),
    );
    let cosigned = if findings.cosigners.is_empty() {
        "none verified".to_owned()
    } else {
        findings
            .cosigners
            .iter()
            .map(|c| {
                format!(
                    "{} at {}",
                    escape(&c.name),
                    time_text(c.timestamp.saturating_mul(1000))
                )
            })
            .collect::<Vec<_>>()
            .join("<br>")
    };
    row(
        out,
        "Witnesses that cosigned (verified under the pack's policy)",
        &cosigned,
    );
    if !findings.unverified_signers.is_empty() {
        row(
            out,
            "Other signature lines (not verified: no key for them in the pack)",
            &escape(&findings.unverified_signers.join(", ")),
        );
    }
    row(
        out,
        "As of",
        &match findings.as_of() {
            Some(s) => format!("{} (latest verified cosignature)", time_text(s * 1000)),
            None => {
                "no verified cosignature time; the checkpoint carries no time of its own".to_owned()
            }
        },
    );
    let earlier = if pack.earlier.is_empty() {
        "none".to_owned()
    } else {
        pack.earlier
            .iter()
            .map(|e| format!("size {}", e.checkpoint.size().0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    row(
        out,
        "Earlier checkpoints proven consistent with it",
        &earlier,
    );
    row(
        out,
        "Source",
        &format!("<code>{}</code>", escape(&selection.source)),
    );
    row(
        out,
        "Source key",
        &format!("<code>{}</code>", escape(&pack.source_key.to_vkey())),
    );
    let mut chosen = format!(
        "sequence numbers {}..={}",
        selection.from_sequence, selection.to_sequence
    );
    if selection.since_ms.is_some() || selection.until_ms.is_some() {
        let _ = write!(
            chosen,
            "; signed source timestamps from {} until {} (end excluded)",
            selection.since_ms.map_or("the beginning".into(), time_text),
            selection.until_ms.map_or("the end".into(), time_text)
        );
    }
    if let Some(query) = &selection.query {
        let _ = write!(
            chosen,
            "; query on the events' audit-event payloads: {}",
            query.text()
        );
    }
    row(out, "Selection", &escape(&chosen));
    if let Some(caveat) = selection.caveat() {
        row(
            out,
            "Not proven by a query selection",
            &format!(
                "<span id=\"caveat\" class=\"bad\">{}</span>",
                escape(caveat)
            ),
        );
    }
    row(
        out,
        "Numbers judged for completeness",
        &match findings.span {
            Some((first, last)) => format!("{first}..={last}"),
            None => "none (nothing selected)".into(),
        },
    );
    row(
        out,
        "Events",
        &format!(
            "{} selected ({} heartbeats), {} context, {} declarations; {} in the pack",
            findings.count(Role::Selected),
            findings.heartbeats,
            findings.count(Role::Context),
            findings.count(Role::Declaration),
            pack.events.len()
        ),
    );
    row(
        out,
        "COSE receipts (RFC 9942)",
        &match &pack.receipts {
            Some(r) => format!(
                "{} in <code>receipts/</code>, one per event, against size {}; receipt key \
                 <code>{}</code> (<code>keys/receipt.pub</code>, kid <code>{}</code>)",
                pack.events.len(),
                r.head.tree_size().0,
                escape(&r.key.to_text()),
                hex(&r.key.key_id())
            ),
            None => "none (no events)".into(),
        },
    );
    row(
        out,
        "Declared unused (signed by the source)",
        &if findings.declared_unused.is_empty() {
            "none".into()
        } else {
            escape(&ranges_text(&findings.declared_unused))
        },
    );
    row(
        out,
        "Equivocations",
        &if findings.equivocations.is_empty() {
            "none".into()
        } else {
            findings
                .equivocations
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    out.push_str("</table>\n");
}

fn chart(out: &mut String, pack: &Pack, findings: &Findings) {
    out.push_str("<h2 id=\"chart\">Events and gaps over time</h2>\n");
    let shown: Vec<(u64, u64)> = pack
        .events
        .iter()
        .filter(|(n, _)| findings.roles.get(*n) == Some(&Role::Selected))
        .map(|(n, e)| (*n, e.event.timestamp_ms()))
        .collect();
    let (Some(first), Some(last)) = (
        shown.iter().map(|(_, t)| *t).min(),
        shown.iter().map(|(_, t)| *t).max(),
    ) else {
        out.push_str("<p>No selected events.</p>\n");
        return;
    };
    let start = first / HOUR_MS * HOUR_MS;
    let hours = (last - start) / HOUR_MS + 1;
    let width_hours = hours.div_ceil(MAX_BARS).max(1);
    let bucket_ms = width_hours * HOUR_MS;
    let bars = hours.div_ceil(width_hours);
    let bucket = |t: u64| (t.saturating_sub(start) / bucket_ms).min(bars - 1);
    let mut events: BTreeMap<u64, u64> = BTreeMap::new();
    for (_, t) in &shown {
        *events.entry(bucket(*t)).or_default() += 1;
    }
    // A gap has no time of its own: it is drawn at the time of the first event after
    // it (or the last before it, at the end of the span).
    let mut gaps: BTreeMap<u64, u64> = BTreeMap::new();
    for (from, to) in &findings.missing {
        let after = pack.events.range(to.saturating_add(1)..).next();
        let before = pack.events.range(..*from).next_back();
        if let Some((_, e)) = after.or(before) {
            *gaps.entry(bucket(e.event.timestamp_ms())).or_default() += to - from + 1;
        }
    }
    let top = events
        .values()
        .chain(gaps.values())
        .copied()
        .max()
        .unwrap_or(1)
        .max(1);
    let (w, h, left, bottom) = (900u64, 240u64, 50u64, 40u64);
    let plot_w = w - left - 10;
    let plot_h = h - bottom - 10;
    let slot = (plot_w as f64) / (bars as f64);
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
         viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"selected events and missing \
         sequence numbers per {width_hours} hour(s)\">\n\
         <rect x=\"0\" y=\"0\" width=\"{w}\" height=\"{h}\" fill=\"#fbfcfe\"/>\n\
         <line x1=\"{left}\" y1=\"10\" x2=\"{left}\" y2=\"{}\" stroke=\"#888\"/>\n\
         <line x1=\"{left}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#888\"/>\n\
         <text x=\"{}\" y=\"16\" text-anchor=\"end\">{top}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\n",
        10 + plot_h,
        10 + plot_h,
        left + plot_w,
        10 + plot_h,
        left - 4,
        left - 4,
        10 + plot_h
    );
    let bar = |count: u64| (count as f64) * (plot_h as f64) / (top as f64);
    for b in 0..bars {
        let x = left as f64 + slot * b as f64;
        if let Some(count) = events.get(&b) {
            let bh = bar(*count);
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
                 fill=\"#2f6fdf\"><title>{}: {count} events</title></rect>",
                x,
                10.0 + plot_h as f64 - bh,
                (slot * 0.45).max(0.5),
                bh,
                time_text(start + b * bucket_ms)
            );
        }
        if let Some(count) = gaps.get(&b) {
            let bh = bar(*count);
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" \
                 fill=\"#d92d20\"><title>{}: {count} missing numbers</title></rect>",
                x + slot * 0.5,
                10.0 + plot_h as f64 - bh,
                (slot * 0.45).max(0.5),
                bh,
                time_text(start + b * bucket_ms)
            );
        }
    }
    let _ = write!(
        out,
        "<text x=\"{left}\" y=\"{}\">{}</text>\n<text x=\"{}\" y=\"{}\" \
         text-anchor=\"end\">{}</text>\n\
         <rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"#2f6fdf\"/>\
         <text x=\"{}\" y=\"{}\">events</text>\
         <rect x=\"{}\" y=\"{}\" width=\"10\" height=\"10\" fill=\"#d92d20\"/>\
         <text x=\"{}\" y=\"{}\">missing numbers</text>\n</svg>\n",
        h - 22,
        time_text(start),
        left + plot_w,
        h - 22,
        time_text(start + bars * bucket_ms),
        left + 200,
        h - 14,
        left + 214,
        h - 5,
        left + 300,
        h - 14,
        left + 314,
        h - 5
    );
    let _ = writeln!(
        out,
        "<p class=\"note\">One bar per {width_hours} hour(s) of the events' signed source \
         timestamps (UTC). Missing numbers have no timestamp; each gap is drawn at the time \
         of the first event after it (or the last before it).</p>"
    );
}

fn checks(out: &mut String, pack: &Pack) {
    out.push_str("<h2 id=\"checks\">What was checked, and how to check it again</h2>\n<ul>\n");
    let items = [
        "Every file's SHA-256 matches <code>manifest.json</code>, and the manifest and this \
         report are exactly what the verified contents produce: nothing was added, removed \
         or changed after export.",
        "Every event envelope's Ed25519 signature verifies under the source key in \
         <code>keys/source.vkey</code>: the holder of that key signed these bytes, with this \
         sequence number and timestamp.",
        "Every event's inclusion proof (<code>proofs/</code>, C2SP tlog-proof) leads to the \
         checkpoint's root: the log holds each event at the stated index.",
        "The checkpoint's signature verifies under the log key in <code>keys/log.vkey</code>; \
         with a policy (<code>keys/policy.txt</code>), the witnesses' cosignatures verify and \
         meet its quorum: the witnesses saw this tree.",
        "Every event's COSE receipt (<code>receipts/</code>, RFC 9942) verifies under the \
         receipt key in <code>keys/receipt.pub</code> and proves the event at the same size \
         and root as the checkpoint: the log's receipt key signed that tree.",
        "Each earlier checkpoint's consistency proof (<code>consistency/</code>) shows the \
         log only appended between it and this checkpoint.",
        "Completeness is recomputed from the events present: every sequence number judged is \
         either an event in the pack or declared unused by a signed declaration in it; \
         equivocations are two different envelopes for one number, both signed.",
    ];
    for item in items {
        let _ = writeln!(out, "<li>{item}</li>");
    }
    out.push_str("</ul>\n");
    let _ = write!(
        out,
        "<p>Re-run every check offline (no network, no server):</p>\n<pre><code>merklog \
         evidence verify PACK --log-key '{}'{}</code></pre>\n<p class=\"note\">Without \
         <code>--log-key</code> (and <code>--policy</code>) the keys in the pack are used, and \
         the output says so: pin the keys you obtained independently.</p>\n",
        escape(&pack.log_key_vkey()),
        if pack.policy_text.is_some() {
            " --policy POLICY-FILE"
        } else {
            ""
        }
    );
}

fn duties(out: &mut String) {
    out.push_str(
        "<h2 id=\"duties\">Record-keeping duties this evidence supports</h2>\n\
         <p>What the checks establish: the events in this pack were signed by the source key, \
         are held by the log at the stated positions under a signed (and, with witnesses, \
         cosigned) checkpoint, and the judged sequence numbers are complete or the missing \
         ones are named. What they do not establish: that an event's content is true, that \
         the source recorded everything it should have (completeness is only within the \
         source's own sequence numbers), that the source's clock is right (timestamps are the \
         source's own), or who controls the keys.</p>\n<table>\n<tr><th>Duty</th><th>How this \
         pack supports it</th></tr>\n\
         <tr><td>EU AI Act, Article 12 (record-keeping: automatic logging of events over the \
         system's lifetime)</td><td>Shows that the logged events of this source exist, are \
         unaltered since logging, and are traceable to the source key; missing numbers are \
         named.</td></tr>\n\
         <tr><td>EU AI Act, Article 19 (automatically generated logs kept by providers)</td>\
         <td>A self-contained, offline-verifiable copy of the logs for the selection, which a \
         provider can keep and hand over; retention itself is the keeper's duty.</td></tr>\n\
         <tr><td>EU AI Act, Article 26(6) (deployers keep the logs under their control)</td>\
         <td>The same copy, kept by the deployer; the log and witnesses let a third party check \
         it was not rewritten.</td></tr>\n\
         <tr><td>NIST AI RMF: GOVERN (accountability), MEASURE (traceability of records), \
         MANAGE (incident response and review)</td><td>Attributable, tamper-evident records \
         with explicit gaps, for review and incident analysis.</td></tr>\n</table>\n\
         <p class=\"note\">This mapping is an aid, not legal advice; whether a system's logging \
         meets a duty depends on what it logs and for how long.</p>\n",
    );
}

fn table(out: &mut String, pack: &Pack, findings: &Findings) {
    out.push_str("<h2 id=\"events\">Events</h2>\n");
    let total = pack.events.len();
    let shown: Vec<(&u64, &super::model::PackEvent)> = if total > MAX_TABLE_ROWS {
        let half = MAX_TABLE_ROWS / 2;
        let _ = writeln!(
            out,
            "<p class=\"note\">The first {half} and the last {half} of {total} events are \
             listed; every event is in <code>events/</code>.</p>"
        );
        pack.events
            .iter()
            .take(half)
            .chain(pack.events.iter().skip(total - half))
            .collect()
    } else {
        pack.events.iter().collect()
    };
    out.push_str(
        "<table><tr><th>Sequence</th><th>Index</th><th>Source timestamp (UTC)</th>\
         <th>Role</th><th>Media type</th><th>Payload bytes</th><th>Preview</th></tr>\n",
    );
    for (sequence, event) in shown {
        let e = &event.event;
        let role = findings.roles.get(sequence).map_or("", |r| r.word());
        let preview = match e.kind() {
            Ok(EventKind::Heartbeat) => "(heartbeat)".to_owned(),
            Ok(EventKind::Unused(r)) => format!("(declares {}..={} unused)", r.first, r.last),
            _ => preview(e.media_type(), e.payload())
                .map(|p| escape(&p))
                .unwrap_or_default(),
        };
        let _ = writeln!(
            out,
            "<tr><td>{sequence}</td><td>{}</td><td>{}</td><td>{role}</td><td><code>{}</code>\
             </td><td>{}</td><td class=\"mono\">{preview}</td></tr>",
            event.index,
            time_text(e.timestamp_ms()),
            escape(e.media_type()),
            e.payload().len()
        );
    }
    out.push_str("</table>\n");
}
