//! `svccmp`: the datastore service next to its peers, measured in one run.
//!
//! ```text
//! svccmp amqp-rpc   --broker URL [--rounds N] [--calls N]
//! svccmp push-bytes --broker URL
//! ```
//!
//! Prints `NAME DSF PEER` lines on stdout (progress on stderr):
//! - `amqp-rpc PUSH_US BARE_US`: microseconds per small push (a new three-object repository
//!   pushed to a datastore on RocksDB, one round trip with its elements inline) and per bare
//!   request/reply of the same size through the same broker (an echo process), best round;
//! - `push-bytes SENT CHANGED`: bytes the client published for an incremental push after 1 %
//!   of a 100 000-object graph changed, and the encoded bytes of the elements that changed.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use dsf::proto::net::ooici::play::{AddressLink, Person};
use dsf::{Key, Registry, Repository};
use dsf_benches::{Shape, build_and_commit, change_objects, new_repository, one_percent};
use dsf_container::ServiceError;
use dsf_container::amqp::{Container, ContainerConfig, Handler, Request};
use dsf_container::client::AmqpClient;
use dsf_container::content::ContentBuilder;
use dsf_container::datastore::Datastore;
use dsf_container::datastore::service::{DatastoreService, SERVICE};
use dsf_store_backends::rocks::RocksStore;
use futures::future::BoxFuture;

const USAGE: &str = "usage: svccmp (amqp-rpc | push-bytes) --broker URL [--rounds N] [--calls N]";

/// Replies with the request's content.
struct Echo;

impl Handler for Echo {
    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<'static, Result<Bytes, ServiceError>> {
        Box::pin(async move { Ok(req.content) })
    }
}

fn small_repository(i: usize) -> Repository {
    let mut r = Repository::new(Registry::builtin());
    let person = |name: String, id| Person { name: Some(name), id: Some(id), email: None, phone: Vec::new() };
    let a = r.create(&person(format!("a{i}"), 1)).expect("create");
    let b = r.create(&person(format!("b{i}"), 2)).expect("create");
    let book = AddressLink {
        person: vec![r.link(a).expect("link"), r.link(b).expect("link")],
        owner: None,
        title: Some(format!("book {i}")),
    };
    let book = r.create(&book).expect("create");
    r.set_root(book).expect("root");
    r.commit("small").expect("commit");
    r
}

struct Setup {
    container: Container,
    client: AmqpClient,
    _dir: tempfile::TempDir,
}

async fn setup(broker: &str) -> Result<Setup, String> {
    let sys = format!("svccmp{}", std::process::id());
    let container = Container::start(ContainerConfig::new(broker, Some(sys))).await.map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = RocksStore::open(dir.path()).map_err(|e| e.to_string())?;
    let ds = Datastore::new(Arc::new(store), Registry::builtin());
    container
        .spawn("datastore", Some(SERVICE), Arc::new(DatastoreService::new(ds)))
        .await
        .map_err(|e| e.to_string())?;
    container.spawn("echo", Some("echo"), Arc::new(Echo)).await.map_err(|e| e.to_string())?;
    let client = AmqpClient::spawn(&container, None).await.map_err(|e| e.to_string())?;
    Ok(Setup { container, client, _dir: dir })
}

async fn amqp_rpc(broker: &str, rounds: usize, calls: usize) -> Result<(), String> {
    let s = setup(broker).await?;
    let echo = s.client.endpoint().scoped("echo");
    // The bare request carries as many bytes as a small push's content.
    let body = ContentBuilder::empty(
        dsf::proto::net::ooici::core::message::ion_msg::ResponseCodes::Ok,
        Some("x".repeat(small_push_bytes())),
    );
    let (mut best_push, mut best_bare) = (f64::MAX, f64::MAX);
    for round in 0..rounds {
        let repos: Vec<Repository> = (0..calls).map(|i| small_repository(round * calls + i)).collect();
        let t = Instant::now();
        for _ in 0..calls {
            s.client.endpoint().rpc(&echo, "echo", body.clone(), None).await.map_err(|e| e.to_string())?;
        }
        let bare = t.elapsed().as_secs_f64() * 1e6 / calls as f64;
        let t = Instant::now();
        for r in &repos {
            s.client.push(r).await.map_err(|e| e.to_string())?;
        }
        let push = t.elapsed().as_secs_f64() * 1e6 / calls as f64;
        eprintln!("svccmp: round {}/{rounds}: push {push:.0} us, bare request/reply {bare:.0} us", round + 1);
        best_push = best_push.min(push);
        best_bare = best_bare.min(bare);
    }
    println!("amqp-rpc {best_push:.1} {best_bare:.1}");
    s.container.terminate().await;
    Ok(())
}

/// The size of a small push's content, for a bare request of the same size.
fn small_push_bytes() -> usize {
    let r = small_repository(0);
    r.elements().iter().map(|e| e.encoded_len() * 2 + 60).sum()
}

async fn push_bytes(broker: &str) -> Result<(), String> {
    let s = setup(broker).await?;
    let objects = 100_000;
    let registry = Registry::builtin();
    let mut repo = new_repository(&registry);
    let t = Instant::now();
    build_and_commit(&mut repo, Shape::Dataset, objects, 7, 1.0e9).map_err(|e| e.to_string())?;
    eprintln!("svccmp: built and committed {objects} objects in {:.1} s", t.elapsed().as_secs_f64());
    let before: HashSet<Key> = repo.elements().iter().map(|e| e.key()).collect();
    let t = Instant::now();
    s.client.push(&repo).await.map_err(|e| e.to_string())?;
    eprintln!("svccmp: first push in {:.1} s", t.elapsed().as_secs_f64());
    let changed = change_objects(&mut repo, one_percent(objects), 11, 0).map_err(|e| e.to_string())?;
    repo.commit_at("1 % changed", 1.0e9 + 1.0).map_err(|e| e.to_string())?;
    let new_bytes: usize = repo.elements().iter().filter(|e| !before.contains(&e.key())).map(|e| e.encoded_len()).sum();
    let sent = s.client.endpoint().bytes_sent();
    let t = Instant::now();
    s.client.push(&repo).await.map_err(|e| e.to_string())?;
    let sent = s.client.endpoint().bytes_sent() - sent;
    eprintln!(
        "svccmp: {changed} objects changed; incremental push of {sent} bytes in {:.2} s; changed elements {new_bytes} bytes",
        t.elapsed().as_secs_f64()
    );
    println!("push-bytes {sent} {new_bytes}");
    s.container.terminate().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut broker = None;
    let (mut rounds, mut calls) = (3, 300);
    let mut i = 1;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--broker", Some(v)) => broker = Some(v.clone()),
            ("--rounds", Some(v)) => rounds = v.parse().unwrap_or(rounds),
            ("--calls", Some(v)) => calls = v.parse().unwrap_or(calls),
            _ => {
                eprintln!("svccmp: {USAGE}");
                return std::process::ExitCode::from(2);
            }
        }
        i += 2;
    }
    let (Some(command), Some(broker)) = (args.first(), broker) else {
        eprintln!("svccmp: {USAGE}");
        return std::process::ExitCode::from(2);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let result = match command.as_str() {
        "amqp-rpc" => runtime.block_on(amqp_rpc(&broker, rounds, calls)),
        "push-bytes" => runtime.block_on(push_bytes(&broker)),
        other => Err(format!("unknown subcommand {other:?}\n{USAGE}")),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("svccmp: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
