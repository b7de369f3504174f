//! How to reach Cassandra and which keyspace to use: [`CassandraConfig`] and [`Replication`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dsf::store::{COMMIT_ATTRIBUTES, StoreError, StoreResult};
use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslConnectorBuilder, SslMethod, SslVerifyMode};
use openssl::x509::X509;
use openssl::x509::store::X509StoreBuilder;
pub use scylla::statement::{Consistency, SerialConsistency};

/// The environment variable that names the Cassandra node of [`CassandraConfig::local`], as
/// `host:port`.
pub const CASSANDRA_ENV: &str = "DSF_CASSANDRA";

/// The node [`CassandraConfig::local`] uses when [`CASSANDRA_ENV`] is not set.
pub const LOCAL_NODE: &str = "127.0.0.1:9042";

/// The longest keyspace name Cassandra accepts.
const MAX_KEYSPACE_LEN: usize = 48;

/// How a new keyspace is replicated. An existing keyspace must have this replication: it is
/// never altered, and connecting to one that differs fails with both values.
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

impl Replication {
    /// The replication options as `system_schema.keyspaces` lists them, with the class's short
    /// name.
    pub(crate) fn options(&self) -> BTreeMap<String, String> {
        let mut options = BTreeMap::new();
        match self {
            Replication::Simple { factor } => {
                options.insert("class".to_string(), "SimpleStrategy".to_string());
                options.insert("replication_factor".to_string(), factor.to_string());
            }
            Replication::NetworkTopology(dcs) => {
                options.insert("class".to_string(), "NetworkTopologyStrategy".to_string());
                options.extend(dcs.iter().map(|(dc, f)| (dc.clone(), f.to_string())));
            }
        }
        options
    }
}

/// Replication options as a TOML inline table, the form of the configuration file:
/// `{ class = "SimpleStrategy", replication_factor = 3 }`.
pub(crate) fn describe_replication(options: &BTreeMap<String, String>) -> String {
    let value =
        |v: &String| if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) { v.clone() } else { format!("{v:?}") };
    let class = options.get("class").map(|c| format!("class = {}", value(c)));
    let rest = options.iter().filter(|(k, _)| k.as_str() != "class").map(|(k, v)| format!("{k} = {}", value(v)));
    format!("{{ {} }}", class.into_iter().chain(rest).collect::<Vec<_>>().join(", "))
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
    /// An existing keyspace with another replication is refused, never altered.
    pub replication: Replication,
    /// The data centre whose nodes the driver prefers (default: none, every node alike). It
    /// also changes the default consistencies to their `LOCAL_` forms.
    pub local_datacenter: Option<String>,
    /// The consistency of reads and writes (default `QUORUM`, or `LOCAL_QUORUM` with a local
    /// data centre); see [`CassandraConfig::consistency`].
    pub consistency: Option<Consistency>,
    /// The consistency of compare-and-set and of heads reads (default `SERIAL`, or
    /// `LOCAL_SERIAL` with a local data centre); see [`CassandraConfig::serial_consistency`].
    pub serial_consistency: Option<SerialConsistency>,
    /// Username and password (default: none, for a cluster without authentication).
    pub credentials: Option<Credentials>,
    /// TLS to every node (default: none, plain TCP).
    pub tls: Option<TlsFiles>,
    /// The most statements one operation keeps in flight (default 64).
    pub max_concurrency: usize,
    /// The attribute names rows may carry (default [`COMMIT_ATTRIBUTES`]).
    pub indexed_attributes: Vec<String>,
    /// How long one statement may take, retries included (default 30 s).
    pub request_timeout: Duration,
}

/// A username and its password. Its `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The Cassandra role.
    pub username: String,
    /// Its password.
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("username", &self.username).field("password", &"<redacted>").finish()
    }
}

/// PEM files for TLS: the certificate authority that signed the nodes' certificates and,
/// optionally, a client certificate with its private key. The driver checks each node's
/// certificate against the CA and against the node's IP address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate(s), PEM.
    pub ca: PathBuf,
    /// The client certificate chain, PEM (with `key`).
    pub cert: Option<PathBuf>,
    /// The client certificate's private key, PEM (with `cert`).
    pub key: Option<PathBuf>,
}

/// The environment variables [`CassandraConfig::local`] reads credentials from.
pub const USERNAME_ENV: &str = "DSF_CASSANDRA_USERNAME";
/// See [`USERNAME_ENV`].
pub const PASSWORD_ENV: &str = "DSF_CASSANDRA_PASSWORD";

impl CassandraConfig {
    /// A configuration with defaults for everything but the keyspace.
    pub fn new(keyspace: impl Into<String>) -> CassandraConfig {
        CassandraConfig {
            contact_points: vec![LOCAL_NODE.to_string()],
            keyspace: keyspace.into(),
            replication: Replication::default(),
            local_datacenter: None,
            consistency: None,
            serial_consistency: None,
            credentials: None,
            tls: None,
            max_concurrency: 64,
            indexed_attributes: COMMIT_ATTRIBUTES.iter().map(|s| s.to_string()).collect(),
            request_timeout: Duration::from_secs(30),
        }
    }

    /// The configuration for a local test node: the node named by `$DSF_CASSANDRA`
    /// (`host:port`), or `127.0.0.1:9042`, the credentials of `$DSF_CASSANDRA_USERNAME` and
    /// `$DSF_CASSANDRA_PASSWORD` if set, and defaults for everything else.
    pub fn local(keyspace: impl Into<String>) -> CassandraConfig {
        let mut config = CassandraConfig::new(keyspace);
        let var = |name: &str| std::env::var(name).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        if let Some(node) = var(CASSANDRA_ENV) {
            config.contact_points = vec![node];
        }
        if let Some(username) = var(USERNAME_ENV) {
            config.credentials = Some(Credentials { username, password: var(PASSWORD_ENV).unwrap_or_default() });
        }
        config
    }

    /// The consistency of reads and writes: the configured one, or `QUORUM` (`LOCAL_QUORUM`
    /// with a local data centre).
    pub fn consistency(&self) -> Consistency {
        self.consistency.unwrap_or(if self.local_datacenter.is_some() {
            Consistency::LocalQuorum
        } else {
            Consistency::Quorum
        })
    }

    /// The serial consistency: the configured one, or `SERIAL` (`LOCAL_SERIAL` with a local
    /// data centre).
    pub fn serial_consistency(&self) -> SerialConsistency {
        self.serial_consistency.unwrap_or(if self.local_datacenter.is_some() {
            SerialConsistency::LocalSerial
        } else {
            SerialConsistency::Serial
        })
    }
}

/// Parses a consistency level by its CQL name (`QUORUM`, `LOCAL_QUORUM`, `ONE`, …; any case).
pub fn parse_consistency(name: &str) -> StoreResult<Consistency> {
    let level = match name.trim().to_ascii_uppercase().as_str() {
        "ANY" => Consistency::Any,
        "ONE" => Consistency::One,
        "TWO" => Consistency::Two,
        "THREE" => Consistency::Three,
        "QUORUM" => Consistency::Quorum,
        "ALL" => Consistency::All,
        "LOCAL_QUORUM" => Consistency::LocalQuorum,
        "EACH_QUORUM" => Consistency::EachQuorum,
        "LOCAL_ONE" => Consistency::LocalOne,
        _ => {
            return Err(StoreError::Invalid(format!(
                "unknown consistency {name:?}: use one of ONE, TWO, THREE, QUORUM, ALL, LOCAL_QUORUM, \
                 EACH_QUORUM, LOCAL_ONE (ANY is accepted for writes only)"
            )));
        }
    };
    Ok(level)
}

/// Parses a serial consistency by its CQL name (`SERIAL` or `LOCAL_SERIAL`; any case).
pub fn parse_serial_consistency(name: &str) -> StoreResult<SerialConsistency> {
    match name.trim().to_ascii_uppercase().as_str() {
        "SERIAL" => Ok(SerialConsistency::Serial),
        "LOCAL_SERIAL" => Ok(SerialConsistency::LocalSerial),
        _ => Err(StoreError::Invalid(format!("unknown serial consistency {name:?}: use SERIAL or LOCAL_SERIAL"))),
    }
}

impl TlsFiles {
    /// The driver's TLS context: the CA checked as PEM certificates, the client certificate
    /// and key loaded and matched. Errors name the file and what is wrong with it.
    pub(crate) fn context(&self) -> StoreResult<SslConnectorBuilder> {
        let read = |what: &str, path: &Path| {
            std::fs::read(path)
                .map_err(|e| StoreError::Invalid(format!("cannot read the TLS {what} file {}: {e}", path.display())))
        };
        let not_pem = |what: &str, path: &Path, e: &dyn fmt::Display| {
            StoreError::Invalid(format!("the TLS {what} file {} is not PEM ({e}): give a PEM file", path.display()))
        };
        let ca = read("CA", &self.ca)?;
        let cas = X509::stack_from_pem(&ca).map_err(|e| not_pem("CA", &self.ca, &e))?;
        if cas.is_empty() {
            return Err(not_pem("CA", &self.ca, &"no certificate in it"));
        }
        let tls_error = |e: openssl::error::ErrorStack| StoreError::Backend(format!("TLS setup: {e}"));
        let mut builder = SslConnector::builder(SslMethod::tls_client()).map_err(tls_error)?;
        let mut store = X509StoreBuilder::new().map_err(tls_error)?;
        for cert in cas {
            store.add_cert(cert).map_err(tls_error)?;
        }
        builder.set_verify_cert_store(store.build()).map_err(tls_error)?;
        builder.set_verify(SslVerifyMode::PEER);
        match (&self.cert, &self.key) {
            (None, None) => {}
            (Some(cert_path), Some(key_path)) => {
                let chain = X509::stack_from_pem(&read("client certificate", cert_path)?)
                    .map_err(|e| not_pem("client certificate", cert_path, &e))?;
                let mut chain = chain.into_iter();
                let leaf =
                    chain.next().ok_or_else(|| not_pem("client certificate", cert_path, &"no certificate in it"))?;
                let key = PKey::private_key_from_pem(&read("client key", key_path)?)
                    .map_err(|e| not_pem("client key", key_path, &e))?;
                builder.set_certificate(&leaf).map_err(tls_error)?;
                for intermediate in chain {
                    builder.add_extra_chain_cert(intermediate).map_err(tls_error)?;
                }
                builder.set_private_key(&key).map_err(tls_error)?;
                builder.check_private_key().map_err(|e| {
                    StoreError::Invalid(format!(
                        "the TLS client key {} does not belong to the certificate {}: {e}",
                        key_path.display(),
                        cert_path.display()
                    ))
                })?;
            }
            _ => {
                return Err(StoreError::Invalid(
                    "a TLS client certificate needs its key, and a key its certificate".into(),
                ));
            }
        }
        Ok(builder)
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

    #[test]
    fn consistency_defaults_follow_the_local_datacenter() {
        let mut config = CassandraConfig::new("k");
        assert_eq!(
            (config.consistency(), config.serial_consistency()),
            (Consistency::Quorum, SerialConsistency::Serial)
        );
        config.local_datacenter = Some("dc1".into());
        assert_eq!(
            (config.consistency(), config.serial_consistency()),
            (Consistency::LocalQuorum, SerialConsistency::LocalSerial)
        );
        config.consistency = Some(parse_consistency("all").unwrap());
        config.serial_consistency = Some(parse_serial_consistency("SERIAL").unwrap());
        assert_eq!((config.consistency(), config.serial_consistency()), (Consistency::All, SerialConsistency::Serial));
        assert!(parse_consistency("MOST").is_err());
        assert!(parse_serial_consistency("QUORUM").is_err());
    }

    #[test]
    fn the_password_never_shows_in_debug() {
        let mut config = CassandraConfig::new("k");
        config.credentials = Some(Credentials { username: "dsf".into(), password: "s3cret-pass".into() });
        let shown = format!("{config:?}");
        assert!(shown.contains("\"dsf\"") && shown.contains("<redacted>") && !shown.contains("s3cret-pass"), "{shown}");
    }

    #[test]
    fn replication_is_described_as_the_configuration_writes_it() {
        let simple = Replication::Simple { factor: 3 }.options();
        assert_eq!(describe_replication(&simple), "{ class = \"SimpleStrategy\", replication_factor = 3 }");
        let dcs = Replication::NetworkTopology([("dc1".to_string(), 3), ("dc2".to_string(), 2)].into()).options();
        assert_eq!(describe_replication(&dcs), "{ class = \"NetworkTopologyStrategy\", dc1 = 3, dc2 = 2 }");
    }
}
