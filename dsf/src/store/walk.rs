//! `fsck` and `gc` of a datastore's store: walks over any [`Store`], with no runtime of their
//! own (`gc` sleeps through a function its caller gives).
//!
//! Both start from the heads of every repository: every head is a commit row, every commit
//! reachable through parents is read and verified, every element reachable from the commits'
//! roots through the stored child keys is read and verified (its key over its bytes, and, for
//! a type the registry knows, its stored child list against the links of its value).
//!
//! `gc` then removes what no head reaches, keeping what a push in progress writes. The
//! argument is in `ARCHITECTURE.md` ("Garbage collection of a shared store"); in short:
//! - it deletes only entries last written before its start minus a grace period, with
//!   deletions conditional on that (a store with write times keeps an entry written again
//!   since), and treats every entry written after that cut-off as a root of its mark;
//! - a push writes every element it sends and freshens (writes again) every stored element it
//!   relies on, within a bounded time after it saw it;
//! - it deletes garbage in waves, referrers before what they refer to, and before each next
//!   wave waits longer than that bound and keeps everything below a deleted referrer that was
//!   written again (freshened by a push) in the meantime.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use super::maint::{Listed, all_blobs, all_repositories, all_rows};
use super::persist::read_heads;
use super::{Store, StoreError};
use crate::commit::Commit;
use crate::element::{Element, decode_children};
use crate::key::Key;
use crate::types::{Registry, TypeId};

/// How many keys one read asks for.
const BATCH: usize = 512;

/// One problem found by [`fsck`] (or that stops [`gc`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The element, commit or head concerned (`None`: a repository's heads record).
    pub key: Option<Key>,
    /// What is wrong, with who refers to it.
    pub what: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.key {
            Some(k) => write!(f, "{k}: {}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

/// What a walk counted, and what it found wrong.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Repositories with a heads record.
    pub repositories: usize,
    /// Head entries of every branch.
    pub heads: usize,
    /// Distinct commits reached.
    pub commits: usize,
    /// Distinct objects reached.
    pub objects: usize,
    /// What is wrong, in the order found.
    pub problems: Vec<Problem>,
}

/// Progress of a long walk: counts so far, for the caller to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Repositories whose heads were read.
    Repositories(usize),
    /// Commits verified.
    Commits(usize),
    /// Objects verified.
    Objects(usize),
    /// Entries listed (blobs and rows).
    Listed(usize),
    /// Entries deleted.
    Deleted(usize),
}

/// Errors of [`gc`].
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// What the heads reach is damaged: nothing was deleted (run fsck).
    #[error("the store is damaged ({} problem(s), e.g. {}): nothing was deleted", .0.len(), .0[0])]
    Damaged(Vec<Problem>),
}

/// What the marker has reached: commit and object keys.
struct Mark<'a, S> {
    store: &'a S,
    registry: &'a Registry,
    commits: HashSet<Key>,
    objects: HashSet<Key>,
    problems: Vec<Problem>,
}

impl<'a, S: Store> Mark<'a, S> {
    fn new(store: &'a S, registry: &'a Registry) -> Self {
        Mark { store, registry, commits: HashSet::new(), objects: HashSet::new(), problems: Vec::new() }
    }

    fn problem(&mut self, key: Option<Key>, what: String) {
        self.problems.push(Problem { key, what });
    }

    /// Marks commits from `starts` (key, who refers to it) through their parents, and the
    /// objects below their roots. With `strict`, a missing or damaged entry is a problem;
    /// without, the walk just stops there (fresh roots of a push still being written).
    async fn walk_commits(
        &mut self,
        starts: Vec<(Key, String)>,
        strict: bool,
        progress: &mut impl FnMut(Progress),
    ) -> Result<(), StoreError> {
        let mut frontier: Vec<(Key, String)> = starts.into_iter().filter(|(k, _)| self.commits.insert(*k)).collect();
        let mut roots: Vec<(Key, String)> = Vec::new();
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for chunk in frontier.chunks(BATCH) {
                let values = self.store.batch_get(chunk.iter().map(|(k, _)| k.as_bytes().to_vec()).collect()).await?;
                // A commit kept only as a blob (put before its push indexed it) still counts.
                let absent: Vec<Key> =
                    chunk.iter().zip(&values).filter(|(_, v)| v.is_none()).map(|((k, _), _)| *k).collect();
                let mut as_blobs: HashMap<Key, Element> = HashMap::new();
                if !absent.is_empty() {
                    for (k, row) in absent.iter().zip(self.store.get_blobs(absent.clone()).await?) {
                        if let Some(row) = row
                            && let Ok(e) = Element::from_stored(&row.element, &row.children)
                        {
                            as_blobs.insert(*k, e);
                        }
                    }
                }
                for ((key, by), value) in chunk.iter().zip(values) {
                    let element = match value {
                        Some(v) => Element::decode(self.registry, &v),
                        None => match as_blobs.remove(key) {
                            Some(e) => Ok(e),
                            None => {
                                if strict {
                                    self.problem(Some(*key), format!("commit missing ({by})"));
                                }
                                continue;
                            }
                        },
                    };
                    let commit = match element {
                        Ok(e) if e.key() != *key => {
                            if strict {
                                self.problem(Some(*key), format!("commit stored under the wrong key ({by})"));
                            }
                            continue;
                        }
                        Ok(e) if e.ty() != TypeId::COMMIT => {
                            if strict {
                                self.problem(Some(*key), format!("not a commit but a {} ({by})", e.ty()));
                            }
                            continue;
                        }
                        Ok(e) => Commit::from_element(&e),
                        Err(e) => Err(e),
                    };
                    match commit {
                        Ok(c) => {
                            let of = format!("parent of commit {key}");
                            next.extend(c.parent_keys().filter(|p| self.commits.insert(*p)).map(|p| (p, of.clone())));
                            roots.extend(c.root.iter().map(|r| (r.key, format!("root of commit {key}"))));
                        }
                        Err(e) => {
                            if strict {
                                self.problem(Some(*key), format!("commit does not verify: {e} ({by})"));
                            }
                        }
                    }
                }
            }
            progress(Progress::Commits(self.commits.len()));
            frontier = next;
        }
        self.walk_objects(roots, strict, progress).await
    }

    /// Marks objects from `starts` through their stored child keys, verifying each.
    async fn walk_objects(
        &mut self,
        starts: Vec<(Key, String)>,
        strict: bool,
        progress: &mut impl FnMut(Progress),
    ) -> Result<(), StoreError> {
        let mut frontier: Vec<(Key, String)> = starts.into_iter().filter(|(k, _)| self.objects.insert(*k)).collect();
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for chunk in frontier.chunks(BATCH) {
                let rows = self.store.get_blobs(chunk.iter().map(|(k, _)| *k).collect()).await?;
                for ((key, by), row) in chunk.iter().zip(rows) {
                    let Some(row) = row else {
                        if strict {
                            self.problem(Some(*key), format!("missing ({by})"));
                        }
                        continue;
                    };
                    let children = match Element::from_stored(&row.element, &row.children) {
                        Ok(e) if e.key() != *key => {
                            if strict {
                                self.problem(
                                    Some(*key),
                                    format!("stored under the wrong key: its bytes are {} ({by})", e.key()),
                                );
                            }
                            e.children().to_vec()
                        }
                        Ok(e) => {
                            if strict && let Some(what) = self.links_disagree(&e) {
                                self.problem(Some(*key), format!("{what} ({by})"));
                            }
                            e.children().to_vec()
                        }
                        Err(err) => {
                            if strict {
                                self.problem(Some(*key), format!("does not verify: {err} ({by})"));
                            }
                            // Keep walking the stored child list: gc must not lose what hangs below.
                            decode_children(&row.children).unwrap_or_default()
                        }
                    };
                    let of = format!("linked from {key}");
                    next.extend(children.into_iter().filter(|c| self.objects.insert(*c)).map(|c| (c, of.clone())));
                }
            }
            progress(Progress::Objects(self.objects.len()));
            frontier = next;
        }
        Ok(())
    }

    /// Whether an element's stored child list differs from the links of its value (types the
    /// registry does not know are not scanned).
    fn links_disagree(&self, e: &Element) -> Option<String> {
        self.registry.get(e.ty())?;
        match e.links(self.registry) {
            Ok(links) => {
                let mut seen = HashSet::new();
                let distinct: Vec<Key> = links.into_iter().map(|(k, _)| k).filter(|k| seen.insert(*k)).collect();
                (distinct != e.children()).then(|| "its stored child keys disagree with its links".to_owned())
            }
            Err(err) => Some(format!("its links do not decode: {err}")),
        }
    }

    /// Reads every repository's heads and marks from them; returns (repositories, heads).
    async fn walk_heads(&mut self, progress: &mut impl FnMut(Progress)) -> Result<(usize, usize), StoreError> {
        let repositories = all_repositories(self.store).await?;
        let mut starts = Vec::new();
        for (i, repo) in repositories.iter().enumerate() {
            match read_heads(self.store, repo).await {
                Ok(Some(h)) => {
                    for b in &h.branches {
                        starts.extend(
                            b.heads.iter().map(|k| (*k, format!("head of branch {} of repository {repo}", b.key))),
                        );
                    }
                }
                Ok(None) => {}
                Err(crate::Error::Store(e)) => return Err(e),
                Err(e) => self.problem(None, format!("the heads record of repository {repo} does not decode: {e}")),
            }
            if (i + 1) % 100 == 0 {
                progress(Progress::Repositories(i + 1));
            }
        }
        progress(Progress::Repositories(repositories.len()));
        let heads = starts.len();
        self.walk_commits(starts, true, progress).await?;
        Ok((repositories.len(), heads))
    }
}

/// Verifies everything the heads of every repository reach: every head is a stored commit,
/// every parent and root is present, every element's key matches its bytes and its stored child
/// list its links. Problems are reported, not errors; a store that fails is an error.
pub async fn fsck<S: Store>(
    store: &S,
    registry: &Registry,
    mut progress: impl FnMut(Progress),
) -> Result<Report, StoreError> {
    let mut mark = Mark::new(store, registry);
    let (repositories, heads) = mark.walk_heads(&mut progress).await?;
    Ok(Report {
        repositories,
        heads,
        commits: mark.commits.len(),
        objects: mark.objects.len(),
        problems: mark.problems,
    })
}

/// How [`gc`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GcOptions {
    /// The time the gc starts, microseconds since the Unix epoch.
    pub now: i64,
    /// Entries written less than this long before `now` are kept, and are roots of the mark.
    pub grace: Duration,
    /// The wait between waves of deletion, on a store with write times: longer than a push
    /// may take from reading a stored element it relies on to writing it again.
    pub pause: Duration,
    /// Only report what would be removed.
    pub dry_run: bool,
}

/// What [`gc`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// What the heads reach (counts only; no problems: a damaged store stops gc).
    pub reached: Report,
    /// Blobs and rows listed.
    pub listed_blobs: usize,
    /// Rows listed.
    pub listed_rows: usize,
    /// Entries written after the cut-off (kept, and roots of the mark).
    pub fresh: usize,
    /// Objects removed (or, in a dry run, that would be).
    pub removed_objects: Vec<Key>,
    /// Commit rows removed (or that would be).
    pub removed_commits: Vec<Key>,
    /// Entries that were garbage when listed but were written again during the gc (a push
    /// relies on them), kept with everything below them.
    pub revived: usize,
    /// Waves of deletion.
    pub waves: usize,
}

/// A garbage entry: which tables hold it and what it refers to.
#[derive(Debug, Default)]
struct Garbage {
    blob: bool,
    row: bool,
    children: Vec<Key>,
}

/// Removes the blobs and commit rows that no head of any repository reaches, keeping what
/// pushes in progress write (see the [module documentation](self)), and what `extra_roots`
/// (commits the caller keeps, e.g. a working copy's checkout; they need not be stored)
/// reach. `sleep` waits between waves. Rows that are not commits are never removed. What the
/// heads reach must be intact: a problem stops gc before it deletes anything
/// ([`WalkError::Damaged`]).
pub async fn gc<S, F, Fut>(
    store: &S,
    registry: &Registry,
    options: GcOptions,
    extra_roots: Vec<Key>,
    sleep: F,
    mut progress: impl FnMut(Progress),
) -> Result<GcReport, WalkError>
where
    S: Store,
    F: Fn(Duration) -> Fut,
    Fut: Future<Output = ()>,
{
    let timed = store.write_times();
    let cutoff = options.now.saturating_sub(i64::try_from(options.grace.as_micros()).unwrap_or(i64::MAX));
    // 1. Mark from the heads (read before the listing).
    let mut mark = Mark::new(store, registry);
    let (repositories, heads) = mark.walk_heads(&mut progress).await?;
    if !mark.problems.is_empty() {
        return Err(WalkError::Damaged(mark.problems));
    }
    let extra = extra_roots.into_iter().map(|k| (k, "kept by the caller".to_owned())).collect();
    mark.walk_commits(extra, false, &mut progress).await?;
    let reached =
        Report { repositories, heads, commits: mark.commits.len(), objects: mark.objects.len(), problems: vec![] };

    // 2. List; entries written after the cut-off are roots too.
    let blobs = all_blobs(store).await?;
    progress(Progress::Listed(blobs.len()));
    let rows = all_rows(store).await?;
    progress(Progress::Listed(blobs.len() + rows.len()));
    let fresh = |l: &Option<i64>| timed && l.is_none_or(|w| w > cutoff);
    let mut fresh_count = 0;
    let mut fresh_objects = Vec::new();
    let mut fresh_commits = Vec::new();
    let mut old_blobs: Vec<Key> = Vec::new();
    for Listed { key, written } in &blobs {
        if fresh(written) {
            fresh_count += 1;
            fresh_objects.push((*key, "written during the grace period".to_owned()));
        } else {
            old_blobs.push(*key);
        }
    }
    let mut old_rows: Vec<Key> = Vec::new();
    for Listed { key, written } in &rows {
        let Some(key) = Key::from_slice(key) else { continue };
        if fresh(written) {
            fresh_count += 1;
            fresh_commits.push((key, "written during the grace period".to_owned()));
        } else {
            old_rows.push(key);
        }
    }
    // Fresh commit rows and fresh blobs (which may be commits put before their push).
    mark.walk_commits(fresh_commits, false, &mut progress).await?;
    let fresh_blob_keys: Vec<Key> = fresh_objects.iter().map(|(k, _)| *k).collect();
    mark.walk_objects(fresh_objects, false, &mut progress).await?;
    for chunk in fresh_blob_keys.chunks(BATCH) {
        let commits = commits_among_blobs(store, chunk).await?;
        mark.walk_commits(commits, false, &mut progress).await?;
    }

    // 3. The garbage: old and unmarked; what each refers to.
    let mut garbage: HashMap<Key, Garbage> = HashMap::new();
    for chunk in old_blobs.chunks(BATCH) {
        let candidates: Vec<Key> =
            chunk.iter().copied().filter(|k| !mark.objects.contains(k) && !mark.commits.contains(k)).collect();
        if candidates.is_empty() {
            continue;
        }
        for (key, row) in candidates.iter().zip(store.get_blobs(candidates.clone()).await?) {
            let Some(row) = row else { continue };
            let children = match Element::from_stored(&row.element, &row.children) {
                Ok(e) if e.ty() == TypeId::COMMIT => commit_refs(&e),
                _ => decode_children(&row.children).unwrap_or_default(),
            };
            let g = garbage.entry(*key).or_default();
            g.blob = true;
            g.children.extend(children);
        }
    }
    for chunk in old_rows.chunks(BATCH) {
        let candidates: Vec<Key> = chunk.iter().copied().filter(|k| !mark.commits.contains(k)).collect();
        if candidates.is_empty() {
            continue;
        }
        let values = store.batch_get(candidates.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
        for (key, value) in candidates.iter().zip(values) {
            // Only commit rows are collected; any other row is left alone.
            let Some(e) = value.and_then(|v| Element::decode(registry, &v).ok()) else { continue };
            if e.key() != *key || e.ty() != TypeId::COMMIT {
                continue;
            }
            let g = garbage.entry(*key).or_default();
            g.row = true;
            g.children.extend(commit_refs(&e));
        }
    }
    let mut report = GcReport {
        reached,
        listed_blobs: blobs.len(),
        listed_rows: rows.len(),
        fresh: fresh_count,
        ..GcReport::default()
    };
    if options.dry_run {
        let mut keys: Vec<(&Key, &Garbage)> = garbage.iter().collect();
        keys.sort_by_key(|(k, _)| **k);
        for (k, g) in keys {
            if g.blob {
                report.removed_objects.push(*k);
            }
            if g.row {
                report.removed_commits.push(*k);
            }
        }
        return Ok(report);
    }

    // 4. Sweep in waves: an entry goes once no remaining garbage refers to it.
    let written_before = timed.then_some(cutoff);
    let mut referrers: HashMap<Key, usize> = HashMap::new();
    for g in garbage.values() {
        for c in g.children.iter().filter(|c| garbage.contains_key(c)) {
            *referrers.entry(*c).or_default() += 1;
        }
    }
    let mut deleted = 0;
    while !garbage.is_empty() {
        let mut wave: Vec<Key> =
            garbage.keys().copied().filter(|k| referrers.get(k).copied().unwrap_or(0) == 0).collect();
        if wave.is_empty() {
            // A cycle cannot be hashed into keys; treat the rest as one wave rather than loop.
            wave = garbage.keys().copied().collect();
        }
        wave.sort();
        report.waves += 1;
        let wave_blobs: Vec<Key> = wave.iter().copied().filter(|k| garbage[k].blob).collect();
        let wave_rows: Vec<Key> = wave.iter().copied().filter(|k| garbage[k].row).collect();
        for chunk in wave_rows.chunks(BATCH) {
            store.delete_rows(chunk.iter().map(|k| k.as_bytes().to_vec()).collect(), written_before).await?;
        }
        for chunk in wave_blobs.chunks(BATCH) {
            store.delete_blobs(chunk.to_vec(), written_before).await?;
        }
        let later = garbage.len() > wave.len();
        if timed && later {
            sleep(options.pause).await;
        }
        // What is still there was written again after the cut-off: a push relies on it.
        let mut revived: HashSet<Key> = HashSet::new();
        if timed {
            for chunk in wave_blobs.chunks(BATCH) {
                let present = store.has_blobs(chunk.to_vec()).await?;
                revived.extend(chunk.iter().zip(present).filter(|(_, p)| *p).map(|(k, _)| *k));
            }
            for chunk in wave_rows.chunks(BATCH) {
                let present = store.batch_has_key(chunk.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
                revived.extend(chunk.iter().zip(present).filter(|(_, p)| *p).map(|(k, _)| *k));
            }
        }
        let mut protect: Vec<Key> = Vec::new();
        for k in &wave {
            let g = garbage.remove(k).expect("a wave is garbage");
            if revived.contains(k) {
                report.revived += 1;
                protect.extend(g.children.iter().copied());
            } else {
                if g.blob {
                    report.removed_objects.push(*k);
                }
                if g.row {
                    report.removed_commits.push(*k);
                }
                deleted += 1;
            }
            for c in &g.children {
                if let Some(n) = referrers.get_mut(c) {
                    *n = n.saturating_sub(1);
                }
            }
        }
        // Everything below a revived entry stays.
        while let Some(k) = protect.pop() {
            if let Some(g) = garbage.remove(&k) {
                protect.extend(g.children);
            }
        }
        progress(Progress::Deleted(deleted));
    }
    report.removed_objects.sort();
    report.removed_commits.sort();
    Ok(report)
}

/// The parents and root of a commit element (empty if it does not decode).
fn commit_refs(e: &Element) -> Vec<Key> {
    match Commit::from_element(e) {
        Ok(c) => c.parent_keys().chain(c.root.iter().map(|r| r.key)).collect(),
        Err(_) => Vec::new(),
    }
}

/// The commits among blobs (commits put as blobs before their push indexed them).
async fn commits_among_blobs<S: Store>(store: &S, keys: &[Key]) -> Result<Vec<(Key, String)>, StoreError> {
    let rows = store.get_blobs(keys.to_vec()).await?;
    Ok(keys
        .iter()
        .zip(rows)
        .filter_map(|(k, row)| {
            let row = row?;
            let e = Element::from_stored(&row.element, &row.children).ok()?;
            (e.ty() == TypeId::COMMIT).then(|| (*k, "written during the grace period".to_owned()))
        })
        .collect())
}
