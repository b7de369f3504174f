//! The datastore's AMQP front: ION's operations (spec §4.3) on a [`Datastore`].

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use dsf::proto::dsf::store::Nickname;
use dsf::proto::net::ooici::core::link::{CasRef, IdRef};
use dsf::proto::net::ooici::core::r#type::GpbType;
use dsf::proto::net::ooici::core::workbench_messages::get_lcs_response_message::KeyLcsPair;
use dsf::proto::net::ooici::core::workbench_messages::{
    BlobsMessage, BlobsRequestMessage, DataChunkMessage, DataReplyMessage, DataRequestMessage, GetLcsRequestMessage,
    GetLcsResponseMessage, GetObjectReplyMessage, GetObjectRequestMessage, PullMessage, PullResponseMessage,
    PushMessage, RequestCommitBlobsMessage,
};
use dsf::store::Store;
use dsf::store::persist::StoredHeads;
use dsf::sync::Heads;
use dsf::{Branch, Commit, Element, HashAlgorithm, Key, TypeId};
use futures::StreamExt as _;
use futures::future::BoxFuture;

use super::transfer::DEFAULT_PART_BYTES;
use super::{Datastore, Received};
use crate::amqp::{Handler, Request};
use crate::content::{Content, ContentBuilder, type_id};
use crate::error::ServiceError;

type Result<T> = std::result::Result<T, ServiceError>;

/// The service name: instances consume `<sysname>.datastore`.
pub const SERVICE: &str = "datastore";

/// The datastore as an AMQP service.
#[derive(Debug)]
pub struct DatastoreService<S> {
    ds: Datastore<S>,
    fetch_timeout: Option<Duration>,
    part_bytes: usize,
}

impl<S: Store + 'static> DatastoreService<S> {
    /// Serves `ds`.
    pub fn new(ds: Datastore<S>) -> DatastoreService<S> {
        DatastoreService { ds, fetch_timeout: None, part_bytes: DEFAULT_PART_BYTES }
    }

    /// Sets the largest part of a bounded transfer this service sends, in bytes of elements
    /// (default [`DEFAULT_PART_BYTES`]): a negotiated pull's page of commits, and a
    /// `fetch_blobs` reply whose asker bounds it (the smaller of the two bounds applies).
    pub fn with_part_bytes(mut self, bytes: usize) -> DatastoreService<S> {
        self.part_bytes = bytes.max(1);
        self
    }

    /// The bound of a reply, given the asker's.
    fn bound(&self, asked: Option<u64>) -> usize {
        asked.map_or(self.part_bytes, |a| usize::try_from(a).unwrap_or(usize::MAX).clamp(1, self.part_bytes))
    }

    /// The operations.
    pub fn datastore(&self) -> &Datastore<S> {
        &self.ds
    }

    async fn dispatch(&self, req: Request) -> Result<Bytes> {
        let op = req.headers.op.clone();
        match op.as_str() {
            "push" => self.push(&req).await,
            "pull" => self.pull(&req.decode()?).await,
            "checkout" => self.checkout(&req.decode()?).await,
            "fetch_blobs" => self.fetch_blobs(&req.decode()?).await,
            "put_blobs" => self.put_blobs(&req.decode()?).await,
            "get_object" => self.get_object(&req.decode()?).await,
            "get_lcs" => self.get_lcs(&req.decode()?).await,
            "extract_data" => self.extract_data(&req).await,
            _ => Err(ServiceError::new(
                dsf::proto::net::ooici::core::message::ion_msg::ResponseCodes::MethodNotAllowed,
                format!(
                    "unknown operation {op:?}: the datastore serves push, pull, checkout, fetch_blobs, put_blobs, \
                     get_object, get_lcs and extract_data"
                ),
            )),
        }
    }

    /// push: per repository state, find what the store lacks, fetch it from the pusher's
    /// reply queue unless it came along, then store it and move the heads.
    async fn push(&self, req: &Request) -> Result<Bytes> {
        let content = req.decode()?;
        let push: PushMessage = content.payload()?;
        for state in &push.repositories {
            let key = state.repository_key.clone().unwrap_or_default();
            let head = state
                .repo_head_element
                .as_ref()
                .ok_or_else(|| ServiceError::bad_request(format!("repository state {key} has no head")))?;
            let (branches, _) = read_head(&content.unwrapped(head)?)?;
            let blob_keys = keys_of(&state.blob_keys)?;
            let mut elements = content.unwrap_all(&state.blob_elements)?;
            let sent: HashSet<Key> = elements.iter().map(|e| e.key()).collect();
            let unsent: Vec<Key> = blob_keys.into_iter().filter(|k| !sent.contains(k)).collect();
            let need = self.ds.missing(&unsent).await?;
            if !need.is_empty() {
                elements.extend(self.fetch_from(req, &need).await?);
            }
            let nicknames: BTreeMap<String, String> =
                state.nicknames.iter().map(|n| (n.name.clone(), n.branch.clone())).collect();
            self.ds.receive(Received { repository_key: key, branches, nicknames, elements }).await?;
        }
        Ok(ContentBuilder::empty(ok(), None))
    }

    async fn fetch_from(&self, req: &Request, need: &[Key]) -> Result<Vec<Element>> {
        let mut b = ContentBuilder::new();
        let _ = &mut b;
        let ask = b.finish(
            &BlobsRequestMessage {
                blob_keys: need.iter().map(|k| k.as_bytes().to_vec()).collect(),
                max_reply_bytes: None,
            },
            vec![],
        );
        let reply = req
            .endpoint
            .rpc(&req.headers.reply_to, "fetch_blobs", ask, self.fetch_timeout)
            .await
            .map_err(|e| ServiceError::internal(format!("fetch objects returned an exception: {e}")))?;
        let blobs: BlobsMessage = reply.payload()?;
        let got = reply.unwrap_all(&blobs.blob_elements)?;
        let have: HashSet<Key> = got.iter().map(|e| e.key()).collect();
        if let Some(k) = need.iter().find(|k| !have.contains(k)) {
            return Err(ServiceError::bad_request(format!("the pusher did not send element {k} it was asked for")));
        }
        Ok(got)
    }

    async fn pull(&self, content: &Content) -> Result<Bytes> {
        let pull: PullMessage = content.payload()?;
        if pull.negotiated() {
            return self.negotiated_pull(&pull).await;
        }
        let key = pull.repository_key.clone().unwrap_or_default();
        let have: HashSet<Key> = keys_of(&pull.commit_keys)?.into_iter().collect();
        let excluded: Vec<TypeId> = pull.excluded_types.iter().map(type_id).collect();
        let mut pulled = self.ds.pull(&key, &have, false, &excluded).await?;
        if pull.get_head_content() {
            // ION's have-list names every key the client holds, so the walk descends below the
            // keys it names and sends whatever it does not name: what an earlier pull with
            // excluded types left out comes now if the types are no longer excluded.
            let head_commits: Vec<Key> = pulled.heads.branches.iter().flat_map(|b| b.heads.iter().copied()).collect();
            let mut roots = Vec::new();
            for commit in self.ds.blobs(&head_commits).await? {
                roots.extend(Commit::from_element(&commit)?.root.map(|r| r.key));
            }
            let mut parts =
                std::pin::pin!(self.ds.graph_stream(roots, excluded.clone(), HashSet::new(), DEFAULT_PART_BYTES));
            while let Some(part) = parts.next().await {
                pulled.blobs.extend(part?.into_iter().filter(|e| !have.contains(&e.key())));
            }
        }
        let mut b = ContentBuilder::new();
        let head = b.wrapped(&head_element(&key, &pulled.heads));
        let commit_elements: Vec<CasRef> = pulled.commits.iter().map(|e| b.wrapped(e)).collect();
        let blob_elements: Vec<CasRef> = pulled.blobs.iter().map(|e| b.wrapped(e)).collect();
        let msg = PullResponseMessage {
            repo_head_element: Some(head),
            commit_elements,
            blob_elements,
            resume_from: Vec::new(),
            have_commits: Vec::new(),
            nicknames: pulled
                .heads
                .nicknames
                .iter()
                .map(|(name, branch)| Nickname { name: name.clone(), branch: branch.clone() })
                .collect(),
        };
        let children = links_of(msg.repo_head_element.iter().chain(&msg.commit_elements).chain(&msg.blob_elements));
        Ok(b.finish(&msg, children))
    }

    /// A DSF peer's pull (`negotiated`, a DSF extension): the heads and either the answer to
    /// `ask_commits` (a push's negotiation) or a bounded page of the commits the client lacks,
    /// never content. `commit_keys` names commits the client holds.
    async fn negotiated_pull(&self, pull: &PullMessage) -> Result<Bytes> {
        let key = pull.repository_key.clone().unwrap_or_default();
        let have: HashSet<Key> = keys_of(&pull.commit_keys)?.into_iter().collect();
        let mut b = ContentBuilder::new();
        let (heads, commits, resume_from, have_commits) = if pull.ask_commits.is_empty() {
            let from = keys_of(&pull.resume_from)?;
            let page = self.ds.commit_page(&key, &from, &have, self.bound(pull.max_reply_bytes)).await?;
            let links: Vec<CasRef> = page.commits.iter().map(|e| b.wrapped(e)).collect();
            (page.heads, links, page.resume.iter().map(|k| k.as_bytes().to_vec()).collect(), Vec::new())
        } else {
            let asked = keys_of(&pull.ask_commits)?;
            let heads = self
                .ds
                .heads(&key)
                .await?
                .ok_or_else(|| ServiceError::not_found(format!("repository {key} not found in the datastore")))?;
            let missing: HashSet<Key> = self.ds.missing(&asked).await?.into_iter().collect();
            (heads, Vec::new(), Vec::new(), asked.iter().map(|k| !missing.contains(k)).collect())
        };
        let msg = PullResponseMessage {
            repo_head_element: Some(b.wrapped(&head_element(&key, &heads))),
            commit_elements: commits,
            blob_elements: Vec::new(),
            nicknames: heads
                .nicknames
                .iter()
                .map(|(name, branch)| Nickname { name: name.clone(), branch: branch.clone() })
                .collect(),
            resume_from,
            have_commits,
        };
        let children = links_of(msg.repo_head_element.iter().chain(&msg.commit_elements));
        Ok(b.finish(&msg, children))
    }

    async fn checkout(&self, content: &Content) -> Result<Bytes> {
        let req: RequestCommitBlobsMessage = content.payload()?;
        let root = key_of(req.commit_root_object.as_deref().unwrap_or_default())?;
        let excluded: Vec<TypeId> = req.excluded_types.iter().map(type_id).collect();
        blobs_reply(&self.ds.graph(root, &excluded).await?)
    }

    async fn fetch_blobs(&self, content: &Content) -> Result<Bytes> {
        let req: BlobsRequestMessage = content.payload()?;
        let keys = keys_of(&req.blob_keys)?;
        match req.max_reply_bytes {
            Some(_) => blobs_reply(&self.ds.blobs_bounded(&keys, self.bound(req.max_reply_bytes)).await?),
            None => blobs_reply(&self.ds.blobs(&keys).await?),
        }
    }

    async fn put_blobs(&self, content: &Content) -> Result<Bytes> {
        let req: BlobsMessage = content.payload()?;
        self.ds.put_blobs(content.unwrap_all(&req.blob_elements)?).await?;
        Ok(ContentBuilder::empty(ok(), None))
    }

    async fn get_object(&self, content: &Content) -> Result<Bytes> {
        let req: GetObjectRequestMessage = content.payload()?;
        let id_link =
            req.object_id.as_ref().ok_or_else(|| ServiceError::bad_request("get_object without an object_id"))?;
        let id: IdRef = content.linked(id_link)?.decode_as().map_err(|e| ServiceError::bad_request(e.to_string()))?;
        let mut excluded = Vec::new();
        for l in &req.excluded_object_types {
            let t: GpbType = content.linked(l)?.decode_as().map_err(|e| ServiceError::bad_request(e.to_string()))?;
            excluded.push(type_id(&t));
        }
        let key = id.key.clone().ok_or_else(|| ServiceError::bad_request("get_object: the IDRef has no key"))?;
        let commit = id.commit.as_deref().filter(|c| !c.is_empty()).map(key_of).transpose()?;
        let (root, elements) =
            self.ds.get_object(&key, id.branch.as_deref(), commit, id.treeish.as_deref(), &excluded).await?;
        let mut b = ContentBuilder::new();
        let mut root_link = None;
        for e in elements {
            let link = b.add(e);
            if link.key == root.as_bytes() {
                root_link = Some(link);
            }
        }
        let echoed: Vec<CasRef> = req
            .excluded_object_types
            .iter()
            .filter_map(|l| content.linked(l).ok().cloned())
            .map(|e| b.add(e))
            .collect();
        let msg = GetObjectReplyMessage { retrieved_object: root_link, excluded_object_types: echoed };
        let children = links_of(msg.retrieved_object.iter().chain(&msg.excluded_object_types));
        Ok(b.finish(&msg, children))
    }

    async fn get_lcs(&self, content: &Content) -> Result<Bytes> {
        let req: GetLcsRequestMessage = content.payload()?;
        let pairs = self.ds.get_lcs(&req.keys).await?;
        let msg = GetLcsResponseMessage {
            key_lcs_pairs: pairs.into_iter().map(|(key, lcs)| KeyLcsPair { key: Some(key), lcs: Some(lcs) }).collect(),
        };
        Ok(ContentBuilder::new().finish(&msg, vec![]))
    }

    /// extract_data: each chunk goes one-way (op `noop`) to the request's routing key, then
    /// the reply.
    async fn extract_data(&self, req: &Request) -> Result<Bytes> {
        let content = req.decode()?;
        let data: DataRequestMessage = content.payload()?;
        let key = key_of(data.structure_array_ref.as_deref().unwrap_or_default())?;
        let target =
            data.data_routing_key.clone().filter(|r| !r.is_empty()).unwrap_or_else(|| req.headers.reply_to.clone());
        let mut extraction = self.ds.extraction(key, &data.request_bounds).await?;
        let n = extraction.len();
        let seq_max = i32::try_from(n).map_err(|_| ServiceError::bad_request("the extraction has too many chunks"))?;
        for i in 0..n {
            let (start, array) = extraction.chunk(i).await?;
            let mut b = ContentBuilder::new();
            let link = b.add(array);
            let msg = DataChunkMessage {
                seq_number: Some(i as i32),
                seq_max: Some(seq_max),
                done: Some(i + 1 == n),
                start_index: Some(
                    i32::try_from(start).map_err(|_| ServiceError::bad_request("the extraction is too large"))?,
                ),
                ndarray: Some(link.clone()),
            };
            let children = links_of(&msg.ndarray);
            req.endpoint
                .send(&target, "noop", b.finish(&msg, children))
                .await
                .map_err(|e| ServiceError::internal(format!("could not send a data chunk: {e}")))?;
        }
        Ok(ContentBuilder::new().finish(&DataReplyMessage { bounded_arrays: None }, vec![]))
    }
}

impl<S: Store + 'static> Handler for DatastoreService<S> {
    fn handle(self: Arc<Self>, request: Request) -> BoxFuture<'static, Result<Bytes>> {
        Box::pin(async move { self.dispatch(request).await })
    }
}

fn ok() -> dsf::proto::net::ooici::core::message::ion_msg::ResponseCodes {
    dsf::proto::net::ooici::core::message::ion_msg::ResponseCodes::Ok
}

fn blobs_reply(elements: &[Element]) -> Result<Bytes> {
    let mut b = ContentBuilder::new();
    let links: Vec<CasRef> = elements.iter().map(|e| b.wrapped(e)).collect();
    let children = links_of(&links);
    Ok(b.finish(&BlobsMessage { blob_elements: links }, children))
}

/// The distinct keys of links (the children of the payload element that holds them).
pub(crate) fn links_of<'a>(links: impl IntoIterator<Item = &'a CasRef>) -> Vec<Key> {
    let mut seen = HashSet::new();
    links.into_iter().filter_map(|l| Key::from_slice(&l.key)).filter(|k| seen.insert(*k)).collect()
}

pub(crate) fn key_of(raw: &[u8]) -> Result<Key> {
    Key::from_slice(raw)
        .ok_or_else(|| ServiceError::bad_request(format!("a key of {} bytes (20 or 32 expected)", raw.len())))
}

pub(crate) fn keys_of(raw: &[Vec<u8>]) -> Result<Vec<Key>> {
    raw.iter().map(|k| key_of(k)).collect()
}

/// The serialised mutable head (spec §3.4): a `MutableNode` element of the repository's
/// branches; commit links are non-leaf (the codec is `dsf::sync::Heads`).
pub fn head_element(key: &str, heads: &StoredHeads) -> Element {
    let alg = heads.branches.iter().flat_map(|b| b.heads.first()).map(|k| k.algorithm()).next();
    let heads = Heads {
        algorithm: alg.unwrap_or(HashAlgorithm::Sha1),
        branches: heads.branches.clone(),
        nicknames: BTreeMap::new(),
    };
    heads.head_element(key)
}

/// The branches of a serialised mutable head, and its repository key.
pub fn read_head(e: &Element) -> Result<(Vec<Branch>, String)> {
    let (key, branches) = Heads::read_head_element(e).map_err(|e| ServiceError::bad_request(e.to_string()))?;
    Ok((branches, key))
}
