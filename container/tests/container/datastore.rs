//! Spec §7.8 DataStoreTest: the datastore service on a real Cassandra.

use std::collections::HashSet;

use dsf::proto::net::ooici::core::association::Terminology;
use dsf::proto::net::ooici::core::link::IdRef;
use dsf::proto::net::ooici::play::{AddressLink, Person};
use dsf::proto::net::ooici::services::coi::OoiResource;
use dsf::proto::net::ooici::services::coi::ooi_resource::LifeCycleState;
use dsf::{Checkout, Key, TypeId};
use dsf_container::Error;
use dsf_container::datastore::preload::{PREDICATES, ROOT_IDENTITY};
use dsf_proto::net::ooici::core::message::ion_msg::ResponseCodes;

use crate::common::*;

/// ★ test_push: a push to the datastore is acknowledged.
#[tokio::test(flavor = "multi_thread")]
async fn test_push() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (src, _) = address_book("pushed");
    c.client.push(&src).await.expect("push OK");
}

/// ★ test_existence: preloaded predicates and the ROOT identity exist; a new repository exists
/// only after its push.
#[tokio::test(flavor = "multi_thread")]
async fn test_existence() {
    let c = Cluster::start(cassandra().await, 1).await;
    assert_eq!(c.ds.preload().await.unwrap(), PREDICATES.len() + 1);
    assert_eq!(c.ds.preload().await.unwrap(), 0, "a second preload creates nothing");
    for (key, _) in PREDICATES {
        assert!(c.ds.heads(key).await.unwrap().is_some(), "{key}");
    }
    assert!(c.ds.heads(ROOT_IDENTITY).await.unwrap().is_some());
    let (src, _) = address_book("new");
    assert!(c.ds.heads(src.key()).await.unwrap().is_none());
    c.client.push(&src).await.unwrap();
    assert!(c.ds.heads(src.key()).await.unwrap().is_some());
}

/// ★ test_put_blobs: put_blobs adds exactly the sent keys to the store.
#[tokio::test(flavor = "multi_thread")]
async fn test_put_blobs() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (src, _) = address_book("blobs");
    let sent: Vec<dsf::Element> = src.elements().iter().filter(|e| e.ty() != TypeId::COMMIT).cloned().collect();
    let keys: Vec<Key> = sent.iter().map(|e| e.key()).collect();
    assert_eq!(c.ds.missing(&keys).await.unwrap().len(), keys.len());
    c.client.put_blobs(&sent).await.unwrap();
    assert!(c.ds.missing(&keys).await.unwrap().is_empty(), "every sent key is stored");
    let commit = src.current_heads()[0];
    assert_eq!(c.ds.missing(&[commit]).await.unwrap(), vec![commit], "nothing else was stored");
    let back = c.client.fetch_blobs(&keys).await.unwrap();
    assert_eq!(back.len(), keys.len());
}

/// ★ test_checkout: op checkout returns every element under a root; with excluded types a
/// strict subset without excluded-type elements, whose omissions are all of or below an
/// excluded type.
#[tokio::test(flavor = "multi_thread")]
async fn test_checkout() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (src, _) = address_book("checkout");
    c.client.push(&src).await.unwrap();
    let root = src.commit_info(src.current_heads()[0]).unwrap().root.as_ref().unwrap().key;
    let all = c.client.remote_checkout(root, &[]).await.unwrap();
    let all_keys: HashSet<Key> = all.iter().map(|e| e.key()).collect();
    assert_eq!(all_keys.len(), src.elements().len() - 1, "every element but the commit");

    let person = TypeId::of::<Person>();
    let some = c.client.remote_checkout(root, &[person]).await.unwrap();
    let some_keys: HashSet<Key> = some.iter().map(|e| e.key()).collect();
    assert!(some_keys.len() < all_keys.len() && some_keys.is_subset(&all_keys));
    assert!(some.iter().all(|e| e.ty() != person), "no element of an excluded type");
    for e in all.iter().filter(|e| !some_keys.contains(&e.key())) {
        assert_eq!(e.ty(), person, "omitted elements are of (or below) the excluded type");
    }
}

/// A resource repository: an OOIResource (ACTIVE) whose resource_object is an address book.
fn resource(name: &str) -> dsf::Repository {
    let (mut r, book) = address_book(name);
    let res = OoiResource {
        name: Some(name.into()),
        identity: Some(r.key().to_owned()),
        object_type: Some(dsf_container::content::gpb_type(TypeId::of::<AddressLink>())),
        lcs: Some(LifeCycleState::Active as i32),
        resource_object: Some(r.link(book).unwrap()),
        description: None,
        resource_type: None,
    };
    let res = r.create(&res).unwrap();
    r.set_root(res).unwrap();
    r.commit("a resource").unwrap();
    r
}

fn idref(key: &str) -> IdRef {
    IdRef { key: Some(key.to_owned()), ..IdRef::default() }
}

/// ★ test_get_object: the resource (1102) comes back; with excluded types fewer elements, and
/// the exclusion is echoed.
#[tokio::test(flavor = "multi_thread")]
async fn test_get_object() {
    let c = Cluster::start(cassandra().await, 1).await;
    let src = resource("thing");
    c.client.push(&src).await.unwrap();
    let full = c.client.get_object(idref(src.key()), &[]).await.unwrap();
    let root = full.elements.iter().find(|e| e.key() == full.root).expect("root is sent");
    assert_eq!(root.ty(), TypeId::of::<OoiResource>());
    assert_eq!(full.elements.len(), 4, "resource, book, two persons");
    let part = c.client.get_object(idref(src.key()), &[TypeId::of::<AddressLink>()]).await.unwrap();
    assert!(part.elements.len() < full.elements.len());
    assert_eq!(part.elements.len(), 1, "only the resource");
    assert_eq!(part.excluded, vec![TypeId::of::<AddressLink>()], "the exclusion is echoed");
}

/// test_get_object_with_treeish: an unresolvable treeish is a container error that says so.
#[tokio::test(flavor = "multi_thread")]
async fn test_get_object_with_treeish() {
    let c = Cluster::start(cassandra().await, 1).await;
    let src = resource("thing");
    c.client.push(&src).await.unwrap();
    let id = IdRef { treeish: Some("~20".into()), ..idref(src.key()) };
    let err = c.client.get_object(id, &[]).await.unwrap_err();
    assert!(matches!(err, Error::Container { .. }), "{err}");
    assert!(err.to_string().contains("resolve treeish"), "{err}");
    // get_object honours an explicit commit (ION ignored it).
    let first = src.commit_info(src.current_heads()[0]).unwrap().parents[0].commit;
    let id = IdRef { commit: Some(first.as_bytes().to_vec()), ..idref(src.key()) };
    let old = c.client.get_object(id, &[]).await.unwrap();
    let root = old.elements.iter().find(|e| e.key() == old.root).unwrap();
    assert_eq!(root.ty(), TypeId::of::<AddressLink>(), "the first commit's root was the book");
}

/// ★ test_push_clear_pull: push, forget everything on the client side, pull back.
#[tokio::test(flavor = "multi_thread")]
async fn test_push_clear_pull() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (src, _) = address_book("round trip");
    c.client.push(&src).await.unwrap();
    c.client.terminate().await;
    let fresh = c.client().await;
    let mut back = fresh.clone_repository(src.key(), true, None).await.unwrap();
    fresh.checkout(&mut back, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&back), content(&src));
}

/// ★ test_push_clear_pull_branched: both branches survive the store.
#[tokio::test(flavor = "multi_thread")]
async fn test_push_clear_pull_branched() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (mut src, _) = address_book("trunk");
    src.branch(Some("feature")).unwrap();
    edit(&mut src, "Feature Dave", "on the feature branch");
    c.client.push(&src).await.unwrap();
    let fresh = c.client().await;
    let mut back = fresh.clone_repository(src.key(), true, None).await.unwrap();
    assert_eq!(back.branches().len(), 2);
    fresh.checkout(&mut back, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&back).1[0], "David");
    fresh.checkout(&mut back, Checkout::branch("feature")).await.unwrap();
    assert_eq!(content(&back).1[0], "Feature Dave");
}

/// test_push_clear_pull_many: five repositories in one push each pull back.
#[tokio::test(flavor = "multi_thread")]
async fn test_push_clear_pull_many() {
    let c = Cluster::start(cassandra().await, 1).await;
    let repos: Vec<dsf::Repository> = (0..5).map(|i| address_book(&format!("book {i}")).0).collect();
    c.client.push_all(&repos.iter().collect::<Vec<_>>()).await.unwrap();
    let fresh = c.client().await;
    for src in &repos {
        let mut back = fresh.clone_repository(src.key(), true, None).await.unwrap();
        fresh.checkout(&mut back, Checkout::branch("master")).await.unwrap();
        assert_eq!(content(&back), content(src));
    }
}

/// ★ test_checkout_defaults: every preloaded predicate pulls and checks out with its word.
#[tokio::test(flavor = "multi_thread")]
async fn test_checkout_defaults() {
    let c = Cluster::start(cassandra().await, 1).await;
    c.ds.preload().await.unwrap();
    for (key, word) in PREDICATES {
        let mut r = c.client.clone_repository(key, true, None).await.unwrap();
        c.client.checkout(&mut r, Checkout::branch("master")).await.unwrap();
        let t: Terminology = r.get(r.root().unwrap()).unwrap();
        assert_eq!(t.word.as_deref(), Some(word));
    }
    let mut root = c.client.clone_repository(ROOT_IDENTITY, true, None).await.unwrap();
    c.client.checkout(&mut root, Checkout::branch("master")).await.unwrap();
    let res: OoiResource = root.get(root.root().unwrap()).unwrap();
    assert_eq!(res.name.as_deref(), Some("ROOT"));
}

/// ★ test_get_lcs: ACTIVE for one key and for two keys, in request order.
#[tokio::test(flavor = "multi_thread")]
async fn test_get_lcs() {
    let c = Cluster::start(cassandra().await, 1).await;
    c.ds.preload().await.unwrap();
    let src = resource("lcs");
    c.client.push(&src).await.unwrap();
    let active = LifeCycleState::Active as i32;
    assert_eq!(c.client.get_lcs(&[src.key()]).await.unwrap(), vec![(src.key().to_owned(), active)]);
    assert_eq!(
        c.client.get_lcs(&[ROOT_IDENTITY, src.key()]).await.unwrap(),
        vec![(ROOT_IDENTITY.to_owned(), active), (src.key().to_owned(), active)]
    );
}

/// get_lcs reads the heads record and the head commits' root objects, not the commits index: a
/// commit row whose indexed state is wrong (or whose index entries are gone) changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn get_lcs_is_answered_from_the_heads_not_the_index() {
    use dsf::store::IndexStore;
    let c = Cluster::start(cassandra().await, 1).await;
    let src = resource("from heads");
    c.client.push(&src).await.unwrap();
    let head = c.ds.heads(src.key()).await.unwrap().unwrap().branches[0].heads[0];
    let wrong = std::collections::BTreeMap::from([
        ("resource_life_cycle_state".to_string(), b"99".to_vec()),
        ("branch_name".to_string(), Vec::new()),
    ]);
    c.ds.store().update_index(head.as_bytes().to_vec(), wrong).await.unwrap();
    let active = LifeCycleState::Active as i32;
    assert_eq!(c.client.get_lcs(&[src.key()]).await.unwrap(), vec![(src.key().to_owned(), active)]);
}

/// ★ test_get_lcs_invalid_key: an unknown key is an application error (404).
#[tokio::test(flavor = "multi_thread")]
async fn test_get_lcs_invalid_key() {
    let c = Cluster::start(cassandra().await, 1).await;
    let err = c.client.get_lcs(&["NOT-A-RESOURCE"]).await.unwrap_err();
    assert!(matches!(err, Error::Application { .. }), "{err}");
    assert_eq!(err.code(), Some(ResponseCodes::NotFound));
}

/// ★ test_truncate_commits: 30 + 30 commits pushed, a clone, 51 more pushed: 111 commits;
/// repeated pulls and checkouts succeed and keep the whole history (DSF does not truncate).
#[tokio::test(flavor = "multi_thread")]
async fn test_truncate_commits() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (mut src, _) = address_book("deep");
    for batch in [29, 30] {
        for i in 0..batch {
            edit(&mut src, &format!("name {i}"), "step");
        }
        c.client.push(&src).await.unwrap();
    }
    let other = c.client().await;
    let mut clone = other.clone_repository(src.key(), true, None).await.unwrap();
    assert_eq!(clone.commits().count(), 60);
    for i in 0..51 {
        edit(&mut src, &format!("later {i}"), "step");
    }
    c.client.push(&src).await.unwrap();
    assert_eq!(src.commits().count(), 111);
    for _ in 0..2 {
        other.pull(&mut clone, true, None).await.unwrap();
        other.checkout(&mut clone, Checkout::branch("master")).await.unwrap();
        assert_eq!(content(&clone), content(&src));
    }
    assert_eq!(clone.commits().count(), 111, "the whole history");
    assert_eq!(clone.log("master").unwrap().len(), 111);
}
