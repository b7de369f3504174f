//! The RocksDB store: the embedded default engine, one database directory per deployment.
//!
//! [`RocksStore`] implements the storage contract of `dsf::store` with the semantics of
//! `dsf::store::memory::MemoryStore`, on a RocksDB database with four column families.
//!
//! # Layout
//!
//! Lengths are unsigned LEB128 varints (`varint` below); every length-prefixed field is
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
//! Every operation is one `WriteBatch` with the write-ahead log on: a batch of blobs, a batch of
//! rows with the removal of their stale index entries, a heads record. Writes are fsynced by
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
//! index entries. Blob writes take no lock: blobs are immutable. Queries read from one snapshot.
//!
//! # Maintenance
//!
//! Listings walk a column family in key order (the cursor is the last key of the previous
//! page). RocksDB keeps no write times: `fsck` and `gc` open the database while no datastore
//! holds it (RocksDB's lock refuses a second opener), so deletions are unconditional.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use dsf::key::Key;
use dsf::store::{
    BlobRow, BlobStore, COMMIT_ATTRIBUTES, Cas, HeadStore, IndexStore, KvStore, Listed, Maintenance, Page, Predicate,
    Row, SaveBatch, Store, StoreError, StoreResult, Versioned, check_attributes, check_predicates, matches,
};
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType, DBPinnableSlice,
    IteratorMode, Options, PrefixRange, ReadOptions, WriteBatch, WriteOptions,
};

const BLOBS: &str = "blobs";
const HEADS: &str = "heads";
const ROWS: &str = "rows";
const INDEX: &str = "index";
const COLUMN_FAMILIES: [&str; 4] = [BLOBS, HEADS, ROWS, INDEX];

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
        let shared = Arc::clone(&self.shared);
        async move {
            let runtime = tokio::runtime::Handle::try_current().map_err(|_| {
                StoreError::Backend("the RocksDB store runs on a tokio runtime and none is running".into())
            })?;
            runtime
                .spawn_blocking(move || f(&shared))
                .await
                .map_err(|e| StoreError::Backend(format!("a RocksDB task failed: {e}")))?
        }
    }
}

fn column_family_options(name: &str, cache: &Cache) -> Options {
    let mut table = BlockBasedOptions::default();
    table.set_block_cache(cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    if name != INDEX {
        table.set_bloom_filter(10.0, false);
    }
    let mut options = Options::default();
    options.set_compression_type(DBCompressionType::Lz4);
    options.set_block_based_table_factory(&table);
    options
}

/// Maps a RocksDB error: corruption is [`StoreError::Corrupt`], everything else (I/O, busy,
/// shutdown) [`StoreError::Unavailable`].
fn db_error(e: rocksdb::Error) -> StoreError {
    match e.kind() {
        rocksdb::ErrorKind::Corruption => StoreError::Corrupt(format!("rocksdb: {e}")),
        _ => StoreError::Unavailable(format!("rocksdb: {e}")),
    }
}

fn lock(mutex: &Mutex<()>) -> MutexGuard<'_, ()> {
    // The guarded state is in RocksDB, where every write is one atomic batch: a writer that
    // panicked left nothing half-done.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The next state of a row in a batch of row writes.
enum Change {
    /// Replace the row (value and all attributes).
    Put(Bytes, BTreeMap<String, Vec<u8>>),
    /// Add or overwrite attributes of an existing row.
    Merge(BTreeMap<String, Vec<u8>>),
    /// Remove the row.
    Remove,
}

impl Shared {
    /// Up to `limit` keys of a column family after `cursor` (exclusive), in key order, and
    /// whether more follow.
    fn keys_after(&self, name: &'static str, cursor: Option<&[u8]>, limit: usize) -> StoreResult<Page<Vec<u8>>> {
        let mode = match cursor {
            Some(c) => IteratorMode::From(c, rocksdb::Direction::Forward),
            None => IteratorMode::Start,
        };
        let limit = limit.max(1);
        let mut items: Vec<Vec<u8>> = Vec::new();
        for entry in self.db.iterator_cf(self.cf(name)?, mode) {
            let (k, _) = entry.map_err(|e| StoreError::Backend(format!("RocksDB scan of {name}: {e}")))?;
            if cursor.is_some_and(|c| k.as_ref() <= c) {
                continue;
            }
            if items.len() == limit {
                let next = items.last().cloned();
                return Ok(Page { items, next });
            }
            items.push(k.to_vec());
        }
        Ok(Page { items, next: None })
    }

    fn cf(&self, name: &'static str) -> StoreResult<&ColumnFamily> {
        self.db.cf_handle(name).ok_or_else(|| StoreError::Backend(format!("column family {name} is missing")))
    }

    fn write_options(&self) -> WriteOptions {
        let mut options = WriteOptions::default();
        options.set_sync(self.sync);
        options
    }

    fn write(&self, batch: WriteBatch) -> StoreResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.db.write_opt(batch, &self.write_options()).map_err(db_error)
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

    fn rows(&self, keys: &[Vec<u8>], options: &ReadOptions) -> StoreResult<Vec<Option<StoredRow>>> {
        let found = self.multi_get(self.cf(ROWS)?, keys, false, options)?;
        keys.iter().zip(found).map(|(key, v)| v.map(|v| decode_row(key, &v)).transpose()).collect()
    }

    /// Applies `changes` in order as one write batch, keeping the index equal to the rows'
    /// attributes. Fails, writing nothing, on an attribute-only update of a missing row.
    fn write_rows(&self, changes: Vec<(Vec<u8>, Change)>) -> StoreResult<()> {
        let _guard = lock(&self.rows_lock);
        let mut batch = WriteBatch::default();
        self.rows_into(changes, &mut batch)?;
        self.write(batch)
    }

    /// Adds `changes` (applied in order) and their index updates to `batch`. The caller holds
    /// the rows lock until the batch is written.
    fn rows_into(&self, changes: Vec<(Vec<u8>, Change)>, batch: &mut WriteBatch) -> StoreResult<()> {
        let rows_cf = self.cf(ROWS)?;
        let index_cf = self.cf(INDEX)?;
        let keys: Vec<Vec<u8>> = changes.iter().map(|(k, _)| k.clone()).collect::<BTreeSet<_>>().into_iter().collect();
        let before: BTreeMap<Vec<u8>, Option<StoredRow>> =
            keys.iter().cloned().zip(self.rows(&keys, &ReadOptions::default())?).collect();
        let mut after = before.clone();
        for (key, change) in changes {
            let slot = after.get_mut(&key).expect("every changed key was read");
            match change {
                Change::Put(value, attributes) => *slot = Some(StoredRow { value, attributes }),
                Change::Remove => *slot = None,
                Change::Merge(attributes) => match slot {
                    Some(row) => row.attributes.extend(attributes),
                    None => {
                        return Err(StoreError::Invalid(format!(
                            "attribute-only update of a row that does not exist: {}",
                            hex(&key)
                        )));
                    }
                },
            }
        }
        for (key, new) in &after {
            let old = &before[key];
            let old_index = index_keys(key, old.as_ref());
            let new_index = index_keys(key, new.as_ref());
            for stale in old_index.difference(&new_index) {
                batch.delete_cf(index_cf, stale);
            }
            for fresh in new_index.difference(&old_index) {
                batch.put_cf(index_cf, fresh, b"");
            }
            match new {
                Some(row) if old.as_ref() != Some(row) => batch.put_cf(rows_cf, key, encode_row(row)),
                Some(_) => {}
                None if old.is_some() => batch.delete_cf(rows_cf, key),
                None => {}
            }
        }
        Ok(())
    }

    /// A whole save as one write batch (one fsync): blobs, rows and, if the version matches,
    /// the heads record and the `on_applied` rows.
    fn save(&self, save: SaveBatch) -> StoreResult<Cas> {
        let SaveBatch { blobs, rows, repository, expected, record, on_applied } = save;
        // Lock order: rows, then heads (cas_heads takes only the heads lock).
        let _rows = lock(&self.rows_lock);
        let _heads = lock(&self.heads_lock);
        let mut batch = WriteBatch::default();
        let blobs_cf = self.cf(BLOBS)?;
        for row in &blobs {
            batch.put_cf(blobs_cf, row.key.as_bytes(), encode_blob(&row.element, &row.children));
        }
        let current = self.get_heads(&repository)?;
        let applies = current.as_ref().map(|c| c.version) == expected;
        let mut changes: Vec<(Vec<u8>, Change)> = rows.into_iter().map(change_of).collect();
        let outcome = if applies {
            changes.extend(on_applied.into_iter().map(change_of));
            let version = next_version(&repository, expected)?;
            batch.put_cf(self.cf(HEADS)?, repository.as_bytes(), encode_heads(&Versioned { version, record }));
            Cas::Applied(version)
        } else {
            Cas::Lost(current)
        };
        self.rows_into(changes, &mut batch)?;
        self.write(batch)?;
        Ok(outcome)
    }

    fn query(&self, predicates: &[Predicate]) -> StoreResult<Vec<Row>> {
        let Some((name, value)) = predicates.iter().find_map(|p| match p {
            Predicate::Eq(name, value) => Some((name, value)),
            Predicate::Gt(..) => None,
        }) else {
            return Err(StoreError::Invalid("a query needs at least one equality predicate".into()));
        };
        let snapshot = self.db.snapshot();
        let prefix = index_prefix(name, value);
        let mut scan = ReadOptions::default();
        scan.set_snapshot(&snapshot);
        scan.set_iterate_range(PrefixRange(prefix.clone()));
        let mut keys = Vec::new();
        for entry in self.db.iterator_cf_opt(self.cf(INDEX)?, scan, IteratorMode::Start) {
            let (entry, _) = entry.map_err(db_error)?;
            match entry.strip_prefix(prefix.as_slice()) {
                Some(key) => keys.push(key.to_vec()),
                None => break,
            }
        }
        let mut read = ReadOptions::default();
        read.set_snapshot(&snapshot);
        let found = self.multi_get(self.cf(ROWS)?, &keys, true, &read)?;
        let mut rows = Vec::new();
        for (key, stored) in keys.into_iter().zip(found) {
            let Some(stored) = stored else {
                return Err(StoreError::Corrupt(format!(
                    "an index entry names a row that does not exist: {}",
                    hex(&key)
                )));
            };
            let row = decode_row(&key, &stored)?;
            if matches(&row.attributes, predicates) {
                rows.push(Row { key, value: Some(row.value), attributes: row.attributes });
            }
        }
        Ok(rows)
    }

    fn get_heads(&self, repository: &str) -> StoreResult<Option<Versioned>> {
        let stored = self.db.get_pinned_cf(self.cf(HEADS)?, repository.as_bytes()).map_err(db_error)?;
        stored.map(|s| decode_heads(repository, &s)).transpose()
    }

    fn cas_heads(&self, repository: &str, expected: Option<u64>, record: Bytes) -> StoreResult<Cas> {
        let heads_cf = self.cf(HEADS)?;
        let _guard = lock(&self.heads_lock);
        let current = self.get_heads(repository)?;
        if current.as_ref().map(|c| c.version) != expected {
            return Ok(Cas::Lost(current));
        }
        let version = next_version(repository, expected)?;
        let stored = encode_heads(&Versioned { version, record });
        self.db.put_cf_opt(heads_cf, repository.as_bytes(), stored, &self.write_options()).map_err(db_error)?;
        Ok(Cas::Applied(version))
    }
}

/// The heads version a compare-and-set from `expected` writes.
fn next_version(repository: &str, expected: Option<u64>) -> StoreResult<u64> {
    expected
        .unwrap_or(0)
        .checked_add(1)
        .ok_or_else(|| StoreError::Invalid(format!("the heads version of {repository} cannot grow")))
}

/// A row write as a change: a value replaces the row, no value updates its attributes.
fn change_of(r: Row) -> (Vec<u8>, Change) {
    match r.value {
        Some(value) => (r.key, Change::Put(value, r.attributes)),
        None => (r.key, Change::Merge(r.attributes)),
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

impl BlobStore for RocksStore {
    fn put_blobs(&self, rows: Vec<BlobRow>) -> impl Future<Output = StoreResult<()>> + Send {
        self.blocking(move |s| {
            let cf = s.cf(BLOBS)?;
            let mut batch = WriteBatch::default();
            for row in &rows {
                batch.put_cf(cf, row.key.as_bytes(), encode_blob(&row.element, &row.children));
            }
            s.write(batch)
        })
    }

    fn get_blobs(&self, keys: Vec<Key>) -> impl Future<Output = StoreResult<Vec<Option<BlobRow>>>> + Send {
        self.blocking(move |s| {
            let found = s.multi_get(s.cf(BLOBS)?, keys.iter().map(Key::as_bytes), false, &ReadOptions::default())?;
            keys.iter().zip(found).map(|(key, v)| v.map(|v| decode_blob(*key, &v)).transpose()).collect()
        })
    }

    fn has_blobs(&self, keys: Vec<Key>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        self.blocking(move |s| {
            let found = s.multi_get(s.cf(BLOBS)?, keys.iter().map(Key::as_bytes), false, &ReadOptions::default())?;
            Ok(found.iter().map(Option::is_some).collect())
        })
    }
}

impl HeadStore for RocksStore {
    fn get_heads(&self, repository: String) -> impl Future<Output = StoreResult<Option<Versioned>>> + Send {
        self.blocking(move |s| s.get_heads(&repository))
    }

    fn cas_heads(
        &self,
        repository: String,
        expected: Option<u64>,
        record: Bytes,
    ) -> impl Future<Output = StoreResult<Cas>> + Send {
        self.blocking(move |s| s.cas_heads(&repository, expected, record))
    }
}

impl KvStore for RocksStore {
    fn get(&self, key: Vec<u8>) -> impl Future<Output = StoreResult<Option<Bytes>>> + Send {
        self.blocking(move |s| {
            let stored = s.db.get_pinned_cf(s.cf(ROWS)?, &key).map_err(db_error)?;
            Ok(stored.map(|v| decode_row(&key, &v)).transpose()?.map(|r| r.value))
        })
    }

    fn put(&self, key: Vec<u8>, value: Bytes) -> impl Future<Output = StoreResult<()>> + Send {
        self.batch_put(vec![(key, value)])
    }

    fn remove(&self, key: Vec<u8>) -> impl Future<Output = StoreResult<()>> + Send {
        self.blocking(move |s| s.write_rows(vec![(key, Change::Remove)]))
    }

    fn has_key(&self, key: Vec<u8>) -> impl Future<Output = StoreResult<bool>> + Send {
        self.blocking(move |s| Ok(s.db.get_pinned_cf(s.cf(ROWS)?, &key).map_err(db_error)?.is_some()))
    }

    fn batch_get(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<Option<Bytes>>>> + Send {
        self.blocking(move |s| {
            Ok(s.rows(&keys, &ReadOptions::default())?.into_iter().map(|r| r.map(|r| r.value)).collect())
        })
    }

    fn batch_put(&self, rows: Vec<(Vec<u8>, Bytes)>) -> impl Future<Output = StoreResult<()>> + Send {
        let changes = rows.into_iter().map(|(key, value)| (key, Change::Put(value, BTreeMap::new()))).collect();
        self.blocking(move |s| s.write_rows(changes))
    }

    fn batch_has_key(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        self.blocking(move |s| {
            let found = s.multi_get(s.cf(ROWS)?, &keys, false, &ReadOptions::default())?;
            Ok(found.iter().map(Option::is_some).collect())
        })
    }
}

impl IndexStore for RocksStore {
    fn indexed_attributes(&self) -> Vec<String> {
        self.shared.indexed.clone()
    }

    fn batch_put_rows(&self, rows: Vec<Row>) -> impl Future<Output = StoreResult<()>> + Send {
        let checked = rows.iter().try_for_each(|r| check_attributes(&self.shared.indexed, r.attributes.keys()));
        let changes: Vec<(Vec<u8>, Change)> = rows.into_iter().map(change_of).collect();
        self.blocking(move |s| {
            checked?;
            s.write_rows(changes)
        })
    }

    fn query(&self, predicates: Vec<Predicate>) -> impl Future<Output = StoreResult<Vec<Row>>> + Send {
        let checked = check_predicates(&self.shared.indexed, &predicates);
        self.blocking(move |s| {
            checked?;
            s.query(&predicates)
        })
    }
}

/// RocksDB keeps no write times: a database is opened by one process, so `fsck` and `gc` run
/// with no datastore on it and delete unconditionally.
impl Maintenance for RocksStore {
    fn write_times(&self) -> bool {
        false
    }

    fn list_blobs(
        &self,
        cursor: Option<Vec<u8>>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Page<Listed<Key>>>> + Send {
        self.blocking(move |s| {
            let page = s.keys_after(BLOBS, cursor.as_deref(), limit)?;
            let items = page
                .items
                .iter()
                .map(|k| {
                    Key::from_slice(k)
                        .map(|key| Listed { key, written: None })
                        .ok_or_else(|| StoreError::Corrupt(format!("a blob key of {} bytes", k.len())))
                })
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Page { items, next: page.next })
        })
    }

    fn list_rows(
        &self,
        cursor: Option<Vec<u8>>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Page<Listed<Vec<u8>>>>> + Send {
        self.blocking(move |s| {
            let page = s.keys_after(ROWS, cursor.as_deref(), limit)?;
            Ok(Page {
                items: page.items.into_iter().map(|key| Listed { key, written: None }).collect(),
                next: page.next,
            })
        })
    }

    fn list_repositories(
        &self,
        cursor: Option<Vec<u8>>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Page<String>>> + Send {
        self.blocking(move |s| {
            let page = s.keys_after(HEADS, cursor.as_deref(), limit)?;
            let items = page
                .items
                .into_iter()
                .map(|k| String::from_utf8(k).map_err(|_| StoreError::Corrupt("a repository key is not UTF-8".into())))
                .collect::<StoreResult<Vec<_>>>()?;
            Ok(Page { items, next: page.next })
        })
    }

    fn delete_blobs(
        &self,
        keys: Vec<Key>,
        _written_before: Option<i64>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.blocking(move |s| {
            let cf = s.cf(BLOBS)?;
            let mut batch = WriteBatch::default();
            for k in &keys {
                batch.delete_cf(cf, k.as_bytes());
            }
            s.write(batch)
        })
    }

    fn delete_rows(
        &self,
        keys: Vec<Vec<u8>>,
        _written_before: Option<i64>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.blocking(move |s| s.write_rows(keys.into_iter().map(|k| (k, Change::Remove)).collect()))
    }

    fn freshen_blobs(&self, keys: Vec<Key>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        self.has_blobs(keys)
    }

    fn freshen_rows(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        self.batch_has_key(keys)
    }
}

// ---------------------------------------------------------------------------------------------
// Encodings of the stored values and index keys.

/// A decoded row of the `rows` column family.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StoredRow {
    value: Bytes,
    attributes: BTreeMap<String, Vec<u8>>,
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a varint from the front of `input`; `None` if it is cut short or overflows a u64.
fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let bytes: &[u8] = input;
    let mut n = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7F);
        if i == 9 && byte > 1 {
            return None;
        }
        n |= bits << (7 * i);
        if byte & 0x80 == 0 {
            *input = &bytes[i + 1..];
            return Some(n);
        }
    }
    None
}

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads a length-prefixed field from the front of `input`.
fn take_field<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(take_varint(input)?).ok()?;
    if len > input.len() {
        return None;
    }
    let (field, rest) = input.split_at(len);
    *input = rest;
    Some(field)
}

fn encode_blob(element: &[u8], children: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(element.len() + children.len() + 5);
    put_field(&mut out, element);
    out.extend_from_slice(children);
    out
}

fn decode_blob(key: Key, stored: &[u8]) -> StoreResult<BlobRow> {
    let mut input = stored;
    let element = take_field(&mut input)
        .ok_or_else(|| StoreError::Corrupt(format!("the stored blob {key} has a bad element length")))?;
    Ok(BlobRow { key, element: Bytes::copy_from_slice(element), children: Bytes::copy_from_slice(input) })
}

fn encode_heads(heads: &Versioned) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + heads.record.len());
    out.extend_from_slice(&heads.version.to_be_bytes());
    out.extend_from_slice(&heads.record);
    out
}

fn decode_heads(repository: &str, stored: &[u8]) -> StoreResult<Versioned> {
    let corrupt = || StoreError::Corrupt(format!("the stored heads of {repository} have no valid version"));
    let (version, record) = stored.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let version = u64::from_be_bytes(*version);
    if version == 0 {
        return Err(corrupt());
    }
    Ok(Versioned { version, record: Bytes::copy_from_slice(record) })
}

fn encode_row(row: &StoredRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.value.len() + 16);
    put_field(&mut out, &row.value);
    put_varint(&mut out, row.attributes.len() as u64);
    for (name, value) in &row.attributes {
        put_field(&mut out, name.as_bytes());
        put_field(&mut out, value);
    }
    out
}

fn decode_row(key: &[u8], stored: &[u8]) -> StoreResult<StoredRow> {
    decode_row_fields(stored).ok_or_else(|| StoreError::Corrupt(format!("the stored row {} is undecodable", hex(key))))
}

fn decode_row_fields(stored: &[u8]) -> Option<StoredRow> {
    let mut input = stored;
    let value = Bytes::copy_from_slice(take_field(&mut input)?);
    let count = take_varint(&mut input)?;
    let mut attributes = BTreeMap::new();
    for _ in 0..count {
        let name = std::str::from_utf8(take_field(&mut input)?).ok()?.to_owned();
        let value = take_field(&mut input)?.to_vec();
        if attributes.insert(name, value).is_some() {
            return None;
        }
    }
    input.is_empty().then_some(StoredRow { value, attributes })
}

/// The prefix of the index entries of the rows whose attribute `name` is `value`.
fn index_prefix(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + value.len() + 4);
    put_field(&mut out, name.as_bytes());
    put_field(&mut out, value);
    out
}

/// The index entries of a row (none for an absent row).
fn index_keys(key: &[u8], row: Option<&StoredRow>) -> BTreeSet<Vec<u8>> {
    row.iter()
        .flat_map(|r| &r.attributes)
        .map(|(name, value)| {
            let mut entry = index_prefix(name, value);
            entry.extend_from_slice(key);
            entry
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use dsf::store::memory::MemoryStore;
    use tempfile::TempDir;

    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
    }

    fn row(key: &str, value: &str, pairs: &[(&str, &str)]) -> Row {
        Row {
            key: key.as_bytes().to_vec(),
            value: Some(Bytes::copy_from_slice(value.as_bytes())),
            attributes: attrs(pairs),
        }
    }

    fn eq(name: &str, value: &str) -> Predicate {
        Predicate::Eq(name.into(), value.as_bytes().to_vec())
    }

    fn blob(seed: u8) -> BlobRow {
        BlobRow {
            key: Key::from_slice(&[seed; 20]).unwrap(),
            element: Bytes::from(vec![seed; 3 + seed as usize]),
            children: Bytes::from(vec![seed ^ 0xFF; seed as usize]),
        }
    }

    fn keys_of(rows: &[Row]) -> Vec<&[u8]> {
        rows.iter().map(|r| r.key.as_slice()).collect()
    }

    /// Every key of a column family, in order.
    fn cf_keys(store: &RocksStore, name: &'static str) -> Vec<Vec<u8>> {
        let s = &store.shared;
        s.db.iterator_cf(s.cf(name).unwrap(), IteratorMode::Start).map(|e| e.unwrap().0.to_vec()).collect()
    }

    fn put_raw(store: &RocksStore, name: &'static str, key: &[u8], value: &[u8]) {
        let s = &store.shared;
        s.db.put_cf(s.cf(name).unwrap(), key, value).unwrap();
    }

    /// The index column family equals the entries derived from the rows column family.
    fn assert_index_consistent(store: &RocksStore) {
        let s = &store.shared;
        let mut expected = BTreeSet::new();
        for entry in s.db.iterator_cf(s.cf(ROWS).unwrap(), IteratorMode::Start) {
            let (key, stored) = entry.unwrap();
            expected.extend(index_keys(&key, Some(&decode_row(&key, &stored).unwrap())));
        }
        let actual: BTreeSet<Vec<u8>> = cf_keys(store, INDEX).into_iter().collect();
        assert_eq!(actual, expected);
    }

    #[test]
    fn varints_round_trip_and_reject_truncation_and_overflow() {
        for n in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, n);
            buf.push(0xAA);
            let mut input = buf.as_slice();
            assert_eq!(take_varint(&mut input), Some(n));
            assert_eq!(input, &[0xAA]);
            let mut cut = &buf[..buf.len() - 2];
            if n >= 128 {
                assert_eq!(take_varint(&mut cut), None);
            }
        }
        let mut overflow: &[u8] = &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
        assert_eq!(take_varint(&mut overflow), None);
        let mut too_long: &[u8] = &[0x80; 11];
        assert_eq!(take_varint(&mut too_long), None);
    }

    #[test]
    fn encodings_round_trip() {
        for (element, children) in [(&b""[..], &b""[..]), (b"e", b""), (b"", b"c"), (&[7u8; 300][..], &[9u8; 40][..])] {
            let key = Key::from_slice(&[1; 20]).unwrap();
            let decoded = decode_blob(key, &encode_blob(element, children)).unwrap();
            assert_eq!((decoded.element.as_ref(), decoded.children.as_ref()), (element, children));
        }
        let stored = StoredRow { value: Bytes::from_static(b"v"), attributes: attrs(&[("a", ""), ("b", "x")]) };
        assert_eq!(decode_row(b"k", &encode_row(&stored)).unwrap(), stored);
        let heads = Versioned { version: 7, record: Bytes::from_static(b"r") };
        assert_eq!(decode_heads("r", &encode_heads(&heads)).unwrap(), heads);
    }

    #[test]
    fn index_prefixes_do_not_capture_other_values() {
        // "ab" must not be found under the prefix of "a", nor name "a" + value "b…" under name "ab".
        let a = index_prefix("n", b"a");
        assert!(
            !index_keys(b"k", Some(&StoredRow { value: Bytes::new(), attributes: attrs(&[("n", "ab")]) }))
                .iter()
                .any(|e| e.starts_with(&a))
        );
        assert!(!index_prefix("a", b"bc").starts_with(&index_prefix("ab", b"c")));
        assert!(!index_prefix("ab", b"c").starts_with(&index_prefix("a", b"bc")));
    }

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
    async fn index_entries_follow_the_row_attributes() {
        let dir = TempDir::new().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        store.put_row(row("k", "v1", &[("branch_name", "a"), ("keyword", "x")])).await.unwrap();
        assert_eq!(cf_keys(&store, INDEX).len(), 2);

        // Replacing the row replaces its entries.
        store.put_row(row("k", "v2", &[("branch_name", "b")])).await.unwrap();
        let mut expected = index_prefix("branch_name", b"b");
        expected.extend_from_slice(b"k");
        assert_eq!(cf_keys(&store, INDEX), vec![expected]);
        assert!(store.query(vec![eq("branch_name", "a")]).await.unwrap().is_empty());
        assert!(store.query(vec![eq("keyword", "x")]).await.unwrap().is_empty());
        assert_eq!(keys_of(&store.query(vec![eq("branch_name", "b")]).await.unwrap()), vec![b"k"]);

        // An attribute-only update overwrites one attribute, adds another, keeps the value.
        store.update_index(b"k".to_vec(), attrs(&[("branch_name", "c"), ("keyword", "y")])).await.unwrap();
        assert_eq!(cf_keys(&store, INDEX).len(), 2);
        assert!(store.query(vec![eq("branch_name", "b")]).await.unwrap().is_empty());
        assert_eq!(
            store.query(vec![eq("keyword", "y")]).await.unwrap(),
            vec![row("k", "v2", &[("branch_name", "c"), ("keyword", "y")])]
        );
        assert_index_consistent(&store);

        // A plain put clears the attributes; removal clears everything.
        store.put(b"k".to_vec(), Bytes::from_static(b"v3")).await.unwrap();
        assert!(cf_keys(&store, INDEX).is_empty());
        store.put_row(row("k", "v4", &[("branch_name", "d")])).await.unwrap();
        store.remove(b"k".to_vec()).await.unwrap();
        assert!(cf_keys(&store, INDEX).is_empty());
        assert!(cf_keys(&store, ROWS).is_empty());

        // The same key twice in one batch: the later row wins, with only its entries.
        store
            .batch_put_rows(vec![
                row("k", "first", &[("branch_name", "e"), ("keyword", "z")]),
                row("k", "second", &[("branch_name", "f")]),
                Row { key: b"k".to_vec(), value: None, attributes: attrs(&[("subject_key", "s")]) },
            ])
            .await
            .unwrap();
        assert_eq!(
            store.query(vec![eq("branch_name", "f")]).await.unwrap(),
            vec![row("k", "second", &[("branch_name", "f"), ("subject_key", "s")])]
        );
        assert_eq!(cf_keys(&store, INDEX).len(), 2);
        assert_index_consistent(&store);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_batch_writes_nothing() {
        let dir = TempDir::new().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let result = store
            .batch_put_rows(vec![
                row("a", "v", &[("branch_name", "m")]),
                Row { key: b"missing".to_vec(), value: None, attributes: attrs(&[("keyword", "k")]) },
            ])
            .await;
        assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
        let result = store.batch_put_rows(vec![row("b", "v", &[]), row("c", "v", &[("not_indexed", "x")])]).await;
        assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
        assert!(cf_keys(&store, ROWS).is_empty());
        assert!(cf_keys(&store, INDEX).is_empty());
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn exactly_one_concurrent_compare_and_set_wins() {
        let dir = TempDir::new().unwrap();
        let store = RocksStore::open_with(dir.path(), RocksOptions::default().sync(false)).unwrap();
        for expected in [None, Some(1), Some(2)] {
            let tasks: Vec<_> = (0..16u8)
                .map(|i| {
                    let store = store.clone();
                    tokio::spawn(async move { store.cas_heads("repo".into(), expected, Bytes::from(vec![i])).await })
                })
                .collect();
            let mut applied = Vec::new();
            let mut lost = Vec::new();
            for task in tasks {
                match task.await.unwrap().unwrap() {
                    Cas::Applied(v) => applied.push(v),
                    Cas::Lost(current) => lost.push(current),
                }
            }
            let version = expected.unwrap_or(0) + 1;
            assert_eq!(applied, vec![version]);
            let current = store.get_heads("repo".into()).await.unwrap().unwrap();
            assert_eq!(current.version, version);
            assert_eq!(lost.len(), 15);
            assert!(lost.iter().all(|l| l.as_ref() == Some(&current)));
        }
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

    /// A tiny deterministic generator, so the model test needs no dependency.
    struct Lcg(u64);

    impl Lcg {
        fn below(&mut self, n: u64) -> u64 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (self.0 >> 33) % n
        }
    }

    const NAMES: [&str; 3] = ["repository_key", "branch_name", "keyword"];

    fn random_row(rng: &mut Lcg, with_value: bool) -> Row {
        let key = format!("k{}", rng.below(6)).into_bytes();
        let value = with_value.then(|| Bytes::from(format!("v{}", rng.below(100))));
        let mut attributes = BTreeMap::new();
        for name in NAMES {
            if rng.below(2) == 0 {
                attributes.insert(name.to_string(), vec![b'0' + rng.below(3) as u8]);
            }
        }
        Row { key, value, attributes }
    }

    /// Random operations against the RocksDB store and the memory store, with reopen steps:
    /// every read and query must agree.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn agrees_with_the_memory_store() {
        let dir = TempDir::new().unwrap();
        let options = RocksOptions::default().sync(false);
        let mut rocks = RocksStore::open_with(dir.path(), options.clone()).unwrap();
        let memory = MemoryStore::new();
        let mut rng = Lcg(0x5EED);
        for step in 0..300 {
            match rng.below(8) {
                0 | 1 => {
                    let r = random_row(&mut rng, true);
                    rocks.put_row(r.clone()).await.unwrap();
                    memory.put_row(r).await.unwrap();
                }
                2 => {
                    // Attribute-only updates only of rows that exist, so both stores succeed.
                    let mut rows = Vec::new();
                    for _ in 0..=rng.below(3) {
                        let with_value = rng.below(2) == 0;
                        let r = random_row(&mut rng, with_value);
                        if with_value || memory.has_key(r.key.clone()).await.unwrap() {
                            rows.push(r);
                        }
                    }
                    rocks.batch_put_rows(rows.clone()).await.unwrap();
                    memory.batch_put_rows(rows).await.unwrap();
                }
                3 => {
                    let r = random_row(&mut rng, false);
                    let expected = memory.update_index(r.key.clone(), r.attributes.clone()).await.is_ok();
                    assert_eq!(rocks.update_index(r.key, r.attributes).await.is_ok(), expected);
                }
                4 => {
                    let rows: Vec<(Vec<u8>, Bytes)> = (0..=rng.below(2))
                        .map(|_| (format!("k{}", rng.below(6)).into_bytes(), Bytes::from(format!("p{step}"))))
                        .collect();
                    rocks.batch_put(rows.clone()).await.unwrap();
                    memory.batch_put(rows).await.unwrap();
                }
                5 => {
                    let key = format!("k{}", rng.below(6)).into_bytes();
                    rocks.remove(key.clone()).await.unwrap();
                    memory.remove(key).await.unwrap();
                }
                6 => {
                    drop(rocks);
                    rocks = RocksStore::open_with(dir.path(), options.clone()).unwrap();
                }
                _ => {
                    let key = format!("k{}", rng.below(6)).into_bytes();
                    let value = Bytes::from(format!("q{step}"));
                    rocks.put(key.clone(), value.clone()).await.unwrap();
                    memory.put(key, value).await.unwrap();
                }
            }
            let keys: Vec<Vec<u8>> = (0..6).map(|i| format!("k{i}").into_bytes()).collect();
            assert_eq!(rocks.batch_get(keys.clone()).await.unwrap(), memory.batch_get(keys.clone()).await.unwrap());
            assert_eq!(rocks.batch_has_key(keys.clone()).await.unwrap(), memory.batch_has_key(keys).await.unwrap());
            for name in NAMES {
                for value in ["0", "1", "2"] {
                    let q = vec![eq(name, value)];
                    assert_eq!(rocks.query(q.clone()).await.unwrap(), memory.query(q).await.unwrap(), "step {step}");
                }
            }
            let q = vec![eq("repository_key", "1"), Predicate::Gt("branch_name".into(), b"0".to_vec())];
            assert_eq!(rocks.query(q.clone()).await.unwrap(), memory.query(q).await.unwrap(), "step {step}");
            assert_index_consistent(&rocks);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn queries_are_checked_like_the_memory_store() {
        let dir = TempDir::new().unwrap();
        let store = RocksStore::with_indexed(dir.path(), vec!["a".into(), "b".into()]).unwrap();
        assert_eq!(store.indexed_attributes(), vec!["a".to_string(), "b".to_string()]);
        for q in [
            vec![Predicate::Gt("a".into(), Vec::new())],
            vec![eq("c", "x")],
            vec![eq("a", "x"), Predicate::Gt("value".into(), Vec::new())],
        ] {
            let result = store.query(q).await;
            assert!(matches!(result, Err(StoreError::Invalid(_))), "{result:?}");
        }
        store.put_row(row("1", "v", &[("a", "x"), ("b", "")])).await.unwrap();
        store.put_row(row("0", "v", &[("a", "x"), ("b", "y")])).await.unwrap();
        store.put_row(row("2", "v", &[("a", "x")])).await.unwrap();
        assert_eq!(keys_of(&store.query(vec![eq("a", "x")]).await.unwrap()), vec![b"0", b"1", b"2"]);
        let non_empty = vec![eq("a", "x"), Predicate::Gt("b".into(), Vec::new())];
        assert_eq!(keys_of(&store.query(non_empty).await.unwrap()), vec![b"0"]);
        assert!(matches!(store.query(vec![eq("b", "")]).await, Err(StoreError::Invalid(_))));
        assert_eq!(keys_of(&store.query(vec![eq("b", ""), eq("a", "x")]).await.unwrap()), vec![b"1"]);
    }
}
