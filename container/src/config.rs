//! The `dsf-container` configuration file (TOML).
//!
//! ```toml
//! sysname = "dsf"                                        # scopes service queues
//! broker = "amqp://guest:guest@127.0.0.1:5672/%2f"       # omit to serve gRPC only
//! grpc = "127.0.0.1:50051"                               # omit to serve AMQP only
//! max_message = 67108864                                 # largest request accepted, bytes
//! durable_queues = false                                 # true: requests survive a broker restart
//! broker_retry_secs = 300                                # give up on a lost broker after; 0: never
//! types = ["my-types.pb"]                                # descriptor sets of user types
//!
//! [store]
//! kind = "rocksdb"                                       # or "cassandra", "memory"
//! path = "/var/lib/dsf"                                  # rocksdb
//! # contact_points = ["127.0.0.1:9042"]                  # cassandra
//! # keyspace = "dsf"                                     # cassandra
//!
//! [[apps]]
//! name = "datastore"                                     # the only app so far
//! instances = 1
//! ```

use std::path::PathBuf;

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
    Cassandra {
        /// `host:port` of one or more nodes.
        contact_points: Vec<String>,
        /// The keyspace (created if missing).
        keyspace: String,
    },
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
             [[apps]]\nname = \"datastore\"\ninstances = 4\n",
        )
        .unwrap();
        assert_eq!(c.apps[0].instances, 4);
        assert!(matches!(c.store, StoreConfig::Cassandra { .. }));
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
}
