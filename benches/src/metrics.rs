//! Reading merklogd's Prometheus endpoint: how busy the sequencer was and how much
//! of each round was the synced write (the `merklog_round_*` histograms of
//! `merklog-log`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Largest metrics page read.
const MAX_PAGE_BYTES: u64 = 8 << 20;

/// The sequencer counters the hammer reads.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RoundCounters {
    /// Rounds completed.
    pub rounds: f64,
    /// Entries integrated by those rounds.
    pub entries: f64,
    /// Seconds spent in rounds (from taking a batch to publishing).
    pub round_seconds: f64,
    /// Seconds spent in the synced writes of those rounds.
    pub commit_seconds: f64,
}

impl RoundCounters {
    /// The counters accumulated between `self` (earlier) and `later`.
    pub fn since(&self, later: &RoundCounters) -> RoundCounters {
        RoundCounters {
            rounds: later.rounds - self.rounds,
            entries: later.entries - self.entries,
            round_seconds: later.round_seconds - self.round_seconds,
            commit_seconds: later.commit_seconds - self.commit_seconds,
        }
    }
}

/// Sums every sample of each metric name in a Prometheus text page (labels ignored).
pub fn parse(page: &str) -> HashMap<String, f64> {
    let mut sums = HashMap::new();
    for line in page.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series).trim();
        if let Ok(value) = value.trim().parse::<f64>() {
            *sums.entry(name.to_owned()).or_insert(0.0) += value;
        }
    }
    sums
}

/// Fetches `/metrics` (HTTP/1.1, bounded in time and size) and reads the round
/// counters; `None` if the endpoint cannot be read.
pub async fn scrape(addr: SocketAddr) -> Option<RoundCounters> {
    let fetch = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut body = Vec::new();
        stream
            .take(MAX_PAGE_BYTES)
            .read_to_end(&mut body)
            .await
            .ok()?;
        Some(String::from_utf8_lossy(&body).into_owned())
    };
    let page = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .ok()??;
    let sums = parse(&page);
    let get = |name: &str| sums.get(name).copied().unwrap_or(0.0);
    Some(RoundCounters {
        rounds: get("merklog_round_seconds_count"),
        entries: get("merklog_round_batch_entries_sum"),
        round_seconds: get("merklog_round_seconds_sum"),
        commit_seconds: get("merklog_round_commit_seconds_sum"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_series_across_labels_and_skips_comments() {
        let page = "# HELP x\n# TYPE merklog_rounds_total counter\n\
            merklog_rounds_total{result=\"ok\"} 10\n\
            merklog_rounds_total{result=\"failed\"} 2\n\
            merklog_round_seconds_sum 1.5\n\
            merklog_round_seconds_count 12\n\
            garbage\n";
        let sums = parse(page);
        assert_eq!(sums["merklog_rounds_total"], 12.0);
        assert_eq!(sums["merklog_round_seconds_sum"], 1.5);
        let before = RoundCounters {
            rounds: 2.0,
            ..RoundCounters::default()
        };
        let after = RoundCounters {
            rounds: 12.0,
            round_seconds: 1.5,
            ..RoundCounters::default()
        };
        assert_eq!(before.since(&after).rounds, 10.0);
    }
}
