//! Concurrent preloads: any number of containers starting at once on one store leave every
//! bootstrap repository with one branch, `master`, and one head, the commit a lone preload
//! makes (spec §4.4; ION's predicate keys and words).

use std::sync::Arc;

use dsf::store::memory::MemoryStore;
use dsf::store::{Predicate, Store};
use dsf::{Key, MASTER_BRANCH, Registry};
use dsf_container::datastore::Datastore;
use dsf_container::datastore::preload::{PREDICATES, ROOT_IDENTITY, bootstrap, preload_branch};
use dsf_store_backends::cassandra::{CassandraConfig, CassandraStore};
use tokio::sync::Barrier;

use crate::common::*;

/// How many containers preload at once.
const CONTAINERS: usize = 6;

fn bootstrap_keys() -> Vec<&'static str> {
    PREDICATES.iter().map(|(k, _)| *k).chain([ROOT_IDENTITY]).collect()
}

/// The bootstrap commits of a lone preload, by repository key.
async fn lone_preload() -> Vec<(String, Key)> {
    let ds = Datastore::new(Arc::new(MemoryStore::default()), Registry::builtin());
    assert_eq!(ds.preload().await.unwrap(), PREDICATES.len() + 1);
    let mut out = Vec::new();
    for key in bootstrap_keys() {
        let heads = ds.heads(key).await.unwrap().expect("preloaded");
        out.push((key.to_owned(), heads.branches[0].heads[0]));
    }
    out
}

/// Runs `preload` on every datastore at once (released together by a barrier); returns how
/// many repositories each created.
async fn preload_at_once<S: Store + 'static>(datastores: Vec<Datastore<S>>) -> Vec<usize> {
    let barrier = Arc::new(Barrier::new(datastores.len()));
    let tasks: Vec<_> = datastores
        .into_iter()
        .map(|ds| {
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                ds.preload().await
            })
        })
        .collect();
    let mut created = Vec::new();
    for t in tasks {
        created.push(t.await.unwrap().expect("a concurrent preload succeeds"));
    }
    created
}

/// Every bootstrap repository has one branch named master with one head, the lone preload's
/// commit, and exactly one commit row.
async fn assert_one_result<S: Store>(ds: &Datastore<S>, lone: &[(String, Key)]) {
    for (key, commit) in lone {
        let heads = ds.heads(key).await.unwrap().unwrap_or_else(|| panic!("{key} was preloaded"));
        assert_eq!(heads.branches.len(), 1, "{key}: one branch, not one per container: {:?}", heads.branches);
        let branch = &heads.branches[0];
        assert_eq!(branch.key, preload_branch(key), "{key}: the branch key derived from the repository key");
        assert_eq!(branch.heads, vec![*commit], "{key}: one head, the lone preload's commit");
        assert_eq!(heads.nicknames.len(), 1, "{key}: {:?}", heads.nicknames);
        assert_eq!(heads.nicknames.get(MASTER_BRANCH), Some(&branch.key), "{key}: the branch is named master");
        let rows = ds.store().query(vec![Predicate::Eq("repository_key".into(), key.as_bytes().to_vec())]).await;
        assert_eq!(rows.unwrap().len(), 1, "{key}: one commit row");
    }
}

/// A lone preload makes the same commits every time, on any store: the golden keys pin the
/// objects, the date, the comment and the branch keys.
#[tokio::test]
async fn a_lone_preload_is_deterministic() {
    let lone = lone_preload().await;
    assert_eq!(lone, lone_preload().await);
    let golden = [
        ("C22A454D-389E-4BA6-88BC-CEDD93B5C87E", "60B5D7BC9443120687AA58B5031D2D674FBD1059", "A3B574D1"),
        ("60029609-FD0C-4DE3-8E52-9F5DDAD9A9A8", "A230255EBE8FC0004EDC6D2A525A3C77EBB706D5", "DFDEF421"),
        ("F30A45F8-331D-4D44-AECC-746DA81B012F", "97CE1061CD9BA2E669393D9043C5E3E66E22478C", "3183C2F4"),
        ("734CE3E6-90ED-4642-AD46-7C2E67BDA798", "EBAF5478BB165FFDA18209F7F33B99B7F458B352", "26F111B7"),
        ("ffe5c79e-58b5-493b-b409-0280c86ba0c7", "EAB17268A799FCCD092821BCBA58CE108155EBC3", "EDE822B1"),
        ("eed4b68d-58b5-493b-b409-1291d97cb1d8", "CABEC62B1748B3216E78A94D11EBB0BF302D1608", "0E303015"),
        ("E15CADEA-4605-4AFD-AF80-8FC3BC54D2A3", "82EF06A2B6AE49BC094B28D02FFAA6F27B382066", "D38F193A"),
    ];
    assert_eq!(golden.len(), lone.len());
    for (key, commit, branch) in golden {
        let (_, got) = lone.iter().find(|(k, _)| k == key).unwrap();
        assert_eq!((got.to_hex().to_uppercase().as_str(), preload_branch(key).as_str()), (commit, branch), "{key}");
    }
}

/// Six containers preload at once on one Cassandra keyspace (one session each): one result.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_preloads_on_cassandra_agree() {
    let first = cassandra().await;
    let keyspace = first.keyspace().to_owned();
    let mut datastores = vec![Datastore::new(Arc::new(first), Registry::builtin())];
    for _ in 1..CONTAINERS {
        let store = CassandraStore::connect(CassandraConfig::local(keyspace.clone())).await.expect("connects");
        datastores.push(Datastore::new(Arc::new(store), Registry::builtin()));
    }
    let probe = datastores[0].clone();
    let created = preload_at_once(datastores).await;
    assert!(created.iter().sum::<usize>() >= bootstrap_keys().len(), "every repository was created: {created:?}");
    let lone = lone_preload().await;
    assert_one_result(&probe, &lone).await;
    // A container that found no repository, then lost the race, stores the same state again.
    for b in bootstrap(&Registry::builtin()).unwrap() {
        probe.receive(b.received).await.unwrap();
    }
    assert_one_result(&probe, &lone).await;
    assert_eq!(probe.preload().await.unwrap(), 0, "a later preload creates nothing");
}

/// Six datastores sharing one RocksDB store preload at once: one result.
#[tokio::test(flavor = "multi_thread")]
async fn concurrent_preloads_on_rocksdb_agree() {
    let (store, _dir) = rocksdb();
    let store = Arc::new(store);
    let datastores: Vec<_> = (0..CONTAINERS).map(|_| Datastore::new(store.clone(), Registry::builtin())).collect();
    let probe = datastores[0].clone();
    let created = preload_at_once(datastores).await;
    assert!(created.iter().sum::<usize>() >= bootstrap_keys().len(), "every repository was created once: {created:?}");
    let lone = lone_preload().await;
    assert_one_result(&probe, &lone).await;
    for b in bootstrap(&Registry::builtin()).unwrap() {
        probe.receive(b.received).await.unwrap();
    }
    assert_one_result(&probe, &lone).await;
}
