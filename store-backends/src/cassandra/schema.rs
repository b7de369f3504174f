//! The keyspace and its tables, created if absent; existing ones are never altered, and an
//! existing keyspace whose replication differs from the configured one is refused.

use std::collections::BTreeMap;

use scylla::client::session::Session;
use scylla::statement::Consistency;
use scylla::statement::unprepared::Statement;

use dsf::store::{StoreError, StoreResult};

use super::Replication;
use super::codec::{execution_error, first_row_error, rows_error, schema_error};
use super::config::describe_replication;

/// The replication of `keyspace` as `system_schema.keyspaces` lists it (class by its short
/// name), or `None` if the keyspace does not exist.
async fn replication_of(session: &Session, keyspace: &str) -> StoreResult<Option<BTreeMap<String, String>>> {
    let mut statement = Statement::new("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?");
    // The schema tables are local to every node.
    statement.set_consistency(Consistency::One);
    let rows = session.query_unpaged(statement, (keyspace,)).await.map_err(execution_error)?;
    let row = rows.into_rows_result().map_err(rows_error)?.maybe_first_row::<(BTreeMap<String, String>,)>();
    Ok(row.map_err(first_row_error)?.map(|(mut options,)| {
        if let Some(class) = options.get_mut("class")
            && let Some(short) = class.strip_prefix("org.apache.cassandra.locator.")
        {
            *class = short.to_string();
        }
        options
    }))
}

/// Checks that an existing keyspace has the configured replication.
fn check_replication(keyspace: &str, actual: &BTreeMap<String, String>, wanted: &Replication) -> StoreResult<()> {
    let wanted = wanted.options();
    if *actual == wanted {
        return Ok(());
    }
    Err(StoreError::Invalid(format!(
        "keyspace {keyspace} exists with replication {} but the configuration asks for {}: an existing keyspace \
         is never altered; configure the replication it has, or change the keyspace yourself (ALTER KEYSPACE, \
         then a full repair on every node)",
        describe_replication(actual),
        describe_replication(&wanted)
    )))
}

/// Creates the keyspace `keyspace` with `replication` and its tables if they are absent, and
/// waits for schema agreement. An existing keyspace must have `replication`.
pub(crate) async fn create(session: &Session, keyspace: &str, replication: &Replication) -> StoreResult<()> {
    let ks = format!("\"{keyspace}\"");
    match replication_of(session, keyspace).await? {
        Some(actual) => check_replication(keyspace, &actual, replication)?,
        None => {
            let cql = format!("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {}", replication.cql()?);
            session.query_unpaged(cql, ()).await.map_err(execution_error)?;
            session.await_schema_agreement().await.map_err(schema_error)?;
            // Another process may have created it first, with another replication.
            let actual = replication_of(session, keyspace).await?.ok_or_else(|| {
                StoreError::Backend(format!("keyspace {keyspace} is missing right after its creation"))
            })?;
            check_replication(keyspace, &actual, replication)?;
        }
    }
    let ddl = [
        format!("CREATE TABLE IF NOT EXISTS {ks}.blobs (key blob PRIMARY KEY, element blob, children blob)"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.heads (repository text PRIMARY KEY, version bigint, record blob)"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.rows (key blob PRIMARY KEY, value blob, attributes map<text, blob>)"),
        format!(
            "CREATE TABLE IF NOT EXISTS {ks}.row_index \
             (name text, value blob, key blob, PRIMARY KEY ((name, value), key))"
        ),
    ];
    for statement in ddl {
        session.query_unpaged(statement, ()).await.map_err(execution_error)?;
    }
    session.await_schema_agreement().await.map_err(schema_error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use dsf::store::{HeadStore, KvStore};

    use super::super::testing::store;
    use super::super::{CassandraConfig, CassandraStore};

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
}
