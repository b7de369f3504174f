//! A container outlives its broker: after a broker restart (a broker of the test's own, started
//! with `scripts/rabbitmq`) or a cut connection (a TCP relay the test controls), processes
//! declare their queues again and serve; a request whose ack was lost is redelivered and
//! handled once in effect; a durable worker queue keeps a request published while the
//! container was away; the gRPC health service follows the connection; a broker lost for good
//! ends the binary with exit code 3.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsf::store::Store;
use dsf::{Checkout, Key, Registry, TypeId};
use dsf_container::Error;
use dsf_container::ServiceError;
use dsf_container::amqp::{BrokerStatus, Container, ContainerConfig, Handler, Process, ProcessState, Request, redact};
use dsf_container::client::AmqpClient;
use dsf_container::datastore::Datastore;
use dsf_container::datastore::service::{DatastoreService, SERVICE};
use dsf_container::grpc::GrpcClient;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use tokio::sync::{mpsc, oneshot, watch};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::*;

/// The longest wait for a broker, a reconnection or a reply to come.
const PATIENCE: Duration = Duration::from_secs(90);

// ----- a broker of the test's own ----------------------------------------------------------

fn rabbitmq_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/rabbitmq")
}

/// A RabbitMQ started for one test (its own port and data folder), stopped on drop even when
/// the test fails.
struct OwnBroker {
    port: u16,
    dir: tempfile::TempDir,
}

impl OwnBroker {
    /// Starts a broker on the first free port from 5690 (several tests may start one at once).
    fn start() -> OwnBroker {
        static NEXT: AtomicU16 = AtomicU16::new(5690);
        let mut last = String::new();
        for _ in 0..6 {
            let port = loop {
                let p = NEXT.fetch_add(1, Ordering::Relaxed);
                assert!(p < 5790, "no free port for a test broker in 5690-5789");
                if port_free(p) && port_free(p + 20000) {
                    break p;
                }
            };
            let dir = tempfile::tempdir().expect("a temp dir");
            let broker = OwnBroker { port, dir };
            match broker.script("start") {
                Ok(()) => return broker,
                Err(e) => last = e,
            }
        }
        panic!(
            "could not start a test broker with scripts/rabbitmq (is rabbitmq-server installed? `scripts/rabbitmq install`): {last}"
        );
    }

    fn script(&self, command: &str) -> Result<(), String> {
        let out = std::process::Command::new(rabbitmq_script())
            .arg(command)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(self.dir.path().join("rabbitmq"))
            .output()
            .map_err(|e| format!("running scripts/rabbitmq: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!("scripts/rabbitmq {command} failed: {}", String::from_utf8_lossy(&out.stderr)))
        }
    }

    /// Stops the broker and starts it again on the same data (durable queues and persistent
    /// messages stay); returns when it answers again.
    async fn restart(&self) {
        let (port, dir) = (self.port, self.dir.path().join("rabbitmq"));
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new(rabbitmq_script())
                .args(["restart", "--port", &port.to_string(), "--dir"])
                .arg(dir)
                .output()
        })
        .await
        .unwrap()
        .expect("scripts/rabbitmq runs");
        assert!(out.status.success(), "scripts/rabbitmq restart failed: {}", String::from_utf8_lossy(&out.stderr));
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        if let Err(e) = self.script("stop") {
            eprintln!("{e}");
        }
    }
}

fn port_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The address of the shared test broker.
fn shared_broker_addr() -> SocketAddr {
    let url = broker_url();
    let rest = url.split("://").nth(1).unwrap_or(&url);
    let hostport = rest.rsplit('@').next().unwrap_or(rest).split('/').next().unwrap_or_default();
    let hostport = if hostport.contains(':') { hostport.to_owned() } else { format!("{hostport}:5672") };
    let hostport = hostport.replace("localhost", "127.0.0.1");
    hostport.parse().unwrap_or_else(|e| panic!("DSF_AMQP_URL {}: not host:port ({e})", redact(&url)))
}

// ----- a relay the test can cut ------------------------------------------------------------

/// A TCP relay to a broker: `cut` drops every relayed connection and refuses new ones until
/// `resume`, as a network fault between a container and its broker would.
struct Relay {
    port: u16,
    open: Arc<AtomicBool>,
    cuts: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Relay {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicBool::new(true));
        let (cuts, _) = watch::channel(0u64);
        let (o, c) = (open.clone(), cuts.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else { return };
                if !o.load(Ordering::SeqCst) {
                    continue; // dropped: the connection closes at once
                }
                let mut cut = c.subscribe();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        Relay { port, open, cuts, task }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        self.cuts.send_modify(|n| *n += 1);
    }

    fn resume(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

// ----- waiting -----------------------------------------------------------------------------

/// Polls `ready` until it holds, at most [`PATIENCE`].
async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !ready() {
        assert!(Instant::now() < deadline, "{what}: not within {PATIENCE:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every state a process goes through, as seen by a watch.
fn record_states(p: &Process) -> Arc<Mutex<Vec<ProcessState>>> {
    let seen = Arc::new(Mutex::new(vec![p.state()]));
    let mut rx = p.state_watch();
    let s = seen.clone();
    tokio::spawn(async move {
        while rx.changed().await.is_ok() {
            let state = rx.borrow_and_update().clone();
            s.lock().unwrap().push(state);
        }
    });
    seen
}

/// Pushes until the push is acknowledged, retrying while the client's own connection comes
/// back (at most [`PATIENCE`]).
async fn push_when_back(client: &AmqpClient, repo: &dsf::Repository) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match client.push(repo).await {
            Ok(()) => return,
            Err(e) if (e.is_connection_loss() || matches!(e, Error::Timeout { .. })) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("a push after the reconnection failed: {e}"),
        }
    }
}

// ----- tests -------------------------------------------------------------------------------

/// A broker restart: the container's processes go through Reconnecting and are active again,
/// the data pushed before is still served, and a push sent after the restart is served.
#[tokio::test(flavor = "multi_thread")]
async fn processes_are_active_again_after_a_broker_restart() {
    let broker = OwnBroker::start();
    let sys = sysname();
    let (store, _dir) = rocksdb();
    let ds = Datastore::new(Arc::new(store), Registry::builtin());
    let container = Container::start(ContainerConfig::new(broker.url(), Some(sys.clone()))).await.unwrap();
    let service = Arc::new(DatastoreService::new(ds.clone()));
    let mut processes = Vec::new();
    for _ in 0..2 {
        processes.push(container.spawn("datastore", Some(SERVICE), service.clone()).await.unwrap());
    }
    let seen: Vec<_> = processes.iter().map(record_states).collect();
    let clients = Container::start(ContainerConfig::new(broker.url(), Some(sys))).await.unwrap();
    let client = AmqpClient::spawn(&clients, None).await.unwrap().with_timeout(Duration::from_secs(30));
    let (before, _) = address_book("before the restart");
    client.push(&before).await.unwrap();

    broker.restart().await;
    wait_until("the datastore processes are active again", || container.ready()).await;
    for (p, seen) in processes.iter().zip(&seen) {
        assert_eq!(p.state(), ProcessState::Active);
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen.iter().any(|s| matches!(s, ProcessState::Reconnecting(_))),
            "process {} lost its channel and came back: {seen:?}",
            p.id()
        );
    }
    assert_eq!(container.broker_status(), BrokerStatus::Connected);
    wait_until("the client's container is back", || clients.ready()).await;

    let (after, _) = address_book("after the restart");
    push_when_back(&client, &after).await;
    for repo in [&before, &after] {
        let mut back = client.clone_repository(repo.key(), true, None).await.expect("served after the restart");
        client.checkout(&mut back, Checkout::branch("master")).await.unwrap();
        assert_eq!(content(&back), content(repo));
    }
    clients.terminate().await;
    container.terminate().await;
    for p in &processes {
        assert_eq!(p.state(), ProcessState::Terminated);
    }
}

/// The binary with durable_queues = true, cut off its broker: the health service says
/// NOT_SERVING; a push published meanwhile waits in the durable worker queue through a broker
/// restart and is served once the container is back (health SERVING again); a push sent after
/// that is served too. Beside it, a container with ION's non-durable worker queue loses the
/// push queued for it with the broker restart, as the README says.
#[tokio::test(flavor = "multi_thread")]
async fn a_durable_request_waits_for_the_container_through_a_broker_restart() {
    let broker = OwnBroker::start();
    let relay = Relay::start(broker.addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let sys = sysname();
    let grpc_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("dsf.toml");
    std::fs::write(
        &config,
        format!(
            "sysname = \"{sys}\"\nbroker = \"{}\"\ngrpc = \"127.0.0.1:{grpc_port}\"\ndurable_queues = true\n\
             broker_retry_secs = 0\n[store]\nkind = \"rocksdb\"\npath = \"{}\"\n",
            relay.url(),
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let mut child = start_binary(&config);
    let grpc_url = format!("http://127.0.0.1:{grpc_port}");
    let mut health = health_client(&grpc_url).await;
    wait_for_health(&mut health, "", ServingStatus::Serving).await;
    wait_for_health(&mut health, dsf_container::grpc::SERVICE_NAME, ServingStatus::Serving).await;

    let clients = Container::start(ContainerConfig::new(broker.url(), Some(sys.clone()))).await.unwrap();
    let client = Arc::new(AmqpClient::spawn(&clients, None).await.unwrap().with_timeout(Duration::from_secs(60)));
    let (first, _) = address_book("first");
    client.push(&first).await.unwrap();

    // ION's behaviour, on the same broker behind the same relay.
    let plain_sys = sysname();
    let plain_ds = Datastore::new(Arc::new(dsf::store::memory::MemoryStore::default()), Registry::builtin());
    let plain = Container::start(ContainerConfig::new(relay.url(), Some(plain_sys.clone()))).await.unwrap();
    plain.spawn("datastore", Some(SERVICE), Arc::new(DatastoreService::new(plain_ds.clone()))).await.unwrap();
    let plain_clients = Container::start(ContainerConfig::new(broker.url(), Some(plain_sys.clone()))).await.unwrap();
    let plain_client = Arc::new(AmqpClient::spawn(&plain_clients, None).await.unwrap());

    let mut statuses = health
        .watch(HealthCheckRequest { service: dsf_container::grpc::SERVICE_NAME.into() })
        .await
        .unwrap()
        .into_inner();
    relay.cut();
    next_status(&mut statuses, ServingStatus::NotServing).await;

    // Published while the container is away: it waits in the worker queue.
    let (queued, _) = address_book("queued while the container was away");
    let pushing = {
        let (client, queued) = (client.clone(), queued.clone());
        tokio::spawn(async move { client.push(&queued).await })
    };
    let (lost, _) = address_book("queued in a non-durable queue");
    let plain_pushing = {
        let (client, lost) = (plain_client.clone(), lost.clone());
        tokio::spawn(async move { client.push(&lost).await })
    };
    let queue = format!("{sys}.{SERVICE}");
    let plain_queue = format!("{plain_sys}.{SERVICE}");
    wait_for_queue_depth(&broker.url(), &queue, 1).await;
    wait_for_queue_depth(&broker.url(), &plain_queue, 1).await;
    broker.restart().await;
    let err = pushing.await.unwrap().expect_err("the pusher's connection dropped with the broker");
    assert!(err.is_connection_loss(), "a connection loss the caller can match: {err}");
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err}");
    let err = plain_pushing.await.unwrap().expect_err("the pusher's connection dropped with the broker");
    assert!(matches!(err, Error::ConnectionLost { .. }), "{err}");
    wait_for_queue_depth(&broker.url(), &queue, 1).await;
    assert_eq!(
        queue_depth(&broker.url(), &plain_queue).await,
        Ok(None),
        "a non-durable worker queue and its requests do not survive a broker restart"
    );

    relay.resume();
    next_status(&mut statuses, ServingStatus::Serving).await;
    let grpc = GrpcClient::connect(&grpc_url, Registry::builtin()).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    let back = loop {
        match grpc.clone_repository(queued.key(), true, None).await {
            Ok(back) => break back,
            Err(e) => {
                assert!(Instant::now() < deadline, "the queued push was not served after the reconnection: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    assert_eq!(back.current_heads(), queued.current_heads(), "the queued push was served");

    wait_until("the client's container is back", || clients.ready()).await;
    let (after, _) = address_book("after the restart");
    push_when_back(&client, &after).await;
    let back = grpc.clone_repository(after.key(), true, None).await.unwrap();
    assert_eq!(back.current_heads(), after.current_heads());
    let back = grpc.clone_repository(first.key(), true, None).await.unwrap();
    assert_eq!(back.current_heads(), first.current_heads());

    wait_until("the non-durable container is back", || plain.ready()).await;
    assert!(plain_ds.heads(lost.key()).await.unwrap().is_none(), "the push queued before the restart was lost");
    plain_clients.terminate().await;
    plain.terminate().await;
    clients.terminate().await;
    let status = sigterm(&mut child);
    assert!(status.success(), "a clean exit on SIGTERM after the reconnection: {status}");
}

/// A broker that stays away longer than broker_retry_secs ends the binary with exit code 3
/// (its health service said NOT_SERVING meanwhile).
#[tokio::test(flavor = "multi_thread")]
async fn a_broker_lost_for_good_is_exit_code_3() {
    let relay = Relay::start(shared_broker_addr()).await;
    let dir = tempfile::tempdir().unwrap();
    let grpc_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let config = dir.path().join("dsf.toml");
    std::fs::write(
        &config,
        format!(
            "sysname = \"{}\"\nbroker = \"{}\"\ngrpc = \"127.0.0.1:{grpc_port}\"\nbroker_retry_secs = 2\n\
             [store]\nkind = \"memory\"\n",
            sysname(),
            relay.url()
        ),
    )
    .unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_dsf-container"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("dsf-container starts");
    let mut child = Running(child);
    let mut health = health_client(&format!("http://127.0.0.1:{grpc_port}")).await;
    wait_for_health(&mut health, "", ServingStatus::Serving).await;
    let mut statuses = health.watch(HealthCheckRequest { service: String::new() }).await.unwrap().into_inner();

    relay.cut();
    next_status(&mut statuses, ServingStatus::NotServing).await;
    let deadline = Instant::now() + PATIENCE;
    let status = loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "dsf-container did not give up on a lost broker");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(3), "exit code 3 for a lost broker: {stderr}");
    assert!(stderr.contains("lost the message broker") && stderr.contains("broker_retry_secs"), "{stderr}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dsf-container")).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for documented in
        ["durable_queues", "broker_retry_secs", "grpc.health.v1.Health", "Exit codes", "  3  lost the broker"]
    {
        assert!(help.contains(documented), "--help documents {documented:?}");
    }
}

/// A worker queue declared durable by one container and not by another: a clear error that
/// names the conflict.
#[tokio::test(flavor = "multi_thread")]
async fn a_queue_declared_with_other_settings_is_a_clear_error() {
    let sys = sysname();
    let (store, _dir) = rocksdb();
    let service = Arc::new(DatastoreService::new(Datastore::new(Arc::new(store), Registry::builtin())));
    let plain = Container::start(ContainerConfig::new(broker_url(), Some(sys.clone()))).await.unwrap();
    plain.spawn("datastore", Some(SERVICE), service.clone()).await.unwrap();
    let mut config = ContainerConfig::new(broker_url(), Some(sys.clone()));
    config.durable_queues = true;
    let durable = Container::start(config).await.unwrap();
    let err = durable.spawn("datastore", Some(SERVICE), service).await.expect_err("the queue exists, not durable");
    let text = err.to_string();
    assert!(
        text.contains(&format!("{sys}.{SERVICE}"))
            && text.contains("PRECONDITION_FAILED")
            && text.contains("durable_queues"),
        "{text}"
    );
    durable.terminate().await;
    plain.terminate().await;
}

/// A container that, back from a lost connection, finds its worker queue declared with other
/// settings gives up (Failed, with the reason) instead of retrying forever.
#[tokio::test(flavor = "multi_thread")]
async fn a_queue_refused_after_a_reconnection_is_final() {
    let relay = Relay::start(shared_broker_addr()).await;
    let sys = sysname();
    let queue = format!("{sys}.{SERVICE}");
    let (store, _dir) = rocksdb();
    let service = Arc::new(DatastoreService::new(Datastore::new(Arc::new(store), Registry::builtin())));
    let plain = Container::start(ContainerConfig::new(relay.url(), Some(sys.clone()))).await.unwrap();
    let process = plain.spawn("datastore", Some(SERVICE), service.clone()).await.unwrap();
    relay.cut();
    wait_until("the container lost its broker", || matches!(plain.broker_status(), BrokerStatus::Reconnecting(_)))
        .await;
    // Meanwhile the queue is deleted and declared durable by another container.
    let conn = lapin::Connection::connect(&broker_url(), lapin::ConnectionProperties::default()).await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel.queue_delete(queue.as_str().into(), Default::default()).await.unwrap();
    conn.close(200, "bye".into()).await.unwrap();
    let mut config = ContainerConfig::new(broker_url(), Some(sys));
    config.durable_queues = true;
    let durable = Container::start(config).await.unwrap();
    durable.spawn("datastore", Some(SERVICE), service).await.unwrap();

    relay.resume();
    let mut watch = plain.broker_watch();
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let why = loop {
        if let BrokerStatus::Failed(why) = watch.status() {
            break why;
        }
        tokio::time::timeout_at(deadline, watch.changed()).await.expect("the container gave up");
    };
    assert!(why.contains(&queue) && why.contains("PRECONDITION_FAILED"), "{why}");
    assert!(matches!(process.state(), ProcessState::Error(e) if e.contains("PRECONDITION_FAILED")));
    plain.terminate().await;
    durable.terminate().await;
}

// ----- a redelivered request ---------------------------------------------------------------

/// The datastore, holding the reply to the first request of one op until the test releases
/// it; every request's op and redelivered flag is reported.
struct Gate<S> {
    inner: Arc<DatastoreService<S>>,
    op: &'static str,
    seen: mpsc::UnboundedSender<(String, bool)>,
    handled: Mutex<Option<oneshot::Sender<()>>>,
    release: Mutex<Option<oneshot::Receiver<()>>>,
}

impl<S: Store + 'static> Handler for Gate<S> {
    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<'static, Result<Bytes, ServiceError>> {
        Box::pin(async move {
            let op = req.headers.op.clone();
            let _ = self.seen.send((op.clone(), req.redelivered));
            let result = self.inner.clone().handle(req).await;
            if op == self.op {
                let handled = self.handled.lock().unwrap().take();
                if let Some(handled) = handled {
                    let release = self.release.lock().unwrap().take().expect("one release");
                    let _ = handled.send(());
                    let _ = release.await;
                }
            }
            result
        })
    }
}

/// The datastore handles a request, then its connection is cut before the reply and the ack:
/// the broker redelivers the request, the datastore handles it again once reconnected (no
/// harm: the store already holds it), and that reply answers the caller, who never notices.
async fn redelivered(op: &'static str) {
    let relay = Relay::start(shared_broker_addr()).await;
    let sys = sysname();
    let (store, _dir) = rocksdb();
    let ds = Datastore::new(Arc::new(store), Registry::builtin());
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let (handled_tx, handled) = oneshot::channel();
    let (release, release_rx) = oneshot::channel();
    let gate = Arc::new(Gate {
        inner: Arc::new(DatastoreService::new(ds.clone())),
        op,
        seen: seen_tx,
        handled: Mutex::new(Some(handled_tx)),
        release: Mutex::new(Some(release_rx)),
    });
    let container = Container::start(ContainerConfig::new(relay.url(), Some(sys.clone()))).await.unwrap();
    let process = container.spawn("datastore", Some(SERVICE), gate).await.unwrap();
    let clients = Container::start(ContainerConfig::new(broker_url(), Some(sys))).await.unwrap();
    let client = Arc::new(AmqpClient::spawn(&clients, None).await.unwrap().with_timeout(PATIENCE));

    let (src, _) = address_book("redelivered");
    let blobs: Vec<dsf::Element> = src.elements().iter().filter(|e| e.ty() != TypeId::COMMIT).cloned().collect();
    let call = {
        let (client, src, blobs) = (client.clone(), src.clone(), blobs.clone());
        tokio::spawn(async move {
            match op {
                "push" => client.push(&src).await,
                _ => client.put_blobs(&blobs).await,
            }
        })
    };
    handled.await.expect("the first delivery was handled");
    relay.cut();
    wait_until("the datastore lost its channel", || matches!(process.state(), ProcessState::Reconnecting(_))).await;
    release.send(()).unwrap();
    relay.resume();
    call.await.unwrap().unwrap_or_else(|e| panic!("the redelivery answered the {op}: {e}"));

    assert_eq!(seen.recv().await, Some((op.to_owned(), false)));
    assert_eq!(seen.recv().await, Some((op.to_owned(), true)), "the second delivery is flagged redelivered");
    let keys: Vec<Key> = blobs.iter().map(|e| e.key()).collect();
    assert!(ds.missing(&keys).await.unwrap().is_empty(), "every element is stored");
    if op == "push" {
        let heads = ds.heads(src.key()).await.unwrap().expect("the push was stored");
        assert_eq!(heads.branches.len(), 1, "{:?}", heads.branches);
        assert_eq!(heads.branches[0].heads, src.current_heads(), "one head: the pushed commit");
        let mut back = client.clone_repository(src.key(), true, None).await.unwrap();
        client.checkout(&mut back, Checkout::branch("master")).await.unwrap();
        assert_eq!(content(&back), content(&src));
    }
    clients.terminate().await;
    container.terminate().await;
}

/// ★ A push whose ack was lost is redelivered and handled once in effect.
#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_push_is_harmless() {
    redelivered("push").await;
}

/// ★ A put_blobs whose ack was lost is redelivered and handled once in effect.
#[tokio::test(flavor = "multi_thread")]
async fn a_redelivered_put_blobs_is_harmless() {
    redelivered("put_blobs").await;
}

// ----- helpers for the binary --------------------------------------------------------------

async fn health_client(url: &str) -> HealthClient<tonic::transport::Channel> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match tonic::transport::Endpoint::from_shared(url.to_owned()).unwrap().connect().await {
            Ok(channel) => return HealthClient::new(channel),
            Err(e) => {
                assert!(Instant::now() < deadline, "dsf-container did not serve gRPC: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn wait_for_health(client: &mut HealthClient<tonic::transport::Channel>, service: &str, want: ServingStatus) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = client.check(HealthCheckRequest { service: service.into() }).await;
        match got {
            Ok(r) if r.get_ref().status() == want => return,
            other => {
                assert!(Instant::now() < deadline, "health of {service:?} is not {want:?}: {other:?}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Reads a health watch until it reports `want`.
async fn next_status(statuses: &mut tonic::Streaming<tonic_health::pb::HealthCheckResponse>, want: ServingStatus) {
    let found = tokio::time::timeout(PATIENCE, async {
        while let Some(r) = statuses.next().await {
            if r.expect("a health status").status() == want {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "the health watch did not report {want:?}");
}

/// How many ready messages `queue` holds (a passive declare); `None` if it does not exist.
async fn queue_depth(url: &str, queue: &str) -> Result<Option<u32>, String> {
    let conn =
        lapin::Connection::connect(url, lapin::ConnectionProperties::default()).await.map_err(|e| e.to_string())?;
    let channel = conn.create_channel().await.map_err(|e| e.to_string())?;
    let declared = channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
            lapin::types::FieldTable::default(),
        )
        .await;
    let _ = conn.close(200, "bye".into()).await;
    match declared {
        Ok(q) => Ok(Some(q.message_count())),
        Err(e) if matches!(e.kind(), lapin::ErrorKind::ProtocolError(p) if p.get_id() == 404) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Waits until `queue` holds `depth` ready messages.
async fn wait_for_queue_depth(url: &str, queue: &str, depth: u32) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let count = queue_depth(url, queue).await;
        if count == Ok(Some(depth)) {
            return;
        }
        assert!(Instant::now() < deadline, "queue {queue} did not hold {depth} messages: {count:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn sigterm(child: &mut Running) -> std::process::ExitStatus {
    let status = std::process::Command::new("kill").arg("-TERM").arg(child.0.id().to_string()).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(s) = child.0.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < deadline, "dsf-container did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}
