//! The repository: elements, commits, branches, the workspace, checkout, history and merge.

use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};

use bytes::Bytes;
use dsf_proto::Identified;
use dsf_proto::net::ooici::core::link::CasRef;
use dsf_proto::net::ooici::core::r#type::GpbType;
use prost::Message as _;
use prost_reflect::{DynamicMessage, ReflectMessage as _};

use crate::commit::{Commit, ObjectRef, Parent, Relationship};
use crate::element::Element;
use crate::elements::Elements;
use crate::error::{Error, Result};
use crate::key::{HashAlgorithm, Key};
use crate::merge::{self, Conflict, MergePolicy};
use crate::types::{Registry, TypeId};
use crate::workspace::{ObjectId, Workspace};

/// The nickname every new repository gives its first branch.
pub const MASTER: &str = "master";

/// Whether the workspace holds uncommitted changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// No root object: nothing created or checked out yet.
    NotInitialized,
    /// The root (or a pending merge) has changes to commit.
    Modified,
    /// The workspace equals the checked-out commit.
    UpToDate,
}

/// A branch: a key and its head commits. More than one head means the branch diverged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// The branch key (8 uppercase hex characters for branches made here).
    pub key: String,
    /// The head commits.
    pub heads: Vec<Key>,
}

/// What the workspace is checked out from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Current {
    /// A branch, by key; commits advance it.
    Branch(String),
    /// A commit, read only.
    Detached(Key),
}

/// How to check out; see [`Repository::checkout`].
#[derive(Debug, Clone)]
pub struct Checkout {
    branch: String,
    commit: Option<Key>,
    older_than: Option<f64>,
    excluded_types: Option<Vec<TypeId>>,
    auto_merge: bool,
}

impl Checkout {
    /// The head of a branch (nickname or key).
    pub fn branch(name: impl Into<String>) -> Checkout {
        Checkout { branch: name.into(), commit: None, older_than: None, excluded_types: None, auto_merge: true }
    }

    /// A commit in the branch's history instead of its head (a detached, read-only checkout).
    pub fn commit(mut self, key: Key) -> Checkout {
        self.commit = Some(key);
        self
    }

    /// The newest commit in the branch's history dated at or before `date` (detached).
    pub fn older_than(mut self, date: f64) -> Checkout {
        self.older_than = Some(date);
        self
    }

    /// Types whose objects (and what hangs below them) are not loaded. The repository's list
    /// (by default `ArrayStructure`) applies when not given; pass an empty list to load all.
    pub fn excluded_types(mut self, types: impl IntoIterator<Item = TypeId>) -> Checkout {
        self.excluded_types = Some(types.into_iter().collect());
        self
    }

    /// Whether a diverged branch is merged by date on checkout (the default) or checked out at
    /// the heads' common ancestor with the heads left as merge states.
    pub fn auto_merge(mut self, yes: bool) -> Checkout {
        self.auto_merge = yes;
        self
    }

    pub(crate) fn branch_name(&self) -> &str {
        &self.branch
    }

    pub(crate) fn target(&self) -> Option<Key> {
        self.commit
    }

    pub(crate) fn by_date(&self) -> bool {
        self.older_than.is_some()
    }
}

/// What [`Repository::merge`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum MergeOutcome {
    /// The other side is already in this branch's history: nothing to do.
    UpToDate,
    /// This branch was behind: its head moved to the other commit and it was checked out.
    FastForward(Key),
    /// A three-way merge was loaded into the workspace; commit it to record a merge commit.
    Merged {
        /// Field conflicts; under `Manual` they must be resolved before commit.
        conflicts: Vec<Conflict>,
    },
}

/// A versioned graph of objects: elements by key, commits, branches and one workspace.
#[derive(Debug, Clone)]
pub struct Repository {
    key: String,
    alg: HashAlgorithm,
    registry: Registry,
    elements: Elements,
    commits: HashMap<Key, Commit>,
    /// Known generations (1 + the largest of the parents'; 1 without parents): exact where
    /// present, absent where an ancestor is unknown.
    generations: HashMap<Key, u64>,
    branches: Vec<Branch>,
    nicknames: BTreeMap<String, String>,
    current: Option<Current>,
    ws: Workspace,
    default_excluded: Vec<TypeId>,
    /// The commit the workspace was loaded from or last committed as.
    loaded: Option<Key>,
    /// MERGEDFROM parents of the next commit.
    pending_merge: Vec<Key>,
    conflicts: Vec<Conflict>,
}

/// Seconds since the Unix epoch, as ION dates commits.
pub fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn new_branch_key() -> String {
    use sha1::Digest as _;
    let digest = sha1::Sha1::digest(uuid::Uuid::new_v4().as_bytes());
    digest[..4].iter().map(|b| format!("{b:02X}")).collect()
}

impl Repository {
    /// A new, empty repository with a fresh key (an uppercase UUID), SHA-1 keys, and branch
    /// `master` with no commits.
    pub fn new(registry: Registry) -> Repository {
        Repository::with_key(registry, uuid::Uuid::new_v4().to_string().to_uppercase(), HashAlgorithm::Sha1)
    }

    /// A new, empty repository with a given key and hash algorithm.
    pub fn with_key(registry: Registry, key: impl Into<String>, alg: HashAlgorithm) -> Repository {
        let master = new_branch_key();
        let mut nicknames = BTreeMap::new();
        nicknames.insert(MASTER.to_owned(), master.clone());
        Repository {
            key: key.into(),
            alg,
            ws: Workspace::new(registry.clone()),
            registry,
            elements: Elements::default(),
            commits: HashMap::new(),
            generations: HashMap::new(),
            branches: vec![Branch { key: master.clone(), heads: Vec::new() }],
            nicknames,
            current: Some(Current::Branch(master)),
            default_excluded: vec![TypeId::ARRAY_STRUCTURE],
            loaded: None,
            pending_merge: Vec::new(),
            conflicts: Vec::new(),
        }
    }

    // ----- identity and contents -------------------------------------------------------------

    /// The repository key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The hash algorithm of this repository's keys.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.alg
    }

    /// The type registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The element index (content objects and commits).
    pub fn elements(&self) -> &Elements {
        &self.elements
    }

    /// The total encoded size of the repository's elements, in bytes.
    pub fn size(&self) -> usize {
        self.elements.bytes()
    }

    /// Adds elements received from elsewhere. Each must be of this repository's hash algorithm
    /// (elements are verified when built, see [`Element::from_parts`]); commits are indexed.
    pub fn add_elements(&mut self, elements: impl IntoIterator<Item = Element>) -> Result<()> {
        let mut added = Vec::new();
        for e in elements {
            if e.key().algorithm() != self.alg {
                return Err(Error::codec(
                    "element",
                    format!(
                        "element {} is keyed by {}, this repository by {}",
                        e.key(),
                        e.key().algorithm().name(),
                        self.alg.name()
                    ),
                ));
            }
            if e.ty() == TypeId::COMMIT && !self.commits.contains_key(&e.key()) {
                self.commits.insert(e.key(), Commit::from_element(&e)?);
                added.push(e.key());
            }
            self.elements.insert(e);
        }
        self.fill_generations(&added);
        Ok(())
    }

    /// Adds elements read back from a store: verified, indexed, not counted as unsaved.
    pub(crate) fn add_stored(&mut self, elements: impl IntoIterator<Item = Element>) -> Result<()> {
        for e in elements {
            if e.ty() == TypeId::COMMIT && !self.commits.contains_key(&e.key()) {
                self.commits.insert(e.key(), Commit::from_element(&e)?);
            }
            self.elements.insert_saved(e);
        }
        Ok(())
    }

    /// The generation of a commit (1 + the largest generation of its parents, 1 for a commit
    /// without parents), if it is known: it is unknown while an ancestor is not present.
    pub fn generation(&self, commit: Key) -> Option<u64> {
        self.generations.get(&commit).copied()
    }

    /// Records a generation read back from a store.
    pub(crate) fn set_generation(&mut self, commit: Key, generation: u64) {
        self.generations.insert(commit, generation);
    }

    /// Computes the generations of `commits` where every ancestor they need is present (or has
    /// a known generation); the others stay unknown.
    pub(crate) fn fill_generations(&mut self, commits: &[Key]) {
        let mut impossible: HashSet<Key> = HashSet::new();
        for &start in commits {
            let mut stack = vec![start];
            while let Some(&k) = stack.last() {
                if self.generations.contains_key(&k) || impossible.contains(&k) {
                    stack.pop();
                    continue;
                }
                let Some(c) = self.commits.get(&k) else {
                    impossible.insert(k);
                    stack.pop();
                    continue;
                };
                let mut top = 0u64;
                let mut pending = Vec::new();
                let mut stuck = false;
                for p in c.parent_keys() {
                    match self.generations.get(&p) {
                        Some(&g) => top = top.max(g),
                        None if impossible.contains(&p) || !self.commits.contains_key(&p) => stuck = true,
                        None => pending.push(p),
                    }
                }
                if stuck {
                    impossible.insert(k);
                    stack.pop();
                } else if pending.is_empty() {
                    self.generations.insert(k, top + 1);
                    stack.pop();
                } else {
                    stack.extend(pending);
                }
            }
        }
    }

    /// Elements added since the last call (new objects, then their commits), forgotten here.
    pub(crate) fn take_unsaved(&mut self) -> Vec<Element> {
        self.elements.take_unsaved()
    }

    pub(crate) fn has_unsaved(&self) -> bool {
        self.elements.has_unsaved()
    }

    /// Replaces branches and nicknames with stored ones; the current branch becomes `master`
    /// (or the first branch) with an empty workspace.
    pub(crate) fn restore_heads(&mut self, branches: Vec<Branch>, nicknames: BTreeMap<String, String>) {
        self.branches = branches;
        self.nicknames = nicknames;
        let current = self.branch_key_of(MASTER).or_else(|| self.branches.first().map(|b| b.key.clone()));
        self.current = current.map(Current::Branch);
        self.ws.clear();
        self.loaded = None;
    }

    /// The root objects a checkout may load: of the target commit, or of every head of the
    /// branch and their common ancestor.
    pub fn checkout_roots(&self, how: &Checkout) -> Result<Vec<Key>> {
        let key = self.branch_key_of(&how.branch).ok_or_else(|| Error::UnknownBranch { name: how.branch.clone() })?;
        let heads = self.get_branch(&key).expect("resolved").heads.clone();
        let mut commits = match (how.commit, how.older_than) {
            (Some(c), _) => vec![c],
            (None, Some(date)) => self
                .ancestry(&heads)
                .into_iter()
                .filter(|k| self.commits.get(k).is_some_and(|c| c.date <= date))
                .collect(),
            (None, None) => heads.clone(),
        };
        if how.commit.is_none() && how.older_than.is_none() && heads.len() > 1 {
            commits.extend(self.common_ancestor(&heads).ok());
        }
        Ok(commits.iter().filter_map(|c| self.commits.get(c).and_then(|c| c.root)).map(|r| r.key).collect())
    }

    /// The types a checkout excludes.
    pub fn excluded_for(&self, how: &Checkout) -> Vec<TypeId> {
        how.excluded_types.clone().unwrap_or_else(|| self.default_excluded.clone())
    }

    /// The commit with this key.
    pub fn commit_info(&self, key: Key) -> Result<&Commit> {
        self.commits.get(&key).ok_or(Error::MissingElement { key })
    }

    /// Every commit this repository holds, in no particular order.
    pub fn commits(&self) -> impl Iterator<Item = &Commit> {
        self.commits.values()
    }

    /// The workspace status.
    pub fn status(&self) -> Status {
        match self.ws.root() {
            None => Status::NotInitialized,
            Some(_) if self.ws.is_modified() || !self.pending_merge.is_empty() => Status::Modified,
            Some(_) => Status::UpToDate,
        }
    }

    /// What the workspace is checked out from.
    pub fn current(&self) -> Option<&Current> {
        self.current.as_ref()
    }

    /// Types excluded from checkouts that do not name their own.
    pub fn set_excluded_types(&mut self, types: Vec<TypeId>) {
        self.default_excluded = types;
    }

    // ----- objects ------------------------------------------------------------------------------

    /// Creates a new object from a generated message; it is modified until committed.
    pub fn create<T: Identified>(&mut self, obj: &T) -> Result<ObjectId> {
        self.ws.create(&self.elements, TypeId::of::<T>(), obj.encode_to_vec().into())
    }

    /// Creates a new object from a dynamic message of a registered type.
    pub fn create_dynamic(&mut self, msg: &DynamicMessage) -> Result<ObjectId> {
        let ty = self.type_of_descriptor(msg)?;
        self.ws.create(&self.elements, ty, msg.encode_to_vec().into())
    }

    /// Creates a new object of `ty` from its encoded bytes.
    pub fn create_encoded(&mut self, ty: TypeId, value: impl Into<Bytes>) -> Result<ObjectId> {
        self.ws.create(&self.elements, ty, value.into())
    }

    fn type_of_descriptor(&self, msg: &DynamicMessage) -> Result<TypeId> {
        let name = msg.descriptor().full_name().to_owned();
        self.registry.by_name(&name).ok_or_else(|| Error::Registry(format!("{name} is not a registered object type")))
    }

    /// Reads an object as a generated message. Its links hold keys, or workspace placeholders
    /// for modified targets: use [`Repository::resolve`] to follow them.
    pub fn get<T: Identified>(&self, id: ObjectId) -> Result<T> {
        let ty = self.ws.ty(id)?;
        if ty != TypeId::of::<T>() {
            return Err(Error::codec(
                "object",
                format!("object {id} has type {ty}, not {} ({})", TypeId::of::<T>(), T::FULL_NAME),
            ));
        }
        T::decode(self.ws.value(id)?.as_ref()).map_err(|e| Error::codec("object", e))
    }

    /// Reads an object as a dynamic message.
    pub fn get_dynamic(&self, id: ObjectId) -> Result<DynamicMessage> {
        let info = self.registry.require(self.ws.ty(id)?)?;
        DynamicMessage::decode(info.descriptor.clone(), self.ws.value(id)?.as_ref())
            .map_err(|e| Error::codec("object", e))
    }

    /// Replaces an object's content with `obj` (same type).
    pub fn set<T: Identified>(&mut self, id: ObjectId, obj: &T) -> Result<()> {
        let ty = self.ws.ty(id)?;
        if ty != TypeId::of::<T>() {
            return Err(Error::codec("object", format!("object {id} has type {ty}, not {}", TypeId::of::<T>())));
        }
        self.ws.replace(&self.elements, id, obj.encode_to_vec().into())
    }

    /// Edits an object through its generated message.
    pub fn update<T: Identified>(&mut self, id: ObjectId, edit: impl FnOnce(&mut T)) -> Result<()> {
        let mut obj: T = self.get(id)?;
        edit(&mut obj);
        self.set(id, &obj)
    }

    /// Edits an object as a dynamic message.
    pub fn update_dynamic(&mut self, id: ObjectId, edit: impl FnOnce(&mut DynamicMessage)) -> Result<()> {
        let mut msg = self.get_dynamic(id)?;
        edit(&mut msg);
        self.ws.replace(&self.elements, id, msg.encode_to_vec().into())
    }

    /// The `CASRef` that links to `id`: assign it to a link field of another object.
    pub fn link(&self, id: ObjectId) -> Result<CasRef> {
        let (key, ty, isleaf) = self.ws.link_parts(id)?;
        Ok(CasRef { key, r#type: GpbType { object_id: ty.object_id, version: ty.version }, isleaf })
    }

    /// The object a link points at, if it is loaded.
    pub fn resolve(&self, link: &CasRef) -> Option<ObjectId> {
        self.ws.resolve(&link.key)
    }

    /// Loads the committed object with this key (and what it links to) into the workspace.
    pub fn adopt(&mut self, key: Key) -> Result<ObjectId> {
        self.ws.load(&self.elements, key)
    }

    pub(crate) fn adopt_with_exclusions(&mut self, key: Key, excluded: &[TypeId]) -> Result<ObjectId> {
        self.ws.excluded = excluded.to_vec();
        self.ws.load(&self.elements, key)
    }

    /// Copies a committed object, and everything it links to, from another repository into this
    /// one and loads it. The source object must be unmodified.
    pub fn import_from(&mut self, other: &Repository, id: ObjectId) -> Result<ObjectId> {
        let key = other.ws.key(id)?.ok_or_else(|| {
            Error::state(format!("object {id} is modified in its repository: commit it before copying"))
        })?;
        let keys = other.elements.reachable(&[key], &[]);
        let copied: Vec<Element> = keys.iter().filter_map(|k| other.elements.get(k).cloned()).collect();
        self.add_elements(copied)?;
        self.adopt(key)
    }

    /// Sets the workspace's root object: the object a commit records.
    pub fn set_root(&mut self, id: ObjectId) -> Result<()> {
        self.ws.set_root(id)
    }

    /// The workspace's root object.
    pub fn root(&self) -> Option<ObjectId> {
        self.ws.root()
    }

    /// The loaded, unmodified object with this key.
    pub fn object_by_key(&self, key: &Key) -> Option<ObjectId> {
        self.ws.by_key(key)
    }

    /// The type of an object.
    pub fn type_of(&self, id: ObjectId) -> Result<TypeId> {
        self.ws.ty(id)
    }

    /// The key of an object, `None` while it is modified.
    pub fn object_key(&self, id: ObjectId) -> Result<Option<Key>> {
        self.ws.key(id)
    }

    /// The loaded objects `id` links to.
    pub fn children(&self, id: ObjectId) -> Result<Vec<ObjectId>> {
        self.ws.children(id)
    }

    /// The loaded objects that link to `id`.
    pub fn parents(&self, id: ObjectId) -> Result<Vec<ObjectId>> {
        self.ws.parents(id)
    }

    /// True if the object changed since it was loaded or committed.
    pub fn is_modified(&self, id: ObjectId) -> Result<bool> {
        Ok(self.ws.key(id)?.is_none())
    }

    /// The number of objects in the workspace.
    pub fn workspace_len(&self) -> usize {
        self.ws.len()
    }

    // ----- branches ------------------------------------------------------------------------------

    fn branch_key_of(&self, name: &str) -> Option<String> {
        if let Some(k) = self.nicknames.get(name) {
            return Some(k.clone());
        }
        self.branches.iter().find(|b| b.key == name).map(|b| b.key.clone())
    }

    /// A branch by nickname or key.
    pub fn get_branch(&self, name: &str) -> Option<&Branch> {
        let key = self.branch_key_of(name)?;
        self.branches.iter().find(|b| b.key == key)
    }

    fn branch_mut(&mut self, key: &str) -> &mut Branch {
        self.branches.iter_mut().find(|b| b.key == key).expect("branch keys are resolved first")
    }

    /// Every branch.
    pub fn branches(&self) -> &[Branch] {
        &self.branches
    }

    /// Nicknames and the branch keys they name.
    pub fn nicknames(&self) -> &BTreeMap<String, String> {
        &self.nicknames
    }

    /// The key of the current branch (`None` when detached).
    pub fn current_branch_key(&self) -> Option<&str> {
        match &self.current {
            Some(Current::Branch(k)) => Some(k),
            _ => None,
        }
    }

    /// Starts a new branch at the current commit and makes it current (re-attaching a detached
    /// workspace, which becomes writable). Returns the new branch key.
    pub fn branch(&mut self, nickname: Option<&str>) -> Result<String> {
        if let Some(n) = nickname
            && self.nicknames.contains_key(n)
        {
            return Err(Error::state(format!("a branch is already nicknamed {n:?}")));
        }
        let heads = match &self.current {
            Some(Current::Branch(k)) => {
                let heads = self.get_branch(k).map(|b| b.heads.clone()).unwrap_or_default();
                if heads.is_empty() {
                    return Err(Error::state("the current branch is empty: commit before branching"));
                }
                heads
            }
            Some(Current::Detached(c)) => vec![*c],
            None => return Err(Error::state("no current branch or commit to branch from")),
        };
        let key = new_branch_key();
        self.branches.push(Branch { key: key.clone(), heads });
        if let Some(n) = nickname {
            self.nicknames.insert(n.to_owned(), key.clone());
        }
        self.current = Some(Current::Branch(key.clone()));
        self.ws.read_only = false;
        Ok(key)
    }

    /// Starts a branch named `nickname` at commit `at`, without switching to it. Returns the new
    /// branch key.
    pub fn create_branch(&mut self, nickname: &str, at: Key) -> Result<String> {
        if self.nicknames.contains_key(nickname) {
            return Err(Error::state(format!("a branch is already nicknamed {nickname:?}")));
        }
        self.commit_info(at)?;
        let key = new_branch_key();
        self.branches.push(Branch { key: key.clone(), heads: vec![at] });
        self.nicknames.insert(nickname.to_owned(), key.clone());
        Ok(key)
    }

    /// Removes a branch (by nickname or key) and the nicknames that name it.
    pub fn remove_branch(&mut self, name: &str) -> Result<()> {
        let key = self.branch_key_of(name).ok_or_else(|| Error::UnknownBranch { name: name.to_owned() })?;
        self.branches.retain(|b| b.key != key);
        self.nicknames.retain(|_, k| *k != key);
        if self.current == Some(Current::Branch(key)) {
            self.current = None;
        }
        Ok(())
    }

    /// Gives a branch a nickname.
    pub fn set_nickname(&mut self, nickname: &str, branch: &str) -> Result<()> {
        let key = self.branch_key_of(branch).ok_or_else(|| Error::UnknownBranch { name: branch.to_owned() })?;
        self.nicknames.insert(nickname.to_owned(), key);
        Ok(())
    }

    /// Every head commit of every branch.
    pub fn current_heads(&self) -> Vec<Key> {
        let mut all: Vec<Key> = Vec::new();
        for b in &self.branches {
            for h in &b.heads {
                if !all.contains(h) {
                    all.push(*h);
                }
            }
        }
        all
    }

    /// The single head of the current branch; `None` before the first commit.
    pub fn commit_head(&self) -> Result<Option<Key>> {
        match &self.current {
            Some(Current::Detached(k)) => Ok(Some(*k)),
            Some(Current::Branch(b)) => {
                let heads = &self.get_branch(b).ok_or_else(|| Error::UnknownBranch { name: b.clone() })?.heads;
                match heads.len() {
                    0 => Ok(None),
                    1 => Ok(Some(heads[0])),
                    n => Err(Error::state(format!("branch {b} has {n} divergent heads: check it out to merge them"))),
                }
            }
            None => Err(Error::state("no current branch")),
        }
    }

    // ----- commit ------------------------------------------------------------------------------

    /// Commits the workspace to the current branch, dated now. Returns the commit key.
    pub fn commit(&mut self, comment: &str) -> Result<Key> {
        self.commit_at(comment, now())
    }

    /// Commits the workspace with an explicit date (seconds since the epoch).
    pub fn commit_at(&mut self, comment: &str, date: f64) -> Result<Key> {
        if self.ws.root().is_none() {
            return Err(Error::state("nothing to commit: the workspace has no root object (set_root)"));
        }
        if !self.conflicts.is_empty() {
            return Err(Error::Merge(format!(
                "{} unresolved conflict(s), first at {}: edit the objects, then mark_resolved (or abort_merge)",
                self.conflicts.len(),
                self.conflicts[0].path
            )));
        }
        let branch = match &self.current {
            Some(Current::Branch(b)) => b.clone(),
            Some(Current::Detached(k)) => {
                return Err(Error::ReadOnly(format!("the workspace is a detached checkout of {k}; branch to commit")));
            }
            None => {
                return Err(Error::state("no current branch: check out a branch to commit"));
            }
        };
        let heads =
            self.get_branch(&branch).ok_or_else(|| Error::UnknownBranch { name: branch.clone() })?.heads.clone();
        if heads.len() > 1 && !heads[1..].iter().all(|h| self.pending_merge.contains(h)) {
            return Err(Error::state(format!(
                "branch {branch} has {} divergent heads: check it out to merge them first",
                heads.len()
            )));
        }
        let (root_key, root_ty, root_leaf) = self.ws.commit(&mut self.elements, self.alg)?.expect("root checked above");
        let mut parents: Vec<Parent> =
            heads.first().map(|&h| Parent { relationship: Relationship::Parent, commit: h }).into_iter().collect();
        for m in &self.pending_merge {
            parents.push(Parent { relationship: Relationship::MergedFrom, commit: *m });
        }
        let seed = heads.is_empty().then_some(self.key.as_str());
        let root = ObjectRef { key: root_key, ty: root_ty, isleaf: root_leaf };
        let element = Commit::build(self.alg, &self.registry, comment, date, &parents, Some(root), seed)?;
        let key = element.key();
        self.add_elements([element])?;
        self.branch_mut(&branch).heads = vec![key];
        self.pending_merge.clear();
        self.loaded = Some(key);
        Ok(key)
    }

    // ----- checkout ----------------------------------------------------------------------------

    /// Checks out a branch head, a commit of its history, or the newest commit older than a
    /// date. Every object handle from before is invalidated.
    pub fn checkout(&mut self, how: Checkout) -> Result<()> {
        if self.status() == Status::Modified {
            return Err(Error::state("cannot check out while the workspace is dirty: commit or reset first"));
        }
        if how.commit.is_some() && how.older_than.is_some() {
            return Err(Error::state("check out by commit or by date, not both"));
        }
        let branch_key =
            self.branch_key_of(&how.branch).ok_or_else(|| Error::UnknownBranch { name: how.branch.clone() })?;
        let heads = self.get_branch(&branch_key).expect("resolved").heads.clone();
        if heads.is_empty() {
            return Err(Error::state(format!("branch {:?} has no commits to check out", how.branch)));
        }
        let excluded = how.excluded_types.unwrap_or_else(|| self.default_excluded.clone());
        let (commit, current, pending) = if let Some(target) = how.commit {
            if !heads.iter().any(|&h| self.is_ancestor(target, h)) {
                return Err(Error::UnknownCommit { key: target, branch: how.branch });
            }
            (target, Current::Detached(target), Vec::new())
        } else if let Some(date) = how.older_than {
            let found = self
                .ancestry(&heads)
                .into_iter()
                .filter_map(|k| self.commits.get(&k))
                .filter(|c| c.date <= date)
                .max_by(|a, b| a.date.total_cmp(&b.date))
                .map(|c| c.key)
                .ok_or_else(|| {
                    Error::state(format!("branch {:?} has no commit dated at or before {date}", how.branch))
                })?;
            (found, Current::Detached(found), Vec::new())
        } else if heads.len() == 1 {
            (heads[0], Current::Branch(branch_key), Vec::new())
        } else if how.auto_merge {
            let merged = self.merge_by_date(&branch_key)?;
            (merged, Current::Branch(branch_key), Vec::new())
        } else {
            let ancestor = self.common_ancestor(&heads)?;
            (ancestor, Current::Branch(branch_key), heads[1..].to_vec())
        };
        self.load_commit(commit, excluded)?;
        self.ws.read_only = matches!(current, Current::Detached(_));
        self.current = Some(current);
        self.pending_merge = pending;
        self.conflicts.clear();
        Ok(())
    }

    fn load_commit(&mut self, commit: Key, excluded: Vec<TypeId>) -> Result<()> {
        let root = self
            .commit_info(commit)?
            .root
            .ok_or_else(|| Error::state(format!("commit {commit} has no root object")))?;
        if excluded.contains(&root.ty) {
            return Err(Error::state(format!("cannot exclude type {} of the root object", root.ty)));
        }
        self.ws.clear();
        self.ws.excluded = excluded;
        let id = self.ws.load(&self.elements, root.key)?;
        self.loaded = Some(commit);
        self.ws.set_root(id)
    }

    /// Discards workspace changes and any pending merge, reloading the current commit.
    pub fn reset(&mut self) -> Result<()> {
        self.pending_merge.clear();
        self.conflicts.clear();
        let excluded = self.ws.excluded.clone();
        let read_only = self.ws.read_only;
        match self.loaded {
            Some(commit) => self.load_commit(commit, excluded)?,
            None => self.ws.clear(),
        }
        self.ws.read_only = read_only;
        Ok(())
    }

    /// Invalidates every loaded object (the elements stay).
    pub fn purge_workspace(&mut self) {
        self.ws.clear();
    }

    /// Drops everything: elements, commits, branches and the workspace.
    pub fn clear(&mut self) {
        self.ws.clear();
        self.elements.clear();
        self.commits.clear();
        self.generations.clear();
        self.branches.clear();
        self.nicknames.clear();
        self.current = None;
        self.loaded = None;
        self.pending_merge.clear();
        self.conflicts.clear();
    }

    // ----- history -----------------------------------------------------------------------------

    /// Every commit reachable from `from` through all parents (breadth first, `from` included).
    /// Commits that are not present (truncated history) end the walk there.
    pub fn ancestry(&self, from: &[Key]) -> Vec<Key> {
        let mut seen = HashSet::new();
        let mut order = Vec::new();
        let mut queue: VecDeque<Key> = from.iter().copied().collect();
        while let Some(k) = queue.pop_front() {
            if !seen.insert(k) {
                continue;
            }
            order.push(k);
            if let Some(c) = self.commits.get(&k) {
                queue.extend(c.parent_keys());
            }
        }
        order
    }

    /// True if `ancestor` is `descendant` or in its history. Where generations are known the
    /// walk does not descend below the generation of `ancestor`; commits that are not present
    /// end the walk there.
    pub fn is_ancestor(&self, ancestor: Key, descendant: Key) -> bool {
        if ancestor == descendant {
            return true;
        }
        let floor = self.generation(ancestor);
        let mut seen = HashSet::new();
        let mut queue = VecDeque::from([descendant]);
        while let Some(k) = queue.pop_front() {
            if k == ancestor {
                return true;
            }
            if !seen.insert(k) || below_floor(self.generation(k), floor) {
                continue;
            }
            if let Some(c) = self.commits.get(&k) {
                queue.extend(c.parent_keys());
            }
        }
        false
    }

    /// A nearest commit in the history of all of `commits`: with known generations, the common
    /// ancestor of the highest generation (ties by key), found by walking every side down in
    /// generation order and stopping at the first commit all sides reach; otherwise the
    /// nearest breadth first from `commits[0]`. Commits that are not present end the walk.
    pub fn common_ancestor(&self, commits: &[Key]) -> Result<Key> {
        let Some((first, rest)) = commits.split_first() else {
            return Err(Error::state("common ancestor of no commits"));
        };
        if let Some(found) = self.common_ancestor_by_generation(commits) {
            return found.ok_or_else(|| Error::state("the commits have no common ancestor"));
        }
        let others: Vec<HashSet<Key>> = rest.iter().map(|c| self.ancestry(&[*c]).into_iter().collect()).collect();
        self.ancestry(&[*first])
            .into_iter()
            .find(|k| others.iter().all(|s| s.contains(k)))
            .ok_or_else(|| Error::state("the commits have no common ancestor"))
    }

    /// The generation-ordered walk of [`Repository::common_ancestor`]; `None` if a commit it
    /// meets has no known generation.
    fn common_ancestor_by_generation(&self, commits: &[Key]) -> Option<Option<Key>> {
        let seeds = commits.iter().map(|&k| Some((k, self.generation(k)?))).collect::<Option<Vec<_>>>()?;
        let mut walk = MergeBase::new(&seeds)?;
        loop {
            match walk.step() {
                WalkStep::Found(k) => return Some(Some(k)),
                WalkStep::Exhausted => return Some(None),
                WalkStep::Expand(k) => {
                    let mut parents = Vec::new();
                    for p in self.commits.get(&k).into_iter().flat_map(|c| c.parent_keys()) {
                        if self.commits.contains_key(&p) {
                            parents.push((p, self.generation(p)?));
                        }
                    }
                    walk.reach(k, &parents);
                }
            }
        }
    }

    /// The first-parent history of every head of a branch, newest first, each commit once.
    pub fn log(&self, branch: &str) -> Result<Vec<&Commit>> {
        let b = self.get_branch(branch).ok_or_else(|| Error::UnknownBranch { name: branch.to_owned() })?;
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for &head in &b.heads {
            let mut next = Some(head);
            while let Some(k) = next {
                if !seen.insert(k) {
                    break;
                }
                let Some(c) = self.commits.get(&k) else { break };
                out.push(c);
                next = c.first_parent();
            }
        }
        Ok(out)
    }

    /// Resolves `~N` (N first parents back), `^N` (the N-th parent, 1-based) and sequences of
    /// them, from the single head of `branch`.
    pub fn resolve_treeish(&self, treeish: &str, branch: &str) -> Result<Key> {
        let fail = |reason: String| Error::Treeish { treeish: treeish.to_owned(), reason };
        let b = self.get_branch(branch).ok_or_else(|| Error::UnknownBranch { name: branch.to_owned() })?;
        match b.heads.as_slice() {
            [] => Err(fail(format!("branch {branch:?} has no commits"))),
            [h, ..] => self.resolve_treeish_from(*h, treeish),
        }
    }

    /// Resolves a treeish (`~N`, `^N`, and sequences of them) from a commit.
    pub fn resolve_treeish_from(&self, start: Key, treeish: &str) -> Result<Key> {
        match self.walk_treeish(start, treeish)? {
            Ok(k) => Ok(k),
            Err(k) => Err(Error::Treeish { treeish: treeish.to_owned(), reason: format!("commit {k} is not present") }),
        }
    }

    /// Resolves a treeish as far as the present commits go: `Ok(Err(k))` when it needs commit
    /// `k`, which is not present.
    pub fn walk_treeish(&self, start: Key, treeish: &str) -> Result<std::result::Result<Key, Key>> {
        let fail = |reason: String| Error::Treeish { treeish: treeish.to_owned(), reason };
        let mut at = start;
        let chars: Vec<char> = treeish.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let op = chars[i];
            i += 1;
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let count: usize = if start == i {
                1
            } else {
                chars[start..i].iter().collect::<String>().parse().map_err(|_| fail("count too large".into()))?
            };
            match op {
                '~' => {
                    for step in 0..count {
                        let Some(c) = self.commits.get(&at) else { return Ok(Err(at)) };
                        at = c
                            .first_parent()
                            .ok_or_else(|| fail(format!("{at} has no parent ({} of {count} steps back)", step + 1)))?;
                    }
                }
                '^' => {
                    if count == 0 {
                        continue;
                    }
                    let Some(c) = self.commits.get(&at) else { return Ok(Err(at)) };
                    at = c
                        .parents
                        .get(count - 1)
                        .map(|p| p.commit)
                        .ok_or_else(|| fail(format!("{at} has {} parent(s), not {count}", c.parents.len())))?;
                }
                other => {
                    return Err(fail(format!("unexpected character {other:?}: use ~N and ^N")));
                }
            }
        }
        Ok(Ok(at))
    }

    // ----- divergence and merge ---------------------------------------------------------------

    /// Adds heads received for a branch (from a pull or push): a head already in the local
    /// history is ignored, a local head in the received head's history is fast-forwarded, and
    /// any other head is kept beside the local ones (divergence). The commits must be present.
    pub fn receive_heads(&mut self, branch_key: &str, received: &[Key]) -> Result<()> {
        for h in received {
            self.commit_info(*h)?;
        }
        if self.get_branch(branch_key).is_none() {
            self.branches.push(Branch { key: branch_key.to_owned(), heads: Vec::new() });
        }
        let mut heads = self.get_branch(branch_key).expect("just ensured").heads.clone();
        for &h in received {
            if heads.iter().any(|&l| self.is_ancestor(h, l)) {
                continue;
            }
            heads.retain(|&l| !self.is_ancestor(l, h));
            heads.push(h);
        }
        self.branch_mut(branch_key).heads = heads;
        Ok(())
    }

    /// Takes the branches of another copy of this repository (a pull, clone or push): on a
    /// repository without commits they replace the local branches and names (the first branch
    /// is named master if `nicknames` names none, as ION's clone did); otherwise each branch's
    /// heads are received as by [`Repository::receive_heads`], and names the repository does
    /// not have are added. The head commits must be present.
    pub fn receive_branches(&mut self, branches: Vec<Branch>, mut nicknames: BTreeMap<String, String>) -> Result<()> {
        for h in branches.iter().flat_map(|b| &b.heads) {
            self.commit_info(*h)?;
        }
        if self.branches.iter().all(|b| b.heads.is_empty()) {
            if nicknames.is_empty()
                && let Some(first) = branches.first()
            {
                nicknames.insert(MASTER.to_owned(), first.key.clone());
            }
            self.restore_heads(branches, nicknames);
            return Ok(());
        }
        for b in &branches {
            self.receive_heads(&b.key, &b.heads)?;
        }
        for (name, branch) in &nicknames {
            if self.get_branch(name).is_none() && self.get_branch(branch).is_some() {
                self.set_nickname(name, branch)?;
            }
        }
        Ok(())
    }

    /// ION's resolution of a diverged branch: the head with the newest date wins whole; one
    /// merge commit (PARENT the newest, MERGEDFROM the others) replaces the heads.
    pub fn merge_by_date(&mut self, branch: &str) -> Result<Key> {
        let key = self.branch_key_of(branch).ok_or_else(|| Error::UnknownBranch { name: branch.to_owned() })?;
        let heads = self.get_branch(&key).expect("resolved").heads.clone();
        if heads.len() < 2 {
            return heads.first().copied().ok_or_else(|| Error::state(format!("branch {branch:?} has no commits")));
        }
        let mut newest = heads[0];
        for &h in &heads[1..] {
            if self.commit_info(h)?.date > self.commit_info(newest)?.date {
                newest = h;
            }
        }
        let mut parents = vec![Parent { relationship: Relationship::Parent, commit: newest }];
        parents.extend(
            heads
                .iter()
                .filter(|&&h| h != newest)
                .map(|&h| Parent { relationship: Relationship::MergedFrom, commit: h }),
        );
        let root = self.commit_info(newest)?.root;
        let element = Commit::build(
            self.alg,
            &self.registry,
            "Merged divergent branch by date keeping the newest value",
            now(),
            &parents,
            root,
            None,
        )?;
        let merged = element.key();
        self.add_elements([element])?;
        self.branch_mut(&key).heads = vec![merged];
        Ok(merged)
    }

    /// The MERGEDFROM commits the next commit will record (merge states).
    pub fn merge_states(&self) -> &[Key] {
        &self.pending_merge
    }

    /// Conflicts of the merge in progress.
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }

    /// Declares the conflicts of the merge in progress resolved by the edits made since.
    pub fn mark_resolved(&mut self) {
        self.conflicts.clear();
    }

    /// Abandons a merge in progress and reloads the current head.
    pub fn abort_merge(&mut self) -> Result<()> {
        self.reset()
    }

    /// Merges a branch (nickname or key) or a commit into the current branch, field by field.
    ///
    /// Equal subgraphs are skipped by key; a field changed on one side is taken; a field
    /// changed differently on both sides is a conflict, settled by `policy`. When the current
    /// branch is behind, it fast-forwards. Otherwise the result is loaded into the workspace
    /// with the other commit as a pending MERGEDFROM parent: [`Repository::commit`] records
    /// the merge commit.
    pub fn merge(&mut self, other: &str, policy: MergePolicy) -> Result<MergeOutcome> {
        let theirs = match Key::from_hex(other) {
            Some(k) if self.commits.contains_key(&k) => k,
            _ => {
                let b = self.get_branch(other).ok_or_else(|| Error::UnknownBranch { name: other.to_owned() })?;
                match b.heads.as_slice() {
                    [h] => *h,
                    [] => return Err(Error::Merge(format!("branch {other:?} has no commits"))),
                    _ => {
                        return Err(Error::Merge(format!(
                            "branch {other:?} has divergent heads: check it out to merge them first"
                        )));
                    }
                }
            }
        };
        self.merge_commit(theirs, policy)
    }

    /// Merges a commit into the current branch; see [`Repository::merge`].
    pub fn merge_commit(&mut self, theirs: Key, policy: MergePolicy) -> Result<MergeOutcome> {
        if self.status() != Status::UpToDate {
            return Err(Error::Merge("the workspace must be checked out and clean to merge".into()));
        }
        let branch = self
            .current_branch_key()
            .ok_or_else(|| Error::Merge("a detached checkout cannot merge: branch first".into()))?
            .to_owned();
        let ours = self.commit_head()?.ok_or_else(|| Error::Merge("the current branch has no commits".into()))?;
        self.commit_info(theirs)?;
        if self.is_ancestor(theirs, ours) {
            return Ok(MergeOutcome::UpToDate);
        }
        let excluded = self.ws.excluded.clone();
        if self.is_ancestor(ours, theirs) {
            self.branch_mut(&branch).heads = vec![theirs];
            self.load_commit(theirs, excluded)?;
            return Ok(MergeOutcome::FastForward(theirs));
        }
        let base = self.common_ancestor(&[ours, theirs]).ok();
        let root_of = |k: Key| -> Result<Key> {
            self.commit_info(k)?
                .root
                .map(|r| r.key)
                .ok_or_else(|| Error::Merge(format!("commit {k} has no root object")))
        };
        let base_root = base.map(root_of).transpose()?;
        let (ours_root, theirs_root) = (root_of(ours)?, root_of(theirs)?);
        let theirs_newer = self.commit_info(theirs)?.date > self.commit_info(ours)?.date;
        let result = merge::merge_graphs(
            &self.registry,
            &self.elements,
            self.alg,
            base_root,
            ours_root,
            theirs_root,
            policy,
            theirs_newer,
        )?;
        self.add_elements(result.new_elements)?;
        self.ws.clear();
        self.ws.excluded = excluded;
        let id = self.ws.load(&self.elements, result.root)?;
        self.ws.set_root(id)?;
        self.pending_merge = vec![theirs];
        self.conflicts = if policy == MergePolicy::Manual { result.conflicts.clone() } else { Vec::new() };
        Ok(MergeOutcome::Merged { conflicts: result.conflicts })
    }

    /// The field-level differences between the root objects of two commits.
    pub fn diff(&self, from: Key, to: Key) -> Result<Vec<merge::Change>> {
        let root_of = |k: Key| -> Result<Key> {
            self.commit_info(k)?
                .root
                .map(|r| r.key)
                .ok_or_else(|| Error::state(format!("commit {k} has no root object")))
        };
        merge::diff_graphs(&self.registry, &self.elements, root_of(from)?, root_of(to)?)
    }
}

/// True if a commit of generation `at` lies below `floor`, so that it cannot have a commit of
/// generation `floor` in its history (unknown generations never prune).
pub(crate) fn below_floor(at: Option<u64>, floor: Option<u64>) -> bool {
    matches!((at, floor), (Some(at), Some(floor)) if at <= floor)
}

/// One step of [`MergeBase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WalkStep {
    /// Every side reaches this commit: a common ancestor of the highest generation.
    Found(Key),
    /// Read this commit's parents and report them with [`MergeBase::reach`].
    Expand(Key),
    /// No common ancestor.
    Exhausted,
}

/// The merge-base walk: every side walks down from its commit in generation order (highest
/// first, ties by key), marking what it reaches; the first commit every side has reached is a
/// common ancestor that no other common ancestor descends from. It visits only commits above
/// that ancestor's generation (and that ancestor), never the history below it. The same walk
/// serves the repository in memory and the store (which reads parents as it goes), so both
/// give the same answer.
#[derive(Debug)]
pub(crate) struct MergeBase {
    heap: BinaryHeap<(u64, Key)>,
    sides: HashMap<Key, u64>,
    expanded: HashMap<Key, u64>,
    all: u64,
}

impl MergeBase {
    /// A walk from commits with known generations; `None` for none or more than 64.
    pub(crate) fn new(seeds: &[(Key, u64)]) -> Option<MergeBase> {
        if seeds.is_empty() || seeds.len() > 64 {
            return None;
        }
        let all = if seeds.len() == 64 { u64::MAX } else { (1u64 << seeds.len()) - 1 };
        let mut walk = MergeBase { heap: BinaryHeap::new(), sides: HashMap::new(), expanded: HashMap::new(), all };
        for (i, &(k, g)) in seeds.iter().enumerate() {
            *walk.sides.entry(k).or_default() |= 1 << i;
            walk.heap.push((g, k));
        }
        Some(walk)
    }

    /// The next commit to look at.
    pub(crate) fn step(&mut self) -> WalkStep {
        while let Some((_, k)) = self.heap.pop() {
            let sides = self.sides[&k];
            if self.expanded.get(&k) == Some(&sides) {
                continue;
            }
            self.expanded.insert(k, sides);
            if sides == self.all {
                return WalkStep::Found(k);
            }
            return WalkStep::Expand(k);
        }
        WalkStep::Exhausted
    }

    /// Reports the present parents of an expanded commit, with their generations.
    pub(crate) fn reach(&mut self, commit: Key, parents: &[(Key, u64)]) {
        let sides = self.sides[&commit];
        for &(p, g) in parents {
            let s = self.sides.entry(p).or_default();
            if *s | sides != *s {
                *s |= sides;
                self.heap.push((g, p));
            }
        }
    }
}
