//! The properties the fuzz targets check, one function per target.
//!
//! This file depends on `dsf` alone: the corpus replay tests of `dsf`
//! (`dsf/tests/dsf/fuzz_corpus.rs`) include it with `#[path]`, so a corpus file replayed by
//! `cargo test` goes through exactly the checks the fuzzer ran. Every check either returns or
//! panics; a panic is a bug.

use std::collections::HashSet;

use dsf::structure::{self, Envelope};
use dsf::{Element, Elements, HashAlgorithm, Key, Registry, Status, TypeId};

/// `structure_decode`: arbitrary bytes as a `Structure` message envelope.
///
/// Decoding never panics. What decodes re-encodes to an envelope that decodes to the same
/// elements. What decodes is unpacked; unpacking never panics, and a message that unpacks has
/// the head as its committed root. When the envelope holds every element reachable from its
/// head, the unpacked repository packs again, to the same head and exactly the reachable items.
pub fn structure_decode(registry: &Registry, data: &[u8]) {
    let Ok(env) = Envelope::decode(registry, data) else {
        return;
    };
    let again = Envelope::decode(registry, &env.encode())
        .unwrap_or_else(|e| panic!("a re-encoded envelope does not decode: {e}"));
    assert_eq!(again.head, env.head, "the head changed in a re-encode round trip");
    assert_eq!(again.items, env.items, "the items changed in a re-encode round trip");

    let Ok(repo) = structure::unpack(registry, data, &[]) else {
        return;
    };
    let root = repo.root().expect("an unpacked message has a root object");
    let root_key =
        repo.object_key(root).unwrap_or_else(|e| panic!("the root handle of an unpacked message is invalid: {e}"));
    assert_eq!(root_key, Some(env.head.key()), "the unpacked root is not the head");
    assert_eq!(repo.status(), Status::UpToDate, "an unpacked message is not up to date");

    if let Some(reachable) = reachable_items(&env) {
        let packed =
            structure::pack(&repo, &[]).unwrap_or_else(|e| panic!("a complete unpacked message does not pack: {e}"));
        let repacked =
            Envelope::decode(registry, &packed).unwrap_or_else(|e| panic!("a packed message does not decode: {e}"));
        assert_eq!(repacked.head, env.head, "packing an unpacked message changed its head");
        let keys: HashSet<Key> = repacked.items.keys().copied().collect();
        assert_eq!(keys, reachable, "packing an unpacked message changed its items");
    }
}

/// The keys reachable from the head (the head excluded), or `None` if one of them is not in
/// the envelope.
fn reachable_items(env: &Envelope) -> Option<HashSet<Key>> {
    let mut seen = HashSet::new();
    let mut stack = vec![&env.head];
    while let Some(e) = stack.pop() {
        for child in e.children() {
            if *child == env.head.key() || !seen.insert(*child) {
                continue;
            }
            stack.push(env.items.get(child)?);
        }
    }
    Some(seen)
}

/// `element_verify`: arbitrary bytes as an encoded `StructureElement`.
///
/// Decoding never panics. An element that decodes has a key that verifies over its value and
/// type, is a leaf iff it has no children, encodes to `encoded_len` bytes, and round-trips
/// through its encoding (canonically: encoding twice gives the same bytes). Wrapped for
/// transport with either hash, it unwraps to itself; an element that is itself a wrapped one
/// unwraps without panicking.
pub fn element_verify(registry: &Registry, data: &[u8]) {
    let Ok(e) = Element::decode(registry, data) else {
        return;
    };
    assert_eq!(e.key().algorithm().element_key(e.value(), e.ty()), e.key(), "the key does not verify");
    assert_eq!(e.is_leaf(), e.children().is_empty(), "isleaf contradicts the children");

    let bytes = e.encode();
    assert_eq!(bytes.len(), e.encoded_len(), "encoded_len is not the encoded length");
    let again =
        Element::decode(registry, &bytes).unwrap_or_else(|err| panic!("a re-encoded element does not decode: {err}"));
    assert_eq!(again, e, "the element changed in a re-encode round trip");
    assert_eq!(again.encode(), bytes, "the encoding is not canonical");

    for alg in [HashAlgorithm::Sha1, HashAlgorithm::Blake3] {
        let outer = structure::wrap(alg, &e);
        let outer_again = Element::decode(registry, &outer.encode())
            .unwrap_or_else(|err| panic!("a wrapped element does not decode: {err}"));
        assert_eq!(outer_again, outer, "a wrapped element changed in a round trip");
        let inner = structure::unwrap(registry, &outer)
            .unwrap_or_else(|err| panic!("a wrapped element does not unwrap: {err}"));
        assert_eq!(inner, e, "unwrap(wrap(e)) is not e");
    }
    if e.ty() == TypeId::STRUCTURE_ELEMENT {
        let _ = structure::unwrap(registry, &e);
    }
}

/// `structure_rekeyed`: arbitrary bytes as a `Structure` whose element keys are recomputed
/// before the [`structure_decode`] checks run.
///
/// Mutated elements almost never hash to their key, so `structure_decode` rarely gets past
/// verification; here every element's key is replaced by the key of its value and type (SHA-1,
/// or BLAKE3 where the key had 32 bytes) and a contradicting `isleaf` is flipped, so the fuzzer
/// reaches unpacking, loading, commit and packing with arbitrary graphs.
pub fn structure_rekeyed(registry: &Registry, data: &[u8]) {
    if let Some(fixed) = rekey(registry, data) {
        structure_decode(registry, &fixed);
    }
}

/// `element_rekeyed`: arbitrary bytes as an encoded `StructureElement` whose key is recomputed
/// (and a contradicting `isleaf` flipped) before the [`element_verify`] checks run, so that
/// arbitrary values reach link scanning, the round trips and wrapping.
pub fn element_rekeyed(registry: &Registry, data: &[u8]) {
    if let Some(fixed) = rekey_element(registry, data) {
        element_verify(registry, &fixed);
    }
}

/// The envelope with every element rekeyed, or `None` if it is not a sequence of
/// `head`/`items` fields holding elements with a type and a value.
fn rekey(registry: &Registry, data: &[u8]) -> Option<Vec<u8>> {
    let mut pos = 0;
    let mut out = Vec::with_capacity(data.len());
    while pos < data.len() {
        let tag = read_varint(data, &mut pos)?;
        if tag != 0x0a && tag != 0x12 {
            return None;
        }
        let element = rekey_element(registry, read_len(data, &mut pos)?)?;
        out.push(tag as u8);
        put_varint(&mut out, element.len() as u64);
        out.extend_from_slice(&element);
    }
    Some(out)
}

/// An encoded element with its key recomputed (and `isleaf` flipped if only the flipped value
/// decodes). The type and value bytes are kept as they are.
fn rekey_element(registry: &Registry, se: &[u8]) -> Option<Vec<u8>> {
    let (mut key_len, mut ty, mut isleaf, mut value) = (20, None, false, None);
    let mut pos = 0;
    while pos < se.len() {
        match read_varint(se, &mut pos)? {
            0x0a => key_len = read_len(se, &mut pos)?.len(),
            0x12 => ty = Some(read_len(se, &mut pos)?),
            0x18 => isleaf = read_varint(se, &mut pos)? != 0,
            0x22 => value = Some(read_len(se, &mut pos)?),
            _ => return None,
        }
    }
    let (ty_bytes, value) = (ty?, value?);
    let ty = parse_type(ty_bytes)?;
    let alg = if key_len == 32 { HashAlgorithm::Blake3 } else { HashAlgorithm::Sha1 };
    let key = alg.element_key(value, ty);
    let encode = |isleaf: bool| {
        let mut out = Vec::with_capacity(se.len() + 40);
        for (tag, bytes) in [(0x0a, key.as_bytes()), (0x12, ty_bytes)] {
            out.push(tag);
            put_varint(&mut out, bytes.len() as u64);
            out.extend_from_slice(bytes);
        }
        out.extend_from_slice(&[0x18, u8::from(isleaf), 0x22]);
        put_varint(&mut out, value.len() as u64);
        out.extend_from_slice(value);
        out
    };
    let as_given = encode(isleaf);
    if Element::decode(registry, &as_given).is_ok() {
        return Some(as_given);
    }
    let flipped = encode(!isleaf);
    if Element::decode(registry, &flipped).is_ok() { Some(flipped) } else { Some(as_given) }
}

/// A `GPBType {object_id 1, version 2}` with nothing else in it, truncated to `i32` as proto2
/// reads `int32` fields.
fn parse_type(buf: &[u8]) -> Option<TypeId> {
    let mut ty = TypeId::new(0, 0);
    let mut pos = 0;
    while pos < buf.len() {
        match read_varint(buf, &mut pos)? {
            0x08 => ty.object_id = read_varint(buf, &mut pos)? as i32,
            0x10 => ty.version = read_varint(buf, &mut pos)? as i32,
            _ => return None,
        }
    }
    Some(ty)
}

fn read_varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
    }
    None
}

fn read_len<'a>(buf: &'a [u8], pos: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(read_varint(buf, pos)?).ok()?;
    let end = pos.checked_add(len).filter(|&e| e <= buf.len())?;
    let payload = &buf[*pos..end];
    *pos = end;
    Some(payload)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// `document_parse`: arbitrary bytes as a working-copy document (the JSON form of a graph).
///
/// Reading never panics. A document that reads renders again from the elements it made, and
/// that rendering reads back to the same root with nothing new: a document and its rendering
/// describe the same graph.
pub fn document_parse(registry: &Registry, data: &[u8]) {
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(parsed) = dsf::json::parse(registry, HashAlgorithm::Sha1, &Elements::default(), doc) else {
        return;
    };
    let mut made = Elements::default();
    for e in parsed.new_elements {
        made.insert(e);
    }
    let rendered = dsf::json::render(registry, &made, parsed.root, &[])
        .unwrap_or_else(|e| panic!("a document that reads does not render: {e}"));
    let again = dsf::json::parse(registry, HashAlgorithm::Sha1, &made, rendered.clone())
        .unwrap_or_else(|e| panic!("a rendered document does not read back: {e}\n{rendered}"));
    assert_eq!(again.root, parsed.root, "the rendering of a document is another graph:\n{rendered}");
    assert!(again.new_elements.is_empty(), "reading a rendering made new elements:\n{rendered}");
}
