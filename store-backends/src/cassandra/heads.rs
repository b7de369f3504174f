//! The `heads` table: one row per repository, changed only by lightweight transactions.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use dsf::store::{Cas, HeadStore, StoreError, StoreResult, Versioned};
use scylla::errors::ExecutionError;
use scylla::response::query_result::QueryResult;
use scylla::value::CqlValue;

use super::CassandraStore;
use super::codec::{execution_error, first_row_error, outcome_unknown, rows_error};

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
            None => (self.session.execute_unpaged(&s.insert_heads, (&repository, &record)).await, 1),
            Some(v) => {
                let expected = version_to_cql(v)?;
                let next = expected
                    .checked_add(1)
                    .ok_or_else(|| StoreError::Invalid(format!("heads version {v} of {repository} cannot grow")))?;
                (self.session.execute_unpaged(&s.update_heads, (next, &record, &repository, expected)).await, v + 1)
            }
        };
        let result = match result {
            Ok(result) => result,
            Err(e) if outcome_unknown(&e) => return self.settle(repository, version, record, e).await,
            Err(e) => {
                return Err(match execution_error(e) {
                    StoreError::Unavailable(m) => {
                        StoreError::Unavailable(format!("compare-and-set of the heads of {repository}: {m}"))
                    }
                    other => other,
                });
            }
        };
        match lwt_outcome(result)? {
            Lwt::Applied => Ok(Cas::Applied(version)),
            Lwt::Lost(Some(current)) => Ok(Cas::Lost(Some(current))),
            Lwt::Lost(None) => Ok(Cas::Lost(self.read_heads(repository).await?)),
        }
    }
}

/// How many serial reads try to settle a compare-and-set whose outcome is unknown, and the
/// pause before the second (doubled before each next one): about 6 s in all.
const SETTLE_READS: u32 = 7;
const SETTLE_FIRST_PAUSE: Duration = Duration::from_millis(100);

impl CassandraStore {
    /// Settles a compare-and-set whose outcome is unknown (`cause`: a timeout, or a connection
    /// lost after the request was sent) by reading the heads at the serial consistency, which
    /// completes or supersedes any transaction still in flight: our record at our version is
    /// `Applied`, anything else `Lost` with the current record (writers merge on a lost race,
    /// so a write that applied and was since replaced is harmless). When no read answers, the
    /// outcome stays unknown: an `Unavailable` error that says so, never `Applied`.
    async fn settle(&self, repository: String, version: u64, record: Bytes, cause: ExecutionError) -> StoreResult<Cas> {
        let mut pause = SETTLE_FIRST_PAUSE;
        let mut last = None;
        for read in 0..SETTLE_READS {
            if read > 0 {
                tokio::time::sleep(pause).await;
                pause *= 2;
            }
            match self.read_heads(repository.clone()).await {
                Ok(Some(current)) if current.version == version && current.record == record => {
                    return Ok(Cas::Applied(version));
                }
                Ok(current) => return Ok(Cas::Lost(current)),
                Err(e) => last = Some(e),
            }
        }
        let last = last.map_or_else(String::new, |e| e.to_string());
        Err(StoreError::Unavailable(format!(
            "compare-and-set of the heads of {repository}: the outcome is unknown ({cause}) and {SETTLE_READS} \
             serial reads could not settle it (last: {last}); nothing may be acknowledged, retry later"
        )))
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
    use super::super::CassandraConfig;
    use super::super::proxy::{Fault, Proxy};
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

    /// A store of the keyspace of `store`, connected through `proxy`.
    async fn through(proxy: &Proxy, store: &CassandraStore) -> CassandraStore {
        let mut config = CassandraConfig::local(store.keyspace());
        config.contact_points = vec![proxy.addr().to_string()];
        CassandraStore::connect(config).await.unwrap()
    }

    fn node() -> std::net::SocketAddr {
        use std::net::ToSocketAddrs;
        let node = &CassandraConfig::local("x").contact_points[0];
        node.to_socket_addrs().unwrap().next().unwrap()
    }

    fn versioned(version: u64, record: &'static [u8]) -> Option<Versioned> {
        Some(Versioned { version, record: Bytes::from_static(record) })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_compare_and_set_whose_answer_is_lost_is_settled_by_a_serial_read() {
        let direct = store("unknown").await;
        let proxy = Proxy::start(node()).await;
        let store = through(&proxy, &direct).await;
        let repo = || "repo".to_string();

        // The insert reaches the node, its answer is lost: settled as applied.
        proxy.arm(Fault::LoseAnswer, false);
        let outcome = store.cas_heads(repo(), None, Bytes::from_static(b"first")).await.unwrap();
        assert_eq!(proxy.struck(), 1);
        assert_eq!(outcome, Cas::Applied(1));
        assert_eq!(direct.get_heads(repo()).await.unwrap(), versioned(1, b"first"));

        // The update never reaches the node: settled as lost, with the current record.
        proxy.arm(Fault::LoseRequest, false);
        let outcome = store.cas_heads(repo(), Some(1), Bytes::from_static(b"second")).await.unwrap();
        assert_eq!(proxy.struck(), 2);
        assert_eq!(outcome, Cas::Lost(versioned(1, b"first")));

        // An update whose answer is lost: applied.
        proxy.arm(Fault::LoseAnswer, false);
        let outcome = store.cas_heads(repo(), Some(1), Bytes::from_static(b"third")).await.unwrap();
        assert_eq!(proxy.struck(), 3);
        assert_eq!(outcome, Cas::Applied(2));
        assert_eq!(direct.get_heads(repo()).await.unwrap(), versioned(2, b"third"));

        // The answer is lost and the node then unreachable: the outcome stays unknown, an error.
        proxy.arm(Fault::LoseAnswer, true);
        let err = store.cas_heads(repo(), Some(2), Bytes::from_static(b"fourth")).await.unwrap_err();
        assert_eq!(proxy.struck(), 4);
        assert!(matches!(&err, StoreError::Unavailable(m) if m.contains("outcome is unknown")), "{err}");
        // It did apply: only a serial read could have told.
        assert_eq!(direct.get_heads(repo()).await.unwrap(), versioned(3, b"fourth"));

        proxy.light();
        direct.drop_keyspace().await.unwrap();
    }
}
