//! The errors of the `dsf` crate.

use crate::key::Key;
use crate::types::TypeId;

/// Everything that can go wrong in `dsf`. Corruption, not-found, conflict and invalid use are
/// distinct variants a caller can match on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that claim to be an element do not hash to their key.
    #[error("element {key} is corrupt: its key does not match its value")]
    Corrupt {
        /// The key the element claimed.
        key: Key,
    },
    /// Bytes from outside could not be decoded.
    #[error("could not decode {what}: {reason}")]
    Codec {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
    /// An element is not in the repository.
    #[error("element {key} is not in the repository")]
    MissingElement {
        /// The missing key.
        key: Key,
    },
    /// A type id that the registry does not know.
    #[error("unknown type {ty}: register it from a descriptor set first")]
    UnknownType {
        /// The type.
        ty: TypeId,
    },
    /// A problem with the type registry or a descriptor set.
    #[error("type registry: {0}")]
    Registry(String),
    /// A branch name or key that the repository does not have.
    #[error("branch {name:?} does not exist")]
    UnknownBranch {
        /// The name or key asked for.
        name: String,
    },
    /// A commit that is not in the history being searched.
    #[error("commit {key} is not in the history of branch {branch:?}")]
    UnknownCommit {
        /// The commit asked for.
        key: Key,
        /// The branch whose history was searched.
        branch: String,
    },
    /// An object handle from an earlier checkout, or one that never existed.
    #[error("object handle {0} is invalid: the workspace was checked out or cleared since")]
    InvalidHandle(String),
    /// A mutation of a read-only object (a detached checkout, a merge state, a view).
    #[error("object {0} is read only (detached head or view); check out a branch to edit")]
    ReadOnly(String),
    /// Linking an object into its own subgraph.
    #[error("linking {child} under {parent} would make a cycle: the object graph must stay acyclic")]
    Cycle {
        /// The object that would get the link.
        parent: String,
        /// The object the link would point at.
        child: String,
    },
    /// A link whose target is neither in the workspace nor in the repository.
    #[error("link to {0} points at nothing in this repository")]
    DanglingLink(String),
    /// A treeish that does not resolve.
    #[error("could not resolve treeish {treeish:?}: {reason}")]
    Treeish {
        /// The treeish.
        treeish: String,
        /// Why it did not resolve.
        reason: String,
    },
    /// A repository operation that is not allowed in the current state.
    #[error("{0}")]
    State(String),
    /// A merge that cannot proceed.
    #[error("merge: {0}")]
    Merge(String),
    /// A working-copy document (the JSON form of a graph) that does not describe objects.
    #[error("{path}: {reason}")]
    Document {
        /// Where in the document, e.g. `root.person[1].email`.
        path: String,
        /// What is wrong there.
        reason: String,
    },
    /// A store failed.
    #[error(transparent)]
    Store(crate::store::StoreError),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn codec(what: &'static str, reason: impl ToString) -> Error {
        Error::Codec { what, reason: reason.to_string() }
    }

    pub(crate) fn state(msg: impl Into<String>) -> Error {
        Error::State(msg.into())
    }
}
