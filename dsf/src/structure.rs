//! The `Structure` envelope: how a message repository travels between processes (spec §1.5).
//!
//! A message is a repository whose root is an `IonMsg`. Packing sends the root element as
//! `head` and every element reachable from it as `items`, each once (the commit is not sent).
//! Unpacking verifies every element over the exact bytes received, loads the graph into a new
//! repository and commits it locally.
//!
//! Elements carried *as data* (pull responses, fetched blobs) are double wrapped: a link in
//! `blob_elements` points at an object of type `StructureElement` (1) whose value is the
//! encoded inner element. [`wrap`] and [`unwrap`] convert between the two.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use crate::element::{Element, SeParts};
use crate::elements::Elements;
use crate::error::{Error, Result};
use crate::key::{HashAlgorithm, Key};
use crate::repository::{Checkout, Repository, Status};
use crate::types::{Registry, TypeId};
use crate::wire;

/// The comment of the local commit an unpacked message gets (ION's).
pub const UNPACK_COMMENT: &str = "Message for you Sir!";

/// A decoded, verified envelope: the head element and the items by key.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The root element (an `IonMsg` for messages).
    pub head: Element,
    /// Every other element, by key.
    pub items: HashMap<Key, Element>,
}

impl Envelope {
    /// Encodes a `Structure {head, items}`.
    pub fn encode(&self) -> Vec<u8> {
        encode_structure(&self.head, self.items.values())
    }

    /// Decodes a `Structure`, verifying every element's key over the bytes received. Garbage
    /// gives [`Error::Codec`] (or [`Error::Corrupt`] for a key mismatch), never a panic.
    pub fn decode(registry: &Registry, bytes: &[u8]) -> Result<Envelope> {
        let bad = |r: &str| {
            Error::codec("structure", format!("could not decode message content as a GPB container structure: {r}"))
        };
        let mut pos = 0;
        let mut head = None;
        let mut items = HashMap::new();
        while pos < bytes.len() {
            let tag = wire::read_varint(bytes, &mut pos).map_err(|_| bad("truncated tag"))?;
            let (field, wt) = (tag >> 3, tag & 7);
            if wt != 2 || !(field == 1 || field == 2) {
                return Err(bad("unexpected field"));
            }
            let len = wire::read_varint(bytes, &mut pos).map_err(|_| bad("truncated length"))?;
            let end = usize::try_from(len)
                .ok()
                .and_then(|l| pos.checked_add(l))
                .filter(|&e| e <= bytes.len())
                .ok_or_else(|| bad("length runs past the end"))?;
            let se = SeParts::parse(&bytes[pos..end])?;
            pos = end;
            let e = Element::from_parts(registry, se.key, se.ty, se.isleaf, Bytes::copy_from_slice(se.value))?;
            if field == 1 {
                head = Some(e);
            } else {
                items.insert(e.key(), e);
            }
        }
        let head = head.ok_or_else(|| bad("missing head"))?;
        Ok(Envelope { head, items })
    }
}

fn encode_structure<'a>(head: &Element, items: impl Iterator<Item = &'a Element>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut scratch = Vec::new();
    let mut put = |field: u8, e: &Element, out: &mut Vec<u8>| {
        scratch.clear();
        e.encode_into(&mut scratch);
        out.push(field << 3 | 2);
        wire::write_varint(out, scratch.len() as u64);
        out.extend_from_slice(&scratch);
    };
    put(1, head, &mut out);
    for e in items {
        put(2, e, &mut out);
    }
    out
}

/// Packs the committed root of `repo` and everything reachable from it. A reachable element
/// that is missing is an error unless its type is in `excluded`. The workspace must be clean.
pub fn pack(repo: &Repository, excluded: &[TypeId]) -> Result<Vec<u8>> {
    if repo.status() == Status::Modified {
        return Err(Error::state("commit the message repository before packing it"));
    }
    let root = repo.root().ok_or_else(|| Error::state("the message repository has no root object"))?;
    let root_key = repo.object_key(root)?.expect("clean workspace has keys");
    let elements = repo.elements();
    let head = elements.get(&root_key).ok_or(Error::MissingElement { key: root_key })?;
    let mut items = Vec::new();
    let mut seen: HashSet<Key> = HashSet::from([root_key]);
    let mut stack = vec![head];
    while let Some(e) = stack.pop() {
        for child in e.children() {
            if !seen.insert(*child) {
                continue;
            }
            match elements.get(child) {
                Some(c) => {
                    items.push(c);
                    stack.push(c);
                }
                None if child_type(repo.registry(), e, *child)?.is_some_and(|t| excluded.contains(&t)) => {}
                None => {
                    return Err(Error::codec("structure", format!("hashed link {child} not found (and not excluded)")));
                }
            }
        }
    }
    Ok(encode_structure(head, items.into_iter()))
}

/// The type a parent's link to `child` declares.
fn child_type(registry: &Registry, parent: &Element, child: Key) -> Result<Option<TypeId>> {
    let info = registry.require(parent.ty())?;
    let mut found = None;
    wire::scan(parent.value(), registry.plans(), info.plan, &mut |l| {
        if l.key == child.as_bytes() {
            found = Some(l.ty);
        }
        Ok(())
    })?;
    Ok(found)
}

/// Unpacks an envelope into a new repository: indexes every element, loads the head as root
/// (not descending into `excluded` types), and commits it locally on `master`.
pub fn unpack(registry: &Registry, bytes: &[u8], excluded: &[TypeId]) -> Result<Repository> {
    let env = Envelope::decode(registry, bytes)?;
    let alg = env.head.key().algorithm();
    let mut repo = Repository::with_key(registry.clone(), uuid::Uuid::new_v4().to_string().to_uppercase(), alg);
    repo.set_excluded_types(excluded.to_vec());
    let head_key = env.head.key();
    repo.add_elements(std::iter::once(env.head).chain(env.items.into_values()))?;
    let root = repo.adopt_with_exclusions(head_key, excluded)?;
    repo.set_root(root)?;
    repo.commit(UNPACK_COMMENT)?;
    repo.checkout(Checkout::branch(crate::repository::MASTER).excluded_types(excluded.iter().copied()))?;
    Ok(repo)
}

/// Wraps an element for transport as data: an element of type `StructureElement` whose value
/// is the encoded inner element.
pub fn wrap(alg: HashAlgorithm, inner: &Element) -> Element {
    Element::new(alg, TypeId::STRUCTURE_ELEMENT, inner.encode(), Vec::new())
}

/// Unwraps (and verifies) an element carried as data.
pub fn unwrap(registry: &Registry, outer: &Element) -> Result<Element> {
    if outer.ty() != TypeId::STRUCTURE_ELEMENT {
        return Err(Error::codec(
            "wrapped element",
            format!("element {} has type {}, not StructureElement", outer.key(), outer.ty()),
        ));
    }
    Element::decode(registry, outer.value())
}

/// Elements of `keys` from `elements`, each wrapped; missing keys are an error.
pub fn wrap_all(alg: HashAlgorithm, elements: &Elements, keys: &[Key]) -> Result<Vec<Element>> {
    keys.iter().map(|k| elements.get(k).map(|e| wrap(alg, e)).ok_or(Error::MissingElement { key: *k })).collect()
}
