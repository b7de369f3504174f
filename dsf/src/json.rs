//! The JSON form of an object graph: what `dsf-cli` writes into a working copy and reads back.
//!
//! Each object is a JSON object in the protobuf JSON mapping (proto field names, default values
//! left out) with two annotations:
//!
//! - `"@type"`: the full name of the object's message, e.g. `"net.ooici.play.Person"`;
//! - `"@key"`: the key the object had when it was written out (hex). It is a hint, never
//!   trusted: an object is always hashed again, and its old element is kept only when its
//!   content is unchanged (so an element whose stored encoding is not canonical keeps its key).
//!
//! A link (a `CASRef` field) holds the object it points at, inline. An object that occurs a
//! second time, or whose type was excluded from the checkout, is written `{"@ref": "<key>"}`,
//! which means "the stored object with this key, unchanged"; any link may be written that way.
//! A field that both sides of a merge changed differently is written
//! `{"@conflict": {"path": …, "base": …, "ours": …, "theirs": …}}` until someone replaces it
//! with the value to keep.

use std::collections::{HashMap, HashSet};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use prost::Message;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, SerializeOptions};
use serde_json::{Map, Value as Json};

use crate::element::Element;
use crate::elements::Elements;
use crate::error::{Error, Result};
use crate::key::{HashAlgorithm, Key};
use crate::merge::Conflict;
use crate::types::{CASREF_NAME, Registry, TypeId};

/// The annotation naming an object's message.
pub const TYPE: &str = "@type";
/// The annotation holding the key an object had when written out.
pub const KEY: &str = "@key";
/// A link written by key: the stored object with this key.
pub const REF: &str = "@ref";
/// A merge conflict waiting to be resolved.
pub const CONFLICT: &str = "@conflict";

fn doc_error(path: &str, reason: impl ToString) -> Error {
    Error::Document { path: path.to_owned(), reason: reason.to_string() }
}

fn reference(key: Key) -> Json {
    let mut m = Map::new();
    m.insert(REF.to_owned(), Json::String(key.to_hex()));
    Json::Object(m)
}

fn options() -> SerializeOptions {
    SerializeOptions::new().use_proto_field_name(true)
}

/// Calls `f` on every value of a message-typed field of `desc` present in `json`, with the
/// value's message type and its path.
fn each_message_field(
    desc: &MessageDescriptor,
    json: &mut Json,
    path: &str,
    f: &mut dyn FnMut(&MessageDescriptor, &mut Json, &str) -> Result<()>,
) -> Result<()> {
    let Json::Object(map) = json else { return Ok(()) };
    for field in desc.fields() {
        let Kind::Message(md) = field.kind() else { continue };
        let Some(v) = map.get_mut(field.name()) else { continue };
        let fpath = format!("{path}.{}", field.name());
        if field.is_map() {
            let Kind::Message(vd) = md.map_entry_value_field().kind() else { continue };
            if let Json::Object(entries) = v {
                for (k, item) in entries.iter_mut() {
                    f(&vd, item, &format!("{fpath}[{k}]"))?;
                }
            }
        } else if field.is_list() {
            if let Json::Array(items) = v {
                for (i, item) in items.iter_mut().enumerate() {
                    f(&md, item, &format!("{fpath}[{i}]"))?;
                }
            }
        } else {
            f(&md, v, &fpath)?;
        }
    }
    Ok(())
}

/// Writes the graph below `root` as a document. Links to `excluded` types, and objects met
/// before, are written as `{"@ref": KEY}`.
pub fn render(registry: &Registry, elements: &Elements, root: Key, excluded: &[TypeId]) -> Result<Json> {
    Renderer { registry, elements, excluded, written: HashSet::new() }.object(root, "root")
}

struct Renderer<'a> {
    registry: &'a Registry,
    elements: &'a Elements,
    excluded: &'a [TypeId],
    written: HashSet<Key>,
}

impl Renderer<'_> {
    fn object(&mut self, key: Key, path: &str) -> Result<Json> {
        if !self.written.insert(key) {
            return Ok(reference(key));
        }
        let e = self.elements.get(&key).ok_or(Error::MissingElement { key })?;
        let info = self.registry.require(e.ty())?;
        let msg = DynamicMessage::decode(info.descriptor.clone(), e.value().as_ref())
            .map_err(|err| doc_error(path, format!("object {key} does not decode as {}: {err}", info.name())))?;
        let mut json = msg
            .serialize_with_options(serde_json::value::Serializer, &options())
            .map_err(|err| doc_error(path, format!("object {key} has no JSON form: {err}")))?;
        if !e.children().is_empty() {
            let desc = info.descriptor.clone();
            self.links(&desc, &mut json, path)?;
        }
        let Json::Object(map) = &mut json else {
            return Err(doc_error(path, "a message did not render as a JSON object"));
        };
        map.insert(TYPE.to_owned(), Json::String(info.name().to_owned()));
        map.insert(KEY.to_owned(), Json::String(key.to_hex()));
        Ok(json)
    }

    fn links(&mut self, desc: &MessageDescriptor, json: &mut Json, path: &str) -> Result<()> {
        each_message_field(desc, json, path, &mut |md, v, p| {
            if md.full_name() == CASREF_NAME {
                let (key, ty) = casref_of(v, p)?;
                *v = if self.excluded.contains(&ty) { reference(key) } else { self.object(key, p)? };
                Ok(())
            } else {
                self.links(md, v, p)
            }
        })
    }
}

/// The key and declared type of a `CASRef` in its JSON mapping.
fn casref_of(v: &Json, path: &str) -> Result<(Key, TypeId)> {
    let bad = || doc_error(path, "a link without a valid key and type");
    let key = v.get("key").and_then(Json::as_str).ok_or_else(bad)?;
    let key = BASE64.decode(key).ok().and_then(|raw| Key::from_slice(&raw)).ok_or_else(bad)?;
    let ty = v.get("type").ok_or_else(bad)?;
    let num = |name: &str| ty.get(name).and_then(Json::as_i64).and_then(|n| i32::try_from(n).ok());
    Ok((key, TypeId::new(num("object_id").ok_or_else(bad)?, num("version").unwrap_or(1))))
}

fn casref_json(key: Key, ty: TypeId, isleaf: bool) -> Json {
    serde_json::json!({
        "key": BASE64.encode(key.as_bytes()),
        "type": { "object_id": ty.object_id, "version": ty.version },
        "isleaf": isleaf,
    })
}

/// A document read back into elements.
#[derive(Debug)]
pub struct Parsed {
    /// The root object's key.
    pub root: Key,
    /// The root object's type.
    pub root_type: TypeId,
    /// Elements the document describes that `known` did not hold, children before parents.
    pub new_elements: Vec<Element>,
    /// Objects whose `"@key"` was missing or not their key: with none, rendering the graph
    /// again would only change the document's layout.
    pub stale_keys: usize,
}

/// Reads a document into elements. Objects are hashed again; `known` supplies the objects that
/// `{"@ref": KEY}` names and the elements `"@key"` hints at.
pub fn parse(registry: &Registry, alg: HashAlgorithm, known: &Elements, doc: Json) -> Result<Parsed> {
    let mut p = Parser { registry, alg, known, new: Vec::new(), new_keys: HashSet::new(), stale_keys: 0, absent: None };
    let (root, root_type, _) = p.object(doc, "root")?;
    Ok(Parsed { root, root_type, new_elements: p.new, stale_keys: p.stale_keys })
}

/// Calls `visit` on every JSON object of a document, outermost first; `visit` returns whether
/// to look inside the object.
fn each_object(doc: &Json, visit: &mut dyn FnMut(&Map<String, Json>) -> bool) {
    match doc {
        Json::Object(m) if visit(m) => m.values().for_each(|v| each_object(v, visit)),
        Json::Array(items) => items.iter().for_each(|v| each_object(v, visit)),
        _ => {}
    }
}

/// The keys a document names with `{"@ref": KEY}`: what a reader must make known first.
pub fn references(doc: &Json) -> Vec<Key> {
    let mut out = Vec::new();
    each_object(doc, &mut |m| {
        if let (Some(Json::String(r)), 1) = (m.get(REF), m.len())
            && let Some(k) = Key::from_hex(r)
        {
            out.push(k);
        }
        true
    });
    out
}

struct Parser<'a> {
    registry: &'a Registry,
    alg: HashAlgorithm,
    known: &'a Elements,
    new: Vec<Element>,
    new_keys: HashSet<Key>,
    stale_keys: usize,
    /// Links held by known objects, by target key: the type and leaf flag of objects that are
    /// named by `{"@ref": KEY}` but not here (left out of a partial clone). Built on first need.
    absent: Option<HashMap<Key, (TypeId, bool)>>,
}

impl Parser<'_> {
    fn object(&mut self, v: Json, path: &str) -> Result<(Key, TypeId, bool)> {
        let Json::Object(mut map) = v else {
            return Err(doc_error(path, "expected an object with \"@type\" (or {\"@ref\": KEY})"));
        };
        if map.contains_key(CONFLICT) {
            return Err(unresolved(path));
        }
        if let Some(r) = map.remove(REF) {
            if !map.is_empty() {
                return Err(doc_error(path, "an object written {\"@ref\": KEY} has no other fields"));
            }
            let key = r
                .as_str()
                .and_then(Key::from_hex)
                .ok_or_else(|| doc_error(path, "\"@ref\" must be an object key in hex"))?;
            if let Some(e) = self.element(&key) {
                return Ok((key, e.ty(), e.is_leaf()));
            }
            // An object this copy does not hold (a type its clone left out) is kept as the
            // link a known object makes to it: same key, type and leaf flag.
            return self.absent_link(&key).ok_or_else(|| {
                doc_error(path, format!("\"@ref\" names object {key}, which is not in this repository"))
            });
        }
        let name = match map.remove(TYPE) {
            Some(Json::String(s)) => s,
            _ => return Err(doc_error(path, "an object needs \"@type\": the full name of its message")),
        };
        let ty = self.registry.by_name(&name).ok_or_else(|| {
            doc_error(
                path,
                format!(
                    "unknown type {name:?}: `dsf-cli types` lists the registered types, `dsf-cli types add FILE` registers a descriptor set"
                ),
            )
        })?;
        let hint = match map.remove(KEY) {
            None => None,
            Some(h) => Some(
                h.as_str().and_then(Key::from_hex).ok_or_else(|| doc_error(path, "\"@key\" must be a key in hex"))?,
            ),
        };
        let desc = self.registry.require(ty)?.descriptor.clone();
        let mut json = Json::Object(map);
        self.links(&desc, &mut json, path)?;
        if let Some((at, _)) = conflicts(&json).first() {
            return Err(unresolved(at));
        }
        let msg = DynamicMessage::deserialize(desc.clone(), json).map_err(|e| doc_error(path, e))?;
        let mut e = Element::build(self.alg, self.registry, ty, msg.encode_to_vec())?;
        if let Some(h) = hint
            && h != e.key()
            && let Some(old) = self.known.get(&h)
            && old.ty() == ty
            && DynamicMessage::decode(desc, old.value().as_ref()).is_ok_and(|m| m == msg)
        {
            e = old.clone();
        }
        if hint != Some(e.key()) {
            self.stale_keys += 1;
        }
        let out = (e.key(), ty, e.is_leaf());
        if !self.known.contains(&e.key()) && self.new_keys.insert(e.key()) {
            self.new.push(e);
        }
        Ok(out)
    }

    fn absent_link(&mut self, key: &Key) -> Option<(Key, TypeId, bool)> {
        let (registry, known) = (self.registry, self.known);
        let absent = self.absent.get_or_insert_with(|| {
            let mut links = HashMap::new();
            for e in known.iter().filter(|e| !e.is_leaf()) {
                let Ok(info) = registry.require(e.ty()) else { continue };
                let _ = crate::wire::scan(e.value(), registry.plans(), info.plan, &mut |l| {
                    if let Some(k) = Key::from_slice(l.key) {
                        links.insert(k, (l.ty, l.isleaf));
                    }
                    Ok(())
                });
            }
            links
        });
        absent.get(key).map(|&(ty, isleaf)| (*key, ty, isleaf))
    }

    fn element(&self, key: &Key) -> Option<&Element> {
        self.known.get(key).or_else(|| self.new.iter().find(|e| e.key() == *key))
    }

    fn links(&mut self, desc: &MessageDescriptor, json: &mut Json, path: &str) -> Result<()> {
        each_message_field(desc, json, path, &mut |md, v, p| {
            if md.full_name() != CASREF_NAME {
                return self.links(md, v, p);
            }
            let is_object = v.as_object().is_some_and(|m| m.contains_key(TYPE) || m.contains_key(REF));
            if v.as_object().is_some_and(|m| m.contains_key(CONFLICT)) {
                return Err(unresolved(p));
            }
            if !is_object {
                return Err(doc_error(p, "a link holds the object it points at (with \"@type\") or {\"@ref\": KEY}"));
            }
            let (key, ty, isleaf) = self.object(v.take(), p)?;
            *v = casref_json(key, ty, isleaf);
            Ok(())
        })
    }
}

fn unresolved(path: &str) -> Error {
    doc_error(path, "unresolved merge conflict: replace the {\"@conflict\": …} object with the value to keep")
}

/// The conflict markers left in a document: (path, the marker's content).
pub fn conflicts(doc: &Json) -> Vec<(String, Json)> {
    let mut out = Vec::new();
    each_object(doc, &mut |m| match m.get(CONFLICT) {
        Some(c) => {
            out.push((c.get("path").and_then(Json::as_str).unwrap_or("?").to_owned(), c.clone()));
            false
        }
        None => true,
    });
    out
}

enum Step<'a> {
    Field(&'a str),
    Index(usize),
}

/// Splits `root.person[1].email` into steps after `root`.
fn steps(path: &str) -> Option<Vec<Step<'_>>> {
    let rest = path.strip_prefix("root")?;
    let mut out = Vec::new();
    let mut s = rest;
    while !s.is_empty() {
        if let Some(r) = s.strip_prefix('.') {
            let end = r.find(['.', '[']).unwrap_or(r.len());
            out.push(Step::Field(&r[..end]));
            s = &r[end..];
        } else if let Some(r) = s.strip_prefix('[') {
            let end = r.find(']')?;
            out.push(Step::Index(r[..end].parse().ok()?));
            s = &r[end + 1..];
        } else {
            return None;
        }
    }
    Some(out)
}

/// The value at a conflict path (`root.person[1].email`) of a document; `None` if absent.
pub fn at_path<'a>(doc: &'a Json, path: &str) -> Option<&'a Json> {
    let mut at = doc;
    for step in steps(path)? {
        at = match step {
            Step::Field(name) => at.get(name)?,
            Step::Index(i) => at.get(i)?,
        };
    }
    Some(at)
}

/// Replaces the value at each conflict's path in `doc` (the merge result) with a conflict
/// marker holding the values of the base, ours and theirs documents there. Returns the paths
/// that could not be marked (they lie below an object written as `@ref`).
pub fn mark_conflicts(
    doc: &mut Json,
    base: Option<&Json>,
    ours: &Json,
    theirs: &Json,
    conflicts: &[Conflict],
) -> Vec<String> {
    let mut unplaced = Vec::new();
    for c in conflicts {
        let side = |d: Option<&Json>| d.and_then(|d| at_path(d, &c.path)).cloned().unwrap_or(Json::Null);
        let marker = serde_json::json!({
            CONFLICT: {
                "path": c.path,
                "base": side(base),
                "ours": side(Some(ours)),
                "theirs": side(Some(theirs)),
            }
        });
        if !place(doc, &c.path, marker) {
            unplaced.push(c.path.clone());
        }
    }
    unplaced
}

fn place(doc: &mut Json, path: &str, marker: Json) -> bool {
    let Some(steps) = steps(path) else { return false };
    let Some((last, parents)) = steps.split_last() else {
        *doc = marker;
        return true;
    };
    let mut at = doc;
    for step in parents {
        let next = match step {
            Step::Field(name) => at.get_mut(*name),
            Step::Index(i) => at.get_mut(*i),
        };
        match next {
            Some(n) => at = n,
            None => return false,
        }
    }
    match (last, at) {
        (Step::Field(name), Json::Object(m)) if !m.contains_key(REF) => {
            m.insert((*name).to_owned(), marker);
            true
        }
        (Step::Index(i), Json::Array(items)) if *i < items.len() => {
            items[*i] = marker;
            true
        }
        _ => false,
    }
}
