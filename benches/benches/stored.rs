//! The in-memory workloads on graphs stored on RocksDB (default options: synced writes, LZ4,
//! bloom filters, a 64 MiB block cache), in a temporary folder:
//!
//! - `stored_commit`: build a graph in memory (untimed), then commit it into a
//!   `StoredRepository` (hashing and the save's synced write batch);
//! - `stored_checkout`: open the repository (heads and commits) and check out every object,
//!   fetching and verifying each element from the store;
//! - `stored_diff_1pct`: open, fetch both commits' graphs from the store, diff them;
//! - `stored_merge_1pct`: open, fetch the base, `theirs` and `master` from the store, merge.
//!
//! Throughput is objects of the graph per second. In a debug build (`cargo test --all-targets`
//! runs each bench once) the 100k cases are left out, saying so.

mod common;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsf::repository::MASTER;
use dsf::store::persist::StoredRepository;
use dsf::{Checkout, HashAlgorithm, Key, MergeOutcome, MergePolicy, Registry, Repository};
use dsf_benches::{
    COMMIT_DATE, DEFAULT_SEED, REPOSITORY_KEY, Shape, THEIRS, diff_fixture, full_checkout, merge_fixture,
};
use dsf_store_backends::rocks::RocksStore;
use tempfile::TempDir;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}

/// A fresh store in a temporary folder (removed on drop).
fn store() -> (TempDir, RocksStore) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = RocksStore::open(dir.path()).expect("RocksStore::open");
    (dir, store)
}

/// Saves every element and commit of `repo` into `store`.
fn save(rt: &tokio::runtime::Runtime, store: &RocksStore, repo: Repository) {
    rt.block_on(async {
        let mut stored = StoredRepository::create(store, repo);
        stored.save().await.expect("save")
    });
}

/// Opens the stored repository.
async fn open<'s>(store: &'s RocksStore, registry: &Registry) -> StoredRepository<'s, RocksStore> {
    StoredRepository::open(store, registry.clone(), REPOSITORY_KEY).await.expect("open").expect("the repository")
}

/// Opens the repository and checks out everything on `master`; the objects loaded.
async fn checkout(store: &RocksStore, registry: &Registry) -> usize {
    let mut stored = open(store, registry).await;
    stored.checkout(full_checkout(MASTER)).await.expect("checkout");
    stored.repository().workspace_len()
}

/// Opens the repository, fetches both commits' graphs, diffs them; the changes found.
async fn diff(store: &RocksStore, registry: &Registry, from: Key, to: Key) -> usize {
    let mut stored = open(store, registry).await;
    for commit in [from, to] {
        stored.checkout(Checkout::branch(MASTER).commit(commit).excluded_types([])).await.expect("fetch");
    }
    stored.repository().diff(from, to).expect("diff").len()
}

/// Opens the repository, fetches the base, `theirs` and `master`, merges `theirs` into
/// `master` (not saved).
async fn merge(store: &RocksStore, registry: &Registry, base: Key) -> MergeOutcome {
    let mut stored = open(store, registry).await;
    stored.checkout(Checkout::branch(MASTER).commit(base).excluded_types([])).await.expect("base");
    stored.checkout(full_checkout(THEIRS)).await.expect("theirs");
    stored.checkout(full_checkout(MASTER)).await.expect("ours");
    stored.repository_mut().merge(THEIRS, MergePolicy::Ours).expect("merge")
}

/// Shapes and sizes: both shapes at 1k and 10k, the dataset at 100k, the flat list at 100k
/// only with `DSF_BENCH_WIDE=1` when `wide_100k` (its build and commit take seconds).
fn cases(wide_100k: bool) -> Vec<(Shape, usize)> {
    let mut cases = Vec::new();
    for shape in Shape::ALL {
        for objects in common::SIZES {
            if objects < 100_000 || shape == Shape::Dataset || !wide_100k || common::wide() {
                cases.push((shape, objects));
            }
        }
    }
    release_only_100k(cases)
}

/// Leaves the 100k cases out of a debug build (`cargo test --all-targets` runs every bench
/// once, unoptimised), saying so.
fn release_only_100k(cases: Vec<(Shape, usize)>) -> Vec<(Shape, usize)> {
    cases
        .into_iter()
        .filter(|(shape, objects)| {
            let keep = *objects < 100_000 || !cfg!(debug_assertions);
            if !keep {
                eprintln!("stored: {}/{objects} left out of this debug build (release only)", shape.name());
            }
            keep
        })
        .collect()
}

fn stored_commit(c: &mut Criterion) {
    let rt = runtime();
    let registry = Registry::builtin();
    let (_dir, store) = store();
    let mut group = common::group(c, "stored_commit");
    for (shape, objects) in cases(true) {
        group.throughput(Throughput::Elements(objects as u64));
        let mut round = 0u64;
        group.bench_function(BenchmarkId::new(shape.name(), common::label(objects)), |b| {
            b.iter_batched(
                || {
                    // A new repository and new content every iteration: nothing is stored yet.
                    round += 1;
                    let key = format!("{REPOSITORY_KEY}-{}-{objects}-{round}", shape.name());
                    let mut repo = Repository::with_key(registry.clone(), &key, HashAlgorithm::Sha1);
                    let root = shape.build(&mut repo, objects, DEFAULT_SEED + round).expect("build");
                    repo.set_root(root).expect("root");
                    repo
                },
                |repo| {
                    rt.block_on(async {
                        let mut stored = StoredRepository::create(&store, repo);
                        stored.commit_at("stored", COMMIT_DATE).await.expect("commit and save")
                    })
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
}

fn stored_checkout(c: &mut Criterion) {
    let rt = runtime();
    let registry = Registry::builtin();
    let mut group = common::group(c, "stored_checkout");
    for (shape, objects) in cases(true) {
        let (_dir, store) = store();
        let (repo, _) = dsf_benches::committed(&registry, shape, objects, DEFAULT_SEED).expect("committed graph");
        save(&rt, &store, repo);
        assert_eq!(rt.block_on(checkout(&store, &registry)), objects, "the checkout loads every object");
        group.throughput(Throughput::Elements(objects as u64));
        group.bench_function(BenchmarkId::new(shape.name(), common::label(objects)), |b| {
            b.iter(|| rt.block_on(checkout(&store, &registry)));
        });
    }
    group.finish();
}

fn stored_diff(c: &mut Criterion) {
    let rt = runtime();
    let registry = Registry::builtin();
    let mut group = common::group(c, "stored_diff_1pct");
    for (shape, objects) in
        release_only_100k(Shape::ALL.into_iter().flat_map(|s| [(s, 10_000), (s, 100_000)]).collect())
    {
        let fixture = diff_fixture(&registry, shape, objects, DEFAULT_SEED).expect("diff fixture");
        let (from, to, changed) = (fixture.from, fixture.to, fixture.changed);
        let (_dir, store) = store();
        save(&rt, &store, fixture.repo);
        assert!(rt.block_on(diff(&store, &registry, from, to)) >= changed, "the diff sees every edited object");
        group.throughput(Throughput::Elements(objects as u64));
        group.bench_function(BenchmarkId::new(shape.name(), common::label(objects)), |b| {
            b.iter(|| rt.block_on(diff(&store, &registry, from, to)));
        });
    }
    group.finish();
}

fn stored_merge(c: &mut Criterion) {
    let rt = runtime();
    let registry = Registry::builtin();
    let mut group = common::group(c, "stored_merge_1pct");
    let mut cases = vec![(Shape::Dataset, 10_000), (Shape::Dataset, 100_000), (Shape::FlatList, 10_000)];
    if common::wide() {
        cases.push((Shape::FlatList, 100_000));
    }
    for (shape, objects) in release_only_100k(cases) {
        let fixture = merge_fixture(&registry, shape, objects, DEFAULT_SEED).expect("merge fixture");
        let base = fixture.base;
        let (_dir, store) = store();
        save(&rt, &store, fixture.repo);
        let outcome = rt.block_on(merge(&store, &registry, base));
        assert_eq!(outcome, MergeOutcome::Merged { conflicts: Vec::new() }, "disjoint edits merge cleanly");
        group.throughput(Throughput::Elements(objects as u64));
        group.bench_function(BenchmarkId::new(shape.name(), common::label(objects)), |b| {
            b.iter(|| rt.block_on(merge(&store, &registry, base)));
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = stored_commit, stored_checkout, stored_diff, stored_merge
}
criterion_main!(benches);
