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
//! - `row_index` is a query table: one entry per `(attribute, non-empty value, row key)`. A
//!   query reads the keys of its first equality predicate with a non-empty value (the shared
//!   rule of [`dsf::store::check_query`] requires one) from one `row_index` partition, reads
//!   those rows, and keeps the ones [`dsf::store::matches`] accepts, so the semantics are the
//!   memory store's. Empty values are not indexed, so no partition is keyed by the empty value
//!   (every non-head commit has `branch_name = ""`).
//! - The index may hold stale entries (they are filtered out) but never misses a live one: a
//!   write inserts the new entries first, then writes the row. A whole-row write is blind (no
//!   read before it); the entries its old attributes no longer justify are deleted by the first
//!   query that meets them, with a timestamp just below the row's write time, so an entry
//!   written again since survives. An attribute-only update (the only kind a head move makes)
//!   reads the row, which must exist, and deletes the entries of the values it changes: a head
//!   move leaves one tombstone per head that changes. Every statement of one row write carries
//!   the same client timestamp, from a clock that is monotonic within the process, so a retried
//!   statement is idempotent and concurrent writers of one row settle on the same winner in
//!   `rows` and in `row_index` (across processes, the latest clock wins, as everywhere in
//!   Cassandra).
//! - Cassandra refuses an empty partition key, so a row key must not be empty: writing one is
//!   [`StoreError::Invalid`], and reading one finds nothing.
//!
//! # Consistency
//!
//! Reads and writes run at [`CassandraConfig::consistency`] (`QUORUM`, or `LOCAL_QUORUM` when a
//! local data centre is configured); heads are read at the serial consistency (`SERIAL`, or
//! `LOCAL_SERIAL`) and changed by lightweight transactions with it as their serial consistency,
//! so a head read sees every completed compare-and-set. Single-node test clusters satisfy all of
//! these with replication factor 1. With `LOCAL_` levels and several data centres, a head read in
//! one may name blobs that `LOCAL_QUORUM` has not yet brought there from another; readers then
//! retry, or the cluster is run with every datastore process in one data centre.
//!
//! A compare-and-set whose outcome is unknown (it timed out, or its connection broke after it
//! was sent) is settled by serial reads with a bounded backoff before `cas_heads` returns: our
//! record at our version is [`Cas::Applied`](dsf::store::Cas), anything else `Lost` with the
//! current record; when no read answers, the result is [`StoreError::Unavailable`] saying that
//! the outcome is unknown, never `Applied`.
//!
//! # Concurrency
//!
//! Batch operations never use CQL `BATCH` (Cassandra refuses batches above 50 KiB): they run
//! prepared statements concurrently, at most `max_concurrency` in flight, and return results in
//! request order. All statements are prepared once, in [`CassandraStore::connect`]. Non-LWT
//! statements are marked idempotent so the driver may retry them.
//!
//! The store's futures need a tokio runtime.
//!
//! The code is split by noun: [`config`](CassandraConfig) (how to connect), `schema` (the
//! keyspace and its tables), `statements` (prepared once), `heads` (compare-and-set), `rows`
//! (the rows and their query table), `blobs`, and `codec` (errors and row decoding).

mod blobs;
mod codec;
mod config;
mod heads;
mod maint;
#[cfg(test)]
mod proxy;
mod rows;
mod schema;
mod statements;

use std::fmt;
use std::future::Future;

use dsf::store::{Store, StoreError, StoreResult};
use futures::{StreamExt, TryStreamExt, stream};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::policies::load_balancing::DefaultPolicy;
use scylla::response::query_result::QueryResult;
use scylla::serialize::row::SerializeRow;
use scylla::statement::prepared::PreparedStatement;

use codec::{execution_error, first_row_error, rows_error, schema_error};
use config::check_keyspace;
pub use config::{
    CASSANDRA_ENV, CassandraConfig, Consistency, Credentials, LOCAL_NODE, PASSWORD_ENV, Replication, SerialConsistency,
    TlsFiles, USERNAME_ENV, parse_consistency, parse_serial_consistency,
};
use rows::Clock;
use statements::Statements;

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

impl CassandraStore {
    /// Connects, creates the keyspace and tables if absent (an existing keyspace must have the
    /// configured replication), waits for schema agreement, and prepares every statement.
    pub async fn connect(config: CassandraConfig) -> StoreResult<CassandraStore> {
        check_keyspace(&config.keyspace)?;
        config.replication.cql()?;
        if config.max_concurrency == 0 {
            return Err(StoreError::Invalid("max_concurrency must be at least 1".into()));
        }
        if config.contact_points.is_empty() {
            return Err(StoreError::Invalid("no Cassandra contact point configured".into()));
        }
        let mut policy = DefaultPolicy::builder();
        if let Some(dc) = &config.local_datacenter {
            policy = policy.prefer_datacenter(dc.clone());
        }
        let profile = ExecutionProfile::builder()
            .consistency(config.consistency())
            .serial_consistency(Some(config.serial_consistency()))
            .request_timeout(Some(config.request_timeout))
            .load_balancing_policy(policy.build())
            .build();
        let mut builder = SessionBuilder::new()
            .known_nodes(&config.contact_points)
            .default_execution_profile_handle(profile.into_handle());
        if let Some(credentials) = &config.credentials {
            builder = builder.user(&credentials.username, &credentials.password);
        }
        if let Some(tls) = &config.tls {
            builder = builder.tls_context(Some(tls.context()?));
        }
        let session = builder.build().await.map_err(|e| {
            let text = e.to_string();
            let hint = if text.contains("Authentication is required") {
                "the cluster requires a login: configure a username and its password"
            } else if text.contains("AuthenticationError") || text.contains("Authentication") {
                "check the username and password"
            } else if text.contains("SSL") || text.contains("certificate") || text.contains("TLS") {
                "check TLS: the nodes' certificates must be signed by the configured CA and name their IP \
                 addresses, and the nodes must have client encryption enabled"
            } else {
                "check contact_points, and that the nodes run and accept CQL on these ports"
            };
            StoreError::Unavailable(format!(
                "cannot connect to Cassandra at {}: {text} ({hint})",
                config.contact_points.join(", ")
            ))
        })?;

        schema::create(&session, &config.keyspace, &config.replication).await?;
        let ks = format!("\"{}\"", config.keyspace);
        let statements = Statements::prepare(&session, &ks, config.serial_consistency()).await?;
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
}

/// Saves through the provided calls: Cassandra has no multi-table atomic batch with a
/// lightweight transaction.
impl Store for CassandraStore {}

#[cfg(test)]
pub(crate) mod testing {
    use bytes::Bytes;
    use dsf::store::Row;

    use super::*;

    /// A store in a fresh keyspace of the local test node; panics, saying how to start the
    /// node, if none answers.
    pub(crate) async fn store(name: &str) -> CassandraStore {
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

    pub(crate) fn row(key: &[u8], value: Option<&[u8]>, attributes: &[(&str, &[u8])]) -> Row {
        Row {
            key: key.to_vec(),
            value: value.map(Bytes::copy_from_slice),
            attributes: attributes.iter().map(|(n, v)| (n.to_string(), v.to_vec())).collect(),
        }
    }

    /// The keys `row_index` lists under `(name, value)`, stale entries included.
    pub(crate) async fn index_keys(store: &CassandraStore, name: &str, value: &[u8]) -> Vec<Vec<u8>> {
        let cql = format!("SELECT key FROM \"{}\".row_index WHERE name = ? AND value = ?", store.keyspace());
        let rows = store.session.query_unpaged(cql, (name, value)).await.unwrap().into_rows_result().unwrap();
        rows.rows::<(Vec<u8>,)>().unwrap().map(|r| r.unwrap().0).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
