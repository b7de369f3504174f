//! Spec §7.8 MulitDataStoreTest: four datastore processes on one service name sharing one
//! Cassandra store.

use dsf::Checkout;
use futures::future::join_all;

use crate::common::*;

/// ★ test_push_sync: after each of 12 pushes, repositories rebuilt through the instances (the
/// worker queue spreads requests round robin) equal the source.
#[tokio::test(flavor = "multi_thread")]
async fn test_push_sync() {
    let c = Cluster::start(cassandra().await, 4).await;
    let (mut src, _) = address_book("sync");
    for i in 0..12 {
        edit(&mut src, &format!("name {i}"), "step");
        c.client.push(&src).await.unwrap();
        let heads = c.ds.heads(src.key()).await.unwrap().unwrap();
        assert_eq!(heads.branches[0].heads, src.current_heads(), "push {i}");
    }
    for _ in 0..4 {
        let fresh = c.client().await;
        let mut back = fresh.clone_repository(src.key(), true, None).await.unwrap();
        fresh.checkout(&mut back, Checkout::branch("master")).await.unwrap();
        assert_eq!(content(&back), content(&src));
        fresh.terminate().await;
    }
}

/// ★ test_push_pull: after every push, a fresh process pulls the latest value.
#[tokio::test(flavor = "multi_thread")]
async fn test_push_pull() {
    let c = Cluster::start(cassandra().await, 4).await;
    let (mut src, _) = address_book("latest");
    for i in 0..12 {
        edit(&mut src, &format!("v{i}"), "step");
        c.client.push(&src).await.unwrap();
        let fresh = c.client().await;
        let mut back = fresh.clone_repository(src.key(), true, None).await.unwrap();
        fresh.checkout(&mut back, Checkout::branch("master")).await.unwrap();
        assert_eq!(content(&back).1[0], format!("v{i}"));
        fresh.terminate().await;
    }
}

/// ★ test_divergence: two clients push divergent commits: the stored branch has two heads, a
/// pull sees both, and the checkout merges them into one where the later commit wins.
#[tokio::test(flavor = "multi_thread")]
async fn test_divergence() {
    let c = Cluster::start(cassandra().await, 4).await;
    let key = push_divergent(&c, "earlier", "later").await;
    let heads = c.ds.heads(&key).await.unwrap().unwrap();
    assert_eq!(heads.branches[0].heads.len(), 2, "the stored branch has two heads");

    let p = c.client().await;
    let mut pulled = p.clone_repository(&key, true, None).await.unwrap();
    assert_eq!(pulled.get_branch("master").unwrap().heads.len(), 2);
    p.checkout(&mut pulled, Checkout::branch("master")).await.unwrap();
    assert_eq!(pulled.get_branch("master").unwrap().heads.len(), 1, "merged into one");
    assert_eq!(content(&pulled).0, "later");
}

/// Concurrent divergent pushes through different instances never lose a head (ION could).
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_divergent_pushes_keep_every_head() {
    let c = Cluster::start(cassandra().await, 4).await;
    let (src, _) = address_book("base");
    c.client.push(&src).await.unwrap();
    let mut writers = Vec::new();
    for i in 0..6 {
        let w = c.client().await;
        let mut r = w.clone_repository(src.key(), true, None).await.unwrap();
        w.checkout(&mut r, Checkout::branch("master")).await.unwrap();
        retitle_at(&mut r, &format!("writer {i}"), dsf::repository::now() + f64::from(i));
        writers.push((w, r));
    }
    let results = join_all(writers.iter().map(|(w, r)| w.push(r))).await;
    for r in results {
        r.unwrap();
    }
    let heads = c.ds.heads(src.key()).await.unwrap().unwrap();
    let mut expected: Vec<dsf::Key> = writers.iter().map(|(_, r)| r.current_heads()[0]).collect();
    let mut got = heads.branches[0].heads.clone();
    expected.sort();
    got.sort();
    assert_eq!(got, expected, "every writer's head is kept");
}
