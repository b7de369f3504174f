//! Fixtures: a real RabbitMQ (DSF_AMQP_URL), a real Cassandra (DSF_CASSANDRA), RocksDB on disk.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dsf::proto::net::ooici::play::{AddressLink, Person};
use dsf::store::Store;
use dsf::{ObjectId, Registry, Repository};
use dsf_container::amqp::{Container, ContainerConfig, Process};
use dsf_container::client::AmqpClient;
use dsf_container::datastore::Datastore;
use dsf_container::datastore::service::{DatastoreService, SERVICE};
use dsf_store_backends::cassandra::{CassandraConfig, CassandraStore};
use dsf_store_backends::rocks::RocksStore;

/// The test broker's URL.
pub fn broker_url() -> String {
    match std::env::var("DSF_AMQP_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "DSF_AMQP_URL is not set: these tests need a RabbitMQ broker. Start one with \
             `scripts/rabbitmq start --port 5673` and `export DSF_AMQP_URL=$(scripts/rabbitmq url --port 5673)` \
             (scripts/test does both)"
        ),
    }
}

fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{prefix}_{}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), nanos)
}

/// A system name no other test uses, so queues never mix.
pub fn sysname() -> String {
    unique("sys")
}

/// A container on the test broker.
pub async fn container(sysname: &str) -> Container {
    Container::start(ContainerConfig::new(broker_url(), Some(sysname.to_owned())))
        .await
        .unwrap_or_else(|e| panic!("{e}: start the test broker with `scripts/rabbitmq start --port 5673`"))
}

/// A Cassandra store in a keyspace of its own.
pub async fn cassandra() -> CassandraStore {
    CassandraStore::connect(CassandraConfig::local(unique("dsf_svc"))).await.unwrap_or_else(|e| {
        panic!("cannot reach the test Cassandra ({e}): start it with `scripts/cassandra start --port 19142` and export DSF_CASSANDRA=127.0.0.1:19142 (scripts/test does)")
    })
}

/// A RocksDB store in a temporary folder (kept alive by the returned guard).
pub fn rocksdb() -> (RocksStore, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temp dir");
    (RocksStore::open(dir.path()).expect("RocksDB opens"), dir)
}

/// A container running `instances` datastore processes on one store, and a client.
pub struct Cluster<S> {
    pub container: Container,
    pub datastores: Vec<Process>,
    pub ds: Datastore<S>,
    pub client: AmqpClient,
}

impl<S: Store + 'static> Cluster<S> {
    pub async fn start(store: S, instances: usize) -> Cluster<S> {
        let sys = sysname();
        let container = container(&sys).await;
        let ds = Datastore::new(Arc::new(store), Registry::builtin());
        let service = Arc::new(DatastoreService::new(ds.clone()));
        let mut datastores = Vec::new();
        for _ in 0..instances {
            datastores.push(container.spawn("datastore", Some(SERVICE), service.clone()).await.expect("spawn"));
        }
        let client = AmqpClient::spawn(&container, None).await.expect("client");
        Cluster { container, datastores, ds, client }
    }

    /// Another client process (a "fresh workbench").
    pub async fn client(&self) -> AmqpClient {
        AmqpClient::spawn(&self.container, None).await.expect("client")
    }
}

/// A repository on the built-in registry.
pub fn repo() -> Repository {
    Repository::new(Registry::builtin())
}

pub fn person(name: &str, id: i32) -> Person {
    Person { name: Some(name.into()), id: Some(id), email: None, phone: Vec::new() }
}

/// A repository whose root is an AddressLink titled `title` over two persons, committed.
pub fn address_book(title: &str) -> (Repository, ObjectId) {
    let mut r = repo();
    let p1 = r.create(&person("David", 5)).unwrap();
    let p2 = r.create(&person("John", 6)).unwrap();
    let book = AddressLink {
        person: vec![r.link(p1).unwrap(), r.link(p2).unwrap()],
        owner: Some(r.link(p1).unwrap()),
        title: Some(title.into()),
    };
    let book = r.create(&book).unwrap();
    r.set_root(book).unwrap();
    r.commit("an address book").unwrap();
    (r, book)
}

/// The checked-out root of `repo` as an AddressLink, with its persons' names.
pub fn content(repo: &Repository) -> (String, Vec<String>) {
    let root = repo.root().expect("checked out");
    let book: AddressLink = repo.get(root).unwrap();
    let names = repo
        .children(root)
        .unwrap()
        .into_iter()
        .map(|c| repo.get::<Person>(c).unwrap().name.unwrap_or_default())
        .collect();
    (book.title.unwrap_or_default(), names)
}

/// Renames the book's first person and commits.
pub fn edit(repo: &mut Repository, name: &str, comment: &str) -> dsf::Key {
    let root = repo.root().unwrap();
    let first = repo.children(root).unwrap()[0];
    repo.update::<Person>(first, |p| p.name = Some(name.into())).unwrap();
    repo.commit(comment).unwrap()
}

/// Retitles the book and commits at `date`.
pub fn retitle_at(repo: &mut Repository, title: &str, date: f64) -> dsf::Key {
    let root = repo.root().unwrap();
    repo.update::<AddressLink>(root, |b| b.title = Some(title.into())).unwrap();
    repo.commit_at("retitled", date).unwrap()
}

/// Starts the `dsf-container` binary with a configuration file (warnings logged to stderr).
/// The process is killed when the guard drops, so a failing test leaves nothing running.
pub fn start_binary(config: &std::path::Path) -> Running {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_dsf-container"))
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("dsf-container starts");
    Running(child)
}

/// A running `dsf-container`, killed on drop.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Pushes a base book, then two other clients clone it, retitle it (`older` now, `newer` ten
/// seconds later) and push: the datastore's master diverges. Returns the repository key.
pub async fn push_divergent<S: Store + 'static>(c: &Cluster<S>, older: &str, newer: &str) -> String {
    let (src, _) = address_book("base");
    c.client.push(&src).await.unwrap();
    // Both clone before either pushes, so neither sees the other's commit.
    let mut writers = Vec::new();
    for _ in 0..2 {
        let w = c.client().await;
        let mut r = w.clone_repository(src.key(), true, None).await.unwrap();
        w.checkout(&mut r, dsf::Checkout::branch("master")).await.unwrap();
        writers.push((w, r));
    }
    let now = dsf::repository::now();
    for ((w, r), (title, date)) in writers.iter_mut().zip([(older, now), (newer, now + 10.0)]) {
        retitle_at(r, title, date);
        w.push(r).await.unwrap();
    }
    src.key().to_owned()
}
