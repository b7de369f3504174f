//! `clonemem`: the repository `scripts/compare clone-memory` clones.
//!
//! ```text
//! clonemem populate STORE_DIR [--objects N]
//! clonemem clone-into GRPC_URL KEY STORE_DIR
//! ```
//!
//! `clone-into` clones repository `KEY` from the datastore at `GRPC_URL` into a new RocksDB store
//! at `STORE_DIR` with `GrpcClient::clone_into` (every type), the bounded path, and prints the
//! elements and bytes received; run it under GNU `time` to see its peak memory.
//!
//! Writes into a new RocksDB store at `STORE_DIR` one repository of `N` objects (default
//! 1 000 000): a `ListObj` root over `ListObj`s of 1 000 `KeyValue`s each, committed once on
//! master. Prints `KEY STORED_BYTES` on stdout: the repository key, and the bytes its blobs and
//! its commit row take as stored (encoded elements and their child keys), the denominator of the
//! `clone-rss-*` figures.

use anyhow::{Context, bail};
use dsf::proto::net::ooici::play::{KeyValue, ListObj};
use dsf::store::persist::StoredRepository;
use dsf::{Registry, Repository};
use dsf_benches::Rng;
use dsf_store_backends::rocks::RocksStore;

const USAGE: &str = "usage: clonemem populate STORE_DIR [--objects N] | clone-into GRPC_URL KEY STORE_DIR";

/// `KeyValue`s under each inner list.
const PER_LIST: usize = 1000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [cmd, url, key, dir] = args.as_slice()
        && cmd == "clone-into"
    {
        return clone_into(url, key, dir);
    }
    let (dir, objects) = match args.as_slice() {
        [cmd, dir] if cmd == "populate" => (dir.clone(), 1_000_000),
        [cmd, dir, flag, n] if cmd == "populate" && flag == "--objects" => {
            (dir.clone(), n.parse::<usize>().context("--objects takes a number")?)
        }
        _ => bail!("{USAGE}"),
    };
    if objects < 2 {
        bail!("--objects must be at least 2 (the root list and one inner list)");
    }
    let repo = build(objects)?;
    let key = repo.key().to_owned();
    let stored_bytes: usize = repo.elements().iter().map(|e| e.encoded_len() + e.encode_children().len()).sum();
    let store = RocksStore::open(std::path::Path::new(&dir)).context("opening the RocksDB store")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut stored = StoredRepository::create(&store, repo);
        stored.save().await.context("storing the repository")
    })?;
    eprintln!("clonemem: stored {objects} objects of repository {key} ({stored_bytes} bytes) in {dir}");
    println!("{key} {stored_bytes}");
    Ok(())
}

/// The repository: the root list, `inner` lists, and `objects - 1 - inner` key-values spread
/// over the inner lists, `PER_LIST` each (the last one takes the rest).
fn build(objects: usize) -> anyhow::Result<Repository> {
    let mut repo = Repository::new(Registry::builtin());
    let mut rng = Rng::new(11);
    let inner = (objects - 1).div_ceil(PER_LIST + 1);
    let mut leaves = objects - 1 - inner;
    let mut lists = Vec::with_capacity(inner);
    for l in 0..inner {
        let n = if l + 1 == inner { leaves } else { PER_LIST.min(leaves) };
        leaves -= n;
        let mut links = Vec::with_capacity(n);
        for i in 0..n {
            let kv = KeyValue { key: format!("sensor/{l:04}/{i:04}/serial"), value: rng.hex(24) };
            let id = repo.create(&kv)?;
            links.push(repo.link(id)?);
        }
        let list = repo.create(&ListObj { items: links })?;
        lists.push(repo.link(list)?);
    }
    let root = repo.create(&ListObj { items: lists })?;
    repo.set_root(root)?;
    repo.commit("clone-memory corpus")?;
    Ok(repo)
}

fn clone_into(url: &str, key: &str, dir: &str) -> anyhow::Result<()> {
    let store = RocksStore::open(std::path::Path::new(dir)).context("opening the RocksDB store")?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let got = runtime.block_on(async {
        let client = dsf_container::grpc::GrpcClient::connect(url, Registry::builtin()).await?;
        client.clone_into(&store, key, true, Some(Vec::new())).await
    })?;
    println!("{} {}", got.elements, got.bytes);
    Ok(())
}
