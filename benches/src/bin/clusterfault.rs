//! `clusterfault`: the clients and the checker of the cluster fault test (`scripts/cluster-test`),
//! and the measurement of `scripts/compare cluster-push`.
//!
//! ```text
//! clusterfault schema --nodes H:P,H:P,H:P --keyspace K
//! clusterfault setup --broker URL --sysname S --repos N --out FILE
//! clusterfault push  --broker URL --sysname S --repos FILE --id N --seconds S --out FILE [--timeout S]
//! clusterfault check --nodes H:P,H:P,H:P --keyspace K --repos FILE [--min-acked N] RESULTS...
//! clusterfault bench --broker URL --sysname S --nodes H:P,... --keyspace K [--calls N] [--rounds N]
//!                    [--pushers N] [--seconds S]
//! ```
//!
//! - `schema` creates the keyspace with 3 replicas and the store's tables through the Cassandra
//!   store, so that containers started at once find them (concurrent schema changes from several
//!   clients can disagree in Cassandra).
//! - `setup` pushes N shared repositories (an address book each, one commit on `master`) through
//!   the datastore service `<sysname>.datastore` and writes `repo KEY BRANCH COMMIT` lines.
//! - `push` is one client: until S seconds have passed it picks a shared repository at random
//!   and does one of: a fast-forward push (pull, check out master, edit, commit, push), a
//!   divergent push (edit and commit on a copy that has not been pulled for a while, push: the
//!   datastore keeps both heads), a pull, or a `get_object` of master. It writes one line per
//!   push, tab-separated: `ack REPO BRANCH COMMIT KIND MILLIS AT` when the datastore
//!   acknowledged it, `fail REPO KIND ERROR AT` when it did not; and `opfail OP REPO ERROR AT`
//!   for a failed pull or get_object (AT: seconds since the client started). When its broker connection fails (a broker error or a reply timeout), it
//!   reconnects with a backoff from 0.25 s doubling up to 5 s.
//! - `check` reads, after the run, every repository's heads at SERIAL (through the Cassandra
//!   store) and every element the heads reach at ALL, and prints
//!   `cluster-faults: acked=N failed=N lost=N dangling=N duplicated=N` and then `ok` or `FAIL`;
//!   see [`check`] for what each count means.
//! - `bench` prints `cluster-push PUSH_P50_US CAS_P50_US` (the median latency of a small push
//!   through the datastore on the cluster, and of a bare `INSERT … IF NOT EXISTS` on the same
//!   cluster, rounds alternating) and `cluster-push-rate PUSHES_PER_S PUSHERS`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, anyhow, bail, ensure};
use dsf::proto::net::ooici::core::link::IdRef;
use dsf::proto::net::ooici::play::{AddressLink, Person};
use dsf::store::persist::read_heads;
use dsf::{Checkout, Element, Key, Registry, Repository, TypeId};
use dsf_benches::Rng;
use dsf_container::amqp::{Container, ContainerConfig};
use dsf_container::client::AmqpClient;
use dsf_container::datastore::preload::{PREDICATES, ROOT_IDENTITY};
use dsf_container::error::Error as ClientError;
use dsf_store_backends::cassandra::{CassandraConfig, CassandraStore, Replication};
use futures::{StreamExt as _, TryStreamExt as _, stream};
use scylla::client::execution_profile::ExecutionProfile;
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;
use scylla::statement::prepared::PreparedStatement;
use scylla::statement::{Consistency, SerialConsistency};

const USAGE: &str = "\
usage: clusterfault schema --nodes H:P,H:P,H:P --keyspace K
       clusterfault setup --broker URL --sysname S --repos N --out FILE
       clusterfault push  --broker URL --sysname S --repos FILE --id N --seconds S --out FILE [--timeout S]
       clusterfault check --nodes H:P,H:P,H:P --keyspace K --repos FILE [--min-acked N] RESULTS...
       clusterfault bench --broker URL --sysname S --nodes H:P,... --keyspace K [--calls N] [--rounds N]
                          [--pushers N] [--seconds S]";

// ----- command line ---------------------------------------------------------------------------

/// `--name value` options and positional arguments.
#[derive(Debug, Default)]
struct Args {
    options: HashMap<String, String>,
    positional: Vec<String>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Args> {
        let mut out = Args::default();
        let mut i = 0;
        while i < args.len() {
            if let Some(name) = args[i].strip_prefix("--") {
                let value = args.get(i + 1).ok_or_else(|| anyhow!("--{name} needs a value"))?;
                out.options.insert(name.to_owned(), value.clone());
                i += 2;
            } else {
                out.positional.push(args[i].clone());
                i += 1;
            }
        }
        Ok(out)
    }

    fn get(&self, name: &str) -> Result<&str> {
        self.options.get(name).map(String::as_str).ok_or_else(|| anyhow!("missing --{name}"))
    }

    fn number<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T> {
        match self.options.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| anyhow!("--{name} needs a number, not {v:?}")),
        }
    }

    fn nodes(&self) -> Result<Vec<String>> {
        let nodes: Vec<String> = self.get("nodes")?.split(',').map(|s| s.trim().to_owned()).collect();
        ensure!(nodes.iter().all(|n| !n.is_empty()), "--nodes takes HOST:PORT,HOST:PORT,...");
        Ok(nodes)
    }
}

// ----- shared pieces --------------------------------------------------------------------------

fn person(name: String, id: i32) -> Person {
    Person { name: Some(name), id: Some(id), email: None, phone: Vec::new() }
}

/// A new repository: an address book (an `AddressLink` over two persons), committed on master.
fn address_book(title: String) -> Result<Repository> {
    let mut r = Repository::new(Registry::builtin());
    let a = r.create(&person("Ada".into(), 1))?;
    let b = r.create(&person("Bob".into(), 2))?;
    let book = AddressLink { person: vec![r.link(a)?, r.link(b)?], owner: Some(r.link(a)?), title: Some(title) };
    let book = r.create(&book)?;
    r.set_root(book)?;
    r.commit("a shared address book")?;
    Ok(r)
}

/// Renames the book's first person and commits; returns the commit key.
fn edit(repo: &mut Repository, name: String, comment: &str) -> Result<Key> {
    let root = repo.root().ok_or_else(|| anyhow!("nothing checked out"))?;
    let first = *repo.children(root)?.first().ok_or_else(|| anyhow!("the book has no persons"))?;
    repo.update::<Person>(first, |p| p.name = Some(name))?;
    Ok(repo.commit(comment)?)
}

/// The key of the branch named master.
fn master_key(repo: &Repository) -> Result<String> {
    repo.get_branch(dsf::MASTER_BRANCH).map(|b| b.key.clone()).ok_or_else(|| anyhow!("no master branch"))
}

/// One line for a file of tab-separated fields: tabs and newlines in a field become spaces.
fn line(fields: &[&str]) -> String {
    let clean: Vec<String> = fields.iter().map(|f| f.replace(['\t', '\n', '\r'], " ")).collect();
    clean.join("\t") + "\n"
}

/// A connection to the broker: a container and one client process in it.
struct Conn {
    container: Container,
    client: AmqpClient,
}

async fn connect(broker: &str, sysname: &str, timeout: Duration) -> Result<Conn> {
    let container = Container::start(ContainerConfig::new(broker, Some(sysname.to_owned()))).await?;
    let client = AmqpClient::spawn(&container, None).await?.with_timeout(timeout);
    Ok(Conn { container, client })
}

impl Conn {
    async fn close(self) {
        // A dead connection may not answer a close: do not wait for it long.
        let _ = tokio::time::timeout(Duration::from_secs(2), self.container.terminate()).await;
    }
}

/// Whether an error means the broker connection is gone (or no longer delivers replies).
fn connection_lost(e: &ClientError) -> bool {
    matches!(e, ClientError::Broker(_) | ClientError::Timeout { .. })
}

/// A shared repository: its key and the key of its only branch.
#[derive(Debug, Clone)]
struct Shared {
    key: String,
    branch: String,
}

fn read_repos(path: &Path) -> Result<Vec<Shared>> {
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for l in std::io::BufReader::new(file).lines() {
        let l = l?;
        let f: Vec<&str> = l.split('\t').collect();
        if f.first() == Some(&"repo") && f.len() >= 3 {
            out.push(Shared { key: f[1].to_owned(), branch: f[2].to_owned() });
        }
    }
    ensure!(!out.is_empty(), "{} names no repository", path.display());
    Ok(out)
}

// ----- schema ---------------------------------------------------------------------------------

/// The Cassandra store on the cluster, with the keyspace created with 3 replicas if missing.
async fn store(nodes: &[String], keyspace: &str) -> Result<CassandraStore> {
    let mut config = CassandraConfig::new(keyspace);
    config.contact_points = nodes.to_vec();
    config.replication = Replication::Simple { factor: 3 };
    CassandraStore::connect(config).await.context("connecting the Cassandra store to the cluster")
}

async fn schema(a: &Args) -> Result<()> {
    let keyspace = a.get("keyspace")?;
    store(&a.nodes()?, keyspace).await?;
    eprintln!("clusterfault: keyspace {keyspace} and its tables are in place");
    Ok(())
}

// ----- setup ----------------------------------------------------------------------------------

async fn setup(a: &Args) -> Result<()> {
    let (broker, sysname) = (a.get("broker")?, a.get("sysname")?);
    let n: usize = a.number("repos", 8)?;
    let out = PathBuf::from(a.get("out")?);
    let conn = connect(broker, sysname, Duration::from_secs(30)).await?;
    let mut text = String::new();
    for i in 0..n {
        let repo = address_book(format!("shared book {i}"))?;
        let head = repo.commit_head()?.ok_or_else(|| anyhow!("no head"))?;
        // A retry pushes the same commit again, which is harmless.
        let mut attempt = 0;
        loop {
            match conn.client.push(&repo).await {
                Ok(()) => break,
                Err(e) if attempt < 5 => {
                    eprintln!("clusterfault: setup push of {} failed ({e}); retrying", repo.key());
                    attempt += 1;
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                Err(e) => return Err(e).context(format!("pushing shared repository {}", repo.key())),
            }
        }
        text.push_str(&line(&["repo", repo.key(), &master_key(&repo)?, &head.to_hex()]));
    }
    std::fs::write(&out, text).with_context(|| format!("writing {}", out.display()))?;
    eprintln!("clusterfault: pushed {n} shared repositories");
    conn.close().await;
    Ok(())
}

// ----- push -----------------------------------------------------------------------------------

/// A client's copies of one shared repository.
#[derive(Default)]
struct Copies {
    /// Pulled before every fast-forward push.
    fresh: Option<Repository>,
    /// Not pulled: divergent pushes commit on it. Replaced by a copy of `fresh` now and then.
    stale: Option<Repository>,
    /// Divergent pushes since `stale` was taken.
    stale_uses: u32,
}

#[derive(Debug, Default)]
struct Counts {
    acked: u64,
    failed: u64,
    pulls: u64,
    gets: u64,
    op_failures: u64,
    reconnects: u64,
}

struct Client<'a> {
    id: u64,
    broker: &'a str,
    sysname: &'a str,
    timeout: Duration,
    conn: Option<Conn>,
    out: std::fs::File,
    counts: Counts,
    seq: u64,
    started: Instant,
}

impl Client<'_> {
    /// Writes one line, with the seconds since the client started as its last field.
    fn write(&mut self, fields: &[&str]) -> Result<()> {
        let at = format!("{:.1}", self.started.elapsed().as_secs_f64());
        let mut all = fields.to_vec();
        all.push(&at);
        self.out.write_all(line(&all).as_bytes())?;
        Ok(())
    }

    /// The client of the current connection, connecting first (with backoff) if there is none.
    async fn client(&mut self, deadline: Instant) -> Option<&AmqpClient> {
        let mut backoff = Duration::from_millis(250);
        while self.conn.is_none() {
            match connect(self.broker, self.sysname, self.timeout).await {
                Ok(c) => self.conn = Some(c),
                Err(e) => {
                    if Instant::now() + backoff > deadline {
                        eprintln!("clusterfault {}: no broker connection before the end: {e:#}", self.id);
                        return None;
                    }
                    eprintln!("clusterfault {}: connecting failed ({e:#}); again in {backoff:?}", self.id);
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        self.conn.as_ref().map(|c| &c.client)
    }

    /// Drops the connection if `e` says it is gone.
    async fn after_error(&mut self, e: &ClientError) {
        if connection_lost(e)
            && let Some(c) = self.conn.take()
        {
            self.counts.reconnects += 1;
            eprintln!("clusterfault {}: reconnecting after: {e}", self.id);
            c.close().await;
        }
    }

    fn next_name(&mut self) -> String {
        self.seq += 1;
        format!("client {} edit {}", self.id, self.seq)
    }

    /// Pull (cloning first if there is no copy), check out master, edit, commit, push.
    async fn fast_forward(&mut self, shared: &Shared, copies: &mut Copies, deadline: Instant) -> Result<()> {
        let name = self.next_name();
        let Some(client) = self.client(deadline).await else { return Ok(()) };
        let prepared: Result<Repository, ClientError> = async {
            let mut repo = match copies.fresh.take() {
                Some(mut r) => {
                    client.pull(&mut r, true, None).await?;
                    r
                }
                None => client.clone_repository(&shared.key, true, None).await?,
            };
            client.checkout(&mut repo, Checkout::branch(dsf::MASTER_BRANCH)).await?;
            Ok::<Repository, ClientError>(repo)
        }
        .await;
        let mut repo = match prepared {
            Ok(r) => r,
            Err(e) => {
                self.counts.op_failures += 1;
                self.write(&["opfail", "pull", &shared.key, &e.to_string()])?;
                self.after_error(&e).await;
                return Ok(());
            }
        };
        let commit = edit(&mut repo, name, "fast-forward")?;
        self.push(shared, &repo, commit, "fast-forward").await?;
        copies.fresh = Some(repo);
        Ok(())
    }

    /// Edit and commit on the stale copy (taken from the fresh one now and then), push.
    async fn divergent(&mut self, shared: &Shared, copies: &mut Copies, deadline: Instant) -> Result<()> {
        if copies.stale.is_none() || copies.stale_uses >= 6 {
            match &copies.fresh {
                Some(f) => {
                    copies.stale = Some(f.clone());
                    copies.stale_uses = 0;
                }
                None => return self.fast_forward(shared, copies, deadline).await,
            }
        }
        let name = self.next_name();
        let Some(client) = self.client(deadline).await else { return Ok(()) };
        let mut repo = copies.stale.take().expect("ensured above");
        // Merges divergent heads the copy knows of (by date), on the copy alone.
        if let Err(e) = client.checkout(&mut repo, Checkout::branch(dsf::MASTER_BRANCH)).await {
            self.counts.op_failures += 1;
            self.write(&["opfail", "checkout", &shared.key, &e.to_string()])?;
            self.after_error(&e).await;
            return Ok(());
        }
        let commit = edit(&mut repo, name, "divergent")?;
        self.push(shared, &repo, commit, "divergent").await?;
        copies.stale = Some(repo);
        copies.stale_uses += 1;
        Ok(())
    }

    async fn push(&mut self, shared: &Shared, repo: &Repository, commit: Key, kind: &str) -> Result<()> {
        let branch = master_key(repo)?;
        let Some(conn) = &self.conn else { bail!("no connection") };
        let t = Instant::now();
        let result = conn.client.push(repo).await;
        match result {
            Ok(()) => {
                self.counts.acked += 1;
                let ms = format!("{:.1}", t.elapsed().as_secs_f64() * 1e3);
                self.write(&["ack", &shared.key, &branch, &commit.to_hex(), kind, &ms])?;
            }
            Err(e) => {
                self.counts.failed += 1;
                self.write(&["fail", &shared.key, kind, &e.to_string()])?;
                self.after_error(&e).await;
            }
        }
        Ok(())
    }

    async fn pull(&mut self, shared: &Shared, copies: &mut Copies, deadline: Instant) -> Result<()> {
        let Some(client) = self.client(deadline).await else { return Ok(()) };
        let result = if let Some(r) = copies.fresh.as_mut() {
            client.pull(r, true, None).await
        } else {
            client.clone_repository(&shared.key, true, None).await.map(|r| copies.fresh = Some(r))
        };
        self.counts.pulls += 1;
        if let Err(e) = result {
            self.counts.op_failures += 1;
            self.write(&["opfail", "pull", &shared.key, &e.to_string()])?;
            self.after_error(&e).await;
        }
        Ok(())
    }

    async fn get_object(&mut self, shared: &Shared, deadline: Instant) -> Result<()> {
        let Some(client) = self.client(deadline).await else { return Ok(()) };
        let id = IdRef { key: Some(shared.key.clone()), branch: Some(dsf::MASTER_BRANCH.into()), ..IdRef::default() };
        let result = client.get_object(id, &[]).await;
        self.counts.gets += 1;
        match result {
            Ok(o) if o.elements.is_empty() => {
                self.counts.op_failures += 1;
                self.write(&["opfail", "get_object", &shared.key, "no elements returned"])?;
            }
            Ok(_) => {}
            Err(e) => {
                self.counts.op_failures += 1;
                self.write(&["opfail", "get_object", &shared.key, &e.to_string()])?;
                self.after_error(&e).await;
            }
        }
        Ok(())
    }
}

async fn push_client(a: &Args) -> Result<()> {
    let repos = read_repos(Path::new(a.get("repos")?))?;
    let id: u64 = a.number("id", 0)?;
    let seconds: u64 = a.number("seconds", 180)?;
    let out_path = PathBuf::from(a.get("out")?);
    let out = std::fs::File::create(&out_path).with_context(|| format!("creating {}", out_path.display()))?;
    let mut c = Client {
        id,
        broker: a.get("broker")?,
        sysname: a.get("sysname")?,
        timeout: Duration::from_secs(a.number("timeout", 20)?),
        conn: None,
        out,
        counts: Counts::default(),
        seq: 0,
        started: Instant::now(),
    };
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut rng = Rng::new((0xC1_u64 << 32) | id);
    let mut copies: Vec<Copies> = repos.iter().map(|_| Copies::default()).collect();
    while Instant::now() < deadline {
        let i = rng.below(repos.len());
        let (shared, copy) = (&repos[i], &mut copies[i]);
        match rng.below(10) {
            0..=5 => c.fast_forward(shared, copy, deadline).await?,
            6..=7 => c.divergent(shared, copy, deadline).await?,
            8 => c.pull(shared, copy, deadline).await?,
            _ => c.get_object(shared, deadline).await?,
        }
    }
    let n = &c.counts;
    eprintln!(
        "clusterfault {id}: acked {} pushes, {} failed; {} pulls, {} get_object, {} other failures, {} reconnects",
        n.acked, n.failed, n.pulls, n.gets, n.op_failures, n.reconnects
    );
    if let Some(conn) = c.conn.take() {
        conn.close().await;
    }
    Ok(())
}

// ----- check ----------------------------------------------------------------------------------

/// An element read at ALL: its kind and the keys it links.
struct Read {
    commit: bool,
    /// Parent commits (commits only).
    parents: Vec<Key>,
    /// Linked keys, each with whether it is a commit.
    links: Vec<(Key, bool)>,
}

/// Reads elements at consistency ALL: objects from `blobs`, commits from `rows` (where the
/// store keeps them), whichever holds the key.
struct AllReader {
    session: Session,
    blob: PreparedStatement,
    row: PreparedStatement,
    registry: Registry,
}

impl AllReader {
    async fn connect(nodes: &[String], keyspace: &str) -> Result<AllReader> {
        let profile = ExecutionProfile::builder()
            .consistency(Consistency::All)
            .request_timeout(Some(Duration::from_secs(30)))
            .build();
        let session = SessionBuilder::new()
            .known_nodes(nodes)
            .default_execution_profile_handle(profile.into_handle())
            .build()
            .await
            .context("connecting to the cluster")?;
        let blob = session.prepare(format!("SELECT element, children FROM \"{keyspace}\".blobs WHERE key = ?")).await?;
        let row = session.prepare(format!("SELECT value FROM \"{keyspace}\".rows WHERE key = ?")).await?;
        Ok(AllReader { session, blob, row, registry: Registry::builtin() })
    }

    /// The element `key`, or `None` if no table holds it.
    async fn read(&self, key: Key) -> Result<Option<Read>> {
        type Blob = (Option<Vec<u8>>, Option<Vec<u8>>);
        let rows = self.session.execute_unpaged(&self.blob, (key.as_bytes(),)).await?.into_rows_result()?;
        let element = match rows.maybe_first_row::<Blob>()? {
            Some((Some(element), children)) => Element::from_stored(&element, &children.unwrap_or_default())?,
            _ => {
                let rows = self.session.execute_unpaged(&self.row, (key.as_bytes(),)).await?.into_rows_result()?;
                match rows.maybe_first_row::<(Option<Vec<u8>>,)>()? {
                    Some((Some(value),)) => Element::decode(&self.registry, &value)?,
                    _ => return Ok(None),
                }
            }
        };
        ensure!(element.key() == key, "element {key} is stored under another key ({})", element.key());
        let commit = element.ty() == TypeId::COMMIT;
        let links: Vec<(Key, bool)> = if commit {
            element.links(&self.registry)?.into_iter().map(|(k, t)| (k, t == TypeId::COMMIT)).collect()
        } else {
            element.children().iter().map(|k| (*k, false)).collect()
        };
        let parents = links.iter().filter(|(_, c)| *c).map(|(k, _)| *k).collect();
        Ok(Some(Read { commit, parents, links }))
    }
}

/// What the heads of one repository reach.
#[derive(Default)]
struct Reached {
    /// Commit → its parents.
    commits: HashMap<Key, Vec<Key>>,
    /// Keys a head reaches that no table holds.
    missing: Vec<Key>,
    elements: usize,
}

async fn reach(reader: &AllReader, heads: &[Key]) -> Result<Reached> {
    let mut out = Reached::default();
    let mut seen: HashSet<Key> = heads.iter().copied().collect();
    let mut frontier: Vec<Key> = seen.iter().copied().collect();
    while !frontier.is_empty() {
        let reads: Vec<(Key, Option<Read>)> = stream::iter(frontier)
            .map(|k| async move { reader.read(k).await.map(|r| (k, r)) })
            .buffer_unordered(32)
            .try_collect()
            .await?;
        let mut next = Vec::new();
        for (key, read) in reads {
            out.elements += 1;
            let Some(read) = read else {
                out.missing.push(key);
                continue;
            };
            if read.commit {
                out.commits.insert(key, read.parents.clone());
            }
            next.extend(read.links.iter().map(|(k, _)| *k).filter(|k| seen.insert(*k)));
        }
        frontier = next;
    }
    Ok(out)
}

/// Every commit reachable from `heads` through parents.
fn ancestry(commits: &HashMap<Key, Vec<Key>>, heads: &[Key]) -> HashSet<Key> {
    let mut seen: HashSet<Key> = HashSet::new();
    let mut stack: Vec<Key> = heads.to_vec();
    while let Some(k) = stack.pop() {
        if seen.insert(k)
            && let Some(parents) = commits.get(&k)
        {
            stack.extend(parents);
        }
    }
    seen
}

/// What the result files of the clients say.
#[derive(Debug, Default)]
struct Results {
    /// Acknowledged pushes: repository, branch, commit.
    acked: Vec<(String, String, Key)>,
    /// Failed pushes.
    failed: u64,
    /// Failed pushes without an error text.
    unclear: u64,
    /// Failed pushes by the shape of their error (words with digits, such as keys, as `#`).
    errors: BTreeMap<String, u64>,
}

impl Results {
    /// Adds the lines of one result file.
    fn add(&mut self, text: &str) -> Result<()> {
        for l in text.lines() {
            let f: Vec<&str> = l.split('\t').collect();
            match f.first().copied() {
                Some("ack") if f.len() >= 4 => {
                    let commit = Key::from_hex(f[3]).ok_or_else(|| anyhow!("bad commit key in {l:?}"))?;
                    self.acked.push((f[1].to_owned(), f[2].to_owned(), commit));
                }
                Some("ack") => bail!("an ack line without repository, branch and commit: {l:?}"),
                Some("fail") => {
                    self.failed += 1;
                    let error = f.get(3).map(|s| s.trim()).unwrap_or("");
                    if error.is_empty() {
                        self.unclear += 1;
                    }
                    let shape: Vec<&str> = error
                        .split_whitespace()
                        .map(|w| if w.chars().any(|c| c.is_ascii_digit()) { "#" } else { w })
                        .collect();
                    *self.errors.entry(shape.join(" ").chars().take(200).collect()).or_default() += 1;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Checks the cluster after a run:
///
/// - `acked`: `ack` lines of the result files; `failed`: their `fail` lines. A failed push whose
///   error text is empty is counted in `unclear` and fails the check.
/// - `lost`: acknowledged pushes whose commit is not reachable from the final heads (read at
///   SERIAL) of the branch it was pushed to (through parents of every kind).
/// - `dangling`: keys that a head of any repository (shared or bootstrap) reaches through
///   commit parents, commit roots and object children, and that no table holds at ALL.
/// - `duplicated`: shared repositories (of the setup file) that do not have exactly one branch,
///   the one setup pushed, named master; and bootstrap repositories (the ones every datastore
///   preloads at start) that do not have exactly one branch with exactly one head.
async fn check(a: &Args) -> Result<bool> {
    let nodes = a.nodes()?;
    let keyspace = a.get("keyspace")?;
    let repos = read_repos(Path::new(a.get("repos")?))?;
    let min_acked: u64 = a.number("min-acked", 500)?;
    ensure!(!a.positional.is_empty(), "name the result files of the clients");

    // What the clients saw.
    let mut seen = Results::default();
    for path in &a.positional {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
        seen.add(&text).with_context(|| format!("in {path}"))?;
    }
    let Results { acked, failed, unclear, errors } = seen;
    for (shape, n) in &errors {
        eprintln!("check: {n} failed push(es): {shape}");
    }

    let store = store(&nodes, keyspace).await?;
    let reader = AllReader::connect(&nodes, keyspace).await?;

    let (mut lost, mut dangling, mut duplicated, mut elements) = (0u64, 0u64, 0u64, 0usize);
    let mut by_repo: HashMap<&str, Vec<&(String, String, Key)>> = HashMap::new();
    for ack in &acked {
        by_repo.entry(ack.0.as_str()).or_default().push(ack);
    }
    let shared_keys: HashSet<&str> = repos.iter().map(|r| r.key.as_str()).collect();
    for repo in by_repo.keys() {
        if !shared_keys.contains(repo) {
            bail!("acknowledged pushes name repository {repo}, which is not in the setup file");
        }
    }
    for shared in &repos {
        let heads =
            read_heads(&store, &shared.key).await.with_context(|| format!("reading the heads of {}", shared.key))?;
        let acks = by_repo.get(shared.key.as_str()).map(Vec::as_slice).unwrap_or_default();
        let Some(heads) = heads else {
            eprintln!("check: shared repository {} has no heads ({} acknowledged pushes lost)", shared.key, acks.len());
            lost += acks.len() as u64;
            duplicated += 1;
            continue;
        };
        let one_branch = heads.branches.len() == 1
            && heads.branches[0].key == shared.branch
            && heads.nicknames.get(dsf::MASTER_BRANCH) == Some(&shared.branch);
        if !one_branch {
            duplicated += 1;
            let branches: Vec<String> =
                heads.branches.iter().map(|b| format!("{} ({} heads)", b.key, b.heads.len())).collect();
            eprintln!(
                "check: shared repository {} has branches [{}], names {:?}; expected only {} as master",
                shared.key,
                branches.join(", "),
                heads.nicknames,
                shared.branch
            );
        }
        let all_heads: Vec<Key> = heads.branches.iter().flat_map(|b| b.heads.iter().copied()).collect();
        let reached = reach(&reader, &all_heads).await.with_context(|| format!("reading {} at ALL", shared.key))?;
        elements += reached.elements;
        for k in &reached.missing {
            eprintln!("check: {} reaches {k}, which is missing", shared.key);
        }
        dangling += reached.missing.len() as u64;
        let mut per_branch: HashMap<&str, HashSet<Key>> = HashMap::new();
        for b in &heads.branches {
            per_branch.insert(b.key.as_str(), ancestry(&reached.commits, &b.heads));
        }
        for (_, branch, commit) in acks {
            if !per_branch.get(branch.as_str()).is_some_and(|s| s.contains(commit)) {
                lost += 1;
                eprintln!("check: acknowledged commit {commit} of {} (branch {branch}) is lost", shared.key);
            }
        }
        let diverged = heads.branches.iter().map(|b| b.heads.len()).max().unwrap_or(0);
        eprintln!(
            "check: {}: {} acknowledged pushes, {} commits, {} elements reached, {} head(s) on its branch",
            shared.key,
            acks.len(),
            reached.commits.len(),
            reached.elements,
            diverged
        );
    }
    let bootstrap = PREDICATES.iter().map(|(k, _)| *k).chain([ROOT_IDENTITY]);
    for key in bootstrap {
        let heads = read_heads(&store, key).await.with_context(|| format!("reading the heads of {key}"))?;
        let Some(heads) = heads else {
            duplicated += 1;
            eprintln!("check: bootstrap repository {key} is missing");
            continue;
        };
        if heads.branches.len() != 1 || heads.branches[0].heads.len() != 1 {
            duplicated += 1;
            let shape: Vec<usize> = heads.branches.iter().map(|b| b.heads.len()).collect();
            eprintln!("check: bootstrap repository {key} has {} branches with {shape:?} heads", shape.len());
        }
        let all_heads: Vec<Key> = heads.branches.iter().flat_map(|b| b.heads.iter().copied()).collect();
        let reached = reach(&reader, &all_heads).await.with_context(|| format!("reading {key} at ALL"))?;
        elements += reached.elements;
        dangling += reached.missing.len() as u64;
        for k in &reached.missing {
            eprintln!("check: {key} reaches {k}, which is missing");
        }
    }
    eprintln!("check: read {elements} elements at ALL");
    if unclear > 0 {
        eprintln!("check: {unclear} failed push(es) without an error text");
    }
    let acked_n = acked.len() as u64;
    if acked_n < min_acked {
        eprintln!("check: only {acked_n} acknowledged pushes; at least {min_acked} are required");
    }
    println!("cluster-faults: acked={acked_n} failed={failed} lost={lost} dangling={dangling} duplicated={duplicated}");
    let ok = lost == 0 && dangling == 0 && duplicated == 0 && unclear == 0 && acked_n >= min_acked;
    println!("{}", if ok { "ok" } else { "FAIL" });
    Ok(ok)
}

// ----- bench ----------------------------------------------------------------------------------

fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples.get(samples.len() / 2).copied().unwrap_or(f64::NAN)
}

async fn bench(a: &Args) -> Result<()> {
    let (broker, sysname, keyspace) = (a.get("broker")?, a.get("sysname")?, a.get("keyspace")?);
    let nodes = a.nodes()?;
    let calls: usize = a.number("calls", 200)?;
    let rounds: usize = a.number("rounds", 3)?;
    let pushers: usize = a.number("pushers", 8)?;
    let seconds: u64 = a.number("seconds", 20)?;

    let profile = ExecutionProfile::builder()
        .consistency(Consistency::Quorum)
        .serial_consistency(Some(SerialConsistency::Serial))
        .request_timeout(Some(Duration::from_secs(30)))
        .build();
    let session = SessionBuilder::new()
        .known_nodes(&nodes)
        .default_execution_profile_handle(profile.into_handle())
        .build()
        .await
        .context("connecting to the cluster")?;
    session
        .query_unpaged(format!("CREATE TABLE IF NOT EXISTS \"{keyspace}\".cas_probe (k text PRIMARY KEY, v int)"), ())
        .await?;
    session.await_schema_agreement().await?;
    let insert =
        session.prepare(format!("INSERT INTO \"{keyspace}\".cas_probe (k, v) VALUES (?, 1) IF NOT EXISTS")).await?;

    let conn = connect(broker, sysname, Duration::from_secs(30)).await?;
    let tag = std::process::id();
    // Warm-up: prepared paths, connections, the datastore's first push.
    for i in 0..10 {
        session.execute_unpaged(&insert, (format!("warm-{tag}-{i}"),)).await?;
        conn.client.push(&address_book(format!("warm {tag} {i}"))?).await?;
    }
    let (mut pushes, mut cas) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let books: Vec<Repository> =
            (0..calls).map(|i| address_book(format!("bench {tag} {round} {i}"))).collect::<Result<_>>()?;
        let (mut p, mut c) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        for i in 0..calls {
            let t = Instant::now();
            session.execute_unpaged(&insert, (format!("probe-{tag}-{round}-{i}"),)).await?;
            c.push(t.elapsed().as_secs_f64() * 1e6);
        }
        for book in &books {
            let t = Instant::now();
            conn.client.push(book).await?;
            p.push(t.elapsed().as_secs_f64() * 1e6);
        }
        eprintln!(
            "clusterfault bench: round {}/{rounds}: push p50 {:.0} us, INSERT IF NOT EXISTS p50 {:.0} us",
            round + 1,
            median(&mut p.clone()),
            median(&mut c.clone())
        );
        pushes.extend(p);
        cas.extend(c);
    }
    let (push_p50, cas_p50) = (median(&mut pushes), median(&mut cas));

    // Throughput: `pushers` clients, each pushing new small repositories one after another.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for p in 0..pushers {
        let client = AmqpClient::spawn(&conn.container, None).await?.with_timeout(Duration::from_secs(30));
        let (stop, done) = (stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let book = address_book(format!("rate {tag} {p} {i}")).map_err(|e| e.to_string())?;
                client.push(&book).await.map_err(|e| e.to_string())?;
                done.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            Ok::<(), String>(())
        }));
    }
    let t = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let pushed = done.load(Ordering::Relaxed);
    let elapsed = t.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await?.map_err(|e| anyhow!("a pusher failed: {e}"))?;
    }
    let rate = pushed as f64 / elapsed;
    eprintln!("clusterfault bench: {pushers} pushers: {pushed} pushes in {elapsed:.1} s");
    println!("cluster-push {push_p50:.0} {cas_p50:.0}");
    println!("cluster-push-rate {rate:.1} {pushers}");
    conn.close().await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprintln!("{USAGE}");
        return std::process::ExitCode::from(2);
    };
    if command == "-h" || command == "--help" {
        println!("{USAGE}");
        return std::process::ExitCode::SUCCESS;
    }
    let parsed = match Args::parse(&args[1..]) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("clusterfault: {e}\n{USAGE}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime");
    let result = runtime.block_on(async {
        match command.as_str() {
            "schema" => schema(&parsed).await.map(|()| true),
            "setup" => setup(&parsed).await.map(|()| true),
            "push" => push_client(&parsed).await.map(|()| true),
            "check" => check(&parsed).await,
            "bench" => bench(&parsed).await.map(|()| true),
            other => Err(anyhow!("unknown subcommand {other:?}\n{USAGE}")),
        }
    });
    match result {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::FAILURE,
        Err(e) => {
            eprintln!("clusterfault {command}: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u8) -> Key {
        Key::from_slice(&[n; 20]).expect("a SHA-1 key")
    }

    #[test]
    fn ancestry_follows_every_parent() {
        // 1 <- 2 <- 4 (merge of 2 and 3), 1 <- 3; 5 is not reachable from 4.
        let commits: HashMap<Key, Vec<Key>> = [
            (key(1), vec![]),
            (key(2), vec![key(1)]),
            (key(3), vec![key(1)]),
            (key(4), vec![key(2), key(3)]),
            (key(5), vec![key(1)]),
        ]
        .into();
        let reached = ancestry(&commits, &[key(4)]);
        assert_eq!(reached, HashSet::from([key(1), key(2), key(3), key(4)]));
        assert!(!reached.contains(&key(5)));
        assert_eq!(ancestry(&commits, &[key(4), key(5)]).len(), 5);
    }

    #[test]
    fn result_lines_are_counted() {
        let mut r = Results::default();
        let text = [
            line(&["ack", "R1", "B1", &key(7).to_hex(), "fast-forward", "12.5", "1.0"]),
            line(&["fail", "R1", "divergent", "push to x got no reply within 20s", "2.0"]),
            line(&["fail", "R2", "divergent", "", "3.0"]),
            line(&["opfail", "pull", "R1", "store unavailable", "4.0"]),
        ]
        .concat();
        r.add(&text).unwrap();
        assert_eq!(r.acked, vec![("R1".to_owned(), "B1".to_owned(), key(7))]);
        assert_eq!((r.failed, r.unclear), (2, 1));
        assert_eq!(r.errors.get("push to x got no reply within #"), Some(&1));
        assert!(Results::default().add("ack\tR1\tB1\tnot-a-key\n").is_err());
    }

    #[test]
    fn fields_never_break_a_line() {
        assert_eq!(line(&["fail", "a\tb", "c\nd"]), "fail\ta b\tc d\n");
    }
}
