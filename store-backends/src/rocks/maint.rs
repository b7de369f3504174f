//! Maintenance: paged listings of blobs, rows and repositories, and unconditional deletions.

use std::future::Future;

use dsf::key::Key;
use dsf::store::{BlobStore, KvStore, Listed, Maintenance, Page, StoreError, StoreResult};
use rocksdb::{IteratorMode, WriteBatch};

use super::codec::db_error;
use super::rows::Change;
use super::schema::{BLOBS, HEADS, ROWS};
use super::{RocksStore, Shared};

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
            s.write(batch).map_err(db_error)
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
