//! The benchmark workloads: which steps a run has and what each one sends.
//!
//! | step | entries | pattern |
//! | --- | --- | --- |
//! | W1 | 64 B | 512 concurrent unary writers, one entry per call |
//! | W2/n | 256 B | unary, n = 1, 16, 64, 256 calls in flight |
//! | W3/k | 256 B | 16 unary writers, k = 100 and 1,000 entries per call |
//! | W4/s | 256 B | s = 1, 4, 16 append streams, 100 entries per request, 16 requests in flight each |
//! | W5/r | 2,350 B | open loop, one entry per call, r = 1k, 5k, 10k, 20k entries/s offered |
//! | W6/…@n | - | 64 readers, random inclusion (then consistency) proofs at tree size n = 10^6, 10^7 |
//! | R | 256 B | raw RocksDB alone, 256 entries per synced batch (the anchor) |
//!
//! Each write step runs merklog, then the echo with the same pattern, then raw
//! RocksDB with the step's entry size and merklog's measured entries per round as
//! the batch size. Each read step runs merklog, then the echo shaped for the same
//! tree size. `--quick` shortens every window, lowers the W5 rates and W6 sizes,
//! and checks every acknowledgement.

use std::time::Duration;

use crate::BenchError;
use crate::cli::{CustomMode, RunArgs};
use crate::reader::{ReadKind, ReadSpec};
use crate::rocks::RocksSpec;
use crate::writer::{Mode, WriteSpec};

/// Entries per stream request in W4 and in fills.
const STREAM_REQUEST_ENTRIES: usize = 100;
/// Requests in flight per stream in W4.
const STREAM_WINDOW: usize = 16;
/// Writers of W3.
const BATCH_WRITERS: usize = 16;
/// In-flight cap of the open-loop W5 scheduler.
const OPEN_LOOP_CAP: usize = 8192;
/// Longest a tree fill may take.
pub(crate) const FILL_LIMIT: Duration = Duration::from_secs(1800);

/// One planned step.
#[derive(Debug, Clone)]
pub struct StepPlan {
    /// Step id.
    pub id: String,
    /// Workload name.
    pub workload: &'static str,
    /// What it does.
    pub title: String,
    /// The target, if any.
    pub target: Option<&'static str>,
    /// Writers.
    pub write: Option<WriteSpec>,
    /// Readers.
    pub read: Option<ReadSpec>,
    /// Grow the tree to at least this size first.
    pub fill_to: Option<u64>,
    /// A RocksDB-only step.
    pub rocks_only: Option<RocksSpec>,
}

pub(crate) fn closed(writers: usize, entry_bytes: usize, per_call: usize, mode: Mode) -> WriteSpec {
    WriteSpec {
        writers,
        entry_bytes,
        per_call,
        mode,
        rate: None,
        budget: None,
        profile: false,
    }
}

fn step(id: String, workload: &'static str, title: String) -> StepPlan {
    StepPlan {
        id,
        workload,
        title,
        target: None,
        write: None,
        read: None,
        fill_to: None,
        rocks_only: None,
    }
}

/// The steps `args` asks for: the W1-W6 suite (and the RocksDB anchor), or one
/// custom step.
pub fn plan(args: &RunArgs) -> Result<Vec<StepPlan>, BenchError> {
    if let Some(mode) = args.mode {
        return custom_plan(args, mode).map(|s| vec![s]);
    }
    let wanted =
        |name: &str| args.only.is_empty() || args.only.iter().any(|w| w.eq_ignore_ascii_case(name));
    let readers = args.readers.unwrap_or(64);
    let mut steps = Vec::new();
    if wanted("W1") {
        let mut s = step("W1".into(), "W1", "64 B unary, 512 writers".into());
        s.write = Some(closed(512, 64, 1, Mode::Unary));
        s.target = Some(">= 15,000/s, >= 0.75x echo");
        steps.push(s);
    }
    if wanted("W2") {
        for n in [1, 16, 64, 256] {
            let mut s = step(
                format!("W2/{n}"),
                "W2",
                format!("256 B unary, {n} in flight"),
            );
            s.write = Some(closed(n, 256, 1, Mode::Unary));
            if n == 256 {
                s.target = Some(">= 15,000/s, >= 0.75x echo");
            }
            steps.push(s);
        }
    }
    if wanted("W3") {
        for k in [100, 1000] {
            let mut s = step(
                format!("W3/{k}"),
                "W3",
                format!("256 B, {k} per call, {BATCH_WRITERS} writers"),
            );
            s.write = Some(closed(BATCH_WRITERS, 256, k, Mode::Unary));
            if k == 1000 {
                s.target = Some(">= 200,000/s, >= 0.7x rocksdb");
            }
            steps.push(s);
        }
    }
    if wanted("W4") {
        for streams in [1, 4, 16] {
            let mut s = step(
                format!("W4/{streams}"),
                "W4",
                format!("256 B, {streams} streams × {STREAM_REQUEST_ENTRIES}/request"),
            );
            s.write = Some(closed(
                streams,
                256,
                STREAM_REQUEST_ENTRIES,
                Mode::Stream {
                    window: STREAM_WINDOW,
                },
            ));
            if streams == 16 {
                s.target = Some(">= 200,000/s");
            }
            steps.push(s);
        }
    }
    if wanted("W5") {
        let rates = if !args.w5_rates.is_empty() {
            args.w5_rates.clone()
        } else if args.quick {
            vec![50.0, 100.0, 200.0, 400.0]
        } else {
            vec![1000.0, 5000.0, 10_000.0, 20_000.0]
        };
        for rate in rates {
            let mut s = step(
                format!("W5/{}", rate_label(rate)),
                "W5",
                format!("2,350 B unary, open loop {}/s", rate_label(rate)),
            );
            s.write = Some(WriteSpec {
                rate: Some(rate),
                ..closed(OPEN_LOOP_CAP, 2350, 1, Mode::Unary)
            });
            if (rate - 10_000.0).abs() < 0.5 {
                s.target = Some("p99 < 20 ms");
            }
            steps.push(s);
        }
    }
    if wanted("W6") {
        let sizes = if !args.w6_sizes.is_empty() {
            args.w6_sizes.clone()
        } else if args.quick {
            vec![2000, 20_000]
        } else {
            vec![1_000_000, 10_000_000]
        };
        for size in sizes {
            for kind in [ReadKind::Inclusion, ReadKind::Consistency] {
                let name = match kind {
                    ReadKind::Inclusion => "inclusion",
                    ReadKind::Consistency => "consistency",
                };
                let mut s = step(
                    format!("W6/{name}@{}", size_label(size)),
                    "W6",
                    format!(
                        "{name} proofs, {readers} readers, tree {}",
                        size_label(size)
                    ),
                );
                s.read = Some(ReadSpec {
                    readers,
                    kind,
                    emulated_size: Some(size),
                });
                if kind == ReadKind::Inclusion {
                    s.fill_to = Some(size);
                    if size >= 10_000_000 {
                        s.target = Some(">= 15,000/s");
                    }
                }
                steps.push(s);
            }
        }
    }
    if wanted("R") {
        let mut s = step(
            "R".into(),
            "R",
            "rocksdb alone, 256 B × 256 per sync".into(),
        );
        s.rocks_only = Some(RocksSpec {
            entry_bytes: 256,
            batch: 256,
        });
        s.target = Some("anchor: ~82,000/s");
        steps.push(s);
    }
    if steps.is_empty() {
        return Err(BenchError::Usage(format!(
            "--only {:?} names no workload (W1..W6, R)",
            args.only
        )));
    }
    Ok(steps)
}

fn custom_plan(args: &RunArgs, mode: CustomMode) -> Result<StepPlan, BenchError> {
    if args.bytes < crate::payload::HEADER_BYTES {
        return Err(BenchError::Usage(format!(
            "--bytes must be at least {} (entries carry a unique header)",
            crate::payload::HEADER_BYTES
        )));
    }
    let mut s = step("custom".into(), "custom", String::new());
    let read = |readers: usize| ReadSpec {
        readers,
        kind: args.read_kind.into(),
        emulated_size: None,
    };
    match mode {
        CustomMode::Read => {
            s.read = Some(read(args.readers.unwrap_or(64)));
            s.title = format!("{:?} readers", args.read_kind);
        }
        CustomMode::Unary | CustomMode::Stream | CustomMode::Otlp => {
            let mode = match mode {
                CustomMode::Unary => Mode::Unary,
                CustomMode::Otlp => Mode::Otlp {
                    gzip: !args.otlp_uncompressed,
                },
                _ => Mode::Stream {
                    window: args.window,
                },
            };
            s.write = Some(WriteSpec {
                rate: args.rate,
                profile: args.profile,
                ..closed(args.writers, args.bytes, args.per_call, mode)
            });
            s.title = format!(
                "{} B{}, {} {:?} writers × {}/call{}",
                args.bytes,
                if args.profile {
                    " profile documents"
                } else {
                    ""
                },
                args.writers,
                mode,
                args.per_call,
                args.rate.map(|r| format!(", {r}/s")).unwrap_or_default()
            );
            if let Some(readers) = args.readers.filter(|r| *r > 0) {
                s.read = Some(read(readers));
            }
        }
    }
    Ok(s)
}

fn rate_label(rate: f64) -> String {
    if rate >= 1000.0 && (rate / 1000.0).fract() == 0.0 {
        format!("{}k", rate / 1000.0)
    } else {
        format!("{rate}")
    }
}

fn size_label(size: u64) -> String {
    let exponent = (size as f64).log10();
    if size >= 1000 && 10u64.checked_pow(exponent.round() as u32) == Some(size) {
        format!("10^{}", exponent.round())
    } else {
        size.to_string()
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser as _;

    fn args(argv: &[&str]) -> RunArgs {
        crate::Cli::try_parse_from(std::iter::once("merklog-hammer").chain(argv.iter().copied()))
            .unwrap()
            .run
    }

    #[test]
    fn the_full_suite_has_every_workload() {
        let steps = plan(&args(&[])).unwrap();
        let ids: Vec<&str> = steps.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "W1",
                "W2/1",
                "W2/16",
                "W2/64",
                "W2/256",
                "W3/100",
                "W3/1000",
                "W4/1",
                "W4/4",
                "W4/16",
                "W5/1k",
                "W5/5k",
                "W5/10k",
                "W5/20k",
                "W6/inclusion@10^6",
                "W6/consistency@10^6",
                "W6/inclusion@10^7",
                "W6/consistency@10^7",
                "R"
            ]
        );
        let w5 = steps.iter().find(|s| s.id == "W5/10k").unwrap();
        let write = w5.write.as_ref().unwrap();
        assert_eq!((write.entry_bytes, write.rate), (2350, Some(10_000.0)));
        assert_eq!(w5.target, Some("p99 < 20 ms"));
        let w6 = steps.iter().find(|s| s.id == "W6/inclusion@10^7").unwrap();
        assert_eq!(w6.fill_to, Some(10_000_000));
    }

    #[test]
    fn quick_and_filters_and_custom_steps() {
        let steps = plan(&args(&["--quick", "--only", "w5,W6"])).unwrap();
        assert_eq!(steps.len(), 4 + 4);
        assert_eq!(steps[0].write.as_ref().unwrap().rate, Some(50.0));
        assert_eq!(steps[4].fill_to, Some(2000));
        assert!(plan(&args(&["--only", "W9"])).is_err());

        let custom = plan(&args(&[
            "--mode",
            "stream",
            "--writers",
            "3",
            "--per-call",
            "10",
            "--readers",
            "2",
        ]))
        .unwrap();
        assert_eq!(custom.len(), 1);
        let write = custom[0].write.as_ref().unwrap();
        assert_eq!(write.mode, Mode::Stream { window: 16 });
        assert_eq!(custom[0].read.unwrap().readers, 2);
        assert!(plan(&args(&["--mode", "unary", "--bytes", "8"])).is_err());
    }

    #[test]
    fn labels() {
        assert_eq!(rate_label(10_000.0), "10k");
        assert_eq!(rate_label(50.0), "50");
        assert_eq!(size_label(10_000_000), "10^7");
        assert_eq!(size_label(2000), "2000");
    }
}
