//! The `heads` table: one row per repository, changed only by lightweight transactions.

use std::future::Future;

use bytes::Bytes;
use dsf::store::{Cas, HeadStore, StoreError, StoreResult, Versioned};
use scylla::response::query_result::QueryResult;
use scylla::value::CqlValue;

use super::CassandraStore;
use super::codec::{first_row_error, rows_error};

impl CassandraStore {
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

#[cfg(test)]
mod tests {
    use super::super::testing::store;
    use super::*;

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
}
