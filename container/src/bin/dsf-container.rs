//! `dsf-container`: runs a capability container with the datastore service, from a
//! configuration file. See `dsf-container --help`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use dsf::Registry;
use dsf::store::Store;
use dsf::store::memory::MemoryStore;
use dsf_container::amqp::{Container, ContainerConfig, DEFAULT_MAX_MESSAGE};
use dsf_container::config::{Config, StoreConfig};
use dsf_container::datastore::Datastore;
use dsf_container::datastore::service::{DatastoreService, SERVICE};
use dsf_container::maint;
use dsf_store_backends::cassandra::{CassandraConfig, CassandraStore};
use dsf_store_backends::rocks::RocksStore;
use tokio::sync::watch;

const HELP: &str = "\
dsf-container: a capability container running DSF's datastore service

Usage: dsf-container --config FILE
       dsf-container fsck --config FILE
       dsf-container gc --config FILE [--dry-run] [--grace SECONDS]

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
  # kind = \"cassandra\"
  # contact_points = [\"127.0.0.1:9042\"]
  # keyspace = \"dsf\"

  [[apps]]
  name = \"datastore\"
  instances = 2                                     # processes sharing the queue

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
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

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
        StoreConfig::Cassandra { contact_points, keyspace } => {
            let mut c = CassandraConfig::new(keyspace.clone());
            c.contact_points = contact_points.clone();
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

/// The built-in types and those of the configured descriptor sets (paths relative to the
/// configuration file).
fn registry(config: &Config, config_path: &std::path::Path) -> Result<Registry> {
    let base = config_path.parent().unwrap_or(std::path::Path::new("."));
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
