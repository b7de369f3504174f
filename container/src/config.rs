//! The `dsf-container` configuration file (TOML).
//!
//! ```toml
//! sysname = "dsf"                                        # scopes service queues
//! broker = "amqp://guest:guest@127.0.0.1:5672/%2f"       # omit to serve gRPC only
//! grpc = "127.0.0.1:50051"                               # omit to serve AMQP only
//! max_message = 67108864                                 # largest request accepted, bytes
//! part_bytes = 4194304                                   # bound of one part of a transfer
//! durable_queues = false                                 # true: requests survive a broker restart
//! broker_retry_secs = 300                                # give up on a lost broker after; 0: never
//! types = ["my-types.pb"]                                # descriptor sets of user types
//!
//! [store]
//! kind = "rocksdb"                                       # or "cassandra", "memory"
//! path = "/var/lib/dsf"                                  # rocksdb
//!
//! [[apps]]
//! name = "datastore"                                     # the only app so far
//! instances = 1
//! ```
//!
//! A Cassandra store (see [`CassandraSettings`]; `dsf-container --help` explains every key):
//!
//! ```toml
//! [store]
//! kind = "cassandra"
//! contact_points = ["10.0.0.1:9042", "10.0.0.2:9042"]
//! keyspace = "dsf"
//! replication = { class = "NetworkTopologyStrategy", dc1 = 3 }
//! local_datacenter = "dc1"
//! username = "dsf"
//! password_file = "/etc/dsf/cassandra-password"
//! tls_ca = "/etc/dsf/ca.pem"
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use dsf_store_backends::cassandra::{Replication, parse_consistency, parse_serial_consistency};
use serde::Deserialize;

/// The whole file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Scopes service queues (`<sysname>.datastore`); the container id when absent.
    pub sysname: Option<String>,
    /// The AMQP broker URL; without one the container serves gRPC only.
    pub broker: Option<String>,
    /// The gRPC listen address.
    pub grpc: Option<String>,
    /// The largest request accepted over AMQP, in bytes.
    pub max_message: Option<usize>,
    /// The most bytes of elements one reply of a bounded transfer carries over AMQP (a page of
    /// a negotiated pull, a bounded `fetch_blobs` reply); default 4 MiB.
    pub part_bytes: Option<usize>,
    /// Declare the worker queue durable, so that it and the (persistent) requests in it survive
    /// a broker restart. ION's worker queues are not durable (the default).
    #[serde(default)]
    pub durable_queues: bool,
    /// How long, in seconds, to try reconnecting to a lost broker before the container exits
    /// (code 3); 0: forever. Default 300.
    pub broker_retry_secs: Option<u64>,
    /// Descriptor sets (`protoc --include_imports --descriptor_set_out`) of user types, relative
    /// to the configuration file: objects of types the datastore does not know are refused.
    #[serde(default)]
    pub types: Vec<PathBuf>,
    /// The store.
    #[serde(default)]
    pub store: StoreConfig,
    /// The apps to start.
    #[serde(default = "default_apps")]
    pub apps: Vec<App>,
}

/// Which store the datastore uses.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// The embedded RocksDB (the default), in `path` (default `./dsf-data`).
    Rocksdb {
        /// The database folder.
        #[serde(default = "default_path")]
        path: PathBuf,
    },
    /// A Cassandra cluster.
    Cassandra(Box<CassandraSettings>),
    /// In memory: gone when the container stops (for trials).
    Memory,
}

impl Default for StoreConfig {
    fn default() -> StoreConfig {
        StoreConfig::Rocksdb { path: default_path() }
    }
}

fn default_path() -> PathBuf {
    PathBuf::from("dsf-data")
}

/// The keys of a Cassandra store, as written; [`CassandraSettings::check`] validates them and
/// `dsf-container` turns them into the store's configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CassandraSettings {
    /// `host:port` of one or more nodes.
    pub contact_points: Vec<String>,
    /// The keyspace (created if missing, with `replication`).
    pub keyspace: String,
    /// `{ class = "SimpleStrategy", replication_factor = N }` or
    /// `{ class = "NetworkTopologyStrategy", <dc> = N, … }`: a missing keyspace is created so;
    /// an existing one must have this replication (it is never altered).
    pub replication: BTreeMap<String, Scalar>,
    /// The data centre whose nodes are preferred.
    pub local_datacenter: Option<String>,
    /// Reads and writes (default QUORUM, LOCAL_QUORUM with `local_datacenter`).
    pub consistency: Option<String>,
    /// Compare-and-set (default SERIAL, LOCAL_SERIAL with `local_datacenter`).
    pub serial_consistency: Option<String>,
    /// The Cassandra role; then exactly one of `password_env` and `password_file`.
    pub username: Option<String>,
    /// The environment variable that holds the password.
    pub password_env: Option<String>,
    /// The file that holds the password (relative to the configuration file; one trailing
    /// newline is ignored).
    pub password_file: Option<PathBuf>,
    /// The CA certificate(s) of the nodes, PEM: enables TLS.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate chain, PEM (with `tls_key`).
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's private key, PEM (with `tls_cert`).
    pub tls_key: Option<PathBuf>,
    /// How long one statement may take, retries included, in milliseconds (default 30000).
    pub request_timeout_ms: Option<u64>,
    /// The most statements one operation keeps in flight (default 64).
    pub max_concurrency: Option<usize>,
}

/// A value of the `replication` table: the class name or a replication factor.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Scalar {
    /// A string (the class).
    Text(String),
    /// An integer (a replication factor).
    Int(i64),
}

impl CassandraSettings {
    /// The replication the `replication` table describes.
    pub fn replication(&self) -> Result<Replication, String> {
        const SIMPLE: &str = "SimpleStrategy";
        const NETWORK: &str = "NetworkTopologyStrategy";
        let example = "e.g. replication = { class = \"SimpleStrategy\", replication_factor = 3 } or \
                       { class = \"NetworkTopologyStrategy\", dc1 = 3, dc2 = 2 }";
        let factor = |name: &str, value: &Scalar| match value {
            Scalar::Int(n) if (1..=i64::from(u32::MAX)).contains(n) => Ok(*n as u32),
            _ => Err(format!("replication: {name} must be a replication factor of at least 1, not {value:?}")),
        };
        let class = match self.replication.get("class") {
            Some(Scalar::Text(class)) => class.strip_prefix("org.apache.cassandra.locator.").unwrap_or(class),
            _ => return Err(format!("replication has no class: {example}")),
        };
        let others = self.replication.iter().filter(|(k, _)| k.as_str() != "class");
        match class {
            SIMPLE => {
                let mut factors = others.map(|(k, v)| match k.as_str() {
                    "replication_factor" => factor(k, v),
                    _ => Err(format!("replication: {SIMPLE} takes only replication_factor, not {k:?}")),
                });
                match (factors.next(), factors.next()) {
                    (Some(Ok(factor)), None) => Ok(Replication::Simple { factor }),
                    (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e),
                    _ => Err(format!("replication: {SIMPLE} needs replication_factor: {example}")),
                }
            }
            NETWORK => {
                let dcs =
                    others.map(|(k, v)| Ok((k.clone(), factor(k, v)?))).collect::<Result<BTreeMap<_, _>, String>>()?;
                if dcs.is_empty() {
                    return Err(format!("replication: {NETWORK} needs a factor per data centre: {example}"));
                }
                Ok(Replication::NetworkTopology(dcs))
            }
            other => Err(format!("unknown replication class {other:?}: use {SIMPLE} or {NETWORK}")),
        }
    }

    /// Checks every key that can be checked without the cluster.
    pub fn check(&self) -> Result<(), String> {
        if self.contact_points.is_empty() {
            return Err("contact_points is empty: name at least one node, e.g. [\"10.0.0.1:9042\"]".into());
        }
        self.replication()?;
        if let Some(c) = &self.consistency {
            parse_consistency(c).map_err(|e| format!("consistency: {e}"))?;
        }
        if let Some(c) = &self.serial_consistency {
            parse_serial_consistency(c).map_err(|e| format!("serial_consistency: {e}"))?;
        }
        match (&self.username, &self.password_env, &self.password_file) {
            (Some(_), Some(_), None) | (Some(_), None, Some(_)) | (None, None, None) => {}
            (Some(_), None, None) => {
                return Err("username needs a password: set password_env or password_file".into());
            }
            (Some(_), Some(_), Some(_)) => {
                return Err("password_env and password_file are both set: keep one".into());
            }
            (None, _, _) => return Err("password_env or password_file without username: set username".into()),
        }
        match (&self.tls_ca, &self.tls_cert, &self.tls_key) {
            (_, Some(_), None) => return Err("tls_cert needs tls_key (the certificate's private key)".into()),
            (_, None, Some(_)) => return Err("tls_key needs tls_cert (the client certificate)".into()),
            (None, Some(_), Some(_)) => {
                return Err("tls_cert and tls_key need tls_ca (the CA of the nodes' certificates)".into());
            }
            _ => {}
        }
        if self.request_timeout_ms == Some(0) {
            return Err("request_timeout_ms must be at least 1".into());
        }
        if self.max_concurrency == Some(0) {
            return Err("max_concurrency must be at least 1".into());
        }
        Ok(())
    }
}

/// An app: a service the container starts, in one or more processes.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct App {
    /// The service name (`datastore`).
    pub name: String,
    /// How many processes serve it (they share its worker queue).
    #[serde(default = "one")]
    pub instances: usize,
}

fn one() -> usize {
    1
}

fn default_apps() -> Vec<App> {
    vec![App { name: "datastore".into(), instances: 1 }]
}

impl Config {
    /// How long to try reconnecting to a lost broker; `None`: forever.
    pub fn broker_retry(&self) -> Option<std::time::Duration> {
        match self.broker_retry_secs {
            None => Some(crate::amqp::DEFAULT_BROKER_RETRY),
            Some(0) => None,
            Some(s) => Some(std::time::Duration::from_secs(s)),
        }
    }

    /// Parses a configuration, checking what it names.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string())?;
        for app in &config.apps {
            if app.name != "datastore" {
                return Err(format!("unknown app {:?}: the container runs the \"datastore\" app", app.name));
            }
            if app.instances == 0 {
                return Err(format!("app {:?} has 0 instances", app.name));
            }
        }
        if let StoreConfig::Cassandra(cassandra) = &config.store {
            cassandra.check().map_err(|e| format!("[store]: {e}"))?;
        }
        if config.broker.is_none() && config.grpc.is_none() {
            return Err("neither `broker` nor `grpc` is set: the container would serve nothing".into());
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let c = Config::parse("grpc = \"127.0.0.1:0\"").unwrap();
        assert_eq!(c.store, StoreConfig::Rocksdb { path: "dsf-data".into() });
        assert_eq!(c.apps, vec![App { name: "datastore".into(), instances: 1 }]);
        let c = Config::parse(
            "broker = \"amqp://x\"\n[store]\nkind = \"cassandra\"\ncontact_points = [\"h:1\"]\nkeyspace = \"k\"\n\
             replication = { class = \"SimpleStrategy\", replication_factor = 1 }\n\
             [[apps]]\nname = \"datastore\"\ninstances = 4\n",
        )
        .unwrap();
        assert_eq!(c.apps[0].instances, 4);
        assert!(matches!(c.store, StoreConfig::Cassandra(_)));
        assert!(Config::parse("").unwrap_err().contains("neither"));
        assert!(Config::parse("grpc = \"a\"\n[[apps]]\nname = \"mail\"").unwrap_err().contains("unknown app"));
        assert!(Config::parse("grpc = \"a\"\nbrokr = \"x\"").unwrap_err().contains("unknown field"));
    }

    #[test]
    fn broker_keys() {
        let c = Config::parse("broker = \"amqp://x\"").unwrap();
        assert!(!c.durable_queues);
        assert_eq!(c.broker_retry(), Some(crate::amqp::DEFAULT_BROKER_RETRY));
        let c = Config::parse("broker = \"amqp://x\"\ndurable_queues = true\nbroker_retry_secs = 0").unwrap();
        assert!(c.durable_queues);
        assert_eq!(c.broker_retry(), None, "0: retry forever");
        let c = Config::parse("broker = \"amqp://x\"\nbroker_retry_secs = 7").unwrap();
        assert_eq!(c.broker_retry(), Some(std::time::Duration::from_secs(7)));
        assert!(Config::parse("broker = \"amqp://x\"\ndurable_queues = \"yes\"").is_err());
        assert!(Config::parse("broker = \"amqp://x\"\nbroker_retry_secs = -1").is_err());
    }

    fn cassandra(keys: &str) -> Result<CassandraSettings, String> {
        let text = format!(
            "grpc = \"a\"\n[store]\nkind = \"cassandra\"\ncontact_points = [\"h:1\"]\nkeyspace = \"k\"\n{keys}"
        );
        match Config::parse(&text)?.store {
            StoreConfig::Cassandra(c) => Ok(*c),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_cassandra_key_of_the_documented_example_parses() {
        let c = cassandra(
            "replication = { class = \"NetworkTopologyStrategy\", dc1 = 3, dc2 = 2 }\n\
             local_datacenter = \"dc1\"\nconsistency = \"LOCAL_QUORUM\"\nserial_consistency = \"LOCAL_SERIAL\"\n\
             username = \"dsf\"\npassword_env = \"DSF_CASSANDRA_PASSWORD\"\ntls_ca = \"/etc/dsf/ca.pem\"\n\
             tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\nrequest_timeout_ms = 12000\nmax_concurrency = 64\n",
        )
        .unwrap();
        assert_eq!(
            c.replication().unwrap(),
            Replication::NetworkTopology([("dc1".into(), 3), ("dc2".into(), 2)].into())
        );
        assert_eq!(c.local_datacenter.as_deref(), Some("dc1"));
        assert_eq!(c.request_timeout_ms, Some(12000));
        let c = cassandra("replication = { class = \"SimpleStrategy\", replication_factor = 3 }\n").unwrap();
        assert_eq!(c.replication().unwrap(), Replication::Simple { factor: 3 });
        assert_eq!((c.username, c.tls_ca, c.consistency), (None, None, None));
    }

    #[test]
    fn bad_cassandra_keys_are_clear_errors() {
        let simple = "replication = { class = \"SimpleStrategy\", replication_factor = 3 }\n";
        for (keys, expected) in [
            ("", "missing field `replication`"),
            ("replication = { replication_factor = 3 }\n", "replication has no class"),
            ("replication = { class = \"SimpleStrategy\" }\n", "needs replication_factor"),
            ("replication = { class = \"SimpleStrategy\", replication_factor = 0 }\n", "at least 1"),
            ("replication = { class = \"SimpleStrategy\", dc1 = 3 }\n", "takes only replication_factor"),
            ("replication = { class = \"NetworkTopologyStrategy\" }\n", "a factor per data centre"),
            ("replication = { class = \"Everywhere\", x = 1 }\n", "unknown replication class"),
            ("consistency = \"MOST\"\n", "unknown consistency"),
            ("serial_consistency = \"QUORUM\"\n", "use SERIAL or LOCAL_SERIAL"),
            ("username = \"u\"\n", "set password_env or password_file"),
            ("username = \"u\"\npassword_env = \"P\"\npassword_file = \"f\"\n", "both set"),
            ("password_env = \"P\"\n", "without username"),
            ("tls_ca = \"ca\"\ntls_cert = \"c\"\n", "tls_cert needs tls_key"),
            ("tls_cert = \"c\"\ntls_key = \"k\"\n", "need tls_ca"),
            ("request_timeout_ms = 0\n", "at least 1"),
            ("password = \"secret\"\n", "unknown field `password`"),
        ] {
            let keys = if keys.starts_with("replication") || keys.is_empty() {
                keys.to_string()
            } else {
                format!("{simple}{keys}")
            };
            let err = cassandra(&keys).unwrap_err();
            assert!(err.contains(expected), "{keys}: {err}");
        }
    }
}
