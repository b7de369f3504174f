//! Bad input gets an error reply with the right code, and the service keeps serving.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dsf::Registry;
use dsf::proto::net::ooici::core::workbench_messages::{GetLcsRequestMessage, PullMessage};
use dsf::store::memory::MemoryStore;
use dsf_container::Error;
use dsf_container::amqp::{Container, ContainerConfig};
use dsf_container::client::AmqpClient;
use dsf_container::content::ContentBuilder;
use dsf_container::datastore::Datastore;
use dsf_container::datastore::service::{DatastoreService, SERVICE};
use dsf_proto::net::ooici::core::message::ion_msg::ResponseCodes;

use crate::common::*;

/// A datastore (on a real RocksDB) that accepts requests up to `max` bytes, and a client.
async fn service(max: usize) -> (Container, AmqpClient, tempfile::TempDir) {
    let mut config = ContainerConfig::new(broker_url(), Some(sysname()));
    config.max_message = max;
    let container = Container::start(config).await.unwrap();
    let (store, dir) = rocksdb();
    let ds = Datastore::new(Arc::new(store), Registry::builtin());
    container.spawn("datastore", Some(SERVICE), Arc::new(DatastoreService::new(ds))).await.unwrap();
    let client = AmqpClient::spawn(&container, None).await.unwrap();
    (container, client, dir)
}

/// The service still works: a push and a clone succeed.
async fn still_serving(client: &AmqpClient) {
    let (src, _) = address_book("after bad input");
    client.push(&src).await.expect("the service keeps serving");
    client.clone_repository(src.key(), true, None).await.expect("and pulls");
}

fn code(e: &Error) -> ResponseCodes {
    e.code().unwrap_or_else(|| panic!("not a failure reply: {e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn garbage_content_is_a_bad_request() {
    let (_c, client, _d) = service(1 << 20).await;
    let ep = client.endpoint();
    for garbage in [&b"\xff\xff\xff"[..], b"", b"\x0a\x05hello"] {
        let err = ep.rpc(client.target(), "pull", Bytes::from_static(garbage), None).await.unwrap_err();
        assert_eq!(code(&err), ResponseCodes::BadRequest, "{err}");
        assert!(matches!(err, Error::Application { .. }));
    }
    still_serving(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_op_is_refused() {
    let (_c, client, _d) = service(1 << 20).await;
    let content = ContentBuilder::new().finish(&GetLcsRequestMessage { keys: vec![] }, vec![]);
    let err = client.endpoint().rpc(client.target(), "drop_everything", content, None).await.unwrap_err();
    assert_eq!(code(&err), ResponseCodes::MethodNotAllowed, "{err}");
    assert!(err.to_string().contains("unknown operation"), "{err}");
    still_serving(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_message_type_is_a_bad_request() {
    let (_c, client, _d) = service(1 << 20).await;
    // A pull request sent to op push.
    let content =
        ContentBuilder::new().finish(&PullMessage { repository_key: Some("x".into()), ..Default::default() }, vec![]);
    let err = client.endpoint().rpc(client.target(), "push", content, None).await.unwrap_err();
    assert_eq!(code(&err), ResponseCodes::BadRequest, "{err}");
    assert!(err.to_string().contains("wrong message type"), "{err}");
    still_serving(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_message_is_refused() {
    let (_c, client, _d) = service(64 << 10).await;
    let keys: Vec<Vec<u8>> = (0..5000u32).map(|i| [i.to_be_bytes().to_vec(), vec![0; 16]].concat()).collect();
    let content = ContentBuilder::new().finish(&PullMessage { commit_keys: keys, ..Default::default() }, vec![]);
    assert!(content.len() > 64 << 10);
    let err = client.endpoint().rpc(client.target(), "pull", content, None).await.unwrap_err();
    assert_eq!(code(&err), ResponseCodes::BadRequest, "{err}");
    assert!(err.to_string().contains("exceeds"), "{err}");
    still_serving(&client).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_repository_is_not_found() {
    let (_c, client, _d) = service(1 << 20).await;
    let mut r = repo();
    let err = client.pull(&mut r, true, None).await.unwrap_err();
    assert_eq!(code(&err), ResponseCodes::NotFound, "{err}");
    still_serving(&client).await;
}

/// A body that is not msgpack cannot be answered (no reply-to): it is dropped and the next
/// request is served.
#[tokio::test(flavor = "multi_thread")]
async fn undecodable_body_is_dropped() {
    let (_c, client, _d) = service(1 << 20).await;
    client.endpoint().publish_raw(client.target(), b"\xc1 not msgpack").await.unwrap();
    still_serving(&client).await;
}

/// A call to a service nobody serves times out with the timeout the caller chose.
#[tokio::test(flavor = "multi_thread")]
async fn rpc_times_out() {
    let c = Container::start(ContainerConfig::new(broker_url(), Some(sysname()))).await.unwrap();
    let client = AmqpClient::spawn(&c, Some("nobody")).await.unwrap().with_timeout(Duration::from_millis(300));
    let err = client.get_lcs(&["x"]).await.unwrap_err();
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    assert_eq!(err.code(), Some(ResponseCodes::Timeout));
}

/// A push whose objects link to elements neither sent nor stored is refused whole.
#[tokio::test(flavor = "multi_thread")]
async fn incomplete_push_is_refused_and_stores_nothing() {
    let store = Arc::new(MemoryStore::default());
    let ds = Datastore::new(store, Registry::builtin());
    let (src, _) = address_book("incomplete");
    let mut elements: Vec<dsf::Element> = src.elements().iter().cloned().collect();
    elements.retain(|e| e.ty() != dsf::TypeId::of::<dsf::proto::net::ooici::play::Person>());
    let heads = dsf_container::client::heads_of(&src);
    let err = ds
        .receive(dsf_container::datastore::Received {
            repository_key: src.key().to_owned(),
            branches: heads.branches,
            nicknames: heads.nicknames,
            elements,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, ResponseCodes::BadRequest);
    assert!(err.message.contains("incomplete"), "{err}");
    assert!(ds.heads(src.key()).await.unwrap().is_none(), "nothing moved");
}
