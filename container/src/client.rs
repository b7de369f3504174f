//! The client side of the datastore over AMQP: push, pull, clone, remote checkout, fetch, and
//! the other datastore operations, for repositories held in memory, and clone and pull into a
//! store as parts arrive.
//!
//! Between DSF peers a pull is negotiated on commit keys (DSF extension fields of ION's
//! messages) and every transfer travels in parts of at most the part size, each asked for once
//! the previous one arrived; each part waits at most the timeout. ION peers are spoken to in
//! ION's protocol with [`AmqpClient::with_ion_protocol`].
//!
//! A client is a process of its own (it has a queue for replies). While it awaits its own push
//! it serves `fetch_blobs` for the elements it offered, because ION's datastore pulls a push's
//! elements from the pusher. This client also sends the elements along with the push (a DSF
//! extension field), so a datastore of ours stores a push in one round trip.
//!
//! The client remembers, per repository, the heads the datastore had at the last exchange; a
//! push then offers only commits and elements that are not reachable from those heads (equal
//! subgraphs are not descended). Without that knowledge it offers everything, as ION did.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use dsf::proto::dsf::store::Nickname;
use dsf::proto::net::ooici::cdm::syntactic::Bounds;
use dsf::proto::net::ooici::core::link::{CasRef, IdRef};
use dsf::proto::net::ooici::core::message::ion_msg::ResponseCodes;
use dsf::proto::net::ooici::core::workbench_messages::{
    BlobsMessage, BlobsRequestMessage, DataChunkMessage, DataRequestMessage, GetLcsRequestMessage,
    GetLcsResponseMessage, GetObjectReplyMessage, GetObjectRequestMessage, PullMessage, PullResponseMessage,
    PushMessage, RepositoryState, RequestCommitBlobsMessage,
};
use dsf::store::persist::{StoredHeads, StoredRepository};
use dsf::store::{BlobRow, Store};
use dsf::{Branch, Checkout, Element, HashAlgorithm, Key, Registry, Repository, TypeId};
use futures::future::BoxFuture;
use tokio::sync::mpsc;

use crate::amqp::{Container, Endpoint, Handler, Process, Request};
use crate::content::{Content, ContentBuilder, gpb_type};
use crate::datastore::service::{SERVICE, head_element, keys_of, links_of, read_head};
use crate::datastore::transfer::DEFAULT_PART_BYTES;
use crate::error::{Error, Result, ServiceError};

/// Pushes whose elements total at most this many bytes carry them along; larger ones leave the
/// datastore to fetch what it lacks.
pub const INLINE_LIMIT: usize = 8 << 20;

/// Types a pull or clone leaves out unless told otherwise, as ION's did: array payloads
/// (`ArrayStructure` and what hangs below it).
pub const DEFAULT_EXCLUDED: [TypeId; 1] = [TypeId::ARRAY_STRUCTURE];

/// How many of a repository's most recent commits a negotiated pull or push names as held.
pub const HAVE_LIMIT: usize = 8192;

/// The most keys one `fetch_blobs` request of a transfer names.
const KEYS_PER_REQUEST: usize = 8192;

/// How long to wait for data chunks that trail an extract_data reply.
const CHUNK_GRACE: Duration = Duration::from_secs(15);

/// A datastore client over AMQP.
#[derive(Debug)]
pub struct AmqpClient {
    process: Process,
    target: String,
    timeout: Option<Duration>,
    inline_limit: usize,
    part_bytes: usize,
    ion_protocol: bool,
    progress: Option<Progress>,
    state: Arc<ClientState>,
}

/// A callback told, after each part of a transfer, what the transfer moved so far.
#[derive(Clone)]
pub struct Progress(pub Arc<dyn Fn(Transferred) + Send + Sync>);

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress")
    }
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
        Ok(AmqpClient {
            process,
            target,
            timeout: None,
            inline_limit: INLINE_LIMIT,
            part_bytes: DEFAULT_PART_BYTES,
            ion_protocol: false,
            progress: None,
            state,
        })
    }

    /// Sets the RPC timeout of every call (default 15 s). A transfer in bounded parts waits
    /// this long for each part: one that keeps moving never times out, one whose peer stops
    /// answering fails with [`Error::Stalled`].
    pub fn with_timeout(mut self, timeout: Duration) -> AmqpClient {
        self.timeout = Some(timeout);
        self
    }

    /// Sets the largest part of a transfer, in bytes of elements (default
    /// [`DEFAULT_PART_BYTES`]): the bound asked of a datastore's replies (pages of commits,
    /// `fetch_blobs`) and of each `put_blobs` a large push sends. An element larger than the
    /// bound travels alone.
    pub fn with_part_bytes(mut self, bytes: usize) -> AmqpClient {
        self.part_bytes = bytes.max(1);
        self
    }

    /// Calls `progress` after each part of a transfer (pages of commits, `fetch_blobs` and
    /// `put_blobs` parts) with the parts, elements and bytes moved so far.
    pub fn with_progress(mut self, progress: Progress) -> AmqpClient {
        self.progress = Some(progress);
        self
    }

    fn tally(&self) -> Tally {
        Tally { progress: self.progress.clone(), ..Tally::default() }
    }

    /// Speaks ION's protocol only, as an ION peer does: pulls list every key held (no DSF
    /// extension fields), pushes list keys and let the datastore fetch what it lacks, and
    /// `fetch_blobs` asks for no bound. For talking to ION's datastore, and for tests.
    pub fn with_ion_protocol(mut self) -> AmqpClient {
        self.ion_protocol = true;
        self.inline_limit = 0;
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
    ///
    /// When the offer exceeds the inline limit and the client does not know what the datastore
    /// holds (from an earlier exchange), a DSF client first negotiates: it asks which of its
    /// recent commits the datastore holds (a negotiated pull with `ask_commits`); a smaller
    /// push goes whole in one round trip. Elements up to the inline limit travel in the push;
    /// a larger push first stores its objects with `put_blobs` in parts of at most the part
    /// size, each sent once the previous one is acknowledged, then pushes the commits and
    /// heads.
    pub async fn push_all(&self, repos: &[&Repository]) -> Result<()> {
        let mut b = ContentBuilder::new();
        let mut states = Vec::with_capacity(repos.len());
        let mut offered = Vec::new();
        let mut tally = self.tally();
        for repo in repos {
            let remembered = self.remembered_heads(repo);
            let mut offer = offer_of(repo, remembered.as_deref().unwrap_or_default())?;
            // A push beyond the inline limit from a client that does not know what the
            // datastore holds negotiates first (small ones go whole, in one round trip).
            if remembered.is_none() && !self.ion_protocol && offer.bytes > self.inline_limit {
                let known = self.negotiate(repo, &mut tally).await?;
                offer = offer_of(repo, &known)?;
            }
            let (state, elements, staged) = self.push_state(repo, &mut b, offer);
            self.put_parts(staged, &mut tally).await?;
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
        result.map_err(|e| tally.stalled(e))?;
        let mut remote = self.state.remote_heads.lock().expect("not poisoned");
        for repo in repos {
            remote.insert(repo.key().to_owned(), repo.branches().iter().flat_map(|b| b.heads.clone()).collect());
        }
        Ok(())
    }

    /// The heads of `repo` the datastore had at the last exchange, among the commits here.
    fn remembered_heads(&self, repo: &Repository) -> Option<Vec<Key>> {
        self.state
            .remote_heads
            .lock()
            .expect("not poisoned")
            .get(repo.key())
            .map(|h| h.iter().copied().filter(|k| repo.commit_info(*k).is_ok()).collect())
    }

    /// Those of the repository's recent commits the datastore says it holds (a negotiated
    /// pull with `ask_commits`); none if it lacks the repository.
    async fn negotiate(&self, repo: &Repository, tally: &mut Tally) -> Result<Vec<Key>> {
        let asked = recent_commits(repo, HAVE_LIMIT);
        let msg = PullMessage {
            repository_key: Some(repo.key().to_owned()),
            get_head_content: Some(false),
            negotiated: Some(true),
            max_reply_bytes: Some(self.part_bytes as u64),
            ask_commits: asked.iter().map(|k| k.as_bytes().to_vec()).collect(),
            ..Default::default()
        };
        let reply = match self.call("pull", ContentBuilder::new().finish(&msg, vec![])).await {
            Ok(reply) => reply,
            Err(e) if e.code() == Some(ResponseCodes::NotFound) => return Ok(Vec::new()),
            Err(e) => return Err(tally.stalled(e)),
        };
        tally.parts += 1;
        let resp: PullResponseMessage = reply.payload().map_err(protocol)?;
        if resp.have_commits.len() != asked.len() {
            // A datastore that does not know the extension answers with a pull: nothing known.
            return Ok(Vec::new());
        }
        Ok(asked.into_iter().zip(resp.have_commits).filter(|(_, h)| *h).map(|(k, _)| k).collect())
    }

    /// Stores elements with `put_blobs`, in parts of at most the part size (an element larger
    /// than that alone), one part at a time.
    async fn put_parts(&self, elements: Vec<Element>, tally: &mut Tally) -> Result<()> {
        let mut part: Vec<Element> = Vec::new();
        let mut bytes = 0usize;
        let mut rest = elements.into_iter().peekable();
        while let Some(e) = rest.next() {
            bytes += e.encoded_len();
            part.push(e);
            let full = rest.peek().is_none_or(|n| bytes + n.encoded_len() > self.part_bytes);
            if full {
                self.put_blobs(&part).await.map_err(|e| tally.stalled(e))?;
                tally.part(0, bytes as u64);
                part.clear();
                bytes = 0;
            }
        }
        Ok(())
    }

    /// The repository state of a push, the elements it offers (served to `fetch_blobs`), and
    /// the objects to store with `put_blobs` before the push (when the offer is larger than the
    /// inline limit and the push is not ION-style).
    fn push_state(
        &self,
        repo: &Repository,
        b: &mut ContentBuilder,
        offer: Offer,
    ) -> (RepositoryState, Vec<Element>, Vec<Element>) {
        let Offer { elements: mut offered, objects, bytes } = offer;
        let heads = heads_of(repo);
        let head = b.wrapped(&head_element(repo.key(), &heads));
        let inline = bytes <= self.inline_limit;
        let staged_first = !inline && !self.ion_protocol && self.inline_limit > 0;
        let (blob_elements, blob_keys, staged) = if inline {
            (offered.iter().map(|e| b.wrapped(e)).collect(), Vec::new(), Vec::new())
        } else if staged_first {
            // The objects are stored first; the commits travel in the push.
            (offered[objects..].iter().map(|e| b.wrapped(e)).collect(), Vec::new(), offered.drain(..objects).collect())
        } else {
            // Keys of elements sent along need not be listed: the datastore asks only for
            // listed keys it lacks that did not come along.
            (Vec::new(), offered.iter().map(|e| e.key().as_bytes().to_vec()).collect(), Vec::new())
        };
        let state = RepositoryState {
            repository_key: Some(repo.key().to_owned()),
            repo_head_element: Some(head),
            blob_keys,
            blob_elements,
            nicknames: nicknames_of(repo),
        };
        (state, offered, staged)
    }

    /// Pulls a repository the client has: commits it lacks and, with `head_content`, the
    /// content of every head it lacks, not below `excluded` types (`None`: the default
    /// exclusions, [`DEFAULT_EXCLUDED`]; `Some(vec![])`: every type), which become the
    /// repository's excluded types. Received heads fast-forward or diverge the local branches;
    /// the workspace is not checked out.
    ///
    /// A DSF client negotiates: it names its recent commits, receives the commits it lacks in
    /// bounded pages, then fetches the content it lacks level by level with bounded
    /// `fetch_blobs` requests, one part at a time. When the pull takes types the repository
    /// excluded until now, the walk descends below the objects held, so what was left out
    /// comes too.
    pub async fn pull(&self, repo: &mut Repository, head_content: bool, excluded: Option<Vec<TypeId>>) -> Result<()> {
        let excluded = exclusions(excluded);
        if self.ion_protocol {
            let parts =
                self.request_pull(repo.key(), &have_keys(repo, head_content), head_content, Some(&excluded)).await?;
            repo.set_excluded_types(excluded);
            return self.apply_pull(repo, parts);
        }
        let mut tally = self.tally();
        let have = recent_commits(repo, HAVE_LIMIT);
        let pages = self.commit_pages(repo.key(), &have, &mut tally).await?;
        let descend = takes_more(&repo.excluded_for(&Checkout::branch(dsf::MASTER_BRANCH)), &excluded);
        repo.add_elements(pages.commits)?;
        if head_content {
            let roots = roots_of(repo, &pages.branches);
            self.fetch_graphs(&mut RepositorySink(repo), roots, &excluded, descend, &mut tally).await?;
        }
        repo.set_excluded_types(excluded);
        self.apply_heads(repo, pages.branches, pages.nicknames)
    }

    /// Fetches what a repository lacks without changing it: the datastore's branches as it
    /// keeps them, the commits the repository lacks and, with `head_content`, the heads'
    /// content it lacks (every type). An unknown repository is a 404 application error.
    pub async fn fetch(&self, repo: &Repository, head_content: bool) -> Result<Fetched> {
        if self.ion_protocol {
            let parts = self.request_pull(repo.key(), &have_keys(repo, head_content), head_content, None).await?;
            self.assume_heads(repo.key(), parts.branches.iter().flat_map(|b| b.heads.iter().copied()).collect());
            let PullParts { branches, nicknames, commits, blobs, .. } = parts;
            return Ok(Fetched { branches, nicknames, elements: commits.into_iter().chain(blobs).collect() });
        }
        let mut tally = self.tally();
        let pages = self.commit_pages(repo.key(), &recent_commits(repo, HAVE_LIMIT), &mut tally).await?;
        let mut sink = FetchSink { repo, received: HashMap::new() };
        for c in pages.commits {
            if !repo.elements().contains(&c.key()) {
                sink.received.insert(c.key(), c);
            }
        }
        if head_content {
            let roots = pages
                .branches
                .iter()
                .flat_map(|b| b.heads.iter())
                .filter_map(|h| {
                    let e = sink.received.get(h).or_else(|| repo.elements().get(h))?;
                    dsf::Commit::from_element(e).ok()?.root.map(|r| r.key)
                })
                .collect();
            self.fetch_graphs(&mut sink, roots, &[], false, &mut tally).await?;
        }
        self.assume_heads(repo.key(), pages.branches.iter().flat_map(|b| b.heads.iter().copied()).collect());
        Ok(Fetched {
            branches: pages.branches,
            nicknames: pages.nicknames,
            elements: sink.received.into_values().collect(),
        })
    }

    /// Tells the client which heads the datastore holds for a repository (learnt in an
    /// earlier session), so that a push offers only what those heads do not reach.
    pub fn assume_heads(&self, key: &str, heads: Vec<Key>) {
        self.state.remote_heads.lock().expect("not poisoned").insert(key.to_owned(), heads);
    }

    /// Clones a repository: its heads, every commit, and (with `head_content`) the heads'
    /// content, not below `excluded` types (`None`: [`DEFAULT_EXCLUDED`]; `Some(vec![])`:
    /// every type). Nothing is checked out. An unknown repository is a 404 application error.
    pub async fn clone_repository(
        &self,
        key: &str,
        head_content: bool,
        excluded: Option<Vec<TypeId>>,
    ) -> Result<Repository> {
        let excluded = exclusions(excluded);
        if self.ion_protocol {
            let parts = self.request_pull(key, &[], head_content, Some(&excluded)).await?;
            let mut repo = Repository::with_key(self.endpoint().registry().clone(), key, algorithm_of(&parts.branches));
            repo.set_excluded_types(excluded);
            self.apply_pull(&mut repo, parts)?;
            return Ok(repo);
        }
        let mut tally = self.tally();
        let pages = self.commit_pages(key, &[], &mut tally).await?;
        let mut repo = Repository::with_key(self.endpoint().registry().clone(), key, algorithm_of(&pages.branches));
        repo.add_elements(pages.commits)?;
        if head_content {
            let roots = roots_of(&repo, &pages.branches);
            self.fetch_graphs(&mut RepositorySink(&mut repo), roots, &excluded, false, &mut tally).await?;
        }
        repo.set_excluded_types(excluded);
        self.apply_heads(&mut repo, pages.branches, pages.nicknames)?;
        Ok(repo)
    }

    /// Clones a repository into `store` as its parts arrive: commits, then (with
    /// `head_content`) the heads' content not below `excluded` types (`None`:
    /// [`DEFAULT_EXCLUDED`]), written to the store part by part, then the heads. At most one
    /// part of content is held in memory (and the keys of the walk). The store must not hold
    /// the repository yet.
    pub async fn clone_into<S: Store>(
        &self,
        store: &S,
        key: &str,
        head_content: bool,
        excluded: Option<Vec<TypeId>>,
    ) -> Result<Transferred> {
        let registry = self.endpoint().registry().clone();
        if StoredRepository::open(store, registry.clone(), key).await?.is_some() {
            return Err(Error::Dsf(dsf::Error::State(format!("the store already holds repository {key}"))));
        }
        let mut tally = self.tally();
        let pages = self.commit_pages(key, &[], &mut tally).await?;
        let repo = Repository::with_key(registry, key, algorithm_of(&pages.branches));
        let mut stored = StoredRepository::create(store, repo);
        self.complete_into(store, &mut stored, pages, head_content, &exclusions(excluded), false, &mut tally).await?;
        Ok(tally.done())
    }

    /// Pulls into a repository kept in `store`, writing what arrives part by part: the
    /// commits it lacks, then (with `head_content`) the heads' content it lacks, not below
    /// `excluded` types (`None`: [`DEFAULT_EXCLUDED`]), then the heads, saved by
    /// compare-and-set. With `complete`, the walk also descends below the objects the store
    /// holds, so elements left out before (a partial clone) come too.
    pub async fn pull_into<S: Store>(
        &self,
        store: &S,
        key: &str,
        head_content: bool,
        excluded: Option<Vec<TypeId>>,
        complete: bool,
    ) -> Result<Transferred> {
        let registry = self.endpoint().registry().clone();
        let mut stored = StoredRepository::open(store, registry, key)
            .await?
            .ok_or_else(|| Error::Dsf(dsf::Error::State(format!("the store holds no repository {key}"))))?;
        let mut tally = self.tally();
        let pages = self.commit_pages(key, &recent_commits(stored.repository(), HAVE_LIMIT), &mut tally).await?;
        self.complete_into(store, &mut stored, pages, head_content, &exclusions(excluded), complete, &mut tally)
            .await?;
        Ok(tally.done())
    }

    #[allow(clippy::too_many_arguments)]
    async fn complete_into<S: Store>(
        &self,
        store: &S,
        stored: &mut StoredRepository<'_, S>,
        pages: CommitPages,
        head_content: bool,
        excluded: &[TypeId],
        descend: bool,
        tally: &mut Tally,
    ) -> Result<()> {
        let CommitPages { branches, nicknames, commits } = pages;
        let repo = stored.repository();
        let fresh: Vec<Element> = commits.into_iter().filter(|c| repo.commit_info(c.key()).is_err()).collect();
        // Added through the stored repository, which gives new commits their generations.
        stored.add_elements(fresh).await?;
        if head_content {
            let repo = stored.repository();
            let roots = roots_of(repo, &branches);
            let mut sink = StoreSink::new(store, repo.registry().clone());
            self.fetch_graphs(&mut sink, roots, excluded, descend, tally).await?;
            // The roots that index attributes are read from (associations, resources, terms).
            let kept = sink.kept;
            stored.add_elements(kept).await?;
        }
        stored.receive_branches(branches.clone(), nicknames).await?;
        stored.save().await?;
        self.state.remote_heads.lock().expect("not poisoned").insert(
            stored.repository().key().to_owned(),
            branches.iter().flat_map(|b| b.heads.iter().copied()).collect(),
        );
        Ok(())
    }

    /// Every page of a negotiated pull: the heads (as of the first page) and the commits not
    /// in `have` nor below them.
    async fn commit_pages(&self, key: &str, have: &[Key], tally: &mut Tally) -> Result<CommitPages> {
        let mut resume: Vec<Vec<u8>> = Vec::new();
        let mut first: Option<(Vec<Branch>, BTreeMap<String, String>)> = None;
        let mut commits = Vec::new();
        loop {
            let msg = PullMessage {
                repository_key: Some(key.to_owned()),
                commit_keys: have.iter().map(|k| k.as_bytes().to_vec()).collect(),
                get_head_content: Some(false),
                excluded_types: Vec::new(),
                negotiated: Some(true),
                max_reply_bytes: Some(self.part_bytes as u64),
                resume_from: std::mem::take(&mut resume),
                ask_commits: Vec::new(),
            };
            let reply =
                self.call("pull", ContentBuilder::new().finish(&msg, vec![])).await.map_err(|e| tally.stalled(e))?;
            let resp: PullResponseMessage = reply.payload().map_err(protocol)?;
            let head =
                resp.repo_head_element.as_ref().ok_or_else(|| Error::Protocol("a pull reply without a head".into()))?;
            let (branches, _) = read_head(&reply.unwrapped(head).map_err(protocol)?).map_err(protocol)?;
            let page = reply.unwrap_all(&resp.commit_elements).map_err(protocol)?;
            if page.iter().any(|e| e.ty() != TypeId::COMMIT) {
                return Err(Error::Protocol("a pull reply's commit_elements hold something else than commits".into()));
            }
            if !resp.blob_elements.is_empty() {
                return Err(Error::Protocol("a negotiated pull reply carries content".into()));
            }
            tally.part(page.len(), page.iter().map(|e| e.encoded_len() as u64).sum());
            commits.extend(page);
            if first.is_none() {
                let nicknames = resp.nicknames.iter().map(|n| (n.name.clone(), n.branch.clone())).collect();
                first = Some((branches, nicknames));
            }
            if resp.resume_from.is_empty() {
                break;
            }
            if resp.commit_elements.is_empty() {
                return Err(Error::Protocol("a page of commits was empty yet not the last".into()));
            }
            resume = resp.resume_from;
        }
        let (branches, nicknames) = first.expect("one page at least");
        Ok(CommitPages { branches, nicknames, commits })
    }

    /// Fetches the graphs below `roots` that `sink` lacks, level by level, in bounded
    /// `fetch_blobs` parts, one at a time, each written to the sink as it arrives. Links to
    /// `excluded` types are not followed. A key the sink holds is not descended unless
    /// `descend` (then every element below is checked, and what is missing comes).
    async fn fetch_graphs(
        &self,
        sink: &mut dyn ElementSink,
        roots: Vec<Key>,
        excluded: &[TypeId],
        descend: bool,
        tally: &mut Tally,
    ) -> Result<()> {
        let registry = self.endpoint().registry().clone();
        let mut seen: HashSet<Key> = HashSet::new();
        let mut level: Vec<Key> = roots;
        level.sort_unstable();
        level.dedup();
        if descend {
            level.retain(|k| seen.insert(*k));
        }
        while !level.is_empty() {
            let mut next: Vec<Key> = Vec::new();
            for chunk in level.chunks(KEYS_PER_REQUEST) {
                let held = sink.held(chunk, excluded).await?;
                let mut want: Vec<Key> = Vec::new();
                for (k, h) in chunk.iter().zip(held) {
                    match h {
                        Some(children) if descend => next.extend(children),
                        Some(_) => {}
                        None => want.push(*k),
                    }
                }
                while !want.is_empty() {
                    let got = self.fetch_part(&want, tally).await?;
                    let wanted: HashSet<Key> = want.iter().copied().collect();
                    let keys: HashSet<Key> = got.iter().map(|e| e.key()).collect();
                    if got.is_empty() || keys.iter().any(|k| !wanted.contains(k)) {
                        return Err(Error::Protocol(
                            "a fetch_blobs reply held no asked element, or one not asked for".into(),
                        ));
                    }
                    for e in &got {
                        next.extend(links_below(e, &registry, excluded)?);
                    }
                    want.retain(|k| !keys.contains(k));
                    sink.accept(got).await?;
                }
            }
            next.sort_unstable();
            next.dedup();
            if descend {
                next.retain(|k| seen.insert(*k));
            }
            level = next;
        }
        Ok(())
    }

    /// One bounded `fetch_blobs` part: the first of `keys` the datastore sends within the
    /// part size.
    async fn fetch_part(&self, keys: &[Key], tally: &mut Tally) -> Result<Vec<Element>> {
        let msg = BlobsRequestMessage {
            blob_keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            max_reply_bytes: (!self.ion_protocol).then_some(self.part_bytes as u64),
        };
        let got = self
            .blobs_call("fetch_blobs", ContentBuilder::new().finish(&msg, vec![]))
            .await
            .map_err(|e| tally.stalled(e))?;
        tally.part(got.len(), got.iter().map(|e| e.encoded_len() as u64).sum());
        Ok(got)
    }

    fn apply_heads(
        &self,
        repo: &mut Repository,
        branches: Vec<Branch>,
        nicknames: BTreeMap<String, String>,
    ) -> Result<()> {
        repo.receive_branches(branches.clone(), nicknames)?;
        self.state
            .remote_heads
            .lock()
            .expect("not poisoned")
            .insert(repo.key().to_owned(), branches.iter().flat_map(|b| b.heads.iter().copied()).collect());
        Ok(())
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
            ..Default::default()
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

    /// Checks out, first fetching from the datastore every element the checkout needs that
    /// the repository lacks (ION's behaviour: a partial clone becomes complete), level by
    /// level with bounded `fetch_blobs` requests.
    pub async fn checkout(&self, repo: &mut Repository, how: Checkout) -> Result<()> {
        let roots = repo.checkout_roots(&how)?;
        let excluded = repo.excluded_for(&how);
        self.fetch_graphs(&mut RepositorySink(repo), roots, &excluded, true, &mut self.tally()).await?;
        repo.checkout(how)?;
        Ok(())
    }

    /// Every element reachable from `root`, not below `excluded` types: from a DSF client, a
    /// walk in bounded `fetch_blobs` parts; from an ION-style one, ION's op `checkout` (one
    /// reply).
    pub async fn remote_checkout(&self, root: Key, excluded: &[TypeId]) -> Result<Vec<Element>> {
        if !self.ion_protocol {
            let empty = Repository::new(self.endpoint().registry().clone());
            let mut sink = FetchSink { repo: &empty, received: HashMap::new() };
            self.fetch_graphs(&mut sink, vec![root], excluded, false, &mut self.tally()).await?;
            return Ok(sink.received.into_values().collect());
        }
        let msg = RequestCommitBlobsMessage {
            commit_root_object: Some(root.as_bytes().to_vec()),
            excluded_types: excluded.iter().map(|t| gpb_type(*t)).collect(),
        };
        self.blobs_call("checkout", ContentBuilder::new().finish(&msg, vec![])).await
    }

    /// Op `fetch_blobs`: elements by key.
    pub async fn fetch_blobs(&self, keys: &[Key]) -> Result<Vec<Element>> {
        let msg = BlobsRequestMessage {
            blob_keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
            max_reply_bytes: None,
        };
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

/// What a push offers: commits the datastore is not known to have, then (before them in
/// `elements`, `objects` of them) the elements reachable from their roots but not from the
/// commits in `known`.
struct Offer {
    elements: Vec<Element>,
    objects: usize,
    bytes: usize,
}

fn offer_of(repo: &Repository, known: &[Key]) -> Result<Offer> {
    if repo.commits().next().is_none() {
        return Err(Error::Dsf(dsf::Error::State(format!("cannot push repository {}: it has no commits", repo.key()))));
    }
    let heads: Vec<Key> = repo.branches().iter().flat_map(|b| b.heads.iter().copied()).collect();
    let new_commits =
        dsf::sync::new_commits(&heads, known, |k| repo.commit_info(*k).ok().map(|c| c.parent_keys().collect()));
    // The delta walk puts the objects first and the new commits last.
    let elements = dsf::sync::push_delta(repo, &new_commits, known);
    let objects = elements.iter().filter(|e| e.ty() != TypeId::COMMIT).count();
    let bytes = elements.iter().map(|e| e.encoded_len()).sum();
    Ok(Offer { elements, objects, bytes })
}

/// The exclusions of a pull or clone: `None` means [`DEFAULT_EXCLUDED`], `Some(vec![])` every
/// type.
pub fn exclusions(excluded: Option<Vec<TypeId>>) -> Vec<TypeId> {
    excluded.unwrap_or_else(|| DEFAULT_EXCLUDED.to_vec())
}

/// Whether a walk with exclusions `now` takes a type that `before` left out.
fn takes_more(before: &[TypeId], now: &[TypeId]) -> bool {
    before.iter().any(|t| !now.contains(t))
}

/// Up to `limit` commits of `repo`, breadth first from its heads (the most recent first).
pub fn recent_commits(repo: &Repository, limit: usize) -> Vec<Key> {
    let mut seen: HashSet<Key> = HashSet::new();
    let mut queue: VecDeque<Key> =
        repo.branches().iter().flat_map(|b| b.heads.iter().copied()).filter(|k| seen.insert(*k)).collect();
    let mut out = Vec::new();
    while let Some(k) = queue.pop_front() {
        if out.len() >= limit {
            break;
        }
        let Ok(c) = repo.commit_info(k) else { continue };
        out.push(k);
        for p in &c.parents {
            if seen.insert(p.commit) {
                queue.push_back(p.commit);
            }
        }
    }
    out
}

/// The root objects of the heads of `branches`, among the commits `repo` holds.
fn roots_of(repo: &Repository, branches: &[Branch]) -> Vec<Key> {
    branches
        .iter()
        .flat_map(|b| b.heads.iter())
        .filter_map(|h| repo.commit_info(*h).ok().and_then(|c| c.root.as_ref().map(|r| r.key)))
        .collect()
}

/// The hash algorithm of a repository whose heads are `branches`.
fn algorithm_of(branches: &[Branch]) -> HashAlgorithm {
    branches.iter().flat_map(|b| b.heads.first()).map(|k| k.algorithm()).next().unwrap_or_default()
}

/// The keys `e` links to, not following links to `excluded` types.
fn links_below(e: &Element, registry: &Registry, excluded: &[TypeId]) -> Result<Vec<Key>> {
    if excluded.is_empty() {
        return Ok(e.children().to_vec());
    }
    Ok(e.links(registry)?.into_iter().filter(|(_, ty)| !excluded.contains(ty)).map(|(k, _)| k).collect())
}

/// What a transfer into a store moved.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transferred {
    /// Messages (parts) received or sent.
    pub parts: u64,
    /// Elements received (commits and objects).
    pub elements: u64,
    /// Bytes of the elements received.
    pub bytes: u64,
    /// Bytes of elements in the largest part.
    pub largest_part: u64,
}

/// The running count of a transfer, which turns a timeout after its first part into
/// [`Error::Stalled`].
#[derive(Debug, Default)]
struct Tally {
    parts: u64,
    elements: u64,
    bytes: u64,
    largest_part: u64,
    progress: Option<Progress>,
}

impl Tally {
    fn stalled(&self, e: Error) -> Error {
        match e {
            Error::Timeout { op, target, after } if self.parts > 0 => {
                Error::Stalled { op, target, after, parts: self.parts, bytes: self.bytes }
            }
            e => e,
        }
    }

    fn done(&self) -> Transferred {
        Transferred { parts: self.parts, elements: self.elements, bytes: self.bytes, largest_part: self.largest_part }
    }

    /// Counts one part of `elements` elements and `bytes` bytes.
    fn part(&mut self, elements: usize, bytes: u64) {
        self.parts += 1;
        self.elements += elements as u64;
        self.bytes += bytes;
        self.largest_part = self.largest_part.max(bytes);
        if let Some(p) = &self.progress {
            (p.0)(self.done());
        }
    }
}

/// The pages of a negotiated pull.
#[derive(Debug)]
struct CommitPages {
    branches: Vec<Branch>,
    nicknames: BTreeMap<String, String>,
    commits: Vec<Element>,
}

/// Where the elements of a transfer go as they arrive.
pub trait ElementSink: Send {
    /// For each of `keys`: the keys the element links to (not following links to `excluded`
    /// types) if the sink holds it, else `None`.
    fn held<'a>(&'a mut self, keys: &'a [Key], excluded: &'a [TypeId]) -> BoxFuture<'a, Result<Vec<Option<Vec<Key>>>>>;

    /// Takes received (verified) elements.
    fn accept(&mut self, elements: Vec<Element>) -> BoxFuture<'_, Result<()>>;
}

/// A repository in memory as a sink.
#[derive(Debug)]
pub struct RepositorySink<'r>(pub &'r mut Repository);

impl ElementSink for RepositorySink<'_> {
    fn held<'a>(&'a mut self, keys: &'a [Key], excluded: &'a [TypeId]) -> BoxFuture<'a, Result<Vec<Option<Vec<Key>>>>> {
        Box::pin(async move {
            let repo = &*self.0;
            keys.iter()
                .map(|k| repo.elements().get(k).map(|e| links_below(e, repo.registry(), excluded)).transpose())
                .collect()
        })
    }

    fn accept(&mut self, elements: Vec<Element>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move { Ok(self.0.add_elements(elements)?) })
    }
}

/// A fetch's sink: what the repository lacks is kept aside, the repository is not changed.
struct FetchSink<'r> {
    repo: &'r Repository,
    received: HashMap<Key, Element>,
}

impl ElementSink for FetchSink<'_> {
    fn held<'a>(&'a mut self, keys: &'a [Key], excluded: &'a [TypeId]) -> BoxFuture<'a, Result<Vec<Option<Vec<Key>>>>> {
        Box::pin(async move {
            keys.iter()
                .map(|k| {
                    let e = self.received.get(k).or_else(|| self.repo.elements().get(k));
                    e.map(|e| links_below(e, self.repo.registry(), excluded)).transpose()
                })
                .collect()
        })
    }

    fn accept(&mut self, elements: Vec<Element>) -> BoxFuture<'_, Result<()>> {
        self.received.extend(elements.into_iter().map(|e| (e.key(), e)));
        Box::pin(async { Ok(()) })
    }
}

/// A store as a sink: received objects are written as blobs part by part, not kept, except
/// the few small objects a commit's index attributes are read from (associations, resources,
/// terms, and the `IDRef`s they link to).
pub struct StoreSink<'s, S> {
    store: &'s S,
    registry: Registry,
    /// Small objects kept for the commits' index attributes.
    pub kept: Vec<Element>,
}

impl<S> std::fmt::Debug for StoreSink<'_, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSink").field("kept", &self.kept.len()).finish()
    }
}

impl<'s, S: Store> StoreSink<'s, S> {
    /// A sink writing into `store`; stored elements are read with `registry`.
    pub fn new(store: &'s S, registry: Registry) -> StoreSink<'s, S> {
        StoreSink { store, registry, kept: Vec::new() }
    }
}

/// Types whose objects a commit's index attributes are read from, and `IDRef`.
fn indexed_type(ty: TypeId) -> bool {
    matches!(ty.object_id, 13 | 14 | 1102) || ty == TypeId::of::<IdRef>()
}

impl<S: Store> ElementSink for StoreSink<'_, S> {
    fn held<'a>(&'a mut self, keys: &'a [Key], excluded: &'a [TypeId]) -> BoxFuture<'a, Result<Vec<Option<Vec<Key>>>>> {
        Box::pin(async move {
            let rows = self.store.get_blobs(keys.to_vec()).await.map_err(dsf::Error::from)?;
            let mut out = Vec::with_capacity(rows.len());
            for row in rows {
                let Some(row) = row else {
                    out.push(None);
                    continue;
                };
                let links = if excluded.is_empty() {
                    dsf::element::decode_children(&row.children)?
                } else {
                    links_below(&Element::from_stored(&row.element, &row.children)?, &self.registry, excluded)?
                };
                out.push(Some(links));
            }
            Ok(out)
        })
    }

    fn accept(&mut self, elements: Vec<Element>) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let rows: Vec<BlobRow> = elements
                .iter()
                .map(|e| BlobRow { key: e.key(), element: e.encode().into(), children: e.encode_children().into() })
                .collect();
            self.kept.extend(elements.into_iter().filter(|e| indexed_type(e.ty())));
            if !rows.is_empty() {
                self.store.put_blobs(rows).await.map_err(dsf::Error::from)?;
            }
            Ok(())
        })
    }
}
