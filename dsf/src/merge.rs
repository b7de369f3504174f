//! Field-level three-way merge and diff of object graphs.
//!
//! Both walk two (or three) graphs from their roots at once. Equal keys end the walk (equal
//! subgraphs are never decoded). Objects of equal type are compared field by field; a link
//! field leads into the linked objects, so paths read like `root.person[2].email`.
//!
//! The merge rule, per field: equal on both sides, or unchanged on one side, takes the other
//! side. Changed differently on both sides: singular links and embedded messages are merged
//! recursively; repeated fields are merged element-wise when base, ours and theirs have the same
//! length, and otherwise conflict as a whole field; maps and scalars conflict. A conflict is
//! settled by the policy (`Manual` keeps ours and reports it).

use std::collections::HashMap;

use prost::Message as _;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage as _, Value};

use crate::element::{Element, child_keys};
use crate::elements::Elements;
use crate::error::{Error, Result};
use crate::key::{HashAlgorithm, Key};
use crate::types::{CASREF_NAME, Registry, TypeId};

/// How a merge settles a field changed differently on both sides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MergePolicy {
    /// Keep ours in the workspace and report the conflict; commit is refused until resolved.
    #[default]
    Manual,
    /// Keep ours.
    Ours,
    /// Take theirs.
    Theirs,
    /// Take the side whose commit is newer (ours on a tie).
    Newest,
}

impl std::str::FromStr for MergePolicy {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "manual" => Ok(MergePolicy::Manual),
            "ours" => Ok(MergePolicy::Ours),
            "theirs" => Ok(MergePolicy::Theirs),
            "newest" => Ok(MergePolicy::Newest),
            other => Err(format!("unknown merge policy {other:?}: expected manual, ours, theirs or newest")),
        }
    }
}

/// Which side a conflict was settled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The current branch.
    Ours,
    /// The merged branch or commit.
    Theirs,
}

/// A field changed differently on both sides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// Where, e.g. `root.person[2].email`.
    pub path: String,
    /// The base value (`None`: absent).
    pub base: Option<String>,
    /// Our value.
    pub ours: Option<String>,
    /// Their value.
    pub theirs: Option<String>,
    /// The side the merge result holds.
    pub taken: Side,
}

/// The result of [`merge_graphs`].
#[derive(Debug)]
pub struct MergeResult {
    /// The merged root.
    pub root: Key,
    /// Elements the merge created.
    pub new_elements: Vec<Element>,
    /// Conflicts, in walk order.
    pub conflicts: Vec<Conflict>,
}

/// How a field differs between two graphs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Absent before, present after.
    Added,
    /// Present before, absent after.
    Removed,
    /// Present on both sides with different values.
    Modified,
}

/// One difference found by [`diff_graphs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Where, e.g. `root.person[2].email`.
    pub path: String,
    /// What happened.
    pub kind: ChangeKind,
    /// The old value.
    pub before: Option<String>,
    /// The new value.
    pub after: Option<String>,
}

/// Merges the graphs rooted at `ours` and `theirs` against `base` (none: unrelated histories).
#[allow(clippy::too_many_arguments)]
pub fn merge_graphs(
    registry: &Registry,
    elements: &Elements,
    alg: HashAlgorithm,
    base: Option<Key>,
    ours: Key,
    theirs: Key,
    policy: MergePolicy,
    theirs_newer: bool,
) -> Result<MergeResult> {
    let mut m = Merger {
        registry,
        elements,
        alg,
        policy,
        theirs_newer,
        new: HashMap::new(),
        order: Vec::new(),
        conflicts: Vec::new(),
        memo: HashMap::new(),
    };
    let root = m.object(base, ours, theirs, "root")?;
    let mut new = m.new;
    let new_elements = m.order.iter().filter_map(|k| new.remove(k)).collect();
    Ok(MergeResult { root, new_elements, conflicts: m.conflicts })
}

struct Merger<'a> {
    registry: &'a Registry,
    elements: &'a Elements,
    alg: HashAlgorithm,
    policy: MergePolicy,
    theirs_newer: bool,
    new: HashMap<Key, Element>,
    order: Vec<Key>,
    conflicts: Vec<Conflict>,
    memo: HashMap<(Option<Key>, Key, Key), Key>,
}

impl Merger<'_> {
    fn element(&self, key: Key) -> Result<&Element> {
        self.new.get(&key).or_else(|| self.elements.get(&key)).ok_or(Error::MissingElement { key })
    }

    fn decode(&self, e: &Element) -> Result<DynamicMessage> {
        let info = self.registry.require(e.ty())?;
        DynamicMessage::decode(info.descriptor.clone(), e.value().as_ref()).map_err(|err| Error::codec("object", err))
    }

    fn take_theirs(&self) -> bool {
        match self.policy {
            MergePolicy::Manual | MergePolicy::Ours => false,
            MergePolicy::Theirs => true,
            MergePolicy::Newest => self.theirs_newer,
        }
    }

    fn conflict<T: Clone>(
        &mut self,
        path: &str,
        base: Option<String>,
        ours: (Option<String>, T),
        theirs: (Option<String>, T),
    ) -> T {
        let take_theirs = self.take_theirs();
        self.conflicts.push(Conflict {
            path: path.to_owned(),
            base,
            ours: ours.0,
            theirs: theirs.0,
            taken: if take_theirs { Side::Theirs } else { Side::Ours },
        });
        if take_theirs { theirs.1 } else { ours.1 }
    }

    fn object(&mut self, base: Option<Key>, ours: Key, theirs: Key, path: &str) -> Result<Key> {
        if ours == theirs || base == Some(theirs) {
            return Ok(ours);
        }
        if base == Some(ours) {
            return Ok(theirs);
        }
        if let Some(&k) = self.memo.get(&(base, ours, theirs)) {
            return Ok(k);
        }
        let (eo, et) = (self.element(ours)?.clone(), self.element(theirs)?.clone());
        let key = if eo.ty() != et.ty() {
            let show = |e: &Element| Some(format!("object {} of type {}", e.key(), e.ty()));
            let b = base.and_then(|b| self.element(b).ok()).and_then(show);
            self.conflict(path, b, (show(&eo), ours), (show(&et), theirs))
        } else {
            let info = self.registry.require(eo.ty())?;
            let desc = info.descriptor.clone();
            let b = match base.map(|b| self.element(b)).transpose()? {
                Some(eb) if eb.ty() == eo.ty() => Some(self.decode(&eb.clone())?),
                _ => None,
            };
            let (o, t) = (self.decode(&eo)?, self.decode(&et)?);
            let merged = self.message(&desc, b.as_ref(), &o, &t, path)?;
            self.store(eo.ty(), merged.encode_to_vec())?
        };
        self.memo.insert((base, ours, theirs), key);
        Ok(key)
    }

    fn store(&mut self, ty: TypeId, value: Vec<u8>) -> Result<Key> {
        let children = child_keys(self.registry, ty, &value)?;
        let e = Element::new(self.alg, ty, value, children);
        let k = e.key();
        if !self.elements.contains(&k) && !self.new.contains_key(&k) {
            self.order.push(k);
            self.new.insert(k, e);
        }
        Ok(k)
    }

    fn message(
        &mut self,
        desc: &MessageDescriptor,
        base: Option<&DynamicMessage>,
        ours: &DynamicMessage,
        theirs: &DynamicMessage,
        path: &str,
    ) -> Result<DynamicMessage> {
        let mut out = ours.clone();
        for field in desc.fields() {
            let (b, o, t) = (present(base, &field), present(Some(ours), &field), present(Some(theirs), &field));
            if same_opt(&o, &t) || same_opt(&b, &t) {
                continue;
            }
            let fpath = format!("{path}.{}", field.name());
            let merged = if same_opt(&b, &o) { t } else { self.field(&field, b, o, t, &fpath)? };
            match merged {
                Some(v) => out.set_field(&field, v),
                None => out.clear_field(&field),
            }
        }
        Ok(out)
    }

    /// A field changed differently on both sides.
    fn field(
        &mut self,
        field: &FieldDescriptor,
        b: Option<Value>,
        o: Option<Value>,
        t: Option<Value>,
        path: &str,
    ) -> Result<Option<Value>> {
        let (Some(ov), Some(tv)) = (&o, &t) else {
            return Ok(self.whole(path, b, o, t));
        };
        if field.is_map() {
            return Ok(self.whole(path, b, o, t));
        }
        if field.is_list() {
            let empty = Vec::new();
            let (lo, lt) = (ov.as_list().unwrap_or(&empty), tv.as_list().unwrap_or(&empty));
            let lb = b.as_ref().and_then(|v| v.as_list()).unwrap_or(&empty);
            if lo.len() != lt.len() || lb.len() != lo.len() {
                return Ok(self.whole(path, b, o, t));
            }
            let mut items = Vec::with_capacity(lo.len());
            for i in 0..lo.len() {
                items.push(self.single(&field.kind(), Some(&lb[i]), &lo[i], &lt[i], &format!("{path}[{i}]"))?);
            }
            return Ok(Some(Value::List(items)));
        }
        Ok(Some(self.single(&field.kind(), b.as_ref(), ov, tv, path)?))
    }

    fn whole(&mut self, path: &str, b: Option<Value>, o: Option<Value>, t: Option<Value>) -> Option<Value> {
        let (bs, os, ts) = (b.as_ref().map(render), o.as_ref().map(render), t.as_ref().map(render));
        self.conflict(path, bs, (os, o), (ts, t))
    }

    fn single(&mut self, kind: &Kind, b: Option<&Value>, o: &Value, t: &Value, path: &str) -> Result<Value> {
        if same(o, t) || b.is_some_and(|b| same(b, t)) {
            return Ok(o.clone());
        }
        if b.is_some_and(|b| same(b, o)) {
            return Ok(t.clone());
        }
        match kind {
            Kind::Message(md) if md.full_name() == CASREF_NAME => {
                let (ol, tl) = (link_of(o)?, link_of(t)?);
                if ol.1 != tl.1 {
                    let c =
                        self.conflict(path, b.map(render), (Some(render(o)), o.clone()), (Some(render(t)), t.clone()));
                    return Ok(c);
                }
                let bk = b.map(link_of).transpose()?.filter(|l| l.1 == ol.1).map(|l| l.0);
                let merged = self.object(bk, ol.0, tl.0, path)?;
                let isleaf = self.element(merged)?.is_leaf();
                let mut out = o.as_message().expect("link is a message").clone();
                out.set_field_by_number(1, Value::Bytes(merged.as_bytes().to_vec().into()));
                out.set_field_by_number(3, Value::Bool(isleaf));
                Ok(Value::Message(out))
            }
            Kind::Message(md) => {
                let (om, tm) = (o.as_message().expect("message"), t.as_message().expect("message"));
                let bm = b.and_then(|v| v.as_message());
                Ok(Value::Message(self.message(md, bm, om, tm, path)?))
            }
            _ => Ok(self.conflict(path, b.map(render), (Some(render(o)), o.clone()), (Some(render(t)), t.clone()))),
        }
    }
}

/// Equality as content addressing sees it: floats compare by their bits (so NaN equals NaN and
/// 0.0 differs from -0.0), messages field by field in field-number order.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::F32(x), Value::F32(y)) => x.to_bits() == y.to_bits(),
        (Value::F64(x), Value::F64(y)) => x.to_bits() == y.to_bits(),
        (Value::List(x), Value::List(y)) => x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y)),
        (Value::Message(x), Value::Message(y)) => {
            x.descriptor() == y.descriptor() && {
                let (mut fx, mut fy) = (x.fields(), y.fields());
                loop {
                    match (fx.next(), fy.next()) {
                        (None, None) => break true,
                        (Some((dx, vx)), Some((dy, vy))) if dx.number() == dy.number() && same(vx, vy) => {}
                        _ => break false,
                    }
                }
            }
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn same_opt(a: &Option<Value>, b: &Option<Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// The value of a field if it is present (repeated: non-empty).
fn present(msg: Option<&DynamicMessage>, field: &FieldDescriptor) -> Option<Value> {
    let m = msg?;
    m.has_field(field).then(|| m.get_field(field).into_owned())
}

/// The key and type of a `CASRef` value.
fn link_of(v: &Value) -> Result<(Key, TypeId)> {
    let m = v.as_message().ok_or_else(|| Error::codec("link", "not a message"))?;
    let key = m.get_field_by_number(1).and_then(|k| k.as_bytes().and_then(|b| Key::from_slice(b)));
    let key = key.ok_or_else(|| Error::codec("link", "a link without a valid key"))?;
    let ty = m
        .get_field_by_number(2)
        .and_then(|t| {
            let t = t.as_message()?;
            Some(TypeId::new(t.get_field_by_number(1)?.as_i32()?, t.get_field_by_number(2)?.as_i32()?))
        })
        .ok_or_else(|| Error::codec("link", "a link without a type"))?;
    Ok((key, ty))
}

/// A short, readable rendering of a field value for conflicts and diffs.
pub fn render(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("{s:?}"),
        Value::Bytes(b) => format!("0x{}", b.iter().map(|x| format!("{x:02X}")).collect::<String>()),
        Value::Bool(x) => x.to_string(),
        Value::I32(x) => x.to_string(),
        Value::I64(x) => x.to_string(),
        Value::U32(x) => x.to_string(),
        Value::U64(x) => x.to_string(),
        Value::F32(x) => x.to_string(),
        Value::F64(x) => x.to_string(),
        Value::EnumNumber(x) => x.to_string(),
        Value::Message(m) if m.descriptor().full_name() == CASREF_NAME => match link_of(v) {
            Ok((k, t)) => format!("link to {k} {t}"),
            Err(_) => "invalid link".to_owned(),
        },
        Value::Message(m) => format!("{m:?}"),
        Value::List(items) => format!("[{}]", items.iter().map(render).collect::<Vec<_>>().join(", ")),
        Value::Map(m) => format!("map of {} entries", m.len()),
    };
    if s.chars().count() > 120 { format!("{}…", s.chars().take(120).collect::<String>()) } else { s }
}

/// The field-level differences between the graphs rooted at `from` and `to`.
pub fn diff_graphs(registry: &Registry, elements: &Elements, from: Key, to: Key) -> Result<Vec<Change>> {
    let mut d = Differ { registry, elements, out: Vec::new(), seen: std::collections::HashSet::new() };
    d.object(from, to, "root")?;
    Ok(d.out)
}

struct Differ<'a> {
    registry: &'a Registry,
    elements: &'a Elements,
    out: Vec<Change>,
    seen: std::collections::HashSet<(Key, Key)>,
}

impl Differ<'_> {
    fn object(&mut self, a: Key, b: Key, path: &str) -> Result<()> {
        if a == b || !self.seen.insert((a, b)) {
            return Ok(());
        }
        let ea = self.elements.get(&a).ok_or(Error::MissingElement { key: a })?;
        let eb = self.elements.get(&b).ok_or(Error::MissingElement { key: b })?;
        if ea.ty() != eb.ty() {
            self.push(
                path,
                ChangeKind::Modified,
                Some(format!("object {a} of type {}", ea.ty())),
                Some(format!("object {b} of type {}", eb.ty())),
            );
            return Ok(());
        }
        let desc = self.registry.require(ea.ty())?.descriptor.clone();
        let decode = |e: &Element| {
            DynamicMessage::decode(desc.clone(), e.value().as_ref()).map_err(|err| Error::codec("object", err))
        };
        let (ma, mb) = (decode(ea)?, decode(eb)?);
        self.message(&desc, &ma, &mb, path)
    }

    fn push(&mut self, path: &str, kind: ChangeKind, before: Option<String>, after: Option<String>) {
        self.out.push(Change { path: path.to_owned(), kind, before, after });
    }

    fn message(&mut self, desc: &MessageDescriptor, a: &DynamicMessage, b: &DynamicMessage, path: &str) -> Result<()> {
        for field in desc.fields() {
            let (va, vb) = (present(Some(a), &field), present(Some(b), &field));
            if same_opt(&va, &vb) {
                continue;
            }
            let fpath = format!("{path}.{}", field.name());
            match (va, vb) {
                (None, Some(v)) => self.push(&fpath, ChangeKind::Added, None, Some(render(&v))),
                (Some(v), None) => self.push(&fpath, ChangeKind::Removed, Some(render(&v)), None),
                (Some(va), Some(vb)) => {
                    if field.is_list() && !field.is_map() {
                        let (la, lb) = (va.as_list().unwrap_or(&[]), vb.as_list().unwrap_or(&[]));
                        if la.len() == lb.len() {
                            for i in 0..la.len() {
                                self.value(&field.kind(), &la[i], &lb[i], &format!("{fpath}[{i}]"))?;
                            }
                        } else {
                            self.push(&fpath, ChangeKind::Modified, Some(render(&va)), Some(render(&vb)));
                        }
                    } else if field.is_map() {
                        self.push(&fpath, ChangeKind::Modified, Some(render(&va)), Some(render(&vb)));
                    } else {
                        self.value(&field.kind(), &va, &vb, &fpath)?;
                    }
                }
                (None, None) => {}
            }
        }
        Ok(())
    }

    fn value(&mut self, kind: &Kind, a: &Value, b: &Value, path: &str) -> Result<()> {
        if same(a, b) {
            return Ok(());
        }
        match kind {
            Kind::Message(md) if md.full_name() == CASREF_NAME => {
                let (la, lb) = (link_of(a)?, link_of(b)?);
                if la.1 == lb.1 {
                    return self.object(la.0, lb.0, path);
                }
                self.push(path, ChangeKind::Modified, Some(render(a)), Some(render(b)));
            }
            Kind::Message(md) => {
                let (ma, mb) = (a.as_message().expect("message"), b.as_message().expect("message"));
                self.message(md, ma, mb, path)?;
            }
            _ => self.push(path, ChangeKind::Modified, Some(render(a)), Some(render(b))),
        }
        Ok(())
    }
}
