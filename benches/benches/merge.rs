//! Merge: `master` and a branch each edited a different 1 % of the same graph; merge the
//! branch into `master` with `MergePolicy::Ours` (three-way, field by field; the result is
//! hashed and loaded into the workspace). Each iteration merges a fresh copy of the prepared
//! repository; the copy is not timed. Throughput counts the objects of the graph.
//!
//! The 100k flat list (one object with 100 000 links) is merged only with `DSF_BENCH_WIDE=1`:
//! a single merge of it takes seconds.

mod common;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsf::{MergeOutcome, MergePolicy, Registry};
use dsf_benches::{DEFAULT_SEED, Shape, THEIRS, merge_fixture};

fn merge(c: &mut Criterion) {
    let registry = Registry::builtin();
    let mut group = common::group(c, "merge_1pct");
    let mut cases = vec![(Shape::Dataset, 10_000), (Shape::Dataset, 100_000), (Shape::FlatList, 10_000)];
    if common::wide() {
        cases.push((Shape::FlatList, 100_000));
    }
    for (shape, objects) in cases {
        let fixture = merge_fixture(&registry, shape, objects, DEFAULT_SEED).expect("merge fixture");
        let outcome = fixture.repo.clone().merge(THEIRS, MergePolicy::Ours).expect("merge");
        assert_eq!(outcome, MergeOutcome::Merged { conflicts: Vec::new() }, "disjoint edits merge cleanly");
        group.throughput(Throughput::Elements(objects as u64));
        group.bench_function(BenchmarkId::new(shape.name(), common::label(objects)), |b| {
            b.iter_batched(
                || fixture.repo.clone(),
                |mut repo| {
                    repo.merge(THEIRS, MergePolicy::Ours).expect("merge");
                    repo
                },
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = merge
}
criterion_main!(benches);
