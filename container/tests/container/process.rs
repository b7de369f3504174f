//! Processes: life cycle, graceful terminate, one-way messages and the mapping of reply codes
//! to errors, on the real broker.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dsf_container::amqp::{Handler, ProcessState, Request};
use dsf_container::content::ContentBuilder;
use dsf_container::{Error, ServiceError};
use dsf_proto::net::ooici::core::message::ion_msg::ResponseCodes;
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::common::*;

/// Replies after a pause; ops named after a code fail with that code; every request's op is
/// reported on a channel.
struct Test {
    seen: mpsc::UnboundedSender<String>,
}

impl Handler for Test {
    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<'static, Result<Bytes, ServiceError>> {
        Box::pin(async move {
            let _ = self.seen.send(req.headers.op.clone());
            match req.headers.op.as_str() {
                "slow" => {
                    tokio::time::sleep(Duration::from_millis(600)).await;
                    Ok(ContentBuilder::empty(ResponseCodes::Ok, Some("done".into())))
                }
                "404" => Err(ServiceError::not_found("no such thing")),
                "503" => Err(ServiceError::new(ResponseCodes::ServiceUnavailable, "try later")),
                "1001" => Err(ServiceError::new(ResponseCodes::LockedResource, "locked")),
                _ => Ok(ContentBuilder::empty(ResponseCodes::Ok, None)),
            }
        })
    }
}

fn handler() -> (Arc<Test>, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(Test { seen: tx }), rx)
}

/// Terminate finishes the request in flight (its caller gets the reply), then the process is
/// terminated.
#[tokio::test(flavor = "multi_thread")]
async fn terminate_finishes_what_is_in_flight() {
    let sys = sysname();
    let c = container(&sys).await;
    let (h, mut seen) = handler();
    let server = c.spawn("test", Some("test"), h).await.unwrap();
    assert_eq!(server.state(), ProcessState::Active);
    assert_eq!(server.worker_queue(), Some(format!("{sys}.test").as_str()));
    let (h2, _) = handler();
    let caller = c.spawn("caller", None, h2).await.unwrap();
    let ep = caller.endpoint().clone();
    let target = ep.scoped("test");
    let call =
        tokio::spawn(
            async move { ep.rpc(&target, "slow", ContentBuilder::empty(ResponseCodes::Ok, None), None).await },
        );
    assert_eq!(seen.recv().await.as_deref(), Some("slow"), "the request is in flight");
    server.terminate().await;
    assert_eq!(server.state(), ProcessState::Terminated);
    let reply = call.await.unwrap().expect("the request in flight was answered");
    assert_eq!(reply.msg.response_body.as_deref(), Some("done"));
    c.terminate().await;
}

/// One-way messages reach the handler and get no reply; failure codes map to application
/// (4xx), container (5xx) and other errors.
#[tokio::test(flavor = "multi_thread")]
async fn one_way_messages_and_error_codes() {
    let c = container(&sysname()).await;
    let (h, mut seen) = handler();
    c.spawn("test", Some("test"), h).await.unwrap();
    let (h2, _) = handler();
    let caller = c.spawn("caller", None, h2).await.unwrap();
    let ep = caller.endpoint();
    let target = ep.scoped("test");
    let empty = || ContentBuilder::empty(ResponseCodes::Ok, None);
    ep.send(&target, "note", empty()).await.unwrap();
    assert_eq!(seen.recv().await.as_deref(), Some("note"));

    let err = ep.rpc(&target, "404", empty(), None).await.unwrap_err();
    assert!(matches!(err, Error::Application { .. }) && err.code() == Some(ResponseCodes::NotFound), "{err}");
    let err = ep.rpc(&target, "503", empty(), None).await.unwrap_err();
    assert!(matches!(err, Error::Container { .. }) && err.code() == Some(ResponseCodes::ServiceUnavailable), "{err}");
    let err = ep.rpc(&target, "1001", empty(), None).await.unwrap_err();
    assert!(matches!(err, Error::Received { .. }) && err.code() == Some(ResponseCodes::LockedResource), "{err}");
    ep.rpc(&target, "fine", empty(), Some(Duration::from_secs(5))).await.expect("an OK reply");
    c.terminate().await;
}
