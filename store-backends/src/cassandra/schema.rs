//! The keyspace and its tables, created if absent; existing ones are never altered.

use scylla::client::session::Session;

use dsf::store::StoreResult;

use super::codec::{execution_error, schema_error};

/// Creates the keyspace `ks` (quoted) with `replication` (a CQL map literal) and its tables if
/// they are absent, and waits for schema agreement.
pub(crate) async fn create(session: &Session, ks: &str, replication: &str) -> StoreResult<()> {
    let ddl = [
        format!("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {replication}"),
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
