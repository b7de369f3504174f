//! `dsf-container`: runs a capability container with the datastore service, from a
//! configuration file. See `dsf-container --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use dsf::Registry;
use dsf::store::Store;
use dsf::store::memory::MemoryStore;
use dsf_container::amqp::{Container, ContainerConfig, DEFAULT_MAX_MESSAGE};
use dsf_container::config::{CassandraSettings, Config, StoreConfig};
use dsf_container::datastore::Datastore;
use dsf_container::datastore::service::{DatastoreService, SERVICE};
use dsf_store_backends::cassandra::{
    CassandraConfig, CassandraStore, Credentials, TlsFiles, parse_consistency, parse_serial_consistency,
};
use dsf_store_backends::rocks::RocksStore;
use tokio::sync::watch;

const HELP: &str = "\
dsf-container: a capability container running DSF's datastore service

Usage: dsf-container --config FILE

Serves the datastore over AMQP (ION's message protocol, on the worker queue
<sysname>.datastore of the broker) and/or gRPC, on the store the file names.
Stops cleanly on SIGTERM or Ctrl-C: requests in flight are finished first.

Configuration (TOML):
  sysname = \"dsf\"                                   # scopes service queues
  broker = \"amqp://guest:guest@127.0.0.1:5672/%2f\"  # omit to serve gRPC only
  grpc = \"127.0.0.1:50051\"                          # omit to serve AMQP only
  max_message = 67108864                            # largest request, bytes
  types = [\"my-types.pb\"]                           # descriptor sets of user types

  [store]
  kind = \"rocksdb\"                                  # the default
  path = \"/var/lib/dsf\"

  [store]                                           # or a Cassandra cluster:
  kind = \"cassandra\"
  contact_points = [\"10.0.0.1:9042\", \"10.0.0.2:9042\"]  # some nodes, host:port
  keyspace = \"dsf\"                                  # created if missing
  replication = { class = \"SimpleStrategy\", replication_factor = 3 }
  # replication = { class = \"NetworkTopologyStrategy\", dc1 = 3, dc2 = 2 }
                        # required: a missing keyspace is created with it; an existing
                        # keyspace must have it (it is reported, never altered)
  local_datacenter = \"dc1\"       # optional: the driver prefers this data centre's nodes
  consistency = \"QUORUM\"         # reads and writes: ONE, QUORUM, LOCAL_QUORUM, ALL, ...
                                 # (default QUORUM, LOCAL_QUORUM with local_datacenter)
  serial_consistency = \"SERIAL\"  # compare-and-set of heads: SERIAL or LOCAL_SERIAL
                                 # (default SERIAL, LOCAL_SERIAL with local_datacenter)
  username = \"dsf\"               # optional; then exactly one of:
  password_env = \"DSF_CASSANDRA_PASSWORD\"         #   the variable holding the password
  # password_file = \"/etc/dsf/cassandra-password\" #   or a file holding it
                                 # (the password is never logged)
  tls_ca = \"/etc/dsf/ca.pem\"     # optional: TLS; the CA of the nodes' certificates, PEM
                                 # (each node's certificate must name its IP address)
  # tls_cert = \"/etc/dsf/client.pem\"      # with tls_key: a client certificate, PEM
  # tls_key = \"/etc/dsf/client-key.pem\"
  request_timeout_ms = 12000     # per statement, retries included (default 30000)
  max_concurrency = 64           # statements in flight per operation (default 64)
  Paths (types, password_file, tls_*) are relative to the configuration file.

  [[apps]]
  name = \"datastore\"
  instances = 2                                     # processes sharing the queue

Logging: RUST_LOG (default info), e.g. RUST_LOG=dsf_container=debug.

Example:
  printf 'grpc = \"127.0.0.1:50051\"\\n[store]\\nkind = \"rocksdb\"\\npath = \"data\"\\n' > dsf.toml
  dsf-container --config dsf.toml
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let path = match args.as_slice() {
        [flag] if flag == "-h" || flag == "--help" => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        [flag, path] if flag == "--config" || flag == "-c" => PathBuf::from(path),
        _ => {
            eprintln!("error: expected --config FILE\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(run(path)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(path: PathBuf) -> Result<()> {
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::parse(&text).map_err(anyhow::Error::msg).with_context(|| format!("in {}", path.display()))?;
    let registry = registry(&config, &path)?;
    match &config.store {
        StoreConfig::Rocksdb { path } => {
            let store = RocksStore::open(path).with_context(|| format!("opening RocksDB at {}", path.display()))?;
            serve(store, registry, config).await
        }
        StoreConfig::Cassandra(settings) => {
            let c =
                cassandra_config(settings, config_folder(&path)).with_context(|| format!("in {}", path.display()))?;
            tracing::info!(config = ?c, "connecting to Cassandra");
            let store = CassandraStore::connect(c).await.context("connecting to Cassandra")?;
            serve(store, registry, config).await
        }
        StoreConfig::Memory => serve(MemoryStore::default(), registry, config).await,
    }
}

/// The folder relative paths of the configuration file start from.
fn config_folder(config_path: &Path) -> &Path {
    config_path.parent().unwrap_or(Path::new("."))
}

/// The Cassandra store's configuration from the `[store]` keys (already checked by
/// [`Config::parse`]): the password read from its variable or file, paths made relative to
/// `base`.
fn cassandra_config(s: &CassandraSettings, base: &Path) -> Result<CassandraConfig> {
    let mut c = CassandraConfig::new(s.keyspace.clone());
    c.contact_points = s.contact_points.clone();
    c.replication = s.replication().map_err(anyhow::Error::msg)?;
    c.local_datacenter = s.local_datacenter.clone();
    c.consistency = s.consistency.as_deref().map(parse_consistency).transpose()?;
    c.serial_consistency = s.serial_consistency.as_deref().map(parse_serial_consistency).transpose()?;
    if let Some(username) = &s.username {
        let password = match (&s.password_env, &s.password_file) {
            (Some(var), _) => std::env::var(var).map_err(|_| {
                anyhow::anyhow!(
                    "the environment variable {var} (password_env) is not set: export it with the password \
                     of {username}, or name a file with password_file"
                )
            })?,
            (None, Some(file)) => {
                let file = base.join(file);
                let text = std::fs::read_to_string(&file).with_context(|| {
                    format!("reading the Cassandra password from {} (password_file)", file.display())
                })?;
                let line = text.strip_suffix('\n').unwrap_or(&text);
                line.strip_suffix('\r').unwrap_or(line).to_string()
            }
            (None, None) => anyhow::bail!("username needs a password: set password_env or password_file"),
        };
        anyhow::ensure!(!password.is_empty(), "the password of {username} is empty (password_env / password_file)");
        c.credentials = Some(Credentials { username: username.clone(), password });
    }
    if let Some(ca) = &s.tls_ca {
        c.tls = Some(TlsFiles {
            ca: base.join(ca),
            cert: s.tls_cert.as_ref().map(|p| base.join(p)),
            key: s.tls_key.as_ref().map(|p| base.join(p)),
        });
    }
    if let Some(ms) = s.request_timeout_ms {
        c.request_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = s.max_concurrency {
        c.max_concurrency = n;
    }
    Ok(c)
}

/// The built-in types and those of the configured descriptor sets (paths relative to the
/// configuration file).
fn registry(config: &Config, config_path: &Path) -> Result<Registry> {
    let base = config_folder(config_path);
    let sets = config
        .types
        .iter()
        .map(|t| {
            let path = base.join(t);
            std::fs::read(&path).with_context(|| format!("reading the descriptor set {}", path.display()))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut all: Vec<&[u8]> = vec![dsf::proto::DESCRIPTOR_SET];
    all.extend(sets.iter().map(Vec::as_slice));
    let registry = Registry::from_descriptor_sets(&all).context("registering the configured types")?;
    if !config.types.is_empty() {
        tracing::info!(types = registry.types().len(), "registered the configured descriptor sets");
    }
    Ok(registry)
}

async fn serve<S: Store + 'static>(store: S, registry: Registry, config: Config) -> Result<()> {
    let ds = Datastore::new(Arc::new(store), registry.clone());
    let preloaded = ds.preload().await.context("preloading the bootstrap repositories")?;
    tracing::info!(preloaded, "store ready");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut grpc = None;
    if let Some(addr) = &config.grpc {
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening for gRPC on {addr}"))?;
        let local = listener.local_addr()?;
        let mut rx = stop_rx.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        grpc = Some(tokio::spawn(dsf_container::grpc::serve(Arc::new(ds.clone()), listener, shutdown)));
        tracing::info!(%local, "serving gRPC");
    }
    let mut container = None;
    if let Some(url) = &config.broker {
        let mut cc = ContainerConfig::new(url.clone(), config.sysname.clone());
        cc.max_message = config.max_message.unwrap_or(DEFAULT_MAX_MESSAGE);
        cc.registry = registry;
        let c = Container::start(cc).await?;
        let service = Arc::new(DatastoreService::new(ds.clone()));
        for app in &config.apps {
            for _ in 0..app.instances {
                let p = c.spawn(&app.name, Some(SERVICE), service.clone()).await?;
                tracing::info!(process = %p.id(), queue = p.worker_queue().unwrap_or(""), "datastore ready");
            }
        }
        container = Some(c);
    }
    tracing::info!("container ready");
    wait_for_signal().await?;
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    if let Some(c) = container {
        c.terminate().await;
    }
    if let Some(g) = grpc {
        g.await.context("the gRPC server task")??;
    }
    Ok(())
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = term.recv() => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
