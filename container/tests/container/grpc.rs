//! The datastore's gRPC front and client: a real server on a loopback port, stores on RocksDB
//! in a temporary folder and on a real Cassandra (DSF_CASSANDRA).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use dsf::proto::net::ooici::cdm::syntactic::{ArrayStructure, BoundedArray, Bounds, F64Array};
use dsf::proto::net::ooici::core::link::IdRef;
use dsf::proto::net::ooici::core::message::ion_msg::ResponseCodes;
use dsf::proto::net::ooici::play::{AddressLink, Person};
use dsf::store::Store;
use dsf::{Checkout, Element, HashAlgorithm, Key, MASTER_BRANCH, ObjectId, Registry, Repository, TypeId};
use dsf_container::content::link_to;
use dsf_container::datastore::Datastore;
use dsf_container::grpc::{self, GrpcClient, heads_record};
use dsf_container::{Error, Result};
use dsf_proto::grpc::{ElementBatch, PushPart, PushStart, push_part};
use dsf_store_backends::cassandra::{CassandraConfig, CassandraStore};
use dsf_store_backends::rocks::RocksStore;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A datastore served over gRPC on a loopback port.
struct Served<S> {
    ds: Arc<Datastore<S>>,
    url: String,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Result<()>>,
}

impl<S: Store + 'static> Served<S> {
    async fn start(store: S) -> Served<S> {
        let ds = Arc::new(Datastore::new(Arc::new(store), Registry::builtin()));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let url = format!("http://{}", listener.local_addr().expect("a bound address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(grpc::serve(ds.clone(), listener, async move {
            let _ = stopped.await;
        }));
        Served { ds, url, stop, task }
    }

    async fn client(&self) -> GrpcClient {
        GrpcClient::connect(&self.url, Registry::builtin()).await.expect("the client connects")
    }

    /// Stops the server and checks that it ends cleanly.
    async fn stop(self) {
        let _ = self.stop.send(());
        let ended = tokio::time::timeout(Duration::from_secs(20), self.task).await.expect("the server stops in time");
        ended.expect("the server task does not panic").expect("the server ends without error");
    }
}

async fn on_rocksdb() -> (Served<RocksStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let store = RocksStore::open(dir.path()).expect("RocksDB opens");
    (Served::start(store).await, dir)
}

async fn on_cassandra() -> Served<CassandraStore> {
    const HOW: &str = "start one with `scripts/cassandra start --port 19142` and \
                       `export DSF_CASSANDRA=127.0.0.1:19142`";
    let node = std::env::var("DSF_CASSANDRA").unwrap_or_default();
    if node.trim().is_empty() {
        panic!("DSF_CASSANDRA is not set: this test needs a real Cassandra; {HOW}");
    }
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let keyspace = format!("grpc_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
    let store = CassandraStore::connect(CassandraConfig::local(keyspace))
        .await
        .unwrap_or_else(|e| panic!("cannot reach the test Cassandra at {node} ({e}): {HOW}"));
    Served::start(store).await
}

async fn drop_cassandra(served: Served<CassandraStore>) {
    let ds = served.ds.clone();
    served.stop().await;
    ds.store().drop_keyspace().await.expect("the test keyspace is dropped");
}

fn person(name: &str, id: i32) -> Person {
    Person { name: Some(name.into()), id: Some(id), email: None, phone: Vec::new() }
}

/// A committed repository whose root is an AddressLink over `n` distinct persons (the first
/// also the owner).
fn book(title: &str, n: usize) -> Repository {
    let mut repo = Repository::new(Registry::builtin());
    let persons: Vec<ObjectId> =
        (0..n).map(|i| repo.create(&person(&format!("person {i}"), i as i32)).expect("a person")).collect();
    let book = AddressLink {
        person: persons.iter().map(|p| repo.link(*p).expect("a link")).collect(),
        owner: Some(repo.link(persons[0]).expect("a link")),
        title: Some(title.into()),
    };
    let root = repo.create(&book).expect("a book");
    repo.set_root(root).expect("the root");
    repo.commit("an address book").expect("the first commit");
    repo
}

/// Renames the `index`-th person of the checked-out book and commits.
fn rename(repo: &mut Repository, index: usize, name: &str) -> Key {
    let root = repo.root().expect("checked out");
    let target = repo.children(root).expect("the persons")[index];
    repo.update::<Person>(target, |p| p.name = Some(name.into())).expect("the rename");
    repo.commit(&format!("renamed person {index} {name}")).expect("a commit")
}

/// The checked-out book: its title and the names of its persons, in order.
fn content(repo: &Repository) -> (String, Vec<String>) {
    let root = repo.root().expect("checked out");
    let book: AddressLink = repo.get(root).expect("the book");
    let names = repo
        .children(root)
        .expect("the persons")
        .into_iter()
        .map(|c| repo.get::<Person>(c).expect("a person").name.unwrap_or_default())
        .collect();
    (book.title.unwrap_or_default(), names)
}

fn master_heads(repo: &Repository) -> Vec<Key> {
    repo.get_branch(MASTER_BRANCH).expect("a master branch").heads.clone()
}

fn head_root(repo: &Repository) -> Key {
    let heads = master_heads(repo);
    assert_eq!(heads.len(), 1, "one head expected");
    repo.commit_info(heads[0]).expect("the head commit").root.as_ref().expect("a root").key
}

fn keys_of(repo: &Repository) -> HashSet<Key> {
    repo.elements().iter().map(Element::key).collect()
}

fn sorted(mut keys: Vec<Key>) -> Vec<Key> {
    keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    keys
}

fn object_count(repo: &Repository) -> usize {
    repo.elements().iter().filter(|e| e.ty() != TypeId::COMMIT).count()
}

// ----- scenarios (run on each store) -----------------------------------------------------------

async fn clone_equals_source<S: Store + 'static>(served: &Served<S>) {
    let writer = served.client().await;
    let mut source = book("clone me", 5);
    let first = writer.push(&source).await.expect("the first push");
    assert_eq!(first.stored, 7, "5 persons, the book and the commit are new");
    assert_eq!(first.sent_elements, 7);
    rename(&mut source, 2, "Carol");
    writer.push(&source).await.expect("the second push");

    let reader = served.client().await;
    let mut copy = reader.clone_repository(source.key(), true, None).await.expect("the clone");
    assert_eq!(copy.key(), source.key());
    assert_eq!(master_heads(&copy), master_heads(&source));
    assert_eq!(sorted(copy.commits().map(|c| c.key).collect()), sorted(source.commits().map(|c| c.key).collect()));
    let root = head_root(&source);
    assert_eq!(
        sorted(copy.elements().reachable(&[root], &[])),
        sorted(source.elements().reachable(&[root], &[])),
        "the clone holds the head's whole graph"
    );
    reader.checkout(&mut copy, Checkout::branch(MASTER_BRANCH)).await.expect("the checkout");
    assert_eq!(content(&copy), content(&source));
    assert_eq!(content(&copy).1[2], "Carol");

    let absent = reader.clone_repository("no-such-repository", true, None).await.expect_err("an unknown repository");
    assert_eq!(absent.code(), Some(ResponseCodes::NotFound), "{absent}");
}

async fn divergent_pushes_keep_both_heads<S: Store + 'static>(served: &Served<S>) {
    let a = served.client().await;
    let b = served.client().await;
    let mut ra = book("shared", 4);
    a.push(&ra).await.expect("the first push");
    let mut rb = b.clone_repository(ra.key(), true, None).await.expect("b clones");
    b.checkout(&mut rb, Checkout::branch(MASTER_BRANCH)).await.expect("b checks out");

    let ka = rename(&mut ra, 0, "Alice");
    let kb = rename(&mut rb, 1, "Bob");
    let pa = a.push(&ra).await.expect("a pushes");
    let branch = pa.heads.nicknames.get(MASTER_BRANCH).expect("a master nickname").clone();
    let heads_after = |h: &grpc::RemoteHeads| -> HashSet<Key> {
        h.branches.iter().find(|x| x.key == branch).expect("the branch").heads.iter().copied().collect()
    };
    assert_eq!(heads_after(&pa.heads), HashSet::from([ka]), "a fast-forwards");
    let pb = b.push(&rb).await.expect("b pushes a diverging commit");
    assert_eq!(pb.stored, 3, "b's new person, book and commit");
    assert_eq!(heads_after(&pb.heads), HashSet::from([ka, kb]), "both heads are kept");

    let pulled = a.pull(&mut ra, true, None).await.expect("a pulls");
    assert_eq!(pulled.elements, 3, "a receives only b's commit, book and person");
    assert_eq!(master_heads(&ra).into_iter().collect::<HashSet<Key>>(), HashSet::from([ka, kb]));
    a.checkout(&mut ra, Checkout::branch(MASTER_BRANCH).commit(kb)).await.expect("a checks out b's head");
    assert_eq!(content(&ra).1[..2], ["person 0".to_owned(), "Bob".to_owned()]);

    let c = served.client().await;
    let rc = c.clone_repository(ra.key(), false, None).await.expect("c clones");
    assert_eq!(master_heads(&rc).into_iter().collect::<HashSet<Key>>(), HashSet::from([ka, kb]));
}

async fn incremental_push_sends_only_the_delta<S: Store + 'static>(served: &Served<S>) {
    const LEAVES: usize = 40;
    let client = served.client().await;
    let mut repo = book("big book", LEAVES);
    let first = client.push(&repo).await.expect("the first push");
    assert_eq!(first.stored, LEAVES as u64 + 2);

    let before = keys_of(&repo);
    rename(&mut repo, 7, "Grace");
    let changed: Vec<&Element> = repo.elements().iter().filter(|e| !before.contains(&e.key())).collect();
    assert_eq!(changed.len(), 3, "the renamed person, the book and the commit");
    let changed_bytes: u64 = changed.iter().map(|e| e.encoded_len() as u64).sum();

    let second = client.push(&repo).await.expect("the incremental push");
    assert_eq!(second.stored, changed.len() as u64);
    assert_eq!(second.sent_elements, changed.len());
    assert!(
        second.sent_bytes < 2 * changed_bytes,
        "the push sent {} bytes for {changed_bytes} bytes of changed elements",
        second.sent_bytes
    );
    assert!(second.sent_bytes >= changed_bytes);
    assert!(second.negotiate_bytes > 0);

    let again = client.push(&repo).await.expect("a push without changes");
    assert_eq!((again.stored, again.sent_elements), (0, 0));

    let reader = served.client().await;
    let mut copy = reader.clone_repository(repo.key(), true, None).await.expect("the clone");
    reader.checkout(&mut copy, Checkout::branch(MASTER_BRANCH)).await.expect("the checkout");
    assert_eq!(content(&copy), content(&repo));
    assert_eq!(content(&copy).1[7], "Grace");
}

// ----- tests ---------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn clone_via_grpc_equals_the_source() {
    let (served, _dir) = on_rocksdb().await;
    clone_equals_source(&served).await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn clone_via_grpc_equals_the_source_on_cassandra() {
    let served = on_cassandra().await;
    clone_equals_source(&served).await;
    drop_cassandra(served).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_push_sends_only_the_delta_on_rocksdb() {
    let (served, _dir) = on_rocksdb().await;
    incremental_push_sends_only_the_delta(&served).await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn incremental_push_sends_only_the_delta_on_cassandra() {
    let served = on_cassandra().await;
    incremental_push_sends_only_the_delta(&served).await;
    drop_cassandra(served).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn divergent_pushes_keep_both_heads_on_rocksdb() {
    let (served, _dir) = on_rocksdb().await;
    divergent_pushes_keep_both_heads(&served).await;
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn divergent_pushes_keep_both_heads_on_cassandra() {
    let served = on_cassandra().await;
    divergent_pushes_keep_both_heads(&served).await;
    drop_cassandra(served).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_sends_only_what_the_client_lacks() {
    let (served, _dir) = on_rocksdb().await;
    let writer = served.client().await;
    let reader = served.client().await;
    let mut source = book("pulled", 30);
    writer.push(&source).await.expect("the first push");
    let mut copy = reader.clone_repository(source.key(), true, None).await.expect("the clone");
    assert_eq!(object_count(&copy), 31, "30 persons and the book");

    rename(&mut source, 12, "Mallory");
    writer.push(&source).await.expect("the second push");
    let pulled = reader.pull(&mut copy, true, None).await.expect("the pull");
    assert_eq!(pulled.elements, 3, "the new commit, book and person only");
    assert_eq!(master_heads(&copy), master_heads(&source));
    reader.checkout(&mut copy, Checkout::branch(MASTER_BRANCH)).await.expect("the checkout");
    assert_eq!(content(&copy), content(&source));

    let nothing = reader.pull(&mut copy, true, None).await.expect("a pull without news");
    assert_eq!(nothing.elements, 0);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_with_excluded_types_then_full_checkout() {
    let (served, _dir) = on_rocksdb().await;
    let writer = served.client().await;
    let reader = served.client().await;
    let person = TypeId::of::<Person>();
    let mut source = book("partial", 5);
    writer.push(&source).await.expect("the first push");
    let mut copy = reader.clone_repository(source.key(), true, Some(vec![person])).await.expect("a partial clone");
    assert_eq!(object_count(&copy), 1, "the book without its persons");

    rename(&mut source, 4, "Frank");
    writer.push(&source).await.expect("the second push");
    let pulled = reader.pull(&mut copy, true, Some(vec![person])).await.expect("a partial pull");
    assert_eq!(pulled.elements, 2, "the new commit and book, no person");
    assert!(copy.elements().iter().all(|e| e.ty() != person));

    // A checkout that wants the persons fetches the head's whole graph.
    reader
        .checkout(&mut copy, Checkout::branch(MASTER_BRANCH).excluded_types([]))
        .await
        .expect("a checkout with every type");
    assert_eq!(content(&copy), content(&source));
    assert_eq!(content(&copy).1[4], "Frank");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pull_without_head_content_then_remote_checkout() {
    let (served, _dir) = on_rocksdb().await;
    let writer = served.client().await;
    let reader = served.client().await;
    let mut source = book("lazy", 6);
    writer.push(&source).await.expect("the push");

    let mut copy = reader.clone_repository(source.key(), false, None).await.expect("a clone without content");
    assert_eq!(copy.commits().count(), 1);
    assert_eq!(object_count(&copy), 0, "no objects without head content");
    reader.checkout(&mut copy, Checkout::branch(MASTER_BRANCH)).await.expect("a remote checkout");
    assert_eq!(content(&copy), content(&source));

    rename(&mut source, 3, "Dave");
    writer.push(&source).await.expect("the second push");
    let pulled = reader.pull(&mut copy, false, None).await.expect("a pull without content");
    assert_eq!(pulled.elements, 1, "only the new commit");
    assert_eq!(master_heads(&copy), master_heads(&source));
    assert!(!copy.elements().contains(&head_root(&source)), "the new root is not pulled");
    reader.checkout(&mut copy, Checkout::branch(MASTER_BRANCH)).await.expect("a second remote checkout");
    assert_eq!(content(&copy), content(&source));
    assert_eq!(content(&copy).1[3], "Dave");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn get_object_with_excluded_types() {
    let (served, _dir) = on_rocksdb().await;
    let client = served.client().await;
    let mut repo = book("objects", 3);
    let old_root = head_root(&repo);
    let old_commit = master_heads(&repo)[0];
    rename(&mut repo, 1, "Eve");
    client.push(&repo).await.expect("the push");
    let root = head_root(&repo);
    let id = |branch: Option<&str>, commit: Option<Key>, treeish: Option<&str>| IdRef {
        key: Some(repo.key().to_owned()),
        branch: branch.map(str::to_owned),
        commit: commit.map(|k| k.as_bytes().to_vec()),
        treeish: treeish.map(str::to_owned),
        ..IdRef::default()
    };
    let person = TypeId::of::<Person>();

    let whole = client.get_object(id(None, None, None), &[]).await.expect("the head object");
    assert_eq!(whole.root, root);
    assert_eq!(
        sorted(whole.elements.iter().map(Element::key).collect()),
        sorted(repo.elements().reachable(&[root], &[]))
    );
    assert_eq!(whole.elements.iter().filter(|e| e.ty() == person).count(), 3);

    let pruned = client.get_object(id(Some(MASTER_BRANCH), None, None), &[person]).await.expect("without persons");
    assert_eq!(pruned.root, root);
    assert_eq!(pruned.elements.iter().map(Element::key).collect::<Vec<_>>(), vec![root], "only the book");
    assert_eq!(pruned.excluded, vec![person]);
    let book: AddressLink = pruned.elements[0].decode_as().expect("the book");
    assert_eq!(book.title.as_deref(), Some("objects"));

    let by_commit = client.get_object(id(None, Some(old_commit), None), &[]).await.expect("by commit");
    assert_eq!(by_commit.root, old_root);
    let by_treeish = client.get_object(id(None, None, Some("~1")), &[]).await.expect("by treeish");
    assert_eq!(by_treeish.root, old_root);
    let names: HashSet<String> = by_treeish
        .elements
        .iter()
        .filter(|e| e.ty() == person)
        .map(|e| e.decode_as::<Person>().expect("a person").name.unwrap_or_default())
        .collect();
    assert!(names.contains("person 1") && !names.contains("Eve"), "{names:?}");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_blobs_of_an_unknown_key_is_not_found() {
    let (served, _dir) = on_rocksdb().await;
    let client = served.client().await;
    let repo = book("blobs", 2);
    client.push(&repo).await.expect("the push");
    let root = head_root(&repo);
    let got = client.fetch_blobs(&[root]).await.expect("a stored element");
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0], repo.elements().get(&root).expect("the root"));
    let commit = master_heads(&repo)[0];
    assert_eq!(client.fetch_blobs(&[commit]).await.expect("a commit")[0].key(), commit);

    let unknown = HashAlgorithm::Sha1.element_key(b"never stored", TypeId::of::<Person>());
    let err = client.fetch_blobs(&[root, unknown]).await.expect_err("an unknown key");
    assert!(matches!(err, Error::Application { .. }), "{err:?}");
    assert_eq!(err.code(), Some(ResponseCodes::NotFound), "{err}");
    assert!(err.to_string().contains(&unknown.to_string()), "{err}");
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_element_bytes_on_push_are_refused_and_nothing_is_stored() {
    let (served, _dir) = on_rocksdb().await;
    let client = served.client().await;
    let repo = book("corrupt", 2);
    let good: Vec<Vec<u8>> = repo.elements().iter().map(Element::encode).collect();
    let keys: Vec<Key> = repo.elements().iter().map(Element::key).collect();
    let start = PushPart {
        part: Some(push_part::Part::Start(PushStart {
            repository_key: repo.key().to_owned(),
            heads: Some(heads_record(repo.algorithm(), repo.branches(), repo.nicknames())),
        })),
    };
    let batch = |elements: Vec<Vec<u8>>| PushPart { part: Some(push_part::Part::Elements(ElementBatch { elements })) };
    // A value changed after hashing: the key no longer matches.
    let mut tampered = repo.elements().get(&head_root(&repo)).expect("the root").encode();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x20;

    let pushes = [
        vec![start.clone(), batch(good.clone()), batch(vec![b"not an element".to_vec()])],
        vec![start.clone(), batch([good.clone(), vec![tampered]].concat())],
        vec![batch(good.clone()), start.clone()],
    ];
    for parts in pushes {
        let status = client.raw().push(futures::stream::iter(parts)).await.expect_err("a refused push");
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert!(!status.message().is_empty());
    }
    let negotiation = client.negotiate(repo.key(), &[master_heads(&repo)[0]]).await.expect("the negotiation");
    assert_eq!(negotiation.heads, None, "no repository was created");
    assert_eq!(negotiation.have, vec![false]);
    assert_eq!(served.ds.missing(&keys).await.expect("missing").len(), keys.len(), "no element was stored");

    // The same push with good bytes is accepted.
    let status = client.raw().push(futures::stream::iter(vec![start, batch(good)])).await.expect("a good push");
    assert_eq!(status.into_inner().stored, keys.len() as u64);
    let negotiation = client.negotiate(repo.key(), &keys).await.expect("the second negotiation");
    assert_eq!(negotiation.heads.expect("the repository now").branches, repo.branches());
    assert_eq!(negotiation.have, vec![true; keys.len()]);
    served.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn extract_data_over_grpc() {
    let (served, _dir) = on_rocksdb().await;
    let client = served.client().await;
    let registry = Registry::builtin();
    let alg = HashAlgorithm::Sha1;
    let values: Vec<f64> = (0..10).map(|i| f64::from(i) * 1.5).collect();
    let array = Element::from_message(alg, &registry, &F64Array { value: values.clone() }).expect("the array");
    let bounded = BoundedArray {
        bounds: vec![Bounds { origin: Some(0), size: Some(10), stride: Some(1) }],
        ndarray: Some(link_to(&array)),
    };
    let bounded = Element::from_message(alg, &registry, &bounded).expect("the bounded array");
    let structure = ArrayStructure { bounded_arrays: vec![link_to(&bounded)] };
    let structure = Element::from_message(alg, &registry, &structure).expect("the structure");
    assert_eq!((array.ty().object_id, bounded.ty().object_id, structure.ty().object_id), (10014, 10021, 10025));

    let elements = [array, bounded, structure.clone()];
    assert_eq!(client.put_blobs(&elements).await.expect("put_blobs"), 3);
    assert_eq!(client.put_blobs(&elements).await.expect("put_blobs again"), 0, "nothing new");

    let request = vec![Bounds { origin: Some(2), size: Some(6), stride: Some(2) }];
    let chunks = client.extract_data(structure.key(), request).await.expect("extract_data");
    assert_eq!(chunks.len(), 1);
    let (start, chunk) = &chunks[0];
    assert_eq!(*start, 0);
    assert_eq!(chunk.decode_as::<F64Array>().expect("an f64 array").value, vec![3.0, 6.0, 9.0]);

    // An unset stride is 1.
    let whole = client
        .extract_data(structure.key(), vec![Bounds { origin: None, size: Some(10), stride: None }])
        .await
        .expect("the whole array");
    let got: Vec<f64> =
        whole.iter().flat_map(|(_, e)| e.decode_as::<F64Array>().expect("an f64 array").value).collect();
    assert_eq!(got, values);

    let absent = HashAlgorithm::Sha1.element_key(b"no structure", TypeId::ARRAY_STRUCTURE);
    let err = client.extract_data(absent, vec![]).await.expect_err("an unknown structure");
    assert_eq!(err.code(), Some(ResponseCodes::NotFound), "{err}");
    served.stop().await;
}
