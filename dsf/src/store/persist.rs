//! Repositories kept in a store.
//!
//! A [`StoredRepository`] is a [`Repository`] bound to a [`Store`]. Opening reads the heads
//! record and the repository's commits; objects are fetched when a checkout needs them, level by
//! level along the stored child keys (no object is decoded to find its children), and verified.
//!
//! Saving writes, in this order: the new objects (one blob batch), the new commits (one index
//! batch, with the attributes of spec §4.1), and then the heads by compare-and-set. A crash can
//! therefore leave unreferenced blobs, never a head that points at missing data. A lost race
//! merges the winner's heads into ours (fast-forward or divergence, never loss) and retries.

use std::collections::{BTreeMap, HashSet};

use bytes::Bytes;
use dsf_proto::net::ooici::core::association::{Association, Terminology};
use dsf_proto::net::ooici::core::link::{CasRef, IdRef};
use dsf_proto::net::ooici::services::coi::OoiResource;

use super::{BlobRow, BlobStore, Cas, HeadStore, Predicate, Row, SaveBatch, Store, StoreError};
use crate::commit::Commit;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::key::{HashAlgorithm, Key};
use crate::repository::{Branch, Checkout, Repository};
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
    /// Commit → the `branch_name` attribute its row has in the store.
    indexed_heads: BTreeMap<Key, String>,
}

impl<'s, S: Store> StoredRepository<'s, S> {
    /// Binds a new repository to a store. Nothing is written before the first save.
    pub fn create(store: &'s S, repo: Repository) -> StoredRepository<'s, S> {
        StoredRepository { store, repo, version: None, indexed_heads: BTreeMap::new() }
    }

    /// Opens a stored repository: its heads and commits, no objects yet. `None` if the store
    /// has no repository with this key.
    pub async fn open(store: &'s S, registry: Registry, key: &str) -> Result<Option<StoredRepository<'s, S>>> {
        let Some(heads) = read_heads(store, key).await? else { return Ok(None) };
        let mut this = StoredRepository {
            store,
            repo: Repository::with_key(registry, key, heads.algorithm),
            version: Some(heads.version),
            indexed_heads: BTreeMap::new(),
        };
        this.load_commits().await?;
        this.repo.restore_heads(heads.branches, heads.nicknames);
        Ok(Some(this))
    }

    /// Reads every commit row of the repository (and the `branch_name` they carry).
    async fn load_commits(&mut self) -> Result<()> {
        let rows =
            self.store.query(vec![Predicate::Eq("repository_key".into(), self.repo.key().as_bytes().to_vec())]).await?;
        let mut commits = Vec::with_capacity(rows.len());
        for row in rows {
            let value = row.value.ok_or_else(|| Error::codec("commit row", "a row without a value"))?;
            let e = Element::decode(self.repo.registry(), &value)?;
            if let Some(b) = row.attributes.get("branch_name").filter(|b| !b.is_empty()) {
                self.indexed_heads.insert(e.key(), String::from_utf8_lossy(b).into_owned());
            }
            commits.push(e);
        }
        self.repo.add_stored(commits)
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
        let roots = self.repo.checkout_roots(&how)?;
        let excluded = self.repo.excluded_for(&how);
        self.fetch_graphs(roots, &excluded).await?;
        self.repo.checkout(how)?;
        if self.repo.has_unsaved() {
            self.save().await?;
        }
        Ok(())
    }

    /// Fetches every element reachable from `roots` that the repository lacks, one batch per
    /// level, not descending below objects of excluded types.
    pub async fn fetch_graphs(&mut self, roots: Vec<Key>, excluded: &[TypeId]) -> Result<()> {
        let mut seen: HashSet<Key> = HashSet::new();
        let mut frontier: Vec<Key> = roots.iter().copied().filter(|k| seen.insert(*k)).collect();
        while !frontier.is_empty() {
            let wanted: Vec<Key> = frontier.into_iter().filter(|k| !self.repo.elements().contains(k)).collect();
            let mut next = Vec::new();
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
            // Children of elements already present are present too (they were saved together),
            // so only fetched elements lead further.
            for e in &fetched {
                if excluded.contains(&e.ty()) && !roots.contains(&e.key()) {
                    continue;
                }
                next.extend(e.children().iter().copied().filter(|c| seen.insert(*c)));
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
        match self.store.save(batch).await? {
            Cas::Applied(v) => {
                self.version = Some(v);
                self.indexed_heads = indexed;
                Ok(())
            }
            Cas::Lost(current) => {
                self.merge_current(current).await?;
                self.move_heads().await?;
                self.update_head_attributes().await
            }
        }
    }

    /// Merges the heads record another writer saved into ours.
    async fn merge_current(&mut self, current: Option<super::Versioned>) -> Result<()> {
        let Some(current) = current else {
            self.version = None;
            return Ok(());
        };
        self.load_commits().await?;
        let Heads { branches, nicknames, .. } = Heads::decode_record(&current.record)?;
        for b in branches {
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

/// The index attributes of a commit row (spec §4.1): the repository key, an empty
/// `branch_name` (heads are marked after the heads move), and attributes of the root object
/// for associations (13), resources (1102) and terms (14).
pub fn commit_attributes(repo: &Repository, commit: &Element) -> Result<BTreeMap<String, Vec<u8>>> {
    let mut attrs = BTreeMap::new();
    attrs.insert("repository_key".to_owned(), repo.key().as_bytes().to_vec());
    attrs.insert("branch_name".to_owned(), Vec::new());
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
