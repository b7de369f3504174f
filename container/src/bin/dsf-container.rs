//! `dsf-container`: runs a capability container with the datastore service, from a
//! configuration file. See `dsf-container --help`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};
use dsf::Registry;
use dsf::store::Store;
use dsf::store::memory::MemoryStore;
use dsf_container::amqp::{BrokerStatus, Container, ContainerConfig, DEFAULT_MAX_MESSAGE};
use dsf_container::config::{CassandraSettings, Config, StoreConfig};
use dsf_container::datastore::Datastore;
use dsf_container::datastore::preload::ROOT_IDENTITY;
use dsf_container::datastore::service::{DatastoreService, SERVICE};
use dsf_container::maint;
use dsf_proto::net::ooici::core::message::ion_msg::ResponseCodes;
use dsf_store_backends::cassandra::{
    CassandraConfig, CassandraStore, Credentials, TlsFiles, parse_consistency, parse_serial_consistency,
};
use dsf_store_backends::rocks::RocksStore;
use tokio::sync::watch;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

const HELP: &str = "\
dsf-container: a capability container running DSF's datastore service

Usage: dsf-container --config FILE
       dsf-container fsck --config FILE
       dsf-container gc --config FILE [--dry-run] [--grace SECONDS]

Serves the datastore over AMQP (ION's message protocol, on the worker queue
<sysname>.datastore of the broker) and/or gRPC, on the store the file names.
Stops cleanly on SIGTERM or Ctrl-C: requests in flight are finished first.

When the broker connection drops, the container reconnects (backoff from 0.1 s
doubling to 5 s, with jitter), declares its exchange and queues again and serves
again; requests not acknowledged at the drop are redelivered and handled again
(push and put_blobs are idempotent). The broker must be reachable at start.

Configuration (TOML):
  sysname = \"dsf\"                                   # scopes service queues
  broker = \"amqp://guest:guest@127.0.0.1:5672/%2f\"  # omit to serve gRPC only
  grpc = \"127.0.0.1:50051\"                          # omit to serve AMQP only
  max_message = 67108864                            # largest request, bytes
  part_bytes = 4194304                              # the most bytes of elements one
                                                    # reply of a bounded transfer holds
  durable_queues = false                            # true: a durable worker queue;
                                                    # its requests survive a broker
                                                    # restart (default false: ION's)
  broker_retry_secs = 300                           # a lost broker not back within
                                                    # this: exit 3 (0: retry forever)
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

Probes: the gRPC listener also serves grpc.health.v1.Health: services \"\" and
  \"dsf.datastore.Datastore\" are SERVING while the store answers and (with a
  broker) the connection is up with every process active, NOT_SERVING otherwise
  (e.g. while reconnecting).

Exit codes (serving):
  0  stopped on SIGTERM or Ctrl-C
  1  bad configuration, or a failure at start (store, broker, listener, a
     worker queue declared with other settings: PRECONDITION_FAILED)
  2  bad command line
  3  lost the broker for good: not reachable again within broker_retry_secs,
     or after reconnecting it refused the container's queues

Maintenance of the store the file names (nothing is served):
  fsck   verifies everything the heads of every repository reach: every head and
         parent is a stored commit, every element below the commits' roots is
         present, its key matches its bytes and its stored child list its links.
         Prints one line per problem, with its key.
  gc     removes the elements and commit rows no head of any repository reaches.
         Keeps everything written within the grace period before it started
         (--grace, default 3600 seconds) and everything that reaches; runs safely
         beside datastores serving pushes on a shared (Cassandra) store as long as
         a push takes less than the grace. --dry-run lists what it would remove.
  A RocksDB store is opened by one process only: stop the container serving it
  first (fsck and gc refuse a store that is in use); with no writer beside it, gc
  removes all garbage at once and the grace does not apply.
  Progress (counts) goes to standard error, results to standard output.
  Exit codes: 0 clean, 5 the store is damaged (fsck found problems, or gc refused
  to delete because what the heads reach is damaged), 1 other failures, 2 usage.

Logging: RUST_LOG (default info), e.g. RUST_LOG=dsf_container=debug.

Example:
  printf 'grpc = \"127.0.0.1:50051\"\\n[store]\\nkind = \"rocksdb\"\\npath = \"data\"\\n' > dsf.toml
  dsf-container --config dsf.toml
  dsf-container fsck --config dsf.toml
  dsf-container gc --config dsf.toml --dry-run
";

/// What the command line asks for: serve, or a maintenance command.
type Mode = Option<maint::Command>;

/// Parses `[fsck|gc] --config FILE [--dry-run] [--grace SECONDS]`.
fn parse(args: &[String]) -> Result<(PathBuf, Mode), String> {
    let (mut mode, rest) = match args.first().map(String::as_str) {
        Some("fsck") => (Some(maint::Command::Fsck), &args[1..]),
        Some("gc") => (Some(maint::Command::Gc { dry_run: false, grace: maint::DEFAULT_GRACE }), &args[1..]),
        _ => (None, args),
    };
    let mut path = None;
    let mut it = rest.iter();
    while let Some(arg) = it.next() {
        match (arg.as_str(), &mut mode) {
            ("--config" | "-c", _) => path = Some(PathBuf::from(it.next().ok_or("--config needs a FILE")?)),
            ("--dry-run", Some(maint::Command::Gc { dry_run, .. })) => *dry_run = true,
            ("--grace", Some(maint::Command::Gc { grace, .. })) => {
                let value = it.next().ok_or("--grace needs a number of SECONDS")?;
                let seconds: u64 = value.parse().map_err(|_| format!("--grace takes whole seconds, not {value:?}"))?;
                *grace = std::time::Duration::from_secs(seconds);
            }
            (other, _) => return Err(format!("unexpected argument {other:?}")),
        }
    }
    Ok((path.ok_or("expected --config FILE")?, mode))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        print!("{HELP}");
        return ExitCode::SUCCESS;
    }
    let (path, mode) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("error: {e}\n\n{HELP}");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(run(path, mode)) {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.downcast_ref::<BrokerLost>().is_some() => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_BROKER_LOST)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The exit code when the broker is lost for good.
const EXIT_BROKER_LOST: u8 = 3;

/// The container gave up on its broker.
#[derive(Debug)]
struct BrokerLost(String);

impl std::fmt::Display for BrokerLost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "lost the message broker: {}", self.0)
    }
}

impl std::error::Error for BrokerLost {}

async fn run(path: PathBuf, mode: Mode) -> Result<u8> {
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config = Config::parse(&text).map_err(anyhow::Error::msg).with_context(|| format!("in {}", path.display()))?;
    let registry = registry(&config, &path)?;
    match &config.store {
        StoreConfig::Rocksdb { path } => {
            let store = RocksStore::open(path).with_context(|| match mode {
                Some(_) => format!(
                    "opening RocksDB at {} (fsck and gc need the store to themselves: stop the dsf-container \
                     serving it first)",
                    path.display()
                ),
                None => format!("opening RocksDB at {}", path.display()),
            })?;
            dispatch(store, registry, config, mode).await
        }
        StoreConfig::Cassandra(settings) => {
            let c =
                cassandra_config(settings, config_folder(&path)).with_context(|| format!("in {}", path.display()))?;
            tracing::info!(config = ?c, "connecting to Cassandra");
            let store = CassandraStore::connect(c).await.context("connecting to Cassandra")?;
            dispatch(store, registry, config, mode).await
        }
        StoreConfig::Memory => dispatch(MemoryStore::default(), registry, config, mode).await,
    }
}

/// Serves the store, or runs a maintenance command on it.
async fn dispatch<S: Store + 'static>(store: S, registry: Registry, config: Config, mode: Mode) -> Result<u8> {
    match mode {
        None => serve(store, registry, config).await.map(|()| 0),
        Some(command) => maint::run(&store, &registry, command).await,
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

/// How long a container keeps retrying a preload the store cannot finish yet (a node down, a
/// compare-and-set contended by containers starting at once).
const PRELOAD_PATIENCE: Duration = Duration::from_secs(120);

/// Preloads the bootstrap repositories, retrying with backoff while the store is unavailable:
/// every container writes the same commits, so a retry after an unknown outcome is harmless.
async fn preload<S: Store>(ds: &Datastore<S>) -> Result<usize> {
    let started = Instant::now();
    let mut attempt = 0;
    loop {
        match ds.preload().await {
            Ok(n) => return Ok(n),
            Err(e) if e.code == ResponseCodes::ServiceUnavailable && started.elapsed() < PRELOAD_PATIENCE => {
                tracing::warn!(error = %e, attempt, "the store cannot finish the preload yet: retrying");
                tokio::time::sleep(dsf_container::amqp::backoff(attempt)).await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

async fn serve<S: Store + 'static>(store: S, registry: Registry, config: Config) -> Result<()> {
    let ds = Datastore::new(Arc::new(store), registry.clone());
    let preloaded = preload(&ds).await.context("preloading the bootstrap repositories")?;
    tracing::info!(preloaded, "store ready");
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut container = None;
    if let Some(url) = &config.broker {
        let mut cc = ContainerConfig::new(url.clone(), config.sysname.clone());
        cc.max_message = config.max_message.unwrap_or(DEFAULT_MAX_MESSAGE);
        cc.registry = registry;
        cc.durable_queues = config.durable_queues;
        cc.broker_retry = config.broker_retry();
        let c = Container::start(cc).await?;
        let mut service = DatastoreService::new(ds.clone());
        if let Some(bytes) = config.part_bytes {
            service = service.with_part_bytes(bytes);
        }
        let service = Arc::new(service);
        for app in &config.apps {
            for _ in 0..app.instances {
                let p = c.spawn(&app.name, Some(SERVICE), service.clone()).await?;
                tracing::info!(process = %p.id(), queue = p.worker_queue().unwrap_or(""), "datastore ready");
            }
        }
        container = Some(Arc::new(c));
    }
    let mut grpc = None;
    let mut health = None;
    if let Some(addr) = &config.grpc {
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("listening for gRPC on {addr}"))?;
        let local = listener.local_addr()?;
        let mut rx = stop_rx.clone();
        let shutdown = async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let reporter = HealthReporter::new();
        set_health(&reporter, ServingStatus::NotServing).await;
        health = Some(tokio::spawn(watch_health(reporter.clone(), ds.clone(), container.clone(), stop_rx.clone())));
        grpc = Some(tokio::spawn(dsf_container::grpc::serve_with_health(
            Arc::new(ds.clone()),
            listener,
            shutdown,
            reporter,
        )));
        tracing::info!(%local, "serving gRPC");
    }
    tracing::info!("container ready");
    let lost = async {
        match &container {
            Some(c) => {
                let mut watch = c.broker_watch();
                loop {
                    match watch.status() {
                        BrokerStatus::Failed(why) => return why,
                        BrokerStatus::Closed => std::future::pending::<()>().await,
                        _ => {}
                    }
                    watch.changed().await;
                }
            }
            None => std::future::pending().await,
        }
    };
    let outcome = tokio::select! {
        r = wait_for_signal() => r.map(|()| None),
        why = lost => Ok(Some(why)),
    };
    tracing::info!("stopping");
    let _ = stop_tx.send(true);
    if let Some(c) = container {
        c.terminate().await;
    }
    if let Some(h) = health {
        let _ = h.await;
    }
    if let Some(g) = grpc {
        g.await.context("the gRPC server task")??;
    }
    match outcome? {
        Some(why) => Err(BrokerLost(why).into()),
        None => Ok(()),
    }
}

/// How often the health watcher probes the store.
const STORE_PROBE: Duration = Duration::from_secs(5);
/// How often the health watcher looks at the broker connection and the processes.
const BROKER_PROBE: Duration = Duration::from_millis(250);

/// Keeps the health service true: SERVING while the store answers and (with a broker) the
/// connection is up and every process active.
async fn watch_health<S: Store + 'static>(
    reporter: HealthReporter,
    ds: Datastore<S>,
    container: Option<Arc<Container>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut current = ServingStatus::NotServing;
    let mut store_ok = false;
    let mut last_store_probe: Option<Instant> = None;
    loop {
        if last_store_probe.is_none_or(|t| t.elapsed() >= STORE_PROBE) {
            let probe = tokio::time::timeout(STORE_PROBE, ds.heads(ROOT_IDENTITY)).await;
            let ok = matches!(probe, Ok(Ok(_)));
            if ok != store_ok {
                match &probe {
                    Ok(Ok(_)) => tracing::info!("the store answers"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "the store does not answer"),
                    Err(_) => tracing::warn!("the store did not answer within {} s", STORE_PROBE.as_secs()),
                }
            }
            store_ok = ok;
            last_store_probe = Some(Instant::now());
        }
        let broker_ok = container.as_ref().is_none_or(|c| c.ready());
        let status = if store_ok && broker_ok { ServingStatus::Serving } else { ServingStatus::NotServing };
        if status != current {
            tracing::info!(%status, store = store_ok, broker = broker_ok, "health");
            set_health(&reporter, status).await;
            current = status;
        }
        let stopping = tokio::select! {
            _ = tokio::time::sleep(BROKER_PROBE) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopping {
            set_health(&reporter, ServingStatus::NotServing).await;
            // Forgetting the statuses ends every Watch stream (after its NOT_SERVING), so
            // the gRPC server's graceful shutdown does not wait for them.
            let mut reporter = reporter;
            reporter.clear_service_status("").await;
            reporter.clear_service_status(dsf_container::grpc::SERVICE_NAME).await;
            return;
        }
    }
}

async fn set_health(reporter: &HealthReporter, status: ServingStatus) {
    reporter.set_service_status("", status).await;
    reporter.set_service_status(dsf_container::grpc::SERVICE_NAME, status).await;
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
