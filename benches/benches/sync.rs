//! Push, pull and clone of stored graphs between an in-memory client and a datastore on RocksDB
//! (default options: synced writes), over gRPC on loopback and over AMQP through the broker
//! named by `DSF_AMQP_URL` (required: the bench fails, saying so, without it).
//!
//! - `sync_push_{grpc,amqp}`: push a new repository (new content every iteration, built
//!   untimed) until the datastore has stored it;
//! - `sync_clone_{grpc,amqp}`: clone a stored repository with its heads' content, everything
//!   included (no excluded types);
//! - `sync_pull_1pct_{grpc,amqp}`: pull into a clone of the first commit the second commit,
//!   which changed 1 % of the objects.
//!
//! Throughput is objects of the graph per second (for pull, of the whole graph, as the diff
//! bench counts). In a debug build (`cargo test --all-targets` runs each bench once) the 100k
//! cases are left out, saying so: a debug datastore takes longer than the AMQP timeout to store
//! them.

mod common;

use std::sync::Arc;

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dsf::{HashAlgorithm, Registry, Repository};
use dsf_benches::{COMMIT_DATE, DEFAULT_SEED, REPOSITORY_KEY, Shape, build_and_commit, committed_as, diff_fixture_as};
use dsf_container::amqp::{Container, ContainerConfig};
use dsf_container::client::AmqpClient;
use dsf_container::datastore::Datastore;
use dsf_container::datastore::service::{DatastoreService, SERVICE};
use dsf_container::grpc::GrpcClient;
use dsf_store_backends::rocks::RocksStore;
use tempfile::TempDir;

/// A client of a datastore on RocksDB, over one transport.
enum Client {
    Grpc(GrpcClient),
    Amqp(AmqpClient),
}

impl Client {
    async fn push(&self, repo: &Repository) {
        match self {
            Client::Grpc(c) => drop(c.push(repo).await.expect("push over gRPC")),
            Client::Amqp(c) => c.push(repo).await.expect("push over AMQP"),
        }
    }

    async fn clone_repository(&self, key: &str) -> Repository {
        match self {
            Client::Grpc(c) => c.clone_repository(key, true, Some(Vec::new())).await.expect("clone over gRPC"),
            Client::Amqp(c) => c.clone_repository(key, true, Some(Vec::new())).await.expect("clone over AMQP"),
        }
    }

    async fn pull(&self, repo: &mut Repository) {
        match self {
            Client::Grpc(c) => drop(c.pull(repo, true, Some(Vec::new())).await.expect("pull over gRPC")),
            Client::Amqp(c) => c.pull(repo, true, Some(Vec::new())).await.expect("pull over AMQP"),
        }
    }
}

/// A datastore on a fresh RocksDB folder and a client of it; dropping it stops the server.
struct Service {
    client: Client,
    _container: Option<Container>,
    _stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: TempDir,
}

fn datastore() -> (TempDir, Datastore<RocksStore>) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = RocksStore::open(dir.path()).expect("RocksStore::open");
    (dir, Datastore::new(Arc::new(store), Registry::builtin()))
}

async fn grpc_service() -> Service {
    let (dir, ds) = datastore();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("the bound address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(dsf_container::grpc::serve(Arc::new(ds), listener, async move {
        let _ = stopped.await;
    }));
    let client = GrpcClient::connect(&url, Registry::builtin()).await.expect("a gRPC connection");
    Service { client: Client::Grpc(client), _container: None, _stop: Some(stop), _dir: dir }
}

async fn amqp_service() -> Service {
    let broker = std::env::var("DSF_AMQP_URL").unwrap_or_else(|_| {
        panic!("the sync benches need a RabbitMQ broker: set DSF_AMQP_URL (e.g. amqp://guest:guest@127.0.0.1:5672/%2f)")
    });
    let (dir, ds) = datastore();
    let sysname = format!("bench-sync-{}", std::process::id());
    let container = Container::start(ContainerConfig::new(broker.as_str(), Some(sysname)))
        .await
        .unwrap_or_else(|e| panic!("cannot reach the broker at DSF_AMQP_URL ({broker}): {e}"));
    container.spawn("datastore", Some(SERVICE), Arc::new(DatastoreService::new(ds))).await.expect("spawn");
    let client = AmqpClient::spawn(&container, None).await.expect("an AMQP client");
    Service { client: Client::Amqp(client), _container: Some(container), _stop: None, _dir: dir }
}

/// The cases: both shapes at 1k and 10k, and at 100k in release builds (the flat list only
/// with `DSF_BENCH_WIDE=1`: building it takes seconds).
fn cases() -> Vec<(Shape, usize)> {
    let mut cases = Vec::new();
    for shape in Shape::ALL {
        for objects in common::SIZES {
            let big = objects >= 100_000;
            if big && shape != Shape::Dataset && !common::wide() {
                continue;
            }
            if big && cfg!(debug_assertions) {
                eprintln!("sync: {}/{} left out of this debug build (release only)", shape.name(), objects);
                continue;
            }
            cases.push((shape, objects));
        }
    }
    cases
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a tokio runtime")
}

fn sync(c: &mut Criterion, transport: &str) {
    let rt = runtime();
    let registry = Registry::builtin();
    let service = rt.block_on(async {
        match transport {
            "grpc" => grpc_service().await,
            _ => amqp_service().await,
        }
    });
    let client = &service.client;

    let mut group = common::group(c, &format!("sync_push_{transport}"));
    for (shape, objects) in cases() {
        group.throughput(Throughput::Elements(objects as u64));
        let mut round = 0u64;
        group.bench_function(BenchmarkId::new(shape.name(), common::label(objects)), |b| {
            b.iter_batched(
                || {
                    // A repository with content the datastore has never seen.
                    round += 1;
                    let key = format!("{REPOSITORY_KEY}-push-{}-{objects}-{round}", shape.name());
                    let mut repo = Repository::with_key(registry.clone(), &key, HashAlgorithm::Sha1);
                    build_and_commit(&mut repo, shape, objects, DEFAULT_SEED + round, COMMIT_DATE).expect("commit");
                    repo
                },
                |repo| rt.block_on(client.push(&repo)),
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();

    let mut group = common::group(c, &format!("sync_clone_{transport}"));
    for (shape, objects) in cases() {
        let key = format!("{REPOSITORY_KEY}-clone-{}-{objects}", shape.name());
        let mut repo = Repository::with_key(registry.clone(), &key, HashAlgorithm::Sha1);
        build_and_commit(&mut repo, shape, objects, DEFAULT_SEED, COMMIT_DATE).expect("commit");
        rt.block_on(client.push(&repo));
        let clone = rt.block_on(client.clone_repository(&key));
        assert_eq!(clone.elements().len(), repo.elements().len(), "the clone holds every element");
        group.throughput(Throughput::Elements(objects as u64));
        group.bench_function(BenchmarkId::new(shape.name(), common::label(objects)), |b| {
            b.iter(|| rt.block_on(client.clone_repository(&key)));
        });
    }
    group.finish();

    let mut group = common::group(c, &format!("sync_pull_1pct_{transport}"));
    for (shape, objects) in cases() {
        // The datastore holds two commits (1 % changed); the client the first one.
        let key = format!("{REPOSITORY_KEY}-pull-{}-{objects}", shape.name());
        let fixture = diff_fixture_as(&registry, &key, shape, objects, DEFAULT_SEED).expect("diff fixture");
        let (base, from) = committed_as(&registry, &key, shape, objects, DEFAULT_SEED).expect("the first commit");
        assert_eq!(from, fixture.from, "the client's commit is the datastore's first");
        rt.block_on(client.push(&fixture.repo));
        let mut pulled = base.clone();
        rt.block_on(client.pull(&mut pulled));
        assert!(pulled.commit_info(fixture.to).is_ok(), "the pull brings the second commit");
        group.throughput(Throughput::Elements(objects as u64));
        group.bench_function(BenchmarkId::new(shape.name(), common::label(objects)), |b| {
            b.iter_batched(
                || base.clone(),
                |mut repo| {
                    rt.block_on(client.pull(&mut repo));
                    repo
                },
                BatchSize::PerIteration,
            );
        });
    }
    group.finish();
    if let Some(container) = &service._container {
        rt.block_on(container.terminate());
    }
}

fn sync_grpc(c: &mut Criterion) {
    sync(c, "grpc");
}

fn sync_amqp(c: &mut Criterion) {
    sync(c, "amqp");
}

criterion_group! {
    name = benches;
    config = common::criterion();
    targets = sync_grpc, sync_amqp
}
criterion_main!(benches);
