//! The client side of the datastore over AMQP: push, pull, clone, remote checkout, fetch, and
//! the other datastore operations, for repositories held in memory.
//!
//! A client is a process of its own (it has a queue for replies). While it awaits its own push
//! it serves `fetch_blobs` for the elements it offered, because ION's datastore pulls a push's
//! elements from the pusher. This client also sends the elements along with the push (a DSF
//! extension field), so a datastore of ours stores a push in one round trip.
//!
//! The client remembers, per repository, the heads the datastore had at the last exchange; a
//! push then offers only commits and elements that are not reachable from those heads (equal
//! subgraphs are not descended). Without that knowledge it offers everything, as ION did.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dsf::proto::dsf::store::Nickname;
use dsf::proto::net::ooici::cdm::syntactic::Bounds;
use dsf::proto::net::ooici::core::link::{CasRef, IdRef};
use dsf::proto::net::ooici::core::workbench_messages::{
    BlobsMessage, BlobsRequestMessage, DataChunkMessage, DataRequestMessage, GetLcsRequestMessage,
    GetLcsResponseMessage, GetObjectReplyMessage, GetObjectRequestMessage, PullMessage, PullResponseMessage,
    PushMessage, RepositoryState, RequestCommitBlobsMessage,
};
use dsf::store::persist::StoredHeads;
use dsf::{Branch, Checkout, Element, Key, Repository, TypeId};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::amqp::{Container, Endpoint, Handler, Process, Request};
use crate::content::{Content, ContentBuilder, gpb_type};
use crate::datastore::service::{SERVICE, head_element, keys_of, links_of, read_head};
use crate::error::{Error, Result, ServiceError};

/// Pushes whose elements total at most this many bytes carry them along; larger ones leave the
/// datastore to fetch what it lacks.
pub const INLINE_LIMIT: usize = 8 << 20;

/// How long to wait for data chunks that trail an extract_data reply.
const CHUNK_GRACE: Duration = Duration::from_secs(15);

/// A datastore client over AMQP.
#[derive(Debug)]
pub struct AmqpClient {
    process: Process,
    target: String,
    timeout: Option<Duration>,
    inline_limit: usize,
    state: Arc<ClientState>,
}

/// A received data chunk: sequence number, sequence length, start index, array object.
type ChunkItem = (i32, i32, u64, Element);

#[derive(Debug, Default)]
struct ClientState {
    /// Elements offered to a datastore during a push (served by fetch_blobs).
    offers: Mutex<HashMap<Key, Element>>,
    /// Repository key → the heads the datastore had at the last exchange.
    remote_heads: Mutex<HashMap<String, Vec<Key>>>,
    /// Where data chunks of a running extraction go.
    chunks: Mutex<Option<mpsc::UnboundedSender<ChunkItem>>>,
    /// One extraction at a time.
    extracting: tokio::sync::Mutex<()>,
    /// Elements served to datastores through fetch_blobs.
    served: std::sync::atomic::AtomicU64,
}

/// The object `get_object` returned.
#[derive(Debug, Clone)]
pub struct RemoteObject {
    /// The root object's key.
    pub root: Key,
    /// The root and every element reachable from it (not below excluded types).
    pub elements: Vec<Element>,
    /// The excluded types, as echoed by the datastore.
    pub excluded: Vec<TypeId>,
}

impl AmqpClient {
    /// Spawns a client process in `container` that talks to the datastore service `service`
    /// (`datastore` by default; scoped by the system name).
    pub async fn spawn(container: &Container, service: Option<&str>) -> Result<AmqpClient> {
        let state = Arc::new(ClientState::default());
        let process = container.spawn("datastore-client", None, Arc::new(ClientHandler(state.clone()))).await?;
        let target = process.endpoint().scoped(service.unwrap_or(SERVICE));
        Ok(AmqpClient { process, target, timeout: None, inline_limit: INLINE_LIMIT, state })
    }

    /// Sets the RPC timeout of every call (default 15 s).
    pub fn with_timeout(mut self, timeout: Duration) -> AmqpClient {
        self.timeout = Some(timeout);
        self
    }

    /// Sets how many bytes of elements a push carries along (default [`INLINE_LIMIT`]); with
    /// 0, pushes only list keys and the datastore fetches what it lacks, as ION's did.
    pub fn with_inline_limit(mut self, bytes: usize) -> AmqpClient {
        self.inline_limit = bytes;
        self
    }

    /// How many elements this client has served to datastores through `fetch_blobs`.
    pub fn elements_served(&self) -> u64 {
        self.state.served.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The client's endpoint.
    pub fn endpoint(&self) -> &Endpoint {
        self.process.endpoint()
    }

    /// The routing key of the datastore service.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// Stops the client process.
    pub async fn terminate(&self) {
        self.process.terminate().await;
    }

    async fn call(&self, op: &str, content: Bytes) -> Result<Content> {
        self.endpoint().rpc(&self.target, op, content, self.timeout).await
    }

    /// Pushes one repository.
    pub async fn push(&self, repo: &Repository) -> Result<()> {
        self.push_all(&[repo]).await
    }

    /// Pushes repositories in one message. Each must have a commit.
    pub async fn push_all(&self, repos: &[&Repository]) -> Result<()> {
        let mut b = ContentBuilder::new();
        let mut states = Vec::with_capacity(repos.len());
        let mut offered = Vec::new();
        for repo in repos {
            let (state, elements) = self.push_state(repo, &mut b)?;
            states.push(state);
            offered.extend(elements);
        }
        let keys: Vec<Key> = offered.iter().map(|e| e.key()).collect();
        self.state.offers.lock().expect("not poisoned").extend(offered.into_iter().map(|e| (e.key(), e)));
        let mut children = Vec::new();
        for s in &states {
            children.extend(links_of(s.repo_head_element.iter().chain(&s.blob_elements)));
        }
        let content = b.finish(&PushMessage { repositories: states }, children);
        let result = self.call("push", content).await;
        {
            let mut offers = self.state.offers.lock().expect("not poisoned");
            for k in &keys {
                offers.remove(k);
            }
        }
        result?;
        let mut remote = self.state.remote_heads.lock().expect("not poisoned");
        for repo in repos {
            remote.insert(repo.key().to_owned(), repo.branches().iter().flat_map(|b| b.heads.clone()).collect());
        }
        Ok(())
    }

    /// The repository state of a push and the elements it offers: commits the datastore is not
    /// known to have, and elements reachable from them but not from the heads it is known to have.
    fn push_state(&self, repo: &Repository, b: &mut ContentBuilder) -> Result<(RepositoryState, Vec<Element>)> {
        if repo.commits().next().is_none() {
            return Err(Error::Dsf(dsf::Error::State(format!(
                "cannot push repository {}: it has no commits",
                repo.key()
            ))));
        }
        let known: Vec<Key> = self
            .state
            .remote_heads
            .lock()
            .expect("not poisoned")
            .get(repo.key())
            .map(|h| h.iter().copied().filter(|k| repo.commit_info(*k).is_ok()).collect())
            .unwrap_or_default();
        let heads: Vec<Key> = repo.branches().iter().flat_map(|b| b.heads.iter().copied()).collect();
        let new_commits =
            dsf::sync::new_commits(&heads, &known, |k| repo.commit_info(*k).ok().map(|c| c.parent_keys().collect()));
        let offered = dsf::sync::push_delta(repo, &new_commits, &known);

        let heads = heads_of(repo);
        let head = b.wrapped(&head_element(repo.key(), &heads));
        let bytes: usize = offered.iter().map(|e| e.encoded_len()).sum();
        let inline = bytes <= self.inline_limit;
        let blob_elements = if inline { offered.iter().map(|e| b.wrapped(e)).collect() } else { Vec::new() };
        // Keys of elements sent along need not be listed: the datastore asks only for listed
        // keys it lacks that did not come along.
        let blob_keys = if inline { Vec::new() } else { offered.iter().map(|e| e.key().as_bytes().to_vec()).collect() };
        let state = RepositoryState {
            repository_key: Some(repo.key().to_owned()),
            repo_head_element: Some(head),
            blob_keys,
            blob_elements,
            nicknames: nicknames_of(repo),
        };
        Ok((state, offered))
    }

    /// Pulls a repository the client has: commits it lacks and, with `head_content`, the
    /// content of every head it lacks (not below `excluded` types, which become the
    /// repository's excluded types). Received heads fast-forward or diverge the local
    /// branches; the workspace is not checked out.
    pub async fn pull(&self, repo: &mut Repository, head_content: bool, excluded: Option<Vec<TypeId>>) -> Result<()> {
        let parts =
            self.request_pull(repo.key(), &have_keys(repo, head_content), head_content, excluded.as_deref()).await?;
        if let Some(ex) = excluded {
            repo.set_excluded_types(ex);
        }
        self.apply_pull(repo, parts)
    }

    /// Fetches what a repository lacks without changing it: the datastore's branches as it
    /// keeps them, the commits the repository lacks and, with `head_content`, the heads'
    /// content it lacks. An unknown repository is a 404 application error.
    pub async fn fetch(&self, repo: &Repository, head_content: bool) -> Result<Fetched> {
        let parts = self.request_pull(repo.key(), &have_keys(repo, head_content), head_content, None).await?;
        self.assume_heads(repo.key(), parts.branches.iter().flat_map(|b| b.heads.iter().copied()).collect());
        let PullParts { branches, nicknames, commits, blobs, .. } = parts;
        Ok(Fetched { branches, nicknames, elements: commits.into_iter().chain(blobs).collect() })
    }

    /// Tells the client which heads the datastore holds for a repository (learnt in an
    /// earlier session), so that a push offers only what those heads do not reach.
    pub fn assume_heads(&self, key: &str, heads: Vec<Key>) {
        self.state.remote_heads.lock().expect("not poisoned").insert(key.to_owned(), heads);
    }

    /// Clones a repository: its heads, every commit, and (with `head_content`) the heads'
    /// content. Nothing is checked out. An unknown repository is a 404 application error.
    pub async fn clone_repository(
        &self,
        key: &str,
        head_content: bool,
        excluded: Option<Vec<TypeId>>,
    ) -> Result<Repository> {
        let parts = self.request_pull(key, &[], head_content, excluded.as_deref()).await?;
        let alg = parts.branches.iter().flat_map(|b| b.heads.first()).map(|k| k.algorithm()).next().unwrap_or_default();
        let mut repo = Repository::with_key(self.endpoint().registry().clone(), key, alg);
        if let Some(ex) = excluded {
            repo.set_excluded_types(ex);
        }
        self.apply_pull(&mut repo, parts)?;
        Ok(repo)
    }

    async fn request_pull(
        &self,
        key: &str,
        have: &[Key],
        head_content: bool,
        excluded: Option<&[TypeId]>,
    ) -> Result<PullParts> {
        let msg = PullMessage {
            repository_key: Some(key.to_owned()),
            commit_keys: have.iter().map(|k| k.as_bytes().to_vec()).collect(),
            get_head_content: Some(head_content),
            excluded_types: if head_content {
                excluded.unwrap_or_default().iter().map(|t| gpb_type(*t)).collect()
            } else {
                Vec::new()
            },
        };
        let reply = self.call("pull", ContentBuilder::new().finish(&msg, vec![])).await?;
        let resp: PullResponseMessage = reply.payload().map_err(protocol)?;
        let head =
            resp.repo_head_element.as_ref().ok_or_else(|| Error::Protocol("a pull reply without a head".into()))?;
        let (branches, _) = read_head(&reply.unwrapped(head).map_err(protocol)?).map_err(protocol)?;
        let commits = reply.unwrap_all(&resp.commit_elements).map_err(protocol)?;
        if commits.iter().any(|e| e.ty() != TypeId::COMMIT) {
            return Err(Error::Protocol("a pull reply's commit_elements hold something else than commits".into()));
        }
        let blobs = reply.unwrap_all(&resp.blob_elements).map_err(protocol)?;
        if !head_content && !blobs.is_empty() {
            return Err(Error::Protocol("the pull reply carries head content that was not asked for".into()));
        }
        let nicknames = resp.nicknames.iter().map(|n| (n.name.clone(), n.branch.clone())).collect();
        Ok(PullParts { key: key.to_owned(), branches, nicknames, commits, blobs })
    }

    fn apply_pull(&self, repo: &mut Repository, parts: PullParts) -> Result<()> {
        let PullParts { key, branches, nicknames, commits, blobs } = parts;
        repo.add_elements(commits.into_iter().chain(blobs))?;
        repo.receive_branches(branches.clone(), nicknames)?;
        self.state
            .remote_heads
            .lock()
            .expect("not poisoned")
            .insert(key, branches.iter().flat_map(|b| b.heads.iter().copied()).collect());
        Ok(())
    }

    /// Checks out, first fetching from the datastore (op `checkout`) the root objects the
    /// repository lacks.
    pub async fn checkout(&self, repo: &mut Repository, how: Checkout) -> Result<()> {
        let roots = repo.checkout_roots(&how)?;
        let excluded = repo.excluded_for(&how);
        for root in roots {
            if !repo.elements().contains(&root) {
                let elements = self.remote_checkout(root, &excluded).await?;
                repo.add_elements(elements)?;
            }
        }
        repo.checkout(how)?;
        Ok(())
    }

    /// Op `checkout`: every element reachable from `root`, not below `excluded` types.
    pub async fn remote_checkout(&self, root: Key, excluded: &[TypeId]) -> Result<Vec<Element>> {
        let msg = RequestCommitBlobsMessage {
            commit_root_object: Some(root.as_bytes().to_vec()),
            excluded_types: excluded.iter().map(|t| gpb_type(*t)).collect(),
        };
        self.blobs_call("checkout", ContentBuilder::new().finish(&msg, vec![])).await
    }

    /// Op `fetch_blobs`: elements by key.
    pub async fn fetch_blobs(&self, keys: &[Key]) -> Result<Vec<Element>> {
        let msg = BlobsRequestMessage { blob_keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect() };
        self.blobs_call("fetch_blobs", ContentBuilder::new().finish(&msg, vec![])).await
    }

    async fn blobs_call(&self, op: &str, content: Bytes) -> Result<Vec<Element>> {
        let reply = self.call(op, content).await?;
        let blobs: BlobsMessage = reply.payload().map_err(protocol)?;
        reply.unwrap_all(&blobs.blob_elements).map_err(protocol)
    }

    /// Op `put_blobs`: stores elements as they are.
    pub async fn put_blobs(&self, elements: &[Element]) -> Result<()> {
        let mut b = ContentBuilder::new();
        let links: Vec<CasRef> = elements.iter().map(|e| b.wrapped(e)).collect();
        let children = links_of(&links);
        self.call("put_blobs", b.finish(&BlobsMessage { blob_elements: links }, children)).await?;
        Ok(())
    }

    /// Op `get_object`: a repository's object at a branch (default master), commit or treeish.
    pub async fn get_object(&self, id: IdRef, excluded: &[TypeId]) -> Result<RemoteObject> {
        let mut b = ContentBuilder::new();
        let id_link = b.object(&id, vec![]);
        let ex: Vec<CasRef> = excluded.iter().map(|t| b.object(&gpb_type(*t), vec![])).collect();
        let msg = GetObjectRequestMessage { object_id: Some(id_link), excluded_object_types: ex };
        let children = links_of(msg.object_id.iter().chain(&msg.excluded_object_types));
        let reply = self.call("get_object", b.finish(&msg, children)).await?;
        let resp: GetObjectReplyMessage = reply.payload().map_err(protocol)?;
        let root_link =
            resp.retrieved_object.as_ref().ok_or_else(|| Error::Protocol("get_object returned no object".into()))?;
        let root = reply.linked(root_link).map_err(protocol)?.key();
        let mut excluded = Vec::new();
        for l in &resp.excluded_object_types {
            let t: dsf::proto::net::ooici::core::r#type::GpbType =
                reply.linked(l).map_err(protocol)?.decode_as().map_err(Error::Dsf)?;
            excluded.push(TypeId::new(t.object_id, t.version));
        }
        let payload = reply.msg.message_object.as_ref().map(|l| l.key.clone()).unwrap_or_default();
        let elements = reply
            .elements()
            .filter(|e| !excluded_echo(e, &resp) && e.key().as_bytes() != payload.as_slice())
            .cloned()
            .collect();
        Ok(RemoteObject { root, elements, excluded })
    }

    /// Op `get_lcs`: the life-cycle state of each resource, in request order.
    pub async fn get_lcs(&self, keys: &[&str]) -> Result<Vec<(String, i32)>> {
        let msg = GetLcsRequestMessage { keys: keys.iter().map(|k| (*k).to_owned()).collect() };
        let reply = self.call("get_lcs", ContentBuilder::new().finish(&msg, vec![])).await?;
        let resp: GetLcsResponseMessage = reply.payload().map_err(protocol)?;
        Ok(resp.key_lcs_pairs.into_iter().map(|p| (p.key.unwrap_or_default(), p.lcs.unwrap_or_default())).collect())
    }

    /// Op `extract_data`: the chunks of a slice of an `ArrayStructure`, in sequence order, each
    /// with its start index and its array object.
    pub async fn extract_data(&self, structure: Key, bounds: Vec<Bounds>) -> Result<Vec<(u64, Element)>> {
        let _one = self.state.extracting.lock().await;
        let (tx, mut rx) = mpsc::unbounded_channel();
        *self.state.chunks.lock().expect("not poisoned") = Some(tx);
        let msg = DataRequestMessage {
            structure_array_ref: Some(structure.as_bytes().to_vec()),
            request_bounds: bounds,
            data_routing_key: Some(self.endpoint().id().to_owned()),
        };
        let result = self.call("extract_data", ContentBuilder::new().finish(&msg, vec![])).await;
        let mut chunks: BTreeMap<i32, (u64, Element)> = BTreeMap::new();
        let outcome = match result {
            Err(e) => Err(e),
            Ok(_) => loop {
                // Chunks were sent before the reply, but are handled concurrently.
                match tokio::time::timeout(CHUNK_GRACE, rx.recv()).await {
                    Ok(Some((seq, max, start, e))) => {
                        chunks.insert(seq, (start, e));
                        if chunks.len() as i32 >= max {
                            break Ok(());
                        }
                    }
                    Ok(None) => break Err(Error::Protocol("the chunk channel closed".into())),
                    Err(_) if chunks.is_empty() => break Ok(()),
                    Err(_) => break Err(Error::Protocol("data chunks went missing".into())),
                }
            },
        };
        *self.state.chunks.lock().expect("not poisoned") = None;
        outcome?;
        Ok(chunks.into_values().collect())
    }
}

fn excluded_echo(e: &Element, resp: &GetObjectReplyMessage) -> bool {
    resp.excluded_object_types.iter().any(|l| l.key == e.key().as_bytes())
}

#[derive(Debug)]
struct PullParts {
    key: String,
    branches: Vec<Branch>,
    nicknames: BTreeMap<String, String>,
    commits: Vec<Element>,
    blobs: Vec<Element>,
}

/// What a pull lists as held (ION's have-list): every commit and, when head content is wanted,
/// every object.
fn have_keys(repo: &Repository, head_content: bool) -> Vec<Key> {
    dsf::sync::have_keys(repo, head_content)
}

fn protocol(e: ServiceError) -> Error {
    Error::Protocol(e.message)
}

/// What a fetch received.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The datastore's branches and their heads (more than one head: the branch diverged).
    pub branches: Vec<Branch>,
    /// The datastore's branch names → branch keys.
    pub nicknames: BTreeMap<String, String>,
    /// Commits and objects the repository lacked, verified.
    pub elements: Vec<Element>,
}

/// A repository's heads as a datastore keeps them.
pub fn heads_of(repo: &Repository) -> StoredHeads {
    StoredHeads::of(repo, 0)
}

fn nicknames_of(repo: &Repository) -> Vec<Nickname> {
    repo.nicknames().iter().map(|(n, b)| Nickname { name: n.clone(), branch: b.clone() }).collect()
}

/// Serves what a datastore asks the client: `fetch_blobs` for offered elements, and data
/// chunks of an extraction (one-way `noop`).
#[derive(Debug)]
struct ClientHandler(Arc<ClientState>);

impl Handler for ClientHandler {
    fn handle(self: Arc<Self>, req: Request) -> BoxFuture<'static, std::result::Result<Bytes, ServiceError>> {
        Box::pin(async move {
            let content = req.decode()?;
            match req.headers.op.as_str() {
                "fetch_blobs" => {
                    let ask: BlobsRequestMessage = content.payload()?;
                    let keys = keys_of(&ask.blob_keys)?;
                    let offers = self.0.offers.lock().expect("not poisoned");
                    let mut b = ContentBuilder::new();
                    let mut links = Vec::with_capacity(keys.len());
                    for k in &keys {
                        let e = offers
                            .get(k)
                            .ok_or_else(|| ServiceError::not_found(format!("element {k} is not offered")))?;
                        links.push(b.wrapped(e));
                    }
                    drop(offers);
                    self.0.served.fetch_add(keys.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    let children = links_of(&links);
                    Ok(b.finish(&BlobsMessage { blob_elements: links }, children))
                }
                "noop" => {
                    let chunk: DataChunkMessage = content.payload()?;
                    let link = chunk
                        .ndarray
                        .as_ref()
                        .ok_or_else(|| ServiceError::bad_request("a data chunk without values"))?;
                    let e = content.linked(link)?.clone();
                    let item = (
                        chunk.seq_number.unwrap_or_default(),
                        chunk.seq_max.unwrap_or_default(),
                        chunk.start_index.unwrap_or_default().max(0) as u64,
                        e,
                    );
                    if let Some(tx) = self.0.chunks.lock().expect("not poisoned").as_ref() {
                        let _ = tx.send(item);
                    }
                    Ok(Bytes::new())
                }
                op => Err(ServiceError::new(
                    dsf::proto::net::ooici::core::message::ion_msg::ResponseCodes::MethodNotAllowed,
                    format!("a datastore client does not serve {op:?}"),
                )),
            }
        })
    }
}
