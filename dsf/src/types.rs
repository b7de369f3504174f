//! Type identifiers and the type registry.
//!
//! A DSF type is `(object_id, version)`, read from the message's nested enum
//! `_MessageTypeIdentifier { _ID; _VERSION }`. The registry is built from protobuf descriptors,
//! so user types are added at run time by loading a descriptor set.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use prost_reflect::{DescriptorPool, Kind, MessageDescriptor};

use crate::error::{Error, Result};

/// The full name of ION's link message.
pub const CASREF_NAME: &str = "net.ooici.core.link.CASRef";

/// A type identifier: ION's `GPBType{object_id, version}`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId {
    /// The object id (`_ID`).
    pub object_id: i32,
    /// The version (`_VERSION`); ION accepts only 1.
    pub version: i32,
}

impl TypeId {
    /// `StructureElement` (1): the type of a double-wrapped element.
    pub const STRUCTURE_ELEMENT: TypeId = TypeId::new(1, 1);
    /// `Structure` (2): the message envelope.
    pub const STRUCTURE: TypeId = TypeId::new(2, 1);
    /// `MutableNode` (6): a repository's serialised head.
    pub const MUTABLE_NODE: TypeId = TypeId::new(6, 1);
    /// `CommitRef` (8): a commit.
    pub const COMMIT: TypeId = TypeId::new(8, 1);
    /// `IonMsg` (11): the root of a message repository.
    pub const ION_MSG: TypeId = TypeId::new(11, 1);
    /// `ArrayStructure` (10025): excluded from checkouts by default.
    pub const ARRAY_STRUCTURE: TypeId = TypeId::new(10025, 1);

    /// A type id.
    pub const fn new(object_id: i32, version: i32) -> TypeId {
        TypeId { object_id, version }
    }

    /// The type id of a generated message.
    pub fn of<T: dsf_proto::Identified>() -> TypeId {
        TypeId::new(T::OBJECT_ID, T::VERSION)
    }

    /// The proto2 encoding of `GPBType{object_id, version}`: `08 varint 10 varint`, negative
    /// values sign-extended to ten bytes. Returns the number of bytes written.
    pub fn encode_into(self, buf: &mut [u8; 24]) -> usize {
        let mut n = 0;
        buf[n] = 0x08;
        n += 1;
        n += put_varint(&mut buf[n..], self.object_id as i64 as u64);
        buf[n] = 0x10;
        n += 1;
        n += put_varint(&mut buf[n..], self.version as i64 as u64);
        n
    }

    /// The encoded `GPBType` as a vector.
    pub fn encode(self) -> Vec<u8> {
        let mut buf = [0u8; 24];
        let n = self.encode_into(&mut buf);
        buf[..n].to_vec()
    }
}

fn put_varint(buf: &mut [u8], mut v: u64) -> usize {
    let mut i = 0;
    loop {
        if v < 0x80 {
            buf[i] = v as u8;
            return i + 1;
        }
        buf[i] = (v as u8 & 0x7f) | 0x80;
        v >>= 7;
        i += 1;
    }
}

impl fmt::Display for TypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.object_id, self.version)
    }
}

impl fmt::Debug for TypeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TypeId{self}")
    }
}

/// Where links sit inside a message type: the fields that hold `CASRef`s, directly or inside
/// embedded messages. Computed once per type so that finding an element's children walks the
/// wire bytes without decoding the message.
#[derive(Debug, Default)]
pub(crate) struct LinkPlans {
    plans: Vec<Plan>,
}

#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// Sorted by field number.
    pub(crate) fields: Vec<(u32, Target)>,
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Target {
    /// The field is a `CASRef`.
    Link,
    /// The field is an embedded message that contains links; the index of its plan.
    Nested(usize),
}

impl LinkPlans {
    pub(crate) fn plan(&self, index: usize) -> &Plan {
        &self.plans[index]
    }

    /// Builds the plan of `desc` (and of every message it embeds); returns its index.
    fn build(&mut self, desc: &MessageDescriptor, memo: &mut HashMap<String, usize>) -> usize {
        if let Some(&i) = memo.get(desc.full_name()) {
            return i;
        }
        let index = self.plans.len();
        self.plans.push(Plan::default());
        memo.insert(desc.full_name().to_owned(), index);
        let mut fields = Vec::new();
        for field in desc.fields() {
            if let Kind::Message(inner) = field.kind() {
                if inner.full_name() == CASREF_NAME {
                    fields.push((field.number(), Target::Link));
                } else if !field.is_map() {
                    let nested = self.build(&inner, memo);
                    fields.push((field.number(), Target::Nested(nested)));
                }
            }
        }
        fields.sort_by_key(|(n, _)| *n);
        self.plans[index].fields = fields;
        index
    }

    /// Drops nested targets whose plans can never reach a link (fixpoint, so recursive
    /// message types are handled).
    fn prune(&mut self) {
        let n = self.plans.len();
        let mut reaches = vec![false; n];
        loop {
            let mut changed = false;
            for i in 0..n {
                if reaches[i] {
                    continue;
                }
                let r = self.plans[i].fields.iter().any(|(_, t)| match t {
                    Target::Link => true,
                    Target::Nested(j) => reaches[*j],
                });
                if r {
                    reaches[i] = true;
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        for plan in &mut self.plans {
            plan.fields.retain(|(_, t)| match t {
                Target::Link => true,
                Target::Nested(j) => reaches[*j],
            });
        }
    }
}

/// What the registry knows of one object type.
#[derive(Debug, Clone)]
pub struct TypeInfo {
    /// The type id.
    pub id: TypeId,
    /// The message descriptor, for dynamic access.
    pub descriptor: MessageDescriptor,
    pub(crate) plan: usize,
}

impl TypeInfo {
    /// The protobuf full name of the type.
    pub fn name(&self) -> &str {
        self.descriptor.full_name()
    }
}

/// The registry of object types: type id → descriptor and link plan.
#[derive(Debug, Clone)]
pub struct Registry {
    inner: Arc<RegistryInner>,
}

#[derive(Debug)]
struct RegistryInner {
    pool: DescriptorPool,
    by_id: HashMap<TypeId, TypeInfo>,
    by_name: HashMap<String, TypeId>,
    plans: LinkPlans,
}

impl Registry {
    /// The registry of every type in `dsf-proto`: ION's core, workbench, CDM and test types.
    pub fn builtin() -> Registry {
        Registry::from_descriptor_sets(&[dsf_proto::DESCRIPTOR_SET]).expect("built-in descriptors are valid")
    }

    /// A registry of the built-in types plus the types of an encoded `FileDescriptorSet`
    /// (as written by `protoc --descriptor_set_out --include_imports`).
    pub fn with_descriptor_set(extra: &[u8]) -> Result<Registry> {
        Registry::from_descriptor_sets(&[dsf_proto::DESCRIPTOR_SET, extra])
    }

    /// A registry built from encoded descriptor sets, in order. Two types with the same id are
    /// an error.
    pub fn from_descriptor_sets(sets: &[&[u8]]) -> Result<Registry> {
        let mut pool = DescriptorPool::new();
        for set in sets {
            pool.decode_file_descriptor_set(*set)
                .map_err(|e| Error::Registry(format!("invalid descriptor set: {e}")))?;
        }
        let mut by_id = HashMap::new();
        let mut by_name = HashMap::new();
        let mut plans = LinkPlans::default();
        let mut memo = HashMap::new();
        for desc in pool.all_messages() {
            let Some(id) = declared_type_id(&desc)? else {
                continue;
            };
            let plan = plans.build(&desc, &mut memo);
            if let Some(previous) = by_id.insert(id, TypeInfo { id, descriptor: desc.clone(), plan }) {
                return Err(Error::Registry(format!(
                    "type id {id} is declared by both {} and {}",
                    previous.descriptor.full_name(),
                    desc.full_name()
                )));
            }
            by_name.insert(desc.full_name().to_owned(), id);
        }
        plans.prune();
        Ok(Registry { inner: Arc::new(RegistryInner { pool, by_id, by_name, plans }) })
    }

    /// What the registry knows of `ty`, if anything.
    pub fn get(&self, ty: TypeId) -> Option<&TypeInfo> {
        self.inner.by_id.get(&ty)
    }

    /// What the registry knows of `ty`, or [`Error::UnknownType`].
    pub fn require(&self, ty: TypeId) -> Result<&TypeInfo> {
        self.get(ty).ok_or(Error::UnknownType { ty })
    }

    /// The type id of the message with this full name.
    pub fn by_name(&self, full_name: &str) -> Option<TypeId> {
        self.inner.by_name.get(full_name.trim_start_matches('.')).copied()
    }

    /// Every registered type, ordered by id.
    pub fn types(&self) -> Vec<&TypeInfo> {
        let mut all: Vec<&TypeInfo> = self.inner.by_id.values().collect();
        all.sort_by_key(|t| t.id);
        all
    }

    /// The descriptor pool, for dynamic messages.
    pub fn pool(&self) -> &DescriptorPool {
        &self.inner.pool
    }

    pub(crate) fn plans(&self) -> &LinkPlans {
        &self.inner.plans
    }
}

/// The `(object_id, version)` a message declares, `None` for helper messages without a
/// `_MessageTypeIdentifier` (ION's pseudo id -99: never a link target).
fn declared_type_id(desc: &MessageDescriptor) -> Result<Option<TypeId>> {
    let Some(ident) = desc.child_enums().find(|e| e.name() == "_MessageTypeIdentifier") else {
        return Ok(None);
    };
    let value = |name: &str| {
        ident.get_value_by_name(name).map(|v| v.number()).ok_or_else(|| {
            Error::Registry(format!("{} declares _MessageTypeIdentifier without {name}", desc.full_name()))
        })
    };
    let id = TypeId::new(value("_ID")?, value("_VERSION")?);
    if id.version != 1 {
        return Err(Error::Registry(format!(
            "{} declares version {}; only version 1 is supported",
            desc.full_name(),
            id.version
        )));
    }
    Ok(Some(id))
}
