//! Spec §7.2 WorkBenchProcessTest: workbenches exchanging repositories through a datastore
//! process over the broker, on a real Cassandra.

use dsf::{Checkout, Status};
use dsf_container::Error;
use dsf_proto::net::ooici::core::message::ion_msg::ResponseCodes;

use crate::common::*;

/// ★ test_pull: a clone has no workspace yet, one head and the head content; its checkout
/// equals the source.
#[tokio::test(flavor = "multi_thread")]
async fn test_pull() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (src, _) = address_book("pull me");
    c.client.push(&src).await.unwrap();

    let other = c.client().await;
    let mut clone = other.clone_repository(src.key(), true, None).await.unwrap();
    assert_eq!(clone.status(), Status::NotInitialized, "no workspace until checkout");
    let master = clone.get_branch("master").expect("master is named").clone();
    assert_eq!(master.heads, src.current_heads(), "one head, the source's");
    let root = src.commit_info(src.current_heads()[0]).unwrap().root.as_ref().unwrap().key;
    assert!(clone.elements().contains(&root), "head content was transferred");
    other.checkout(&mut clone, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&clone), content(&src));
}

/// ★ test_pull_invalid: pulling an unknown repository is a 404 application error.
#[tokio::test(flavor = "multi_thread")]
async fn test_pull_invalid() {
    let c = Cluster::start(cassandra().await, 1).await;
    let err = c.client.clone_repository("NO-SUCH-REPOSITORY", true, None).await.unwrap_err();
    assert!(matches!(err, Error::Application { .. }), "{err}");
    assert_eq!(err.code(), Some(ResponseCodes::NotFound));
    assert!(err.to_string().contains("not found"), "{err}");
}

/// ★ test_pull_latest: only the head's content travels; an old commit's root does not.
#[tokio::test(flavor = "multi_thread")]
async fn test_pull_latest() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (mut src, _) = address_book("v1");
    let first = src.current_heads()[0];
    edit(&mut src, "Dave", "v2");
    c.client.push(&src).await.unwrap();

    let other = c.client().await;
    let mut clone = other.clone_repository(src.key(), true, None).await.unwrap();
    let old_root = src.commit_info(first).unwrap().root.as_ref().unwrap().key;
    assert!(!clone.elements().contains(&old_root), "the old commit's root was not pulled");
    assert!(clone.commit_info(first).is_ok(), "but its commit was");
    other.checkout(&mut clone, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&clone), content(&src));
    assert_eq!(content(&clone).1[0], "Dave");
}

/// ★ test_pull_latest_checkout: a pull without head content, then checkouts that fetch the
/// head and an older commit from the datastore.
#[tokio::test(flavor = "multi_thread")]
async fn test_pull_latest_checkout() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (mut src, _) = address_book("v1");
    let first = src.current_heads()[0];
    edit(&mut src, "Dave", "v2");
    c.client.push(&src).await.unwrap();

    let other = c.client().await;
    let mut clone = other.clone_repository(src.key(), false, None).await.unwrap();
    assert!(clone.elements().iter().all(|e| e.ty() == dsf::TypeId::COMMIT), "only commits were pulled");
    other.checkout(&mut clone, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&clone), content(&src));
    other.checkout(&mut clone, Checkout::branch("master").commit(first)).await.unwrap();
    assert_eq!(content(&clone).1[0], "David", "the older commit was fetched and checked out");
}

/// ★ test_pull_update: a pull after new commits fast-forwards.
#[tokio::test(flavor = "multi_thread")]
async fn test_pull_update() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (mut src, _) = address_book("v1");
    c.client.push(&src).await.unwrap();
    let other = c.client().await;
    let mut clone = other.clone_repository(src.key(), true, None).await.unwrap();

    let new_head = edit(&mut src, "Dave", "v2");
    c.client.push(&src).await.unwrap();
    other.pull(&mut clone, true, None).await.unwrap();
    assert_eq!(clone.get_branch("master").unwrap().heads, vec![new_head], "fast-forwarded");
    other.checkout(&mut clone, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&clone), content(&src));
}

/// ★ test_pull_diverge: divergent pushes give two heads; a pulled repository's checkout
/// merges by date, the newest wins.
#[tokio::test(flavor = "multi_thread")]
async fn test_pull_diverge() {
    let c = Cluster::start(cassandra().await, 1).await;
    let key = push_divergent(&c, "older", "newer").await;

    let puller = c.client().await;
    let mut pulled = puller.clone_repository(&key, true, None).await.unwrap();
    assert_eq!(pulled.get_branch("master").unwrap().heads.len(), 2, "both heads were kept");
    puller.checkout(&mut pulled, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&pulled).0, "newer", "merge by date: the newest wins");
}

/// ★ test_pull_no_automerge: without auto-merge a divergent branch checks out at the common
/// ancestor.
#[tokio::test(flavor = "multi_thread")]
async fn test_pull_no_automerge() {
    let c = Cluster::start(cassandra().await, 1).await;
    let key = push_divergent(&c, "left", "right").await;

    let puller = c.client().await;
    let mut pulled = puller.clone_repository(&key, true, None).await.unwrap();
    puller.checkout(&mut pulled, Checkout::branch("master").auto_merge(false)).await.unwrap();
    assert_eq!(content(&pulled).0, "base", "the common ancestor's content");
    assert_eq!(pulled.merge_states().len(), 1, "the other head is exposed as a merge state");
    assert_eq!(pulled.status(), Status::Modified, "a merge is pending");
}

/// ★ test_push: a push creates the repository in the datastore; a checkout elsewhere equals
/// the source.
#[tokio::test(flavor = "multi_thread")]
async fn test_push() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (src, _) = address_book("pushed");
    assert!(c.ds.heads(src.key()).await.unwrap().is_none());
    c.client.push(&src).await.unwrap();
    let heads = c.ds.heads(src.key()).await.unwrap().expect("created by the push");
    assert_eq!(heads.branches[0].heads, src.current_heads());

    let other = c.client().await;
    let mut clone = other.clone_repository(src.key(), true, None).await.unwrap();
    other.checkout(&mut clone, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&clone), content(&src));
}

/// ★ test_push_update: a second push fast-forwards the datastore's head.
#[tokio::test(flavor = "multi_thread")]
async fn test_push_update() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (mut src, _) = address_book("v1");
    c.client.push(&src).await.unwrap();
    let head = edit(&mut src, "Dave", "v2");
    c.client.push(&src).await.unwrap();
    let heads = c.ds.heads(src.key()).await.unwrap().unwrap();
    assert_eq!(heads.branches.len(), 1);
    assert_eq!(heads.branches[0].heads, vec![head], "fast-forwarded, not diverged");
}

/// test_push_two: history is pushed: an older commit checks out identically on both sides.
#[tokio::test(flavor = "multi_thread")]
async fn test_push_two() {
    let c = Cluster::start(cassandra().await, 1).await;
    let (mut src, _) = address_book("v1");
    let first = src.current_heads()[0];
    edit(&mut src, "Dave", "v2");
    c.client.push(&src).await.unwrap();
    let other = c.client().await;
    let mut clone = other.clone_repository(src.key(), false, None).await.unwrap();
    other.checkout(&mut clone, Checkout::branch("master").commit(first)).await.unwrap();
    src.checkout(Checkout::branch("master").commit(first)).unwrap();
    assert_eq!(content(&clone), content(&src));
}

/// ★ spec §3.3 push step 4: a pusher that sends only keys (as ION's did) is asked for what the
/// datastore lacks with fetch_blobs on its own queue, and serves it while awaiting its push.
#[tokio::test(flavor = "multi_thread")]
async fn push_without_elements_is_fetched_from_the_pusher() {
    let c = Cluster::start(cassandra().await, 1).await;
    let ion_style = c.client().await.with_inline_limit(0);
    let (src, _) = address_book("fetched");
    ion_style.push(&src).await.unwrap();
    assert_eq!(ion_style.elements_served(), src.elements().len() as u64, "every element went out through fetch_blobs");
    let (again, _) = address_book("inline");
    c.client.push(&again).await.unwrap();
    assert_eq!(c.client.elements_served(), 0, "elements sent along are not fetched");
    let other = c.client().await;
    let mut clone = other.clone_repository(src.key(), true, None).await.unwrap();
    other.checkout(&mut clone, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&clone), content(&src));
}
