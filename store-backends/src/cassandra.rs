//! The Apache Cassandra store: blobs, heads and the commits index in one keyspace, through the
//! `scylla` driver, for clusters of datastore processes that share one Cassandra cluster.
//!
//! # Schema
//!
//! [`CassandraStore::connect`] creates the keyspace and its tables if they are absent (and waits
//! for schema agreement); it never alters existing ones.
//!
//! ```text
//! blobs     (key blob PRIMARY KEY, element blob, children blob)
//! heads     (repository text PRIMARY KEY, version bigint, record blob)
//! rows      (key blob PRIMARY KEY, value blob, attributes map<text, blob>)
//! row_index (name text, value blob, key blob, PRIMARY KEY ((name, value), key))
//! ```
//!
//! - `blobs` spreads elements over the cluster by key. Blobs are immutable, so writes are plain
//!   idempotent inserts.
//! - `heads` holds one row per repository, changed only by lightweight transactions:
//!   `INSERT … IF NOT EXISTS` when no record is expected, `UPDATE … IF version = ?` otherwise.
//!   A lost transaction returns the current record (from the transaction's result row, or read
//!   again at `SERIAL`).
//! - `rows` is ION's `IIndexStore`: a value and its attributes. A row exists when its `value` is
//!   not null; a row holding attributes only (an attribute update that raced a removal) is
//!   treated as absent.
//! - `row_index` is a query table: one entry per `(attribute, value, row key)`. A query reads the
//!   keys of its first equality predicate from one `row_index` partition, reads those rows, and
//!   keeps the ones [`dsf::store::matches`] accepts, so the semantics are the memory store's.
//!   The index may hold stale entries (they are filtered out) but never misses a live one: a
//!   write inserts the new entries first, then writes the row, then deletes the entries its old
//!   attributes no longer justify (read before the write). Every statement of one row write
//!   carries the same client timestamp, from a clock that is monotonic within the process, so
//!   concurrent writers of one row settle on the same winner in `rows` and in `row_index`
//!   (across processes, the latest clock wins, as everywhere in Cassandra).
//! - Cassandra refuses an empty partition key, so a row key must not be empty: writing one is
//!   [`StoreError::Invalid`], and reading one finds nothing.
//!
//! # Consistency
//!
//! Reads and writes run at `LOCAL_QUORUM`; heads are read at `SERIAL` and changed by
//! lightweight transactions with `SERIAL` as their serial consistency, so a head read sees every
//! completed compare-and-set in any data centre. Single-node test clusters satisfy all of these
//! with replication factor 1. With several data centres, a head read in one may name blobs that
//! `LOCAL_QUORUM` has not yet brought there from another; readers then retry, or the cluster is
//! run with every datastore process in one data centre.
//!
//! # Concurrency
//!
//! Batch operations never use CQL `BATCH` (Cassandra refuses batches above 50 KiB): they run
//! prepared statements concurrently, at most `max_concurrency` in flight, and return results in
//! request order. All statements are prepared once, in [`CassandraStore::connect`]. Non-LWT
//! statements are marked idempotent so the driver may retry them.
//!
//! The store's futures need a tokio runtime.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use dsf::key::Key;
use dsf::store::{
    BlobRow, BlobStore, COMMIT_ATTRIBUTES, Cas, HeadStore, IndexStore, KvStore, Predicate, Row, Store, StoreError,
    StoreResult, Versioned, check_attributes, check_predicates, matches,
};
use futures::{StreamExt, TryStreamExt, stream};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::errors::{
    DbError, ExecutionError, IntoRowsResultError, MaybeFirstRowError, NextRowError, PagerExecutionError,
    RequestAttemptError, RequestError, SchemaAgreementError, WriteType,
};
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};
use scylla::value::CqlValue;

/// The environment variable that names the Cassandra node of [`CassandraConfig::local`], as
/// `host:port`.
pub const CASSANDRA_ENV: &str = "DSF_CASSANDRA";

/// The node [`CassandraConfig::local`] uses when [`CASSANDRA_ENV`] is not set.
pub const LOCAL_NODE: &str = "127.0.0.1:9042";

/// The longest keyspace name Cassandra accepts.
const MAX_KEYSPACE_LEN: usize = 48;

/// How a new keyspace is replicated. An existing keyspace keeps its replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replication {
    /// `SimpleStrategy` with this replication factor (single data centre, tests).
    Simple {
        /// The number of replicas.
        factor: u32,
    },
    /// `NetworkTopologyStrategy`: data-centre name → replication factor.
    NetworkTopology(BTreeMap<String, u32>),
}

impl Default for Replication {
    fn default() -> Self {
        Replication::Simple { factor: 1 }
    }
}

impl Replication {
    /// The CQL map literal of this replication.
    fn cql(&self) -> StoreResult<String> {
        match self {
            Replication::Simple { factor } => {
                Ok(format!("{{'class': 'SimpleStrategy', 'replication_factor': {}}}", positive(*factor)?))
            }
            Replication::NetworkTopology(dcs) => {
                if dcs.is_empty() {
                    return Err(StoreError::Invalid("network topology replication names no data centre".into()));
                }
                let mut out = String::from("{'class': 'NetworkTopologyStrategy'");
                for (dc, factor) in dcs {
                    out.push_str(&format!(", '{}': {}", dc.replace('\'', "''"), positive(*factor)?));
                }
                out.push('}');
                Ok(out)
            }
        }
    }
}

fn positive(factor: u32) -> StoreResult<u32> {
    if factor == 0 { Err(StoreError::Invalid("a replication factor must be at least 1".into())) } else { Ok(factor) }
}

/// How to reach Cassandra and which keyspace to use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CassandraConfig {
    /// Contact points, `host:port` (default `127.0.0.1:9042`).
    pub contact_points: Vec<String>,
    /// The keyspace: letters, digits and `_`, starting with a letter, at most 48 characters.
    /// It is always quoted, so its case is kept.
    pub keyspace: String,
    /// The replication of the keyspace when it is created (default `SimpleStrategy`, factor 1).
    pub replication: Replication,
    /// The most statements one operation keeps in flight (default 64).
    pub max_concurrency: usize,
    /// The attribute names rows may carry (default [`COMMIT_ATTRIBUTES`]).
    pub indexed_attributes: Vec<String>,
    /// How long one statement may take, retries included (default 30 s).
    pub request_timeout: Duration,
}

impl CassandraConfig {
    /// A configuration with defaults for everything but the keyspace.
    pub fn new(keyspace: impl Into<String>) -> CassandraConfig {
        CassandraConfig {
            contact_points: vec![LOCAL_NODE.to_string()],
            keyspace: keyspace.into(),
            replication: Replication::default(),
            max_concurrency: 64,
            indexed_attributes: COMMIT_ATTRIBUTES.iter().map(|s| s.to_string()).collect(),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// The configuration for a local test node: the node named by `$DSF_CASSANDRA`
    /// (`host:port`), or `127.0.0.1:9042`, and defaults for everything else.
    pub fn local(keyspace: impl Into<String>) -> CassandraConfig {
        let mut config = CassandraConfig::new(keyspace);
        if let Ok(node) = std::env::var(CASSANDRA_ENV)
            && !node.trim().is_empty()
        {
            config.contact_points = vec![node.trim().to_string()];
        }
        config
    }
}

/// Checks that `name` is a keyspace name Cassandra accepts.
fn check_keyspace(name: &str) -> StoreResult<()> {
    let mut chars = name.chars();
    let legal = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= MAX_KEYSPACE_LEN;
    if legal {
        Ok(())
    } else {
        Err(StoreError::Invalid(format!(
            "illegal keyspace name {name:?}: use letters, digits and '_', starting with a letter, \
             at most {MAX_KEYSPACE_LEN} characters"
        )))
    }
}

/// The prepared statements, prepared once at connect.
#[derive(Debug)]
struct Statements {
    insert_blob: PreparedStatement,
    select_blob: PreparedStatement,
    has_blob: PreparedStatement,
    select_heads: PreparedStatement,
    insert_heads: PreparedStatement,
    update_heads: PreparedStatement,
    select_row: PreparedStatement,
    select_value: PreparedStatement,
    insert_row: PreparedStatement,
    merge_attributes: PreparedStatement,
    delete_row: PreparedStatement,
    insert_index: PreparedStatement,
    delete_index: PreparedStatement,
    select_index: PreparedStatement,
}

/// Write timestamps in microseconds since the epoch, strictly increasing within the process.
#[derive(Debug, Default)]
struct Clock(AtomicI64);

impl Clock {
    fn next(&self) -> i64 {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64);
        let step = |last: i64| now.max(last + 1);
        match self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| Some(step(last))) {
            Ok(last) | Err(last) => step(last),
        }
    }
}

/// A store in a Cassandra keyspace. See the [module documentation](self) for its schema.
pub struct CassandraStore {
    session: Session,
    keyspace: String,
    indexed: Vec<String>,
    max_concurrency: usize,
    statements: Statements,
    clock: Clock,
}

impl fmt::Debug for CassandraStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CassandraStore")
            .field("keyspace", &self.keyspace)
            .field("indexed", &self.indexed)
            .field("max_concurrency", &self.max_concurrency)
            .finish_non_exhaustive()
    }
}

/// A stored index row as read: the value (`None`: the row does not exist) and its attributes.
#[derive(Debug, Default)]
struct StoredRow {
    value: Option<Bytes>,
    attributes: BTreeMap<String, Vec<u8>>,
}

/// What a batch does to one row key, after folding every request for that key in order.
#[derive(Debug)]
enum Change {
    /// The row becomes this value and these attributes.
    Replace { value: Bytes, attributes: BTreeMap<String, Vec<u8>> },
    /// These attributes are set on the existing row.
    Merge(BTreeMap<String, Vec<u8>>),
}

/// The folded change of one key; `needs_row`: its first request was an attribute-only update,
/// which requires the row to exist.
#[derive(Debug)]
struct KeyChange {
    key: Vec<u8>,
    change: Change,
    needs_row: bool,
}

/// One write statement of the rows tables.
#[derive(Debug)]
enum Write {
    IndexInsert { name: String, value: Vec<u8>, key: Vec<u8>, ts: i64 },
    IndexDelete { name: String, value: Vec<u8>, key: Vec<u8>, ts: i64 },
    RowInsert { key: Vec<u8>, value: Bytes, attributes: BTreeMap<String, Vec<u8>>, ts: i64 },
    RowMerge { key: Vec<u8>, attributes: BTreeMap<String, Vec<u8>>, ts: i64 },
    RowDelete { key: Vec<u8>, ts: i64 },
}

/// The writes of one batch, in the order that keeps `row_index` complete.
#[derive(Debug, Default)]
struct Plan {
    index_inserts: Vec<Write>,
    rows: Vec<Write>,
    index_deletes: Vec<Write>,
}

impl CassandraStore {
    /// Connects, creates the keyspace and tables if absent, waits for schema agreement, and
    /// prepares every statement.
    pub async fn connect(config: CassandraConfig) -> StoreResult<CassandraStore> {
        check_keyspace(&config.keyspace)?;
        let replication = config.replication.cql()?;
        if config.max_concurrency == 0 {
            return Err(StoreError::Invalid("max_concurrency must be at least 1".into()));
        }
        if config.contact_points.is_empty() {
            return Err(StoreError::Invalid("no Cassandra contact point configured".into()));
        }
        let profile = ExecutionProfile::builder()
            .consistency(Consistency::LocalQuorum)
            .serial_consistency(Some(SerialConsistency::Serial))
            .request_timeout(Some(config.request_timeout))
            .build();
        let session = SessionBuilder::new()
            .known_nodes(&config.contact_points)
            .default_execution_profile_handle(profile.into_handle())
            .build()
            .await
            .map_err(|e| {
                StoreError::Unavailable(format!(
                    "cannot connect to Cassandra at {}: {e}",
                    config.contact_points.join(", ")
                ))
            })?;

        let ks = format!("\"{}\"", config.keyspace);
        let ddl = [
            format!("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {replication}"),
            format!("CREATE TABLE IF NOT EXISTS {ks}.blobs (key blob PRIMARY KEY, element blob, children blob)"),
            format!("CREATE TABLE IF NOT EXISTS {ks}.heads (repository text PRIMARY KEY, version bigint, record blob)"),
            format!(
                "CREATE TABLE IF NOT EXISTS {ks}.rows (key blob PRIMARY KEY, value blob, attributes map<text, blob>)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {ks}.row_index \
                 (name text, value blob, key blob, PRIMARY KEY ((name, value), key))"
            ),
        ];
        for statement in ddl {
            session.query_unpaged(statement, ()).await.map_err(execution_error)?;
        }
        session.await_schema_agreement().await.map_err(schema_error)?;

        let prepare = async |cql: String, idempotent: bool, consistency: Option<Consistency>| {
            let mut prepared = session.prepare(cql).await.map_err(|e| execution_error(e.into()))?;
            prepared.set_is_idempotent(idempotent);
            if let Some(c) = consistency {
                prepared.set_consistency(c);
            }
            StoreResult::Ok(prepared)
        };
        let statements = Statements {
            insert_blob: prepare(
                format!("INSERT INTO {ks}.blobs (key, element, children) VALUES (?, ?, ?)"),
                true,
                None,
            )
            .await?,
            select_blob: prepare(format!("SELECT element, children FROM {ks}.blobs WHERE key = ?"), true, None).await?,
            has_blob: prepare(format!("SELECT key FROM {ks}.blobs WHERE key = ?"), true, None).await?,
            select_heads: prepare(
                format!("SELECT version, record FROM {ks}.heads WHERE repository = ?"),
                true,
                Some(Consistency::Serial),
            )
            .await?,
            insert_heads: prepare(
                format!("INSERT INTO {ks}.heads (repository, version, record) VALUES (?, 1, ?) IF NOT EXISTS"),
                false,
                None,
            )
            .await?,
            update_heads: prepare(
                format!("UPDATE {ks}.heads SET version = ?, record = ? WHERE repository = ? IF version = ?"),
                false,
                None,
            )
            .await?,
            select_row: prepare(format!("SELECT value, attributes FROM {ks}.rows WHERE key = ?"), true, None).await?,
            select_value: prepare(format!("SELECT value FROM {ks}.rows WHERE key = ?"), true, None).await?,
            insert_row: prepare(
                format!("INSERT INTO {ks}.rows (key, value, attributes) VALUES (?, ?, ?) USING TIMESTAMP ?"),
                true,
                None,
            )
            .await?,
            merge_attributes: prepare(
                format!("UPDATE {ks}.rows USING TIMESTAMP ? SET attributes = attributes + ? WHERE key = ?"),
                true,
                None,
            )
            .await?,
            delete_row: prepare(format!("DELETE FROM {ks}.rows USING TIMESTAMP ? WHERE key = ?"), true, None).await?,
            insert_index: prepare(
                format!("INSERT INTO {ks}.row_index (name, value, key) VALUES (?, ?, ?) USING TIMESTAMP ?"),
                true,
                None,
            )
            .await?,
            delete_index: prepare(
                format!("DELETE FROM {ks}.row_index USING TIMESTAMP ? WHERE name = ? AND value = ? AND key = ?"),
                true,
                None,
            )
            .await?,
            select_index: prepare(format!("SELECT key FROM {ks}.row_index WHERE name = ? AND value = ?"), true, None)
                .await?,
        };
        Ok(CassandraStore {
            session,
            keyspace: config.keyspace,
            indexed: config.indexed_attributes,
            max_concurrency: config.max_concurrency,
            statements,
            clock: Clock::default(),
        })
    }

    /// The keyspace this store uses.
    pub fn keyspace(&self) -> &str {
        &self.keyspace
    }

    /// The driver session (for the maintenance statements of `cassandra_maint`).
    pub(crate) fn session(&self) -> &Session {
        &self.session
    }

    /// The most statements one operation keeps in flight.
    pub(crate) fn max_concurrency(&self) -> usize {
        self.max_concurrency
    }

    /// Drops the keyspace and everything in it (for tests). The store is unusable afterwards.
    pub async fn drop_keyspace(&self) -> StoreResult<()> {
        self.session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS \"{}\"", self.keyspace), ())
            .await
            .map_err(execution_error)?;
        self.session.await_schema_agreement().await.map_err(schema_error)?;
        Ok(())
    }

    /// Runs one prepared statement.
    async fn execute(&self, statement: &PreparedStatement, values: impl SerializeRow) -> StoreResult<QueryResult> {
        self.session.execute_unpaged(statement, values).await.map_err(execution_error)
    }

    /// Runs a prepared statement that returns at most one row of type `R`.
    async fn execute_one<R>(&self, statement: &PreparedStatement, values: impl SerializeRow) -> StoreResult<Option<R>>
    where
        R: for<'f, 'm> scylla::deserialize::row::DeserializeRow<'f, 'm>,
    {
        let rows = self.execute(statement, values).await?.into_rows_result().map_err(rows_error)?;
        rows.maybe_first_row::<R>().map_err(first_row_error)
    }

    /// Runs `f` on every item, at most `max_concurrency` at once, results in input order.
    async fn each<I, T, F, Fut>(&self, items: Vec<I>, f: F) -> StoreResult<Vec<T>>
    where
        F: Fn(I) -> Fut,
        Fut: Future<Output = StoreResult<T>>,
    {
        stream::iter(items).map(f).buffered(self.max_concurrency).try_collect().await
    }

    /// Runs writes, at most `max_concurrency` at once.
    async fn run(&self, writes: Vec<Write>) -> StoreResult<()> {
        stream::iter(writes)
            .map(|w| self.write(w))
            .buffer_unordered(self.max_concurrency)
            .try_for_each(|()| async { Ok(()) })
            .await
    }

    async fn write(&self, write: Write) -> StoreResult<()> {
        let s = &self.statements;
        match write {
            Write::IndexInsert { name, value, key, ts } => self.execute(&s.insert_index, (name, value, key, ts)).await,
            Write::IndexDelete { name, value, key, ts } => self.execute(&s.delete_index, (ts, name, value, key)).await,
            Write::RowInsert { key, value, attributes, ts } => {
                self.execute(&s.insert_row, (key, value, attributes, ts)).await
            }
            Write::RowMerge { key, attributes, ts } => self.execute(&s.merge_attributes, (ts, attributes, key)).await,
            Write::RowDelete { key, ts } => self.execute(&s.delete_row, (ts, key)).await,
        }
        .map(drop)
    }

    /// Reads a row's value and attributes (both empty if there is no such row).
    async fn read_row(&self, key: Vec<u8>) -> StoreResult<StoredRow> {
        if key.is_empty() {
            return Ok(StoredRow::default());
        }
        type Columns = (Option<Bytes>, Option<BTreeMap<String, Vec<u8>>>);
        let row = self.execute_one::<Columns>(&self.statements.select_row, (key,)).await?;
        Ok(row
            .map(|(value, attributes)| StoredRow { value, attributes: attributes.unwrap_or_default() })
            .unwrap_or_default())
    }

    /// Reads a row's value.
    async fn read_value(&self, key: Vec<u8>) -> StoreResult<Option<Bytes>> {
        if key.is_empty() {
            return Ok(None);
        }
        Ok(self.execute_one::<(Option<Bytes>,)>(&self.statements.select_value, (key,)).await?.and_then(|(v,)| v))
    }

    /// Applies row requests in order, with the semantics of the memory store, except that a
    /// failed attribute-only update fails the whole batch before anything is written.
    async fn write_rows(&self, rows: Vec<Row>) -> StoreResult<()> {
        if rows.iter().any(|r| r.key.is_empty()) {
            return Err(StoreError::Invalid("Cassandra cannot store a row with an empty key".into()));
        }
        let changes = fold(rows);
        let keys = changes.iter().map(|c| c.key.clone()).collect();
        let old = self.each(keys, |k| self.read_row(k)).await?;
        if let Some((c, _)) = changes.iter().zip(&old).find(|(c, o)| c.needs_row && o.value.is_none()) {
            return Err(StoreError::Invalid(format!(
                "attribute-only update of a row that does not exist: {}",
                hex(&c.key)
            )));
        }
        let mut plan = Plan::default();
        for (c, o) in changes.into_iter().zip(old) {
            plan.add(c, o.attributes, self.clock.next());
        }
        self.run(plan.index_inserts).await?;
        self.run(plan.rows).await?;
        self.run(plan.index_deletes).await
    }

    async fn read_heads(&self, repository: String) -> StoreResult<Option<Versioned>> {
        let row =
            self.execute_one::<(Option<i64>, Option<Bytes>)>(&self.statements.select_heads, (repository,)).await?;
        match row {
            None => Ok(None),
            Some((Some(version), Some(record))) => Ok(Some(Versioned { version: version_from_cql(version)?, record })),
            Some(_) => Err(StoreError::Corrupt("a heads row without version or record".into())),
        }
    }
}

impl Plan {
    /// Adds the writes of one key's change, given the row's attributes before it.
    fn add(&mut self, change: KeyChange, old: BTreeMap<String, Vec<u8>>, ts: i64) {
        let key = change.key;
        let (new, row) = match change.change {
            Change::Replace { value, attributes } => {
                let stale = old.into_iter().filter(|(n, v)| attributes.get(n) != Some(v));
                let new = attributes.clone();
                self.delete_entries(&key, stale, ts);
                (new, Write::RowInsert { key: key.clone(), value, attributes, ts })
            }
            Change::Merge(attributes) => {
                if attributes.is_empty() {
                    return;
                }
                let stale = old.into_iter().filter(|(n, v)| attributes.get(n).is_some_and(|a| a != v));
                self.delete_entries(&key, stale, ts);
                (attributes.clone(), Write::RowMerge { key: key.clone(), attributes, ts })
            }
        };
        self.rows.push(row);
        for (name, value) in new {
            self.index_inserts.push(Write::IndexInsert { name, value, key: key.clone(), ts });
        }
    }

    fn delete_entries(&mut self, key: &[u8], entries: impl Iterator<Item = (String, Vec<u8>)>, ts: i64) {
        for (name, value) in entries {
            self.index_deletes.push(Write::IndexDelete { name, value, key: key.to_vec(), ts });
        }
    }
}

/// Folds row requests into one change per key, keys in order of first appearance.
fn fold(rows: Vec<Row>) -> Vec<KeyChange> {
    let mut changes: Vec<KeyChange> = Vec::new();
    let mut at: HashMap<Vec<u8>, usize> = HashMap::new();
    for row in rows {
        match at.get(&row.key) {
            None => {
                at.insert(row.key.clone(), changes.len());
                let needs_row = row.value.is_none();
                let change = match row.value {
                    Some(value) => Change::Replace { value, attributes: row.attributes },
                    None => Change::Merge(row.attributes),
                };
                changes.push(KeyChange { key: row.key, change, needs_row });
            }
            Some(&i) => {
                let c = &mut changes[i].change;
                match (row.value, c) {
                    (Some(value), c) => *c = Change::Replace { value, attributes: row.attributes },
                    (None, Change::Replace { attributes, .. } | Change::Merge(attributes)) => {
                        attributes.extend(row.attributes)
                    }
                }
            }
        }
    }
    changes
}

/// Saves through the provided calls: Cassandra has no multi-table atomic batch with a
/// lightweight transaction.
impl Store for CassandraStore {}

impl BlobStore for CassandraStore {
    async fn put_blobs(&self, rows: Vec<BlobRow>) -> StoreResult<()> {
        self.each(rows, |r| async move {
            self.execute(&self.statements.insert_blob, (r.key.as_bytes(), r.element, r.children)).await.map(drop)
        })
        .await
        .map(drop)
    }

    async fn get_blobs(&self, keys: Vec<Key>) -> StoreResult<Vec<Option<BlobRow>>> {
        self.each(keys, |key| async move {
            let row = self
                .execute_one::<(Option<Bytes>, Option<Bytes>)>(&self.statements.select_blob, (key.as_bytes(),))
                .await?;
            match row {
                None => Ok(None),
                Some((Some(element), children)) => {
                    Ok(Some(BlobRow { key, element, children: children.unwrap_or_default() }))
                }
                Some((None, _)) => Err(StoreError::Corrupt(format!("blob {key} has no element"))),
            }
        })
        .await
    }

    async fn has_blobs(&self, keys: Vec<Key>) -> StoreResult<Vec<bool>> {
        self.each(keys, |key| async move {
            let row = self.execute_one::<(Bytes,)>(&self.statements.has_blob, (key.as_bytes(),)).await?;
            Ok(row.is_some())
        })
        .await
    }
}

impl HeadStore for CassandraStore {
    fn get_heads(&self, repository: String) -> impl Future<Output = StoreResult<Option<Versioned>>> + Send {
        self.read_heads(repository)
    }

    async fn cas_heads(&self, repository: String, expected: Option<u64>, record: Bytes) -> StoreResult<Cas> {
        let s = &self.statements;
        let (result, version) = match expected {
            None => (self.execute(&s.insert_heads, (&repository, record)).await, 1),
            Some(v) => {
                let expected = version_to_cql(v)?;
                let next = expected
                    .checked_add(1)
                    .ok_or_else(|| StoreError::Invalid(format!("heads version {v} of {repository} cannot grow")))?;
                (self.execute(&s.update_heads, (next, record, &repository, expected)).await, v + 1)
            }
        };
        let result = result.map_err(|e| match e {
            StoreError::Unavailable(m) => {
                StoreError::Unavailable(format!("compare-and-set of the heads of {repository}: {m}"))
            }
            other => other,
        })?;
        match lwt_outcome(result)? {
            Lwt::Applied => Ok(Cas::Applied(version)),
            Lwt::Lost(Some(current)) => Ok(Cas::Lost(Some(current))),
            Lwt::Lost(None) => Ok(Cas::Lost(self.read_heads(repository).await?)),
        }
    }
}

/// The outcome of a lightweight transaction on `heads`.
enum Lwt {
    Applied,
    /// Not applied; the current record if the result row carried it.
    Lost(Option<Versioned>),
}

fn lwt_outcome(result: QueryResult) -> StoreResult<Lwt> {
    let rows = result.into_rows_result().map_err(rows_error)?;
    let specs: Vec<String> = rows.column_specs().iter().map(|c| c.name().to_string()).collect();
    let row = rows
        .maybe_first_row::<scylla::value::Row>()
        .map_err(first_row_error)?
        .ok_or_else(|| StoreError::Backend("a lightweight transaction returned no row".into()))?;
    let column = |name: &str| specs.iter().position(|s| s == name).and_then(|i| row.columns.get(i)?.as_ref());
    match column("[applied]") {
        Some(CqlValue::Boolean(true)) => Ok(Lwt::Applied),
        Some(CqlValue::Boolean(false)) => match (column("version"), column("record")) {
            (Some(CqlValue::BigInt(version)), Some(CqlValue::Blob(record))) => Ok(Lwt::Lost(Some(Versioned {
                version: version_from_cql(*version)?,
                record: Bytes::copy_from_slice(record),
            }))),
            _ => Ok(Lwt::Lost(None)),
        },
        _ => Err(StoreError::Backend("a lightweight transaction returned no [applied] column".into())),
    }
}

fn version_to_cql(version: u64) -> StoreResult<i64> {
    i64::try_from(version).map_err(|_| StoreError::Invalid(format!("heads version {version} is out of range")))
}

fn version_from_cql(version: i64) -> StoreResult<u64> {
    u64::try_from(version)
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| StoreError::Corrupt(format!("stored heads version {version} is not positive")))
}

impl KvStore for CassandraStore {
    fn get(&self, key: Vec<u8>) -> impl Future<Output = StoreResult<Option<Bytes>>> + Send {
        self.read_value(key)
    }

    fn put(&self, key: Vec<u8>, value: Bytes) -> impl Future<Output = StoreResult<()>> + Send {
        self.write_rows(vec![Row { key, value: Some(value), attributes: BTreeMap::new() }])
    }

    async fn remove(&self, key: Vec<u8>) -> StoreResult<()> {
        if key.is_empty() {
            return Ok(());
        }
        let old = self.read_row(key.clone()).await?;
        let ts = self.clock.next();
        self.write(Write::RowDelete { key: key.clone(), ts }).await?;
        let deletes = old
            .attributes
            .into_iter()
            .map(|(name, value)| Write::IndexDelete { name, value, key: key.clone(), ts })
            .collect();
        self.run(deletes).await
    }

    async fn has_key(&self, key: Vec<u8>) -> StoreResult<bool> {
        Ok(self.read_value(key).await?.is_some())
    }

    fn batch_get(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<Option<Bytes>>>> + Send {
        self.each(keys, |k| self.read_value(k))
    }

    fn batch_put(&self, rows: Vec<(Vec<u8>, Bytes)>) -> impl Future<Output = StoreResult<()>> + Send {
        self.write_rows(
            rows.into_iter().map(|(key, value)| Row { key, value: Some(value), attributes: BTreeMap::new() }).collect(),
        )
    }

    fn batch_has_key(&self, keys: Vec<Vec<u8>>) -> impl Future<Output = StoreResult<Vec<bool>>> + Send {
        self.each(keys, move |k| async move { Ok(self.read_value(k).await?.is_some()) })
    }
}

impl IndexStore for CassandraStore {
    fn indexed_attributes(&self) -> Vec<String> {
        self.indexed.clone()
    }

    fn batch_put_rows(&self, rows: Vec<Row>) -> impl Future<Output = StoreResult<()>> + Send {
        let checked = rows.iter().try_for_each(|r| check_attributes(&self.indexed, r.attributes.keys()));
        async move {
            checked?;
            self.write_rows(rows).await
        }
    }

    fn query(&self, predicates: Vec<Predicate>) -> impl Future<Output = StoreResult<Vec<Row>>> + Send {
        let checked = check_predicates(&self.indexed, &predicates);
        async move {
            checked?;
            let Some((name, value)) = predicates.iter().find_map(|p| match p {
                Predicate::Eq(n, v) => Some((n.clone(), v.clone())),
                Predicate::Gt(..) => None,
            }) else {
                return Err(StoreError::Invalid("a query needs at least one equality predicate".into()));
            };
            let keys: Vec<Vec<u8>> = self
                .session
                .execute_iter(self.statements.select_index.clone(), (name, value))
                .await
                .map_err(pager_error)?
                .rows_stream::<(Vec<u8>,)>()
                .map_err(|e| StoreError::Corrupt(format!("row_index has an unexpected shape: {e}")))?
                .map_ok(|(k,)| k)
                .map_err(next_row_error)
                .try_collect()
                .await?;
            let predicates = &predicates;
            let mut rows: Vec<Row> = stream::iter(keys)
                .map(|key| async move {
                    let row = self.read_row(key.clone()).await?;
                    Ok(row.value.filter(|_| matches(&row.attributes, predicates)).map(|value| Row {
                        key,
                        value: Some(value),
                        attributes: row.attributes,
                    }))
                })
                .buffered(self.max_concurrency)
                .try_filter_map(|row| async move { Ok(row) })
                .try_collect()
                .await?;
            rows.sort_by(|a, b| a.key.cmp(&b.key));
            rows.dedup_by(|a, b| a.key == b.key);
            Ok(rows)
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

// Error mapping: transient failures are `Unavailable`, requests the server refuses as invalid are
// `Invalid`, undecodable results are `Corrupt`, and the rest is `Backend`.

fn execution_error(e: ExecutionError) -> StoreError {
    match e {
        ExecutionError::BadQuery(e) => StoreError::Invalid(e.to_string()),
        ExecutionError::EmptyPlan | ExecutionError::ConnectionPoolError(_) | ExecutionError::RequestTimeout(_) => {
            StoreError::Unavailable(e.to_string())
        }
        ExecutionError::LastAttemptError(a) => attempt_error(a),
        ExecutionError::PrepareError(scylla::errors::PrepareError::ConnectionPoolError(_)) => {
            StoreError::Unavailable(e.to_string())
        }
        ExecutionError::PrepareError(scylla::errors::PrepareError::AllAttemptsFailed { first_attempt }) => {
            attempt_error(first_attempt)
        }
        ExecutionError::SchemaAgreementError(e) => schema_error(e),
        other => StoreError::Backend(other.to_string()),
    }
}

fn attempt_error(e: RequestAttemptError) -> StoreError {
    match &e {
        RequestAttemptError::BrokenConnectionError(_) | RequestAttemptError::UnableToAllocStreamId => {
            StoreError::Unavailable(e.to_string())
        }
        RequestAttemptError::SerializationError(_) => StoreError::Invalid(e.to_string()),
        RequestAttemptError::DbError(db, message) => match db {
            DbError::WriteTimeout { write_type: WriteType::Cas, .. } => {
                StoreError::Unavailable(format!("lightweight transaction timed out, outcome unknown: {message}"))
            }
            DbError::Unavailable { .. }
            | DbError::Overloaded
            | DbError::IsBootstrapping
            | DbError::ReadTimeout { .. }
            | DbError::WriteTimeout { .. }
            | DbError::ReadFailure { .. }
            | DbError::WriteFailure { .. }
            | DbError::RateLimitReached { .. } => StoreError::Unavailable(e.to_string()),
            DbError::Invalid => StoreError::Invalid(message.clone()),
            _ => StoreError::Backend(e.to_string()),
        },
        _ => StoreError::Backend(e.to_string()),
    }
}

fn request_error(e: RequestError) -> StoreError {
    match e {
        RequestError::LastAttemptError(a) => attempt_error(a),
        RequestError::EmptyPlan | RequestError::ConnectionPoolError(_) | RequestError::RequestTimeout(_) => {
            StoreError::Unavailable(e.to_string())
        }
        other => StoreError::Backend(other.to_string()),
    }
}

fn pager_error(e: PagerExecutionError) -> StoreError {
    match e {
        PagerExecutionError::SerializationError(e) => StoreError::Invalid(e.to_string()),
        PagerExecutionError::NextPageError(scylla::errors::NextPageError::RequestFailure(r)) => request_error(r),
        PagerExecutionError::PrepareError(p) => execution_error(ExecutionError::PrepareError(p)),
        other => StoreError::Backend(other.to_string()),
    }
}

fn next_row_error(e: NextRowError) -> StoreError {
    match e {
        NextRowError::NextPageError(scylla::errors::NextPageError::RequestFailure(r)) => request_error(r),
        NextRowError::RowDeserializationError(e) => StoreError::Corrupt(e.to_string()),
        other => StoreError::Backend(other.to_string()),
    }
}

fn schema_error(e: SchemaAgreementError) -> StoreError {
    match e {
        SchemaAgreementError::Timeout(_) | SchemaAgreementError::ConnectionPoolError(_) => {
            StoreError::Unavailable(format!("schema agreement: {e}"))
        }
        SchemaAgreementError::RequestError(a) => attempt_error(a),
        other => StoreError::Backend(format!("schema agreement: {other}")),
    }
}

fn rows_error(e: IntoRowsResultError) -> StoreError {
    StoreError::Backend(format!("expected rows from Cassandra: {e}"))
}

fn first_row_error(e: MaybeFirstRowError) -> StoreError {
    StoreError::Corrupt(format!("undecodable row: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store in a fresh keyspace of the local test node; panics, saying how to start the
    /// node, if none answers.
    async fn store(name: &str) -> CassandraStore {
        let keyspace = format!("dsf_unit_{name}_{}", std::process::id());
        let config = CassandraConfig::local(&keyspace);
        let nodes = config.contact_points.join(", ");
        let store = match CassandraStore::connect(config).await {
            Ok(store) => store,
            Err(e) => {
                panic!("no Cassandra answers at {nodes} ({e}): run `scripts/cassandra start`")
            }
        };
        store.drop_keyspace().await.unwrap();
        CassandraStore::connect(CassandraConfig::local(&keyspace)).await.unwrap()
    }

    fn row(key: &[u8], value: Option<&[u8]>, attributes: &[(&str, &[u8])]) -> Row {
        Row {
            key: key.to_vec(),
            value: value.map(Bytes::copy_from_slice),
            attributes: attributes.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
        }
    }

    /// The keys `row_index` lists under `(name, value)`, stale entries included.
    async fn index_keys(store: &CassandraStore, name: &str, value: &[u8]) -> Vec<Vec<u8>> {
        let cql = format!("SELECT key FROM \"{}\".row_index WHERE name = ? AND value = ?", store.keyspace());
        let rows = store.session.query_unpaged(cql, (name, value)).await.unwrap().into_rows_result().unwrap();
        rows.rows::<(Vec<u8>,)>().unwrap().map(|r| r.unwrap().0).collect()
    }

    #[test]
    fn keyspace_names_are_checked() {
        for good in ["dsf", "Dsf_Test_1", &"k".repeat(48)] {
            assert!(check_keyspace(good).is_ok(), "{good}");
        }
        for bad in ["", "1abc", "_abc", "a-b", "a\"b", "a b", "ключ", &"k".repeat(49)] {
            assert!(matches!(check_keyspace(bad), Err(StoreError::Invalid(_))), "{bad}");
        }
    }

    #[test]
    fn replication_is_written_as_cql() {
        assert_eq!(Replication::default().cql().unwrap(), "{'class': 'SimpleStrategy', 'replication_factor': 1}");
        let dcs = Replication::NetworkTopology([("dc'1".to_string(), 3)].into());
        assert_eq!(dcs.cql().unwrap(), "{'class': 'NetworkTopologyStrategy', 'dc''1': 3}");
        assert!(Replication::Simple { factor: 0 }.cql().is_err());
        assert!(Replication::NetworkTopology(BTreeMap::new()).cql().is_err());
    }

    #[test]
    fn the_clock_never_repeats() {
        let clock = Clock::default();
        let mut last = clock.next();
        for _ in 0..10_000 {
            let t = clock.next();
            assert!(t > last);
            last = t;
        }
    }

    #[test]
    fn requests_for_one_key_fold_in_order() {
        let changes = fold(vec![
            row(b"a", None, &[("x", b"1")]),
            row(b"b", Some(b"v"), &[("x", b"1")]),
            row(b"a", Some(b"w"), &[("y", b"2")]),
            row(b"b", None, &[("y", b"3")]),
            row(b"a", None, &[("z", b"4")]),
        ]);
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0].key, b"a");
        assert!(changes[0].needs_row, "an attribute-only update came first");
        match &changes[0].change {
            Change::Replace { value, attributes } => {
                assert_eq!(value.as_ref(), b"w");
                assert_eq!(attributes.keys().collect::<Vec<_>>(), ["y", "z"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(!changes[1].needs_row);
        match &changes[1].change {
            Change::Replace { value, attributes } => {
                assert_eq!(value.as_ref(), b"v");
                assert_eq!(attributes.keys().collect::<Vec<_>>(), ["x", "y"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn a_node_that_does_not_answer_is_unavailable() {
        let mut config = CassandraConfig::new("dsf_unit_nobody");
        config.contact_points = vec!["127.0.0.1:1".into()];
        let err = CassandraStore::connect(config).await.unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
    }

    #[tokio::test]
    async fn a_bad_keyspace_is_refused_before_connecting() {
        let err = CassandraStore::connect(CassandraConfig::local("no-dashes")).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connecting_twice_keeps_the_schema_and_the_data() {
        let first = store("schema").await;
        first.put(b"k".to_vec(), Bytes::from_static(b"v")).await.unwrap();
        first.cas_heads("repo".into(), None, Bytes::from_static(b"h")).await.unwrap();
        let second = CassandraStore::connect(CassandraConfig::local(first.keyspace())).await.unwrap();
        assert_eq!(second.get(b"k".to_vec()).await.unwrap().as_deref(), Some(&b"v"[..]));
        assert_eq!(second.get_heads("repo".into()).await.unwrap().map(|h| h.version), Some(1));
        let tables =
            format!("SELECT table_name FROM system_schema.tables WHERE keyspace_name = '{}'", first.keyspace());
        let rows = second.session.query_unpaged(tables, ()).await.unwrap().into_rows_result().unwrap();
        let mut names: Vec<String> = rows.rows::<(String,)>().unwrap().map(|r| r.unwrap().0).collect();
        names.sort();
        assert_eq!(names, ["blobs", "heads", "row_index", "rows"]);
        second.drop_keyspace().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn exactly_one_concurrent_writer_wins_each_compare_and_set() {
        let store = store("cas").await;
        let writers = 8;
        for round in 0..3u64 {
            let expected = if round == 0 { None } else { Some(round) };
            let attempts = (0..writers).map(|w| {
                let record = Bytes::from(format!("round {round} writer {w}"));
                let store = &store;
                async move { (record.clone(), store.cas_heads("repo".into(), expected, record).await.unwrap()) }
            });
            let outcomes = futures::future::join_all(attempts).await;
            let winners: Vec<&Bytes> =
                outcomes.iter().filter(|(_, o)| *o == Cas::Applied(round + 1)).map(|(r, _)| r).collect();
            assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
            let current = Versioned { version: round + 1, record: winners[0].clone() };
            for (_, outcome) in &outcomes {
                match outcome {
                    Cas::Applied(v) => assert_eq!(*v, round + 1),
                    Cas::Lost(seen) => assert_eq!(seen.as_ref(), Some(&current), "round {round}"),
                }
            }
            assert_eq!(store.get_heads("repo".into()).await.unwrap(), Some(current));
        }
        // A stale expectation loses with the current record; a missing repository loses with none.
        let stale = store.cas_heads("repo".into(), Some(1), Bytes::from_static(b"late")).await.unwrap();
        assert!(matches!(stale, Cas::Lost(Some(Versioned { version: 3, .. }))), "{stale:?}");
        let missing = store.cas_heads("other".into(), Some(1), Bytes::from_static(b"x")).await.unwrap();
        assert_eq!(missing, Cas::Lost(None));
        store.drop_keyspace().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changing_attributes_removes_stale_index_entries() {
        let store = store("index").await;
        store.put_row(row(b"c1", Some(b"v1"), &[("branch_name", b"main"), ("keyword", b"a")])).await.unwrap();
        store.update_index(b"c1".to_vec(), [("branch_name".to_string(), b"dev".to_vec())].into()).await.unwrap();
        assert!(index_keys(&store, "branch_name", b"main").await.is_empty());
        assert_eq!(index_keys(&store, "branch_name", b"dev").await, [b"c1".to_vec()]);
        assert_eq!(index_keys(&store, "keyword", b"a").await, [b"c1".to_vec()]);

        store.put_row(row(b"c1", Some(b"v2"), &[("keyword", b"b")])).await.unwrap();
        assert!(index_keys(&store, "branch_name", b"dev").await.is_empty());
        assert!(index_keys(&store, "keyword", b"a").await.is_empty());
        let found = store.query(vec![Predicate::Eq("keyword".into(), b"b".to_vec())]).await.unwrap();
        assert_eq!(found, [row(b"c1", Some(b"v2"), &[("keyword", b"b")])]);

        store.remove(b"c1".to_vec()).await.unwrap();
        assert!(index_keys(&store, "keyword", b"b").await.is_empty());
        assert!(store.query(vec![Predicate::Eq("keyword".into(), b"b".to_vec())]).await.unwrap().is_empty());
        store.drop_keyspace().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_attribute_update_writes_nothing() {
        let store = store("atomic").await;
        let err = store
            .batch_put_rows(vec![
                row(b"a", Some(b"1"), &[("keyword", b"k")]),
                row(b"missing", None, &[("keyword", b"k")]),
            ])
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert!(!store.has_key(b"a".to_vec()).await.unwrap());
        assert!(index_keys(&store, "keyword", b"k").await.is_empty());
        store.drop_keyspace().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn big_batches_run_without_cql_batches() {
        let store = store("big").await;
        // 300 rows of 4 KiB: far above Cassandra's 50 KiB batch limit.
        let rows: Vec<(Vec<u8>, Bytes)> =
            (0..300u32).map(|i| (i.to_be_bytes().to_vec(), Bytes::from(vec![i as u8; 4096]))).collect();
        store.batch_put(rows.clone()).await.unwrap();
        let mut keys: Vec<Vec<u8>> = rows.iter().map(|(k, _)| k.clone()).rev().collect();
        keys.push(b"absent".to_vec());
        let got = store.batch_get(keys.clone()).await.unwrap();
        for (key, value) in keys.iter().zip(&got) {
            let expected = rows.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
            assert_eq!(value, &expected);
        }
        let present = store.batch_has_key(keys).await.unwrap();
        assert_eq!(present.iter().filter(|p| **p).count(), 300);
        assert!(!present[300]);
        store.drop_keyspace().await.unwrap();
    }

    /// A deterministic pseudo-random sequence (xorshift64).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    fn same_outcome<T: PartialEq + fmt::Debug>(step: usize, what: &str, ours: StoreResult<T>, model: StoreResult<T>) {
        match (ours, model) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "step {step}: {what}"),
            (Err(StoreError::Invalid(_)), Err(StoreError::Invalid(_))) => {}
            (a, b) => panic!("step {step}: {what}: {a:?} but the memory store gives {b:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn random_operations_agree_with_the_memory_store() {
        let store = store("model").await;
        let model = dsf::store::memory::MemoryStore::new();
        let keys: [&[u8]; 5] = [b"k0", b"k1", b"k2", b"\x00", b"\xff\x01"];
        let names = ["branch_name", "keyword", "value", "unindexed"];
        let values: [&[u8]; 3] = [b"", b"a", b"\xff"];
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let (mut found, mut refused) = (0, 0);
        let attributes = |rng: &mut Rng, allow_bad: bool| -> BTreeMap<String, Vec<u8>> {
            let good = if allow_bad && rng.below(10) == 0 { names.len() } else { 2 };
            (0..rng.below(4)).map(|_| (names[rng.below(good)].to_string(), rng.pick(&values).to_vec())).collect()
        };
        for step in 0..400 {
            let key = rng.pick(&keys).to_vec();
            match rng.below(9) {
                0 => {
                    let value = if step % 4 == 0 { Bytes::new() } else { Bytes::from(format!("v{step}")) };
                    same_outcome(step, "put", store.put(key.clone(), value.clone()).await, model.put(key, value).await);
                }
                1 => same_outcome(step, "remove", store.remove(key.clone()).await, model.remove(key).await),
                2 | 3 => {
                    let row = Row {
                        key,
                        value: Some(Bytes::from(format!("r{step}"))),
                        attributes: attributes(&mut rng, true),
                    };
                    same_outcome(step, "put_row", store.put_row(row.clone()).await, model.put_row(row).await);
                }
                4 => {
                    let attrs = attributes(&mut rng, true);
                    same_outcome(
                        step,
                        "update_index",
                        store.update_index(key.clone(), attrs.clone()).await,
                        model.update_index(key, attrs).await,
                    );
                }
                5 => {
                    // Attribute-only updates only of rows that exist, so a failure cannot leave the
                    // memory store half-written.
                    let present = model.batch_has_key(keys.iter().map(|k| k.to_vec()).collect()).await.unwrap();
                    let rows: Vec<Row> = (0..rng.below(5))
                        .map(|i| {
                            let k = rng.below(keys.len());
                            let value = if present[k] && rng.below(2) == 0 {
                                None
                            } else {
                                Some(Bytes::from(format!("b{step}.{i}")))
                            };
                            Row { key: keys[k].to_vec(), value, attributes: attributes(&mut rng, false) }
                        })
                        .collect();
                    same_outcome(
                        step,
                        "batch_put_rows",
                        store.batch_put_rows(rows.clone()).await,
                        model.batch_put_rows(rows).await,
                    );
                }
                6 => {
                    let predicates: Vec<Predicate> = (0..1 + rng.below(2))
                        .map(|_| {
                            let known = if rng.below(12) == 0 { names.len() } else { 2 };
                            let name = names[rng.below(known)].to_string();
                            let value = rng.pick(&values).to_vec();
                            if rng.below(3) == 0 { Predicate::Gt(name, value) } else { Predicate::Eq(name, value) }
                        })
                        .collect();
                    let expected = model.query(predicates.clone()).await;
                    match &expected {
                        Ok(rows) => found += rows.len(),
                        Err(_) => refused += 1,
                    }
                    same_outcome(step, &format!("query {predicates:?}"), store.query(predicates).await, expected);
                }
                7 => {
                    let ks: Vec<Vec<u8>> = keys.iter().map(|k| k.to_vec()).collect();
                    same_outcome(
                        step,
                        "batch_get",
                        store.batch_get(ks.clone()).await,
                        model.batch_get(ks.clone()).await,
                    );
                    same_outcome(
                        step,
                        "batch_has_key",
                        store.batch_has_key(ks.clone()).await,
                        model.batch_has_key(ks).await,
                    );
                }
                _ => {
                    same_outcome(step, "get", store.get(key.clone()).await, model.get(key.clone()).await);
                    same_outcome(step, "has_key", store.has_key(key.clone()).await, model.has_key(key).await);
                }
            }
        }
        assert!(found > 20 && refused > 5, "the sequence is too tame: {found} rows found, {refused} queries refused");
        // At the end, every (attribute, value) selects the same rows.
        for name in &names[..2] {
            for value in values {
                let predicates = vec![Predicate::Eq(name.to_string(), value.to_vec())];
                same_outcome(400, "final query", store.query(predicates.clone()).await, model.query(predicates).await);
            }
        }
        store.drop_keyspace().await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn empty_row_keys_are_refused_and_never_found() {
        let store = store("empty").await;
        let err = store.put(Vec::new(), Bytes::from_static(b"v")).await.unwrap_err();
        assert!(matches!(err, StoreError::Invalid(_)), "{err}");
        assert_eq!(store.get(Vec::new()).await.unwrap(), None);
        assert!(!store.has_key(Vec::new()).await.unwrap());
        store.remove(Vec::new()).await.unwrap();
        store.drop_keyspace().await.unwrap();
    }
}
