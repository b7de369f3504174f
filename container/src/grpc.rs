//! The datastore's gRPC front (`proto/grpc/dsf/datastore.proto`) and its client.
//!
//! [`serve`] runs [`GrpcDatastore`], which translates the service's messages to the operations
//! of a [`Datastore`]; [`GrpcClient`] is the other side: push, pull, clone, remote checkout and
//! the other datastore operations, for repositories held in memory.
//!
//! # Elements on the wire
//!
//! Elements travel as encoded `StructureElement` messages in [`ElementBatch`]es of at most
//! [`BATCH_ELEMENTS`] elements and about [`BATCH_BYTES`] bytes (an element larger than that
//! travels alone). Both sides decode every element they receive with [`Element::decode`], which
//! verifies its key over the bytes received. Messages may be up to [`MAX_MESSAGE_BYTES`].
//!
//! # Deltas
//!
//! A push first asks (`Negotiate`) which of the repository's commits the datastore holds. It then
//! sends the commits the datastore lacks and the elements reachable from their roots that are not
//! reachable from the roots of the commits it holds: the walk does not descend into a subgraph
//! the datastore is known to hold (content addressing makes equal subgraphs equal keys). A
//! datastore that holds a commit holds everything its root reaches, because a push is only
//! accepted complete. No state is kept between calls: the negotiation is the knowledge.
//!
//! A pull names the commits whose content the client holds completely. The datastore sends the
//! other commits and, if asked, the head content not reachable from those commits' roots. To
//! know what those roots reach, the server walks the client's known graphs in the store (by the
//! stored child keys, without decoding or verifying the elements, unless types are excluded).
//! That walk costs reads in proportion to the graphs the client holds, not to the delta; in
//! exchange, the client receives exactly the elements it lacks and sends only commit keys,
//! however large its graphs are. Commits whose content the client lacks are not named, so they
//! come again (commits are small) and their content is not taken as known.
//!
//! # Limits
//!
//! The server reads a pull's and a checkout's content from the store as the stream is sent
//! (one batch at a time); `clone_into` and `pull_into` write what arrives into a store batch by
//! batch. A push of up to [`STAGE_BYTES`] of objects is held whole; a larger one has its
//! objects stored as they arrive. An element cannot exceed [`MAX_MESSAGE_BYTES`].

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use dsf::proto::dsf::store::HeadsRecord;
use dsf::proto::net::ooici::cdm::syntactic::Bounds;
use dsf::proto::net::ooici::core::link::IdRef;
use dsf::store::Store;
use dsf::store::persist::StoredRepository;
use dsf::sync::Heads;
use dsf::{Branch, Checkout, Commit, Element, HashAlgorithm, Key, Registry, Repository, TypeId};
use dsf_proto::grpc::datastore_client::DatastoreClient;
use dsf_proto::grpc::datastore_server::{self, DatastoreServer};
use dsf_proto::grpc::{
    self as pb, CheckoutRequest, DataChunk, ElementBatch, ExtractDataRequest, FetchBlobsRequest, GetLcsReply,
    GetLcsRequest, GetObjectPart, GetObjectRequest, KeyLcs, NegotiateReply, NegotiateRequest, PullPart, PullRequest,
    PushPart, PushReply, PushStart, PutBlobsReply, TypeRef, get_object_part, pull_part, push_part,
};
use futures::{Stream, StreamExt as _};
use prost::Message as _;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

pub use crate::client::RemoteObject;
use crate::client::{ElementSink as _, HAVE_LIMIT, StoreSink, Transferred, exclusions, recent_commits};
use crate::datastore::service::{key_of, keys_of};
use crate::datastore::{Datastore, Received};
use crate::error::{Error, Result, ServiceError};

/// The largest gRPC message the server and the client accept or send (64 MiB).
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// A push with more bytes of objects than this (8 MiB) has them stored as they arrive rather
/// than held whole.
pub const STAGE_BYTES: usize = 8 << 20;

/// The most elements in one [`ElementBatch`].
pub const BATCH_ELEMENTS: usize = 1000;

/// A batch is closed before an element that would take it past this many bytes (1 MiB).
pub const BATCH_BYTES: usize = 1 << 20;

/// A server-streaming response.
type Parts<T> = Pin<Box<dyn Stream<Item = std::result::Result<T, Status>> + Send + 'static>>;

/// The gRPC service name of the datastore (`package.Service`), as the health service names it.
pub const SERVICE_NAME: &str = "dsf.datastore.Datastore";

/// Serves the datastore over gRPC on `listener` until `shutdown` completes; calls in progress
/// then finish before this returns.
pub async fn serve<S: Store + 'static>(
    ds: Arc<Datastore<S>>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    serve_with(ds, listener, shutdown, None).await
}

/// [`serve`], with the standard health service (`grpc.health.v1.Health`) beside the datastore,
/// reporting what `health` is told.
pub async fn serve_with_health<S: Store + 'static>(
    ds: Arc<Datastore<S>>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    health: tonic_health::server::HealthReporter,
) -> Result<()> {
    serve_with(ds, listener, shutdown, Some(health)).await
}

async fn serve_with<S: Store + 'static>(
    ds: Arc<Datastore<S>>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    health: Option<tonic_health::server::HealthReporter>,
) -> Result<()> {
    let health = health.map(|h| {
        tonic_health::pb::health_server::HealthServer::new(tonic_health::server::HealthService::from_health_reporter(h))
    });
    let service = DatastoreServer::new(GrpcDatastore::new(ds))
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener).map(|conn| {
        // Small replies must not wait for Nagle's algorithm.
        if let Ok(stream) = &conn {
            let _ = stream.set_nodelay(true);
        }
        conn
    });
    tonic::transport::Server::builder()
        .add_service(service)
        .add_optional_service(health)
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
        .map_err(|e| Error::Transport(format!("the gRPC server failed: {}", error_chain(&e))))
}

// ----- server --------------------------------------------------------------------------------

/// The gRPC service of a datastore: every rpc of `dsf.datastore.Datastore` on a [`Datastore`].
#[derive(Debug)]
pub struct GrpcDatastore<S> {
    ds: Arc<Datastore<S>>,
}

impl<S: Store + 'static> GrpcDatastore<S> {
    /// The service of `ds`.
    pub fn new(ds: Arc<Datastore<S>>) -> GrpcDatastore<S> {
        GrpcDatastore { ds }
    }

    /// The datastore it serves.
    pub fn datastore(&self) -> &Datastore<S> {
        &self.ds
    }

    /// The roots of those of `commits` the store holds as commits.
    async fn roots_of(&self, commits: &[Key]) -> std::result::Result<Vec<Key>, ServiceError> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        let values = self.ds.store().batch_get(commits.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
        let mut roots = Vec::new();
        for (key, value) in commits.iter().zip(values) {
            let Some(value) = value else { continue };
            let e = Element::decode(self.ds.registry(), &value)?;
            if e.key() != *key {
                return Err(ServiceError::internal(format!("stored row {key} is corrupt")));
            }
            if e.ty() != TypeId::COMMIT {
                continue;
            }
            roots.extend(Commit::from_element(&e)?.root.map(|r| r.key));
        }
        Ok(roots)
    }

    /// Every key reachable in the store from `roots` (roots included), not following links to
    /// `excluded` types. Elements the store lacks end the walk there. Without exclusions the walk
    /// reads only the stored child keys.
    async fn known_graph(&self, roots: &[Key], excluded: &[TypeId]) -> std::result::Result<HashSet<Key>, ServiceError> {
        let mut seen: HashSet<Key> = HashSet::new();
        let mut frontier: Vec<Key> = roots.iter().copied().filter(|k| seen.insert(*k)).collect();
        while !frontier.is_empty() {
            let rows = self.ds.store().get_blobs(frontier.clone()).await?;
            let mut next = Vec::new();
            for (key, row) in frontier.iter().zip(rows) {
                let Some(row) = row else { continue };
                let children: Vec<Key> = if excluded.is_empty() {
                    dsf::element::decode_children(&row.children).map_err(|e| {
                        ServiceError::internal(format!("stored element {key} has malformed child keys: {e}"))
                    })?
                } else {
                    let e = Element::from_stored(&row.element, &row.children)?;
                    e.links(self.ds.registry())?
                        .into_iter()
                        .filter(|(_, ty)| !excluded.contains(ty))
                        .map(|(k, _)| k)
                        .collect()
                };
                next.extend(children.into_iter().filter(|c| seen.insert(*c)));
            }
            frontier = next;
        }
        Ok(seen)
    }
}

#[tonic::async_trait]
impl<S: Store + 'static> datastore_server::Datastore for GrpcDatastore<S> {
    async fn negotiate(
        &self,
        request: Request<NegotiateRequest>,
    ) -> std::result::Result<Response<NegotiateReply>, Status> {
        let req = request.into_inner();
        let commits = keys_of(&req.commits)?;
        let Some(heads) = self.ds.heads(&req.repository_key).await? else {
            return Ok(Response::new(NegotiateReply { found: false, heads: None, have: vec![false; commits.len()] }));
        };
        let missing: HashSet<Key> = self.ds.missing(&commits).await?.into_iter().collect();
        let have = commits.iter().map(|k| !missing.contains(k)).collect();
        Ok(Response::new(NegotiateReply {
            found: true,
            heads: Some(heads_record(heads.algorithm, &heads.branches, &heads.nicknames)),
            have,
        }))
    }

    type PullStream = Parts<PullPart>;

    async fn pull(&self, request: Request<PullRequest>) -> std::result::Result<Response<Self::PullStream>, Status> {
        let req = request.into_inner();
        let have_commits = keys_of(&req.have_commits)?;
        let excluded = types_of(&req.excluded_types);
        let mut have: HashSet<Key> = have_commits.iter().copied().collect();
        if req.head_content {
            let roots = self.roots_of(&have_commits).await?;
            have.extend(self.known_graph(&roots, &excluded).await?);
        }
        // The commits first (small); the content is read from the store as the stream is
        // sent, one batch at a time.
        let pulled = self.ds.pull(&req.repository_key, &have, false, &excluded).await?;
        let h = &pulled.heads;
        let heads =
            PullPart { part: Some(pull_part::Part::Heads(heads_record(h.algorithm, &h.branches, &h.nicknames))) };
        let head_commits: Vec<Key> = h.branches.iter().flat_map(|b| b.heads.iter().copied()).collect();
        let roots = if req.head_content { self.roots_of(&head_commits).await? } else { Vec::new() };
        let commits = futures::stream::iter(
            batches(pulled.commits).map(|b| Ok(PullPart { part: Some(pull_part::Part::Elements(b)) })),
        );
        let content = element_stream(self.ds.graph_stream(roots, excluded, have, BATCH_BYTES))
            .map(|b| b.map(|b| PullPart { part: Some(pull_part::Part::Elements(b)) }));
        Ok(Response::new(Box::pin(futures::stream::once(async { Ok(heads) }).chain(commits).chain(content))))
    }

    async fn push(&self, request: Request<Streaming<PushPart>>) -> std::result::Result<Response<PushReply>, Status> {
        let mut parts = request.into_inner();
        let start = match parts.message().await?.and_then(|p| p.part) {
            Some(push_part::Part::Start(start)) => start,
            _ => return Err(bad_request("a push must begin with its start part (the repository key and heads)")),
        };
        let key = start.repository_key;
        let record = start.heads.ok_or_else(|| bad_request(format!("the push of {key} carries no heads")))?;
        let (alg, branches, nicknames) = read_heads_record(&record)?;
        if let Some(k) = branches.iter().flat_map(|b| &b.heads).find(|k| k.algorithm() != alg) {
            return Err(bad_request(format!(
                "the push of {key} declares {} keys but head {k} is a {} key",
                alg.name(),
                k.algorithm().name()
            )));
        }
        // A push up to STAGE_BYTES of objects is held whole and received as one (a refused
        // push stores nothing). Past that, objects are stored as they arrive (as put_blobs
        // would), so the datastore holds at most about STAGE_BYTES of them; the commits are
        // kept for the receive, whose completeness check then finds the objects stored, and
        // the objects' own links are checked here by key. A refused large push leaves the
        // objects it stored unreferenced, for gc.
        let mut commits: Vec<Element> = Vec::new();
        let mut pending: Vec<Element> = Vec::new();
        let mut pending_bytes = 0usize;
        let mut staged = false;
        let mut received = 0usize;
        let mut stored = 0u64;
        let mut object_keys: HashSet<Key> = HashSet::new();
        let mut linked: HashSet<Key> = HashSet::new();
        while let Some(part) = parts.message().await? {
            match part.part {
                Some(push_part::Part::Elements(batch)) => {
                    for bytes in &batch.elements {
                        let e = Element::decode(self.ds.registry(), bytes).map_err(|e| {
                            bad_request(format!("element {received} of the push of {key} is invalid: {e}"))
                        })?;
                        received += 1;
                        if e.ty() == TypeId::COMMIT {
                            commits.push(e);
                        } else {
                            object_keys.insert(e.key());
                            linked.extend(e.children().iter().copied());
                            pending_bytes += e.encoded_len();
                            pending.push(e);
                        }
                    }
                    if pending_bytes > STAGE_BYTES {
                        staged = true;
                        stored += self.ds.put_blobs(std::mem::take(&mut pending)).await? as u64;
                        pending_bytes = 0;
                    }
                }
                Some(push_part::Part::Start(_)) => {
                    return Err(bad_request(format!("the push of {key} has a second start part")));
                }
                None => return Err(bad_request(format!("the push of {key} has an empty part"))),
            }
        }
        let elements = if staged {
            if !pending.is_empty() {
                stored += self.ds.put_blobs(std::mem::take(&mut pending)).await? as u64;
            }
            // What the objects link to and did not come along must be stored (and is
            // freshened for a concurrent gc, as the receive does for what it relies on).
            let relied: Vec<Key> = linked.into_iter().filter(|k| !object_keys.contains(k)).collect();
            let lacking = self.ds.freshen(&relied).await?;
            if let Some(first) = lacking.first() {
                return Err(bad_request(format!(
                    "push of {key} is incomplete: {} referenced elements are neither sent nor stored (e.g. {first})",
                    lacking.len()
                )));
            }
            commits
        } else {
            commits.into_iter().chain(pending).collect()
        };
        let mut keys: Vec<Key> =
            elements.iter().map(Element::key).filter(|k| !staged || !object_keys.contains(k)).collect();
        keys.sort_unstable();
        keys.dedup();
        stored += self.ds.missing(&keys).await?.len() as u64;
        let heads = self
            .ds
            .receive(Received { repository_key: key, branches, nicknames, elements })
            .await
            .map_err(Status::from)?;
        Ok(Response::new(PushReply {
            heads: Some(heads_record(heads.algorithm, &heads.branches, &heads.nicknames)),
            stored,
        }))
    }

    type CheckoutStream = Parts<ElementBatch>;

    async fn checkout(
        &self,
        request: Request<CheckoutRequest>,
    ) -> std::result::Result<Response<Self::CheckoutStream>, Status> {
        let req = request.into_inner();
        let root = key_of(&req.root)?;
        let stream = self.ds.graph_stream(vec![root], types_of(&req.excluded_types), HashSet::new(), BATCH_BYTES);
        Ok(Response::new(Box::pin(element_stream(stream))))
    }

    type FetchBlobsStream = Parts<ElementBatch>;

    async fn fetch_blobs(
        &self,
        request: Request<FetchBlobsRequest>,
    ) -> std::result::Result<Response<Self::FetchBlobsStream>, Status> {
        let keys = keys_of(&request.into_inner().keys)?;
        let elements = self.ds.blobs(&keys).await?;
        Ok(Response::new(Box::pin(futures::stream::iter(batches(elements).map(Ok)))))
    }

    async fn put_blobs(
        &self,
        request: Request<Streaming<ElementBatch>>,
    ) -> std::result::Result<Response<PutBlobsReply>, Status> {
        let mut stream = request.into_inner();
        let mut elements = Vec::new();
        while let Some(batch) = stream.message().await? {
            for bytes in &batch.elements {
                let e = Element::decode(self.ds.registry(), bytes)
                    .map_err(|e| bad_request(format!("element {} of put_blobs is invalid: {e}", elements.len())))?;
                elements.push(e);
            }
        }
        let stored = self.ds.put_blobs(elements).await? as u64;
        Ok(Response::new(PutBlobsReply { stored }))
    }

    type GetObjectStream = Parts<GetObjectPart>;

    async fn get_object(
        &self,
        request: Request<GetObjectRequest>,
    ) -> std::result::Result<Response<Self::GetObjectStream>, Status> {
        let req = request.into_inner();
        let commit = if req.commit.is_empty() { None } else { Some(key_of(&req.commit)?) };
        let excluded = types_of(&req.excluded_types);
        let (root, elements) =
            self.ds.get_object(&req.repository_key, Some(&req.branch), commit, Some(&req.treeish), &excluded).await?;
        let first = GetObjectPart { part: Some(get_object_part::Part::Root(root.as_bytes().to_vec())) };
        let rest = batches(elements).map(|b| GetObjectPart { part: Some(get_object_part::Part::Elements(b)) });
        Ok(Response::new(Box::pin(futures::stream::iter(std::iter::once(first).chain(rest).map(Ok)))))
    }

    async fn get_lcs(&self, request: Request<GetLcsRequest>) -> std::result::Result<Response<GetLcsReply>, Status> {
        let pairs = self.ds.get_lcs(&request.into_inner().keys).await?;
        Ok(Response::new(GetLcsReply { pairs: pairs.into_iter().map(|(key, lcs)| KeyLcs { key, lcs }).collect() }))
    }

    type ExtractDataStream = Parts<DataChunk>;

    /// Bounds are proto3 messages: an unset `stride` reads 0, which is taken as the default, 1
    /// (a stride of 0 selects nothing meaningful); `origin` and `size` are taken as they are.
    async fn extract_data(
        &self,
        request: Request<ExtractDataRequest>,
    ) -> std::result::Result<Response<Self::ExtractDataStream>, Status> {
        let req = request.into_inner();
        let structure = key_of(&req.structure_array)?;
        let bounds: Vec<Bounds> = req
            .bounds
            .iter()
            .map(|b| Bounds { origin: Some(b.origin), size: Some(b.size), stride: (b.stride != 0).then_some(b.stride) })
            .collect();
        let extraction = self.ds.extraction(structure, &bounds).await?;
        let n = extraction.len();
        let seq_max = i32::try_from(n).map_err(|_| bad_request("the extraction has too many chunks"))?;
        // Chunks are made as the stream is read: at most one chunk's arrays are in memory.
        let chunks = futures::stream::unfold((extraction, 0usize), move |(mut extraction, i)| async move {
            if i >= n {
                return None;
            }
            let chunk = match extraction.chunk(i).await {
                Ok((start, array)) => match i32::try_from(start) {
                    Ok(start_index) => Ok(DataChunk {
                        seq_number: i as i32,
                        seq_max,
                        done: i + 1 == n,
                        start_index,
                        ndarray: array.encode(),
                    }),
                    Err(_) => Err(bad_request("the extraction is too large: a start index passes 2^31")),
                },
                Err(e) => Err(Status::from(e)),
            };
            // An error ends the stream.
            let next = if chunk.is_ok() { i + 1 } else { n };
            Some((chunk, (extraction, next)))
        });
        Ok(Response::new(Box::pin(chunks)))
    }
}

// ----- client --------------------------------------------------------------------------------

/// The commits a pull says it has: all of them, or with `head_content` only those whose content
/// is here completely (not below `excluded` types): the rest of it is still wanted.
fn have_commits(repo: &Repository, head_content: bool, excluded: &[TypeId]) -> Result<Vec<Key>> {
    Ok(dsf::sync::have_commits(repo, head_content, excluded)?)
}

/// A datastore client over gRPC. Cheap to clone: clones share the connection.
#[derive(Debug, Clone)]
pub struct GrpcClient {
    rpc: DatastoreClient<Channel>,
    registry: Registry,
    url: String,
    timeout: Option<Duration>,
}

/// A repository's heads as the datastore reports them.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteHeads {
    /// The repository's hash algorithm.
    pub algorithm: HashAlgorithm,
    /// Branches and their head commits (more than one head: the branch diverged).
    pub branches: Vec<Branch>,
    /// Branch names → branch keys.
    pub nicknames: BTreeMap<String, String>,
}

/// The answer to a negotiation.
#[derive(Debug, Clone, PartialEq)]
pub struct Negotiation {
    /// The repository's heads; `None` if the datastore has no such repository.
    pub heads: Option<RemoteHeads>,
    /// `have[i]` tells whether the datastore holds the `i`-th commit asked about (all false when
    /// the repository does not exist).
    pub have: Vec<bool>,
}

/// What a push did.
#[derive(Debug, Clone, PartialEq)]
pub struct PushOutcome {
    /// Elements the datastore did not have and stored.
    pub stored: u64,
    /// Elements the push sent (commits and objects).
    pub sent_elements: usize,
    /// Bytes of the push stream: the encoded length of every `PushPart` (the start and the
    /// element batches), without gRPC's 5-byte message prefixes and HTTP/2 framing.
    pub sent_bytes: u64,
    /// Bytes of the negotiation request that preceded the push (the repository's commit keys).
    pub negotiate_bytes: u64,
    /// The heads the datastore holds after the push.
    pub heads: RemoteHeads,
}

/// What a pull received.
#[derive(Debug, Clone, PartialEq)]
pub struct PullOutcome {
    /// Elements received (commits and objects).
    pub elements: usize,
    /// Bytes of the pull stream: the encoded length of every `PullPart`.
    pub bytes: u64,
    /// The datastore's heads.
    pub heads: RemoteHeads,
}

/// A pull's stream, read.
#[derive(Debug)]
struct Pulled {
    heads: RemoteHeads,
    elements: Vec<Element>,
    bytes: u64,
}

impl GrpcClient {
    /// Connects to the datastore at `url` (e.g. `http://127.0.0.1:50051`); received elements
    /// are decoded with `registry`.
    pub async fn connect(url: &str, registry: Registry) -> Result<GrpcClient> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|e| Error::Transport(format!("bad datastore url {url:?}: {}", error_chain(&e))))?;
        let channel = endpoint
            .connect()
            .await
            .map_err(|e| Error::Transport(format!("cannot connect to the datastore at {url}: {}", error_chain(&e))))?;
        let rpc = DatastoreClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        Ok(GrpcClient { rpc, registry, url: url.to_owned(), timeout: None })
    }

    /// Sets the idle timeout: a call waits at most this long for its reply, and a stream for
    /// each next message, so a transfer that keeps moving never times out while one whose
    /// peer stops answering fails ([`Error::Timeout`] before the first message,
    /// [`Error::Stalled`] after). Without it (the default) the client waits as long as the
    /// connection lives.
    pub fn with_timeout(mut self, timeout: Duration) -> GrpcClient {
        self.timeout = Some(timeout);
        self
    }

    /// Awaits a call's response within the timeout.
    async fn within<T>(
        &self,
        op: &'static str,
        call: impl Future<Output = std::result::Result<Response<T>, Status>>,
    ) -> Result<T> {
        let response = match self.timeout {
            None => call.await,
            Some(after) => tokio::time::timeout(after, call).await.map_err(|_| Error::Timeout {
                op: op.to_owned(),
                target: self.url.clone(),
                after,
            })?,
        };
        Ok(response.map_err(self.failed(op))?.into_inner())
    }

    /// The next message of a stream, within the timeout; `seen` counts the messages and bytes
    /// that came before.
    async fn next<T>(&self, op: &'static str, stream: &mut Streaming<T>, seen: (u64, u64)) -> Result<Option<T>> {
        let next = stream.message();
        let message = match self.timeout {
            None => next.await,
            Some(after) => tokio::time::timeout(after, next).await.map_err(|_| Error::Stalled {
                op: op.to_owned(),
                target: self.url.clone(),
                after,
                parts: seen.0,
                bytes: seen.1,
            })?,
        };
        message.map_err(self.failed(op))
    }

    /// The datastore's url.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The registry received elements are decoded with.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The generated client, to send raw messages.
    pub fn raw(&self) -> DatastoreClient<Channel> {
        self.rpc.clone()
    }

    /// The error a failed call returns: the status as a failure reply of `op`.
    fn failed(&self, op: &'static str) -> impl Fn(Status) -> Error + '_ {
        move |status| match Error::from(status) {
            Error::Application { error, .. } | Error::Container { error, .. } | Error::Received { error, .. } => {
                Error::from_reply(op, &format!("datastore at {}", self.url), error)
            }
            other => other,
        }
    }

    /// Which of `commits` the datastore holds, and the repository's heads.
    pub async fn negotiate(&self, key: &str, commits: &[Key]) -> Result<Negotiation> {
        Ok(self.negotiate_request(negotiate_request(key, commits)).await?.0)
    }

    async fn negotiate_request(&self, req: NegotiateRequest) -> Result<(Negotiation, u64)> {
        let bytes = req.encoded_len() as u64;
        let asked = req.commits.len();
        let reply = self.within("negotiate", self.rpc.clone().negotiate(req)).await?;
        if reply.have.len() != asked {
            return Err(Error::Protocol(format!(
                "the negotiation asked about {asked} commits and was answered about {}",
                reply.have.len()
            )));
        }
        let heads = match (reply.found, reply.heads) {
            (true, Some(h)) => Some(remote_heads(&h).map_err(protocol)?),
            (true, None) => return Err(Error::Protocol("the datastore found the repository but sent no heads".into())),
            (false, _) => None,
        };
        Ok((Negotiation { heads, have: reply.have }, bytes))
    }

    /// Pushes a repository (it must have a commit): negotiates, then sends the commits the
    /// datastore lacks and the elements their roots reach that the datastore's commits do not.
    /// Diverging heads are kept beside the datastore's, never lost.
    pub async fn push(&self, repo: &Repository) -> Result<PushOutcome> {
        let commits: Vec<Key> = repo.commits().map(|c| c.key).collect();
        if commits.is_empty() {
            return Err(Error::Dsf(dsf::Error::State(format!(
                "cannot push repository {}: it has no commits",
                repo.key()
            ))));
        }
        let (negotiation, negotiate_bytes) = self.negotiate_request(negotiate_request(repo.key(), &commits)).await?;
        let offered = push_delta(repo, &commits, &negotiation.have);
        let sent_elements = offered.len();
        let start = PushStart {
            repository_key: repo.key().to_owned(),
            heads: Some(heads_record(repo.algorithm(), repo.branches(), repo.nicknames())),
        };
        // Batches are encoded as the stream is sent.
        let counted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let count = counted.clone();
        let parts = std::iter::once(PushPart { part: Some(push_part::Part::Start(start)) })
            .chain(batches(offered).map(|b| PushPart { part: Some(push_part::Part::Elements(b)) }))
            .inspect(move |p| {
                count.fetch_add(p.encoded_len() as u64, std::sync::atomic::Ordering::Relaxed);
            });
        let reply = self.within("push", self.rpc.clone().push(futures::stream::iter(parts))).await?;
        let sent_bytes = counted.load(std::sync::atomic::Ordering::Relaxed);
        let heads = reply.heads.as_ref().ok_or_else(|| Error::Protocol("the push reply carries no heads".into()))?;
        Ok(PushOutcome {
            stored: reply.stored,
            sent_elements,
            sent_bytes,
            negotiate_bytes,
            heads: remote_heads(heads).map_err(protocol)?,
        })
    }

    /// Pulls a repository the client has: the commits it lacks and, with `head_content`, the
    /// content of the heads that it lacks (not below `excluded` types, which become the
    /// repository's excluded types). Received heads fast-forward or diverge the local branches;
    /// the workspace is not checked out.
    pub async fn pull(
        &self,
        repo: &mut Repository,
        head_content: bool,
        excluded: Option<Vec<TypeId>>,
    ) -> Result<PullOutcome> {
        let excluded = exclusions(excluded);
        let have = have_commits(repo, head_content, &excluded)?;
        let pulled = self.request_pull(repo.key(), &have, head_content, &excluded).await?;
        repo.set_excluded_types(excluded);
        let outcome = PullOutcome { elements: pulled.elements.len(), bytes: pulled.bytes, heads: pulled.heads.clone() };
        apply_pull(repo, pulled)?;
        Ok(outcome)
    }

    /// Fetches what a repository lacks without changing it: the datastore's branches, the
    /// commits the repository lacks and, with `head_content`, the heads' content it lacks. An
    /// unknown repository is a NOT_FOUND application error.
    pub async fn fetch(&self, repo: &Repository, head_content: bool) -> Result<crate::client::Fetched> {
        let have = have_commits(repo, head_content, &[])?;
        let Pulled { heads, elements, .. } = self.request_pull(repo.key(), &have, head_content, &[]).await?;
        let elements = elements.into_iter().filter(|e| !repo.elements().contains(&e.key())).collect();
        Ok(crate::client::Fetched { branches: heads.branches, nicknames: heads.nicknames, elements })
    }

    /// Clones a repository: its heads, every commit and, with `head_content`, the heads'
    /// content (not below `excluded` types). Nothing is checked out. An unknown repository is a
    /// NOT_FOUND application error.
    pub async fn clone_repository(
        &self,
        key: &str,
        head_content: bool,
        excluded: Option<Vec<TypeId>>,
    ) -> Result<Repository> {
        let excluded = exclusions(excluded);
        let pulled = self.request_pull(key, &[], head_content, &excluded).await?;
        let mut repo = Repository::with_key(self.registry.clone(), key, pulled.heads.algorithm);
        repo.set_excluded_types(excluded);
        apply_pull(&mut repo, pulled)?;
        Ok(repo)
    }

    /// Clones a repository into `store` as the stream arrives: commits, then (with
    /// `head_content`) the heads' content not below `excluded` types (`None`:
    /// [`DEFAULT_EXCLUDED`](crate::client::DEFAULT_EXCLUDED)), written to the store batch by batch, then the heads. At most
    /// about one batch of content is held in memory (and gRPC's flow-control window). The
    /// store must not hold the repository yet.
    pub async fn clone_into<S: Store>(
        &self,
        store: &S,
        key: &str,
        head_content: bool,
        excluded: Option<Vec<TypeId>>,
    ) -> Result<Transferred> {
        if StoredRepository::open(store, self.registry.clone(), key).await?.is_some() {
            return Err(Error::Dsf(dsf::Error::State(format!("the store already holds repository {key}"))));
        }
        let (heads, stream, bytes) = self.open_pull(key, &[], head_content, &exclusions(excluded)).await?;
        let mut stored =
            StoredRepository::create(store, Repository::with_key(self.registry.clone(), key, heads.algorithm));
        self.drain_into(store, &mut stored, heads, stream, bytes).await
    }

    /// Pulls into a repository kept in `store`, writing what arrives batch by batch: the
    /// commits it lacks, then (with `head_content`) the heads' content not below `excluded`
    /// types (`None`: [`DEFAULT_EXCLUDED`](crate::client::DEFAULT_EXCLUDED)), then the heads, saved by compare-and-set. The
    /// datastore leaves out what the store's recent commits reach; with `complete` it sends
    /// the heads' whole content, so elements left out before (a partial clone) come too
    /// (those already stored are written again, unchanged).
    pub async fn pull_into<S: Store>(
        &self,
        store: &S,
        key: &str,
        head_content: bool,
        excluded: Option<Vec<TypeId>>,
        complete: bool,
    ) -> Result<Transferred> {
        let mut stored = StoredRepository::open(store, self.registry.clone(), key)
            .await?
            .ok_or_else(|| Error::Dsf(dsf::Error::State(format!("the store holds no repository {key}"))))?;
        let have = if complete { Vec::new() } else { recent_commits(stored.repository(), HAVE_LIMIT) };
        let (heads, stream, bytes) = self.open_pull(key, &have, head_content, &exclusions(excluded)).await?;
        self.drain_into(store, &mut stored, heads, stream, bytes).await
    }

    /// Starts a pull: the heads, the rest of the stream, and the bytes of the first part.
    async fn open_pull(
        &self,
        key: &str,
        have: &[Key],
        head_content: bool,
        excluded: &[TypeId],
    ) -> Result<(RemoteHeads, Streaming<PullPart>, u64)> {
        let req = PullRequest {
            repository_key: key.to_owned(),
            have_commits: have.iter().map(|k| k.as_bytes().to_vec()).collect(),
            head_content,
            excluded_types: type_refs(excluded),
        };
        let mut stream = self.within("pull", self.rpc.clone().pull(req)).await?;
        let first =
            self.next("pull", &mut stream, (0, 0)).await?.ok_or_else(|| protocol_error("the pull sent nothing"))?;
        let bytes = first.encoded_len() as u64;
        match first.part {
            Some(pull_part::Part::Heads(h)) => Ok((remote_heads(&h).map_err(protocol)?, stream, bytes)),
            _ => Err(protocol_error("a pull must begin with the heads")),
        }
    }

    /// Reads a pull's stream into a stored repository: commits into the repository, objects
    /// into the store batch by batch; then the heads, saved.
    async fn drain_into<S: Store>(
        &self,
        store: &S,
        stored: &mut StoredRepository<'_, S>,
        heads: RemoteHeads,
        mut stream: Streaming<PullPart>,
        mut bytes: u64,
    ) -> Result<Transferred> {
        let mut sink = StoreSink::new(store, self.registry.clone());
        let mut parts = 1u64;
        let mut count = 0u64;
        let mut largest_part = 0u64;
        let mut new_commits: Vec<Element> = Vec::new();
        while let Some(part) = self.next("pull", &mut stream, (parts, bytes)).await? {
            let n = part.encoded_len() as u64;
            bytes += n;
            parts += 1;
            largest_part = largest_part.max(n);
            let Some(pull_part::Part::Elements(batch)) = part.part else {
                return Err(protocol_error("a pull sends its heads once, first"));
            };
            let mut elements = Vec::with_capacity(batch.elements.len());
            self.decode_batch(&batch, &mut elements)?;
            count += elements.len() as u64;
            let (commits, objects): (Vec<Element>, Vec<Element>) =
                elements.into_iter().partition(|e| e.ty() == TypeId::COMMIT);
            let repo = stored.repository();
            new_commits.extend(commits.into_iter().filter(|c| repo.commit_info(c.key()).is_err()));
            sink.accept(objects).await?;
        }
        // Commit rows are small: they are added together, once their parents have all come, so
        // the stored repository can give each its generation.
        stored.add_elements(new_commits).await?;
        let kept = std::mem::take(&mut sink.kept);
        stored.add_elements(kept).await?;
        stored.receive_branches(heads.branches, heads.nicknames).await?;
        stored.save().await?;
        Ok(Transferred { parts, elements: count, bytes, largest_part })
    }

    async fn request_pull(&self, key: &str, have: &[Key], head_content: bool, excluded: &[TypeId]) -> Result<Pulled> {
        let (heads, mut stream, mut bytes) = self.open_pull(key, have, head_content, excluded).await?;
        let mut elements = Vec::new();
        while let Some(part) = self.next("pull", &mut stream, (elements.len() as u64, bytes)).await? {
            bytes += part.encoded_len() as u64;
            match part.part {
                Some(pull_part::Part::Elements(batch)) => self.decode_batch(&batch, &mut elements)?,
                _ => return Err(protocol_error("a pull sends its heads once, first")),
            }
        }
        if !head_content && elements.iter().any(|e| e.ty() != TypeId::COMMIT) {
            return Err(protocol_error("the pull sent head content that was not asked for"));
        }
        Ok(Pulled { heads, elements, bytes })
    }

    fn decode_batch(&self, batch: &ElementBatch, out: &mut Vec<Element>) -> Result<()> {
        for bytes in &batch.elements {
            let e = Element::decode(&self.registry, bytes).map_err(|e| match e {
                // Not the datastore's fault: this side lacks the type.
                dsf::Error::UnknownType { .. } => Error::Dsf(e),
                e => Error::Protocol(format!("the datastore sent an invalid element: {e}")),
            })?;
            out.push(e);
        }
        Ok(())
    }

    async fn read_batches(&self, op: &'static str, mut stream: Streaming<ElementBatch>) -> Result<Vec<Element>> {
        let mut elements = Vec::new();
        while let Some(batch) = self.next(op, &mut stream, (elements.len() as u64, 0)).await? {
            self.decode_batch(&batch, &mut elements)?;
        }
        Ok(elements)
    }

    /// Checks out, first fetching from the datastore (rpc `Checkout`) the graphs of the roots
    /// the checkout needs and the repository does not hold completely.
    pub async fn checkout(&self, repo: &mut Repository, how: Checkout) -> Result<()> {
        let roots = repo.checkout_roots(&how)?;
        let excluded = repo.excluded_for(&how);
        let complete = dsf::sync::complete_graphs(repo, roots.iter().copied(), &excluded)?;
        for root in roots {
            if !complete.contains(&root) {
                let elements = self.remote_checkout(root, &excluded).await?;
                repo.add_elements(elements)?;
            }
        }
        repo.checkout(how)?;
        Ok(())
    }

    /// Every element reachable from `root`, not following links to `excluded` types.
    pub async fn remote_checkout(&self, root: Key, excluded: &[TypeId]) -> Result<Vec<Element>> {
        let req = CheckoutRequest { root: root.as_bytes().to_vec(), excluded_types: type_refs(excluded) };
        let stream = self.within("checkout", self.rpc.clone().checkout(req)).await?;
        self.read_batches("checkout", stream).await
    }

    /// Elements by key; any unknown key is a NOT_FOUND application error.
    pub async fn fetch_blobs(&self, keys: &[Key]) -> Result<Vec<Element>> {
        let req = FetchBlobsRequest { keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect() };
        let stream = self.within("fetch_blobs", self.rpc.clone().fetch_blobs(req)).await?;
        self.read_batches("fetch_blobs", stream).await
    }

    /// Stores elements as they are (commits are not indexed). Returns how many the datastore
    /// did not have.
    pub async fn put_blobs(&self, elements: &[Element]) -> Result<u64> {
        let batches: Vec<ElementBatch> = batches(elements.to_vec()).collect();
        let reply = self.within("put_blobs", self.rpc.clone().put_blobs(futures::stream::iter(batches))).await?;
        Ok(reply.stored)
    }

    /// A repository's object at a commit, a treeish or the head of a branch (default master),
    /// with every element reachable from its root, not following links to `excluded` types.
    pub async fn get_object(&self, id: IdRef, excluded: &[TypeId]) -> Result<RemoteObject> {
        let req = GetObjectRequest {
            repository_key: id.key.unwrap_or_default(),
            branch: id.branch.unwrap_or_default(),
            commit: id.commit.unwrap_or_default(),
            treeish: id.treeish.unwrap_or_default(),
            excluded_types: type_refs(excluded),
        };
        let mut stream = self.within("get_object", self.rpc.clone().get_object(req)).await?;
        let first = self
            .next("get_object", &mut stream, (0, 0))
            .await?
            .ok_or_else(|| protocol_error("get_object sent nothing"))?;
        let root = match first.part {
            Some(get_object_part::Part::Root(raw)) => {
                Key::from_slice(&raw).ok_or_else(|| protocol_error("get_object sent a malformed root key"))?
            }
            _ => return Err(protocol_error("get_object must begin with the root key")),
        };
        let mut elements = Vec::new();
        while let Some(part) = self.next("get_object", &mut stream, (elements.len() as u64, 0)).await? {
            match part.part {
                Some(get_object_part::Part::Elements(batch)) => self.decode_batch(&batch, &mut elements)?,
                _ => return Err(protocol_error("get_object sends its root key once, first")),
            }
        }
        if !elements.iter().any(|e| e.key() == root) {
            return Err(protocol_error("get_object did not send its root object"));
        }
        Ok(RemoteObject { root, elements, excluded: excluded.to_vec() })
    }

    /// The life-cycle state of each resource (ION's enum number), in request order.
    pub async fn get_lcs(&self, keys: &[&str]) -> Result<Vec<(String, i32)>> {
        let req = GetLcsRequest { keys: keys.iter().map(|k| (*k).to_owned()).collect() };
        let reply = self.within("get_lcs", self.rpc.clone().get_lcs(req)).await?;
        Ok(reply.pairs.into_iter().map(|p| (p.key, p.lcs)).collect())
    }

    /// The chunks of a slice of an `ArrayStructure`, in order, each with its start index in the
    /// output and an array object holding its values. An unset `stride` is 1.
    pub async fn extract_data(&self, structure: Key, bounds: Vec<Bounds>) -> Result<Vec<(u64, Element)>> {
        let req = ExtractDataRequest {
            structure_array: structure.as_bytes().to_vec(),
            bounds: bounds
                .iter()
                .map(|b| pb::Bounds {
                    origin: b.origin.unwrap_or(0),
                    size: b.size.unwrap_or(0),
                    stride: b.stride.unwrap_or(1),
                })
                .collect(),
        };
        let mut stream = self.within("extract_data", self.rpc.clone().extract_data(req)).await?;
        let mut chunks = Vec::new();
        let mut done = false;
        while let Some(chunk) = self.next("extract_data", &mut stream, (chunks.len() as u64, 0)).await? {
            if done || usize::try_from(chunk.seq_number).ok() != Some(chunks.len()) {
                return Err(protocol_error("extract_data sent its chunks out of sequence"));
            }
            let start = u64::try_from(chunk.start_index)
                .map_err(|_| protocol_error("extract_data sent a negative start index"))?;
            let array = Element::decode(&self.registry, &chunk.ndarray)
                .map_err(|e| Error::Protocol(format!("extract_data sent an invalid array: {e}")))?;
            done = chunk.done;
            chunks.push((start, array));
        }
        if !chunks.is_empty() && !done {
            return Err(protocol_error("extract_data ended before its last chunk"));
        }
        Ok(chunks)
    }
}

/// The elements a push offers: the commits the datastore lacks (`have[i]` false for
/// `commits[i]`), then the elements reachable from their roots, not descending into the
/// subgraphs of the roots of the commits it holds (`dsf::sync::push_delta`). Elements absent
/// here are skipped: the datastore must hold them already, or it refuses the push as incomplete.
fn push_delta(repo: &Repository, commits: &[Key], have: &[bool]) -> Vec<Element> {
    let held = |wanted: bool| commits.iter().zip(have).filter(move |(_, h)| **h == wanted).map(|(k, _)| *k);
    let new: Vec<Key> = held(false).collect();
    let known: Vec<Key> = held(true).collect();
    dsf::sync::push_delta(repo, &new, &known)
}

/// Adds a pull's elements and takes its heads: on a repository without commits (a clone) the
/// heads and nicknames replace the local ones (the first branch becomes master if the datastore
/// names none); otherwise they fast-forward or diverge the local branches.
fn apply_pull(repo: &mut Repository, pulled: Pulled) -> Result<()> {
    let Pulled { heads: RemoteHeads { branches, nicknames, .. }, elements, .. } = pulled;
    repo.add_elements(elements)?;
    repo.receive_branches(branches, nicknames)?;
    Ok(())
}

// ----- messages ------------------------------------------------------------------------------

/// A lazily read graph as a stream of element batches: each part of the walk becomes its
/// batches, encoded as they are sent; an error ends the stream.
fn element_stream(
    parts: impl Stream<Item = std::result::Result<Vec<Element>, ServiceError>> + Send + 'static,
) -> impl Stream<Item = std::result::Result<ElementBatch, Status>> + Send + 'static {
    parts.flat_map(|part| match part {
        Ok(elements) => futures::stream::iter(batches(elements).map(Ok).collect::<Vec<_>>()),
        Err(e) => futures::stream::iter(vec![Err(Status::from(e))]),
    })
}

/// Groups elements into batches of at most [`BATCH_ELEMENTS`] elements and about
/// [`BATCH_BYTES`] bytes, in order, encoding each as the batch is made.
fn batches(elements: Vec<Element>) -> impl Iterator<Item = ElementBatch> + Send + 'static {
    let mut rest = elements.into_iter().peekable();
    std::iter::from_fn(move || {
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0;
        while let Some(e) = rest
            .next_if(|e| batch.is_empty() || (batch.len() < BATCH_ELEMENTS && bytes + e.encoded_len() <= BATCH_BYTES))
        {
            let encoded = e.encode();
            bytes += encoded.len();
            batch.push(encoded);
        }
        (!batch.is_empty()).then_some(ElementBatch { elements: batch })
    })
}

fn negotiate_request(key: &str, commits: &[Key]) -> NegotiateRequest {
    NegotiateRequest {
        repository_key: key.to_owned(),
        commits: commits.iter().map(|k| k.as_bytes().to_vec()).collect(),
    }
}

/// A repository's heads as a `dsf.store.HeadsRecord` (the codec is `dsf::sync::Heads`).
pub fn heads_record(alg: HashAlgorithm, branches: &[Branch], nicknames: &BTreeMap<String, String>) -> HeadsRecord {
    let heads = Heads { algorithm: alg, branches: branches.to_vec(), nicknames: nicknames.clone() };
    HeadsRecord::decode(heads.encode_record().as_slice()).expect("a heads record decodes")
}

type HeadsParts = (HashAlgorithm, Vec<Branch>, BTreeMap<String, String>);

/// The hash algorithm, branches and nicknames of a heads record.
fn read_heads_record(record: &HeadsRecord) -> std::result::Result<HeadsParts, ServiceError> {
    let Heads { algorithm, branches, nicknames } = Heads::decode_record(&record.encode_to_vec())
        .map_err(|e| ServiceError::bad_request(format!("a bad heads record: {e}")))?;
    Ok((algorithm, branches, nicknames))
}

fn remote_heads(record: &HeadsRecord) -> std::result::Result<RemoteHeads, ServiceError> {
    let (algorithm, branches, nicknames) = read_heads_record(record)?;
    Ok(RemoteHeads { algorithm, branches, nicknames })
}

fn types_of(refs: &[TypeRef]) -> Vec<TypeId> {
    refs.iter().map(|t| TypeId::new(t.object_id, t.version)).collect()
}

fn type_refs(types: &[TypeId]) -> Vec<TypeRef> {
    types.iter().map(|t| TypeRef { object_id: t.object_id, version: t.version }).collect()
}

fn bad_request(message: impl Into<String>) -> Status {
    ServiceError::bad_request(message).into()
}

fn protocol(e: ServiceError) -> Error {
    Error::Protocol(e.message)
}

fn protocol_error(message: &str) -> Error {
    Error::Protocol(message.to_owned())
}

/// An error and its sources, for transport errors whose own text says little.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
