//! The mutable workspace: the objects of one checkout, their links, and commit.
//!
//! Every loaded or created object is a node with its encoded value. A node is either
//! *unmodified* (it has a key and its value is exactly that element's value) or *modified*.
//!
//! Invariant: in every node's value, a link to a loaded node X holds X's key while X is
//! unmodified, and X's placeholder (a 12-byte local id that no content key can equal) while X is
//! modified. A link to a key that is not loaded (an excluded subtree) holds that key.
//! Modifying X therefore rewrites X's key to its placeholder in each parent and marks the
//! parents modified, up to the root; commit rewrites placeholders back to keys, post-order.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use crate::element::Element;
use crate::elements::Elements;
use crate::error::{Error, Result};
use crate::key::{HashAlgorithm, Key};
use crate::types::{Registry, TypeId};
use crate::wire::{self, NewLink, RawLink};

/// A handle to an object in a repository's workspace. Handles are invalidated by checkout,
/// reset and clear.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectId {
    index: u32,
    generation: u32,
}

impl std::fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ObjectId({}@{})", self.index, self.generation)
    }
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.index)
    }
}

const PLACEHOLDER_LEN: usize = 12;
const PLACEHOLDER_TAG: [u8; 4] = [0xff, b'd', b's', b'f'];

#[derive(Debug, Clone)]
struct Node {
    ty: TypeId,
    value: Bytes,
    /// `Some` iff unmodified.
    key: Option<Key>,
    /// Distinct loaded children.
    children: Vec<u32>,
    /// Distinct loaded parents.
    parents: Vec<u32>,
    /// Set when commit found this node equal to another one; reads go to the survivor.
    forward: Option<u32>,
}

/// The objects of one checkout.
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    registry: Registry,
    generation: u32,
    nodes: Vec<Node>,
    by_key: HashMap<Key, u32>,
    root: Option<u32>,
    pub(crate) read_only: bool,
    pub(crate) excluded: Vec<TypeId>,
}

impl Workspace {
    pub(crate) fn new(registry: Registry) -> Workspace {
        Workspace {
            registry,
            generation: 0,
            nodes: Vec::new(),
            by_key: HashMap::new(),
            root: None,
            read_only: false,
            excluded: Vec::new(),
        }
    }

    /// Drops every node and invalidates every handle.
    pub(crate) fn clear(&mut self) {
        self.generation = self.generation.wrapping_add(1);
        self.nodes.clear();
        self.by_key.clear();
        self.root = None;
        self.read_only = false;
    }

    fn id(&self, index: u32) -> ObjectId {
        ObjectId { index, generation: self.generation }
    }

    /// The live node index of a handle, following forwards.
    fn index(&self, id: ObjectId) -> Result<u32> {
        if id.generation != self.generation || id.index as usize >= self.nodes.len() {
            return Err(Error::InvalidHandle(id.to_string()));
        }
        Ok(self.follow(id.index))
    }

    fn follow(&self, mut i: u32) -> u32 {
        while let Some(next) = self.nodes[i as usize].forward {
            i = next;
        }
        i
    }

    fn placeholder(&self, index: u32) -> [u8; PLACEHOLDER_LEN] {
        let mut p = [0u8; PLACEHOLDER_LEN];
        p[..4].copy_from_slice(&PLACEHOLDER_TAG);
        p[4..8].copy_from_slice(&index.to_be_bytes());
        p[8..].copy_from_slice(&self.generation.to_be_bytes());
        p
    }

    /// The node a placeholder names, if it is one of this generation.
    fn placeholder_target(&self, raw: &[u8]) -> Option<Option<u32>> {
        if raw.len() != PLACEHOLDER_LEN || raw[..4] != PLACEHOLDER_TAG {
            return None;
        }
        let index = u32::from_be_bytes(raw[4..8].try_into().expect("4 bytes"));
        let generation = u32::from_be_bytes(raw[8..].try_into().expect("4 bytes"));
        if generation != self.generation || index as usize >= self.nodes.len() {
            return Some(None);
        }
        Some(Some(self.follow(index)))
    }

    pub(crate) fn root(&self) -> Option<ObjectId> {
        self.root.map(|r| self.id(self.follow(r)))
    }

    pub(crate) fn set_root(&mut self, id: ObjectId) -> Result<()> {
        let i = self.index(id)?;
        self.check_writable(i)?;
        self.root = Some(i);
        Ok(())
    }

    pub(crate) fn is_modified(&self) -> bool {
        self.root.is_some_and(|r| self.nodes[self.follow(r) as usize].key.is_none())
    }

    pub(crate) fn len(&self) -> usize {
        self.nodes.iter().filter(|n| n.forward.is_none()).count()
    }

    pub(crate) fn ty(&self, id: ObjectId) -> Result<TypeId> {
        Ok(self.nodes[self.index(id)? as usize].ty)
    }

    pub(crate) fn value(&self, id: ObjectId) -> Result<&Bytes> {
        Ok(&self.nodes[self.index(id)? as usize].value)
    }

    pub(crate) fn key(&self, id: ObjectId) -> Result<Option<Key>> {
        Ok(self.nodes[self.index(id)? as usize].key)
    }

    pub(crate) fn children(&self, id: ObjectId) -> Result<Vec<ObjectId>> {
        let n = &self.nodes[self.index(id)? as usize];
        Ok(n.children.iter().map(|&c| self.id(c)).collect())
    }

    pub(crate) fn parents(&self, id: ObjectId) -> Result<Vec<ObjectId>> {
        let n = &self.nodes[self.index(id)? as usize];
        Ok(n.parents.iter().map(|&c| self.id(c)).collect())
    }

    /// The node with this key, if loaded and unmodified.
    pub(crate) fn by_key(&self, key: &Key) -> Option<ObjectId> {
        self.by_key.get(key).map(|&i| self.id(i))
    }

    /// The link bytes, type and leaf flag a `CASRef` to `id` must hold now.
    pub(crate) fn link_parts(&self, id: ObjectId) -> Result<(Vec<u8>, TypeId, bool)> {
        let i = self.index(id)?;
        let n = &self.nodes[i as usize];
        let key = match n.key {
            Some(k) => k.as_bytes().to_vec(),
            None => self.placeholder(i).to_vec(),
        };
        Ok((key, n.ty, !self.has_links(n)?))
    }

    /// True if the node's value holds any link (loaded or not).
    fn has_links(&self, n: &Node) -> Result<bool> {
        if !n.children.is_empty() {
            return Ok(true);
        }
        let mut any = false;
        let info = self.registry.require(n.ty)?;
        wire::scan(&n.value, self.registry.plans(), info.plan, &mut |_| {
            any = true;
            Ok(())
        })?;
        Ok(any)
    }

    /// Resolves the key bytes of a link to a loaded node.
    pub(crate) fn resolve(&self, raw: &[u8]) -> Option<ObjectId> {
        match self.placeholder_target(raw) {
            Some(found) => found.map(|i| self.id(i)),
            None => Key::from_slice(raw).and_then(|k| self.by_key.get(&k)).map(|&i| self.id(i)),
        }
    }

    fn check_writable(&self, i: u32) -> Result<()> {
        if self.read_only {
            return Err(Error::ReadOnly(self.id(i).to_string()));
        }
        Ok(())
    }

    /// Loads `key` and everything reachable from it that is not of an excluded type, as
    /// unmodified nodes (shared by key). Returns the node of `key`.
    pub(crate) fn load(&mut self, elements: &Elements, key: Key) -> Result<ObjectId> {
        if let Some(&i) = self.by_key.get(&key) {
            return Ok(self.id(i));
        }
        let first = self.new_loaded(elements, key)?;
        let mut queue = vec![first];
        while let Some(i) = queue.pop() {
            let k = self.nodes[i as usize].key.expect("loaded nodes are unmodified");
            let element = elements.get(&k).expect("loaded from elements");
            let mut children = Vec::with_capacity(element.children().len());
            for child_key in element.children() {
                let c = match self.by_key.get(child_key) {
                    Some(&c) => c,
                    None => match elements.get(child_key) {
                        Some(e) if !self.excluded.contains(&e.ty()) => {
                            let c = self.new_loaded(elements, *child_key)?;
                            queue.push(c);
                            c
                        }
                        Some(_) => continue,
                        None if self.link_type(element, *child_key)?.is_some_and(|t| self.excluded.contains(&t)) => {
                            continue;
                        }
                        None => return Err(Error::MissingElement { key: *child_key }),
                    },
                };
                children.push(c);
                self.nodes[c as usize].parents.push(i);
            }
            self.nodes[i as usize].children = children;
        }
        Ok(self.id(first))
    }

    /// The type that `parent`'s link to `child` declares.
    fn link_type(&self, parent: &Element, child: Key) -> Result<Option<TypeId>> {
        let plan = self.registry.require(parent.ty())?.plan;
        let mut found = None;
        wire::scan(parent.value(), self.registry.plans(), plan, &mut |l: RawLink<'_>| {
            if l.key == child.as_bytes() {
                found = Some(l.ty);
            }
            Ok(())
        })?;
        Ok(found)
    }

    fn new_loaded(&mut self, elements: &Elements, key: Key) -> Result<u32> {
        let e = elements.get(&key).ok_or(Error::MissingElement { key })?;
        let i = u32::try_from(self.nodes.len()).map_err(|_| Error::state("workspace holds too many objects"))?;
        self.nodes.push(Node {
            ty: e.ty(),
            value: e.value().clone(),
            key: Some(key),
            children: Vec::new(),
            parents: Vec::new(),
            forward: None,
        });
        self.by_key.insert(key, i);
        Ok(i)
    }

    /// The distinct loaded nodes `value` links to; loads committed targets that are not loaded
    /// yet. Links to keys of excluded types that are not loaded stay external.
    fn resolve_links(&mut self, elements: &Elements, ty: TypeId, value: &[u8]) -> Result<Vec<u32>> {
        let info = self.registry.require(ty)?;
        let mut raw: Vec<(Vec<u8>, TypeId)> = Vec::new();
        wire::scan(value, self.registry.plans(), info.plan, &mut |l: RawLink<'_>| {
            raw.push((l.key.to_vec(), l.ty));
            Ok(())
        })?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for (bytes, link_ty) in raw {
            let i = match self.placeholder_target(&bytes) {
                Some(Some(i)) => i,
                Some(None) => {
                    return Err(Error::InvalidHandle(format!("placeholder of an earlier checkout in a {ty} link")));
                }
                None => {
                    let key = Key::from_slice(&bytes).ok_or_else(|| {
                        Error::DanglingLink(format!(
                            "a {}-byte key (a link needs a key or a workspace link)",
                            bytes.len()
                        ))
                    })?;
                    match self.by_key.get(&key) {
                        Some(&i) => i,
                        None if self.excluded.contains(&link_ty) => continue,
                        None if elements.contains(&key) => self.load(elements, key)?.index,
                        None => return Err(Error::DanglingLink(key.to_hex())),
                    }
                }
            };
            if seen.insert(i) {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Adds a new, modified object.
    pub(crate) fn create(&mut self, elements: &Elements, ty: TypeId, value: Bytes) -> Result<ObjectId> {
        if self.read_only {
            return Err(Error::ReadOnly("new object".into()));
        }
        self.registry.require(ty)?;
        let children = self.resolve_links(elements, ty, &value)?;
        let i = u32::try_from(self.nodes.len()).map_err(|_| Error::state("workspace holds too many objects"))?;
        for &c in &children {
            self.nodes[c as usize].parents.push(i);
        }
        self.nodes.push(Node { ty, value, key: None, children, parents: Vec::new(), forward: None });
        Ok(self.id(i))
    }

    /// Replaces an object's content (same type), refusing links that would make a cycle.
    pub(crate) fn replace(&mut self, elements: &Elements, id: ObjectId, value: Bytes) -> Result<()> {
        let i = self.index(id)?;
        self.check_writable(i)?;
        let ty = self.nodes[i as usize].ty;
        let children = self.resolve_links(elements, ty, &value)?;
        let old: HashSet<u32> = self.nodes[i as usize].children.iter().copied().collect();
        for &c in &children {
            if !old.contains(&c) && self.reaches(c, i) {
                return Err(Error::Cycle { parent: self.id(i).to_string(), child: self.id(c).to_string() });
            }
        }
        let new: HashSet<u32> = children.iter().copied().collect();
        for &c in old.difference(&new) {
            self.nodes[c as usize].parents.retain(|&p| p != i);
        }
        for &c in new.difference(&old) {
            self.nodes[c as usize].parents.push(i);
        }
        // Mark modified first, so the new value is not rewritten as a parent's would be.
        self.touch(i)?;
        let node = &mut self.nodes[i as usize];
        node.children = children;
        node.value = value;
        Ok(())
    }

    /// True if `target` is `from` or reachable from it.
    fn reaches(&self, from: u32, target: u32) -> bool {
        let mut stack = vec![from];
        let mut seen = HashSet::new();
        while let Some(n) = stack.pop() {
            if n == target {
                return true;
            }
            if seen.insert(n) {
                stack.extend(self.nodes[n as usize].children.iter().copied());
            }
        }
        false
    }

    /// Marks `i` and its ancestors modified, rewriting each newly modified node's key to its
    /// placeholder in its parents.
    fn touch(&mut self, i: u32) -> Result<()> {
        let mut stack = vec![i];
        while let Some(n) = stack.pop() {
            let Some(old_key) = self.nodes[n as usize].key.take() else {
                continue;
            };
            if self.by_key.get(&old_key) == Some(&n) {
                self.by_key.remove(&old_key);
            }
            let placeholder = self.placeholder(n);
            let ty = self.nodes[n as usize].ty;
            for p in self.nodes[n as usize].parents.clone() {
                let pty = self.nodes[p as usize].ty;
                let plan = self.registry.require(pty)?.plan;
                let mut out = Vec::with_capacity(self.nodes[p as usize].value.len());
                wire::rewrite(
                    &self.nodes[p as usize].value,
                    self.registry.plans(),
                    plan,
                    &mut |l: RawLink<'_>| {
                        Ok((l.key == old_key.as_bytes()).then(|| NewLink {
                            key: placeholder.to_vec(),
                            ty,
                            isleaf: l.isleaf,
                        }))
                    },
                    &mut out,
                )?;
                self.nodes[p as usize].value = out.into();
                stack.push(p);
            }
        }
        Ok(())
    }

    /// Hashes every modified node reachable from the root, post-order, adds the new elements to
    /// `elements`, and returns the root's key. Unmodified subgraphs are not visited.
    pub(crate) fn commit(
        &mut self,
        elements: &mut Elements,
        alg: HashAlgorithm,
    ) -> Result<Option<(Key, TypeId, bool)>> {
        let Some(root) = self.root.map(|r| self.follow(r)) else {
            return Ok(None);
        };
        let mut stack = vec![(root, false)];
        while let Some((i, expanded)) = stack.pop() {
            if self.nodes[i as usize].key.is_some() {
                continue;
            }
            if !expanded {
                stack.push((i, true));
                for &c in &self.nodes[i as usize].children {
                    let c = self.follow(c);
                    if self.nodes[c as usize].key.is_none() {
                        stack.push((c, false));
                    }
                }
                continue;
            }
            self.commit_node(elements, alg, i)?;
        }
        let root = self.follow(root);
        self.root = Some(root);
        let n = &self.nodes[root as usize];
        let e = elements.get(&n.key.expect("committed")).expect("element added");
        Ok(Some((e.key(), e.ty(), e.is_leaf())))
    }

    fn commit_node(&mut self, elements: &mut Elements, alg: HashAlgorithm, i: u32) -> Result<()> {
        let ty = self.nodes[i as usize].ty;
        let plan = self.registry.require(ty)?.plan;
        let mut value = Vec::with_capacity(self.nodes[i as usize].value.len());
        let mut child_keys: Vec<Key> = Vec::new();
        let mut seen = HashSet::new();
        {
            let nodes = &self.nodes;
            let this = &*self;
            wire::rewrite(
                &nodes[i as usize].value,
                self.registry.plans(),
                plan,
                &mut |l: RawLink<'_>| {
                    let (key, isleaf) = match this.placeholder_target(l.key) {
                        Some(Some(c)) => {
                            let k = nodes[c as usize].key.expect("children are committed first");
                            (k, elements.get(&k).map_or(l.isleaf, |e| e.is_leaf()))
                        }
                        Some(None) => {
                            return Err(Error::InvalidHandle("stale placeholder at commit".into()));
                        }
                        None => {
                            let k =
                                Key::from_slice(l.key).ok_or_else(|| Error::DanglingLink(format!("{:?}", l.key)))?;
                            (k, elements.get(&k).map_or(l.isleaf, |e| e.is_leaf()))
                        }
                    };
                    if seen.insert(key) {
                        child_keys.push(key);
                    }
                    let changed = l.key != key.as_bytes() || l.isleaf != isleaf;
                    Ok(changed.then(|| NewLink { key: key.as_bytes().to_vec(), ty: l.ty, isleaf }))
                },
                &mut value,
            )?;
        }
        let element = Element::new(alg, ty, value, child_keys);
        let key = element.key();
        let value = element.value().clone();
        elements.insert(element);
        match self.by_key.get(&key).copied() {
            Some(j) if j != i => self.alias(i, j, key),
            _ => {
                self.by_key.insert(key, i);
                let node = &mut self.nodes[i as usize];
                node.key = Some(key);
                node.value = value;
            }
        }
        Ok(())
    }

    /// Node `i` turned out equal to the unmodified node `j`: `j` survives, `i` forwards to it.
    fn alias(&mut self, i: u32, j: u32, key: Key) {
        let parents = std::mem::take(&mut self.nodes[i as usize].parents);
        for &p in &parents {
            let kids = &mut self.nodes[p as usize].children;
            kids.retain(|&c| c != i);
            if !kids.contains(&j) {
                kids.push(j);
            }
            if !self.nodes[j as usize].parents.contains(&p) {
                self.nodes[j as usize].parents.push(p);
            }
        }
        for c in std::mem::take(&mut self.nodes[i as usize].children) {
            self.nodes[c as usize].parents.retain(|&p| p != i);
        }
        let node = &mut self.nodes[i as usize];
        node.key = Some(key);
        node.forward = Some(j);
        if self.root == Some(i) {
            self.root = Some(j);
        }
    }
}
