//! The storage contract: what a persistent store provides, as async traits.
//!
//! A store holds, per deployment:
//! - **blobs**: element key → the encoded element and the encoded keys of its children. Blobs
//!   are immutable; putting one twice is harmless.
//! - **commits**: an [`IndexStore`] (ION's `IIndexStore`): commit key → encoded commit element,
//!   with string-named, bytes-valued index attributes (`repository_key`, `branch_name`, …, spec
//!   §4.1) that queries select on.
//! - **heads**: repository key → an opaque heads record with a version; it changes only by
//!   compare-and-set, and a lost race returns the current record.
//!
//! Row keys are never empty. Backends store bytes: they never compute keys and never decode
//! objects. `dsf` encodes and
//! verifies (see [`persist`]). Every method takes owned arguments and returns a `Send` future,
//! so backends may move work to other threads; traits are used through generics, never `dyn`.

pub mod maint;
pub mod memory;
pub mod persist;
pub mod walk;

use std::collections::BTreeMap;
use std::future::Future;

use bytes::Bytes;

use crate::key::Key;
pub use maint::{Listed, Maintenance, Page};

/// Errors of a store. Not-found is never an error: lookups return `Option`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or failed transiently; the operation may be retried.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The request is invalid for this store (an attribute that is not indexed, a query without
    /// an equality predicate on a non-empty value, an update of `value` through the index).
    #[error("invalid store request: {0}")]
    Invalid(String),
    /// Stored bytes are not what was written.
    #[error("store data is corrupt: {0}")]
    Corrupt(String),
    /// The backend does not offer this capability.
    #[error("not supported by this store: {0}")]
    NotSupported(String),
    /// Any other backend failure.
    #[error("store failure: {0}")]
    Backend(String),
}

/// `Result` with [`StoreError`].
pub type StoreResult<T> = std::result::Result<T, StoreError>;

/// One stored blob: the encoded element (ION's `StructureElement`) and the encoded keys of its
/// children (see [`persist::encode_children`]), both opaque to the backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRow {
    /// The element key (the row key).
    pub key: Key,
    /// The encoded `StructureElement`.
    pub element: Bytes,
    /// The encoded child keys.
    pub children: Bytes,
}

/// Element storage.
pub trait BlobStore: Send + Sync {
    /// Stores blobs (one batch; already present keys are overwritten with equal bytes).
    fn put_blobs(&self, rows: Vec<BlobRow>) -> impl Future<Output = StoreResult<()>> + Send;
    /// The blobs of `keys`, in order; `None` for a key that is absent.
    fn get_blobs(&self, keys: Vec<Key>) -> impl Future<Output = StoreResult<Vec<Option<BlobRow>>>> + Send;
    /// Whether each of `keys` is present, in order.
    fn has_blobs(&self, keys: Vec<Key>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send;
}

/// A heads record with the version compare-and-set checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// Increases by one on every successful compare-and-set; the first record has version 1.
    pub version: u64,
    /// The encoded heads record (opaque to the backend).
    pub record: Bytes,
}

/// The outcome of [`HeadStore::cas_heads`]. A lost race is an outcome, not an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cas {
    /// The record was written with this version.
    Applied(u64),
    /// Another writer got there first; this is the current record (`None`: no record exists).
    Lost(Option<Versioned>),
}

/// Repository heads, changed only by compare-and-set.
pub trait HeadStore: Send + Sync {
    /// The current heads record of a repository.
    fn get_heads(&self, repository: String) -> impl Future<Output = StoreResult<Option<Versioned>>> + Send;
    /// Replaces the record if its version is still `expected` (`None`: if no record exists).
    fn cas_heads(
        &self,
        repository: String,
        expected: Option<u64>,
        record: Bytes,
    ) -> impl Future<Output = StoreResult<Cas>> + Send;
}

/// A row of an [`IndexStore`]: a key, a value, and index attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Row {
    /// The row key.
    pub key: Vec<u8>,
    /// The value; `None` in a batch put means an attribute-only update of an existing row.
    pub value: Option<Bytes>,
    /// Index attributes: name → value (compared bytewise).
    pub attributes: BTreeMap<String, Vec<u8>>,
}

/// One predicate of a query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// The attribute equals the value.
    Eq(String, Vec<u8>),
    /// The attribute is present and bytewise greater than the value (`Gt(name, "")`: present
    /// and non-empty).
    Gt(String, Vec<u8>),
}

/// ION's `IStore`: a key-value store with batch operations.
pub trait KvStore: Send + Sync {
    /// The value of a key.
    fn get(&self, key: Vec<u8>) -> impl Future<Output = StoreResult<Option<Bytes>>> + Send;
    /// Writes a value (overwriting).
    fn put(&self, key: Vec<u8>, value: Bytes) -> impl Future<Output = StoreResult<()>> + Send;
    /// Removes a key; a missing key is fine.
    fn remove(&self, key: Vec<u8>) -> impl Future<Output = StoreResult<()>> + Send;
    /// Whether a key is present.
    fn has_key(&self, key: Vec<u8>) -> impl Future<Output = StoreResult<bool>> + Send;
    /// The values of exactly the requested keys, in order.
    fn batch_get(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<Option<Bytes>>>> + Send;
    /// Writes several values in one batch.
    fn batch_put(&self, rows: Vec<(Vec<u8>, Bytes)>) -> impl Future<Output = StoreResult<()>> + Send;
    /// Whether each requested key is present, in order.
    fn batch_has_key(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send;
}

/// ION's `IIndexStore`: a key-value store whose rows carry indexed attributes.
///
/// An attribute whose name begins with [`STORED_ONLY_PREFIX`] is stored with its row and read
/// back with it ([`IndexStore::get_rows`]) but never indexed: no query can name it, and it
/// costs no index entry (e.g. [`GENERATION`]).
pub trait IndexStore: KvStore {
    /// The indexed attribute names.
    fn indexed_attributes(&self) -> Vec<String>;
    /// Writes a row with its attributes (the whole row is replaced).
    fn put_row(&self, row: Row) -> impl Future<Output = StoreResult<()>> + Send {
        self.batch_put_rows(vec![row])
    }
    /// Writes rows in one batch; a row without a value updates the attributes of an existing
    /// row and leaves its value alone. A batch that fails validation writes nothing.
    fn batch_put_rows(&self, rows: Vec<Row>) -> impl Future<Output = StoreResult<()>> + Send;
    /// Changes attributes of an existing row; `value` is not an attribute.
    fn update_index(
        &self,
        key: Vec<u8>,
        attributes: BTreeMap<String, Vec<u8>>,
    ) -> impl Future<Output = StoreResult<()>> + Send {
        self.batch_put_rows(vec![Row { key, value: None, attributes }])
    }
    /// The rows matching every predicate (at least one [`Predicate::Eq`] with a non-empty
    /// value), with their values and all attributes, ordered by key.
    fn query(&self, predicates: Vec<Predicate>) -> impl Future<Output = StoreResult<Vec<Row>>> + Send;
    /// The rows of exactly the requested keys, in order, with their values and all attributes
    /// (stored-only ones included); `None` for a key that is absent. The default reads the
    /// values alone ([`KvStore::batch_get`]) and reports no attributes; every backend of this
    /// workspace reads the attributes too.
    fn get_rows(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<Option<Row>>>> + Send {
        async move {
            let values = self.batch_get(keys.clone()).await?;
            Ok(keys
                .into_iter()
                .zip(values)
                .map(|(key, value)| value.map(|v| Row { key, value: Some(v), attributes: BTreeMap::new() }))
                .collect())
        }
    }
}

/// What one save of a repository writes: new blobs and commit rows, then the heads record by
/// compare-and-set, then (only if it applied) attribute updates of rows.
#[derive(Debug, Clone, Default)]
pub struct SaveBatch {
    /// New blobs.
    pub blobs: Vec<BlobRow>,
    /// New rows (commits with their attributes), or attribute updates of existing rows.
    pub rows: Vec<Row>,
    /// The repository whose heads move.
    pub repository: String,
    /// The heads version the writer read (`None`: the repository must not exist yet).
    pub expected: Option<u64>,
    /// The new heads record.
    pub record: Bytes,
    /// Rows written only if the compare-and-set applies (e.g. `branch_name` of new heads).
    pub on_applied: Vec<Row>,
}

/// Everything a repository needs from a store: blobs, heads, and the commits index; and, for
/// `fsck` and `gc`, listing, deletion and freshening ([`Maintenance`]).
pub trait Store: BlobStore + HeadStore + IndexStore + Maintenance {
    /// Writes a save: blobs and rows, then the heads by compare-and-set, then, if it applied,
    /// `on_applied`. Blobs and rows are written whether or not the heads move, and never after
    /// them, so heads never reach missing data. The default makes the calls in that order;
    /// a backend that can writes it all as one durable batch.
    fn save(&self, batch: SaveBatch) -> impl Future<Output = StoreResult<Cas>> + Send {
        async move {
            let SaveBatch { blobs, rows, repository, expected, record, on_applied } = batch;
            if !blobs.is_empty() {
                self.put_blobs(blobs).await?;
            }
            if !rows.is_empty() {
                self.batch_put_rows(rows).await?;
            }
            let cas = self.cas_heads(repository, expected, record).await?;
            if matches!(cas, Cas::Applied(_)) && !on_applied.is_empty() {
                self.batch_put_rows(on_applied).await?;
            }
            Ok(cas)
        }
    }
}

/// The index attributes of the commits table (spec §4.1), all indexed.
pub const COMMIT_ATTRIBUTES: [&str; 14] = [
    "repository_key",
    "branch_name",
    "subject_key",
    "subject_branch",
    "subject_commit",
    "predicate_key",
    "predicate_branch",
    "predicate_commit",
    "object_key",
    "object_branch",
    "object_commit",
    "resource_object_type",
    "resource_life_cycle_state",
    "keyword",
];

/// Attributes whose names begin with this are stored with their row but never indexed.
pub const STORED_ONLY_PREFIX: &str = "_";

/// The stored-only attribute of a commit row that holds the commit's generation: 1 for a commit
/// without parents, else 1 + the largest generation of its parents, in decimal ASCII. Rows
/// written before generations were kept have none.
pub const GENERATION: &str = "_generation";

/// True if an attribute of this name is stored but never indexed (see [`STORED_ONLY_PREFIX`]).
pub fn is_stored_only(name: &str) -> bool {
    name.starts_with(STORED_ONLY_PREFIX)
}

/// Checks the rules every [`IndexStore`] enforces on written attributes, so backends share one
/// definition: every attribute name is indexed or stored-only, and none is `value`.
pub fn check_attributes<'a>(indexed: &[String], names: impl IntoIterator<Item = &'a String>) -> StoreResult<()> {
    let bad: Vec<&String> =
        names.into_iter().filter(|n| n.as_str() == "value" || (!indexed.contains(n) && !is_stored_only(n))).collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "these attributes are not indexed: {}",
            bad.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )))
    }
}

/// Checks that a query has at least one equality predicate with a non-empty value (the one a
/// backend may look rows up by: empty values need not be indexed, so no partition of a
/// distributed index is keyed by the empty value).
pub fn check_query(predicates: &[Predicate]) -> StoreResult<()> {
    if predicates.iter().any(|p| matches!(p, Predicate::Eq(_, v) if !v.is_empty())) {
        Ok(())
    } else {
        Err(StoreError::Invalid("a query needs at least one equality predicate with a non-empty value".into()))
    }
}

/// Checks a query before it runs: at least one equality, and only indexed attributes.
pub fn check_predicates(indexed: &[String], predicates: &[Predicate]) -> StoreResult<()> {
    check_query(predicates)?;
    let bad: Vec<&str> =
        predicates.iter().map(|p| p.attribute()).filter(|n| *n == "value" || !indexed.iter().any(|i| i == n)).collect();
    if bad.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!("these attributes are not indexed: {}", bad.join(", "))))
    }
}

impl Predicate {
    /// The attribute the predicate tests.
    pub fn attribute(&self) -> &str {
        match self {
            Predicate::Eq(name, _) | Predicate::Gt(name, _) => name,
        }
    }
}

/// True if a row's attributes satisfy every predicate (the reference semantics of a query).
pub fn matches(attributes: &BTreeMap<String, Vec<u8>>, predicates: &[Predicate]) -> bool {
    predicates.iter().all(|p| match p {
        Predicate::Eq(name, v) => attributes.get(name) == Some(v),
        Predicate::Gt(name, v) => attributes.get(name).is_some_and(|a| a.as_slice() > v.as_slice()),
    })
}
