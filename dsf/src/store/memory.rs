//! The in-memory store: for tests and small embedded use. Nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::future::{Future, Ready, ready};
use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use super::maint::{Listed, Maintenance, Page, page_after};
use super::{
    BlobRow, BlobStore, Cas, HeadStore, IndexStore, KvStore, Predicate, Row, StoreError, StoreResult, Versioned,
    check_attributes, check_predicates, matches,
};
use crate::key::Key;

/// A store in memory. Every operation takes one lock and completes before it returns.
#[derive(Debug)]
pub struct MemoryStore {
    inner: Mutex<Inner>,
    indexed: Vec<String>,
}

#[derive(Debug, Default)]
struct Inner {
    blobs: HashMap<Key, BlobRow>,
    heads: HashMap<String, Versioned>,
    rows: BTreeMap<Vec<u8>, StoredRow>,
}

#[derive(Debug, Clone)]
struct StoredRow {
    value: Bytes,
    attributes: BTreeMap<String, Vec<u8>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl MemoryStore {
    /// An empty store whose index has the commit attributes of spec §4.1.
    pub fn new() -> MemoryStore {
        MemoryStore::with_indexed(super::COMMIT_ATTRIBUTES.iter().map(|s| s.to_string()).collect())
    }

    /// An empty store with these indexed attribute names.
    pub fn with_indexed(indexed: Vec<String>) -> MemoryStore {
        MemoryStore { inner: Mutex::new(Inner::default()), indexed }
    }

    fn lock(&self) -> StoreResult<MutexGuard<'_, Inner>> {
        self.inner.lock().map_err(|_| StoreError::Backend("a writer panicked while holding the memory store".into()))
    }

    /// Runs `f` under the lock now; the returned future is already complete.
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> StoreResult<T>) -> Ready<StoreResult<T>> {
        ready(self.lock().and_then(|mut inner| f(&mut inner)))
    }
}

impl super::Store for MemoryStore {}

impl BlobStore for MemoryStore {
    fn put_blobs(&self, rows: Vec<BlobRow>) -> impl Future<Output = StoreResult<()>> + Send {
        self.with(|i| {
            for r in rows {
                i.blobs.insert(r.key, r);
            }
            Ok(())
        })
    }

    fn get_blobs(&self, keys: Vec<Key>) -> impl Future<Output = StoreResult<Vec<Option<BlobRow>>>> + Send {
        self.with(|i| Ok(keys.iter().map(|k| i.blobs.get(k).cloned()).collect()))
    }

    fn has_blobs(&self, keys: Vec<Key>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        self.with(|i| Ok(keys.iter().map(|k| i.blobs.contains_key(k)).collect()))
    }
}

impl HeadStore for MemoryStore {
    fn get_heads(&self, repository: String) -> impl Future<Output = StoreResult<Option<Versioned>>> + Send {
        self.with(|i| Ok(i.heads.get(&repository).cloned()))
    }

    fn cas_heads(
        &self,
        repository: String,
        expected: Option<u64>,
        record: Bytes,
    ) -> impl Future<Output = StoreResult<Cas>> + Send {
        self.with(|i| {
            let current = i.heads.get(&repository);
            if current.map(|c| c.version) != expected {
                return Ok(Cas::Lost(current.cloned()));
            }
            let version = expected.unwrap_or(0) + 1;
            i.heads.insert(repository, Versioned { version, record });
            Ok(Cas::Applied(version))
        })
    }
}

impl KvStore for MemoryStore {
    fn get(&self, key: Vec<u8>) -> impl Future<Output = StoreResult<Option<Bytes>>> + Send {
        self.with(|i| Ok(i.rows.get(&key).map(|r| r.value.clone())))
    }

    fn put(&self, key: Vec<u8>, value: Bytes) -> impl Future<Output = StoreResult<()>> + Send {
        self.with(|i| {
            i.rows.insert(key, StoredRow { value, attributes: BTreeMap::new() });
            Ok(())
        })
    }

    fn remove(&self, key: Vec<u8>) -> impl Future<Output = StoreResult<()>> + Send {
        self.with(|i| {
            i.rows.remove(&key);
            Ok(())
        })
    }

    fn has_key(&self, key: Vec<u8>) -> impl Future<Output = StoreResult<bool>> + Send {
        self.with(|i| Ok(i.rows.contains_key(&key)))
    }

    fn batch_get(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<Option<Bytes>>>> + Send {
        self.with(|i| Ok(keys.iter().map(|k| i.rows.get(k).map(|r| r.value.clone())).collect()))
    }

    fn batch_put(&self, rows: Vec<(Vec<u8>, Bytes)>) -> impl Future<Output = StoreResult<()>> + Send {
        self.with(|i| {
            for (key, value) in rows {
                i.rows.insert(key, StoredRow { value, attributes: BTreeMap::new() });
            }
            Ok(())
        })
    }

    fn batch_has_key(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        self.with(|i| Ok(keys.iter().map(|k| i.rows.contains_key(k)).collect()))
    }
}

impl IndexStore for MemoryStore {
    fn indexed_attributes(&self) -> Vec<String> {
        self.indexed.clone()
    }

    fn batch_put_rows(&self, rows: Vec<Row>) -> impl Future<Output = StoreResult<()>> + Send {
        let checked = rows.iter().try_for_each(|r| check_attributes(&self.indexed, r.attributes.keys()));
        self.with(move |i| {
            checked?;
            // A failing batch writes nothing: check every attribute-only update first.
            let mut written = std::collections::HashSet::new();
            for row in &rows {
                if row.value.is_some() {
                    written.insert(&row.key);
                } else if !i.rows.contains_key(&row.key) && !written.contains(&row.key) {
                    return Err(StoreError::Invalid(format!(
                        "attribute-only update of a row that does not exist: {}",
                        hex(&row.key)
                    )));
                }
            }
            for row in rows {
                match row.value {
                    Some(value) => {
                        i.rows.insert(row.key, StoredRow { value, attributes: row.attributes });
                    }
                    None => {
                        let existing = i.rows.get_mut(&row.key).expect("checked above");
                        existing.attributes.extend(row.attributes);
                    }
                }
            }
            Ok(())
        })
    }

    fn get_rows(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<Option<Row>>>> + Send {
        self.with(|i| {
            Ok(keys
                .into_iter()
                .map(|k| {
                    let r = i.rows.get(&k)?;
                    Some(Row { value: Some(r.value.clone()), attributes: r.attributes.clone(), key: k })
                })
                .collect())
        })
    }

    fn query(&self, predicates: Vec<Predicate>) -> impl Future<Output = StoreResult<Vec<Row>>> + Send {
        let checked = check_predicates(&self.indexed, &predicates);
        self.with(move |i| {
            checked?;
            Ok(i.rows
                .iter()
                .filter(|(_, r)| matches(&r.attributes, &predicates))
                .map(|(k, r)| Row { key: k.clone(), value: Some(r.value.clone()), attributes: r.attributes.clone() })
                .collect())
        })
    }
}

/// No write times: deletions are unconditional (the memory store is maintained by its owner,
/// with no other writer).
impl Maintenance for MemoryStore {
    fn write_times(&self) -> bool {
        false
    }

    fn list_blobs(
        &self,
        cursor: Option<Vec<u8>>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Page<Listed<Key>>>> + Send {
        self.with(|i| {
            let mut keys: Vec<Key> = i.blobs.keys().copied().collect();
            keys.sort();
            let sorted = keys.into_iter().map(|k| (k.as_bytes().to_vec(), Listed { key: k, written: None }));
            Ok(page_after(sorted, cursor.as_deref(), limit))
        })
    }

    fn list_rows(
        &self,
        cursor: Option<Vec<u8>>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Page<Listed<Vec<u8>>>>> + Send {
        self.with(|i| {
            let sorted = i.rows.keys().map(|k| (k.clone(), Listed { key: k.clone(), written: None }));
            Ok(page_after(sorted, cursor.as_deref(), limit))
        })
    }

    fn list_repositories(
        &self,
        cursor: Option<Vec<u8>>,
        limit: usize,
    ) -> impl Future<Output = StoreResult<Page<String>>> + Send {
        self.with(|i| {
            let mut names: Vec<&String> = i.heads.keys().collect();
            names.sort();
            let sorted = names.into_iter().map(|n| (n.as_bytes().to_vec(), n.clone()));
            Ok(page_after(sorted, cursor.as_deref(), limit))
        })
    }

    fn delete_blobs(
        &self,
        keys: Vec<Key>,
        _written_before: Option<i64>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.with(|i| {
            for k in &keys {
                i.blobs.remove(k);
            }
            Ok(())
        })
    }

    fn delete_rows(
        &self,
        keys: Vec<Vec<u8>>,
        _written_before: Option<i64>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.with(|i| {
            for k in &keys {
                i.rows.remove(k);
            }
            Ok(())
        })
    }

    fn freshen_blobs(&self, keys: Vec<Key>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        self.has_blobs(keys)
    }

    fn freshen_rows(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        self.batch_has_key(keys)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}
