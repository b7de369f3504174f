//! Diff: the field-level differences between two commits of a graph that differ in 1 % of
//! its objects. Throughput counts the objects of the graph.

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsf::Registry;
use dsf_benches::{DEFAULT_SEED, Shape, diff_fixture};

fn diff(c: &mut Criterion) {
    let registry = Registry::builtin();
    let mut group = common::group(c, "diff_1pct");
    for shape in Shape::ALL {
        for objects in [10_000, 100_000] {
            let fixture = diff_fixture(&registry, shape, objects, DEFAULT_SEED).expect("diff fixture");
            let changes = fixture.repo.diff(fixture.from, fixture.to).expect("diff");
            assert!(changes.len() >= fixture.changed, "the diff sees every edited object");
            group.throughput(Throughput::Elements(objects as u64));
            group.bench_function(BenchmarkId::new(shape.name(), common::label(objects)), |b| {
                b.iter(|| fixture.repo.diff(fixture.from, fixture.to).expect("diff"));
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = diff
}
criterion_main!(benches);
