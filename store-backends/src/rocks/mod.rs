//! The RocksDB store: the embedded default engine, one database directory per deployment.
//!
//! [`RocksStore`] implements the storage contract of `dsf::store` with the semantics of
//! `dsf::store::memory::MemoryStore`, on a RocksDB database with four column families.
//!
//! # Layout
//!
//! Lengths are unsigned LEB128 varints (`codec.rs`); every length-prefixed field is
//! `varint(len) ‖ bytes`.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `blobs` | the element key (20 or 32 raw bytes) | `varint(len(element)) ‖ element ‖ children` |
//! | `heads` | the repository key (UTF-8) | `u64 version, big-endian ‖ record` |
//! | `rows` | the row key | `varint(len(value)) ‖ value ‖ varint(n) ‖ n × (name ‖ attribute value)`, both length-prefixed, names in ascending order |
//! | `index` | `name ‖ attribute value ‖ row key` (name and value length-prefixed, the row key is the rest) | empty |
//!
//! The `index` column family holds one entry for every attribute of every row, so the rows with
//! `name = value` are exactly the entries under the prefix `name ‖ value` (the length prefixes make
//! that prefix unambiguous), ordered by row key. A query scans that prefix for its first equality
//! predicate, reads the candidate rows and keeps those that satisfy every predicate
//! ([`dsf::store::matches`]), so its semantics are the reference ones. Changing the indexed
//! attribute list between opens never leaves the index incomplete: every attribute a row holds
//! was indexed when it was written.
//!
//! `blobs`, `heads` and `rows` are point lookups and have bloom filters (10 bits per key); every
//! column family is LZ4-compressed; one LRU block cache (index and filter blocks included) is
//! shared by all of them, so memory is bounded by [`RocksOptions::block_cache_bytes`] plus the
//! memtables.
//!
//! # Atomicity and durability
//!
//! Every operation is one `WriteBatch` with the write-ahead log on, shared with the operations
//! grouped with it: a batch of blobs, a batch of rows with the removal of their stale index
//! entries, a heads record, a whole save. Writes are fsynced by
//! default ([`RocksOptions::sync`]), so a write that returned survives a power loss. Without
//! sync a write that returned still survives the writer being killed (`kill -9`), because the
//! log is in the operating system's page cache, but not a crash of the machine.
//!
//! # Concurrency
//!
//! RocksDB calls run on tokio's blocking pool (`spawn_blocking`); the store needs a tokio
//! runtime and reports an error when polled outside one. A future that is dropped after it was
//! first polled may still complete its write.
//!
//! RocksDB has no compare-and-set. A database is opened by one handle only (RocksDB locks the
//! directory, within the process too), and clones of a [`RocksStore`] share it, so a mutex per
//! open database makes each compare-and-set of heads (read, compare, write) exclusive. Row
//! writes take a second mutex, because replacing a row reads its old attributes to remove their
//! index entries. Queries read from one snapshot.
//!
//! Writes are grouped (`group.rs`): saves, blob and row batches and compare-and-sets queue up,
//! and one leader at a time writes everything queued as one write batch with one fsync, holding
//! both mutexes, so concurrent writers share their fsyncs while each keeps the outcome it would
//! have had alone.
//!
//! # Maintenance
//!
//! Listings walk a column family in key order (the cursor is the last key of the previous
//! page). RocksDB keeps no write times: `fsck` and `gc` open the database while no datastore
//! holds it (RocksDB's lock refuses a second opener), so deletions are unconditional.

mod blobs;
mod codec;
#[cfg(test)]
mod fixtures;
mod group;
mod heads;
mod maint;
mod rows;
mod schema;

use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dsf::store::{COMMIT_ATTRIBUTES, Cas, SaveBatch, Store, StoreError, StoreResult, check_attributes};
use rocksdb::{
    Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, DBPinnableSlice, Options, ReadOptions,
    WriteBatch, WriteOptions,
};

use codec::db_error;
use group::{Group, Write, Written};
use schema::{COLUMN_FAMILIES, column_family_options};

/// How a [`RocksStore`] is opened.
#[derive(Debug, Clone)]
pub struct RocksOptions {
    indexed: Vec<String>,
    sync: bool,
    block_cache_bytes: usize,
}

impl Default for RocksOptions {
    /// The commit attributes of spec §4.1, synced writes, a 64 MiB block cache.
    fn default() -> Self {
        RocksOptions {
            indexed: COMMIT_ATTRIBUTES.iter().map(|s| s.to_string()).collect(),
            sync: true,
            block_cache_bytes: 64 << 20,
        }
    }
}

impl RocksOptions {
    /// The indexed attribute names of the rows.
    pub fn indexed(mut self, names: Vec<String>) -> Self {
        self.indexed = names;
        self
    }

    /// Whether every write is fsynced before it returns (default `true`). Without sync, a
    /// returned write survives the process being killed but not the machine crashing.
    pub fn sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// The size of the block cache shared by every column family (default 64 MiB).
    pub fn block_cache_bytes(mut self, bytes: usize) -> Self {
        self.block_cache_bytes = bytes;
        self
    }
}

/// A store in a RocksDB database. Cheap to clone: clones share the open database.
#[derive(Clone)]
pub struct RocksStore {
    shared: Arc<Shared>,
}

struct Shared {
    db: DB,
    path: PathBuf,
    indexed: Vec<String>,
    sync: bool,
    /// Makes each compare-and-set of heads exclusive.
    heads_lock: Mutex<()>,
    /// Serialises the read-modify-write of rows and their index entries.
    rows_lock: Mutex<()>,
    /// The queue of writers sharing synced writes.
    group: Group,
}

impl fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.shared.path)
            .field("indexed", &self.shared.indexed)
            .field("sync", &self.shared.sync)
            .finish_non_exhaustive()
    }
}

impl RocksStore {
    /// Opens the store at `path`, creating it if missing, with the default [`RocksOptions`].
    pub fn open(path: impl AsRef<Path>) -> StoreResult<RocksStore> {
        RocksStore::open_with(path, RocksOptions::default())
    }

    /// Opens the store at `path` with these indexed attribute names.
    pub fn with_indexed(path: impl AsRef<Path>, indexed: Vec<String>) -> StoreResult<RocksStore> {
        RocksStore::open_with(path, RocksOptions::default().indexed(indexed))
    }

    /// Opens the store at `path`, creating it if missing.
    pub fn open_with(path: impl AsRef<Path>, options: RocksOptions) -> StoreResult<RocksStore> {
        let path = path.as_ref();
        let cache = Cache::new_lru_cache(options.block_cache_bytes);
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_compression_type(DBCompressionType::Lz4);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        db_options.increase_parallelism(i32::try_from(threads).unwrap_or(i32::MAX));
        let families =
            COLUMN_FAMILIES.map(|name| ColumnFamilyDescriptor::new(name, column_family_options(name, &cache)));
        let db = DB::open_cf_descriptors(&db_options, path, families)
            .map_err(|e| StoreError::Unavailable(format!("cannot open RocksDB at {}: {e}", path.display())))?;
        Ok(RocksStore {
            shared: Arc::new(Shared {
                db,
                path: path.to_path_buf(),
                indexed: options.indexed,
                sync: options.sync,
                heads_lock: Mutex::new(()),
                rows_lock: Mutex::new(()),
                group: Group::default(),
            }),
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Runs `f` on tokio's blocking pool when the returned future is polled.
    fn blocking<T, F>(&self, f: F) -> impl Future<Output = StoreResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> StoreResult<T> + Send + 'static,
    {
        self.read(usize::MAX, f)
    }

    /// Runs the read `f` of `keys` keys when the returned future is polled: on the polling task
    /// itself for at most [`INLINE_READ_KEYS`] keys (point lookups that RocksDB answers from its
    /// memtables and block cache in microseconds, less than a hop to another thread costs),
    /// else on tokio's blocking pool.
    fn read<T, F>(&self, keys: usize, f: F) -> impl Future<Output = StoreResult<T>> + Send + 'static
    where
        T: Send + 'static,
        F: FnOnce(&Shared) -> StoreResult<T> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        async move {
            let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
                StoreError::Backend("the RocksDB store runs on a tokio runtime and none is running".into())
            })?;
            if keys <= INLINE_READ_KEYS {
                return f(&shared);
            }
            runtime
                .spawn_blocking(move || f(&shared))
                .await
                .map_err(|e| StoreError::Backend(format!("a RocksDB task failed: {e}")))?
        }
    }
}

/// Reads of at most this many keys run on the calling task, not on the blocking pool.
const INLINE_READ_KEYS: usize = 64;

fn lock(mutex: &Mutex<()>) -> MutexGuard<'_, ()> {
    // The guarded state is in RocksDB, where every write is one atomic batch: a writer that
    // panicked left nothing half-done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn write_options(&self) -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(self.sync);
        options
    }

    /// Writes `batch` as it is (no grouping), unless it is empty.
    fn write(&self, batch: WriteBatch) -> Result<(), rocksdb::Error> {
        if batch.is_empty() {
            return Ok(());
        }
        self.db.write_opt(batch, &self.write_options())
    }

    /// Point lookups of `keys` in one column family, in order.
    fn multi_get<'a, K>(
        &self,
        cf: &ColumnFamily,
        keys: impl IntoIterator<Item = &'a K>,
        sorted: bool,
        options: &ReadOptions,
    ) -> StoreResult<Vec<Option<DBPinnableSlice<'_>>>>
    where
        K: AsRef<[u8]> + 'a + ?Sized,
    {
        self.db.batched_multi_get_cf_opt(cf, keys, sorted, options).into_iter().map(|r| r.map_err(db_error)).collect()
    }

    /// A whole save, grouped with concurrent writes into one write batch (one fsync): blobs,
    /// rows and, if the version matches, the heads record and the `on_applied` rows.
    fn save(&self, save: SaveBatch) -> StoreResult<Cas> {
        match self.submit(Write::Save(save))? {
            Written::Cas(cas) => Ok(cas),
            Written::Done => Err(StoreError::Backend("a save was answered without a compare-and-set outcome".into())),
        }
    }
}

/// A save is one write batch: blobs, rows, the heads and their attributes reach the disk
/// together, with one fsync.
impl Store for RocksStore {
    fn save(&self, batch: SaveBatch) -> impl Future<Output = StoreResult<Cas>> + Send {
        let indexed = &self.shared.indexed;
        let checked =
            batch.rows.iter().chain(&batch.on_applied).try_for_each(|r| check_attributes(indexed, r.attributes.keys()));
        self.blocking(move |s| {
            checked?;
            s.save(batch)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use bytes::Bytes;
    use dsf::key::Key;
    use dsf::store::{BlobStore, HeadStore, IndexStore, KvStore, Versioned};
    use tempfile::TempDir;

    use super::codec::{StoredRow, encode_row, index_prefix};
    use super::fixtures::{assert_index_consistent, attrs, blob, eq, put_raw, row};
    use super::schema::{BLOBS, HEADS, INDEX, ROWS};
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reopen_preserves_blobs_heads_rows_and_index() {
        let dir = TempDir::new().unwrap();
        {
            let store = RocksStore::open(dir.path()).unwrap();
            store.put_blobs(vec![blob(1), blob(2)]).await.unwrap();
            assert_eq!(store.cas_heads("repo".into(), None, Bytes::from_static(b"h1")).await.unwrap(), Cas::Applied(1));
            assert_eq!(
                store.cas_heads("repo".into(), Some(1), Bytes::from_static(b"h2")).await.unwrap(),
                Cas::Applied(2)
            );
            store
                .batch_put_rows(vec![
                    row("c1", "one", &[("repository_key", "r"), ("branch_name", "master")]),
                    row("c2", "two", &[("repository_key", "r"), ("branch_name", "dev")]),
                ])
                .await
                .unwrap();
            store.put(b"plain".to_vec(), Bytes::from_static(b"p")).await.unwrap();
        }
        let store = RocksStore::open(dir.path()).unwrap();
        let blobs = store.get_blobs(vec![blob(2).key, Key::from_slice(&[9; 20]).unwrap(), blob(1).key]).await.unwrap();
        assert_eq!(blobs, vec![Some(blob(2)), None, Some(blob(1))]);
        assert_eq!(
            store.get_heads("repo".into()).await.unwrap(),
            Some(Versioned { version: 2, record: Bytes::from_static(b"h2") })
        );
        assert_eq!(
            store.cas_heads("repo".into(), Some(1), Bytes::from_static(b"late")).await.unwrap(),
            Cas::Lost(Some(Versioned { version: 2, record: Bytes::from_static(b"h2") }))
        );
        let found = store.query(vec![eq("repository_key", "r")]).await.unwrap();
        assert_eq!(
            found,
            vec![
                row("c1", "one", &[("repository_key", "r"), ("branch_name", "master")]),
                row("c2", "two", &[("repository_key", "r"), ("branch_name", "dev")])
            ]
        );
        assert_eq!(store.get(b"plain".to_vec()).await.unwrap(), Some(Bytes::from_static(b"p")));
        assert_index_consistent(&store);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn corrupt_stored_bytes_are_reported_as_corrupt() {
        let dir = TempDir::new().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let key = Key::from_slice(&[5; 20]).unwrap();
        // A varint cut short, then an element length beyond the stored bytes.
        for garbage in [&[0x80u8][..], &[0x05, b'a']] {
            put_raw(&store, BLOBS, key.as_bytes(), garbage);
            let result = store.get_blobs(vec![key]).await;
            assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
        }
        assert_eq!(store.has_blobs(vec![key]).await.unwrap(), vec![true]);

        put_raw(&store, HEADS, b"repo", b"short");
        let result = store.get_heads("repo".into()).await;
        assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
        let result = store.cas_heads("repo".into(), None, Bytes::new()).await;
        assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
        put_raw(&store, HEADS, b"repo", &0u64.to_be_bytes());
        let result = store.get_heads("repo".into()).await;
        assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");

        store.put_row(row("r", "v", &[("branch_name", "m")])).await.unwrap();
        let mut trailing = encode_row(&StoredRow { value: Bytes::from_static(b"v"), attributes: attrs(&[]) });
        trailing.push(0);
        for garbage in [&b"\x09v"[..], &trailing, b"\x01v\x01\x01\xFF\x00"] {
            put_raw(&store, ROWS, b"r", garbage);
            let result = store.get(b"r".to_vec()).await;
            assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
            let result = store.batch_get(vec![b"r".to_vec()]).await;
            assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
            let result = store.query(vec![eq("branch_name", "m")]).await;
            assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
            let result = store.put_row(row("r", "new", &[])).await;
            assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
        }

        // An index entry whose row is gone.
        let mut dangling = index_prefix("keyword", b"k");
        dangling.extend_from_slice(b"gone");
        put_raw(&store, INDEX, &dangling, b"");
        let result = store.query(vec![eq("keyword", "k")]).await;
        assert!(matches!(result, Err(StoreError::Corrupt(_))), "{result:?}");
    }

    #[test]
    fn the_database_is_opened_once() {
        let dir = TempDir::new().unwrap();
        let _first = RocksStore::open(dir.path()).unwrap();
        let second = RocksStore::open(dir.path());
        assert!(matches!(second, Err(StoreError::Unavailable(_))), "{second:?}");
    }

    #[test]
    fn open_errors_are_unavailable() {
        let dir = TempDir::new().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, b"not a database").unwrap();
        let result = RocksStore::open(&file);
        assert!(matches!(result, Err(StoreError::Unavailable(_))), "{result:?}");
    }

    #[test]
    fn polling_outside_a_runtime_is_an_error() {
        let dir = TempDir::new().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let mut future = pin!(store.get(b"k".to_vec()));
        let polled = future.as_mut().poll(&mut Context::from_waker(Waker::noop()));
        assert!(matches!(polled, Poll::Ready(Err(StoreError::Backend(_)))), "{polled:?}");
    }
}
