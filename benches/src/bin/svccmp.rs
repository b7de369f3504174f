//! `svccmp`: the datastore service next to its peers, measured in one run.
//!
//! ```text
//! svccmp amqp-rpc   --broker URL [--rounds N] [--calls N]
//! svccmp push-bytes --broker URL
//! svccmp grpc-clone
//! svccmp push-concurrency [--rounds N] [--seconds S] [--calls N]
//! ```
//!
//! Prints `NAME DSF PEER` lines on stdout (progress on stderr):
//! - `amqp-rpc PUSH_US BARE_US`: microseconds per small push (a new three-object repository
//!   pushed to a datastore on RocksDB, one round trip with its elements inline) and per bare
//!   lapin request/reply of the same size through the same broker, best round;
//! - `push-bytes SENT CHANGED` (gRPC) and `push-bytes-amqp SENT CHANGED` (ION's AMQP
//!   encoding): bytes a client sent for an incremental push after 1 % of a 100 000-object graph
//!   changed, and the encoded bytes of the elements that changed;
//! - `grpc-clone OBJECTS_PER_S ELEMENTS`: a clone over gRPC (loopback) of a 100 000-object
//!   repository from a datastore on RocksDB, in elements received per second (best round);
//! - `push-concurrency RATE_8 RATE_1`: durable pushes per second of new small repositories to
//!   one datastore on RocksDB (synced writes) over gRPC on loopback, with 8 concurrent pushers
//!   and with one, best round of each; each pusher pushes at most N repositories (`--calls`,
//!   default 300) for at most S seconds.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use dsf::proto::net::ooici::play::{AddressLink, Person};
use dsf::{Key, Registry, Repository};
use dsf_benches::{Shape, build_and_commit, change_objects, new_repository, one_percent};
use dsf_container::amqp::{Container, ContainerConfig};
use dsf_container::client::AmqpClient;
use dsf_container::datastore::Datastore;
use dsf_container::datastore::service::{DatastoreService, SERVICE};
use dsf_store_backends::rocks::RocksStore;

const USAGE: &str = "usage: svccmp (amqp-rpc | push-bytes) --broker URL [--rounds N] [--calls N] | grpc-clone [--rounds N] \
                     | push-concurrency [--rounds N] [--seconds S] [--calls N]";

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
    // SVCCMP_STORE=memory measures the protocol without a disk; SVCCMP_NOSYNC=1 keeps RocksDB
    // but without fsync.
    let handler: Arc<dyn dsf_container::amqp::Handler> = if std::env::var("SVCCMP_STORE").as_deref() == Ok("memory") {
        let ds = Datastore::new(Arc::new(dsf::store::memory::MemoryStore::default()), Registry::builtin());
        Arc::new(DatastoreService::new(ds))
    } else {
        let sync = std::env::var("SVCCMP_NOSYNC").is_err();
        let options = dsf_store_backends::rocks::RocksOptions::default().sync(sync);
        let store = RocksStore::open_with(dir.path(), options).map_err(|e| e.to_string())?;
        Arc::new(DatastoreService::new(Datastore::new(Arc::new(store), Registry::builtin())))
    };
    container.spawn("datastore", Some(SERVICE), handler).await.map_err(|e| e.to_string())?;
    let client = AmqpClient::spawn(&container, None).await.map_err(|e| e.to_string())?;
    Ok(Setup { container, client, _dir: dir })
}

async fn amqp_rpc(broker: &str, rounds: usize, calls: usize) -> Result<(), String> {
    let s = setup(broker).await?;
    // The size of a small push's message body, for bare requests of the same size.
    let probe = small_repository(usize::MAX);
    let before = s.client.endpoint().bytes_sent();
    s.client.push(&probe).await.map_err(|e| e.to_string())?;
    let size = (s.client.endpoint().bytes_sent() - before) as usize;
    let bare = BareLapin::start(broker).await.map_err(|e| e.to_string())?;
    let payload = vec![b'x'; size];
    eprintln!("svccmp: a small push sends {size} bytes; bare requests carry as many");
    let (mut best_push, mut best_bare) = (f64::MAX, f64::MAX);
    for round in 0..rounds {
        let repos: Vec<Repository> = (0..calls).map(|i| small_repository(round * calls + i)).collect();
        let t = Instant::now();
        for _ in 0..calls {
            bare.call(&payload).await.map_err(|e| e.to_string())?;
        }
        let bare_us = t.elapsed().as_secs_f64() * 1e6 / calls as f64;
        let t = Instant::now();
        for r in &repos {
            s.client.push(r).await.map_err(|e| e.to_string())?;
        }
        let push = t.elapsed().as_secs_f64() * 1e6 / calls as f64;
        eprintln!("svccmp: round {}/{rounds}: push {push:.0} us, bare lapin request/reply {bare_us:.0} us", round + 1);
        best_push = best_push.min(push);
        best_bare = best_bare.min(bare_us);
    }
    println!("amqp-rpc {best_push:.1} {best_bare:.1}");
    s.container.terminate().await;
    Ok(())
}

/// A bare request/reply through the broker with lapin alone: a consumer that publishes each
/// request's body back to its `reply_to` queue, and a caller that waits for it.
struct BareLapin {
    channel: lapin::Channel,
    queue: String,
    reply: String,
    replies: tokio::sync::Mutex<lapin::Consumer>,
    _conn: lapin::Connection,
}

impl BareLapin {
    async fn start(broker: &str) -> lapin::Result<BareLapin> {
        use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
        use lapin::types::FieldTable;
        let conn = lapin::Connection::connect(broker, lapin::ConnectionProperties::default()).await?;
        let server = conn.create_channel().await?;
        let queue = format!("svccmp.bare.{}", std::process::id());
        let exclusive = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
        server.queue_declare(queue.as_str().into(), exclusive, FieldTable::default()).await?;
        let mut requests = server
            .basic_consume(queue.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        tokio::spawn(async move {
            use futures::StreamExt as _;
            while let Some(Ok(d)) = requests.next().await {
                let to = d.properties.reply_to().clone().unwrap_or_default();
                let _ = server
                    .basic_publish(
                        "".into(),
                        to,
                        BasicPublishOptions::default(),
                        &d.data,
                        lapin::BasicProperties::default(),
                    )
                    .await;
                let _ = d.ack(BasicAckOptions::default()).await;
            }
        });
        let channel = conn.create_channel().await?;
        let reply = format!("svccmp.bare-reply.{}", std::process::id());
        channel.queue_declare(reply.as_str().into(), exclusive, FieldTable::default()).await?;
        let replies = channel
            .basic_consume(
                reply.as_str().into(),
                "".into(),
                BasicConsumeOptions { no_ack: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
        Ok(BareLapin { channel, queue, reply, replies: tokio::sync::Mutex::new(replies), _conn: conn })
    }

    async fn call(&self, body: &[u8]) -> Result<(), String> {
        use futures::StreamExt as _;
        let props = lapin::BasicProperties::default().with_reply_to(self.reply.as_str().into());
        self.channel
            .basic_publish("".into(), self.queue.as_str().into(), Default::default(), body, props)
            .await
            .map_err(|e| e.to_string())?;
        match self.replies.lock().await.next().await {
            Some(Ok(_)) => Ok(()),
            _ => Err("the bare reply consumer ended".into()),
        }
    }
}

async fn push_bytes(broker: &str) -> Result<(), String> {
    let s = setup(broker).await?;
    let (grpc, server, stop, _grpc_dir) = grpc_datastore().await?;
    let objects = 100_000;
    let registry = Registry::builtin();
    let mut repo = new_repository(&registry);
    build_and_commit(&mut repo, Shape::Dataset, objects, 7, 1.0e9).map_err(|e| e.to_string())?;
    let before: HashSet<Key> = repo.elements().iter().map(|e| e.key()).collect();
    let t = Instant::now();
    s.client.push(&repo).await.map_err(|e| e.to_string())?;
    grpc.push(&repo).await.map_err(|e| e.to_string())?;
    eprintln!("svccmp: first pushes of {objects} objects in {:.1} s", t.elapsed().as_secs_f64());
    let changed = change_objects(&mut repo, one_percent(objects), 11, 0).map_err(|e| e.to_string())?;
    repo.commit_at("1 % changed", 1.0e9 + 1.0).map_err(|e| e.to_string())?;
    let new: Vec<&dsf::Element> = repo.elements().iter().filter(|e| !before.contains(&e.key())).collect();
    let new_bytes: usize = new.iter().map(|e| e.encoded_len()).sum();
    let sent = s.client.endpoint().bytes_sent();
    s.client.push(&repo).await.map_err(|e| e.to_string())?;
    let amqp = s.client.endpoint().bytes_sent() - sent;
    let outcome = grpc.push(&repo).await.map_err(|e| e.to_string())?;
    let grpc_bytes = outcome.sent_bytes + outcome.negotiate_bytes;
    eprintln!(
        "svccmp: {changed} objects changed, {} new elements of {new_bytes} bytes; incremental push sent \
         {grpc_bytes} bytes over gRPC ({} elements), {amqp} bytes over AMQP",
        new.len(),
        outcome.sent_elements
    );
    println!("push-bytes {grpc_bytes} {new_bytes}");
    println!("push-bytes-amqp {amqp} {new_bytes}");
    s.container.terminate().await;
    let _ = stop.send(());
    server.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    Ok(())
}

type Server = tokio::task::JoinHandle<dsf_container::Result<()>>;

/// A datastore on RocksDB served over gRPC on loopback, and a client of it.
async fn grpc_datastore()
-> Result<(dsf_container::grpc::GrpcClient, Server, tokio::sync::oneshot::Sender<()>, tempfile::TempDir), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = RocksStore::open(dir.path()).map_err(|e| e.to_string())?;
    let ds = Arc::new(Datastore::new(Arc::new(store), Registry::builtin()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dsf_container::grpc::serve(ds, listener, async move {
        let _ = stopped.await;
    }));
    let client =
        dsf_container::grpc::GrpcClient::connect(&url, Registry::builtin()).await.map_err(|e| e.to_string())?;
    Ok((client, server, stop, dir))
}

async fn grpc_clone(rounds: usize) -> Result<(), String> {
    let (client, server, stop, _dir) = grpc_datastore().await?;
    let registry = Registry::builtin();
    let mut repo = new_repository(&registry);
    build_and_commit(&mut repo, Shape::Dataset, 100_000, 7, 1.0e9).map_err(|e| e.to_string())?;
    let elements = repo.elements().len();
    client.push(&repo).await.map_err(|e| e.to_string())?;
    let mut best = 0.0f64;
    for round in 0..rounds {
        let t = Instant::now();
        let clone = client.clone_repository(repo.key(), true, None).await.map_err(|e| e.to_string())?;
        let secs = t.elapsed().as_secs_f64();
        if clone.elements().len() != elements {
            return Err(format!("the clone has {} elements, the source {elements}", clone.elements().len()));
        }
        let rate = elements as f64 / secs;
        eprintln!("svccmp: round {}/{rounds}: cloned {elements} elements in {secs:.2} s ({rate:.0}/s)", round + 1);
        best = best.max(rate);
    }
    println!("grpc-clone {best:.0} {elements}");
    let _ = stop.send(());
    server.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    Ok(())
}

/// Pushes of new small repositories by `pushers` concurrent clients (each with its own
/// connection), each pushing at most `per_pusher` repositories made beforehand, for at most
/// `seconds`; in pushes per second. Repository numbers start at `first`.
async fn pushes_per_second(
    clients: &[dsf_container::grpc::GrpcClient],
    pushers: usize,
    per_pusher: usize,
    seconds: f64,
    first: usize,
) -> Result<(f64, usize), String> {
    let work: Vec<Vec<Repository>> =
        (0..pushers).map(|p| (0..per_pusher).map(|i| small_repository(first + p * per_pusher + i)).collect()).collect();
    let t = Instant::now();
    let tasks: Vec<_> = work
        .into_iter()
        .zip(clients)
        .map(|(repos, client)| {
            let client = client.clone();
            tokio::spawn(async move {
                let mut pushed = 0usize;
                for r in &repos {
                    if t.elapsed().as_secs_f64() >= seconds {
                        return Ok(pushed);
                    }
                    client.push(r).await.map_err(|e| e.to_string())?;
                    pushed += 1;
                }
                Ok::<usize, String>(pushed)
            })
        })
        .collect();
    let mut pushed = 0;
    for task in tasks {
        pushed += task.await.map_err(|e| e.to_string())??;
    }
    Ok((pushed as f64 / t.elapsed().as_secs_f64(), pushed))
}

async fn push_concurrency(rounds: usize, seconds: f64, per_pusher: usize) -> Result<(), String> {
    let (client, server, stop, _dir) = grpc_datastore().await?;
    let url = client.url().to_string();
    let mut clients = vec![client];
    for _ in 1..8 {
        clients.push(
            dsf_container::grpc::GrpcClient::connect(&url, Registry::builtin()).await.map_err(|e| e.to_string())?,
        );
    }
    let (mut best_one, mut best_eight) = (0.0f64, 0.0f64);
    let mut first = 0;
    for round in 0..rounds {
        // Alternate which side runs first.
        let order: [usize; 2] = if round % 2 == 0 { [1, 8] } else { [8, 1] };
        for pushers in order {
            let (rate, pushed) = pushes_per_second(&clients, pushers, per_pusher, seconds, first).await?;
            first += pushers * per_pusher;
            eprintln!("svccmp: round {}/{rounds}: {pushers} pusher(s): {pushed} pushes, {rate:.0} pushes/s", round + 1);
            if pushers == 1 {
                best_one = best_one.max(rate);
            } else {
                best_eight = best_eight.max(rate);
            }
        }
    }
    println!("push-concurrency {best_eight:.1} {best_one:.1}");
    let _ = stop.send(());
    server.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut broker = None;
    let (mut rounds, mut calls, mut seconds) = (3, 300, 3.0);
    let mut i = 1;
    while i < args.len() {
        match (args[i].as_str(), args.get(i + 1)) {
            ("--broker", Some(v)) => broker = Some(v.clone()),
            ("--rounds", Some(v)) => rounds = v.parse().unwrap_or(rounds),
            ("--calls", Some(v)) => calls = v.parse().unwrap_or(calls),
            ("--seconds", Some(v)) => seconds = v.parse().unwrap_or(seconds),
            _ => {
                eprintln!("svccmp: {USAGE}");
                return std::process::ExitCode::from(2);
            }
        }
        i += 2;
    }
    let Some(command) = args.first() else {
        eprintln!("svccmp: {USAGE}");
        return std::process::ExitCode::from(2);
    };
    let broker = broker.ok_or_else(|| format!("{command} needs --broker URL\n{USAGE}"));
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let result = match command.as_str() {
        "amqp-rpc" => broker.and_then(|b| runtime.block_on(amqp_rpc(&b, rounds, calls))),
        "push-bytes" => broker.and_then(|b| runtime.block_on(push_bytes(&b))),
        "grpc-clone" => runtime.block_on(grpc_clone(rounds)),
        "push-concurrency" => runtime.block_on(push_concurrency(rounds, seconds, calls)),
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
