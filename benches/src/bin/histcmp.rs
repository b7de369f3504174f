//! `histcmp`: what a long history costs a request, measured in one run.
//!
//! ```text
//! histcmp [--commits N] [--rounds N] [--samples N]
//! ```
//!
//! One datastore on RocksDB, served over gRPC on loopback, holds two resource repositories: one
//! with `--commits` commits (default 100 000, written through the store in batches of 10 000
//! commits, not pushed one by one) and one with 10. Each sample, on each repository in turn: a
//! client holding only the head pushes one new commit (a fast-forward), a second client that
//! is one commit behind pulls it (its commits as have, the head's content included), and a
//! third asks for the head object (`get_object`). Prints `NAME LONG_US SHORT_US` lines on
//! stdout (progress on stderr), the mean latency in microseconds over `--samples` samples,
//! best of `--rounds` rounds:
//! - `history-push`: the small push;
//! - `history-pull`: the pull of one new commit;
//! - `history-get`: get_object of the head.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dsf::proto::net::ooici::core::link::IdRef;
use dsf::proto::net::ooici::services::coi::OoiResource;
use dsf::proto::net::ooici::services::coi::ooi_resource::LifeCycleState;
use dsf::store::persist::StoredRepository;
use dsf::{Checkout, MASTER_BRANCH, Registry, Repository};
use dsf_container::datastore::Datastore;
use dsf_container::grpc::GrpcClient;
use dsf_store_backends::rocks::RocksStore;

const USAGE: &str = "usage: histcmp [--commits N] [--rounds N] [--samples N]";

/// Commits written per save while building a history.
const BATCH: usize = 10_000;

fn resource(name: String) -> OoiResource {
    OoiResource { name: Some(name), lcs: Some(LifeCycleState::Active as i32), ..Default::default() }
}

/// Writes a resource repository of `n` commits (each renames the resource) to the store, in
/// saves of [`BATCH`] commits; returns it as built in memory.
async fn history(store: &RocksStore, n: usize) -> Result<Repository, String> {
    let e = |e: dsf::Error| e.to_string();
    let mut repo = Repository::new(Registry::builtin());
    let root = repo.create(&resource("v0".into())).map_err(e)?;
    repo.set_root(root).map_err(e)?;
    let mut stored = StoredRepository::create(store, repo);
    let started = Instant::now();
    for i in 0..n {
        let repo = stored.repository_mut();
        let root = repo.root().ok_or("no root")?;
        repo.update::<OoiResource>(root, |r| r.name = Some(format!("v{i}"))).map_err(e)?;
        repo.commit_at(&format!("commit {i}"), 1.0e9 + i as f64).map_err(e)?;
        if (i + 1) % BATCH == 0 || i + 1 == n {
            stored.save().await.map_err(e)?;
        }
    }
    eprintln!("histcmp: wrote {n} commits in {:.1} s", started.elapsed().as_secs_f64());
    Ok(stored.into_repository())
}

/// A client's copy of `repo` holding only its head commit and the head's content, checked out.
fn tip(repo: &Repository) -> Result<Repository, String> {
    let e = |e: dsf::Error| e.to_string();
    let head = *repo.current_heads().first().ok_or("no head")?;
    let root = repo.commit_info(head).map_err(e)?.root.ok_or("no root")?.key;
    let mut copy = Repository::with_key(Registry::builtin(), repo.key(), repo.algorithm());
    let elements = [head, root].into_iter().map(|k| repo.elements().get(&k).cloned().ok_or("an element is missing"));
    copy.add_elements(elements.collect::<Result<Vec<_>, _>>()?).map_err(e)?;
    copy.receive_branches(repo.branches().to_vec(), repo.nicknames().clone()).map_err(e)?;
    copy.checkout(Checkout::branch(MASTER_BRANCH)).map_err(e)?;
    Ok(copy)
}

/// The clients of one repository.
struct Clients {
    name: &'static str,
    pusher: Repository,
    puller: Repository,
    pushes: usize,
}

#[derive(Default, Clone, Copy)]
struct Totals {
    push: Duration,
    pull: Duration,
    get: Duration,
}

impl Clients {
    fn new(name: &'static str, repo: &Repository) -> Result<Clients, String> {
        Ok(Clients { name, pusher: tip(repo)?, puller: tip(repo)?, pushes: 0 })
    }

    /// One sample: push a new commit, pull it, get the head object.
    async fn sample(&mut self, client: &GrpcClient, totals: &mut Totals) -> Result<(), String> {
        let e = |e: dsf::Error| e.to_string();
        let c = |e: dsf_container::Error| e.to_string();
        self.pushes += 1;
        let root = self.pusher.root().ok_or("no root")?;
        let name = format!("pushed {}", self.pushes);
        self.pusher.update::<OoiResource>(root, |r| r.name = Some(name)).map_err(e)?;
        let commit = self.pusher.commit("one change").map_err(e)?;

        let t = Instant::now();
        let pushed = client.push(&self.pusher).await.map_err(c)?;
        totals.push += t.elapsed();
        if !pushed.heads.branches.iter().any(|b| b.heads == [commit]) {
            return Err(format!("the push to the {} repository did not fast-forward", self.name));
        }

        let t = Instant::now();
        client.pull(&mut self.puller, true, None).await.map_err(c)?;
        totals.pull += t.elapsed();
        if self.puller.current_heads() != [commit] {
            return Err(format!("the pull from the {} repository did not bring the new commit", self.name));
        }

        let id = IdRef { key: Some(self.pusher.key().to_owned()), ..Default::default() };
        let t = Instant::now();
        let object = client.get_object(id, &[]).await.map_err(c)?;
        totals.get += t.elapsed();
        if object.elements.is_empty() {
            return Err(format!("get_object of the {} repository returned nothing", self.name));
        }
        Ok(())
    }
}

async fn run(commits: usize, rounds: usize, samples: usize) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let store = Arc::new(RocksStore::open(dir.path()).map_err(|e| e.to_string())?);
    let long = history(&store, commits).await?;
    let short = history(&store, 10).await?;
    let ds = Arc::new(Datastore::new(store.clone(), Registry::builtin()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(|e| e.to_string())?;
    let url = format!("http://{}", listener.local_addr().map_err(|e| e.to_string())?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(dsf_container::grpc::serve(ds, listener, async move {
        let _ = stopped.await;
    }));
    let client = GrpcClient::connect(&url, Registry::builtin()).await.map_err(|e| e.to_string())?;
    let mut on_long = Clients::new("long", &long)?;
    let mut on_short = Clients::new("short", &short)?;
    drop((long, short));
    // One sample each first, not measured: connections and caches warm up.
    on_long.sample(&client, &mut Totals::default()).await?;
    on_short.sample(&client, &mut Totals::default()).await?;
    let mut best: Option<[f64; 6]> = None;
    for round in 0..rounds {
        let (mut l, mut s) = (Totals::default(), Totals::default());
        for _ in 0..samples {
            on_long.sample(&client, &mut l).await?;
            on_short.sample(&client, &mut s).await?;
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6 / samples as f64;
        let means = [us(l.push), us(s.push), us(l.pull), us(s.pull), us(l.get), us(s.get)];
        eprintln!(
            "histcmp: round {}/{rounds}: push {:.0}/{:.0} us, pull {:.0}/{:.0} us, get_object {:.0}/{:.0} us \
             ({commits} commits / 10)",
            round + 1,
            means[0],
            means[1],
            means[2],
            means[3],
            means[4],
            means[5]
        );
        best = Some(match best {
            None => means,
            Some(b) => std::array::from_fn(|i| b[i].min(means[i])),
        });
    }
    let best = best.ok_or("no rounds")?;
    println!("history-push {:.0} {:.0}", best[0], best[1]);
    println!("history-pull {:.0} {:.0}", best[2], best[3]);
    println!("history-get {:.0} {:.0}", best[4], best[5]);
    let _ = stop.send(());
    server.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mut commits, mut rounds, mut samples) = (100_000, 3, 50);
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<usize>().ok()).filter(|v| *v > 0);
        match (args[i].as_str(), value) {
            ("--commits", Some(v)) => commits = v,
            ("--rounds", Some(v)) => rounds = v,
            ("--samples", Some(v)) => samples = v,
            _ => {
                eprintln!("histcmp: {USAGE}");
                return std::process::ExitCode::from(2);
            }
        }
        i += 2;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    match runtime.block_on(run(commits, rounds, samples)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("histcmp: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
