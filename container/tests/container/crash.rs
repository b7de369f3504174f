//! A datastore process killed (SIGKILL) in the middle of a push loses nothing it acknowledged,
//! and the retried push completes.

use std::time::{Duration, Instant};

use dsf::Checkout;
use dsf::proto::net::ooici::play::AddressLink;
use dsf_container::client::AmqpClient;

use crate::common::*;

/// Waits until the datastore answers (a get_lcs of an unknown key is a 404 reply).
async fn wait_ready(client: &AmqpClient) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.get_lcs(&["READY?"]).await {
            Err(dsf_container::Error::Application { .. }) => return,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("the datastore did not come up: {e}"),
            Ok(_) => unreachable!("an unknown key has no life-cycle state"),
        }
    }
}

/// A book with `n` persons.
fn big_book(n: i32) -> dsf::Repository {
    let mut r = repo();
    let people: Vec<_> = (0..n).map(|i| r.create(&person(&format!("person {i}"), i)).unwrap()).collect();
    let links = people.iter().map(|p| r.link(*p).unwrap()).collect();
    let book = r.create(&AddressLink { person: links, owner: None, title: Some(format!("{n} people")) }).unwrap();
    r.set_root(book).unwrap();
    r.commit("big").unwrap();
    r
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_mid_push_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let sys = sysname();
    let config = dir.path().join("dsf.toml");
    std::fs::write(
        &config,
        format!(
            "sysname = \"{sys}\"\nbroker = \"{}\"\n[store]\nkind = \"rocksdb\"\npath = \"{}\"\n",
            broker_url(),
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let c = container(&sys).await;
    let client = AmqpClient::spawn(&c, None).await.unwrap().with_timeout(Duration::from_secs(5));

    let mut child = start_binary(&config);
    wait_ready(&client).await;
    let (acked, _) = address_book("acknowledged");
    client.push(&acked).await.expect("the first push is acknowledged");

    let big = big_book(30_000);
    let push = client.push(&big);
    let kill = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        child.0.kill().expect("SIGKILL");
        child.0.wait().unwrap();
    };
    let (result, ()) = tokio::join!(push, kill);
    if let Err(e) = &result {
        assert!(matches!(e, dsf_container::Error::Timeout { .. }), "the push was cut off: {e}");
    }

    let mut child = start_binary(&config);
    wait_ready(&client).await;
    let other = AmqpClient::spawn(&c, None).await.unwrap();
    let mut back = other.clone_repository(acked.key(), true, None).await.expect("the acknowledged push survived");
    other.checkout(&mut back, Checkout::branch("master")).await.unwrap();
    assert_eq!(content(&back), content(&acked));

    client.push(&big).await.expect("the retried push completes");
    let mut back = other.clone_repository(big.key(), true, None).await.unwrap();
    other.checkout(&mut back, Checkout::branch("master")).await.unwrap();
    let root = back.root().unwrap();
    assert_eq!(back.children(root).unwrap().len(), 30_000);
    child.0.kill().unwrap();
    child.0.wait().unwrap();
}
