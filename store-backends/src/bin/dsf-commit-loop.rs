//! Commits to a repository in a RocksDB store in a loop, printing each commit key once its
//! save returned. The crash test kills it with SIGKILL at random points and checks the store.
//!
//! Usage: `dsf-commit-loop DIR REPOSITORY-KEY [COMMITS]` (without COMMITS it never stops).

use std::io::Write as _;

use dsf::proto::net::ooici::play::{KeyValue, ListObj};
use dsf::store::persist::StoredRepository;
use dsf::{Checkout, HashAlgorithm, MASTER_BRANCH, Registry, Repository};
use dsf_store_backends::rocks::RocksStore;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(key)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: dsf-commit-loop DIR REPOSITORY-KEY [COMMITS]");
        std::process::exit(2);
    };
    let limit: Option<u64> = args.get(3).map(|n| n.parse()).transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    runtime.block_on(run(dir, key, limit))
}

async fn run(dir: &str, key: &str, limit: Option<u64>) -> Result<(), Box<dyn std::error::Error>> {
    let store = RocksStore::open(dir)?;
    let registry = Registry::builtin();
    let mut stored = match StoredRepository::open(&store, registry.clone(), key).await? {
        Some(mut s) => {
            s.checkout(Checkout::branch(MASTER_BRANCH)).await?;
            s
        }
        None => {
            let mut repo = Repository::with_key(registry, key, HashAlgorithm::Sha1);
            let list = repo.create(&ListObj { items: vec![] })?;
            repo.set_root(list)?;
            StoredRepository::create(&store, repo)
        }
    };
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    while limit.is_none_or(|l| n < l) {
        let repo = stored.repository_mut();
        let root = repo.root().expect("checked out");
        let kv =
            repo.create(&KeyValue { key: format!("item {n}"), value: format!("written by {}", std::process::id()) })?;
        let link = repo.link(kv)?;
        repo.update::<ListObj>(root, |l| {
            // Keep the list bounded: drop the oldest item now and then, so graphs change shape.
            if l.items.len() >= 64 {
                l.items.remove(0);
            }
            l.items.push(link);
        })?;
        let commit = stored.commit(&format!("commit {n}")).await?;
        writeln!(out, "{commit}")?;
        out.flush()?;
        n += 1;
    }
    Ok(())
}
