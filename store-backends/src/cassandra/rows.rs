//! The `rows` table (ION's `IIndexStore`: a value and its attributes) and its query table
//! `row_index`: one entry per `(attribute, value, row key)`.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dsf::store::{
    IndexStore, KvStore, Predicate, Row, StoreError, StoreResult, check_attributes, check_predicates, is_stored_only,
    matches,
};
use futures::{StreamExt, TryStreamExt, stream};

use super::CassandraStore;
use super::codec::{next_row_error, pager_error};

/// Write timestamps in microseconds since the epoch, strictly increasing within the process.
#[derive(Debug, Default)]
pub(crate) struct Clock(AtomicI64);

impl Clock {
    fn next(&self) -> i64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
        let step = |last: i64| now.max(last + 1);
        match self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(step(last))) {
            Ok(last) | Err(last) => step(last),
        }
    }
}

/// A stored index row as read: the value (`None`: the row does not exist), its attributes, and
/// the write time of its value (the timestamp of the last whole-row write).
#[derive(Debug, Default)]
pub(crate) struct StoredRow {
    value: Option<Bytes>,
    attributes: BTreeMap<String, Vec<u8>>,
    written: Option<i64>,
}

/// What a batch does to one row key, after folding every request for that key in order.
#[derive(Debug)]
enum Change {
    /// The row becomes this value and these attributes.
    Replace { value: Bytes, attributes: BTreeMap<String, Vec<u8>> },
    /// These attributes are set on the existing row.
    Merge(BTreeMap<String, Vec<u8>>),
}

/// The folded change of one key; `needs_row`: its first request was an attribute-only update,
/// which requires the row to exist.
#[derive(Debug)]
struct KeyChange {
    key: Vec<u8>,
    change: Change,
    needs_row: bool,
}

/// One write statement of the rows tables.
#[derive(Debug)]
enum Write {
    IndexInsert { name: String, value: Vec<u8>, key: Vec<u8>, ts: i64 },
    IndexDelete { name: String, value: Vec<u8>, key: Vec<u8>, ts: i64 },
    RowInsert { key: Vec<u8>, value: Bytes, attributes: BTreeMap<String, Vec<u8>>, ts: i64 },
    RowMerge { key: Vec<u8>, attributes: BTreeMap<String, Vec<u8>>, ts: i64 },
    RowDelete { key: Vec<u8>, ts: i64 },
}

/// The writes of one batch, in the order that keeps `row_index` complete.
#[derive(Debug, Default)]
struct Plan {
    index_inserts: Vec<Write>,
    rows: Vec<Write>,
    index_deletes: Vec<Write>,
}

impl CassandraStore {
    /// Runs writes, at most `max_concurrency` at once.
    async fn run(&self, writes: Vec<Write>) -> StoreResult<()> {
        stream::iter(writes)
            .map(|w| self.write(w))
            .buffer_unordered(self.max_concurrency)
            .try_for_each(|()| async { Ok(()) })
            .await
    }

    async fn write(&self, write: Write) -> StoreResult<()> {
        let s = &self.statements;
        match write {
            Write::IndexInsert { name, value, key, ts } => self.execute(&s.insert_index, (name, value, key, ts)).await,
            Write::IndexDelete { name, value, key, ts } => self.execute(&s.delete_index, (ts, name, value, key)).await,
            Write::RowInsert { key, value, attributes, ts } => {
                self.execute(&s.insert_row, (key, value, attributes, ts)).await
            }
            Write::RowMerge { key, attributes, ts } => self.execute(&s.merge_attributes, (ts, attributes, key)).await,
            Write::RowDelete { key, ts } => self.execute(&s.delete_row, (ts, key)).await,
        }
        .map(drop)
    }

    /// Reads a row's value and attributes (both empty if there is no such row).
    pub(crate) async fn read_row(&self, key: Vec<u8>) -> StoreResult<StoredRow> {
        if key.is_empty() {
            return Ok(StoredRow::default());
        }
        type Columns = (Option<Bytes>, Option<BTreeMap<String, Vec<u8>>>, Option<i64>);
        let row = self.execute_one::<Columns>(&self.statements.select_row, (key,)).await?;
        Ok(row
            .map(|(value, attributes, written)| StoredRow {
                value,
                attributes: attributes.unwrap_or_default(),
                written,
            })
            .unwrap_or_default())
    }

    /// Reads a row's value.
    async fn read_value(&self, key: Vec<u8>) -> StoreResult<Option<Bytes>> {
        if key.is_empty() {
            return Ok(None);
        }
        Ok(self.execute_one::<(Option<Bytes>,)>(&self.statements.select_value, (key,)).await?.and_then(|(v,)| v))
    }

    /// Applies row requests in order, with the semantics of the memory store, except that a
    /// failed attribute-only update fails the whole batch before anything is written.
    ///
    /// A whole-row write is blind: it writes the row and its index entries without reading
    /// what they replace, so the entries of the old attributes stay behind until a query meets
    /// them (see [`IndexStore::query`] below). Only attribute-only updates read the row: it
    /// must exist, and the entries of the values they change are deleted.
    async fn write_rows(&self, rows: Vec<Row>) -> StoreResult<()> {
        if rows.iter().any(|r| r.key.is_empty()) {
            return Err(StoreError::Invalid("Cassandra cannot store a row with an empty key".into()));
        }
        let changes = fold(rows);
        // Only a key whose first request is attribute-only (a merge) is read.
        let reads: Vec<Option<Vec<u8>>> = changes.iter().map(|c| c.needs_row.then(|| c.key.clone())).collect();
        let old = self
            .each(reads, |key| async move {
                match key {
                    Some(key) => self.read_row(key).await,
                    None => Ok(StoredRow::default()),
                }
            })
            .await?;
        if let Some((c, _)) = changes.iter().zip(&old).find(|(c, o)| c.needs_row && o.value.is_none()) {
            return Err(StoreError::Invalid(format!(
                "attribute-only update of a row that does not exist: {}",
                hex(&c.key)
            )));
        }
        let mut plan = Plan::default();
        for (c, o) in changes.into_iter().zip(old) {
            plan.add(c, o.attributes, self.clock.next());
        }
        self.run(plan.index_inserts).await?;
        self.run(plan.rows).await?;
        self.run(plan.index_deletes).await
    }
}

impl Plan {
    /// Adds the writes of one key's change, given the row's attributes before it.
    fn add(&mut self, change: KeyChange, old: BTreeMap<String, Vec<u8>>, ts: i64) {
        let key = change.key;
        let (new, row) = match change.change {
            Change::Replace { value, attributes } => {
                let stale = old.into_iter().filter(|(n, v)| attributes.get(n) != Some(v));
                let new = attributes.clone();
                self.delete_entries(&key, stale, ts);
                (new, Write::RowInsert { key: key.clone(), value, attributes, ts })
            }
            Change::Merge(attributes) => {
                if attributes.is_empty() {
                    return;
                }
                let stale = old.into_iter().filter(|(n, v)| attributes.get(n).is_some_and(|a| a != v));
                self.delete_entries(&key, stale, ts);
                (attributes.clone(), Write::RowMerge { key: key.clone(), attributes, ts })
            }
        };
        self.rows.push(row);
        // Empty values are not indexed (no query scans by one), nor stored-only attributes.
        for (name, value) in new.into_iter().filter(|(n, v)| !v.is_empty() && !is_stored_only(n)) {
            self.index_inserts.push(Write::IndexInsert { name, value, key: key.clone(), ts });
        }
    }

    fn delete_entries(&mut self, key: &[u8], entries: impl Iterator<Item = (String, Vec<u8>)>, ts: i64) {
        for (name, value) in entries.filter(|(n, v)| !v.is_empty() && !is_stored_only(n)) {
            self.index_deletes.push(Write::IndexDelete { name, value, key: key.to_vec(), ts });
        }
    }
}

/// Folds row requests into one change per key, keys in order of first appearance.
fn fold(rows: Vec<Row>) -> Vec<KeyChange> {
    let mut changes: Vec<KeyChange> = Vec::new();
    let mut at: HashMap<Vec<u8>, usize> = HashMap::new();
    for row in rows {
        match at.get(&row.key) {
            None => {
                at.insert(row.key.clone(), changes.len());
                let needs_row = row.value.is_none();
                let change = match row.value {
                    Some(value) => Change::Replace { value, attributes: row.attributes },
                    None => Change::Merge(row.attributes),
                };
                changes.push(KeyChange { key: row.key, change, needs_row });
            }
            Some(&i) => {
                let c = &mut changes[i].change;
                match (row.value, c) {
                    (Some(value), c) => *c = Change::Replace { value, attributes: row.attributes },
                    (None, Change::Replace { attributes, .. } | Change::Merge(attributes)) => {
                        attributes.extend(row.attributes)
                    }
                }
            }
        }
    }
    changes
}

impl KvStore for CassandraStore {
    fn get(&self, key: Vec<u8>) -> impl Future<Output = StoreResult<Option<Bytes>>> + Send {
        self.read_value(key)
    }

    fn put(&self, key: Vec<u8>, value: Bytes) -> impl Future<Output = StoreResult<()>> + Send {
        self.write_rows(vec![Row { key, value: Some(value), attributes: BTreeMap::new() }])
    }

    async fn remove(&self, key: Vec<u8>) -> StoreResult<()> {
        if key.is_empty() {
            return Ok(());
        }
        let old = self.read_row(key.clone()).await?;
        let ts = self.clock.next();
        self.write(Write::RowDelete { key: key.clone(), ts }).await?;
        let deletes = old
            .attributes
            .into_iter()
            .filter(|(name, value)| !value.is_empty() && !is_stored_only(name))
            .map(|(name, value)| Write::IndexDelete { name, value, key: key.clone(), ts })
            .collect();
        self.run(deletes).await
    }

    async fn has_key(&self, key: Vec<u8>) -> StoreResult<bool> {
        Ok(self.read_value(key).await?.is_some())
    }

    fn batch_get(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<Option<Bytes>>>> + Send {
        self.each(keys, |k| self.read_value(k))
    }

    fn batch_put(&self, rows: Vec<(Vec<u8>, Bytes)>) -> impl Future<Output = StoreResult<()>> + Send {
        self.write_rows(
            rows.into_iter().map(|(key, value)| Row { key, value: Some(value), attributes: BTreeMap::new() }).collect(),
        )
    }

    fn batch_has_key(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        self.each(keys, move |k| async move { Ok(self.read_value(k).await?.is_some()) })
    }
}

impl IndexStore for CassandraStore {
    fn indexed_attributes(&self) -> Vec<String> {
        self.indexed.clone()
    }

    fn batch_put_rows(&self, rows: Vec<Row>) -> impl Future<Output = StoreResult<()>> + Send {
        let checked = rows.iter().try_for_each(|r| check_attributes(&self.indexed, r.attributes.keys()));
        async move {
            checked?;
            self.write_rows(rows).await
        }
    }

    async fn get_rows(&self, keys: Vec<Vec<u8>>) -> StoreResult<Vec<Option<Row>>> {
        let rows = self.each(keys.clone(), |k| self.read_row(k)).await?;
        Ok(keys
            .into_iter()
            .zip(rows)
            .map(|(key, r)| r.value.map(|value| Row { key, value: Some(value), attributes: r.attributes }))
            .collect())
    }

    fn query(&self, predicates: Vec<Predicate>) -> impl Future<Output = StoreResult<Vec<Row>>> + Send {
        let checked = check_predicates(&self.indexed, &predicates);
        async move {
            checked?;
            // The partition of the first equality with a non-empty value (the shared rule
            // guarantees one).
            let Some((name, value)) = predicates.iter().find_map(|p| match p {
                Predicate::Eq(n, v) if !v.is_empty() => Some((n.clone(), v.clone())),
                _ => None,
            }) else {
                return Err(StoreError::Invalid("a query needs an equality predicate with a non-empty value".into()));
            };
            let keys: Vec<Vec<u8>> = self
                .session
                .execute_iter(self.statements.select_index.clone(), (name.clone(), value.clone()))
                .await
                .map_err(pager_error)?
                .rows_stream::<(Vec<u8>,)>()
                .map_err(|e| StoreError::Corrupt(format!("row_index has an unexpected shape: {e}")))?
                .map_ok(|(k,)| k)
                .map_err(next_row_error)
                .try_collect()
                .await?;
            let (predicates, scanned) = (&predicates, (&name, &value));
            let found: Vec<(Option<Row>, Option<Write>)> = stream::iter(keys)
                .map(|key| async move {
                    let row = self.read_row(key.clone()).await?;
                    // An entry the row's attributes no longer justify was left by a blind
                    // whole-row write: delete it with a timestamp just below that write, so an
                    // entry written again since survives.
                    let stale = match row.written {
                        Some(written) if row.attributes.get(scanned.0) != Some(scanned.1) => Some(Write::IndexDelete {
                            name: scanned.0.clone(),
                            value: scanned.1.clone(),
                            key: key.clone(),
                            ts: written - 1,
                        }),
                        _ => None,
                    };
                    let found = row.value.filter(|_| matches(&row.attributes, predicates)).map(|value| Row {
                        key,
                        value: Some(value),
                        attributes: row.attributes,
                    });
                    StoreResult::Ok((found, stale))
                })
                .buffered(self.max_concurrency)
                .try_collect()
                .await?;
            let (rows, stale): (Vec<Option<Row>>, Vec<Option<Write>>) = found.into_iter().unzip();
            // Cleaning up is best effort: an entry that stays is filtered again next time.
            let _ = self.run(stale.into_iter().flatten().collect()).await;
            let mut rows: Vec<Row> = rows.into_iter().flatten().collect();
            rows.sort_by(|a, b| a.key.cmp(&b.key));
            rows.dedup_by(|a, b| a.key == b.key);
            Ok(rows)
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::{index_keys, row, store};
    use super::*;

    #[test]
    fn the_clock_never_repeats() {
        let clock = Clock::default();
        let mut last = clock.next();
        for _ in 0..10_000 {
            let t = clock.next();
            assert!(t > last);
            last = t;
        }
    }

    #[test]
    fn requests_for_one_key_fold_in_order() {
        let changes = fold(vec![
            row(b"a", None, &[("x", b"1")]),
            row(b"b", Some(b"v"), &[("x", b"1")]),
            row(b"a", Some(b"w"), &[("y", b"2")]),
            row(b"b", None, &[("y", b"3")]),
            row(b"a", None, &[("z", b"4")]),
        ]);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].key, b"a");
        assert!(changes[0].needs_row, "an attribute-only update came first");
        match &changes[0].change {
            Change::Replace { value, attributes } => {
                assert_eq!(value.as_ref(), b"w");
                assert_eq!(attributes.keys().collect::<Vec<_>>(), ["y", "z"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(!changes[1].needs_row);
        match &changes[1].change {
            Change::Replace { value, attributes } => {
                assert_eq!(value.as_ref(), b"v");
                assert_eq!(attributes.keys().collect::<Vec<_>>(), ["x", "y"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changing_attributes_removes_stale_index_entries() {
        let store = store("index").await;
        store.put_row(row(b"c1", Some(b"v1"), &[("branch_name", b"main"), ("keyword", b"a")])).await.unwrap();
        // An attribute-only update reads the row and deletes the entries of the values it changes.
        store.update_index(b"c1".to_vec(), [("branch_name".to_string(), b"dev".to_vec())].into()).await.unwrap();
        assert!(index_keys(&store, "branch_name", b"main").await.is_empty());
        assert_eq!(index_keys(&store, "branch_name", b"dev").await, [b"c1".to_vec()]);
        assert_eq!(index_keys(&store, "keyword", b"a").await, [b"c1".to_vec()]);
        // Empty values are not indexed.
        store.update_index(b"c1".to_vec(), [("branch_name".to_string(), Vec::new())].into()).await.unwrap();
        assert!(index_keys(&store, "branch_name", b"dev").await.is_empty());
        assert!(index_keys(&store, "branch_name", b"").await.is_empty());

        // A whole-row write is blind: the old entries stay until a query meets them.
        store.put_row(row(b"c1", Some(b"v2"), &[("keyword", b"b"), ("subject_key", b"")])).await.unwrap();
        assert_eq!(index_keys(&store, "keyword", b"a").await, [b"c1".to_vec()]);
        assert!(index_keys(&store, "subject_key", b"").await.is_empty());
        assert!(store.query(vec![Predicate::Eq("keyword".into(), b"a".to_vec())]).await.unwrap().is_empty());
        assert!(index_keys(&store, "keyword", b"a").await.is_empty(), "the query deleted the stale entry");
        let found = store.query(vec![Predicate::Eq("keyword".into(), b"b".to_vec())]).await.unwrap();
        assert_eq!(found, [row(b"c1", Some(b"v2"), &[("keyword", b"b"), ("subject_key", b"")])]);
        // The same entry written again after the stale one was seen survives its deletion.
        store.put_row(row(b"c1", Some(b"v3"), &[("keyword", b"a")])).await.unwrap();
        assert_eq!(store.query(vec![Predicate::Eq("keyword".into(), b"a".to_vec())]).await.unwrap().len(), 1);
        assert!(store.query(vec![Predicate::Eq("keyword".into(), b"b".to_vec())]).await.unwrap().is_empty());
        assert_eq!(index_keys(&store, "keyword", b"a").await, [b"c1".to_vec()]);
        assert!(index_keys(&store, "keyword", b"b").await.is_empty());

        store.remove(b"c1".to_vec()).await.unwrap();
        assert!(index_keys(&store, "keyword", b"a").await.is_empty());
        assert!(store.query(vec![Predicate::Eq("keyword".into(), b"a".to_vec())]).await.unwrap().is_empty());
        store.drop_keyspace().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_attribute_update_writes_nothing() {
        let store = store("atomic").await;
        let err = store
            .batch_put_rows(vec![
                row(b"a", Some(b"1"), &[("keyword", b"k")]),
                row(b"missing", None, &[("keyword", b"k")]),
            ])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert!(!store.has_key(b"a".to_vec()).await.unwrap());
        assert!(index_keys(&store, "keyword", b"k").await.is_empty());
        store.drop_keyspace().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn big_batches_run_without_cql_batches() {
        let store = store("big").await;
        // 300 rows of 4 KiB: far above Cassandra's 50 KiB batch limit.
        let rows: Vec<(Vec<u8>, Bytes)> =
            (0..300u32).map(|i| (i.to_be_bytes().to_vec(), Bytes::from(vec![i as u8; 4096]))).collect();
        store.batch_put(rows.clone()).await.unwrap();
        let mut keys: Vec<Vec<u8>> = rows.iter().map(|(k, _)| k.clone()).rev().collect();
        keys.push(b"absent".to_vec());
        let got = store.batch_get(keys.clone()).await.unwrap();
        for (key, value) in keys.iter().zip(&got) {
            let expected = rows.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            assert_eq!(value, &expected);
        }
        let present = store.batch_has_key(keys).await.unwrap();
        assert_eq!(present.iter().filter(|p| **p).count(), 300);
        assert!(!present[300]);
        store.drop_keyspace().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn empty_row_keys_are_refused_and_never_found() {
        let store = store("empty").await;
        let err = store.put(Vec::new(), Bytes::from_static(b"v")).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert_eq!(store.get(Vec::new()).await.unwrap(), None);
        assert!(!store.has_key(Vec::new()).await.unwrap());
        store.remove(Vec::new()).await.unwrap();
        store.drop_keyspace().await.unwrap();
    }
}
