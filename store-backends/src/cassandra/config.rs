//! How to reach Cassandra and which keyspace to use: [`CassandraConfig`] and [`Replication`].

use std::collections::BTreeMap;
use std::time::Duration;

use dsf::store::{COMMIT_ATTRIBUTES, StoreError, StoreResult};

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
    pub(crate) fn cql(&self) -> StoreResult<String> {
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
pub(crate) fn check_keyspace(name: &str) -> StoreResult<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
