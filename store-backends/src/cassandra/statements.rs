//! The prepared statements of every table, prepared once when the store connects.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

use dsf::store::StoreResult;

use super::codec::execution_error;

/// The prepared statements, prepared once at connect.
#[derive(Debug)]
pub(crate) struct Statements {
    pub(crate) insert_blob: PreparedStatement,
    pub(crate) select_blob: PreparedStatement,
    pub(crate) has_blob: PreparedStatement,
    pub(crate) select_heads: PreparedStatement,
    pub(crate) insert_heads: PreparedStatement,
    pub(crate) update_heads: PreparedStatement,
    pub(crate) select_row: PreparedStatement,
    pub(crate) select_value: PreparedStatement,
    pub(crate) insert_row: PreparedStatement,
    pub(crate) merge_attributes: PreparedStatement,
    pub(crate) delete_row: PreparedStatement,
    pub(crate) insert_index: PreparedStatement,
    pub(crate) delete_index: PreparedStatement,
    pub(crate) select_index: PreparedStatement,
}

impl Statements {
    /// Prepares every statement of keyspace `ks` (quoted). Statements that are not lightweight
    /// transactions are idempotent, so the driver may retry them.
    /// Heads are read at `serial`, so a read sees every completed compare-and-set.
    pub(crate) async fn prepare(session: &Session, ks: &str, serial: SerialConsistency) -> StoreResult<Statements> {
        let serial_read = match serial {
            SerialConsistency::Serial => Consistency::Serial,
            SerialConsistency::LocalSerial => Consistency::LocalSerial,
        };
        let prepare = async |cql: String, idempotent: bool, consistency: Option<Consistency>| {
            let mut prepared = session.prepare(cql).await.map_err(|e| execution_error(e.into()))?;
            prepared.set_is_idempotent(idempotent);
            if let Some(c) = consistency {
                prepared.set_consistency(c);
            }
            StoreResult::Ok(prepared)
        };
        Ok(Statements {
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
                Some(serial_read),
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
            select_row: prepare(
                format!("SELECT value, attributes, WRITETIME(value) FROM {ks}.rows WHERE key = ?"),
                true,
                None,
            )
            .await?,
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
        })
    }
}
