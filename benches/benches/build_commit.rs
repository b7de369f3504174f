//! Build and commit: create a new graph object by object in an empty repository's workspace,
//! set its root and commit it (every object encoded, rewritten with its children's keys,
//! hashed and stored as an element). Both shapes, 1k, 10k and 100k objects.

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsf::Registry;
use dsf_benches::{COMMIT_DATE, DEFAULT_SEED, Shape, build_and_commit, new_repository};

fn build_commit(c: &mut Criterion) {
    let registry = Registry::builtin();
    let mut group = common::group(c, "build_commit");
    for shape in Shape::ALL {
        for objects in common::SIZES {
            group.throughput(Throughput::Elements(objects as u64));
            group.bench_function(BenchmarkId::new(shape.name(), common::label(objects)), |b| {
                b.iter_with_large_drop(|| {
                    let mut repo = new_repository(&registry);
                    build_and_commit(&mut repo, shape, objects, DEFAULT_SEED, COMMIT_DATE).expect("build and commit");
                    repo
                });
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = build_commit
}
criterion_main!(benches);
