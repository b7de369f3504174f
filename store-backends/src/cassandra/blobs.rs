//! The `blobs` table: immutable elements by key, written by plain idempotent inserts.

use bytes::Bytes;
use dsf::key::Key;
use dsf::store::{BlobRow, BlobStore, StoreError, StoreResult};

use super::CassandraStore;

impl BlobStore for CassandraStore {
    async fn put_blobs(&self, rows: Vec<BlobRow>) -> StoreResult<()> {
        self.each(rows, |r| async move {
            self.execute(&self.statements.insert_blob, (r.key.as_bytes(), r.element, r.children)).await.map(drop)
        })
        .await
        .map(drop)
    }

    async fn get_blobs(&self, keys: Vec<Key>) -> StoreResult<Vec<Option<BlobRow>>> {
        self.each(keys, |key| async move {
            let row = self
                .execute_one::<(Option<Bytes>, Option<Bytes>)>(&self.statements.select_blob, (key.as_bytes(),))
                .await?;
            match row {
                None => Ok(None),
                Some((Some(element), children)) => {
                    Ok(Some(BlobRow { key, element, children: children.unwrap_or_default() }))
                }
                Some((None, _)) => Err(StoreError::Corrupt(format!("blob {key} has no element"))),
            }
        })
        .await
    }

    async fn has_blobs(&self, keys: Vec<Key>) -> StoreResult<Vec<bool>> {
        self.each(keys, |key| async move {
            let row = self.execute_one::<(Bytes,)>(&self.statements.has_blob, (key.as_bytes(),)).await?;
            Ok(row.is_some())
        })
        .await
    }
}
