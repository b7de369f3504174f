//! Checkout: load every object of a committed 100k-object graph into the workspace (the
//! previous checkout is dropped first). Everything is loaded, including the `ArrayStructure`
//! subtrees a repository excludes by default.

mod common;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsf::Registry;
use dsf::repository::MASTER;
use dsf_benches::{DEFAULT_SEED, Shape, committed, full_checkout};

const OBJECTS: usize = 100_000;

fn checkout(c: &mut Criterion) {
    let registry = Registry::builtin();
    let mut group = common::group(c, "checkout");
    group.throughput(Throughput::Elements(OBJECTS as u64));
    for shape in Shape::ALL {
        let (mut repo, _) = committed(&registry, shape, OBJECTS, DEFAULT_SEED).expect("committed graph");
        group.bench_function(BenchmarkId::new(shape.name(), common::label(OBJECTS)), |b| {
            b.iter(|| repo.checkout(full_checkout(MASTER)).expect("checkout"));
        });
        assert_eq!(repo.workspace_len(), OBJECTS, "the checkout loads every object");
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = checkout
}
criterion_main!(benches);
