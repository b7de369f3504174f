//! One fixture per backend: a fresh, empty store of its own, which can be reopened.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};

use dsf::store::Store;
use dsf::store::memory::MemoryStore;
use dsf_store_backends::cassandra::{CassandraConfig, CassandraStore};
use dsf_store_backends::rocks::RocksStore;

/// A store under test.
pub trait Fixture: Send + Sync + 'static {
    /// The store type.
    type S: Store + 'static;
    /// The store.
    fn store(&self) -> &Self::S;
    /// Closes the store and opens it again on the same data (memory keeps its one instance).
    fn reopen(&mut self) -> impl Future<Output = ()> + Send;
}

/// The memory store.
pub struct Memory(MemoryStore);

pub async fn memory() -> Memory {
    Memory(MemoryStore::new())
}

impl Fixture for Memory {
    type S = MemoryStore;

    fn store(&self) -> &MemoryStore {
        &self.0
    }

    async fn reopen(&mut self) {}
}

/// RocksDB in a temporary folder.
pub struct Rocks {
    dir: tempfile::TempDir,
    store: Option<RocksStore>,
}

pub async fn rocksdb() -> Rocks {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = RocksStore::open(dir.path()).expect("RocksDB opens in a fresh folder");
    Rocks { dir, store: Some(store) }
}

impl Fixture for Rocks {
    type S = RocksStore;

    fn store(&self) -> &RocksStore {
        self.store.as_ref().expect("open")
    }

    async fn reopen(&mut self) {
        drop(self.store.take());
        self.store = Some(RocksStore::open(self.dir.path()).expect("RocksDB reopens"));
    }
}

/// Cassandra: a keyspace of its own on the test server.
pub struct Cassandra {
    keyspace: String,
    store: CassandraStore,
}

/// A keyspace name no other test of this run uses.
fn keyspace() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("dsf_test_{}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), nanos)
}

async fn connect(keyspace: &str) -> CassandraStore {
    CassandraStore::connect(CassandraConfig::local(keyspace)).await.unwrap_or_else(|e| {
        panic!("cannot reach the test Cassandra ({e}): start it with `scripts/cassandra start` (scripts/test does)")
    })
}

pub async fn cassandra() -> Cassandra {
    let keyspace = keyspace();
    let store = connect(&keyspace).await;
    Cassandra { keyspace, store }
}

impl Fixture for Cassandra {
    type S = CassandraStore;

    fn store(&self) -> &CassandraStore {
        &self.store
    }

    async fn reopen(&mut self) {
        self.store = connect(&self.keyspace).await;
    }
}
