//! Maintenance of a [`CassandraStore`]: listing, conditional deletion and freshening, for
//! `fsck` and `gc`.
//!
//! - Listings page through a table with the driver's paging state (the cursor is its raw
//!   bytes), in token order, and report `WRITETIME` of the element (blobs) or value (rows).
//! - Deletions are idempotent `DELETE … USING TIMESTAMP t`: a tombstone at `t` removes only
//!   cells written at or before `t`, so an entry written again after `t` (a push freshening
//!   it) survives, whatever the order in which the two reach the replicas. Without
//!   `written_before`, `t` is now. A row's index entries are deleted with the same timestamp.
//! - Freshening reads an entry and writes it again unchanged, which gives it a new write time.
//!
//! Statements run at the configured consistency (QUORUM by default), so a listing sees every
//! write that completed before it read the partition.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dsf::key::Key;
use dsf::store::{BlobStore, IndexStore, Listed, Maintenance, Page, Row, StoreError, StoreResult};
use futures::{StreamExt, TryStreamExt, stream};
use scylla::deserialize::row::DeserializeRow;
use scylla::response::{PagingState, PagingStateResponse};
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;

use super::CassandraStore;
use super::codec::execution_error;

fn now_micros() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

impl CassandraStore {
    fn table(&self, name: &str) -> String {
        format!("\"{}\".{name}", self.keyspace())
    }

    async fn prepare(&self, cql: String) -> StoreResult<PreparedStatement> {
        let mut prepared = self.session.prepare(cql).await.map_err(|e| execution_error(e.into()))?;
        prepared.set_is_idempotent(true);
        Ok(prepared)
    }

    /// One page of a `SELECT` without bind values, from a raw paging state.
    async fn select_page<R>(&self, cql: String, cursor: Option<Vec<u8>>, limit: usize) -> StoreResult<Page<R>>
    where
        R: for<'f, 'm> DeserializeRow<'f, 'm>,
    {
        let mut statement = self.prepare(cql).await?;
        statement.set_page_size(i32::try_from(limit.max(1)).unwrap_or(i32::MAX));
        let state = cursor.map_or_else(PagingState::start, PagingState::new_from_raw_bytes);
        let (result, paging) =
            self.session.execute_single_page(&statement, (), state).await.map_err(execution_error)?;
        let rows =
            result.into_rows_result().map_err(|e| StoreError::Backend(format!("expected rows from Cassandra: {e}")))?;
        let items = rows
            .rows::<R>()
            .map_err(|e| StoreError::Corrupt(format!("a listing has an unexpected shape: {e}")))?
            .collect::<Result<Vec<R>, _>>()
            .map_err(|e| StoreError::Corrupt(format!("undecodable row: {e}")))?;
        let next = match paging {
            PagingStateResponse::HasMorePages { state } => state.as_bytes_slice().map(|b| b.to_vec()),
            PagingStateResponse::NoMorePages => None,
        };
        Ok(Page { items, next })
    }

    /// Runs one statement per item, at most `max_concurrency` at once.
    async fn each_statement<I, V, F>(&self, statement: &PreparedStatement, items: Vec<I>, values: F) -> StoreResult<()>
    where
        F: Fn(I) -> V,
        V: SerializeRow,
    {
        stream::iter(items)
            .map(|i| {
                let v = values(i);
                async move { self.session.execute_unpaged(statement, v).await.map(drop).map_err(execution_error) }
            })
            .buffer_unordered(self.max_concurrency)
            .try_collect::<()>()
            .await
    }
}

impl Maintenance for CassandraStore {
    fn write_times(&self) -> bool {
        true
    }

    async fn list_blobs(&self, cursor: Option<Vec<u8>>, limit: usize) -> StoreResult<Page<Listed<Key>>> {
        let cql = format!("SELECT key, WRITETIME(element) FROM {}", self.table("blobs"));
        let page = self.select_page::<(Vec<u8>, Option<i64>)>(cql, cursor, limit).await?;
        let items = page
            .items
            .into_iter()
            .map(|(k, written)| {
                Key::from_slice(&k)
                    .map(|key| Listed { key, written })
                    .ok_or_else(|| StoreError::Corrupt(format!("a blob key of {} bytes", k.len())))
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Page { items, next: page.next })
    }

    async fn list_rows(&self, cursor: Option<Vec<u8>>, limit: usize) -> StoreResult<Page<Listed<Vec<u8>>>> {
        let cql = format!("SELECT key, WRITETIME(value) FROM {}", self.table("rows"));
        let page = self.select_page::<(Vec<u8>, Option<i64>)>(cql, cursor, limit).await?;
        // A row without a value (attributes only) does not exist.
        let items = page
            .items
            .into_iter()
            .filter_map(|(key, written)| written.map(|w| Listed { key, written: Some(w) }))
            .collect();
        Ok(Page { items, next: page.next })
    }

    async fn list_repositories(&self, cursor: Option<Vec<u8>>, limit: usize) -> StoreResult<Page<String>> {
        let cql = format!("SELECT repository FROM {}", self.table("heads"));
        let page = self.select_page::<(String,)>(cql, cursor, limit).await?;
        Ok(Page { items: page.items.into_iter().map(|(r,)| r).collect(), next: page.next })
    }

    async fn delete_blobs(&self, keys: Vec<Key>, written_before: Option<i64>) -> StoreResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let ts = written_before.unwrap_or_else(now_micros);
        let statement =
            self.prepare(format!("DELETE FROM {} USING TIMESTAMP ? WHERE key = ?", self.table("blobs"))).await?;
        self.each_statement(&statement, keys, |k| (ts, k.as_bytes().to_vec())).await
    }

    async fn delete_rows(&self, keys: Vec<Vec<u8>>, written_before: Option<i64>) -> StoreResult<()> {
        let keys: Vec<Vec<u8>> = keys.into_iter().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            return Ok(());
        }
        let ts = written_before.unwrap_or_else(now_micros);
        let select = self.prepare(format!("SELECT attributes FROM {} WHERE key = ?", self.table("rows"))).await?;
        let attributes: Vec<BTreeMap<String, Vec<u8>>> = stream::iter(keys.iter().cloned())
            .map(|k| {
                let select = &select;
                async move {
                    let result = self.session.execute_unpaged(select, (k,)).await.map_err(execution_error)?;
                    let rows = result
                        .into_rows_result()
                        .map_err(|e| StoreError::Backend(format!("expected rows from Cassandra: {e}")))?;
                    let row = rows
                        .maybe_first_row::<(Option<BTreeMap<String, Vec<u8>>>,)>()
                        .map_err(|e| StoreError::Corrupt(format!("undecodable row: {e}")))?;
                    Ok::<_, StoreError>(row.and_then(|(a,)| a).unwrap_or_default())
                }
            })
            .buffered(self.max_concurrency)
            .try_collect()
            .await?;
        let delete_row =
            self.prepare(format!("DELETE FROM {} USING TIMESTAMP ? WHERE key = ?", self.table("rows"))).await?;
        self.each_statement(&delete_row, keys.clone(), |k| (ts, k)).await?;
        let entries: Vec<(String, Vec<u8>, Vec<u8>)> = keys
            .iter()
            .zip(attributes)
            .flat_map(|(k, attrs)| {
                // Only what was indexed has an entry: non-empty values of indexed attributes.
                attrs
                    .into_iter()
                    .filter(|(n, v)| !v.is_empty() && !dsf::store::is_stored_only(n))
                    .map(move |(n, v)| (n, v, k.clone()))
            })
            .collect();
        let delete_entry = self
            .prepare(format!(
                "DELETE FROM {} USING TIMESTAMP ? WHERE name = ? AND value = ? AND key = ?",
                self.table("row_index")
            ))
            .await?;
        self.each_statement(&delete_entry, entries, |(n, v, k)| (ts, n, v, k)).await
    }

    async fn freshen_blobs(&self, keys: Vec<Key>) -> StoreResult<Vec<bool>> {
        let found = self.get_blobs(keys).await?;
        let present = found.iter().map(Option::is_some).collect();
        let rows: Vec<_> = found.into_iter().flatten().collect();
        if !rows.is_empty() {
            self.put_blobs(rows).await?;
        }
        Ok(present)
    }

    async fn freshen_rows(&self, keys: Vec<Vec<u8>>) -> StoreResult<Vec<bool>> {
        let select =
            self.prepare(format!("SELECT value, attributes FROM {} WHERE key = ?", self.table("rows"))).await?;
        type Columns = (Option<Bytes>, Option<BTreeMap<String, Vec<u8>>>);
        let found: Vec<Option<Row>> = stream::iter(keys)
            .map(|key| {
                let select = &select;
                async move {
                    if key.is_empty() {
                        return Ok(None);
                    }
                    let result = self.session.execute_unpaged(select, (&key,)).await.map_err(execution_error)?;
                    let rows = result
                        .into_rows_result()
                        .map_err(|e| StoreError::Backend(format!("expected rows from Cassandra: {e}")))?;
                    let row = rows
                        .maybe_first_row::<Columns>()
                        .map_err(|e| StoreError::Corrupt(format!("undecodable row: {e}")))?;
                    Ok::<_, StoreError>(row.and_then(|(value, attributes)| {
                        value.map(|v| Row { key, value: Some(v), attributes: attributes.unwrap_or_default() })
                    }))
                }
            })
            .buffered(self.max_concurrency)
            .try_collect()
            .await?;
        let present = found.iter().map(Option::is_some).collect();
        let rows: Vec<Row> = found.into_iter().flatten().collect();
        if !rows.is_empty() {
            self.batch_put_rows(rows).await?;
        }
        Ok(present)
    }
}
