//! `dsf-container fsck` and `gc` on a datastore's store: a damaged element found by its key
//! (Cassandra, damaged through CQL, and RocksDB), exactly the unreachable set removed, and
//! everything kept that pushes running beside gc write.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dsf::store::maint::{all_blobs, all_rows};
use dsf::store::walk::{self, GcOptions};
use dsf::store::{
    BlobRow, BlobStore, Cas, HeadStore, IndexStore, KvStore, Listed, Maintenance, Page, Predicate, Row, Store,
    StoreResult, Versioned,
};
use dsf::{Element, Key, Registry, Repository, TypeId};
use dsf_container::datastore::{Datastore, Received};
use dsf_store_backends::rocks::RocksStore;

use crate::common::*;

/// Pushes every element of `repo` through the datastore.
async fn push<S: Store>(ds: &Datastore<S>, repo: &Repository) -> Result<(), dsf_container::error::ServiceError> {
    push_elements(ds, repo, repo.elements().iter().cloned().collect()).await
}

async fn push_elements<S: Store>(
    ds: &Datastore<S>,
    repo: &Repository,
    elements: Vec<Element>,
) -> Result<(), dsf_container::error::ServiceError> {
    ds.receive(Received {
        repository_key: repo.key().to_owned(),
        branches: repo.branches().to_vec(),
        nicknames: repo.nicknames().clone(),
        elements,
    })
    .await
    .map(drop)
}

fn blob_row(e: &Element) -> BlobRow {
    BlobRow { key: e.key(), element: e.encode().into(), children: e.encode_children().into() }
}

fn commit_row(repo: &Repository, e: &Element) -> Row {
    Row {
        key: e.key().as_bytes().to_vec(),
        value: Some(e.encode().into()),
        attributes: BTreeMap::from([
            ("repository_key".to_owned(), repo.key().as_bytes().to_vec()),
            ("branch_name".to_owned(), Vec::new()),
        ]),
    }
}

/// Writes a repository's elements the way a push that failed before its compare-and-set
/// leaves them: objects as blobs, commits as rows, no heads.
async fn leave_garbage<S: Store>(store: &S, repo: &Repository) {
    let (commits, objects): (Vec<&Element>, Vec<&Element>) =
        repo.elements().iter().partition(|e| e.ty() == TypeId::COMMIT);
    store.put_blobs(objects.iter().map(|e| blob_row(e)).collect()).await.unwrap();
    store.batch_put_rows(commits.iter().map(|e| commit_row(repo, e)).collect()).await.unwrap();
}

/// Every blob and row key of the store, as hex.
async fn entries<S: Store>(store: &S) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = all_blobs(store).await.unwrap().iter().map(|l| format!("blob {}", l.key)).collect();
    for l in all_rows(store).await.unwrap() {
        out.insert(format!("row {}", Key::from_slice(&l.key).map_or_else(|| "?".to_owned(), |k| k.to_string())));
    }
    out
}

fn cassandra_node() -> String {
    std::env::var("DSF_CASSANDRA").unwrap_or_else(|_| "127.0.0.1:9042".into())
}

fn cassandra_config(dir: &Path, keyspace: &str) -> PathBuf {
    let path = dir.join("dsf.toml");
    std::fs::write(
        &path,
        format!(
            "grpc = \"127.0.0.1:0\"\n[store]\nkind = \"cassandra\"\ncontact_points = [\"{}\"]\nkeyspace = \"{keyspace}\"\n\
             replication = {{ class = \"SimpleStrategy\", replication_factor = 1 }}\n",
            cassandra_node()
        ),
    )
    .unwrap();
    path
}

fn rocks_config(dir: &Path, db: &Path) -> PathBuf {
    let path = dir.join("dsf.toml");
    std::fs::write(
        &path,
        format!("grpc = \"127.0.0.1:0\"\n[store]\nkind = \"rocksdb\"\npath = \"{}\"\n", db.display()),
    )
    .unwrap();
    path
}

fn run_binary(args: &[&str], config: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dsf-container"))
        .args(args)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("dsf-container runs")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs one CQL statement on the test node through `scripts/cassandra cql`.
fn cql(statement: &str) {
    let port = cassandra_node().rsplit(':').next().unwrap().to_owned();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/cassandra");
    let out = Command::new(script).args(["cql", "--port", &port, statement]).output().expect("scripts/cassandra runs");
    assert!(out.status.success(), "cql failed: {}", String::from_utf8_lossy(&out.stderr));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Two repositories with some history, pushed; returns them.
async fn populate<S: Store>(ds: &Datastore<S>) -> Vec<Repository> {
    let (mut a, _) = address_book("first");
    edit(&mut a, "Dave", "renamed");
    let (b, _) = address_book("second");
    push(ds, &a).await.unwrap();
    push(ds, &b).await.unwrap();
    vec![a, b]
}

/// The key of a person that only the second book holds ("John" is in both, "David" renamed
/// in the first): any object reached from one head only.
fn an_object(repo: &Repository) -> Key {
    let root = repo.root().unwrap();
    let child = repo.children(root).unwrap()[1];
    repo.object_key(child).unwrap().expect("committed")
}

/// fsck on Cassandra: clean, then a blob's bytes overwritten through CQL are reported under
/// exactly that key, by the library and by the binary (exit 5).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_finds_a_damaged_element_on_cassandra() {
    let store = cassandra().await;
    let keyspace = store.keyspace().to_owned();
    let ds = Datastore::new(Arc::new(store), Registry::builtin());
    let repos = populate(&ds).await;
    let registry = Registry::builtin();
    let report = walk::fsck(ds.store(), &registry, |_| {}).await.unwrap();
    assert_eq!(report.problems, vec![], "a fresh store is clean");
    assert_eq!((report.repositories, report.heads), (2, 2));
    assert!(report.commits == 3 && report.objects >= 6, "{report:?}");
    let dir = tempfile::tempdir().unwrap();
    let config = cassandra_config(dir.path(), &keyspace);
    let out = run_binary(&["fsck"], &config);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    assert!(stdout(&out).contains("no problems"), "{}", stdout(&out));

    let damaged = an_object(&repos[1]);
    let row = ds.store().get_blobs(vec![damaged]).await.unwrap().pop().flatten().unwrap();
    let mut bytes = row.element.to_vec();
    *bytes.last_mut().unwrap() ^= 0x01;
    cql(&format!(
        "UPDATE \"{keyspace}\".blobs SET element = 0x{} WHERE key = 0x{}",
        hex(&bytes),
        hex(damaged.as_bytes())
    ));

    let report = walk::fsck(ds.store(), &registry, |_| {}).await.unwrap();
    let keys: Vec<Option<Key>> = report.problems.iter().map(|p| p.key).collect();
    assert_eq!(keys, vec![Some(damaged)], "{:?}", report.problems);
    let out = run_binary(&["fsck"], &config);
    assert_eq!(out.status.code(), Some(5), "{}", stdout(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains(&damaged.to_string()), "{text}");
    // gc refuses to run on a damaged store.
    let out = run_binary(&["gc", "--grace", "0"], &config);
    assert_eq!(out.status.code(), Some(5), "{}", stdout(&out));
    assert!(stdout(&out).contains("nothing was deleted"), "{}", stdout(&out));
    ds.store().drop_keyspace().await.unwrap();
}

/// fsck on RocksDB through the binary: refused while the store is open elsewhere, clean, then
/// a damaged element reported by key with exit 5.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsck_finds_a_damaged_element_on_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let config = rocks_config(dir.path(), &db);
    let damaged;
    {
        let store = RocksStore::open(&db).unwrap();
        let ds = Datastore::new(Arc::new(store), Registry::builtin());
        let repos = populate(&ds).await;
        damaged = an_object(&repos[0]);
        let out = run_binary(&["fsck"], &config);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("need the store to themselves"), "{err}");
    }
    let out = run_binary(&["fsck"], &config);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    {
        let store = RocksStore::open(&db).unwrap();
        let mut row = store.get_blobs(vec![damaged]).await.unwrap().pop().flatten().unwrap();
        let mut bytes = row.element.to_vec();
        *bytes.last_mut().unwrap() ^= 0x01;
        row.element = Bytes::from(bytes);
        store.put_blobs(vec![row]).await.unwrap();
    }
    let out = run_binary(&["fsck"], &config);
    assert_eq!(out.status.code(), Some(5), "{}", stdout(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains(&damaged.to_string()), "{text}");
}

/// Leaves garbage beside two pushed repositories: a stray element, and a push that failed
/// before its heads moved (a commit row, its book and a person only it has). Returns what is
/// unreachable, as `entries` names it.
async fn garbage<S: Store>(store: &S) -> BTreeSet<String> {
    let stray = Element::from_message(dsf::HashAlgorithm::Sha1, &Registry::builtin(), &person("stray", 77)).unwrap();
    store.put_blobs(vec![blob_row(&stray)]).await.unwrap();
    let before = entries(store).await;
    let (mut failed, _) = address_book("failed");
    edit(&mut failed, "Zed", "a push that never landed");
    leave_garbage(store, &failed).await;
    let mut unreachable: BTreeSet<String> = entries(store).await.difference(&before).cloned().collect();
    unreachable.insert(format!("blob {}", stray.key()));
    unreachable
}

async fn gc_removes_exactly_the_unreachable_set<S: Store>(ds: &Datastore<S>, run: impl Fn(&[&str]) -> Output) {
    populate(ds).await;
    let unreachable = garbage(ds.store()).await;
    assert!(unreachable.len() >= 5, "{unreachable:?}");
    let before = entries(ds.store()).await;

    // With write times, nothing written within the grace period goes (a store without them
    // is collected with no writer running, and the grace does not apply).
    if ds.store().write_times() {
        let out = run(&["gc"]);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
        assert_eq!(entries(ds.store()).await, before);
    }
    // A dry run lists exactly the garbage.
    let out = run(&["gc", "--dry-run", "--grace", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let listed: BTreeSet<String> = stdout(&out)
        .lines()
        .filter_map(|l| {
            l.strip_prefix("would remove object ")
                .map(|k| format!("blob {k}"))
                .or_else(|| l.strip_prefix("would remove commit ").map(|k| format!("row {k}")))
        })
        .collect();
    assert_eq!(listed, unreachable, "{}", stdout(&out));
    assert_eq!(entries(ds.store()).await, before, "a dry run removes nothing");

    let out = run(&["gc", "--grace", "0"]);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let expected: BTreeSet<String> = before.difference(&unreachable).cloned().collect();
    assert_eq!(entries(ds.store()).await, expected);
    let report = walk::fsck(ds.store(), &Registry::builtin(), |_| {}).await.unwrap();
    assert_eq!(report.problems, vec![]);
    // Nothing left to collect.
    let out = run(&["gc", "--grace", "0"]);
    assert!(stdout(&out).contains("removed 0 objects and 0 commits"), "{}", stdout(&out));
}

/// gc on Cassandra, through the binary beside the library's store: exactly the unreachable
/// blobs and commit rows go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_exactly_the_unreachable_set_on_cassandra() {
    let store = cassandra().await;
    let dir = tempfile::tempdir().unwrap();
    let config = cassandra_config(dir.path(), store.keyspace());
    let ds = Datastore::new(Arc::new(store), Registry::builtin());
    gc_removes_exactly_the_unreachable_set(&ds, |args| run_binary(args, &config)).await;
    ds.store().drop_keyspace().await.unwrap();
}

/// gc on RocksDB: the binary opens the store while the test's handle is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_exactly_the_unreachable_set_on_rocksdb() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let config = rocks_config(dir.path(), &db);
    // RocksDB is opened by one process: the test reopens its store around each run.
    let shared = Arc::new(ReopenedRocks::new(&db));
    let ds = Datastore::new(shared.clone(), Registry::builtin());
    gc_removes_exactly_the_unreachable_set(&ds, |args| {
        shared.close();
        let out = run_binary(args, &config);
        shared.open();
        out
    })
    .await;
}

/// A RocksDB store the test can close while the binary runs on its folder.
struct ReopenedRocks {
    path: PathBuf,
    store: std::sync::RwLock<Option<RocksStore>>,
}

impl ReopenedRocks {
    fn new(path: &Path) -> ReopenedRocks {
        ReopenedRocks { path: path.to_owned(), store: std::sync::RwLock::new(Some(RocksStore::open(path).unwrap())) }
    }

    fn close(&self) {
        self.store.write().unwrap().take();
    }

    fn open(&self) {
        *self.store.write().unwrap() = Some(RocksStore::open(&self.path).unwrap());
    }

    fn get(&self) -> RocksStore {
        self.store.read().unwrap().clone().expect("the store is open")
    }
}

/// Delegates every call to the currently open store.
macro_rules! delegate {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        $(fn $name(&self, $($arg: $ty),*) -> impl std::future::Future<Output = $out> + Send {
            let store = self.get();
            async move { store.$name($($arg),*).await }
        })*
    };
}

impl BlobStore for ReopenedRocks {
    delegate! {
        put_blobs(rows: Vec<BlobRow>) -> StoreResult<()>;
        get_blobs(keys: Vec<Key>) -> StoreResult<Vec<Option<BlobRow>>>;
        has_blobs(keys: Vec<Key>) -> StoreResult<Vec<bool>>;
    }
}

impl HeadStore for ReopenedRocks {
    delegate! {
        get_heads(repository: String) -> StoreResult<Option<Versioned>>;
        cas_heads(repository: String, expected: Option<u64>, record: Bytes) -> StoreResult<Cas>;
    }
}

impl KvStore for ReopenedRocks {
    delegate! {
        get(key: Vec<u8>) -> StoreResult<Option<Bytes>>;
        put(key: Vec<u8>, value: Bytes) -> StoreResult<()>;
        remove(key: Vec<u8>) -> StoreResult<()>;
        has_key(key: Vec<u8>) -> StoreResult<bool>;
        batch_get(keys: Vec<Vec<u8>>) -> StoreResult<Vec<Option<Bytes>>>;
        batch_put(rows: Vec<(Vec<u8>, Bytes)>) -> StoreResult<()>;
        batch_has_key(keys: Vec<Vec<u8>>) -> StoreResult<Vec<bool>>;
    }
}

impl IndexStore for ReopenedRocks {
    fn indexed_attributes(&self) -> Vec<String> {
        self.get().indexed_attributes()
    }

    delegate! {
        batch_put_rows(rows: Vec<Row>) -> StoreResult<()>;
        query(predicates: Vec<Predicate>) -> StoreResult<Vec<Row>>;
    }
}

impl Maintenance for ReopenedRocks {
    fn write_times(&self) -> bool {
        false
    }

    delegate! {
        list_blobs(cursor: Option<Vec<u8>>, limit: usize) -> StoreResult<Page<Listed<Key>>>;
        list_rows(cursor: Option<Vec<u8>>, limit: usize) -> StoreResult<Page<Listed<Vec<u8>>>>;
        list_repositories(cursor: Option<Vec<u8>>, limit: usize) -> StoreResult<Page<String>>;
        delete_blobs(keys: Vec<Key>, written_before: Option<i64>) -> StoreResult<()>;
        delete_rows(keys: Vec<Vec<u8>>, written_before: Option<i64>) -> StoreResult<()>;
        freshen_blobs(keys: Vec<Key>) -> StoreResult<Vec<bool>>;
        freshen_rows(keys: Vec<Vec<u8>>) -> StoreResult<Vec<bool>>;
    }
}

impl Store for ReopenedRocks {}

/// gc beside pushes on Cassandra, with no grace: each round leaves what a failed push wrote
/// (a commit row, its book and persons), starts a gc, and meanwhile pushes that commit again
/// sending only the commit, so the push relies on the stored book (and, through it, on the
/// persons) while gc lists and deletes them. Every push either lands or fails with a clear
/// error; afterwards fsck is clean and every head's graph is complete. The pause between waves
/// is shorter than the datastore's `FRESHEN_LIMIT` to keep the test short; it still exceeds
/// what freshening takes here (milliseconds), which is what the argument needs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gc_keeps_everything_a_concurrent_push_writes() {
    let store = cassandra().await;
    let ds = Datastore::new(Arc::new(store), Registry::builtin());
    populate(&ds).await;
    let registry = Registry::builtin();
    let (mut landed, mut refused, mut revived) = (0, 0, 0);
    for round in 0..6u64 {
        let (mut repo, _) = address_book(&format!("round {round}"));
        edit(&mut repo, &format!("person {round}"), "edited");
        leave_garbage(ds.store(), &repo).await;
        let commits: Vec<Element> = repo.elements().iter().filter(|e| e.ty() == TypeId::COMMIT).cloned().collect();
        // Written before the gc starts, so with no grace all of it is garbage to the gc.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
        let options = GcOptions { now, grace: Duration::ZERO, pause: Duration::from_millis(400), dry_run: false };
        let gc_ds = ds.clone();
        let registry2 = registry.clone();
        let gc = tokio::spawn(async move {
            walk::gc(gc_ds.store(), &registry2, options, Vec::new(), tokio::time::sleep, |_| {})
                .await
                .map_err(|e| e.to_string())
        });
        // Push at different moments of the gc: before its listing, between waves, after.
        tokio::time::sleep(Duration::from_millis(40 * (round % 3) + 150 * (round / 3))).await;
        match push_elements(&ds, &repo, commits.clone()).await {
            Ok(()) => landed += 1,
            Err(e) => {
                assert!(e.message.contains("incomplete") || e.message.contains("retry"), "a clear error: {e}");
                refused += 1;
                // The retry sends everything and lands.
                push(&ds, &repo).await.unwrap();
            }
        }
        let report = gc.await.unwrap().expect("gc runs");
        revived += report.revived;
        let fsck = walk::fsck(ds.store(), &registry, |_| {}).await.unwrap();
        assert_eq!(fsck.problems, vec![], "round {round}");
        // The pushed head's whole graph is there.
        let (root, elements) = ds.get_object(repo.key(), None, None, None, &[]).await.unwrap();
        assert_eq!(root, repo.commit_info(repo.current_heads()[0]).unwrap().root.as_ref().unwrap().key);
        assert_eq!(elements.len(), 3, "round {round}");
    }
    eprintln!(
        "concurrent gc: {landed} pushes landed relying on garbage, {refused} refused and retried, {revived} entries revived"
    );
    assert_eq!(landed + refused, 6);
    ds.store().drop_keyspace().await.unwrap();
}
