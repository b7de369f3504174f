//! Group commit: concurrent writes to one database share one synced write.
//!
//! Every write (a save, a batch of blobs, a batch of rows, a heads compare-and-set) is queued.
//! A writer that finds no leader becomes the leader: it takes the whole queue, holds the rows
//! lock and the heads lock, stages each queued write in queue order into one `WriteBatch`,
//! writes that batch with one fsync, hands every writer its own outcome and wakes them. Writers
//! that arrive meanwhile queue up for the next group, whose leader is one of them.
//!
//! Staging keeps the semantics of writing one after another. The heads and rows staged by
//! earlier writes of the group are an overlay that later writes read before the database, so a
//! compare-and-set is checked against the heads as the writes before it in the group left
//! them, and a row's index entries are replaced from the row as it stands there. A write whose
//! staging fails (a corrupt stored row, an attribute-only update of a missing row) adds
//! nothing to the batch and gets its error alone; a lost compare-and-set adds the blobs and
//! rows of its save but neither its heads nor its `on_applied` rows, and gets `Cas::Lost` with
//! the heads current at its place in the group. If the group's write fails, every writer of the
//! group gets the error and nothing of the group is written (a `WriteBatch` is atomic).

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use dsf::store::{BlobRow, Cas, SaveBatch, StoreError, StoreResult, Versioned};
use rocksdb::WriteBatch;

use super::codec::{StoredRow, db_error, encode_blob_into, encode_heads};
use super::heads::next_version;
use super::rows::{Change, change_of};
use super::schema::{BLOBS, HEADS};
use super::{Shared, lock};

/// One queued write.
pub(super) enum Write {
    /// Blobs, written unconditionally.
    Blobs(Vec<BlobRow>),
    /// Row changes, applied in order.
    Rows(Vec<(Vec<u8>, Change)>),
    /// A compare-and-set of one repository's heads.
    Heads { repository: String, expected: Option<u64>, record: Bytes },
    /// A whole save (blobs, rows, heads by compare-and-set, `on_applied`).
    Save(SaveBatch),
}

/// The outcome of one queued write.
pub(super) enum Written {
    Done,
    Cas(Cas),
}

/// The state written by the earlier writes of a group, which later writes read first.
#[derive(Default)]
pub(super) struct Overlay {
    heads: HashMap<String, Versioned>,
    pub(super) rows: HashMap<Vec<u8>, Option<StoredRow>>,
}

/// One staged change of one key: its column family, the key, and the new value (`None`:
/// delete).
pub(super) type Op = (&'static str, Vec<u8>, Option<Vec<u8>>);

/// What one write adds to its group, kept apart until its staging succeeded.
#[derive(Default)]
pub(super) struct Staged {
    pub(super) ops: Vec<Op>,
    /// The rows as this write leaves them.
    pub(super) rows: Vec<(Vec<u8>, Option<StoredRow>)>,
    heads: Option<(String, Versioned)>,
}

/// The queue of writers and whether a leader is writing.
#[derive(Default)]
pub(super) struct Group {
    state: Mutex<Queue>,
    done: Condvar,
    /// Groups written so far (each one write batch).
    #[cfg(test)]
    written: std::sync::atomic::AtomicU64,
}

#[derive(Default)]
struct Queue {
    next: u64,
    waiting: Vec<(u64, Write)>,
    leading: bool,
    finished: HashMap<u64, StoreResult<Written>>,
}

fn queue(mutex: &Mutex<Queue>) -> MutexGuard<'_, Queue> {
    // The queue is changed only in small steps that leave it consistent.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    /// Queues `write` and returns its outcome once the group holding it is on disk. Runs on a
    /// blocking thread: it waits for the current leader, or leads.
    pub(super) fn submit(&self, write: Write) -> StoreResult<Written> {
        let mut state = queue(&self.group.state);
        let id = state.next;
        state.next += 1;
        state.waiting.push((id, write));
        loop {
            if let Some(outcome) = state.finished.remove(&id) {
                return outcome;
            }
            if state.leading {
                state = self.group.done.wait(state).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            // No leader: this writer leads the queue, itself included.
            state.leading = true;
            let writes = std::mem::take(&mut state.waiting);
            drop(state);
            let ids: Vec<u64> = writes.iter().map(|(id, _)| *id).collect();
            let outcomes = catch_unwind(AssertUnwindSafe(|| self.write_group(writes))).unwrap_or_else(|_| {
                ids.iter()
                    .map(|id| (*id, Err(StoreError::Backend("a grouped RocksDB write panicked".into()))))
                    .collect()
            });
            state = queue(&self.group.state);
            state.leading = false;
            state.finished.extend(outcomes);
            self.group.done.notify_all();
        }
    }

    /// Stages `writes` in order into one batch and writes it with one fsync.
    fn write_group(&self, writes: Vec<(u64, Write)>) -> Vec<(u64, StoreResult<Written>)> {
        // Lock order: rows, then heads.
        let _rows = lock(&self.rows_lock);
        let _heads = lock(&self.heads_lock);
        let mut batch = WriteBatch::default();
        let mut overlay = Overlay::default();
        let mut outcomes = Vec::with_capacity(writes.len());
        for (id, write) in writes {
            let outcome = self.stage(write, &overlay, &mut batch).and_then(|(written, staged)| {
                self.apply(staged, &mut batch, &mut overlay)?;
                Ok(written)
            });
            outcomes.push((id, outcome));
        }
        #[cfg(test)]
        self.group.written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Err(e) = self.write(batch) {
            for (_, outcome) in &mut outcomes {
                if outcome.is_ok() {
                    *outcome = Err(db_error(e.clone()));
                }
            }
        }
        outcomes
    }

    /// Checks one write against the database and the overlay. Blobs, which cannot fail, go
    /// straight into `batch`, and only once everything that can fail has succeeded.
    fn stage(&self, write: Write, overlay: &Overlay, batch: &mut WriteBatch) -> StoreResult<(Written, Staged)> {
        let mut staged = Staged::default();
        match write {
            Write::Blobs(blobs) => {
                self.put_blobs_into(&blobs, batch)?;
                Ok((Written::Done, staged))
            }
            Write::Rows(changes) => {
                self.stage_rows(changes, overlay, &mut staged)?;
                Ok((Written::Done, staged))
            }
            Write::Heads { repository, expected, record } => {
                let cas = self.stage_heads(repository, expected, record, overlay, &mut staged)?;
                Ok((Written::Cas(cas), staged))
            }
            Write::Save(save) => {
                let SaveBatch { blobs, rows, repository, expected, record, on_applied } = save;
                let cas = self.stage_heads(repository, expected, record, overlay, &mut staged)?;
                let mut changes: Vec<(Vec<u8>, Change)> = rows.into_iter().map(change_of).collect();
                if matches!(cas, Cas::Applied(_)) {
                    changes.extend(on_applied.into_iter().map(change_of));
                }
                self.stage_rows(changes, overlay, &mut staged)?;
                self.put_blobs_into(&blobs, batch)?;
                Ok((Written::Cas(cas), staged))
            }
        }
    }

    fn put_blobs_into(&self, blobs: &[BlobRow], batch: &mut WriteBatch) -> StoreResult<()> {
        let cf = self.cf(BLOBS)?;
        let mut stored = Vec::new();
        for row in blobs {
            encode_blob_into(&mut stored, &row.element, &row.children);
            batch.put_cf(cf, row.key.as_bytes(), &stored);
        }
        Ok(())
    }

    /// The compare-and-set of `repository`'s heads against the heads the group left so far.
    fn stage_heads(
        &self,
        repository: String,
        expected: Option<u64>,
        record: Bytes,
        overlay: &Overlay,
        staged: &mut Staged,
    ) -> StoreResult<Cas> {
        let current = match overlay.heads.get(&repository) {
            Some(heads) => Some(heads.clone()),
            None => self.get_heads(&repository)?,
        };
        if current.as_ref().map(|c| c.version) != expected {
            return Ok(Cas::Lost(current));
        }
        let version = next_version(&repository, expected)?;
        staged.heads = Some((repository, Versioned { version, record }));
        Ok(Cas::Applied(version))
    }

    /// Adds a staged write to the batch and the overlay.
    fn apply(&self, staged: Staged, batch: &mut WriteBatch, overlay: &mut Overlay) -> StoreResult<()> {
        let Staged { ops, rows, heads } = staged;
        for (cf, key, value) in ops {
            let cf = self.cf(cf)?;
            match value {
                Some(value) => batch.put_cf(cf, key, value),
                None => batch.delete_cf(cf, key),
            }
        }
        overlay.rows.extend(rows);
        if let Some((repository, heads)) = heads {
            batch.put_cf(self.cf(HEADS)?, repository.as_bytes(), encode_heads(&heads));
            overlay.heads.insert(repository, heads);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dsf::key::Key;
    use dsf::store::{BlobStore, HeadStore, IndexStore, KvStore, Row, Store};
    use tempfile::TempDir;

    use super::super::fixtures::{assert_index_consistent, attrs, blob, eq, row};
    use super::super::{RocksOptions, RocksStore};
    use super::*;

    fn save(repository: &str, expected: Option<u64>, i: u8) -> SaveBatch {
        SaveBatch {
            blobs: vec![blob(i)],
            rows: vec![row(&format!("c{repository}{i}"), "commit", &[("repository_key", repository)])],
            repository: repository.into(),
            expected,
            record: Bytes::from(vec![i]),
            on_applied: vec![Row {
                key: format!("c{repository}{i}").into_bytes(),
                value: None,
                attributes: attrs(&[("branch_name", "master")]),
            }],
        }
    }

    /// Writes submitted together as one group, as concurrent writers would queue them.
    fn group(store: &RocksStore, writes: Vec<Write>) -> Vec<StoreResult<Written>> {
        let writes = writes.into_iter().enumerate().map(|(i, w)| (i as u64, w)).collect();
        store.shared.write_group(writes).into_iter().map(|(_, outcome)| outcome).collect()
    }

    fn cas(outcome: &StoreResult<Written>) -> &Cas {
        match outcome {
            Ok(Written::Cas(cas)) => cas,
            _ => panic!("not a compare-and-set outcome"),
        }
    }

    /// Within one group, compare-and-sets are checked in queue order against the heads the
    /// earlier ones wrote: the first from each version wins, the others lose and see the winner.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_checks_compare_and_sets_in_order() {
        let dir = TempDir::new().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let outcomes = group(
            &store,
            vec![
                Write::Save(save("r", None, 1)),
                Write::Save(save("r", None, 2)),
                Write::Heads { repository: "r".into(), expected: Some(1), record: Bytes::from_static(b"h") },
                Write::Save(save("r", Some(1), 3)),
                Write::Save(save("s", None, 4)),
            ],
        );
        let first = Versioned { version: 1, record: Bytes::from(vec![1]) };
        let second = Versioned { version: 2, record: Bytes::from_static(b"h") };
        assert_eq!(cas(&outcomes[0]), &Cas::Applied(1));
        assert_eq!(cas(&outcomes[1]), &Cas::Lost(Some(first)));
        assert_eq!(cas(&outcomes[2]), &Cas::Applied(2));
        assert_eq!(cas(&outcomes[3]), &Cas::Lost(Some(second.clone())));
        assert_eq!(cas(&outcomes[4]), &Cas::Applied(1));
        assert_eq!(store.get_heads("r".into()).await.unwrap(), Some(second));
        // Every save's blobs and commit rows are written; only the winners' on_applied rows.
        let keys: Vec<Key> = (1..=4).map(|i| blob(i).key).collect();
        assert_eq!(store.has_blobs(keys).await.unwrap(), vec![true; 4]);
        let masters = store.query(vec![eq("branch_name", "master")]).await.unwrap();
        let mut winners: Vec<Vec<u8>> = masters.into_iter().map(|r| r.key).collect();
        winners.sort();
        assert_eq!(winners, vec![b"cr1".to_vec(), b"cs4".to_vec()]);
        assert_eq!(store.query(vec![eq("repository_key", "r")]).await.unwrap().len(), 3);
        assert_index_consistent(&store);
    }

    /// A write that fails while staged writes nothing and fails alone; row changes later in the
    /// group see the rows the earlier ones left.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_in_a_group_fails_alone() {
        let dir = TempDir::new().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let bad_save = SaveBatch {
            rows: vec![Row { key: b"missing".to_vec(), value: None, attributes: attrs(&[("keyword", "k")]) }],
            ..save("r", None, 9)
        };
        let outcomes = group(
            &store,
            vec![
                Write::Rows(vec![(b"k".to_vec(), Change::Put(Bytes::from_static(b"v"), attrs(&[("keyword", "a")])))]),
                Write::Save(bad_save),
                Write::Rows(vec![(b"k".to_vec(), Change::Merge(attrs(&[("keyword", "b")])))]),
                Write::Save(save("r", None, 1)),
            ],
        );
        assert!(matches!(outcomes[0], Ok(Written::Done)));
        assert!(matches!(outcomes[1], Err(StoreError::Invalid(_))));
        assert!(matches!(outcomes[2], Ok(Written::Done)));
        // The failed save moved no heads, so the later save from "no repository" applies.
        assert_eq!(cas(&outcomes[3]), &Cas::Applied(1));
        assert_eq!(store.has_blobs(vec![blob(9).key]).await.unwrap(), vec![false]);
        assert!(store.query(vec![eq("keyword", "a")]).await.unwrap().is_empty());
        assert_eq!(store.query(vec![eq("keyword", "b")]).await.unwrap().len(), 1);
        assert_eq!(store.get(b"k".to_vec()).await.unwrap(), Some(Bytes::from_static(b"v")));
        assert_index_consistent(&store);
    }

    /// Writers that queue while a leader writes are written together by the next leader.
    #[test]
    fn writers_queued_behind_a_leader_share_one_write() {
        let dir = TempDir::new().unwrap();
        let store = RocksStore::open(dir.path()).unwrap();
        let shared = Arc::clone(&store.shared);
        let held = lock(&shared.rows_lock);
        let writer = |i: u8| {
            let shared = Arc::clone(&store.shared);
            std::thread::spawn(move || shared.submit(Write::Blobs(vec![blob(i)])).map(|_| ()))
        };
        // The first writer leads and waits for the rows lock; two more queue behind it.
        let first = writer(1);
        while !queue(&shared.group.state).leading {
            std::thread::yield_now();
        }
        let others = [writer(2), writer(3)];
        while queue(&shared.group.state).waiting.len() < 2 {
            std::thread::yield_now();
        }
        drop(held);
        first.join().unwrap().unwrap();
        for other in others {
            other.join().unwrap().unwrap();
        }
        assert_eq!(shared.group.written.load(std::sync::atomic::Ordering::Relaxed), 2);
        let found = shared
            .multi_get(
                shared.cf(BLOBS).unwrap(),
                [1u8, 2, 3].map(|i| blob(i).key.as_bytes().to_vec()).iter(),
                false,
                &Default::default(),
            )
            .unwrap();
        assert!(found.iter().all(Option::is_some));
    }

    /// Many concurrent saves on one synced store, several per repository: every blob and row
    /// lands, each repository's heads version counts exactly its applied compare-and-sets, and
    /// every loser saw a version it did not expect.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_saves_all_land() {
        let dir = TempDir::new().unwrap();
        let store = RocksStore::open_with(dir.path(), RocksOptions::default()).unwrap();
        let writers = 24u8;
        let rounds = 8u8;
        let tasks: Vec<_> = (0..writers)
            .map(|w| {
                let store = store.clone();
                tokio::spawn(async move {
                    let repository = format!("repo{}", w % 4);
                    let mut applied = 0u64;
                    for r in 0..rounds {
                        let i = w * rounds + r;
                        loop {
                            let expected = store.get_heads(repository.clone()).await.unwrap().map(|h| h.version);
                            match store.save(save(&repository, expected, i)).await.unwrap() {
                                Cas::Applied(v) => {
                                    assert_eq!(v, expected.unwrap_or(0) + 1);
                                    applied += 1;
                                    break;
                                }
                                Cas::Lost(current) => assert_ne!(current.map(|c| c.version), expected),
                            }
                        }
                    }
                    applied
                })
            })
            .collect();
        let mut applied = 0;
        for task in tasks {
            applied += task.await.unwrap();
        }
        assert_eq!(applied, u64::from(writers) * u64::from(rounds));
        let mut versions = 0;
        for r in 0..4 {
            versions += store.get_heads(format!("repo{r}")).await.unwrap().unwrap().version;
        }
        assert_eq!(versions, applied);
        let keys: Vec<Key> = (0..writers * rounds).map(|i| blob(i).key).collect();
        assert!(store.has_blobs(keys).await.unwrap().into_iter().all(|b| b));
        assert_eq!(
            store.query(vec![eq("branch_name", "master")]).await.unwrap().len(),
            usize::from(writers) * usize::from(rounds)
        );
        assert_index_consistent(&store);
    }
}
