//! Heads: one versioned record per repository, changed only by compare-and-set.

use std::future::Future;

use bytes::Bytes;
use dsf::store::{Cas, HeadStore, StoreError, StoreResult, Versioned};

use super::codec::{db_error, decode_heads};
use super::group::{Write, Written};
use super::schema::HEADS;
use super::{RocksStore, Shared};

impl Shared {
    pub(super) fn get_heads(&self, repository: &str) -> StoreResult<Option<Versioned>> {
        let stored = self.db.get_pinned_cf(self.cf(HEADS)?, repository.as_bytes()).map_err(db_error)?;
        stored.map(|s| decode_heads(repository, &s)).transpose()
    }

    /// A compare-and-set, grouped with concurrent writes.
    fn cas_heads(&self, repository: String, expected: Option<u64>, record: Bytes) -> StoreResult<Cas> {
        match self.submit(Write::Heads { repository, expected, record })? {
            Written::Cas(cas) => Ok(cas),
            Written::Done => Err(StoreError::Backend("a compare-and-set was answered without its outcome".into())),
        }
    }
}

/// The heads version a compare-and-set from `expected` writes.
pub(super) fn next_version(repository: &str, expected: Option<u64>) -> StoreResult<u64> {
    expected
        .unwrap_or(0)
        .checked_add(1)
        .ok_or_else(|| StoreError::Invalid(format!("the heads version of {repository} cannot grow")))
}

impl HeadStore for RocksStore {
    fn get_heads(&self, repository: String) -> impl Future<Output = StoreResult<Option<Versioned>>> + Send {
        self.read(1, move |s| s.get_heads(&repository))
    }

    fn cas_heads(
        &self,
        repository: String,
        expected: Option<u64>,
        record: Bytes,
    ) -> impl Future<Output = StoreResult<Cas>> + Send {
        self.blocking(move |s| s.cas_heads(repository, expected, record))
    }
}

#[cfg(test)]
mod tests {
    use tempfile::TempDir;

    use super::super::RocksOptions;
    use super::*;

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
}
