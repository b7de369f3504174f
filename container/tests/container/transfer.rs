//! Transfers between DSF peers over AMQP and gRPC: partial clones completed at checkout,
//! ION-style peers, transfers in bounded parts, and a peer that stops answering.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use dsf::proto::net::ooici::cdm::syntactic::{ArrayStructure, BoundedArray, Bounds, OpaqueArray, Variable};
use dsf::store::memory::MemoryStore;
use dsf::store::persist::StoredRepository;
use dsf::store::{BlobStore, Store};
use dsf::{Checkout, Key, Registry, Repository, TypeId};
use dsf_container::Error;
use dsf_container::amqp::{Handler, Request};
use dsf_container::client::{AmqpClient, DEFAULT_EXCLUDED, Progress, Transferred};
use dsf_container::datastore::Datastore;
use dsf_container::datastore::service::{DatastoreService, SERVICE};
use dsf_container::error::ServiceError;
use dsf_container::grpc::{self, GrpcClient};
use futures::future::BoxFuture;
use tokio::net::TcpListener;

use crate::common::{Cluster, address_book, container, content, edit, rocksdb, sysname};

/// A repository whose root is a `Variable` over an `ArrayStructure` of `arrays` bounded arrays,
/// each holding an opaque array of `bytes` bytes (distinct per array). Committed.
fn dataset(arrays: usize, bytes: usize) -> Repository {
    let mut r = Repository::new(Registry::builtin());
    let mut bounded = Vec::with_capacity(arrays);
    for i in 0..arrays {
        let mut payload = vec![0u8; bytes];
        payload[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let array = r.create(&OpaqueArray { value: vec![payload] }).unwrap();
        let b = BoundedArray {
            bounds: vec![Bounds { origin: Some(i as i64), size: Some(1), stride: Some(1) }],
            ndarray: Some(r.link(array).unwrap()),
        };
        let b = r.create(&b).unwrap();
        bounded.push(r.link(b).unwrap());
    }
    let structure = r.create(&ArrayStructure { bounded_arrays: bounded }).unwrap();
    let variable =
        Variable { name: Some("payload".into()), content: Some(r.link(structure).unwrap()), ..Default::default() };
    let root = r.create(&variable).unwrap();
    r.set_root(root).unwrap();
    r.commit("a dataset").unwrap();
    r
}

/// The keys of the arrays (the opaque arrays) of a dataset.
fn array_keys(repo: &Repository) -> Vec<Key> {
    repo.elements().iter().filter(|e| e.ty() == TypeId::of::<OpaqueArray>()).map(|e| e.key()).collect()
}

/// The opaque arrays a checked-out dataset reaches.
fn checked_out_arrays(repo: &Repository) -> usize {
    let root = repo.root().expect("checked out");
    let variable: Variable = repo.get(root).unwrap();
    assert_eq!(variable.name.as_deref(), Some("payload"));
    let structure = repo.children(root).unwrap()[0];
    let mut n = 0;
    for b in repo.children(structure).unwrap() {
        for a in repo.children(b).unwrap() {
            let array: OpaqueArray = repo.get(a).unwrap();
            assert_eq!(array.value.len(), 1);
            n += 1;
        }
    }
    n
}

/// A clone over AMQP leaves out arrays by default (as ION's did); a checkout of every type then
/// fetches what is missing from the datastore, and a later pull taking every type completes the
/// repository too.
#[tokio::test(flavor = "multi_thread")]
async fn a_clone_without_arrays_checks_out_in_full_over_amqp() {
    let (store, _dir) = rocksdb();
    let c = Cluster::start(store, 1).await;
    let source = dataset(3, 1000);
    c.client.push(&source).await.expect("the push");

    let reader = c.client().await;
    let mut copy = reader.clone_repository(source.key(), true, None).await.expect("the clone");
    for k in array_keys(&source) {
        assert!(!copy.elements().contains(&k), "the clone left out array {k}");
    }
    assert_eq!(copy.excluded_for(&Checkout::branch("master")), DEFAULT_EXCLUDED.to_vec());
    reader.checkout(&mut copy, Checkout::branch("master").excluded_types([])).await.expect("a full checkout");
    assert_eq!(checked_out_arrays(&copy), 3);
    for k in array_keys(&source) {
        assert!(copy.elements().contains(&k), "the checkout fetched array {k}");
    }

    // A pull that takes every type descends below what the partial clone holds.
    let other = c.client().await;
    let mut partial = other.clone_repository(source.key(), true, None).await.expect("another partial clone");
    other.pull(&mut partial, true, Some(vec![])).await.expect("a pull of every type");
    for k in array_keys(&source) {
        assert!(partial.elements().contains(&k), "the pull fetched array {k}");
    }
    c.container.terminate().await;
}

/// An ION-style peer's partial clone is completed by a pull of every type: the datastore walks
/// below the keys the have-list names and sends what it does not name.
#[tokio::test(flavor = "multi_thread")]
async fn an_ion_style_pull_completes_a_partial_clone() {
    let c = Cluster::start(MemoryStore::default(), 1).await;
    let source = dataset(3, 1000);
    c.client.push(&source).await.expect("the push");
    let ion = c.client().await.with_ion_protocol();
    let mut partial = ion.clone_repository(source.key(), true, None).await.expect("an ION-style partial clone");
    for k in array_keys(&source) {
        assert!(!partial.elements().contains(&k), "the clone left out array {k}");
    }
    ion.pull(&mut partial, true, Some(vec![])).await.expect("an ION-style pull of every type");
    for k in array_keys(&source) {
        assert!(partial.elements().contains(&k), "the pull brought array {k}");
    }
    ion.checkout(&mut partial, Checkout::branch("master").excluded_types([])).await.expect("a full checkout");
    assert_eq!(checked_out_arrays(&partial), 3);
    c.container.terminate().await;
}

/// A datastore served over gRPC on a loopback port; the server task ends with the test.
async fn grpc_on<S: Store + 'static>(store: S) -> (Arc<Datastore<S>>, String) {
    let ds = Arc::new(Datastore::new(Arc::new(store), Registry::builtin()));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("a bound address"));
    tokio::spawn(grpc::serve(ds.clone(), listener, futures::future::pending::<()>()));
    (ds, url)
}

/// The same over gRPC: a clone leaves out arrays by default, a full checkout fetches them.
#[tokio::test(flavor = "multi_thread")]
async fn a_clone_without_arrays_checks_out_in_full_over_grpc() {
    let (store, _dir) = rocksdb();
    let (_ds, url) = grpc_on(store).await;
    let client = GrpcClient::connect(&url, Registry::builtin()).await.expect("the client connects");
    let source = dataset(3, 1000);
    client.push(&source).await.expect("the push");

    let mut copy = client.clone_repository(source.key(), true, None).await.expect("the clone");
    for k in array_keys(&source) {
        assert!(!copy.elements().contains(&k), "the clone left out array {k}");
    }
    client.checkout(&mut copy, Checkout::branch("master").excluded_types([])).await.expect("a full checkout");
    assert_eq!(checked_out_arrays(&copy), 3);
}

/// gRPC's clone into a store writes what arrives into the store; the stored repository checks
/// out in full from the store alone.
#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_clone_into_a_store_is_complete() {
    let (store, _dir) = rocksdb();
    let (_ds, url) = grpc_on(store).await;
    let client = GrpcClient::connect(&url, Registry::builtin()).await.expect("the client connects");
    let mut source = dataset(4, 10_000);
    client.push(&source).await.expect("the push");

    let local = MemoryStore::default();
    let got = client.clone_into(&local, source.key(), true, Some(vec![])).await.expect("the clone into a store");
    assert!(got.parts >= 2 && got.elements > 0, "{got:?}");
    let mut stored =
        StoredRepository::open(&local, Registry::builtin(), source.key()).await.unwrap().expect("the stored clone");
    stored.checkout(Checkout::branch("master").excluded_types([])).await.expect("a checkout from the store");
    assert_eq!(checked_out_arrays(stored.repository()), 4);

    // A new commit pulled into the store.
    let root = source.root().unwrap();
    source.update::<Variable>(root, |v| v.name = Some("payload".into())).unwrap();
    let structure = source.children(root).unwrap()[0];
    source.update::<ArrayStructure>(structure, |s| s.bounded_arrays.truncate(2)).unwrap();
    source.commit("two arrays").unwrap();
    client.push(&source).await.expect("the second push");
    client.pull_into(&local, source.key(), true, Some(vec![]), false).await.expect("the pull into the store");
    let mut stored =
        StoredRepository::open(&local, Registry::builtin(), source.key()).await.unwrap().expect("the stored clone");
    stored.checkout(Checkout::branch("master").excluded_types([])).await.expect("the new head from the store");
    assert_eq!(checked_out_arrays(stored.repository()), 2);
}

/// An ION-style peer (keys only, the full have-list, no DSF extension fields) still pushes,
/// clones and pulls against a DSF datastore.
#[tokio::test(flavor = "multi_thread")]
async fn an_ion_style_peer_pushes_and_pulls() {
    let c = Cluster::start(MemoryStore::default(), 1).await;
    let ion = c.client().await.with_ion_protocol();
    let (mut source, _) = address_book("ion book");
    ion.push(&source).await.expect("an ION-style push");
    assert!(ion.elements_served() > 0, "the datastore fetched the pushed elements from the pusher");

    // A DSF client and an ION-style client exchange commits through the datastore.
    let dsf = c.client().await;
    let mut copy = dsf.clone_repository(source.key(), true, None).await.expect("a DSF clone");
    dsf.checkout(&mut copy, Checkout::branch("master")).await.unwrap();
    edit(&mut copy, "Dave", "renamed");
    dsf.push(&copy).await.expect("a DSF push");

    ion.pull(&mut source, true, None).await.expect("an ION-style pull");
    ion.checkout(&mut source, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&source).1, vec!["Dave".to_owned(), "John".to_owned()]);

    edit(&mut source, "Davy", "renamed again");
    ion.push(&source).await.expect("a second ION-style push");
    let other = c.client().await.with_ion_protocol();
    let mut third = other.clone_repository(source.key(), true, None).await.expect("an ION-style clone");
    other.checkout(&mut third, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&third).1, vec!["Davy".to_owned(), "John".to_owned()]);
    dsf.pull(&mut copy, true, None).await.expect("a DSF pull");
    dsf.checkout(&mut copy, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&copy).1, vec!["Davy".to_owned(), "John".to_owned()]);
    c.container.terminate().await;
}

/// A push larger than the inline limit stores its objects in bounded put_blobs parts first;
/// the clone comes back in bounded parts too.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_push_and_clone_travel_in_bounded_parts() {
    let c = Cluster::start(MemoryStore::default(), 2).await;
    let part = 1 << 20;
    let pusher = c.client().await.with_inline_limit(part).with_part_bytes(part);
    let source = dataset(24, 256 << 10);
    pusher.push(&source).await.expect("the push in parts");

    let reported = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = reported.clone();
    let progress = Progress(Arc::new(move |t: Transferred| log.lock().unwrap().push(t)));
    let reader = c.client().await.with_part_bytes(part).with_progress(progress);
    let local = MemoryStore::default();
    let got = reader.clone_into(&local, source.key(), true, Some(vec![])).await.expect("the clone in parts");
    let reported = reported.lock().unwrap().clone();
    assert_eq!(reported.len() as u64, got.parts, "progress after every part");
    assert_eq!(reported.last(), Some(&got));
    assert!(reported.windows(2).all(|w| w[0].bytes <= w[1].bytes && w[0].elements <= w[1].elements));
    assert!(got.bytes > 6 << 20, "{got:?}");
    assert!(got.largest_part <= part as u64, "{got:?}");
    assert!(got.parts >= got.bytes / part as u64, "{got:?}");
    let present = local.has_blobs(array_keys(&source)).await.unwrap();
    assert!(present.iter().all(|p| *p), "every array arrived");
    c.container.terminate().await;
}

/// 300 MiB of arrays cloned over AMQP into a RocksDB store, in parts of at most 4 MiB.
#[tokio::test(flavor = "multi_thread")]
async fn a_300_mib_clone_over_amqp_travels_in_bounded_messages() {
    let (store, _dir) = rocksdb();
    let c = Cluster::start(store, 1).await;
    // Stored directly (the client's side of the test holds only what it receives).
    let (keys, key) = {
        let source = dataset(300, 1 << 20);
        let keys = array_keys(&source);
        let key = source.key().to_owned();
        let mut stored = StoredRepository::create(c.ds.store(), source);
        stored.save().await.expect("the source stored");
        (keys, key)
    };
    let reader = c.client().await;
    let (local, _local_dir) = rocksdb();
    let got = reader.clone_into(&local, &key, true, Some(vec![])).await.expect("the 300 MiB clone");
    assert!(got.bytes >= 300 << 20, "{got:?}");
    assert!(got.largest_part <= 4 << 20, "{got:?}");
    assert!(got.parts >= 75, "{got:?}");
    let present = local.has_blobs(keys).await.unwrap();
    assert!(present.iter().all(|p| *p), "every array arrived");
    c.container.terminate().await;
}

/// A datastore that answers `limit` fetch_blobs requests, then stops answering until
/// `release` gets permits.
struct Stalling<S> {
    inner: Arc<DatastoreService<S>>,
    answered: AtomicU32,
    limit: u32,
    release: tokio::sync::Semaphore,
}

impl<S: Store + 'static> Handler for Stalling<S> {
    fn handle(self: Arc<Self>, request: Request) -> BoxFuture<'static, std::result::Result<Bytes, ServiceError>> {
        Box::pin(async move {
            if request.headers.op == "fetch_blobs" && self.answered.fetch_add(1, Ordering::SeqCst) >= self.limit {
                let _ = self.release.acquire().await;
            }
            self.inner.clone().handle(request).await
        })
    }
}

/// A peer that stops answering mid-transfer: the clone fails with a stalled-transfer error
/// after the client's timeout, naming the operation and what had arrived.
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_peer_times_out_with_a_clear_error() {
    let sys = sysname();
    let container = container(&sys).await;
    let ds = Datastore::new(Arc::new(MemoryStore::default()), Registry::builtin());
    let source = dataset(8, 64 << 10);
    let mut stored = StoredRepository::create(ds.store(), source.clone());
    stored.save().await.expect("the source stored");
    let inner = Arc::new(DatastoreService::new(ds.clone()));
    let stalling =
        Arc::new(Stalling { inner, answered: AtomicU32::new(0), limit: 2, release: tokio::sync::Semaphore::new(0) });
    container.spawn("datastore", Some(SERVICE), stalling.clone()).await.expect("the stalling datastore");
    let client = AmqpClient::spawn(&container, None)
        .await
        .expect("client")
        .with_part_bytes(100 << 10)
        .with_timeout(Duration::from_secs(2));
    let err = client.clone_repository(source.key(), true, Some(vec![])).await.expect_err("the stalled clone");
    match &err {
        Error::Stalled { op, parts, bytes, .. } => {
            assert_eq!(op, "fetch_blobs");
            assert!(*parts >= 3 && *bytes > 0, "{err}");
        }
        other => panic!("expected a stalled transfer, got {other}"),
    }
    let text = err.to_string();
    assert!(text.contains("stalled") && text.contains("fetch_blobs"), "{text}");
    // The requests held back are answered, so the datastore process can stop.
    stalling.release.add_permits(1000);
    container.terminate().await;
}

/// A gRPC push larger than the datastore holds whole (`STAGE_BYTES`) is stored as it arrives,
/// and the clone into a store comes back complete; a push whose objects link to something
/// neither sent nor stored is still refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_large_grpc_push_is_stored_as_it_arrives() {
    let (store, _dir) = rocksdb();
    let (ds, url) = grpc_on(store).await;
    let client = GrpcClient::connect(&url, Registry::builtin()).await.expect("the client connects");
    let source = dataset(12, 1 << 20);
    assert!(array_keys(&source).len() * (1 << 20) > grpc::STAGE_BYTES);
    let pushed = client.push(&source).await.expect("the large push");
    assert_eq!(pushed.stored, source.elements().len() as u64, "every element is new");
    assert!(ds.missing(&array_keys(&source)).await.unwrap().is_empty());

    let local = MemoryStore::default();
    client.clone_into(&local, source.key(), true, Some(vec![])).await.expect("the clone");
    let mut stored = StoredRepository::open(&local, Registry::builtin(), source.key()).await.unwrap().expect("stored");
    stored.checkout(Checkout::branch("master").excluded_types([])).await.expect("a checkout from the store");
    assert_eq!(checked_out_arrays(stored.repository()), 12);

    // The same shape with one array missing from the push: refused.
    let other = dataset(13, 1 << 20);
    let missing = array_keys(&other).into_iter().find(|k| !array_keys(&source).contains(k)).expect("a new array");
    let parts: Vec<dsf_proto::grpc::PushPart> = {
        use dsf_proto::grpc::{ElementBatch, PushPart, PushStart, push_part};
        let start = PushPart {
            part: Some(push_part::Part::Start(PushStart {
                repository_key: other.key().to_owned(),
                heads: Some(grpc::heads_record(other.algorithm(), other.branches(), other.nicknames())),
            })),
        };
        let elements: Vec<Vec<u8>> =
            other.elements().iter().filter(|e| e.key() != missing).map(dsf::Element::encode).collect();
        std::iter::once(start)
            .chain(
                elements
                    .chunks(4)
                    .map(|c| PushPart { part: Some(push_part::Part::Elements(ElementBatch { elements: c.to_vec() })) }),
            )
            .collect()
    };
    let status = client.raw().push(futures::stream::iter(parts)).await.expect_err("an incomplete push");
    assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains("incomplete"), "{status:?}");
}
