//! Bounded transfers: the datastore operations behind negotiated pulls, bounded `fetch_blobs`
//! replies and lazily produced element streams.
//!
//! Every operation here answers from the store alone. Where a transfer continues over several
//! requests, the reply says where to resume (a page of commits names the walk's frontier) or the
//! client knows (it asks again for the elements a bounded reply left out), so a follow-up
//! request may reach any process on the worker queue.

use std::collections::{HashSet, VecDeque};

use dsf::store::Store;
use dsf::store::persist::StoredHeads;
use dsf::{Commit, Element, Key, TypeId};
use futures::Stream;

use super::{Datastore, verified};
use crate::error::ServiceError;

type Result<T> = std::result::Result<T, ServiceError>;

/// The default bound of one part of a transfer, in bytes of elements (4 MiB).
pub const DEFAULT_PART_BYTES: usize = 4 << 20;

/// Commit rows read from the store at a time while paging commits.
const COMMIT_BATCH: usize = 256;

/// Keys read from the store at a time by a bounded reply or a graph stream, at first; the batch
/// grows while elements are small.
const FIRST_BLOB_BATCH: usize = 16;

/// The most keys read at a time.
const MAX_BLOB_BATCH: usize = 1024;

/// A page of a repository's commits.
#[derive(Debug, Clone)]
pub struct CommitPage {
    /// The repository's heads.
    pub heads: StoredHeads,
    /// Commits the client lacks, walked from the heads (or from where the previous page
    /// stopped) towards the roots of the history.
    pub commits: Vec<Element>,
    /// Where the walk stopped because the page was full: ask again from these commits. Empty
    /// when the walk is complete.
    pub resume: Vec<Key>,
}

impl<S: Store> Datastore<S> {
    /// A page of the commits of repository `key` that are not in `have`: a breadth-first walk
    /// from `from` (or from the heads when `from` is empty) along the parents, not descending
    /// below a commit in `have`, reading commit rows by key only. The page closes once it holds
    /// `max_bytes` of commits (at least one batch of rows is read); its `resume` then names the
    /// walk's frontier. A commit reachable along two paths may come in two pages. An unknown
    /// repository is 404.
    pub async fn commit_page(
        &self,
        key: &str,
        from: &[Key],
        have: &HashSet<Key>,
        max_bytes: usize,
    ) -> Result<CommitPage> {
        let heads = self
            .heads(key)
            .await?
            .ok_or_else(|| ServiceError::not_found(format!("repository {key} not found in the datastore")))?;
        let start: Vec<Key> = if from.is_empty() {
            heads.branches.iter().flat_map(|b| b.heads.iter().copied()).collect()
        } else {
            from.to_vec()
        };
        let mut seen: HashSet<Key> = HashSet::new();
        let mut queue: VecDeque<Key> = start.into_iter().filter(|k| !have.contains(k) && seen.insert(*k)).collect();
        let mut commits = Vec::new();
        let mut bytes = 0usize;
        while !queue.is_empty() && (commits.is_empty() || bytes < max_bytes) {
            let batch: Vec<Key> = queue.drain(..queue.len().min(COMMIT_BATCH)).collect();
            let values = self.store().batch_get(batch.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
            for (k, value) in batch.iter().zip(values) {
                // A commit the store lacks (below a shallow history) ends the walk there.
                let Some(value) = value else { continue };
                let e = verified(*k, Element::decode(self.registry(), &value))?;
                if e.ty() != TypeId::COMMIT {
                    return Err(ServiceError::bad_request(format!("{k} is not a commit of {key}")));
                }
                for p in Commit::from_element(&e)?.parents {
                    if !have.contains(&p.commit) && seen.insert(p.commit) {
                        queue.push_back(p.commit);
                    }
                }
                bytes += e.encoded_len();
                commits.push(e);
            }
        }
        Ok(CommitPage { heads, commits, resume: queue.into_iter().collect() })
    }

    /// The first of the elements `keys` names (blobs or commits), in order, up to `max_bytes`
    /// of them (at least one); the caller asks again for the rest. Any unknown key among those
    /// read is 404.
    pub async fn blobs_bounded(&self, keys: &[Key], max_bytes: usize) -> Result<Vec<Element>> {
        let mut out: Vec<Element> = Vec::new();
        let mut bytes = 0usize;
        let mut batch = FIRST_BLOB_BATCH;
        let mut next = 0;
        while next < keys.len() && (out.is_empty() || bytes < max_bytes) {
            let end = keys.len().min(next + batch);
            for e in self.blobs(&keys[next..end]).await? {
                let n = e.encoded_len();
                if !out.is_empty() && bytes + n > max_bytes {
                    return Ok(out);
                }
                bytes += n;
                out.push(e);
            }
            next = end;
            batch = grown(batch, bytes, out.len(), max_bytes);
        }
        Ok(out)
    }

    /// Every element reachable from `roots`, level by level, in batches of about `batch_bytes`
    /// produced as the stream is read: at most one batch of element values is held (and the
    /// keys of the walk). Links to `excluded` types are not followed; a key in `skip` is
    /// neither sent nor descended. An element the store lacks ends the stream with a 404.
    pub fn graph_stream(
        &self,
        roots: Vec<Key>,
        excluded: Vec<TypeId>,
        skip: HashSet<Key>,
        batch_bytes: usize,
    ) -> impl Stream<Item = Result<Vec<Element>>> + Send + 'static
    where
        S: 'static,
    {
        let mut seen = skip;
        let queue: VecDeque<Key> = roots.into_iter().filter(|k| seen.insert(*k)).collect();
        let walk = GraphWalk { ds: self.clone(), queue, seen, excluded, batch: FIRST_BLOB_BATCH, failed: false };
        futures::stream::unfold(walk, move |mut walk| async move {
            if walk.failed || walk.queue.is_empty() {
                return None;
            }
            let part = walk.part(batch_bytes).await;
            walk.failed = part.is_err();
            Some((part, walk))
        })
    }
}

/// The state of a [`Datastore::graph_stream`].
struct GraphWalk<S> {
    ds: Datastore<S>,
    queue: VecDeque<Key>,
    seen: HashSet<Key>,
    excluded: Vec<TypeId>,
    batch: usize,
    failed: bool,
}

impl<S: Store> GraphWalk<S> {
    async fn part(&mut self, max_bytes: usize) -> Result<Vec<Element>> {
        let mut out: Vec<Element> = Vec::new();
        let mut bytes = 0usize;
        while !self.queue.is_empty() && (out.is_empty() || bytes < max_bytes) {
            let keys: Vec<Key> = self.queue.drain(..self.queue.len().min(self.batch)).collect();
            let rows = self.ds.store().get_blobs(keys.clone()).await?;
            for (key, row) in keys.iter().zip(rows) {
                let row =
                    row.ok_or_else(|| ServiceError::not_found(format!("object {key} is not in the datastore")))?;
                let e = verified(*key, Element::from_stored(&row.element, &row.children))?;
                let children: Vec<Key> = if self.excluded.is_empty() {
                    e.children().to_vec()
                } else {
                    e.links(self.ds.registry())?
                        .into_iter()
                        .filter(|(_, ty)| !self.excluded.contains(ty))
                        .map(|(k, _)| k)
                        .collect()
                };
                for c in children {
                    if self.seen.insert(c) {
                        self.queue.push_back(c);
                    }
                }
                bytes += e.encoded_len();
                out.push(e);
            }
            self.batch = grown(self.batch, bytes, out.len(), max_bytes);
        }
        Ok(out)
    }
}

/// The next read size: doubled while the elements read so far are small enough that a doubled
/// batch stays well under the bound.
fn grown(batch: usize, bytes: usize, count: usize, max_bytes: usize) -> usize {
    let average = bytes / count.max(1);
    if average.saturating_mul(batch * 2) <= max_bytes / 2 { (batch * 2).min(MAX_BLOB_BATCH) } else { batch }
}
