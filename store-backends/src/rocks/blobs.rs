//! Blobs: the element bytes and child keys of each element key.

use std::future::Future;

use dsf::key::Key;
use dsf::store::{BlobRow, BlobStore, StoreResult};
use rocksdb::ReadOptions;

use super::RocksStore;
use super::codec::decode_blob;
use super::group::Write;
use super::schema::BLOBS;

impl BlobStore for RocksStore {
    fn put_blobs(&self, rows: Vec<BlobRow>) -> impl Future<Output = StoreResult<()>> + Send {
        self.blocking(move |s| {
            if rows.is_empty() {
                return Ok(());
            }
            s.submit(Write::Blobs(rows)).map(|_| ())
        })
    }

    fn get_blobs(&self, keys: Vec<Key>) -> impl Future<Output = StoreResult<Vec<Option<BlobRow>>>> + Send {
        self.read(keys.len(), move |s| {
            let found = s.multi_get(s.cf(BLOBS)?, keys.iter().map(Key::as_bytes), false, &ReadOptions::default())?;
            keys.iter().zip(found).map(|(key, v)| v.map(|v| decode_blob(*key, &v)).transpose()).collect()
        })
    }

    fn has_blobs(&self, keys: Vec<Key>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        self.read(keys.len(), move |s| {
            let found = s.multi_get(s.cf(BLOBS)?, keys.iter().map(Key::as_bytes), false, &ReadOptions::default())?;
            Ok(found.iter().map(Option::is_some).collect())
        })
    }
}
