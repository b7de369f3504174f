//! Commits: the domain type and its `CommitRef` encoding.

use dsf_proto::net::ooici::core::link::CasRef;
use dsf_proto::net::ooici::core::mutable::{CommitRef, ParentRef, parent_ref};
use dsf_proto::net::ooici::core::r#type::GpbType;
use prost::Message as _;

use crate::element::Element;
use crate::error::{Error, Result};
use crate::key::{HashAlgorithm, Key};
use crate::types::{Registry, TypeId};

/// How a commit relates to one of its parents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relationship {
    /// The previous state of the same branch (first parent).
    Parent,
    /// A state merged into this one.
    MergedFrom,
}

/// One parent of a commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Parent {
    /// How the parent relates.
    pub relationship: Relationship,
    /// The parent commit.
    pub commit: Key,
}

/// The object a commit points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectRef {
    /// Its key.
    pub key: Key,
    /// Its type.
    pub ty: TypeId,
    /// True if it links to nothing.
    pub isleaf: bool,
}

/// A commit: ION's `CommitRef` (type 8), decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    /// The commit's own key.
    pub key: Key,
    /// The message.
    pub comment: String,
    /// Seconds since the Unix epoch.
    pub date: f64,
    /// PARENT first, then MERGEDFROM parents, in order.
    pub parents: Vec<Parent>,
    /// The root object of the committed graph.
    pub root: Option<ObjectRef>,
    /// Set on a repository's first commits: the repository key.
    pub root_seed: Option<String>,
}

impl Commit {
    /// The first PARENT, if any.
    pub fn first_parent(&self) -> Option<Key> {
        self.parents.iter().find(|p| p.relationship == Relationship::Parent).map(|p| p.commit)
    }

    /// Every parent key in order.
    pub fn parent_keys(&self) -> impl Iterator<Item = Key> + '_ {
        self.parents.iter().map(|p| p.commit)
    }

    /// Decodes a commit element.
    pub fn from_element(element: &Element) -> Result<Commit> {
        if element.ty() != TypeId::COMMIT {
            return Err(Error::codec(
                "commit",
                format!("element {} has type {}, not a commit", element.key(), element.ty()),
            ));
        }
        let raw = CommitRef::decode(element.value().as_ref()).map_err(|e| Error::codec("commit", e))?;
        let key_of =
            |c: &CasRef| Key::from_slice(&c.key).ok_or_else(|| Error::codec("commit", "a link key has 20 or 32 bytes"));
        let mut parents = Vec::with_capacity(raw.parentrefs.len());
        for p in &raw.parentrefs {
            let relationship = match parent_ref::Relationship::try_from(p.relationship) {
                Ok(parent_ref::Relationship::Parent) => Relationship::Parent,
                Ok(parent_ref::Relationship::Mergedfrom) => Relationship::MergedFrom,
                Err(_) => {
                    return Err(Error::codec("commit", format!("unknown relationship {}", p.relationship)));
                }
            };
            parents.push(Parent { relationship, commit: key_of(&p.commitref)? });
        }
        let root = match &raw.objectroot {
            Some(r) => Some(ObjectRef {
                key: key_of(r)?,
                ty: TypeId::new(r.r#type.object_id, r.r#type.version),
                isleaf: r.isleaf,
            }),
            None => None,
        };
        Ok(Commit {
            key: element.key(),
            comment: raw.comment.unwrap_or_default(),
            date: raw.date.unwrap_or_default(),
            parents,
            root,
            root_seed: raw.root_seed,
        })
    }

    /// Encodes and hashes a new commit; returns the element (whose key is the commit key).
    pub(crate) fn build(
        alg: HashAlgorithm,
        registry: &Registry,
        comment: &str,
        date: f64,
        parents: &[Parent],
        root: Option<ObjectRef>,
        root_seed: Option<&str>,
    ) -> Result<Element> {
        let commit_type = GpbType { object_id: TypeId::COMMIT.object_id, version: TypeId::COMMIT.version };
        let raw = CommitRef {
            comment: Some(comment.to_owned()),
            date: Some(date),
            parentrefs: parents
                .iter()
                .map(|p| ParentRef {
                    relationship: match p.relationship {
                        Relationship::Parent => parent_ref::Relationship::Parent as i32,
                        Relationship::MergedFrom => parent_ref::Relationship::Mergedfrom as i32,
                    },
                    commitref: CasRef { key: p.commit.as_bytes().to_vec(), r#type: commit_type, isleaf: false },
                })
                .collect(),
            objectroot: root.map(|r| CasRef {
                key: r.key.as_bytes().to_vec(),
                r#type: GpbType { object_id: r.ty.object_id, version: r.ty.version },
                isleaf: r.isleaf,
            }),
            root_seed: root_seed.map(str::to_owned),
        };
        let value = raw.encode_to_vec();
        let children = crate::element::child_keys(registry, TypeId::COMMIT, &value)?;
        Ok(Element::new(alg, TypeId::COMMIT, value, children))
    }
}
