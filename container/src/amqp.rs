//! Messaging on RabbitMQ with ION's conventions (spec §1.6).
//!
//! Everything is published to the topic exchange [`EXCHANGE`] with the receiver's name as
//! routing key. A service's instances share a worker queue `<sysname>.<service>` (round robin);
//! every process also has an exclusive queue named by its id, `<container-id>.<n>`, where its
//! RPC replies and requests addressed to it arrive. Requests are acknowledged after their
//! handler finished (its writes are durable) and the reply was published, so a process that
//! dies mid-request leaves the request to be redelivered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

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
    /// Stopped after finishing what was in flight.
    Terminated,
    /// Failed: the reason.
    Error(String),
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
        }
    }
}

/// A capability container: one broker connection and the processes it spawned.
#[derive(Debug)]
pub struct Container {
    id: String,
    sysname: String,
    config: ContainerConfig,
    conn: Connection,
    counter: AtomicU64,
    processes: Mutex<Vec<Process>>,
}

impl Container {
    /// Connects to the broker.
    pub async fn start(config: ContainerConfig) -> Result<Container> {
        let conn = Connection::connect(&config.broker_url, ConnectionProperties::default())
            .await
            .map_err(|e| Error::Broker(format!("could not connect to {}: {e}", redact(&config.broker_url))))?;
        let id = format!("dsf-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let sysname = config.sysname.clone().unwrap_or_else(|| id.clone());
        Ok(Container { id, sysname, config, conn, counter: AtomicU64::new(0), processes: Mutex::new(Vec::new()) })
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The system name that scopes service queues.
    pub fn sysname(&self) -> &str {
        &self.sysname
    }

    /// Spawns a process. With `service`, it also consumes the service's worker queue
    /// `<sysname>.<service>`, shared with every other instance of the service. The process is
    /// active when this returns.
    pub async fn spawn(&self, name: &str, service: Option<&str>, handler: Arc<dyn Handler>) -> Result<Process> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("{}.{n}", self.id);
        let (state_tx, state_rx) = watch::channel(ProcessState::Init);
        let channel = self.conn.create_channel().await?;
        channel
            .exchange_declare(
                EXCHANGE.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions { durable: false, auto_delete: true, ..Default::default() },
                FieldTable::default(),
            )
            .await?;
        channel.basic_qos(self.config.prefetch, BasicQosOptions::default()).await?;
        declare_and_bind(
            &channel,
            &id,
            QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() },
        )
        .await?;
        let worker = service.map(|s| format!("{}.{s}", self.sysname));
        if let Some(q) = &worker {
            // The worker queue outlives its consumers, so a request in flight when the last
            // instance dies is redelivered to the next one.
            declare_and_bind(&channel, q, QueueDeclareOptions::default()).await?;
        }
        let endpoint = Endpoint(Arc::new(Inner {
            id: id.clone(),
            name: name.to_owned(),
            sysname: self.sysname.clone(),
            channel: channel.clone(),
            registry: self.config.registry.clone(),
            pending: Mutex::new(HashMap::new()),
            counter: AtomicU64::new(0),
            max_message: self.config.max_message,
            bytes_sent: AtomicU64::new(0),
        }));
        state_tx.send_replace(ProcessState::Ready);
        let own = channel
            .basic_consume(id.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
            .await?;
        let mut tags = vec![own.tag().to_string()];
        let deliveries = if let Some(q) = &worker {
            let w = channel
                .basic_consume(q.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
                .await?;
            tags.push(w.tag().to_string());
            futures::stream::select(own, w).boxed()
        } else {
            own.boxed()
        };
        let tracker = TaskTracker::new();
        let serve = tokio::spawn(serve(endpoint.clone(), handler, deliveries, tracker.clone(), state_tx.clone()));
        state_tx.send_replace(ProcessState::Active);
        tracing::info!(process = %id, name, worker = worker.as_deref().unwrap_or("-"), "process active");
        let process = Process(Arc::new(ProcessInner {
            endpoint,
            worker,
            state: state_rx,
            state_tx,
            tags,
            tracker,
            serve: Mutex::new(Some(serve)),
        }));
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
        if let Err(e) = self.conn.close(200, "bye".into()).await {
            tracing::debug!(error = %e, "closing the broker connection");
        }
    }
}

async fn declare_and_bind(channel: &Channel, queue: &str, options: QueueDeclareOptions) -> Result<()> {
    channel.queue_declare(queue.into(), options, FieldTable::default()).await?;
    channel
        .queue_bind(queue.into(), EXCHANGE.into(), queue.into(), QueueBindOptions::default(), FieldTable::default())
        .await?;
    Ok(())
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
    worker: Option<String>,
    state: watch::Receiver<ProcessState>,
    state_tx: watch::Sender<ProcessState>,
    tags: Vec<String>,
    tracker: TaskTracker,
    serve: Mutex<Option<tokio::task::JoinHandle<()>>>,
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

    /// Stops consuming, finishes every request in flight, then stops. Idempotent.
    pub async fn terminate(&self) {
        let Some(serve) = self.0.serve.lock().expect("not poisoned").take() else { return };
        let channel = &self.0.endpoint.0.channel;
        for tag in &self.0.tags {
            if let Err(e) = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await {
                tracing::debug!(error = %e, "cancelling a consumer");
            }
        }
        // Deliveries already received are still served; then the stream ends.
        if tokio::time::timeout(Duration::from_secs(5), serve).await.is_err() {
            tracing::warn!(process = %self.id(), "the consumer did not stop within 5 s");
        }
        self.0.tracker.close();
        self.0.tracker.wait().await;
        let _ = channel.close(200, "terminated".into()).await;
        if !matches!(*self.0.state.borrow(), ProcessState::Error(_)) {
            self.0.state_tx.send_replace(ProcessState::Terminated);
        }
        tracing::info!(process = %self.id(), "process terminated");
    }
}

/// The consumer loop: replies go to their waiting calls, requests to the handler.
async fn serve(
    endpoint: Endpoint,
    handler: Arc<dyn Handler>,
    mut deliveries: futures::stream::BoxStream<'static, lapin::Result<lapin::message::Delivery>>,
    tracker: TaskTracker,
    state: watch::Sender<ProcessState>,
) {
    while let Some(delivery) = deliveries.next().await {
        let delivery = match delivery {
            Ok(d) => d,
            Err(e) => {
                tracing::error!(process = %endpoint.id(), error = %e, "consumer failed");
                state.send_replace(ProcessState::Error(e.to_string()));
                return;
            }
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
                handler.handle(Request { headers: msg.headers, content: msg.content, endpoint: endpoint.clone() }).await
            };
            if let Err(e) = &result {
                tracing::info!(process = %endpoint.id(), op = %headers.op, error = %e, "request failed");
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
    channel: Channel,
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

    /// Calls `op` at `target` (a routing key: a scoped service name or a process id) and
    /// waits for the reply, at most `timeout` (default 15 s). A failure reply becomes
    /// [`Error::Application`] (4xx), [`Error::Container`] (5xx) or [`Error::Received`].
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
            Ok(Err(_)) => return Err(Error::Broker(format!("{op} to {target}: the process stopped waiting"))),
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

    /// Publishes a message body to the exchange under `routing_key`.
    pub async fn publish(&self, routing_key: &str, msg: &Message) -> Result<()> {
        self.publish_raw(routing_key, &msg.encode()).await
    }

    /// Publishes raw body bytes (for tests of bad input, and benchmarks).
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8]) -> Result<()> {
        let props = BasicProperties::default()
            .with_content_type("application/msgpack".into())
            .with_content_encoding("binary".into())
            .with_delivery_mode(1);
        self.0
            .channel
            .basic_publish(EXCHANGE.into(), routing_key.into(), BasicPublishOptions::default(), body, props)
            .await?;
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
