//! What the tests share: the test broker, datastores served in-process on RocksDB.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dsf::Registry;
use dsf_container::amqp::{Container, ContainerConfig, Process};
use dsf_container::datastore::Datastore;
use dsf_container::datastore::service::{DatastoreService, SERVICE};
use dsf_store_backends::rocks::RocksStore;
use tempfile::TempDir;

/// The test broker's URL.
pub fn broker_url() -> String {
    match std::env::var("DSF_AMQP_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => panic!(
            "DSF_AMQP_URL is not set: these tests need a RabbitMQ broker. Start one with \
             `scripts/rabbitmq start --port 5673` and `export DSF_AMQP_URL=$(scripts/rabbitmq url --port 5673)` \
             (scripts/test does both)"
        ),
    }
}

/// A system name no other test uses, so queues never mix.
pub fn sysname() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("sys_{}_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed), nanos)
}

/// The remote URL of system `sysname` on the broker at `broker`
/// (`amqp://user:pass@host:port/VHOST` becomes `amqp://user:pass@host:port/SYSNAME`).
pub fn amqp_remote(broker: &str, sysname: &str) -> String {
    let rest = broker.strip_prefix("amqp://").unwrap_or_else(|| panic!("not an amqp:// URL: {broker}"));
    let (authority, vhost) = rest.split_once('/').unwrap_or((rest, ""));
    let vhost = vhost.split('?').next().unwrap_or("");
    match vhost {
        "" | "%2f" | "%2F" => format!("amqp://{authority}/{sysname}"),
        v => format!("amqp://{authority}/{sysname}?vhost={v}"),
    }
}

/// Runs a future to completion on a runtime of its own.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// A datastore on a RocksDB store of its own, served by this process (on a runtime of its own)
/// over loopback gRPC or on the test broker, and the remote URL `dsf-cli` reaches it by.
pub struct Served {
    /// `grpc://127.0.0.1:PORT` or `amqp://…/SYSNAME`.
    pub url: String,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    amqp: Option<(Container, Process)>,
    _dir: TempDir,
}

impl Served {
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime")
    }

    fn datastore(registry: Registry) -> (Datastore<RocksStore>, TempDir) {
        let dir = tempfile::tempdir().expect("a temp dir");
        let store = RocksStore::open(dir.path().join("db")).expect("RocksDB opens");
        (Datastore::new(Arc::new(store), registry), dir)
    }

    /// A datastore serving gRPC on a loopback port (accepting once this returns).
    pub fn grpc() -> Served {
        Served::grpc_with(Registry::builtin())
    }

    /// [`Served::grpc`], knowing the types of `registry`.
    pub fn grpc_with(registry: Registry) -> Served {
        let runtime = Served::runtime();
        let (ds, dir) = Served::datastore(registry);
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("a loopback port");
        let port = listener.local_addr().expect("an address").port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let served = Arc::new(ds.clone());
        runtime.spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            dsf_container::grpc::serve(served, listener, shutdown).await.expect("the gRPC server runs");
        });
        Served {
            url: format!("grpc://127.0.0.1:{port}"),
            runtime: Some(runtime),
            stop: Some(stop),
            amqp: None,
            _dir: dir,
        }
    }

    /// A datastore process on the test broker under a system name of its own (consuming once
    /// this returns).
    pub fn amqp() -> Served {
        let runtime = Served::runtime();
        let (ds, dir) = Served::datastore(Registry::builtin());
        let sys = sysname();
        let service = Arc::new(DatastoreService::new(ds.clone()));
        let amqp = runtime.block_on(async {
            let container = Container::start(ContainerConfig::new(broker_url(), Some(sys.clone())))
                .await
                .unwrap_or_else(|e| panic!("{e}: start the test broker with `scripts/rabbitmq start --port 5673`"));
            let process = container.spawn("datastore", Some(SERVICE), service).await.expect("the datastore process");
            (container, process)
        });
        Served {
            url: amqp_remote(&broker_url(), &sys),
            runtime: Some(runtime),
            stop: None,
            amqp: Some(amqp),
            _dir: dir,
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let (Some(runtime), Some((container, process))) = (&self.runtime, self.amqp.take()) {
            runtime.block_on(async {
                process.terminate().await;
                container.terminate().await;
            });
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(std::time::Duration::from_secs(5));
        }
    }
}

/// A person of the built-in address-book types.
pub fn person(name: &str, id: i32) -> dsf::proto::net::ooici::play::Person {
    dsf::proto::net::ooici::play::Person { name: Some(name.into()), id: Some(id), email: None, phone: Vec::new() }
}
