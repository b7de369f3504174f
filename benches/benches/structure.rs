//! `Structure` pack and unpack of a message repository (an `IonMsg` linking a dataset) of 1k
//! and 10k elements: pack encodes the root and every reachable element once; unpack decodes,
//! verifies every key over the bytes received, loads the graph and commits it locally.

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsf::Registry;
use dsf::structure::{pack, unpack};
use dsf_benches::{DEFAULT_SEED, message_repository};

fn structure(c: &mut Criterion) {
    let registry = Registry::builtin();
    let mut group = common::group(c, "structure");
    for elements in [1_000, 10_000] {
        let repo = message_repository(&registry, elements, DEFAULT_SEED).expect("message repository");
        let packed = pack(&repo, &[]).expect("pack");
        eprintln!("structure: {elements} elements pack into {} bytes", packed.len());
        group.throughput(Throughput::Elements(elements as u64));
        group.bench_function(BenchmarkId::new("pack", common::label(elements)), |b| {
            b.iter(|| pack(&repo, &[]).expect("pack"));
        });
        group.bench_function(BenchmarkId::new("unpack", common::label(elements)), |b| {
            b.iter_with_large_drop(|| unpack(&registry, &packed, &[]).expect("unpack"));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = structure
}
criterion_main!(benches);
