//! Repositories kept in a store.
//!
//! A [`StoredRepository`] is a [`Repository`] bound to a [`Store`]. Opening reads the heads
//! record alone. Commit rows are read by key when an operation walks to them, one batch per
//! level of the walk, and kept for the rest of the operation; the repository in memory holds
//! only what was read. Objects are fetched when a checkout needs them, level by level along
//! the stored child keys (no object is decoded to find its children), and verified.
//!
//! Every commit row carries the commit's generation (1 + the largest of its parents'), stored
//! but not indexed ([`GENERATION`]), so ancestry questions stop at the generation of the commit
//! they look for instead of walking to the root. Rows written before generations were kept
//! have none: a question that meets one reads the whole history once ([`StoredRepository::
//! load_history`]), which is correct, only slower; the next save gives its new commits
//! generations again.
//!
//! Saving writes, in this order: the new objects (one blob batch), the new commits (one index
//! batch, with the attributes of spec §4.1 and their generations), and then the heads by
//! compare-and-set. A crash can therefore leave unreferenced blobs, never a head that points
//! at missing data. A lost race merges the winner's heads into ours (fast-forward or
//! divergence, never loss), reading only the commits between the heads, and retries.

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use bytes::Bytes;
use dsf_proto::net::ooici::core::association::{Association, Terminology};
use dsf_proto::net::ooici::core::link::{CasRef, IdRef};
use dsf_proto::net::ooici::services::coi::OoiResource;

use super::{BlobRow, BlobStore, Cas, GENERATION, HeadStore, Predicate, Row, SaveBatch, Store, StoreError};
use crate::commit::Commit;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::key::{HashAlgorithm, Key};
use crate::repository::{Branch, Checkout, MergeBase, Repository, WalkStep, below_floor};
use crate::sync::Heads;
use crate::types::{Registry, TypeId};

/// How many times [`StoredRepository::save`] merges a newer heads record and retries.
const CAS_ATTEMPTS: usize = 64;

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Error {
        Error::Store(e)
    }
}

/// A repository bound to a store.
#[derive(Debug)]
pub struct StoredRepository<'s, S> {
    store: &'s S,
    repo: Repository,
    /// The version of the heads record this repository last read or wrote.
    version: Option<u64>,
    /// Commit → the `branch_name` attribute its row has in the store (for the rows read).
    indexed_heads: BTreeMap<Key, String>,
    /// Commits whose rows were read (or written) here, so their `branch_name` is known.
    rows_known: HashSet<Key>,
    /// Commits the store has no row of (for this repository).
    absent: HashSet<Key>,
    /// The heads as of the heads record last read or written.
    stored_heads: Vec<Key>,
    /// True once every commit row of the repository was read.
    history_loaded: bool,
}

impl<'s, S: Store> StoredRepository<'s, S> {
    /// Binds a new repository to a store. Nothing is written before the first save.
    pub fn create(store: &'s S, repo: Repository) -> StoredRepository<'s, S> {
        StoredRepository {
            store,
            repo,
            version: None,
            indexed_heads: BTreeMap::new(),
            rows_known: HashSet::new(),
            absent: HashSet::new(),
            stored_heads: Vec::new(),
            history_loaded: false,
        }
    }

    /// Opens a stored repository: its heads record only (no commit, no object yet). `None` if
    /// the store has no repository with this key. Commits are read when an operation needs
    /// them; [`StoredRepository::load_history`] reads them all.
    pub async fn open(store: &'s S, registry: Registry, key: &str) -> Result<Option<StoredRepository<'s, S>>> {
        let Some(heads) = read_heads(store, key).await? else { return Ok(None) };
        let mut this = StoredRepository::create(store, Repository::with_key(registry, key, heads.algorithm));
        this.version = Some(heads.version);
        this.stored_heads = heads.branches.iter().flat_map(|b| b.heads.iter().copied()).collect();
        this.repo.restore_heads(heads.branches, heads.nicknames);
        Ok(Some(this))
    }

    /// Reads every commit row of the repository (one query of the `repository_key` index), for
    /// what needs the whole history (a log, a clone). Costs time in proportion to the history.
    pub async fn load_history(&mut self) -> Result<()> {
        if self.history_loaded {
            return Ok(());
        }
        let rows =
            self.store.query(vec![Predicate::Eq("repository_key".into(), self.repo.key().as_bytes().to_vec())]).await?;
        let mut keys = Vec::with_capacity(rows.len());
        let mut commits = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(key) = Key::from_slice(&row.key) else { continue };
            if self.repo.commit_info(key).is_err() {
                commits.push(self.decode_row(key, row)?);
            }
            keys.push(key);
        }
        self.repo.add_stored(commits)?;
        self.repo.fill_generations(&keys);
        self.history_loaded = true;
        Ok(())
    }

    /// Reads the rows of `keys` that are neither in memory nor known to be absent, in one batch.
    /// A row of another repository counts as absent.
    pub async fn load_commits(&mut self, keys: &[Key]) -> Result<()> {
        let mut seen = HashSet::new();
        let wanted: Vec<Key> = keys
            .iter()
            .copied()
            .filter(|k| self.repo.commit_info(*k).is_err() && !self.absent.contains(k) && seen.insert(*k))
            .collect();
        if wanted.is_empty() {
            return Ok(());
        }
        let rows = self.store.get_rows(wanted.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
        let mut commits = Vec::with_capacity(wanted.len());
        for (key, row) in wanted.into_iter().zip(rows) {
            match row {
                Some(row) if row.attributes.get("repository_key").is_none_or(|r| r == self.repo.key().as_bytes()) => {
                    commits.push(self.decode_row(key, row)?)
                }
                _ => {
                    self.absent.insert(key);
                }
            }
        }
        self.repo.add_stored(commits)
    }

    /// The heads' commits, read if not in memory.
    pub async fn load_heads(&mut self) -> Result<()> {
        let heads: Vec<Key> = self.repo.branches().iter().flat_map(|b| b.heads.iter().copied()).collect();
        self.load_commits(&heads).await
    }

    /// Decodes a commit row, noting its `branch_name` and generation.
    fn decode_row(&mut self, key: Key, row: Row) -> Result<Element> {
        let value = row.value.ok_or_else(|| Error::codec("commit row", "a row without a value"))?;
        let e = Element::decode(self.repo.registry(), &value)?;
        if e.key() != key || e.ty() != TypeId::COMMIT {
            return Err(Error::Corrupt { key });
        }
        self.note_row(key, &row.attributes);
        if let Some(g) = row.attributes.get(GENERATION).and_then(|g| std::str::from_utf8(g).ok()?.parse().ok()) {
            self.repo.set_generation(key, g);
        }
        Ok(e)
    }

    fn note_row(&mut self, key: Key, attributes: &BTreeMap<String, Vec<u8>>) {
        self.rows_known.insert(key);
        match attributes.get("branch_name").filter(|b| !b.is_empty()) {
            Some(b) => self.indexed_heads.insert(key, String::from_utf8_lossy(b).into_owned()),
            None => self.indexed_heads.remove(&key),
        };
    }

    /// Reads the rows of `keys` again for their `branch_name` alone.
    async fn refresh_rows(&mut self, keys: &[Key]) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let rows = self.store.get_rows(keys.iter().map(|k| k.as_bytes().to_vec()).collect()).await?;
        for (key, row) in keys.iter().zip(rows) {
            if let Some(row) = row {
                self.note_row(*key, &row.attributes);
            }
        }
        Ok(())
    }

    /// Reads what [`Repository::is_ancestor`] walks to answer whether `ancestor` is in the
    /// history of `descendant`: the commits above `ancestor`'s generation (the whole history
    /// if a generation is unknown).
    pub async fn load_ancestry_between(&mut self, ancestor: Key, descendant: Key) -> Result<()> {
        self.load_commits(&[ancestor, descendant]).await?;
        if ancestor == descendant || self.history_loaded {
            return Ok(());
        }
        let Some(floor) = self.repo.generation(ancestor) else { return self.load_history().await };
        let mut seen = HashSet::new();
        let mut frontier = vec![descendant];
        while !frontier.is_empty() {
            self.load_commits(&frontier).await?;
            let mut next = Vec::new();
            for k in frontier {
                let Ok(c) = self.repo.commit_info(k) else { continue };
                let generation = self.repo.generation(k);
                if generation.is_none() {
                    return self.load_history().await;
                }
                if k == ancestor || below_floor(generation, Some(floor)) {
                    continue;
                }
                next.extend(c.parent_keys().filter(|p| seen.insert(*p)));
            }
            frontier = next;
        }
        Ok(())
    }

    /// Reads what [`Repository::common_ancestor`] walks for `commits`: the commits above their
    /// best common ancestor (the whole history if a generation is unknown).
    pub async fn load_common_ancestry(&mut self, commits: &[Key]) -> Result<()> {
        self.load_commits(commits).await?;
        if self.history_loaded {
            return Ok(());
        }
        let seeds: Option<Vec<(Key, u64)>> = commits
            .iter()
            .filter(|k| self.repo.commit_info(**k).is_ok())
            .map(|&k| Some((k, self.repo.generation(k)?)))
            .collect();
        let Some(mut walk) = seeds.and_then(|s| MergeBase::new(&s)) else { return self.load_history().await };
        loop {
            match walk.step() {
                WalkStep::Found(_) | WalkStep::Exhausted => return Ok(()),
                WalkStep::Expand(k) => {
                    let parents: Vec<Key> =
                        self.repo.commit_info(k).map(|c| c.parent_keys().collect()).unwrap_or_default();
                    self.load_commits(&parents).await?;
                    let mut reached = Vec::new();
                    for p in parents {
                        if self.repo.commit_info(p).is_err() {
                            continue;
                        }
                        match self.repo.generation(p) {
                            Some(g) => reached.push((p, g)),
                            None => return self.load_history().await,
                        }
                    }
                    walk.reach(k, &reached);
                }
            }
        }
    }

    /// Reads what receiving `received` as heads of `branch` walks: each received head against
    /// the branch's heads and the other received heads, both ways.
    async fn load_for_receive(&mut self, branch: &str, received: &[Key]) -> Result<()> {
        self.load_commits(received).await?;
        let mut local: Vec<Key> = self.repo.get_branch(branch).map(|b| b.heads.clone()).unwrap_or_default();
        self.load_commits(&local).await?;
        local.extend(received.iter().copied());
        for &h in received {
            for &l in &local {
                if h != l {
                    self.load_ancestry_between(h, l).await?;
                    self.load_ancestry_between(l, h).await?;
                }
            }
        }
        Ok(())
    }

    /// Adds received elements (as [`Repository::add_elements`]) and gives the new commits
    /// their generations, reading the stored parents they rest on.
    pub async fn add_elements(&mut self, elements: Vec<Element>) -> Result<()> {
        let commits: Vec<Key> = elements.iter().filter(|e| e.ty() == TypeId::COMMIT).map(|e| e.key()).collect();
        self.repo.add_elements(elements)?;
        self.ensure_generations(&commits).await
    }

    /// Takes received branches (as [`Repository::receive_branches`]), reading only the commits
    /// the fast-forward and divergence decisions walk.
    pub async fn receive_branches(&mut self, branches: Vec<Branch>, nicknames: BTreeMap<String, String>) -> Result<()> {
        self.load_heads().await?;
        for b in &branches {
            self.load_for_receive(&b.key, &b.heads).await?;
        }
        self.repo.receive_branches(branches, nicknames)
    }

    /// Resolves a treeish on a branch's first head, reading only the commits its steps pass
    /// (and the one it names).
    pub async fn resolve_treeish(&mut self, treeish: &str, branch: &str) -> Result<Key> {
        let head = match self.repo.get_branch(branch) {
            Some(b) => b.heads.first().copied(),
            None => return Err(Error::UnknownBranch { name: branch.to_owned() }),
        };
        let Some(head) = head else { return self.repo.resolve_treeish(treeish, branch) };
        loop {
            match self.repo.walk_treeish(head, treeish)? {
                Ok(k) => {
                    self.load_commits(&[k]).await?;
                    return Ok(k);
                }
                Err(k) if self.repo.commit_info(k).is_err() && !self.absent.contains(&k) => {
                    self.load_commits(&[k]).await?
                }
                Err(_) => return self.repo.resolve_treeish_from(head, treeish),
            }
        }
    }

    /// The commits reachable from the heads that the other side lacks, newest generation first.
    /// `have` says which commits the other side holds (with what lies below them). The walk
    /// goes down in generation order from the heads and from every held commit it meets, and
    /// stops once everything left to visit is below a held commit: with the other side's heads
    /// as `have` it reads the commits it sends and the held ones above their generation; with a
    /// full have-list it stops at held commits. With an empty `have` it reads the whole history
    /// at once (one query), since all of it is sent.
    pub async fn lacking(&mut self, have: &HashSet<Key>) -> Result<Vec<Key>> {
        if have.is_empty() {
            self.load_history().await?;
        }
        self.load_heads().await?;
        let have = |k: &Key| have.contains(k);
        let mut heads: Vec<Key> = self.repo.branches().iter().flat_map(|b| b.heads.iter().copied()).collect();
        heads.sort();
        heads.dedup();
        let generation = |repo: &Repository, k: Key| repo.generation(k).unwrap_or(0);
        let mut heap: BinaryHeap<(u64, Key)> = BinaryHeap::new();
        // Commit → held (true) or to send (false); `done`: the state it was last expanded in.
        let mut state: HashMap<Key, bool> = HashMap::new();
        let mut done: HashMap<Key, bool> = HashMap::new();
        let mut to_send = 0usize;
        let mut out = Vec::new();
        for h in heads {
            if self.repo.commit_info(h).is_err() {
                continue;
            }
            let held = have(&h);
            to_send += usize::from(!held);
            state.insert(h, held);
            heap.push((generation(&self.repo, h), h));
        }
        while to_send > 0 {
            let Some((_, k)) = heap.pop() else { break };
            let held = state[&k];
            if done.get(&k) == Some(&held) {
                continue;
            }
            if !held {
                to_send -= 1;
                out.push(k);
            }
            done.insert(k, held);
            let parents: Vec<Key> = self.repo.commit_info(k).map(|c| c.parent_keys().collect()).unwrap_or_default();
            self.load_commits(&parents).await?;
            for p in parents {
                if self.repo.commit_info(p).is_err() {
                    continue;
                }
                let reach = held || have(&p);
                match state.get(&p).copied() {
                    None => {
                        state.insert(p, reach);
                        to_send += usize::from(!reach);
                        heap.push((generation(&self.repo, p), p));
                    }
                    Some(false) if reach => {
                        state.insert(p, true);
                        if !done.contains_key(&p) {
                            to_send -= 1;
                        }
                        heap.push((generation(&self.repo, p), p));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(out)
    }

    /// Computes the generations of `commits` (in memory), reading the stored parents they need;
    /// a parent stored without a generation makes it read the whole history once.
    async fn ensure_generations(&mut self, commits: &[Key]) -> Result<()> {
        loop {
            self.repo.fill_generations(commits);
            // The commits without generations whose parents are neither here nor known absent.
            let mut wanted = Vec::new();
            let mut seen = HashSet::new();
            let mut stack: Vec<Key> = commits.iter().copied().filter(|k| self.repo.generation(*k).is_none()).collect();
            while let Some(k) = stack.pop() {
                if !seen.insert(k) {
                    continue;
                }
                let Ok(c) = self.repo.commit_info(k) else { continue };
                for p in c.parent_keys() {
                    if self.repo.generation(p).is_some() {
                        continue;
                    }
                    if self.repo.commit_info(p).is_ok() {
                        stack.push(p);
                    } else if !self.absent.contains(&p) {
                        wanted.push(p);
                    }
                }
            }
            if wanted.is_empty() {
                return Ok(());
            }
            self.load_commits(&wanted).await?;
            if wanted.iter().any(|k| self.repo.commit_info(*k).is_ok() && self.repo.generation(*k).is_none()) {
                // Stored before generations were kept: the whole history gives them.
                self.load_history().await?;
                self.repo.fill_generations(commits);
                return Ok(());
            }
        }
    }

    /// The repository (read access).
    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    /// The repository, to create and edit objects. Commit through [`StoredRepository::commit`]
    /// (or call [`StoredRepository::save`] after committing on the repository).
    pub fn repository_mut(&mut self) -> &mut Repository {
        &mut self.repo
    }

    /// The repository, unbound from the store.
    pub fn into_repository(self) -> Repository {
        self.repo
    }

    /// The version of the heads record last read or written.
    pub fn heads_version(&self) -> Option<u64> {
        self.version
    }

    /// Commits the workspace and saves it.
    pub async fn commit(&mut self, comment: &str) -> Result<Key> {
        let key = self.repo.commit(comment)?;
        self.save().await?;
        Ok(key)
    }

    /// Commits with an explicit date and saves.
    pub async fn commit_at(&mut self, comment: &str, date: f64) -> Result<Key> {
        let key = self.repo.commit_at(comment, date)?;
        self.save().await?;
        Ok(key)
    }

    /// Fetches what the checkout needs from the store, checks out, and saves any merge commit
    /// the checkout made (a diverged branch merged by date).
    pub async fn checkout(&mut self, how: Checkout) -> Result<()> {
        self.load_for_checkout(&how).await?;
        let roots = self.repo.checkout_roots(&how)?;
        let excluded = self.repo.excluded_for(&how);
        self.fetch_graphs(roots, &excluded).await?;
        self.repo.checkout(how)?;
        if self.repo.has_unsaved() {
            self.save().await?;
        }
        Ok(())
    }

    /// Reads the commits a checkout looks at: the heads; for a commit, the history above it;
    /// for a date, the whole history; for divergent heads, the history above their common
    /// ancestor.
    async fn load_for_checkout(&mut self, how: &Checkout) -> Result<()> {
        self.load_heads().await?;
        let Some(branch) = self.repo.get_branch(how.branch_name()) else { return Ok(()) };
        let heads = branch.heads.clone();
        if let Some(target) = how.target() {
            for h in heads {
                self.load_ancestry_between(target, h).await?;
                if self.repo.is_ancestor(target, h) {
                    break;
                }
            }
        } else if how.by_date() {
            self.load_history().await?;
        } else if heads.len() > 1 {
            self.load_common_ancestry(&heads).await?;
        }
        Ok(())
    }

    /// Fetches every element reachable from `roots` that the repository lacks, one batch per
    /// level, not following links to objects of excluded types (roots are always fetched).
    pub async fn fetch_graphs(&mut self, roots: Vec<Key>, excluded: &[TypeId]) -> Result<()> {
        let mut seen: HashSet<Key> = HashSet::new();
        let mut frontier: Vec<Key> = roots.iter().copied().filter(|k| seen.insert(*k)).collect();
        while !frontier.is_empty() {
            let (present, wanted): (Vec<Key>, Vec<Key>) =
                frontier.into_iter().partition(|k| self.repo.elements().contains(k));
            let mut fetched = Vec::with_capacity(wanted.len());
            let rows = if wanted.is_empty() { Vec::new() } else { self.store.get_blobs(wanted.clone()).await? };
            for (key, row) in wanted.iter().zip(rows) {
                let row = row.ok_or(Error::MissingElement { key: *key })?;
                let e = Element::from_stored(&row.element, &row.children)?;
                if e.key() != *key {
                    return Err(Error::Corrupt { key: *key });
                }
                fetched.push(e);
            }
            // Elements already here lead further too: an earlier checkout that left some types
            // out holds a graph without what hangs below them. Links to excluded types are not
            // followed: a copy made without them (a partial clone) does not hold those objects.
            let mut next = Vec::new();
            let here = present.iter().filter_map(|k| self.repo.elements().get(k));
            for e in here.chain(&fetched) {
                if excluded.is_empty() {
                    next.extend(e.children().iter().copied().filter(|c| seen.insert(*c)));
                    continue;
                }
                for (c, ty) in e.links(self.repo.registry())? {
                    if !excluded.contains(&ty) && seen.insert(c) {
                        next.push(c);
                    }
                }
            }
            self.repo.add_stored(fetched)?;
            frontier = next;
        }
        Ok(())
    }

    /// Writes new objects, then new commits, then moves the heads by compare-and-set, merging
    /// (never dropping) heads that another writer saved in between. The first attempt is one
    /// [`Store::save`] (a single write batch where the backend can); a lost race merges the
    /// winner's heads and retries the compare-and-set alone.
    pub async fn save(&mut self) -> Result<()> {
        let unsaved = self.repo.take_unsaved();
        let (commits, blobs): (Vec<Element>, Vec<Element>) =
            unsaved.into_iter().partition(|e| e.ty() == TypeId::COMMIT);
        let commit_keys: Vec<Key> = commits.iter().map(|e| e.key()).collect();
        self.ensure_generations(&commit_keys).await?;
        // The rows of the heads last stored may stop being heads: their branch_name is needed.
        let unknown: Vec<Key> = self.stored_heads.iter().copied().filter(|k| !self.rows_known.contains(k)).collect();
        self.refresh_rows(&unknown).await?;
        let blobs = blobs
            .iter()
            .map(|e| BlobRow { key: e.key(), element: e.encode().into(), children: e.encode_children().into() })
            .collect();
        let mut rows = Vec::with_capacity(commits.len());
        for e in &commits {
            rows.push(Row {
                key: e.key().as_bytes().to_vec(),
                value: Some(e.encode().into()),
                attributes: commit_attributes(&self.repo, e)?,
            });
        }
        let (on_applied, indexed) = self.head_attribute_updates();
        let batch = SaveBatch {
            blobs,
            rows,
            repository: self.repo.key().to_owned(),
            expected: self.version,
            record: encode_heads(&self.repo),
            on_applied,
        };
        let outcome = self.store.save(batch).await?;
        self.rows_known.extend(commit_keys);
        match outcome {
            Cas::Applied(v) => {
                self.version = Some(v);
                self.indexed_heads = indexed;
                self.stored_heads = self.current_heads();
                Ok(())
            }
            Cas::Lost(current) => {
                self.merge_current(current).await?;
                self.move_heads().await?;
                self.stored_heads = self.current_heads();
                self.update_head_attributes().await
            }
        }
    }

    fn current_heads(&self) -> Vec<Key> {
        self.repo.branches().iter().flat_map(|b| b.heads.iter().copied()).collect()
    }

    /// Merges the heads record another writer saved into ours.
    async fn merge_current(&mut self, current: Option<super::Versioned>) -> Result<()> {
        let Some(current) = current else {
            self.version = None;
            return Ok(());
        };
        let Heads { branches, nicknames, .. } = Heads::decode_record(&current.record)?;
        let winner: Vec<Key> = branches.iter().flat_map(|b| b.heads.iter().copied()).collect();
        self.load_commits(&winner).await?;
        // What the winner's save changed of the branch names on the rows.
        let mut refresh: Vec<Key> = winner.clone();
        refresh.extend(self.indexed_heads.keys().copied());
        refresh.extend(self.current_heads());
        refresh.sort();
        refresh.dedup();
        self.refresh_rows(&refresh).await?;
        for b in branches {
            self.load_for_receive(&b.key, &b.heads).await?;
            self.repo.receive_heads(&b.key, &b.heads)?;
        }
        for (name, branch) in nicknames {
            if self.repo.get_branch(&name).is_none() {
                self.repo.set_nickname(&name, &branch)?;
            }
        }
        self.version = Some(current.version);
        Ok(())
    }

    async fn move_heads(&mut self) -> Result<()> {
        for _ in 0..CAS_ATTEMPTS {
            let record = encode_heads(&self.repo);
            match self.store.cas_heads(self.repo.key().to_owned(), self.version, record).await? {
                Cas::Applied(v) => {
                    self.version = Some(v);
                    return Ok(());
                }
                Cas::Lost(current) => self.merge_current(current).await?,
            }
        }
        Err(Error::State(format!("heads of {} kept changing: gave up after {CAS_ATTEMPTS} attempts", self.repo.key())))
    }

    /// The `branch_name` updates that make the rows match the heads: set on head commits,
    /// cleared on rows that stopped being heads; and the head map they produce.
    fn head_attribute_updates(&self) -> (Vec<Row>, BTreeMap<Key, String>) {
        let mut now: BTreeMap<Key, Vec<String>> = BTreeMap::new();
        for b in self.repo.branches() {
            for h in &b.heads {
                now.entry(*h).or_default().push(b.key.clone());
            }
        }
        let now: BTreeMap<Key, String> = now.into_iter().map(|(k, v)| (k, v.join(","))).collect();
        let mut updates = Vec::new();
        for (k, old) in &self.indexed_heads {
            if !now.contains_key(k) && !old.is_empty() {
                updates.push(attribute_update(*k, ""));
            }
        }
        for (k, names) in &now {
            if self.indexed_heads.get(k) != Some(names) {
                updates.push(attribute_update(*k, names));
            }
        }
        (updates, now)
    }

    /// Sets `branch_name` on head commit rows and clears it on rows that stopped being heads.
    async fn update_head_attributes(&mut self) -> Result<()> {
        let (updates, now) = self.head_attribute_updates();
        if !updates.is_empty() {
            self.store.batch_put_rows(updates).await?;
        }
        self.indexed_heads = now;
        Ok(())
    }
}

/// The heads of a stored repository, read without its commits.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHeads {
    /// The repository's hash algorithm.
    pub algorithm: HashAlgorithm,
    /// Branches and their head commits.
    pub branches: Vec<Branch>,
    /// Branch names → branch keys.
    pub nicknames: BTreeMap<String, String>,
    /// The version of the heads record.
    pub version: u64,
}

impl StoredHeads {
    /// The heads of a repository in memory, at a heads version.
    pub fn of(repo: &Repository, version: u64) -> StoredHeads {
        StoredHeads {
            algorithm: repo.algorithm(),
            branches: repo.branches().to_vec(),
            nicknames: repo.nicknames().clone(),
            version,
        }
    }
}

/// Reads the heads of a repository; `None` if the store has no repository with this key.
pub async fn read_heads<S: HeadStore>(store: &S, key: &str) -> Result<Option<StoredHeads>> {
    let Some(current) = store.get_heads(key.to_owned()).await? else { return Ok(None) };
    let Heads { algorithm, branches, nicknames } = Heads::decode_record(&current.record)?;
    Ok(Some(StoredHeads { algorithm, branches, nicknames, version: current.version }))
}

/// Every element reachable from `roots`, read from the store one batch per level and verified.
/// Links to objects of `excluded` types are not followed (roots are always included); keys for
/// which `known` is true are neither read nor descended (whoever asks holds them and what hangs
/// below them). A missing element is [`Error::MissingElement`].
pub async fn collect<S: BlobStore>(
    store: &S,
    registry: &Registry,
    roots: &[Key],
    excluded: &[TypeId],
    known: impl Fn(&Key) -> bool,
) -> Result<Vec<Element>> {
    let mut seen: HashSet<Key> = HashSet::new();
    let mut frontier: Vec<Key> = roots.iter().copied().filter(|k| !known(k) && seen.insert(*k)).collect();
    let mut out = Vec::new();
    while !frontier.is_empty() {
        let rows = store.get_blobs(frontier.clone()).await?;
        let mut next = Vec::new();
        for (key, row) in frontier.iter().zip(rows) {
            let row = row.ok_or(Error::MissingElement { key: *key })?;
            let e = Element::from_stored(&row.element, &row.children)?;
            if e.key() != *key {
                return Err(Error::Corrupt { key: *key });
            }
            if excluded.is_empty() {
                next.extend(e.children().iter().copied().filter(|c| !known(c) && seen.insert(*c)));
            } else {
                for (c, ty) in e.links(registry)? {
                    if !excluded.contains(&ty) && !known(&c) && seen.insert(c) {
                        next.push(c);
                    }
                }
            }
            out.push(e);
        }
        frontier = next;
    }
    Ok(out)
}

fn attribute_update(key: Key, branch_name: &str) -> Row {
    Row {
        key: key.as_bytes().to_vec(),
        value: None,
        attributes: BTreeMap::from([("branch_name".to_owned(), branch_name.as_bytes().to_vec())]),
    }
}

fn encode_heads(repo: &Repository) -> Bytes {
    Heads::of(repo).encode_record().into()
}

/// The attributes of a commit row: the indexed ones of spec §4.1 (the repository key, an empty
/// `branch_name` (heads are marked after the heads move), and attributes of the root object
/// for associations (13), resources (1102) and terms (14)), and the stored-only generation
/// where it is known.
pub fn commit_attributes(repo: &Repository, commit: &Element) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut attrs = BTreeMap::new();
    attrs.insert("repository_key".to_owned(), repo.key().as_bytes().to_vec());
    attrs.insert("branch_name".to_owned(), Vec::new());
    if let Some(g) = repo.generation(commit.key()) {
        attrs.insert(GENERATION.to_owned(), g.to_string().into_bytes());
    }
    let info = Commit::from_element(commit)?;
    let Some(root) = info.root else { return Ok(attrs) };
    let Some(root_element) = repo.elements().get(&root.key) else { return Ok(attrs) };
    let linked = |link: &Option<CasRef>| -> Option<IdRef> {
        let key = Key::from_slice(&link.as_ref()?.key)?;
        repo.elements().get(&key)?.decode_as::<IdRef>().ok()
    };
    match root.ty.object_id {
        13 => {
            let a: Association = root_element.decode_as()?;
            for (role, link) in [("subject", &a.subject), ("predicate", &a.predicate), ("object", &a.object)] {
                let (key, branch, commit) = match linked(link) {
                    Some(r) => (
                        r.key.unwrap_or_default().into_bytes(),
                        r.branch.unwrap_or_default().into_bytes(),
                        r.commit.unwrap_or_default(),
                    ),
                    None => (b"null".to_vec(), b"null".to_vec(), b"null".to_vec()),
                };
                attrs.insert(format!("{role}_key"), key);
                attrs.insert(format!("{role}_branch"), branch);
                attrs.insert(format!("{role}_commit"), commit);
            }
        }
        1102 => {
            let r: OoiResource = root_element.decode_as()?;
            if let Some(t) = linked(&r.resource_type) {
                attrs.insert("resource_object_type".to_owned(), t.key.unwrap_or_default().into_bytes());
            }
            // The decimal enum number, as ION stores it ("2" for ACTIVE).
            attrs.insert("resource_life_cycle_state".to_owned(), (r.lcs() as i32).to_string().into_bytes());
        }
        14 => {
            let t: Terminology = root_element.decode_as()?;
            attrs.insert("keyword".to_owned(), t.word.unwrap_or_default().into_bytes());
        }
        _ => {}
    }
    Ok(attrs)
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::pin;
    use std::task::{Context, Poll, Waker};

    use super::*;
    use crate::commit::{Parent, Relationship};
    use crate::repository::MASTER;
    use crate::store::memory::MemoryStore;

    /// Runs a future that completes on its first poll (every memory-store future does).
    fn now<F: Future>(future: F) -> F::Output {
        match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(out) => out,
            Poll::Pending => panic!("a memory-store future waited"),
        }
    }

    /// A small deterministic generator (xorshift).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// A random history of `n` commits with merges, every commit without children a head of
    /// master, saved to `store`; returns the repository in memory and its commits, oldest first.
    fn random_history(store: &MemoryStore, n: usize, seed: u64) -> (Repository, Vec<Key>) {
        let registry = Registry::builtin();
        let mut repo = Repository::with_key(registry.clone(), format!("history-{seed}"), HashAlgorithm::Sha1);
        let mut rng = Rng(seed);
        let mut commits: Vec<Key> = Vec::new();
        let mut has_child = HashSet::new();
        for i in 0..n {
            let mut parents = Vec::new();
            if i > 0 {
                let first = commits[i - 1 - rng.below(i.min(6))];
                parents.push(Parent { relationship: Relationship::Parent, commit: first });
                if rng.below(10) < 3 {
                    let other = commits[rng.below(i)];
                    if other != first {
                        parents.push(Parent { relationship: Relationship::MergedFrom, commit: other });
                    }
                }
            }
            has_child.extend(parents.iter().map(|p| p.commit));
            let seed = (i == 0).then_some(repo.key().to_owned());
            let e = Commit::build(
                HashAlgorithm::Sha1,
                &registry,
                &format!("c{i}"),
                i as f64,
                &parents,
                None,
                seed.as_deref(),
            )
            .unwrap();
            commits.push(e.key());
            repo.add_elements([e]).unwrap();
        }
        let heads: Vec<Key> = commits.iter().copied().filter(|c| !has_child.contains(c)).collect();
        repo.receive_branches(vec![Branch { key: "B".into(), heads }], BTreeMap::from([(MASTER.into(), "B".into())]))
            .unwrap();
        let mut stored = StoredRepository::create(store, repo.clone());
        now(stored.save()).unwrap();
        (repo, commits)
    }

    /// Every ancestor of `from` (itself included), by a plain walk of the whole history.
    fn reach(repo: &Repository, from: &[Key]) -> HashSet<Key> {
        repo.ancestry(from).into_iter().collect()
    }

    /// Walks that read commits by key, stopping at generations, answer as the whole history
    /// does: ancestry both ways, the merge base (a common ancestor no other one descends from),
    /// and the commits a side lacks given the commits it has.
    #[test]
    fn walks_by_key_agree_with_the_whole_history() {
        let store = MemoryStore::new();
        let registry = Registry::builtin();
        for seed in [7u64, 11, 23] {
            let (full, commits) = random_history(&store, 300, seed);
            let open = || now(StoredRepository::open(&store, registry.clone(), full.key())).unwrap().unwrap();
            for (k, c) in commits.iter().enumerate() {
                let parents = full.commit_info(*c).unwrap().parent_keys().map(|p| full.generation(p).unwrap());
                assert_eq!(full.generation(*c), Some(parents.max().unwrap_or(0) + 1), "commit {k}");
            }
            let mut rng = Rng(seed * 31 + 1);
            for _ in 0..60 {
                let (a, d) = (commits[rng.below(commits.len())], commits[rng.below(commits.len())]);
                let mut stored = open();
                now(stored.load_ancestry_between(a, d)).unwrap();
                assert_eq!(stored.repository().is_ancestor(a, d), reach(&full, &[d]).contains(&a));
                assert!(!stored.history_loaded, "generations keep the walk above the ancestor");
            }
            for _ in 0..30 {
                let (a, b) = (commits[rng.below(commits.len())], commits[rng.below(commits.len())]);
                let mut stored = open();
                now(stored.load_common_ancestry(&[a, b])).unwrap();
                let base = stored.repository().common_ancestor(&[a, b]).unwrap();
                assert_eq!(Some(base), full.common_ancestor(&[a, b]).ok());
                let common: HashSet<Key> = reach(&full, &[a]).intersection(&reach(&full, &[b])).copied().collect();
                assert!(common.contains(&base));
                assert!(common.iter().all(|c| *c == base || !reach(&full, &[*c]).contains(&base)), "a nearest one");
            }
            let heads = full.current_heads();
            let all = reach(&full, &heads);
            for _ in 0..20 {
                let have: HashSet<Key> = (0..rng.below(4) + 1).map(|_| commits[rng.below(commits.len())]).collect();
                let held = reach(&full, &have.iter().copied().collect::<Vec<_>>());
                let mut stored = open();
                let lacking: HashSet<Key> = now(stored.lacking(&have)).unwrap().into_iter().collect();
                let expected: HashSet<Key> = all.difference(&held).copied().collect();
                assert_eq!(lacking, expected);
            }
            let lacking: HashSet<Key> = now(open().lacking(&HashSet::new())).unwrap().into_iter().collect();
            assert_eq!(lacking, all);
        }
    }
}
