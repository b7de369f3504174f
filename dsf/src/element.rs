//! Structure elements: committed objects as content-addressed bytes.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::key::{HashAlgorithm, Key};
use crate::types::{Registry, TypeId};
use crate::wire;

/// A committed object: ION's `StructureElement {key, type, isleaf, value}`, plus the keys of its
/// children (derived from the value, never serialised).
///
/// Invariant: `key == algorithm.element_key(value, ty)`, checked whenever an element is built
/// from outside bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Element {
    key: Key,
    ty: TypeId,
    isleaf: bool,
    value: Bytes,
    children: Vec<Key>,
}

impl std::fmt::Debug for Element {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Element")
            .field("key", &self.key)
            .field("ty", &self.ty)
            .field("isleaf", &self.isleaf)
            .field("value_len", &self.value.len())
            .field("children", &self.children.len())
            .finish()
    }
}

impl Element {
    /// Hashes `value` into a new element. `children` are the distinct keys the value links to,
    /// in first-occurrence order; the element is a leaf iff there are none.
    pub fn new(alg: HashAlgorithm, ty: TypeId, value: impl Into<Bytes>, children: Vec<Key>) -> Element {
        let value = value.into();
        let key = alg.element_key(&value, ty);
        Element { key, ty, isleaf: children.is_empty(), value, children }
    }

    /// Builds an element from a generated message: encodes it canonically, hashes it, and
    /// finds its children with `registry`.
    pub fn from_message<T: dsf_proto::Identified>(alg: HashAlgorithm, registry: &Registry, msg: &T) -> Result<Element> {
        let ty = TypeId::of::<T>();
        let value = msg.encode_to_vec();
        let children = child_keys(registry, ty, &value)?;
        Ok(Element::new(alg, ty, value, children))
    }

    /// Builds an element from an encoded object of a registered type: hashes it and finds its
    /// children with `registry`.
    pub fn build(alg: HashAlgorithm, registry: &Registry, ty: TypeId, value: impl Into<Bytes>) -> Result<Element> {
        let value = value.into();
        let children = child_keys(registry, ty, &value)?;
        Ok(Element::new(alg, ty, value, children))
    }

    /// Builds an element from parts received from outside: verifies the key over the exact
    /// value bytes and derives the children (skipped for leaves).
    pub fn from_parts(registry: &Registry, key: &[u8], ty: TypeId, isleaf: bool, value: Bytes) -> Result<Element> {
        let key = Key::from_slice(key)
            .ok_or_else(|| Error::codec("structure element", format!("a key has 20 or 32 bytes, not {}", key.len())))?;
        if key.algorithm().element_key(&value, ty) != key {
            return Err(Error::Corrupt { key });
        }
        let children = match registry.get(ty) {
            Some(_) => child_keys(registry, ty, &value)?,
            None if isleaf => Vec::new(),
            None => return Err(Error::UnknownType { ty }),
        };
        if isleaf != children.is_empty() {
            return Err(Error::codec(
                "structure element",
                format!("element {key}: isleaf={isleaf} contradicts its links"),
            ));
        }
        Ok(Element { key, ty, isleaf, value, children })
    }

    /// Rebuilds an element from a store row: verifies the key over the stored value and takes
    /// the children from the stored child keys (the value is not scanned).
    pub fn from_stored(element: &[u8], children: &[u8]) -> Result<Element> {
        let parts = SeParts::parse(element)?;
        let key = Key::from_slice(parts.key).ok_or_else(|| {
            Error::codec("stored element", format!("a key has 20 or 32 bytes, not {}", parts.key.len()))
        })?;
        if key.algorithm().element_key(parts.value, parts.ty) != key {
            return Err(Error::Corrupt { key });
        }
        let children = decode_children(children)?;
        if parts.isleaf != children.is_empty() {
            return Err(Error::codec(
                "stored element",
                format!("element {key}: isleaf contradicts its stored children"),
            ));
        }
        Ok(Element { key, ty: parts.ty, isleaf: parts.isleaf, value: Bytes::copy_from_slice(parts.value), children })
    }

    /// The child keys encoded for a store row: each key preceded by its length.
    pub fn encode_children(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.children.len() * 21);
        for k in &self.children {
            out.push(k.as_bytes().len() as u8);
            out.extend_from_slice(k.as_bytes());
        }
        out
    }

    /// Decodes and verifies an encoded `StructureElement`.
    pub fn decode(registry: &Registry, bytes: &[u8]) -> Result<Element> {
        let parts = SeParts::parse(bytes)?;
        Element::from_parts(registry, parts.key, parts.ty, parts.isleaf, Bytes::copy_from_slice(parts.value))
    }

    /// The encoded `StructureElement {key, type, isleaf, value}`.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    pub(crate) fn encode_into(&self, out: &mut Vec<u8>) {
        let ty = self.ty.encode();
        out.push(0x0a);
        wire::write_varint(out, self.key.as_bytes().len() as u64);
        out.extend_from_slice(self.key.as_bytes());
        out.push(0x12);
        wire::write_varint(out, ty.len() as u64);
        out.extend_from_slice(&ty);
        out.push(0x18);
        out.push(u8::from(self.isleaf));
        out.push(0x22);
        wire::write_varint(out, self.value.len() as u64);
        out.extend_from_slice(&self.value);
    }

    /// The size of the encoded `StructureElement` (ION's `ByteSize`, used for cache accounting).
    pub fn encoded_len(&self) -> usize {
        let key = self.key.as_bytes().len();
        let ty = self.ty.encode().len();
        (1 + varint_len(key as u64) + key)
            + (1 + varint_len(ty as u64) + ty)
            + 2
            + (1 + varint_len(self.value.len() as u64) + self.value.len())
    }

    /// The content key.
    pub fn key(&self) -> Key {
        self.key
    }

    /// The object type.
    pub fn ty(&self) -> TypeId {
        self.ty
    }

    /// True iff the object links to nothing.
    pub fn is_leaf(&self) -> bool {
        self.isleaf
    }

    /// The encoded object.
    pub fn value(&self) -> &Bytes {
        &self.value
    }

    /// The distinct keys this element links to.
    pub fn children(&self) -> &[Key] {
        &self.children
    }

    /// The links of this element's object, with the type each link declares, in wire order
    /// (found without decoding the object).
    pub fn links(&self, registry: &Registry) -> Result<Vec<(Key, TypeId)>> {
        let info = registry.require(self.ty)?;
        let mut out = Vec::new();
        crate::wire::scan(&self.value, registry.plans(), info.plan, &mut |l| {
            let key = Key::from_slice(l.key).ok_or_else(|| Error::codec("link", "a link key has a bad length"))?;
            out.push((key, l.ty));
            Ok(())
        })?;
        Ok(out)
    }

    /// Decodes the value as a generated message; fails if the element is of another type.
    pub fn decode_as<T: dsf_proto::Identified>(&self) -> Result<T> {
        if self.ty != TypeId::of::<T>() {
            return Err(Error::codec(
                "object",
                format!("element {} has type {}, not {} ({})", self.key, self.ty, TypeId::of::<T>(), T::FULL_NAME),
            ));
        }
        T::decode(self.value.as_ref()).map_err(|e| Error::codec("object", e))
    }
}

/// Decodes the child keys of a store row (see [`Element::encode_children`]).
pub fn decode_children(mut bytes: &[u8]) -> Result<Vec<Key>> {
    let mut keys = Vec::new();
    while let Some((&len, rest)) = bytes.split_first() {
        let key = rest
            .get(..len as usize)
            .and_then(Key::from_slice)
            .ok_or_else(|| Error::codec("stored children", "a child key is truncated or has a bad length"))?;
        keys.push(key);
        bytes = &rest[len as usize..];
    }
    Ok(keys)
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// The distinct child keys of a value of type `ty`, in first-occurrence order.
pub(crate) fn child_keys(registry: &Registry, ty: TypeId, value: &[u8]) -> Result<Vec<Key>> {
    let info = registry.require(ty)?;
    let mut keys: Vec<Key> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    wire::scan(value, registry.plans(), info.plan, &mut |link| {
        let key = Key::from_slice(link.key)
            .ok_or_else(|| Error::codec("link", format!("a link key has 20 or 32 bytes, not {}", link.key.len())))?;
        if seen.insert(key) {
            keys.push(key);
        }
        Ok(())
    })?;
    Ok(keys)
}

/// The fields of an encoded `StructureElement`, borrowed.
pub(crate) struct SeParts<'a> {
    pub key: &'a [u8],
    pub ty: TypeId,
    pub isleaf: bool,
    pub value: &'a [u8],
}

impl<'a> SeParts<'a> {
    pub(crate) fn parse(buf: &'a [u8]) -> Result<SeParts<'a>> {
        let bad = |r: &str| Error::codec("structure element", r);
        let mut pos = 0;
        let (mut key, mut ty, mut isleaf, mut value) = (None, None, None, None);
        while pos < buf.len() {
            let tag = wire::read_varint(buf, &mut pos)?;
            let (field, wt) = (tag >> 3, tag & 7);
            match (field, wt) {
                (1, 2) => key = Some(len_delimited(buf, &mut pos)?),
                (2, 2) => ty = Some(wire::parse_gpbtype(len_delimited(buf, &mut pos)?)?),
                (3, 0) => isleaf = Some(wire::read_varint(buf, &mut pos)? != 0),
                (4, 2) => value = Some(len_delimited(buf, &mut pos)?),
                _ => return Err(bad("unexpected field")),
            }
        }
        Ok(SeParts {
            key: key.ok_or_else(|| bad("missing required field key"))?,
            ty: ty.ok_or_else(|| bad("missing required field type"))?,
            isleaf: isleaf.ok_or_else(|| bad("missing required field isleaf"))?,
            value: value.ok_or_else(|| bad("missing required field value"))?,
        })
    }
}

fn len_delimited<'a>(buf: &'a [u8], pos: &mut usize) -> Result<&'a [u8]> {
    let len = wire::read_varint(buf, pos)?;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| pos.checked_add(l))
        .filter(|&e| e <= buf.len())
        .ok_or_else(|| Error::codec("structure element", "length runs past the end"))?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}
