//! Rows: ION's key-value rows with their indexed attributes, and the attribute index.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use bytes::Bytes;
use dsf::store::{
    IndexStore, KvStore, Predicate, Row, StoreError, StoreResult, check_attributes, check_predicates, matches,
};
use rocksdb::{IteratorMode, PrefixRange, ReadOptions};

use super::codec::{StoredRow, db_error, decode_row, encode_row, hex, index_keys, index_prefix};
use super::group::{Overlay, Staged, Write};
use super::schema::{INDEX, ROWS};
use super::{RocksStore, Shared};

/// The next state of a row in a batch of row writes.
pub(super) enum Change {
    /// Replace the row (value and all attributes).
    Put(Bytes, BTreeMap<String, Vec<u8>>),
    /// Add or overwrite attributes of an existing row.
    Merge(BTreeMap<String, Vec<u8>>),
    /// Remove the row.
    Remove,
}

impl Shared {
    fn rows(&self, keys: &[Vec<u8>], options: &ReadOptions) -> StoreResult<Vec<Option<StoredRow>>> {
        let found = self.multi_get(self.cf(ROWS)?, keys, false, options)?;
        keys.iter().zip(found).map(|(key, v)| v.map(|v| decode_row(key, &v)).transpose()).collect()
    }

    /// Applies `changes` in order as one write batch (grouped with concurrent writes),
    /// keeping the index equal to the rows' attributes. Fails, writing nothing, on an
    /// attribute-only update of a missing row.
    pub(super) fn write_rows(&self, changes: Vec<(Vec<u8>, Change)>) -> StoreResult<()> {
        self.submit(Write::Rows(changes)).map(|_| ())
    }

    /// Stages `changes` (applied in order) and their index updates. The rows as they stand
    /// before are those the earlier writes of the group left (`overlay`), else the stored ones.
    /// The caller holds the rows lock until the group is written.
    pub(super) fn stage_rows(
        &self,
        changes: Vec<(Vec<u8>, Change)>,
        overlay: &Overlay,
        staged: &mut Staged,
    ) -> StoreResult<()> {
        if changes.is_empty() {
            return Ok(());
        }
        let keys: BTreeSet<Vec<u8>> = changes.iter().map(|(k, _)| k.clone()).collect();
        let unread: Vec<Vec<u8>> = keys.iter().filter(|k| !overlay.rows.contains_key(*k)).cloned().collect();
        let mut before: BTreeMap<Vec<u8>, Option<StoredRow>> =
            unread.iter().cloned().zip(self.rows(&unread, &ReadOptions::default())?).collect();
        for key in &keys {
            if let Some(row) = overlay.rows.get(key) {
                before.insert(key.clone(), row.clone());
            }
        }
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
        for (key, new) in after {
            let old = &before[&key];
            let old_index = index_keys(&key, old.as_ref());
            let new_index = index_keys(&key, new.as_ref());
            for stale in old_index.difference(&new_index) {
                staged.ops.push((INDEX, stale.clone(), None));
            }
            for fresh in new_index.difference(&old_index) {
                staged.ops.push((INDEX, fresh.clone(), Some(Vec::new())));
            }
            match &new {
                Some(row) if old.as_ref() != Some(row) => staged.ops.push((ROWS, key.clone(), Some(encode_row(row)))),
                Some(_) => {}
                None if old.is_some() => staged.ops.push((ROWS, key.clone(), None)),
                None => {}
            }
            staged.rows.push((key, new));
        }
        Ok(())
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
}

/// A row write as a change: a value replaces the row, no value updates its attributes.
pub(super) fn change_of(r: Row) -> (Vec<u8>, Change) {
    match r.value {
        Some(value) => (r.key, Change::Put(value, r.attributes)),
        None => (r.key, Change::Merge(r.attributes)),
    }
}

impl KvStore for RocksStore {
    fn get(&self, key: Vec<u8>) -> impl Future<Output = StoreResult<Option<Bytes>>> + Send {
        self.read(1, move |s| {
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
        self.read(1, move |s| Ok(s.db.get_pinned_cf(s.cf(ROWS)?, &key).map_err(db_error)?.is_some()))
    }

    fn batch_get(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<Option<Bytes>>>> + Send {
        self.read(keys.len(), move |s| {
            Ok(s.rows(&keys, &ReadOptions::default())?.into_iter().map(|r| r.map(|r| r.value)).collect())
        })
    }

    fn batch_put(&self, rows: Vec<(Vec<u8>, Bytes)>) -> impl Future<Output = StoreResult<()>> + Send {
        let changes = rows.into_iter().map(|(key, value)| (key, Change::Put(value, BTreeMap::new()))).collect();
        self.blocking(move |s| s.write_rows(changes))
    }

    fn batch_has_key(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        self.read(keys.len(), move |s| {
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

    fn get_rows(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<Option<Row>>>> + Send {
        self.blocking(move |s| {
            let rows = s.rows(&keys, &ReadOptions::default())?;
            Ok(keys
                .into_iter()
                .zip(rows)
                .map(|(key, r)| r.map(|r| Row { key, value: Some(r.value), attributes: r.attributes }))
                .collect())
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

#[cfg(test)]
mod tests {
    use dsf::store::memory::MemoryStore;
    use tempfile::TempDir;

    use super::super::RocksOptions;
    use super::super::fixtures::{assert_index_consistent, attrs, cf_keys, eq, keys_of, row};
    use super::*;

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
