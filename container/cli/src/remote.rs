//! Remotes: a datastore over AMQP, a datastore over gRPC, or a store folder on this machine
//! (served in-process by the same datastore code).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use dsf::proto::net::ooici::core::message::ion_msg::ResponseCodes;
use dsf::{Branch, Key, Registry, Repository, TypeId};
use dsf_container::amqp::{Container, ContainerConfig};
use dsf_container::client::{AmqpClient, Fetched};
use dsf_container::datastore::{Datastore, Received};
use dsf_container::error::Error as RemoteError;
use dsf_container::grpc::GrpcClient;
use dsf_store_backends::rocks::RocksStore;

use crate::ui::{exit, fail};

/// Where a remote is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A datastore behind a RabbitMQ broker.
    Amqp {
        /// The broker URL (with the virtual host).
        broker: String,
        /// The ION system name (the exchange's scope).
        sysname: String,
    },
    /// A datastore's gRPC port.
    Grpc {
        /// `http://host:port`.
        url: String,
    },
    /// A store folder.
    Local {
        /// The RocksDB folder.
        path: PathBuf,
    },
}

impl Target {
    /// Parses `amqp://[user:pass@]host[:port]/SYSNAME[?vhost=V]`, `grpc://host:port` or a path.
    pub fn parse(url: &str) -> Result<Target> {
        if let Some(rest) = url.strip_prefix("amqp://") {
            let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
            let (authority, sysname) = rest.split_once('/').unwrap_or((rest, ""));
            if authority.is_empty() || sysname.is_empty() || sysname.contains('/') {
                return Err(fail(format!("bad AMQP remote {url:?}"))
                    .hint("write amqp://[user:pass@]host[:port]/SYSNAME, e.g. amqp://guest:guest@localhost/dsf")
                    .into());
            }
            let vhost = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("vhost="))
                .map_or_else(|| "%2f".to_owned(), str::to_owned);
            return Ok(Target::Amqp { broker: format!("amqp://{authority}/{vhost}"), sysname: sysname.to_owned() });
        }
        if let Some(rest) = url.strip_prefix("grpc://") {
            let authority = rest.trim_end_matches('/');
            if authority.is_empty() || authority.contains('/') || !authority.contains(':') {
                return Err(fail(format!("bad gRPC remote {url:?}"))
                    .hint("write grpc://host:port, e.g. grpc://127.0.0.1:50051")
                    .into());
            }
            return Ok(Target::Grpc { url: format!("http://{authority}") });
        }
        if url.contains("://") {
            return Err(fail(format!("unknown kind of remote {url:?}"))
                .hint("a remote is amqp://host/SYSNAME, grpc://host:port, or the path of a store folder")
                .into());
        }
        let path = PathBuf::from(url.strip_prefix("file:").unwrap_or(url));
        // A working copy's store, or a store folder.
        let store = path.join(crate::workdir::DOT).join("store");
        Ok(Target::Local { path: if store.is_dir() { store } else { path } })
    }
}

/// A connected remote.
#[derive(Debug)]
pub enum Remote {
    /// Over AMQP.
    Amqp {
        /// The container the client process runs in.
        container: Box<Container>,
        /// The client process.
        client: AmqpClient,
    },
    /// Over gRPC.
    Grpc(GrpcClient),
    /// A store folder.
    Local(Datastore<RocksStore>),
}

/// What a remote holds of a repository.
#[derive(Debug, Clone)]
pub struct RemoteState {
    /// Its branches.
    pub branches: Vec<Branch>,
    /// Its branch names.
    pub nicknames: BTreeMap<String, String>,
}

impl Remote {
    /// Connects. `timeout` is how long a call may wait for the remote (AMQP: for a reply;
    /// gRPC: for the connection); `None` keeps the client's default.
    pub async fn connect(target: &Target, registry: &Registry, timeout: Option<Duration>) -> Result<Remote> {
        Ok(match target {
            Target::Amqp { broker, sysname } => {
                let mut config = ContainerConfig::new(broker.clone(), Some(sysname.clone()));
                config.registry = registry.clone();
                let container = Container::start(config).await?;
                let mut client = AmqpClient::spawn(&container, None).await?;
                if let Some(t) = timeout {
                    client = client.with_timeout(t);
                }
                Remote::Amqp { container: Box::new(container), client }
            }
            Target::Grpc { url } => {
                let connecting = GrpcClient::connect(url, registry.clone());
                let client = match timeout {
                    Some(t) => tokio::time::timeout(t, connecting).await.map_err(|_| {
                        fail(format!("no answer from {url} within {} s", t.as_secs_f64())).code(exit::REMOTE)
                    })??,
                    None => connecting.await?,
                };
                Remote::Grpc(client)
            }
            Target::Local { path } => {
                let store = RocksStore::open(path).map_err(|e| {
                    fail(format!("cannot open the store at {}: {e}", path.display()))
                        .code(exit::REMOTE)
                        .hint("a local remote is a store folder that no other process has open")
                })?;
                Remote::Local(Datastore::new(Arc::new(store), registry.clone()))
            }
        })
    }

    /// Disconnects.
    pub async fn close(self) {
        if let Remote::Amqp { container, client } = self {
            client.terminate().await;
            container.terminate().await;
        }
    }

    /// Tells an AMQP client which heads the datastore had at the last exchange.
    pub fn assume_heads(&self, key: &str, heads: Vec<Key>) {
        if let Remote::Amqp { client, .. } = self {
            client.assume_heads(key, heads);
        }
    }

    /// What the remote has that `repo` lacks (commits only unless `content`); `None` if the
    /// remote has no such repository.
    pub async fn fetch(&self, repo: &Repository, content: bool) -> Result<Option<(RemoteState, Vec<dsf::Element>)>> {
        let fetched = match self {
            Remote::Amqp { client, .. } => client.fetch(repo, content).await,
            Remote::Grpc(client) => client.fetch(repo, content).await,
            Remote::Local(ds) => {
                let have: HashSet<Key> = repo.elements().iter().map(|e| e.key()).collect();
                match ds.pull(repo.key(), &have, content, &[]).await {
                    Ok(p) => Ok(Fetched {
                        branches: p.heads.branches,
                        nicknames: p.heads.nicknames,
                        elements: p.commits.into_iter().chain(p.blobs).collect(),
                    }),
                    Err(e) if e.code == ResponseCodes::NotFound => return Ok(None),
                    Err(e) => return Err(fail(format!("the store refused the fetch: {e}")).code(exit::REMOTE).into()),
                }
            }
        };
        match fetched {
            Ok(f) => Ok(Some((RemoteState { branches: f.branches, nicknames: f.nicknames }, f.elements))),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Pushes every branch of `repo` (its elements must all be loaded). Returns what the remote
    /// holds afterwards.
    pub async fn push(&self, repo: &Repository) -> Result<RemoteState> {
        Ok(match self {
            Remote::Amqp { client, .. } => {
                client.push(repo).await?;
                // ION's push reply carries no heads, and a diverged branch keeps heads that are
                // not ours: ask the datastore what it holds now.
                let f = client.fetch(repo, false).await?;
                RemoteState { branches: f.branches, nicknames: f.nicknames }
            }
            Remote::Grpc(client) => {
                let outcome = client.push(repo).await?;
                RemoteState { branches: outcome.heads.branches, nicknames: outcome.heads.nicknames }
            }
            Remote::Local(ds) => {
                let keys: Vec<Key> = repo.elements().iter().map(|e| e.key()).collect();
                let refused = |e: dsf_container::error::ServiceError| {
                    fail(format!("the store refused the push: {e}")).code(exit::REMOTE)
                };
                let missing: HashSet<Key> = ds.missing(&keys).await.map_err(refused)?.into_iter().collect();
                let elements = repo.elements().iter().filter(|e| missing.contains(&e.key())).cloned().collect();
                let heads = ds
                    .receive(Received {
                        repository_key: repo.key().to_owned(),
                        branches: repo.branches().to_vec(),
                        nicknames: repo.nicknames().clone(),
                        elements,
                    })
                    .await
                    .map_err(refused)?;
                RemoteState { branches: heads.branches, nicknames: heads.nicknames }
            }
        })
    }

    /// Elements by key (objects or commits); every key must be there.
    pub async fn fetch_blobs(&self, keys: &[Key]) -> Result<Vec<dsf::Element>> {
        Ok(match self {
            Remote::Amqp { client, .. } => client.fetch_blobs(keys).await?,
            Remote::Grpc(client) => client.fetch_blobs(keys).await?,
            Remote::Local(ds) => ds
                .blobs(keys)
                .await
                .map_err(|e| fail(format!("the store refused fetch_blobs: {e}")).code(exit::REMOTE))?,
        })
    }

    /// Copies a whole repository: every commit, the heads' content but below `excluded` types
    /// (`None`: the types the client leaves out by default).
    pub async fn clone_repository(
        &self,
        key: &str,
        registry: &Registry,
        excluded: Option<&[TypeId]>,
    ) -> Result<Repository> {
        let cloned = match self {
            Remote::Amqp { client, .. } => client.clone_repository(key, true, excluded.map(<[TypeId]>::to_vec)).await,
            Remote::Grpc(client) => client.clone_repository(key, true, excluded.map(<[TypeId]>::to_vec)).await,
            Remote::Local(ds) => {
                let not_found = || {
                    fail(format!("the store has no repository {key}"))
                        .code(exit::REMOTE)
                        .hint("check the repository key (it is in .dsf/config.toml of any copy)")
                };
                let pulled = ds.pull(key, &HashSet::new(), true, excluded.unwrap_or_default()).await.map_err(|e| {
                    if e.code == ResponseCodes::NotFound {
                        not_found()
                    } else {
                        fail(format!("the store refused the clone: {e}")).code(exit::REMOTE)
                    }
                })?;
                let mut repo = Repository::with_key(registry.clone(), key, pulled.heads.algorithm);
                repo.add_elements(pulled.commits.into_iter().chain(pulled.blobs))?;
                repo.receive_branches(pulled.heads.branches, pulled.heads.nicknames)?;
                return Ok(repo);
            }
        };
        cloned.map_err(|e| {
            if is_not_found(&e) {
                fail(format!("the remote has no repository {key}"))
                    .code(exit::REMOTE)
                    .hint("check the repository key (it is in .dsf/config.toml of any copy)")
                    .into()
            } else {
                e.into()
            }
        })
    }
}

fn is_not_found(e: &RemoteError) -> bool {
    match e {
        RemoteError::Application { error, .. } => error.code == ResponseCodes::NotFound,
        _ => false,
    }
}

/// The exit code of an error that is not a [`crate::ui::Failure`].
pub fn exit_code(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<RemoteError>() {
        Some(RemoteError::Dsf(_)) | None => exit::ERROR,
        Some(_) => exit::REMOTE,
    }
}

/// A hint for an error that is not a [`crate::ui::Failure`].
pub fn hint(e: &anyhow::Error) -> Option<String> {
    let unknown_type = e.chain().any(|c| {
        matches!(c.downcast_ref::<dsf::Error>(), Some(dsf::Error::UnknownType { .. }))
            || matches!(c.downcast_ref::<RemoteError>(), Some(RemoteError::Dsf(dsf::Error::UnknownType { .. })))
    });
    if unknown_type {
        return Some(
            "register the type's descriptor set: `dsf-cli types add FILE` here, or `dsf-cli clone --types FILE`".into(),
        );
    }
    match e.downcast_ref::<RemoteError>()? {
        RemoteError::Broker(_) | RemoteError::Transport(_) => {
            Some("is the remote running and its address right? `dsf-cli remote list` shows the addresses".into())
        }
        RemoteError::Timeout { .. } => Some("is a datastore service running in that system (sysname)?".into()),
        RemoteError::Unavailable(_) | RemoteError::ConnectionLost { .. } => {
            Some("the broker connection dropped: run the command again (a push is safe to repeat)".into())
        }
        _ => None,
    }
}
