//! Settings shared by the DSF benches: few samples, a short warm-up, flat sampling (the same
//! iteration count in every sample, so a workload of seconds is run ten times, not 55), and the
//! graph sizes.

// Each bench uses a part of this module.
#![allow(dead_code)]

use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, SamplingMode};

/// Graph sizes, in objects.
pub const SIZES: [usize; 3] = [1_000, 10_000, 100_000];

/// The criterion configuration of every bench (command-line options still apply).
pub fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

/// A benchmark group with flat sampling.
pub fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut group = c.benchmark_group(name);
    group.sampling_mode(SamplingMode::Flat);
    group
}

/// `1k`, `10k`, `100k`: the size part of a bench id.
pub fn label(objects: usize) -> String {
    match objects {
        n if n >= 1000 && n % 1000 == 0 => format!("{}k", n / 1000),
        n => n.to_string(),
    }
}

/// True when `DSF_BENCH_WIDE=1`: also run the workloads whose single iteration takes seconds
/// (merge of a 100 000-item flat list).
pub fn wide() -> bool {
    std::env::var("DSF_BENCH_WIDE").is_ok_and(|v| v == "1")
}
