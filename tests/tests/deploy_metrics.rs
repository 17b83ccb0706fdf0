//! The Grafana dashboard and the Prometheus alert rules under `deploy/` name only
//! metrics that merklogd and merklog-witness really export: every metric name in
//! their expressions must appear in a live scrape of both daemons (after appends
//! and witness rounds) or in [`NOT_OURS`] with the reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;

use bytes::Bytes;
use merklog_e2e::witnesses::{WitnessProcess, WitnessSetup, policy_all_of, prepare_log_key};
use merklog_e2e::{Daemon, connect};
use merklog_proto::v1;

const ORIGIN: &str = "metrics.example/log";

/// Metrics the files use that another exporter provides.
const NOT_OURS: [(&str, &str); 5] = [
    (
        "node_filesystem_avail_bytes",
        "node exporter: disk use of /var/lib/merklog on a host (systemd install)",
    ),
    (
        "node_filesystem_size_bytes",
        "node exporter: disk use of /var/lib/merklog on a host (systemd install)",
    ),
    (
        "kubelet_volume_stats_available_bytes",
        "the kubelet's volume statistics: disk use of the data volume on Kubernetes",
    ),
    (
        "kubelet_volume_stats_capacity_bytes",
        "the kubelet's volume statistics: disk use of the data volume on Kubernetes",
    ),
    (
        "up",
        "Prometheus's own scrape health series of every target",
    ),
];

/// Metrics of merklogd that get their first sample only when the event happens
/// (the `metrics` facade registers a series at its first update), so a healthy
/// scrape lacks them; each must be one of the log's metric name constants.
const ON_EVENT: [(&str, &str); 3] = [
    (
        "merklog_signing_refused",
        "set when the log first refuses to sign",
    ),
    (
        "merklog_witness_refusing",
        "set per witness when one first refuses the log",
    ),
    (
        "merklog_witness_refusals_total",
        "counted when a witness begins refusing the log",
    ),
];

/// PromQL words that look like metric names.
const PROMQL_WORDS: [&str; 12] = [
    "histogram_quantile",
    "rate",
    "irate",
    "increase",
    "sum",
    "max",
    "min",
    "by",
    "without",
    "delta",
    "deriv",
    "changes",
];

/// Metric names in a PromQL expression: identifiers outside `{...}` label
/// matchers and `by (...)` groupings that are not PromQL words, numbers or
/// durations.
fn metric_names(expr: &str, out: &mut BTreeSet<String>) {
    let mut cleaned = String::new();
    let mut depth = 0usize;
    for c in expr.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            '"' if depth > 0 => {}
            _ if depth == 0 => cleaned.push(c),
            _ => {}
        }
    }
    // Drop the label lists of `by (...)`, `without (...)`, `on (...)`, `ignoring (...)`.
    let mut text = cleaned;
    for word in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        while let Some(at) = find_word_then_paren(&text, word) {
            let close = text[at..]
                .find(')')
                .map(|i| at + i + 1)
                .unwrap_or(text.len());
            text.replace_range(at..close, " ");
        }
    }
    // Drop range selectors (`[5m]`).
    let mut plain = String::new();
    let mut in_range = false;
    for c in text.chars() {
        match c {
            '[' => in_range = true,
            ']' => in_range = false,
            _ if !in_range => plain.push(c),
            _ => {}
        }
    }
    for token in plain.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')) {
        let starts_alpha = token
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic());
        if starts_alpha && !PROMQL_WORDS.contains(&token) && !is_keyword(token) {
            out.insert(token.to_owned());
        }
    }
}

fn is_keyword(token: &str) -> bool {
    matches!(
        token,
        "and"
            | "or"
            | "unless"
            | "bool"
            | "offset"
            | "avg"
            | "count"
            | "topk"
            | "abs"
            | "vector"
            | "clamp_min"
            | "clamp_max"
            | "avg_over_time"
            | "max_over_time"
            | "min_over_time"
            | "time"
            | "absent"
            | "label_replace"
            | "scalar"
    )
}

/// Where `word` starts, followed by optional spaces and `(`.
fn find_word_then_paren(text: &str, word: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = text[from..].find(word) {
        let at = from + i;
        let before_ok = at == 0
            || !text[..at]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        let rest = text[at + word.len()..].trim_start();
        if before_ok && rest.starts_with('(') {
            return Some(at);
        }
        from = at + word.len();
    }
    None
}

/// Every PromQL expression of the dashboards (`"expr"` keys) and alert rules
/// (`expr:` keys) under deploy/.
fn deploy_expressions() -> Vec<(String, String)> {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy");
    let mut exprs = Vec::new();
    for entry in std::fs::read_dir(deploy.join("grafana")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let json: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            collect_json(&json, &path, &mut exprs);
        }
    }
    for entry in std::fs::read_dir(deploy.join("prometheus")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        // Rule files only; the scrape configuration and promtool's test file
        // hold no expressions of ours.
        if name.ends_with(".yaml") && !name.contains("test") && name != "prometheus.yaml" {
            let text = std::fs::read_to_string(&path).unwrap();
            let lines: Vec<&str> = text.lines().collect();
            for (i, line) in lines.iter().enumerate() {
                let Some(rest) = line.trim_start().strip_prefix("expr:") else {
                    continue;
                };
                let mut expr = rest.trim().to_owned();
                if expr.starts_with('|') || expr.starts_with('>') || expr.is_empty() {
                    // A block scalar: the more-indented lines that follow.
                    let indent = line.len() - line.trim_start().len();
                    expr = lines[i + 1..]
                        .iter()
                        .take_while(|l| {
                            l.trim().is_empty() || l.len() - l.trim_start().len() > indent
                        })
                        .map(|l| l.trim())
                        .collect::<Vec<_>>()
                        .join(" ");
                }
                exprs.push((format!("{name}:{}", i + 1), expr));
            }
        }
    }
    assert!(!exprs.is_empty(), "no expressions found under deploy/");
    exprs
}

fn collect_json(value: &serde_json::Value, path: &Path, out: &mut Vec<(String, String)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if key == "expr" {
                    if let Some(expr) = value.as_str() {
                        out.push((path.display().to_string(), expr.to_owned()));
                    }
                } else {
                    collect_json(value, path, out);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                collect_json(item, path, out);
            }
        }
        _ => {}
    }
}

/// The metric names of a Prometheus text scrape (with the `_bucket`, `_sum` and
/// `_count` series of histograms and summaries).
fn scraped_names(text: &str, out: &mut BTreeSet<String>) {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let end = line.find(['{', ' ']).unwrap_or(line.len());
        out.insert(line[..end].to_owned());
    }
}

#[test]
fn the_extraction_finds_metric_names_only() {
    let mut names = BTreeSet::new();
    metric_names(
        "histogram_quantile(0.99, sum by (le) (rate(merklog_a_bucket{job=\"x\", code=~\"OK|DATA_LOSS\"}[5m]))) > 0.5 and on (instance) up == 1",
        &mut names,
    );
    let expected: BTreeSet<String> = ["merklog_a_bucket", "up"].map(str::to_owned).into();
    assert_eq!(names, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_and_alerts_use_only_exported_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("log-data");
    let log_vkey = prepare_log_key(&data_dir, ORIGIN);
    let setups = [
        WitnessSetup::create(dir.path(), "w1", "w1.example/witness", ORIGIN, &log_vkey),
        WitnessSetup::create(dir.path(), "w2", "w2.example/witness", ORIGIN, &log_vkey),
    ];
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let witnesses = [
        WitnessProcess::start(&setups[0], any),
        WitnessProcess::start(&setups[1], any),
    ];
    let policy_path = dir.path().join("policy.txt");
    std::fs::write(
        &policy_path,
        policy_all_of(
            &log_vkey,
            &[
                (&setups[0], witnesses[0].url()),
                (&setups[1], witnesses[1].url()),
            ],
        ),
    )
    .unwrap();
    let daemon = Daemon::start(
        &data_dir,
        &[
            "--origin",
            ORIGIN,
            "--policy",
            policy_path.to_str().unwrap(),
            "--witness-timeout",
            "1s",
        ],
    );
    let mut client = connect(&daemon.grpc_url()).await.unwrap();
    for round in 0..3 {
        let entries = (0..5)
            .map(|i| Bytes::from(format!("metrics-{round}-{i}")))
            .collect();
        client
            .append(v1::AppendRequest {
                entries,
                include_tlog_proof: true,
            })
            .await
            .unwrap();
    }
    client
        .get_checkpoint(v1::GetCheckpointRequest {})
        .await
        .unwrap();
    let mut exported = BTreeSet::new();
    let mut scrapes = Vec::new();
    for url in [
        format!("http://{}/metrics", daemon.addrs.metrics),
        format!("{}/metrics", witnesses[0].url()),
    ] {
        let text = reqwest::get(&url).await.unwrap().text().await.unwrap();
        scraped_names(&text, &mut exported);
        scrapes.push(text);
    }
    if std::env::var_os("MERKLOG_PRINT_SCRAPE").is_some() {
        eprintln!("{}", scrapes.join("\n"));
    }
    let constants = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/log/src/metrics.rs"),
    )
    .unwrap();
    for (name, reason) in ON_EVENT {
        assert!(
            constants.contains(&format!("\"{name}\"")),
            "{name} ({reason}) is not a metric of merklog-log"
        );
    }
    let mut missing = Vec::new();
    for (place, expr) in deploy_expressions() {
        let mut used = BTreeSet::new();
        metric_names(&expr, &mut used);
        assert!(!used.is_empty(), "{place}: no metric in {expr:?}");
        for name in used {
            let listed = NOT_OURS.iter().chain(&ON_EVENT).any(|(n, _)| *n == name);
            if !exported.contains(&name) && !listed {
                missing.push(format!("{place}: {name} (in {expr})"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "metrics used under deploy/ that no daemon exports:\n{}\n\nexported:\n{}",
        missing.join("\n"),
        exported.into_iter().collect::<Vec<_>>().join("\n")
    );
}
