//! DSF: content-addressed, versioned graphs of protobuf objects.
//!
//! This crate owns the object model and the repository: keys and hashing ([`key`]), the type
//! registry ([`types`]), elements ([`element`]), the workspace, commit, branches, checkout,
//! history ([`repository`]), field-level merge and diff ([`merge`]) and the `Structure`
//! envelope ([`structure`]).
//!
//! It must not know tokio, AMQP, gRPC, RocksDB or Cassandra: everything here is synchronous and
//! runtime-free. Generated wire types appear in its API only as object content (messages that
//! implement [`dsf_proto::Identified`], and the `CASRef` a link field holds).

pub mod commit;
pub mod element;
pub mod elements;
pub mod error;
pub mod json;
pub mod key;
pub mod merge;
pub mod repository;
pub mod store;
pub mod structure;
pub mod sync;
pub mod types;
mod wire;
mod workspace;

pub use commit::{Commit, ObjectRef, Parent, Relationship};
pub use element::Element;
pub use elements::Elements;
pub use error::{Error, Result};
pub use key::{HashAlgorithm, Key};
pub use merge::{Change, ChangeKind, Conflict, MergePolicy, Side};
pub use repository::{Branch, Checkout, Current, MASTER as MASTER_BRANCH, MergeOutcome, Repository, Status};
pub use types::{Registry, TypeId, TypeInfo};
pub use workspace::ObjectId;

/// Re-exported so users need not depend on `dsf-proto` and `prost-reflect` directly.
pub use dsf_proto as proto;
pub use prost_reflect;
