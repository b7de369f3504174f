//! Crash safety: a writer committing to RocksDB in a loop is killed with SIGKILL, again and
//! again; after each kill the store reopens, every head points at a complete graph whose every
//! element verifies, and every commit the writer reported survives.

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dsf::store::persist::StoredRepository;
use dsf::{Checkout, Key, Registry};
use dsf_store_backends::rocks::RocksStore;

const REPOSITORY: &str = "CRASH-TEST-REPOSITORY";

/// Runs the writer until it has reported `commits` more commits (or 60 s pass), then kills it.
fn run_and_kill(dir: &std::path::Path, commits: usize) -> Vec<Key> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsf-commit-loop"))
        .arg(dir)
        .arg(REPOSITORY)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the writer starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
    let mut reported = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while reported.len() < commits && Instant::now() < deadline {
        match lines.next() {
            Some(Ok(line)) => reported.push(Key::from_hex(line.trim()).expect("the writer prints commit keys")),
            _ => break,
        }
    }
    child.kill().expect("SIGKILL the writer");
    child.wait().expect("reap the writer");
    assert!(!reported.is_empty(), "the writer committed nothing before the kill");
    reported
}

/// Opens the store and checks every head's graph and the survival of every reported commit.
async fn check(dir: &std::path::Path, reported: &[Key]) {
    let store = RocksStore::open(dir).expect("the store reopens after SIGKILL");
    let registry = Registry::builtin();
    let mut stored =
        StoredRepository::open(&store, registry, REPOSITORY).await.unwrap().expect("the repository exists");
    let heads = stored.repository().current_heads();
    assert!(!heads.is_empty());
    for head in &heads {
        // Checking out a commit fetches and verifies (key over bytes) every element under it.
        stored.checkout(Checkout::branch(dsf::MASTER_BRANCH).commit(*head).excluded_types([])).await.unwrap();
        let root = stored.repository().root().expect("a root");
        let items = stored.repository().get::<dsf::proto::net::ooici::play::ListObj>(root).unwrap().items;
        let distinct: std::collections::HashSet<&[u8]> = items.iter().map(|l| l.key.as_slice()).collect();
        assert!(!items.is_empty());
        assert_eq!(stored.repository().children(root).unwrap().len(), distinct.len(), "every linked object is present");
    }
    for c in reported {
        for h in &heads {
            stored.load_ancestry_between(*c, *h).await.unwrap();
        }
        assert!(heads.iter().any(|h| stored.repository().is_ancestor(*c, *h)), "reported commit {c} was lost");
    }
}

/// Spec: the store survives `kill -9` at any point of a commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_writer_leaves_complete_heads() {
    let dir = tempfile::tempdir().unwrap();
    let mut reported = Vec::new();
    for (round, commits) in [3usize, 57, 140, 11, 229, 83].into_iter().enumerate() {
        let path = dir.path().to_owned();
        let got = tokio::task::spawn_blocking(move || run_and_kill(&path, commits)).await.unwrap();
        assert!(got.len() >= commits.min(1), "round {round}");
        reported.extend(got);
        check(dir.path(), &reported).await;
    }
}
