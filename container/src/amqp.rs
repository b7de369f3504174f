//! Messaging on RabbitMQ with ION's conventions (spec §1.6).
//!
//! Everything is published to the topic exchange [`EXCHANGE`] with the receiver's name as
//! routing key. A service's instances share a worker queue `<sysname>.<service>` (round robin);
//! every process also has an exclusive queue named by its id, `<container-id>.<n>`, where its
//! RPC replies and requests addressed to it arrive. Requests are acknowledged after their
//! handler finished (its writes are durable) and the reply was published, so a process that
//! dies mid-request leaves the request to be redelivered.
//!
//! The container owns its broker connection through a supervisor task. When the connection
//! drops (a broker restart or crash, a network fault), the supervisor reconnects with capped
//! exponential backoff and jitter; every process then opens a channel again, declares the
//! exchange and its queues, binds, consumes, and is active again. A request whose channel died
//! before it was acknowledged is redelivered by the broker (if its queue survived) and handled
//! again: the datastore's operations are idempotent, so it is handled once in effect. Its
//! first reply cannot be sent (the channel is gone) and is dropped; the redelivery answers.
//! A call waiting for a reply when the connection drops fails with
//! [`Error::ConnectionLost`]; a call made while the container reconnects fails at once with
//! [`Error::Unavailable`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use dsf::Registry;
use dsf_proto::net::ooici::core::message::ion_msg::ResponseCodes;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{oneshot, watch};
use tokio_util::task::TaskTracker;

use crate::content::{Content, ContentBuilder};
use crate::error::{Error, Result, ServiceError};
use crate::message::{ENCODING_GPB, Headers, Message, timestamp};

/// ION's default exchange.
pub const EXCHANGE: &str = "magnet.topic";
/// ION's default RPC timeout (`ion.core.process.process.rpc_timeout`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest message body a process accepts by default; larger requests get a 400 reply.
pub const DEFAULT_MAX_MESSAGE: usize = 64 << 20;
/// Requests a process works on at once (the worker queue's prefetch).
pub const DEFAULT_PREFETCH: u16 = 32;
/// How long a container tries to reconnect to a lost broker by default before it gives up.
pub const DEFAULT_BROKER_RETRY: Duration = Duration::from_secs(300);
/// The first pause before reconnecting; each failed attempt doubles it, up to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest pause between two reconnection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// How long one connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the supervisor looks at the connection's state (besides its error events).
const WATCH_PERIOD: Duration = Duration::from_millis(500);
/// AMQP reply codes that no retry can cure: PRECONDITION_FAILED (a queue or exchange exists
/// with other settings) and ACCESS_REFUSED.
const FATAL_CODES: [u16; 2] = [406, 403];

/// Serves the requests that reach a process.
pub trait Handler: Send + Sync + 'static {
    /// Handles one request (`op` in its headers) and returns the reply content.
    fn handle(self: Arc<Self>, request: Request) -> BoxFuture<'static, std::result::Result<Bytes, ServiceError>>;
}

/// One request, with the endpoint it arrived at (to call back the sender).
#[derive(Debug)]
pub struct Request {
    /// The request's headers.
    pub headers: Headers,
    /// The request's content.
    pub content: Bytes,
    /// The receiving process's endpoint.
    pub endpoint: Endpoint,
    /// The broker delivered this request before (to a consumer that did not acknowledge it).
    pub redelivered: bool,
}

impl Request {
    /// The content, decoded and verified.
    pub fn decode(&self) -> std::result::Result<Content, ServiceError> {
        Content::decode(self.endpoint.registry(), &self.content)
    }
}

/// The life cycle of a process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessState {
    /// Created; declaring queues.
    Init,
    /// Queues declared; not yet consuming.
    Ready,
    /// Consuming and serving.
    Active,
    /// Lost its channel (the reason); waits for the broker to declare its queues again.
    Reconnecting(String),
    /// Stopped after finishing what was in flight.
    Terminated,
    /// Failed for good: the reason.
    Error(String),
}

/// The state of a container's broker connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerStatus {
    /// Connected.
    Connected,
    /// The connection was lost (the reason); reconnecting.
    Reconnecting(String),
    /// Gave up: the broker could not be reached again within the retry time, or it refused
    /// the container's queues for good.
    Failed(String),
    /// Closed by [`Container::terminate`].
    Closed,
}

/// Container settings.
#[derive(Debug, Clone)]
pub struct ContainerConfig {
    /// The broker, e.g. `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub broker_url: String,
    /// The system name that scopes service queues; the container id when `None`.
    pub sysname: Option<String>,
    /// The types messages may carry.
    pub registry: Registry,
    /// The largest message body accepted.
    pub max_message: usize,
    /// Requests a process works on at once.
    pub prefetch: u16,
    /// Declare worker queues durable (they and their persistent requests survive a broker
    /// restart); ION's are not.
    pub durable_queues: bool,
    /// How long to try reconnecting after the broker was lost before giving up
    /// ([`BrokerStatus::Failed`]); `None`: forever.
    pub broker_retry: Option<Duration>,
}

impl ContainerConfig {
    /// Defaults for a broker URL and system name.
    pub fn new(broker_url: impl Into<String>, sysname: Option<String>) -> ContainerConfig {
        ContainerConfig {
            broker_url: broker_url.into(),
            sysname,
            registry: Registry::builtin(),
            max_message: DEFAULT_MAX_MESSAGE,
            prefetch: DEFAULT_PREFETCH,
            durable_queues: false,
            broker_retry: Some(DEFAULT_BROKER_RETRY),
        }
    }
}

/// The supervisor's view of the connection, shared with every process.
#[derive(Debug, Clone)]
struct Link {
    status: BrokerStatus,
    /// Counts connections: a process attached to an older one must attach again.
    generation: u64,
    conn: Option<Arc<Connection>>,
}

#[derive(Debug)]
struct Shared {
    id: String,
    sysname: String,
    config: ContainerConfig,
    link: watch::Sender<Link>,
    stop: watch::Sender<bool>,
}

impl Shared {
    /// Gives up: every process stops, the container reports [`BrokerStatus::Failed`].
    fn fail(&self, reason: String) {
        tracing::error!(container = %self.id, reason, "giving up on the broker");
        self.link.send_modify(|l| {
            if l.status != BrokerStatus::Closed {
                l.status = BrokerStatus::Failed(reason);
                l.conn = None;
            }
        });
    }
}

/// A capability container: one supervised broker connection and the processes it spawned.
#[derive(Debug)]
pub struct Container {
    shared: Arc<Shared>,
    counter: AtomicU64,
    processes: Mutex<Vec<Process>>,
    supervisor: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Container {
    /// Connects to the broker (once: a broker that cannot be reached now is an error) and
    /// starts the supervisor that reconnects when the connection is lost later.
    pub async fn start(config: ContainerConfig) -> Result<Container> {
        let id = format!("dsf-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let conn = connect(&config, &id)
            .await
            .map_err(|e| Error::Broker(format!("could not connect to {}: {e}", redact(&config.broker_url))))?;
        let sysname = config.sysname.clone().unwrap_or_else(|| id.clone());
        let (link, _) =
            watch::channel(Link { status: BrokerStatus::Connected, generation: 1, conn: Some(Arc::new(conn)) });
        let (stop, _) = watch::channel(false);
        let shared = Arc::new(Shared { id, sysname, config, link, stop });
        let supervisor = tokio::spawn(supervise(shared.clone()));
        Ok(Container {
            shared,
            counter: AtomicU64::new(0),
            processes: Mutex::new(Vec::new()),
            supervisor: Mutex::new(Some(supervisor)),
        })
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// The system name that scopes service queues.
    pub fn sysname(&self) -> &str {
        &self.shared.sysname
    }

    /// The state of the broker connection now.
    pub fn broker_status(&self) -> BrokerStatus {
        self.shared.link.borrow().status.clone()
    }

    /// A watch on the broker connection's state.
    pub fn broker_watch(&self) -> BrokerWatch {
        BrokerWatch(self.shared.link.subscribe())
    }

    /// Connected, and every process spawned is active.
    pub fn ready(&self) -> bool {
        self.broker_status() == BrokerStatus::Connected
            && self.processes.lock().expect("not poisoned").iter().all(|p| p.state() == ProcessState::Active)
    }

    /// The processes spawned and not terminated.
    pub fn processes(&self) -> Vec<Process> {
        self.processes.lock().expect("not poisoned").clone()
    }

    /// Spawns a process. With `service`, it also consumes the service's worker queue
    /// `<sysname>.<service>`, shared with every other instance of the service. The process is
    /// active when this returns; after a lost connection it declares its queues again and is
    /// active again when the supervisor has reconnected.
    pub async fn spawn(&self, name: &str, service: Option<&str>, handler: Arc<dyn Handler>) -> Result<Process> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("{}.{n}", self.shared.id);
        let endpoint = Endpoint(Arc::new(Inner {
            id: id.clone(),
            name: name.to_owned(),
            sysname: self.shared.sysname.clone(),
            channel: Mutex::new(None),
            registry: self.shared.config.registry.clone(),
            pending: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            max_message: self.shared.config.max_message,
            bytes_sent: AtomicU64::new(0),
        }));
        let (state, _) = watch::channel(ProcessState::Init);
        let (stop, _) = watch::channel(false);
        let process = Process(Arc::new(ProcessInner {
            endpoint,
            name: name.to_owned(),
            worker: service.map(|s| format!("{}.{s}", self.shared.sysname)),
            state,
            stop,
            tags: Mutex::new(Vec::new()),
            tracker: TaskTracker::new(),
            run: Mutex::new(None),
        }));
        let (first_tx, first_rx) = oneshot::channel();
        let run = tokio::spawn(run(self.shared.clone(), process.0.clone(), handler, first_tx));
        match first_rx.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = run.await;
                return Err(e);
            }
            Err(_) => return Err(Error::Broker(format!("process {id} stopped before it was active"))),
        }
        *process.0.run.lock().expect("not poisoned") = Some(run);
        self.processes.lock().expect("not poisoned").push(process.clone());
        Ok(process)
    }

    /// Terminates every process (each finishes what it has in flight), then closes the
    /// connection.
    pub async fn terminate(&self) {
        let processes = std::mem::take(&mut *self.processes.lock().expect("not poisoned"));
        for p in processes {
            p.terminate().await;
        }
        self.shared.stop.send_replace(true);
        let supervisor = self.supervisor.lock().expect("not poisoned").take();
        if let Some(s) = supervisor {
            let _ = s.await;
        }
        let mut conn = None;
        self.shared.link.send_modify(|l| {
            conn = l.conn.take();
            l.status = BrokerStatus::Closed;
        });
        if let Some(conn) = conn
            && conn.status().connected()
            && let Err(e) = conn.close(200, "bye".into()).await
        {
            tracing::debug!(error = %e, "closing the broker connection");
        }
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // The supervisor ends with the container, and the connection closes: processes that
        // were not terminated stop when they see it closed.
        self.shared.stop.send_replace(true);
        self.shared.link.send_modify(|l| {
            l.status = BrokerStatus::Closed;
            l.conn = None;
        });
    }
}

/// A watch on a container's broker connection.
#[derive(Debug, Clone)]
pub struct BrokerWatch(watch::Receiver<Link>);

impl BrokerWatch {
    /// The state now.
    pub fn status(&self) -> BrokerStatus {
        self.0.borrow().status.clone()
    }

    /// Waits for the next change of state and returns the new state; `Closed` when the
    /// container is gone.
    pub async fn changed(&mut self) -> BrokerStatus {
        match self.0.changed().await {
            Ok(()) => self.0.borrow_and_update().status.clone(),
            Err(_) => BrokerStatus::Closed,
        }
    }
}

async fn connect(config: &ContainerConfig, id: &str) -> std::result::Result<Connection, String> {
    let props = ConnectionProperties::default().with_connection_name(id.into());
    match tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect(&config.broker_url, props)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} s", CONNECT_TIMEOUT.as_secs())),
    }
}

/// The pause before reconnection attempt `attempt` (from 0): [`BACKOFF_FIRST`] doubled per
/// attempt, at most [`BACKOFF_MAX`], then a random half to all of it (jitter, so that many
/// containers do not reconnect in step).
pub fn backoff(attempt: u32) -> Duration {
    let full = BACKOFF_FIRST.saturating_mul(1u32 << attempt.min(16)).min(BACKOFF_MAX);
    let random = (uuid::Uuid::new_v4().as_u128() as u64) as f64 / u64::MAX as f64;
    full.mul_f64(0.5 + 0.5 * random)
}

/// Resolves when the connection is lost, with the reason.
async fn lost(conn: &Connection) -> String {
    let mut events = Box::pin(conn.events_listener());
    let mut tick = tokio::time::interval(WATCH_PERIOD);
    loop {
        tokio::select! {
            event = events.next() => match event {
                Some(lapin::Event::Error(e)) => return e.to_string(),
                Some(_) => {}
                None => return "the connection closed".into(),
            },
            _ = tick.tick() => {
                if !conn.status().connected() {
                    return "the connection is no longer open".into();
                }
            }
        }
    }
}

/// The supervisor: watches the connection and replaces it when it is lost.
async fn supervise(shared: Arc<Shared>) {
    let mut stop = shared.stop.subscribe();
    let mut link = shared.link.subscribe();
    let url = redact(&shared.config.broker_url);
    loop {
        let (conn, generation) = {
            let l = shared.link.borrow();
            match (&l.status, &l.conn) {
                (BrokerStatus::Connected, Some(c)) => (c.clone(), l.generation),
                _ => return,
            }
        };
        let why = tokio::select! {
            why = lost(&conn) => why,
            _ = stop.wait_for(|s| *s) => return,
            // A process gave up (a queue the broker refuses): the connection goes.
            _ = link.wait_for(|l| l.status != BrokerStatus::Connected) => return,
        };
        drop(conn);
        tracing::warn!(container = %shared.id, broker = %url, error = %why, "lost the broker connection: reconnecting");
        shared.link.send_modify(|l| {
            l.status = BrokerStatus::Reconnecting(why.clone());
            l.conn = None;
        });
        let started = Instant::now();
        let mut attempt = 0u32;
        let conn = loop {
            tokio::select! {
                _ = tokio::time::sleep(backoff(attempt)) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            attempt += 1;
            match connect(&shared.config, &shared.id).await {
                Ok(c) => break c,
                Err(e) => {
                    tracing::info!(container = %shared.id, broker = %url, attempt, error = %e, "broker not reachable yet");
                    if let Some(limit) = shared.config.broker_retry
                        && started.elapsed() >= limit
                    {
                        shared.fail(format!(
                            "could not reconnect to {url} within {} s (broker_retry_secs): {e}",
                            limit.as_secs()
                        ));
                        return;
                    }
                }
            }
        };
        tracing::info!(container = %shared.id, broker = %url, attempts = attempt, "reconnected to the broker");
        shared.link.send_modify(|l| {
            if matches!(l.status, BrokerStatus::Reconnecting(_)) {
                *l = Link { status: BrokerStatus::Connected, generation: generation + 1, conn: Some(Arc::new(conn)) };
            }
        });
    }
}

/// Waits until the link is up; the connection and its generation, or why it never will be.
async fn wait_up(link: &mut watch::Receiver<Link>) -> std::result::Result<(Arc<Connection>, u64), String> {
    loop {
        {
            let l = link.borrow_and_update();
            match (&l.status, &l.conn) {
                (BrokerStatus::Connected, Some(c)) => return Ok((c.clone(), l.generation)),
                (BrokerStatus::Failed(why), _) => return Err(why.clone()),
                (BrokerStatus::Closed, _) => return Err("the container closed its broker connection".into()),
                _ => {}
            }
        }
        if link.changed().await.is_err() {
            return Err("the container is gone".into());
        }
    }
}

/// A process's life: attach to the connection, serve until the channel is lost, attach again
/// once the supervisor has a connection, until stopped or the container gives up.
async fn run(shared: Arc<Shared>, p: Arc<ProcessInner>, handler: Arc<dyn Handler>, first: oneshot::Sender<Result<()>>) {
    let mut first = Some(first);
    let mut link = shared.link.subscribe();
    let mut stop = p.stop.subscribe();
    let mut failures = 0u32;
    let id = p.endpoint.id().to_owned();
    loop {
        let up = tokio::select! {
            up = wait_up(&mut link) => up,
            _ = stop.wait_for(|s| *s) => return,
        };
        let (conn, generation) = match up {
            Ok(up) => up,
            Err(why) => {
                p.state.send_replace(ProcessState::Error(why.clone()));
                if let Some(tx) = first.take() {
                    let _ = tx.send(Err(Error::Broker(why)));
                }
                return;
            }
        };
        let attached = tokio::select! {
            a = attach(&shared, &p, &conn, generation) => a,
            _ = stop.wait_for(|s| *s) => return,
        };
        drop(conn);
        let deliveries = match attached {
            Ok(d) => d,
            Err((e, fatal)) => {
                if let Some(tx) = first.take() {
                    p.state.send_replace(ProcessState::Error(e.to_string()));
                    let _ = tx.send(Err(e));
                    return;
                }
                if fatal {
                    p.state.send_replace(ProcessState::Error(e.to_string()));
                    shared.fail(format!("process {id}: {e}"));
                    return;
                }
                tracing::warn!(process = %id, error = %e, "could not declare the queues again: retrying");
                p.state.send_replace(ProcessState::Reconnecting(e.to_string()));
                pause(&mut stop, failures).await;
                failures += 1;
                continue;
            }
        };
        failures = 0;
        p.state.send_replace(ProcessState::Active);
        match first.take() {
            Some(tx) => {
                tracing::info!(process = %id, name = %p.name, worker = p.worker.as_deref().unwrap_or("-"), "process active");
                let _ = tx.send(Ok(()));
            }
            None => tracing::info!(process = %id, name = %p.name, "process active again"),
        }
        let why = serve(&p.endpoint, &handler, deliveries, &p.tracker, generation, shared.link.subscribe()).await;
        if *stop.borrow() {
            // Terminating: the consumers were cancelled; terminate finishes the rest.
            return;
        }
        if let Some(channel) = p.endpoint.detach(generation)
            && channel.status().connected()
        {
            // The broker cancelled the consumers but the channel lives: close it (its
            // unacknowledged requests go back to their queues) before opening another.
            let _ = channel.close(200, "reattaching".into()).await;
        }
        tracing::warn!(process = %id, error = %why, "lost the channel: waiting for the broker");
        p.state.send_replace(ProcessState::Reconnecting(why));
        pause(&mut stop, failures).await;
        failures += 1;
    }
}

async fn pause(stop: &mut watch::Receiver<bool>, failures: u32) {
    tokio::select! {
        _ = tokio::time::sleep(backoff(failures)) => {}
        _ = stop.wait_for(|s| *s) => {}
    }
}

type Deliveries = futures::stream::BoxStream<'static, lapin::Result<lapin::message::Delivery>>;

/// Opens a channel, declares the exchange and the process's queues, binds, and consumes.
/// The error says whether retrying can help.
async fn attach(
    shared: &Shared,
    p: &ProcessInner,
    conn: &Connection,
    generation: u64,
) -> std::result::Result<Deliveries, (Error, bool)> {
    let transient = |e: lapin::Error| {
        let fatal = amqp_code(&e).is_some_and(|c| FATAL_CODES.contains(&c));
        (Error::from(e), fatal)
    };
    let channel = conn.create_channel().await.map_err(transient)?;
    let result = declare_and_consume(shared, p, &channel).await;
    match result {
        Ok(deliveries) => {
            p.endpoint.attach(channel, generation);
            p.state.send_replace(ProcessState::Ready);
            Ok(deliveries)
        }
        Err(e) => {
            if channel.status().connected() {
                let _ = channel.close(200, "declaration failed".into()).await;
            }
            Err(e)
        }
    }
}

async fn declare_and_consume(
    shared: &Shared,
    p: &ProcessInner,
    channel: &Channel,
) -> std::result::Result<Deliveries, (Error, bool)> {
    let fail = |what: String| {
        move |e: lapin::Error| {
            let code = amqp_code(&e);
            let fatal = code.is_some_and(|c| FATAL_CODES.contains(&c));
            let message = if code == Some(406) {
                format!(
                    "{what} exists on the broker with other settings than this container declares \
                     (PRECONDITION_FAILED: {e}); delete it (`rabbitmqctl delete_queue NAME`) or make \
                     durable_queues match the containers that declared it"
                )
            } else {
                format!("declaring {what}: {e}")
            };
            (Error::Broker(message), fatal)
        }
    };
    channel
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions { durable: false, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await
        .map_err(fail(format!("the exchange {EXCHANGE}")))?;
    channel.basic_qos(shared.config.prefetch, BasicQosOptions::default()).await.map_err(fail("the prefetch".into()))?;
    let id = p.endpoint.id();
    declare_and_bind(channel, id, QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() })
        .await
        .map_err(fail(format!("the process queue {id}")))?;
    if let Some(q) = &p.worker {
        // The worker queue outlives its consumers, so a request in flight when the last
        // instance dies is redelivered to the next one; durable, it also outlives the broker.
        let options = QueueDeclareOptions { durable: shared.config.durable_queues, ..Default::default() };
        declare_and_bind(channel, q, options).await.map_err(fail(format!("the worker queue {q}")))?;
    }
    let consume = |queue: String| async move {
        channel
            .basic_consume(queue.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await
            .map_err(fail(format!("consuming {queue}")))
    };
    let own = consume(id.to_owned()).await?;
    let mut tags = vec![own.tag().to_string()];
    let deliveries = if let Some(q) = &p.worker {
        let w = consume(q.clone()).await?;
        tags.push(w.tag().to_string());
        futures::stream::select(own, w).boxed()
    } else {
        own.boxed()
    };
    *p.tags.lock().expect("not poisoned") = tags;
    Ok(deliveries)
}

/// The AMQP reply code of a channel or connection error from the broker.
fn amqp_code(e: &lapin::Error) -> Option<u16> {
    match e.kind() {
        lapin::ErrorKind::ProtocolError(p) => Some(p.get_id()),
        _ => None,
    }
}

async fn declare_and_bind(channel: &Channel, queue: &str, options: QueueDeclareOptions) -> lapin::Result<()> {
    channel.queue_declare(queue.into(), options, FieldTable::default()).await?;
    channel
        .queue_bind(queue.into(), EXCHANGE.into(), queue.into(), QueueBindOptions::default(), FieldTable::default())
        .await
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            let user = creds.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..s + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// A spawned process.
#[derive(Debug, Clone)]
pub struct Process(Arc<ProcessInner>);

#[derive(Debug)]
struct ProcessInner {
    endpoint: Endpoint,
    name: String,
    worker: Option<String>,
    state: watch::Sender<ProcessState>,
    stop: watch::Sender<bool>,
    /// Consumer tags on the current channel.
    tags: Mutex<Vec<String>>,
    tracker: TaskTracker,
    run: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Process {
    /// The process's messaging endpoint (to make calls as this process).
    pub fn endpoint(&self) -> &Endpoint {
        &self.0.endpoint
    }

    /// The process id (its own queue).
    pub fn id(&self) -> &str {
        self.0.endpoint.id()
    }

    /// The worker queue it consumes, if it serves a service.
    pub fn worker_queue(&self) -> Option<&str> {
        self.0.worker.as_deref()
    }

    /// The current state.
    pub fn state(&self) -> ProcessState {
        self.0.state.borrow().clone()
    }

    /// A watch on the process's state.
    pub fn state_watch(&self) -> watch::Receiver<ProcessState> {
        self.0.state.subscribe()
    }

    /// Stops consuming, finishes every request in flight, then stops. Idempotent.
    pub async fn terminate(&self) {
        let Some(mut run) = self.0.run.lock().expect("not poisoned").take() else { return };
        self.0.stop.send_replace(true);
        let channel = self.0.endpoint.channel();
        if let Some(channel) = &channel {
            let tags = self.0.tags.lock().expect("not poisoned").clone();
            for tag in tags {
                if let Err(e) = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await {
                    tracing::debug!(error = %e, "cancelling a consumer");
                }
            }
        }
        // Deliveries already received are still served; then the stream ends.
        if tokio::time::timeout(Duration::from_secs(5), &mut run).await.is_err() {
            tracing::warn!(process = %self.id(), "the consumer did not stop within 5 s");
            run.abort();
        }
        self.0.tracker.close();
        self.0.tracker.wait().await;
        if let Some(channel) = self.0.endpoint.take_channel()
            && channel.status().connected()
        {
            let _ = channel.close(200, "terminated".into()).await;
        }
        if !matches!(*self.0.state.borrow(), ProcessState::Error(_)) {
            self.0.state.send_replace(ProcessState::Terminated);
        }
        tracing::info!(process = %self.id(), "process terminated");
    }
}

/// The consumer loop: replies go to their waiting calls, requests to the handler. Returns why
/// the deliveries ended (the consumers were cancelled, or the channel was lost).
async fn serve(
    endpoint: &Endpoint,
    handler: &Arc<dyn Handler>,
    mut deliveries: Deliveries,
    tracker: &TaskTracker,
    generation: u64,
    mut link: watch::Receiver<Link>,
) -> String {
    loop {
        // A channel whose connection the supervisor has replaced may never end its deliveries:
        // leave when the link is no longer this generation's, so the process attaches again.
        let next = tokio::select! {
            next = deliveries.next() => next,
            _ = link.wait_for(|l| l.generation != generation || l.status != BrokerStatus::Connected) => {
                return "the connection to the broker was lost".into();
            }
        };
        let Some(delivery) = next else { break };
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => return e.to_string(),
        };
        let msg = match Message::decode(&delivery.data) {
            Ok(m) => m,
            Err(e) => {
                // Without readable headers there is nobody to reply to: drop it.
                tracing::warn!(process = %endpoint.id(), error = %e, bytes = delivery.data.len(), "dropped a message");
                ack(&delivery).await;
                continue;
            }
        };
        if msg.headers.is_reply() {
            ack(&delivery).await;
            endpoint.deliver_reply(msg);
            continue;
        }
        let size = delivery.data.len();
        let endpoint = endpoint.clone();
        let handler = handler.clone();
        tracker.spawn(async move {
            let headers = msg.headers.clone();
            if delivery.redelivered {
                tracing::info!(process = %endpoint.id(), op = %headers.op, conv = %headers.conv_id, "a redelivered request");
            }
            let result = if size > endpoint.0.max_message {
                Err(ServiceError::bad_request(format!(
                    "message of {size} bytes exceeds this process's limit of {} bytes",
                    endpoint.0.max_message
                )))
            } else if msg.headers.encoding != ENCODING_GPB {
                Err(ServiceError::bad_request(format!(
                    "content encoding {:?} is not supported: send {ENCODING_GPB:?}",
                    msg.headers.encoding
                )))
            } else {
                let request = Request {
                    headers: msg.headers,
                    content: msg.content,
                    endpoint: endpoint.clone(),
                    redelivered: delivery.redelivered,
                };
                handler.handle(request).await
            };
            if let Err(e) = &result {
                tracing::info!(process = %endpoint.id(), op = %headers.op, error = %e, "request failed");
            }
            if !endpoint.is_attached(generation) {
                // Its ack died with the channel: the broker redelivers the request (if its
                // queue survived), and the redelivery answers.
                tracing::warn!(
                    process = %endpoint.id(), op = %headers.op, conv = %headers.conv_id,
                    "the channel of this request closed: its reply is dropped"
                );
                return;
            }
            if headers.protocol == "rpc"
                && let Err(e) = endpoint.reply(&headers, result).await
            {
                // Not acknowledged: the broker redelivers the request.
                tracing::error!(process = %endpoint.id(), error = %e, "could not publish a reply");
                return;
            }
            ack(&delivery).await;
        });
    }
    "the broker cancelled the consumers".into()
}

async fn ack(delivery: &lapin::message::Delivery) {
    if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
        tracing::warn!(error = %e, "ack failed");
    }
}

/// A process's messaging: publish, call (RPC) and reply.
#[derive(Debug, Clone)]
pub struct Endpoint(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    id: String,
    name: String,
    sysname: String,
    /// The channel of the current attachment and its connection's generation; `None` while
    /// the process waits for the broker.
    channel: Mutex<Option<(Channel, u64)>>,
    registry: Registry,
    pending: Mutex<HashMap<String, oneshot::Sender<Message>>>,
    counter: AtomicU64,
    max_message: usize,
    bytes_sent: AtomicU64,
}

impl Endpoint {
    /// Body bytes this endpoint has published so far (requests, replies, one-way messages).
    pub fn bytes_sent(&self) -> u64 {
        self.0.bytes_sent.load(Ordering::Relaxed)
    }

    /// The process id: the name of its own queue.
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The types content may carry.
    pub fn registry(&self) -> &Registry {
        &self.0.registry
    }

    /// A service name scoped by the system name (`<sysname>.<name>`), unless it already is.
    pub fn scoped(&self, name: &str) -> String {
        let prefix = format!("{}.", self.0.sysname);
        if name.starts_with(&prefix) { name.to_owned() } else { format!("{prefix}{name}") }
    }

    fn channel(&self) -> Option<Channel> {
        self.0.channel.lock().expect("not poisoned").as_ref().map(|(c, _)| c.clone())
    }

    fn take_channel(&self) -> Option<Channel> {
        self.0.channel.lock().expect("not poisoned").take().map(|(c, _)| c)
    }

    fn attach(&self, channel: Channel, generation: u64) {
        *self.0.channel.lock().expect("not poisoned") = Some((channel, generation));
    }

    fn is_attached(&self, generation: u64) -> bool {
        matches!(&*self.0.channel.lock().expect("not poisoned"), Some((c, g)) if *g == generation && c.status().connected())
    }

    /// The channel of `generation` is lost: forgets it (returned) and fails calls waiting for
    /// replies with [`Error::ConnectionLost`].
    fn detach(&self, generation: u64) -> Option<Channel> {
        let channel = {
            let mut channel = self.0.channel.lock().expect("not poisoned");
            if matches!(&*channel, Some((_, g)) if *g == generation) { channel.take().map(|(c, _)| c) } else { None }
        };
        // Dropping the senders wakes every waiting call.
        self.0.pending.lock().expect("not poisoned").clear();
        channel
    }

    /// Calls `op` at `target` (a routing key: a scoped service name or a process id) and
    /// waits for the reply, at most `timeout` (default 15 s). A failure reply becomes
    /// [`Error::Application`] (4xx), [`Error::Container`] (5xx) or [`Error::Received`]; a
    /// call made while the broker is lost fails with [`Error::Unavailable`], one whose
    /// connection drops before the reply with [`Error::ConnectionLost`].
    pub async fn rpc(&self, target: &str, op: &str, content: Bytes, timeout: Option<Duration>) -> Result<Content> {
        let after = timeout.unwrap_or(DEFAULT_TIMEOUT);
        let headers = self.outgoing(target, op, "rpc", "request");
        let conv_id = headers.conv_id.clone();
        let (tx, rx) = oneshot::channel();
        self.0.pending.lock().expect("not poisoned").insert(conv_id.clone(), tx);
        if let Err(e) = self.publish(target, &Message { headers, content }).await {
            self.0.pending.lock().expect("not poisoned").remove(&conv_id);
            return Err(e);
        }
        let reply = match tokio::time::timeout(after, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => return Err(Error::ConnectionLost { op: op.to_owned(), target: target.to_owned() }),
            Err(_) => {
                self.0.pending.lock().expect("not poisoned").remove(&conv_id);
                return Err(Error::Timeout { op: op.to_owned(), target: target.to_owned(), after });
            }
        };
        let content = Content::decode(&self.0.registry, &reply.content).map_err(|e| {
            Error::Protocol(format!("the reply to {op} from {target} is not DSF content: {}", e.message))
        })?;
        if reply.headers.status == "ERROR" || reply.headers.performative == "failure" || content.code() as i32 >= 400 {
            let mut code = content.code();
            if code == ResponseCodes::Ok {
                code = ResponseCodes::InternalServerError;
            }
            let body = content.msg.response_body.clone().unwrap_or_default();
            return Err(Error::from_reply(op, target, ServiceError::new(code, body)));
        }
        Ok(content)
    }

    /// Sends a one-way message (`protocol` "none").
    pub async fn send(&self, target: &str, op: &str, content: Bytes) -> Result<()> {
        let headers = self.outgoing(target, op, "none", "inform");
        self.publish(target, &Message { headers, content }).await
    }

    /// The headers of a new conversation from this process (`conv-seq` 1).
    fn outgoing(&self, target: &str, op: &str, protocol: &str, performative: &str) -> Headers {
        Headers {
            sender: self.0.id.clone(),
            sender_name: self.0.name.clone(),
            receiver: target.to_owned(),
            reply_to: self.0.id.clone(),
            conv_id: format!("{}#{}", self.0.id, self.0.counter.fetch_add(1, Ordering::Relaxed) + 1),
            protocol: protocol.into(),
            performative: performative.into(),
            op: op.to_owned(),
            ts: timestamp(),
            ..Headers::default()
        }
    }

    async fn reply(&self, request: &Headers, result: std::result::Result<Bytes, ServiceError>) -> Result<()> {
        let (performative, status, content) = match result {
            Ok(content) => ("inform_result", "OK", content),
            Err(e) => ("failure", "ERROR", ContentBuilder::empty(e.code, Some(e.message))),
        };
        let headers = Headers {
            sender: self.0.id.clone(),
            sender_name: self.0.name.clone(),
            receiver: request.reply_to.clone(),
            reply_to: self.0.id.clone(),
            conv_id: request.conv_id.clone(),
            conv_seq: request.conv_seq + 1,
            protocol: "rpc".into(),
            status: status.into(),
            performative: performative.into(),
            op: "result".into(),
            ts: timestamp(),
            user_id: request.user_id.clone(),
            ..Headers::default()
        };
        self.publish(&request.reply_to, &Message { headers, content }).await
    }

    /// Publishes a message body to the exchange under `routing_key`. Requests are published
    /// persistent (delivery mode 2: they survive a broker restart in a durable queue),
    /// replies transient.
    pub async fn publish(&self, routing_key: &str, msg: &Message) -> Result<()> {
        self.publish_with(routing_key, &msg.encode(), !msg.headers.is_reply()).await
    }

    /// Publishes raw body bytes, persistent (for tests of bad input, and benchmarks).
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8]) -> Result<()> {
        self.publish_with(routing_key, body, true).await
    }

    async fn publish_with(&self, routing_key: &str, body: &[u8], persistent: bool) -> Result<()> {
        let Some(channel) = self.channel() else {
            return Err(Error::Unavailable(format!(
                "process {} has no broker connection (reconnecting): nothing was sent to {routing_key}",
                self.0.id
            )));
        };
        let props = BasicProperties::default()
            .with_content_type("application/msgpack".into())
            .with_content_encoding("binary".into())
            .with_delivery_mode(if persistent { 2 } else { 1 });
        channel
            .basic_publish(EXCHANGE.into(), routing_key.into(), BasicPublishOptions::default(), body, props)
            .await
            .map_err(|e| Error::Unavailable(format!("publishing to {routing_key}: {e}")))?;
        self.0.bytes_sent.fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn deliver_reply(&self, msg: Message) {
        let waiting = self.0.pending.lock().expect("not poisoned").remove(&msg.headers.conv_id);
        match waiting {
            Some(tx) => {
                let _ = tx.send(msg);
            }
            None => tracing::info!(process = %self.0.id, conv = %msg.headers.conv_id, "late or unknown reply dropped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        for attempt in 0..40 {
            let full = BACKOFF_FIRST.saturating_mul(1 << attempt.min(16)).min(BACKOFF_MAX);
            for _ in 0..20 {
                let d = backoff(attempt);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?} outside {:?}..={full:?}", full / 2);
            }
        }
        assert_eq!(BACKOFF_FIRST.saturating_mul(1 << 16).min(BACKOFF_MAX), BACKOFF_MAX);
    }

    #[test]
    fn redact_hides_the_password() {
        assert_eq!(redact("amqp://guest:secret@host:5672/%2f"), "amqp://guest:***@host:5672/%2f");
        assert_eq!(redact("amqp://host:5672"), "amqp://host:5672");
    }
}
