//! Planning exchanges between repositories, without I/O.
//!
//! Every transport (AMQP, gRPC, a store folder) and both ends of an exchange plan with the same
//! pieces, and only move bytes themselves:
//! - [`Heads`]: a repository's heads, with one codec for the store's heads record
//!   (`dsf.store.HeadsRecord`) and ION's serialised head (a `MutableNode` element);
//! - [`new_commits`]: the commits a push sends, given the commits the other side is known to
//!   hold;
//! - [`PushWalk`] and [`push_delta`]: the elements a push sends, walked level by level from the
//!   new roots beside the known roots, so equal subgraphs are never descended and the caller can
//!   read each level from wherever the elements are (memory or a store);
//! - [`have_commits`] and [`have_keys`]: what a pull says it holds (DSF's commit have-list and
//!   ION's key have-list).

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use dsf_proto::dsf::store::{BranchHeads, HeadsRecord, Nickname};
use dsf_proto::net::ooici::core::link::CasRef;
use dsf_proto::net::ooici::core::mutable::{self as mutable, MutableNode};
use dsf_proto::net::ooici::core::r#type::GpbType;
use prost::Message as _;

use crate::error::{Error, Result};
use crate::{Branch, Element, HashAlgorithm, Key, Repository, TypeId};

// ----- heads ---------------------------------------------------------------------------------

/// A repository's heads: its hash algorithm, branches (each with one or more head commits) and
/// branch names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heads {
    /// The repository's hash algorithm.
    pub algorithm: HashAlgorithm,
    /// Branches and their head commits (more than one head: the branch diverged).
    pub branches: Vec<Branch>,
    /// Branch names → branch keys.
    pub nicknames: BTreeMap<String, String>,
}

impl Heads {
    /// The heads of a repository in memory.
    pub fn of(repo: &Repository) -> Heads {
        Heads { algorithm: repo.algorithm(), branches: repo.branches().to_vec(), nicknames: repo.nicknames().clone() }
    }

    /// Every head commit, each once, in branch order.
    pub fn all(&self) -> Vec<Key> {
        dedup(self.branches.iter().flat_map(|b| b.heads.iter().copied()).collect())
    }

    /// The heads of a branch, by key or by name.
    pub fn branch(&self, name_or_key: &str) -> Option<&Branch> {
        let key = self.nicknames.get(name_or_key).map_or(name_or_key, String::as_str);
        self.branches.iter().find(|b| b.key == key)
    }

    /// The store's heads record (`dsf.store.HeadsRecord`), encoded.
    pub fn encode_record(&self) -> Vec<u8> {
        HeadsRecord {
            hash_algorithm: self.algorithm.name().to_owned(),
            branches: self
                .branches
                .iter()
                .map(|b| BranchHeads {
                    key: b.key.clone(),
                    heads: b.heads.iter().map(|h| h.as_bytes().to_vec()).collect(),
                })
                .collect(),
            nicknames: self.nicknames.iter().map(|(n, b)| Nickname { name: n.clone(), branch: b.clone() }).collect(),
        }
        .encode_to_vec()
    }

    /// Decodes a heads record. Bad bytes, an unknown algorithm or a head key of a bad length are
    /// codec errors.
    pub fn decode_record(bytes: &[u8]) -> Result<Heads> {
        let record = HeadsRecord::decode(bytes).map_err(|e| Error::codec("heads record", e))?;
        let algorithm = record.hash_algorithm.parse().map_err(|e: String| Error::codec("heads record", e))?;
        let mut branches = Vec::with_capacity(record.branches.len());
        for b in record.branches {
            let heads = b
                .heads
                .iter()
                .map(|h| Key::from_slice(h).ok_or_else(|| Error::codec("heads record", "a head key has a bad length")))
                .collect::<Result<Vec<_>>>()?;
            branches.push(Branch { key: b.key, heads });
        }
        let nicknames = record.nicknames.into_iter().map(|n| (n.name, n.branch)).collect();
        Ok(Heads { algorithm, branches, nicknames })
    }

    /// ION's serialised head of repository `key` (spec §3.4): a `MutableNode` element listing
    /// each branch's head commits as non-leaf links. It carries neither the algorithm (the
    /// element is hashed with it) nor the branch names.
    pub fn head_element(&self, key: &str) -> Element {
        let commit = GpbType { object_id: TypeId::COMMIT.object_id, version: TypeId::COMMIT.version };
        let node = MutableNode {
            repositorykey: key.to_owned(),
            branches: self
                .branches
                .iter()
                .map(|b| mutable::Branch {
                    branchkey: b.key.clone(),
                    commitrefs: b
                        .heads
                        .iter()
                        .map(|h| CasRef { key: h.as_bytes().to_vec(), r#type: commit, isleaf: false })
                        .collect(),
                })
                .collect(),
        };
        Element::new(self.algorithm, TypeId::MUTABLE_NODE, node.encode_to_vec(), self.all())
    }

    /// The repository key and branches of ION's serialised head (heads listed twice count once).
    pub fn read_head_element(e: &Element) -> Result<(String, Vec<Branch>)> {
        let node: MutableNode = e.decode_as().map_err(|e| Error::codec("repository head", e))?;
        let mut branches = Vec::with_capacity(node.branches.len());
        for b in node.branches {
            let heads = b
                .commitrefs
                .iter()
                .map(|c| {
                    Key::from_slice(&c.key).ok_or_else(|| {
                        Error::codec("repository head", format!("a key of {} bytes (20 or 32 expected)", c.key.len()))
                    })
                })
                .collect::<Result<Vec<Key>>>()?;
            branches.push(Branch { key: b.branchkey, heads: dedup(heads) });
        }
        Ok((node.repositorykey, branches))
    }
}

fn dedup(mut keys: Vec<Key>) -> Vec<Key> {
    let mut seen = HashSet::new();
    keys.retain(|k| seen.insert(*k));
    keys
}

// ----- commits -------------------------------------------------------------------------------

/// The commits reachable from `heads` and not from `known` (the commits the other side holds,
/// with their history), newest first (breadth first from the heads). `parents` gives a
/// commit's parents, or `None` for a commit that is not here (a shallow boundary, or a commit
/// only the other side has), which ends the walk there.
pub fn new_commits(heads: &[Key], known: &[Key], mut parents: impl FnMut(&Key) -> Option<Vec<Key>>) -> Vec<Key> {
    let mut old: HashSet<Key> = HashSet::new();
    let mut queue: VecDeque<Key> = known.iter().copied().collect();
    while let Some(k) = queue.pop_front() {
        if old.insert(k) {
            queue.extend(parents(&k).unwrap_or_default());
        }
    }
    let mut new = Vec::new();
    let mut seen: HashSet<Key> = HashSet::new();
    let mut queue: VecDeque<Key> = heads.iter().copied().collect();
    while let Some(k) = queue.pop_front() {
        if old.contains(&k) || !seen.insert(k) {
            continue;
        }
        let Some(ps) = parents(&k) else { continue };
        new.push(k);
        queue.extend(ps);
    }
    new
}

/// The commits within `depth` generations of `heads` (the heads are the first generation),
/// through every parent, as git's `--depth` counts: what a shallow clone keeps. `parents` gives
/// a commit's parents, or `None` for a commit that is not here, which is left out.
pub fn within_depth(heads: &[Key], depth: usize, mut parents: impl FnMut(&Key) -> Option<Vec<Key>>) -> Vec<Key> {
    let mut kept = Vec::new();
    let mut seen: HashSet<Key> = HashSet::new();
    let mut queue: VecDeque<(Key, usize)> = heads.iter().map(|k| (*k, 1)).collect();
    while let Some((k, generation)) = queue.pop_front() {
        if generation > depth || !seen.insert(k) {
            continue;
        }
        let Some(ps) = parents(&k) else { continue };
        kept.push(k);
        queue.extend(ps.into_iter().map(|p| (p, generation + 1)));
    }
    kept
}

// ----- elements ------------------------------------------------------------------------------

/// The walk that finds the elements a push sends: from the roots of the new commits, level by
/// level, beside the roots of the commits the other side holds. A key met on the known side is
/// not sent and not descended (the other side holds it and everything below it); the known side
/// is descended only where it differs from the new side, and only while the new side goes on,
/// so the walk costs what changed, not the size of the graphs. It may send an element the other
/// side already holds (a subgraph that moved deeper), never omit one it lacks, as long as the
/// other side holds the whole graphs of the known roots.
///
/// Each step asks for the elements of [`PushWalk::wanted`] and takes them in [`PushWalk::step`];
/// an element absent where the caller looks is skipped (on the new side, the other side must
/// hold it already, or its completeness check refuses the push).
#[derive(Debug, Default)]
pub struct PushWalk {
    new: Vec<Key>,
    old: Vec<Key>,
    old_seen: HashSet<Key>,
    new_seen: HashSet<Key>,
}

impl PushWalk {
    /// Starts at `new_roots` beside `known_roots`.
    pub fn new(new_roots: impl IntoIterator<Item = Key>, known_roots: impl IntoIterator<Item = Key>) -> PushWalk {
        let mut walk = PushWalk::default();
        walk.new = new_roots.into_iter().filter(|k| walk.new_seen.insert(*k)).collect();
        walk.old = known_roots.into_iter().collect();
        walk
    }

    /// True when nothing is left to walk.
    pub fn done(&self) -> bool {
        self.new.is_empty()
    }

    /// The keys whose elements the next step needs (each once).
    pub fn wanted(&self) -> Vec<Key> {
        if self.new.is_empty() {
            return Vec::new();
        }
        dedup(self.new.iter().chain(&self.old).copied().collect())
    }

    /// Takes the elements of the wanted keys (`lookup` answers `None` for one that is absent)
    /// and returns the elements of this level to send.
    pub fn step(&mut self, mut lookup: impl FnMut(&Key) -> Option<Element>) -> Vec<Element> {
        let new = std::mem::take(&mut self.new);
        let old = std::mem::take(&mut self.old);
        self.old_seen.extend(old.iter().copied());
        let level: HashSet<Key> = new.iter().copied().collect();
        let mut send = Vec::new();
        for k in new {
            if self.old_seen.contains(&k) {
                continue;
            }
            let Some(e) = lookup(&k) else { continue };
            self.new.extend(e.children().iter().copied().filter(|c| self.new_seen.insert(*c)));
            send.push(e);
        }
        if !self.new.is_empty() {
            for k in old {
                if level.contains(&k) {
                    continue;
                }
                if let Some(e) = lookup(&k) {
                    self.old.extend(e.children().iter().copied().filter(|c| !self.old_seen.contains(c)));
                }
            }
        }
        send
    }
}

/// The elements a push of an in-memory repository sends: the objects [`PushWalk`] finds from
/// the roots of `new` beside the roots of `known`, then the commits of `new` (commits last, so
/// a receiver storing in order never holds a commit before its content).
pub fn push_delta(repo: &Repository, new: &[Key], known: &[Key]) -> Vec<Element> {
    let root_of = |k: &Key| repo.commit_info(*k).ok().and_then(|c| c.root.as_ref().map(|r| r.key));
    let mut walk = PushWalk::new(new.iter().filter_map(root_of), known.iter().filter_map(root_of));
    let mut offered = Vec::new();
    while !walk.done() {
        offered.extend(walk.step(|k| repo.elements().get(k).cloned()));
    }
    offered.extend(new.iter().filter_map(|k| repo.elements().get(k).cloned()));
    offered
}

// ----- have-lists ----------------------------------------------------------------------------

/// What a DSF pull says it holds: every commit, or, when head content is wanted, the commits
/// whose whole graph is here (not following links to `excluded` types), so that a commit whose
/// content is missing gets its content sent.
pub fn have_commits(repo: &Repository, head_content: bool, excluded: &[TypeId]) -> Result<Vec<Key>> {
    if !head_content {
        return Ok(repo.commits().map(|c| c.key).collect());
    }
    let roots: Vec<(Key, Option<Key>)> = repo.commits().map(|c| (c.key, c.root.as_ref().map(|r| r.key))).collect();
    let complete = complete_graphs(repo, roots.iter().filter_map(|r| r.1), excluded)?;
    Ok(roots.iter().filter(|(_, r)| r.is_none_or(|r| complete.contains(&r))).map(|(c, _)| *c).collect())
}

/// What an ION pull lists as held (ION's have-list): every commit and, when head content is
/// wanted, every object.
pub fn have_keys(repo: &Repository, head_content: bool) -> Vec<Key> {
    let mut have: Vec<Key> = repo.commits().map(|c| c.key).collect();
    if head_content {
        have.extend(repo.elements().iter().filter(|e| e.ty() != TypeId::COMMIT).map(|e| e.key()));
    }
    have
}

/// Those of `roots` whose whole graph is in `repo`, not following links to `excluded` types.
pub fn complete_graphs(
    repo: &Repository,
    roots: impl IntoIterator<Item = Key>,
    excluded: &[TypeId],
) -> Result<HashSet<Key>> {
    let children = |e: &Element| -> Result<Vec<Key>> {
        if excluded.is_empty() {
            Ok(e.children().to_vec())
        } else {
            Ok(e.links(repo.registry())?.into_iter().filter(|(_, ty)| !excluded.contains(ty)).map(|(k, _)| k).collect())
        }
    };
    // Depth first; a key is decided once all its children are (graphs are acyclic).
    let mut complete: HashMap<Key, bool> = HashMap::new();
    let roots: Vec<Key> = roots.into_iter().collect();
    for &root in &roots {
        let mut stack: Vec<(Key, Option<Vec<Key>>)> = vec![(root, None)];
        while let Some((k, expanded)) = stack.pop() {
            if let Some(kids) = expanded {
                let all = kids.iter().all(|c| complete.get(c).copied().unwrap_or(false));
                complete.insert(k, all);
                continue;
            }
            if complete.contains_key(&k) {
                continue;
            }
            let Some(e) = repo.elements().get(&k) else {
                complete.insert(k, false);
                continue;
            };
            let kids = children(e)?;
            let pending: Vec<Key> = kids.iter().copied().filter(|c| !complete.contains_key(c)).collect();
            stack.push((k, Some(kids)));
            stack.extend(pending.into_iter().map(|c| (c, None)));
        }
    }
    Ok(roots.into_iter().filter(|r| complete.get(r).copied().unwrap_or(false)).collect())
}
