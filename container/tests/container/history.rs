//! Requests that cost the change, not the history: on a repository of 2 000 commits and on one
//! of 10, every datastore operation reads the same number of commit rows and blobs (counted by
//! a wrapper around the real store), on memory, RocksDB and Cassandra.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use dsf::proto::net::ooici::services::coi::OoiResource;
use dsf::proto::net::ooici::services::coi::ooi_resource::LifeCycleState;
use dsf::store::memory::MemoryStore;
use dsf::store::persist::StoredRepository;
use dsf::store::{
    BlobRow, BlobStore, Cas, HeadStore, IndexStore, KvStore, Listed, Maintenance, Page, Predicate, Row, SaveBatch,
    Store, StoreResult, Versioned,
};
use dsf::{Checkout, Element, Key, MASTER_BRANCH, Registry, Repository};
use dsf_container::datastore::{Datastore, Received};

use crate::common::{cassandra, rocksdb};

/// What a store was asked to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Reads {
    /// Commit rows (and other index rows) read or checked, by key or by query.
    rows: usize,
    /// Blobs read or checked.
    blobs: usize,
}

/// A store that counts the rows and blobs read through it.
struct Counting<S> {
    inner: S,
    rows: AtomicUsize,
    blobs: AtomicUsize,
}

impl<S> Counting<S> {
    fn new(inner: S) -> Counting<S> {
        Counting { inner, rows: AtomicUsize::new(0), blobs: AtomicUsize::new(0) }
    }

    /// The reads since the last call.
    fn take(&self) -> Reads {
        Reads { rows: self.rows.swap(0, Ordering::SeqCst), blobs: self.blobs.swap(0, Ordering::SeqCst) }
    }

    fn rows_read(&self, n: usize) {
        self.rows.fetch_add(n, Ordering::SeqCst);
    }

    fn blobs_read(&self, n: usize) {
        self.blobs.fetch_add(n, Ordering::SeqCst);
    }
}

fn present<T>(found: &[Option<T>]) -> usize {
    found.iter().filter(|f| f.is_some()).count()
}

fn trues(found: &[bool]) -> usize {
    found.iter().filter(|f| **f).count()
}

impl<S: BlobStore> BlobStore for Counting<S> {
    async fn put_blobs(&self, rows: Vec<BlobRow>) -> StoreResult<()> {
        self.inner.put_blobs(rows).await
    }

    async fn get_blobs(&self, keys: Vec<Key>) -> StoreResult<Vec<Option<BlobRow>>> {
        let found = self.inner.get_blobs(keys).await?;
        self.blobs_read(present(&found));
        Ok(found)
    }

    async fn has_blobs(&self, keys: Vec<Key>) -> StoreResult<Vec<bool>> {
        let found = self.inner.has_blobs(keys).await?;
        self.blobs_read(trues(&found));
        Ok(found)
    }
}

impl<S: HeadStore> HeadStore for Counting<S> {
    async fn get_heads(&self, repository: String) -> StoreResult<Option<Versioned>> {
        self.inner.get_heads(repository).await
    }

    async fn cas_heads(&self, repository: String, expected: Option<u64>, record: Bytes) -> StoreResult<Cas> {
        self.inner.cas_heads(repository, expected, record).await
    }
}

impl<S: KvStore> KvStore for Counting<S> {
    async fn get(&self, key: Vec<u8>) -> StoreResult<Option<Bytes>> {
        let found = self.inner.get(key).await?;
        self.rows_read(usize::from(found.is_some()));
        Ok(found)
    }

    async fn put(&self, key: Vec<u8>, value: Bytes) -> StoreResult<()> {
        self.inner.put(key, value).await
    }

    async fn remove(&self, key: Vec<u8>) -> StoreResult<()> {
        self.inner.remove(key).await
    }

    async fn has_key(&self, key: Vec<u8>) -> StoreResult<bool> {
        let found = self.inner.has_key(key).await?;
        self.rows_read(usize::from(found));
        Ok(found)
    }

    async fn batch_get(&self, keys: Vec<Vec<u8>>) -> StoreResult<Vec<Option<Bytes>>> {
        let found = self.inner.batch_get(keys).await?;
        self.rows_read(present(&found));
        Ok(found)
    }

    async fn batch_put(&self, rows: Vec<(Vec<u8>, Bytes)>) -> StoreResult<()> {
        self.inner.batch_put(rows).await
    }

    async fn batch_has_key(&self, keys: Vec<Vec<u8>>) -> StoreResult<Vec<bool>> {
        let found = self.inner.batch_has_key(keys).await?;
        self.rows_read(trues(&found));
        Ok(found)
    }
}

impl<S: IndexStore> IndexStore for Counting<S> {
    fn indexed_attributes(&self) -> Vec<String> {
        self.inner.indexed_attributes()
    }

    async fn batch_put_rows(&self, rows: Vec<Row>) -> StoreResult<()> {
        self.inner.batch_put_rows(rows).await
    }

    async fn query(&self, predicates: Vec<Predicate>) -> StoreResult<Vec<Row>> {
        let found = self.inner.query(predicates).await?;
        self.rows_read(found.len());
        Ok(found)
    }

    async fn get_rows(&self, keys: Vec<Vec<u8>>) -> StoreResult<Vec<Option<Row>>> {
        let found = self.inner.get_rows(keys).await?;
        self.rows_read(present(&found));
        Ok(found)
    }
}

impl<S: Maintenance> Maintenance for Counting<S> {
    fn write_times(&self) -> bool {
        self.inner.write_times()
    }

    async fn list_blobs(&self, cursor: Option<Vec<u8>>, limit: usize) -> StoreResult<Page<Listed<Key>>> {
        let page = self.inner.list_blobs(cursor, limit).await?;
        self.blobs_read(page.items.len());
        Ok(page)
    }

    async fn list_rows(&self, cursor: Option<Vec<u8>>, limit: usize) -> StoreResult<Page<Listed<Vec<u8>>>> {
        let page = self.inner.list_rows(cursor, limit).await?;
        self.rows_read(page.items.len());
        Ok(page)
    }

    async fn list_repositories(&self, cursor: Option<Vec<u8>>, limit: usize) -> StoreResult<Page<String>> {
        self.inner.list_repositories(cursor, limit).await
    }

    async fn delete_blobs(&self, keys: Vec<Key>, written_before: Option<i64>) -> StoreResult<()> {
        self.inner.delete_blobs(keys, written_before).await
    }

    async fn delete_rows(&self, keys: Vec<Vec<u8>>, written_before: Option<i64>) -> StoreResult<()> {
        self.inner.delete_rows(keys, written_before).await
    }

    async fn freshen_blobs(&self, keys: Vec<Key>) -> StoreResult<Vec<bool>> {
        let found = self.inner.freshen_blobs(keys).await?;
        self.blobs_read(trues(&found));
        Ok(found)
    }

    async fn freshen_rows(&self, keys: Vec<Vec<u8>>) -> StoreResult<Vec<bool>> {
        let found = self.inner.freshen_rows(keys).await?;
        self.rows_read(trues(&found));
        Ok(found)
    }
}

impl<S: Store> Store for Counting<S> {
    fn save(&self, batch: SaveBatch) -> impl Future<Output = StoreResult<Cas>> + Send {
        self.inner.save(batch)
    }
}

fn resource(name: &str) -> OoiResource {
    OoiResource { name: Some(name.into()), lcs: Some(LifeCycleState::Active as i32), ..Default::default() }
}

/// A resource repository with `n` commits, each renaming the resource, saved in batches of a
/// thousand commits.
async fn history<S: Store>(store: &S, n: usize) -> Repository {
    let mut repo = Repository::new(Registry::builtin());
    let root = repo.create(&resource("v0")).unwrap();
    repo.set_root(root).unwrap();
    let mut stored = StoredRepository::create(store, repo);
    for i in 0..n {
        let repo = stored.repository_mut();
        let root = repo.root().unwrap();
        repo.update::<OoiResource>(root, |r| r.name = Some(format!("v{i}"))).unwrap();
        repo.commit_at(&format!("commit {i}"), 1.0e9 + i as f64).unwrap();
        if (i + 1) % 1000 == 0 || i + 1 == n {
            stored.save().await.unwrap();
        }
    }
    stored.into_repository()
}

/// Commits a rename on a copy of `repo` and returns what a pusher sends: its branches and the
/// new commit with its root object.
fn pushed(repo: &Repository, name: &str, date: f64) -> (Key, Received) {
    let mut copy = repo.clone();
    let root = copy.root().unwrap();
    copy.update::<OoiResource>(root, |r| r.name = Some(name.into())).unwrap();
    let commit = copy.commit_at(name, date).unwrap();
    let root_key = copy.commit_info(commit).unwrap().root.unwrap().key;
    let elements: Vec<Element> = [commit, root_key].iter().map(|k| copy.elements().get(k).unwrap().clone()).collect();
    let received = Received {
        repository_key: copy.key().to_owned(),
        branches: copy.branches().to_vec(),
        nicknames: copy.nicknames().clone(),
        elements,
    };
    (commit, received)
}

/// Runs every operation on the stored `repo` and returns what each one read.
async fn operations<S: Store + 'static>(store: &Arc<Counting<S>>, repo: &Repository) -> BTreeMap<&'static str, Reads> {
    let ds = Datastore::new(store.clone(), Registry::builtin());
    let key = repo.key().to_owned();
    let head = repo.current_heads()[0];
    let head_root = repo.commit_info(head).unwrap().root.unwrap().key;
    let previous = repo.commit_info(head).unwrap().first_parent().unwrap();
    let previous_root = repo.commit_info(previous).unwrap().root.unwrap().key;
    let mut reads = BTreeMap::new();
    store.take();

    let (root, _) = ds.get_object(&key, None, None, None, &[]).await.unwrap();
    assert_eq!(root, head_root);
    reads.insert("get_object head", store.take());

    let (root, _) = ds.get_object(&key, None, None, Some("~1"), &[]).await.unwrap();
    assert_eq!(root, previous_root);
    reads.insert("get_object ~1", store.take());

    let lcs = ds.get_lcs(std::slice::from_ref(&key)).await.unwrap();
    assert_eq!(lcs, vec![(key.clone(), LifeCycleState::Active as i32)]);
    reads.insert("get_lcs", store.take());

    let mut stored = StoredRepository::open(&**store, Registry::builtin(), &key).await.unwrap().unwrap();
    stored.checkout(Checkout::branch(MASTER_BRANCH)).await.unwrap();
    assert_eq!(stored.repository().commit_head().unwrap(), Some(head));
    drop(stored);
    reads.insert("checkout head", store.take());

    let (fast_forward, push) = pushed(repo, "pushed", 2.0e9);
    let heads = ds.receive(push).await.unwrap();
    assert_eq!(heads.branches.iter().find(|b| !b.heads.is_empty()).unwrap().heads, vec![fast_forward]);
    reads.insert("push fast-forward", store.take());

    let pulled = ds.pull(&key, &HashSet::from([head]), false, &[]).await.unwrap();
    assert_eq!(pulled.commits.iter().map(|e| e.key()).collect::<Vec<_>>(), vec![fast_forward]);
    reads.insert("pull one commit, heads as have", store.take());

    let everything: HashSet<Key> = repo.elements().iter().map(|e| e.key()).collect();
    let pulled = ds.pull(&key, &everything, false, &[]).await.unwrap();
    assert_eq!(pulled.commits.iter().map(|e| e.key()).collect::<Vec<_>>(), vec![fast_forward]);
    reads.insert("pull one commit, full have-list", store.take());

    let (diverged, push) = pushed(repo, "diverged", 2.0e9 + 1.0);
    let heads = ds.receive(push).await.unwrap();
    let mut master = heads.branches.iter().find(|b| !b.heads.is_empty()).unwrap().heads.clone();
    master.sort();
    let mut expected = vec![fast_forward, diverged];
    expected.sort();
    assert_eq!(master, expected, "the push diverged the branch");
    reads.insert("push divergence", store.take());
    reads
}

async fn reads_do_not_grow_with_history<S: Store + 'static>(store: S) {
    let store = Arc::new(Counting::new(store));
    let long = history(&*store, 2000).await;
    let short = history(&*store, 10).await;
    let on_long = operations(&store, &long).await;
    let on_short = operations(&store, &short).await;
    eprintln!("reads per operation on 2 000 commits: {on_long:#?}");
    assert_eq!(on_long, on_short, "reads on 2 000 commits (left) and on 10 (right)");
    for (op, reads) in &on_long {
        assert!(reads.rows <= 8, "{op} read {} commit rows", reads.rows);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_reads_do_not_grow_with_history() {
    reads_do_not_grow_with_history(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_reads_do_not_grow_with_history() {
    let (store, _dir) = rocksdb();
    reads_do_not_grow_with_history(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cassandra_reads_do_not_grow_with_history() {
    reads_do_not_grow_with_history(cassandra().await).await;
}
