//! The datastore service: repositories kept in a store and served to other processes.
//!
//! [`Datastore`] holds the operations, transport-free and generic over any [`Store`]; the
//! AMQP front ([`service`], ION's protocol) and the gRPC front (`crate::grpc`) only translate
//! messages. Several datastore processes may share one store: heads change only by
//! compare-and-set, so concurrent pushes never lose a head, and elements are written before the
//! heads that reach them.

pub mod extract;
pub mod preload;
pub mod service;
pub mod transfer;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsf::proto::net::ooici::cdm::syntactic::{ArrayStructure, BoundedArray, Bounds};
use dsf::proto::net::ooici::services::coi::OoiResource;
use dsf::store::persist::{self, StoredHeads, StoredRepository};
use dsf::store::{BlobRow, Store};
use dsf::{Branch, Commit, Element, HashAlgorithm, Key, MASTER_BRANCH, Registry, Repository, TypeId};

use self::extract::{ArrayValues, Chunk};
use crate::error::ServiceError;

/// The type id of ION's `OOIResource`, whose life-cycle state `get_lcs` reports.
const RESOURCE_TYPE: i32 = 1102;

type Result<T> = std::result::Result<T, ServiceError>;

/// The longest a push may take to read again and rewrite (freshen) the stored elements it
/// relies on; a push that takes longer fails with 503 and may be retried. A gc of a shared
/// store waits longer than this between its waves of deletion ([`GC_PAUSE`]).
pub const FRESHEN_LIMIT: Duration = Duration::from_secs(4);

/// The pause of a gc between waves of deletion on a store with write times.
pub const GC_PAUSE: Duration = Duration::from_secs(5);

fn check_freshen_time(started: Instant) -> Result<()> {
    let took = started.elapsed();
    if took > FRESHEN_LIMIT {
        return Err(ServiceError::new(
            dsf_proto::net::ooici::core::message::ion_msg::ResponseCodes::ServiceUnavailable,
            format!(
                "the store took {} ms to confirm what the push relies on (the limit is {} ms): retry the push",
                took.as_millis(),
                FRESHEN_LIMIT.as_millis()
            ),
        ));
    }
    Ok(())
}

/// A repository state received from a pusher, its elements verified.
#[derive(Debug, Clone)]
pub struct Received {
    /// The repository key.
    pub repository_key: String,
    /// The pusher's branches and their heads.
    pub branches: Vec<Branch>,
    /// The pusher's branch names (may be empty).
    pub nicknames: BTreeMap<String, String>,
    /// Elements (commits and objects) the store may lack.
    pub elements: Vec<Element>,
}

/// What a pull sends back.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The repository's heads.
    pub heads: StoredHeads,
    /// Commits the puller does not have.
    pub commits: Vec<Element>,
    /// Head content the puller does not have (empty unless asked for).
    pub blobs: Vec<Element>,
}

/// The datastore's operations on one store.
#[derive(Debug)]
pub struct Datastore<S> {
    store: Arc<S>,
    registry: Registry,
}

impl<S> Clone for Datastore<S> {
    fn clone(&self) -> Self {
        Datastore { store: self.store.clone(), registry: self.registry.clone() }
    }
}

impl<S: Store> Datastore<S> {
    /// A datastore on `store`, for the types of `registry`.
    pub fn new(store: Arc<S>, registry: Registry) -> Datastore<S> {
        Datastore { store, registry }
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The keys among `keys` that the store holds neither as a blob nor as a commit.
    pub async fn missing(&self, keys: &[Key]) -> Result<Vec<Key>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let blobs = self.store.has_blobs(keys.to_vec()).await?;
        let rest: Vec<Key> = keys.iter().zip(blobs).filter(|(_, has)| !has).map(|(k, _)| *k).collect();
        if rest.is_empty() {
            return Ok(rest);
        }
        let commits = self.store.batch_has_key(rest.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
        Ok(rest.into_iter().zip(commits).filter(|(_, has)| !has).map(|(k, _)| k).collect())
    }

    /// Freshens the stored elements among `keys` (blobs, else commit rows), writing them again
    /// so a concurrent gc keeps them; returns the keys stored as neither. Fails, asking for a
    /// retry, if reading and writing them again took longer than [`FRESHEN_LIMIT`] (gc waits
    /// longer than that between its waves of deletion).
    pub async fn freshen(&self, keys: &[Key]) -> Result<Vec<Key>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let blobs = self.store.freshen_blobs(keys.to_vec()).await?;
        let rest: Vec<Key> = keys.iter().zip(blobs).filter(|(_, has)| !has).map(|(k, _)| *k).collect();
        let lacking = if rest.is_empty() {
            rest
        } else {
            let rows = self.store.freshen_rows(rest.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
            rest.into_iter().zip(rows).filter(|(_, has)| !has).map(|(k, _)| k).collect()
        };
        check_freshen_time(started)?;
        Ok(lacking)
    }

    /// The heads of a repository, `None` if the store has no such repository.
    pub async fn heads(&self, key: &str) -> Result<Option<StoredHeads>> {
        Ok(persist::read_heads(&*self.store, key).await?)
    }

    /// Stores a pushed repository state. Every element reachable from the pushed heads must be
    /// sent or already stored (else 400 and nothing moves); new elements are written first,
    /// then the heads move by compare-and-set: a head already in the history is ignored, a
    /// stored head behind a pushed one is fast-forwarded, any other is kept beside it. Returns
    /// the heads the store holds afterwards.
    pub async fn receive(&self, push: Received) -> Result<StoredHeads> {
        let Received { repository_key, branches, nicknames, elements } = push;
        if repository_key.is_empty() {
            return Err(ServiceError::bad_request("a repository state without a repository key"));
        }
        let alg = branches.iter().flat_map(|b| b.heads.first()).map(|k| k.algorithm()).next();
        let Some(alg) = alg else {
            return Err(ServiceError::bad_request(format!(
                "cannot push repository {repository_key}: it has no commits"
            )));
        };
        let received: HashMap<Key, &Element> = elements.iter().map(|e| (e.key(), e)).collect();
        // Everything the pushed elements and heads refer to must be here or stored.
        let mut wanted: HashSet<Key> = HashSet::new();
        for e in &elements {
            if e.ty() == TypeId::COMMIT {
                let c = Commit::from_element(e)?;
                wanted.extend(c.parents.iter().map(|p| p.commit));
                wanted.extend(c.root.iter().map(|r| r.key));
            } else {
                wanted.extend(e.children().iter().copied());
            }
        }
        wanted.extend(branches.iter().flat_map(|b| b.heads.iter().copied()));
        let outside: Vec<Key> = wanted.into_iter().filter(|k| !received.contains_key(k)).collect();
        // What the push relies on but did not send must be stored: freshen it (write it again)
        // as the check, so a concurrent gc keeps it (see ARCHITECTURE.md, garbage collection).
        let lacking = self.freshen(&outside).await?;
        if let Some(first) = lacking.first() {
            return Err(ServiceError::bad_request(format!(
                "push of {repository_key} is incomplete: {} referenced elements are neither sent nor stored (e.g. {first})",
                lacking.len()
            )));
        }
        // Sent commits the store already indexes are freshened too (read by key and written
        // again); every other sent element is written again below, stored or not.
        let sent_commits: Vec<Key> = received.values().filter(|e| e.ty() == TypeId::COMMIT).map(|e| e.key()).collect();
        drop(received);
        let indexed: HashSet<Key> = if sent_commits.is_empty() {
            HashSet::new()
        } else {
            let started = Instant::now();
            let present = self.store.freshen_rows(sent_commits.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
            check_freshen_time(started)?;
            sent_commits.iter().zip(present).filter(|(_, p)| *p).map(|(k, _)| *k).collect()
        };

        let store = &*self.store;
        let mut stored = match StoredRepository::open(store, self.registry.clone(), &repository_key).await? {
            Some(s) => s,
            None => StoredRepository::create(
                store,
                Repository::with_key(self.registry.clone(), repository_key.clone(), alg),
            ),
        };
        if stored.repository().algorithm() != alg {
            return Err(ServiceError::bad_request(format!(
                "repository {repository_key} is keyed by {}, the pushed heads by {}",
                stored.repository().algorithm().name(),
                alg.name()
            )));
        }
        // Objects are all written again; a commit is written unless indexed (freshened above);
        // a commit stored only as a blob (put_blobs) is not in the history yet: index it.
        let fresh: Vec<Element> =
            elements.into_iter().filter(|e| e.ty() != TypeId::COMMIT || !indexed.contains(&e.key())).collect();
        // Only the commits the heads decision walks are read (see StoredRepository).
        stored.add_elements(fresh).await?;
        stored.receive_branches(branches, nicknames).await?;
        stored.save().await?;
        Ok(StoredHeads::of(stored.repository(), stored.heads_version().unwrap_or_default()))
    }

    /// A pull: the heads, every commit reachable from them that is neither in `have` nor in
    /// the history of a commit in `have` (found by walking down from the heads in generation
    /// order, reading no commit below what the client holds; see
    /// [`StoredRepository::lacking`]), and (with `head_content`) every element
    /// reachable from the heads' roots that is not in `have` (nor below a key in `have`), not
    /// following links to `excluded` types.
    pub async fn pull(
        &self,
        key: &str,
        have: &HashSet<Key>,
        head_content: bool,
        excluded: &[TypeId],
    ) -> Result<Pulled> {
        let mut stored = self.open(key).await?;
        let lacking = stored.lacking(have).await?;
        let repo = stored.repository();
        let commits: Vec<Element> = lacking.iter().filter_map(|k| repo.elements().get(k).cloned()).collect();
        let mut blobs = Vec::new();
        if head_content {
            let roots: Vec<Key> = repo
                .branches()
                .iter()
                .flat_map(|b| b.heads.iter())
                .filter_map(|h| repo.commit_info(*h).ok().and_then(|c| c.root.as_ref().map(|r| r.key)))
                .collect();
            blobs = persist::collect(&*self.store, &self.registry, &roots, excluded, |k| have.contains(k)).await?;
        }
        Ok(Pulled { heads: StoredHeads::of(repo, stored.heads_version().unwrap_or_default()), commits, blobs })
    }

    async fn open(&self, key: &str) -> Result<StoredRepository<'_, S>> {
        StoredRepository::open(&*self.store, self.registry.clone(), key)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("repository {key} not found in the datastore")))
    }

    /// Every element reachable from `root` (a remote checkout), not following links to
    /// `excluded` types.
    pub async fn graph(&self, root: Key, excluded: &[TypeId]) -> Result<Vec<Element>> {
        persist::collect(&*self.store, &self.registry, &[root], excluded, |_| false).await.map_err(|e| match e {
            dsf::Error::MissingElement { key } => {
                ServiceError::not_found(format!("object {key} is not in the datastore"))
            }
            e => e.into(),
        })
    }

    /// Elements by key, from the blobs or the commits; any unknown key is 404.
    pub async fn blobs(&self, keys: &[Key]) -> Result<Vec<Element>> {
        let rows = self.store.get_blobs(keys.to_vec()).await?;
        let mut out = Vec::with_capacity(keys.len());
        let mut absent = Vec::new();
        for (key, row) in keys.iter().zip(rows) {
            match row {
                Some(row) => out.push(verified(*key, Element::from_stored(&row.element, &row.children))?),
                None => absent.push(*key),
            }
        }
        if !absent.is_empty() {
            let values = self.store.batch_get(absent.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
            let mut missing = Vec::new();
            for (key, value) in absent.iter().zip(values) {
                match value {
                    Some(v) => out.push(verified(*key, Element::decode(&self.registry, &v))?),
                    None => missing.push(*key),
                }
            }
            if let Some(first) = missing.first() {
                return Err(ServiceError::not_found(format!(
                    "{} of {} requested elements are not in the datastore (e.g. {first})",
                    missing.len(),
                    keys.len()
                )));
            }
        }
        Ok(out)
    }

    /// Stores elements as blobs (verified, as every received element; commits are not
    /// indexed). Every element is written, stored or not, so each has a fresh write time for a
    /// concurrent gc. Returns how many the store did not have.
    pub async fn put_blobs(&self, elements: Vec<Element>) -> Result<usize> {
        let keys: Vec<Key> = elements.iter().map(|e| e.key()).collect();
        let n = self.missing(&keys).await?.len();
        let rows: Vec<BlobRow> = elements
            .iter()
            .map(|e| BlobRow { key: e.key(), element: e.encode().into(), children: e.encode_children().into() })
            .collect();
        if !rows.is_empty() {
            self.store.put_blobs(rows).await?;
        }
        Ok(n)
    }

    /// The object of a repository: at `commit` if given, else at `treeish` on the branch, else
    /// at the branch's head (the newest by date if the branch diverged). The branch defaults to
    /// `master`. Returns the root key and every element reachable from it, not following links
    /// to `excluded` types.
    pub async fn get_object(
        &self,
        key: &str,
        branch: Option<&str>,
        commit: Option<Key>,
        treeish: Option<&str>,
        excluded: &[TypeId],
    ) -> Result<(Key, Vec<Element>)> {
        let mut stored = self.open(key).await?;
        let branch = branch.filter(|b| !b.is_empty()).unwrap_or(MASTER_BRANCH);
        // Only the commit asked for, or the heads and the steps of the treeish, are read.
        let commit = match (commit, treeish.filter(|t| !t.is_empty())) {
            (Some(c), _) => {
                stored.load_commits(&[c]).await?;
                stored
                    .repository()
                    .commit_info(c)
                    .map_err(|_| ServiceError::not_found(format!("commit {c} is not in {key}")))?;
                c
            }
            (None, Some(t)) => {
                stored.resolve_treeish(t, branch).await.map_err(|e| ServiceError::internal(e.to_string()))?
            }
            (None, None) => {
                stored.load_heads().await?;
                let repo = stored.repository();
                let b = repo
                    .get_branch(branch)
                    .ok_or_else(|| ServiceError::not_found(format!("repository {key} has no branch {branch:?}")))?;
                let newest =
                    b.heads.iter().filter_map(|h| repo.commit_info(*h).ok()).max_by(|a, b| a.date.total_cmp(&b.date));
                newest
                    .map(|c| c.key)
                    .ok_or_else(|| ServiceError::not_found(format!("branch {branch:?} of {key} has no commits")))?
            }
        };
        let root = stored
            .repository()
            .commit_info(commit)?
            .root
            .as_ref()
            .map(|r| r.key)
            .ok_or_else(|| ServiceError::not_found(format!("commit {commit} has no root object")))?;
        let elements = self.graph(root, excluded).await?;
        Ok((root, elements))
    }

    /// The life-cycle state of each resource (ION's enum number), in request order, read from
    /// the heads record the compare-and-set guards (head commits, their root objects), never
    /// from the commits index. An unknown key is 404; heads that disagree on the state are 500.
    pub async fn get_lcs(&self, keys: &[String]) -> Result<Vec<(String, i32)>> {
        let mut out = Vec::with_capacity(keys.len());
        for key in keys {
            let not_found = || ServiceError::not_found(format!("resource {key} not found in the datastore"));
            let heads = self.heads(key).await?.ok_or_else(not_found)?;
            let mut head_commits: Vec<Key> = heads.branches.iter().flat_map(|b| b.heads.iter().copied()).collect();
            head_commits.sort();
            head_commits.dedup();
            if head_commits.is_empty() {
                return Err(not_found());
            }
            let mut roots = Vec::new();
            for commit in self.blobs(&head_commits).await? {
                if let Some(root) = Commit::from_element(&commit)?.root
                    && root.ty.object_id == RESOURCE_TYPE
                {
                    roots.push(root.key);
                }
            }
            let mut lcs_of_heads = HashSet::new();
            for root in self.blobs(&roots).await? {
                let resource: OoiResource = root.decode_as()?;
                lcs_of_heads.insert(resource.lcs() as i32);
            }
            let states: Vec<i32> = lcs_of_heads.into_iter().collect();
            let lcs = match states.as_slice() {
                [] => return Err(ServiceError::bad_request(format!("repository {key} is not a resource"))),
                [one] => *one,
                _ => {
                    return Err(ServiceError::internal(format!(
                        "the {} heads of resource {key} disagree on its life-cycle state: merge them first",
                        states.len()
                    )));
                }
            };
            out.push((key.clone(), lcs));
        }
        Ok(out)
    }

    /// Plans an extraction from an `ArrayStructure` (spec §4.5): loads the structure and its
    /// bounded arrays, not the array values.
    pub async fn extraction(&self, structure: Key, request: &[Bounds]) -> Result<Extraction<S>> {
        let root = self.blobs(&[structure]).await?.remove(0);
        let st: ArrayStructure = root.decode_as().map_err(|e| ServiceError::bad_request(e.to_string()))?;
        let keys = st
            .bounded_arrays
            .iter()
            .map(|l| {
                Key::from_slice(&l.key).ok_or_else(|| ServiceError::bad_request("a bounded array link is malformed"))
            })
            .collect::<Result<Vec<Key>>>()?;
        let bounded = self.blobs(&keys).await?;
        let mut boxes = Vec::with_capacity(bounded.len());
        let mut arrays = Vec::with_capacity(bounded.len());
        for e in &bounded {
            let ba: BoundedArray = e.decode_as().map_err(|e| ServiceError::bad_request(e.to_string()))?;
            let nd = ba.ndarray.as_ref().ok_or_else(|| ServiceError::bad_request("a bounded array without values"))?;
            let key =
                Key::from_slice(&nd.key).ok_or_else(|| ServiceError::bad_request("an array link is malformed"))?;
            boxes.push(extract::array_spans(&ba.bounds));
            arrays.push((key, nd.r#type.object_id));
        }
        let spans = extract::request_spans(request).map_err(|e| ServiceError::bad_request(e.to_string()))?;
        let chunk_items = match arrays.first().map(|a| a.1) {
            Some(id) => {
                ArrayValues::decode(id, &[]).map_err(|e| ServiceError::bad_request(e.to_string()))?.chunk_items()
            }
            None => extract::CHUNK_ITEMS_8_BYTE,
        };
        let chunks =
            extract::plan(&boxes, &spans, chunk_items).map_err(|e| ServiceError::bad_request(e.to_string()))?;
        Ok(Extraction { ds: self.clone(), arrays, chunks, cache: HashMap::new() })
    }
}

fn verified(key: Key, e: dsf::Result<Element>) -> Result<Element> {
    let e = e?;
    if e.key() != key {
        return Err(ServiceError::internal(format!("stored element {key} is corrupt")));
    }
    Ok(e)
}

/// A planned extraction: its chunks are produced one by one, loading arrays as they are needed
/// (at most the arrays of one chunk are kept).
#[derive(Debug)]
pub struct Extraction<S> {
    ds: Datastore<S>,
    arrays: Vec<(Key, i32)>,
    chunks: Vec<Chunk>,
    cache: HashMap<usize, ArrayValues>,
}

impl<S: Store> Extraction<S> {
    /// How many chunks the extraction sends.
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    /// True when the request meets no array.
    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Chunk `i`: its start index in the output and an element holding its values (an array
    /// object of the source arrays' type).
    pub async fn chunk(&mut self, i: usize) -> Result<(u64, Element)> {
        let chunk = &self.chunks[i];
        let used: HashSet<usize> = chunk.strips.iter().map(|s| s.array).collect();
        self.cache.retain(|k, _| used.contains(k));
        let wanted: Vec<usize> = used.iter().copied().filter(|a| !self.cache.contains_key(a)).collect();
        if !wanted.is_empty() {
            let keys: Vec<Key> = wanted.iter().map(|&a| self.arrays[a].0).collect();
            for (a, e) in wanted.iter().zip(self.ds.blobs(&keys).await?) {
                let values = ArrayValues::decode(e.ty().object_id, e.value())
                    .map_err(|e| ServiceError::bad_request(e.to_string()))?;
                self.cache.insert(*a, values);
            }
        }
        let n = self.arrays.len();
        let placeholder = ArrayValues::decode(self.arrays.first().map(|a| a.1).unwrap_or_default(), &[])
            .map_err(|e| ServiceError::bad_request(e.to_string()))?;
        let refs: Vec<&ArrayValues> = (0..n).map(|a| self.cache.get(&a).unwrap_or(&placeholder)).collect();
        let values = extract::gather(chunk, &refs).map_err(|e| ServiceError::bad_request(e.to_string()))?;
        let ty = TypeId::new(values.object_id(), 1);
        Ok((chunk.start_index, Element::new(HashAlgorithm::Sha1, ty, values.encode(), Vec::new())))
    }
}
