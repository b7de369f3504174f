//! Side-by-side measurements of DSF's stores against their engines used directly, and of a DSF
//! commit against `git fast-import`, for `scripts/compare`.
//!
//! ```text
//! storecmp rocksdb       [--rounds R] [--count N] [--dir DIR]
//! storecmp cassandra     [--rounds R] [--count N] --node HOST:PORT
//! storecmp commit-vs-git [--rounds R] [--count N] [--dir DIR]
//! ```
//!
//! Each subcommand does a fixed amount of work per side and round, alternates the sides (the
//! first side swapped every round), keeps the best round of each, and prints one line per figure
//! on stdout, `NAME DSF PEER` (both in operations or objects per second). Every round's raw
//! figures go to stderr.
//!
//! - `rocksdb`: `put_blobs` of N small elements (`KeyValue`s of 200 encoded bytes) in batches of
//!   1000, then `get_blobs` of N random keys in batches of 100, on `RocksStore` (default
//!   options: LZ4, bloom filters, synced writes), against the `rocksdb` crate doing the same
//!   writes (one `WriteBatch` of 1000 puts of the same key and value bytes, synced) and batched
//!   `MultiGet`s of the same keys, on a database with the same options. Both start from fresh
//!   directories every round; between puts and gets both databases are reopened (untimed), so
//!   reads come from an SST file, not the memtable.
//! - `cassandra`: after one untimed round per side, `put_blobs` of N elements in batches of
//!   1000 on `CassandraStore` (64 statements in flight), against prepared `INSERT`s of the same rows through the `scylla`
//!   driver into a table of the same shape in a keyspace of its own, 64 in flight per batch of
//!   1000, at the same consistency (`LOCAL_QUORUM`).
//! - `commit-vs-git`: N new `KeyValue`s of 512 encoded bytes, linked from `ListObj`s of 1000
//!   under one root `ListObj`, created in a `StoredRepository` on a fresh `RocksStore` and
//!   committed (creation through `commit` returning, save included), against `git fast-import`
//!   of the same N encoded objects as blobs in the same shape (a tree of subtrees of 1000
//!   blobs each, as DSF's `ListObj`s of 1000) and one commit, into a fresh bare repository
//!   (start of the process to its exit). The figure, `commit-vs-git-tree`, is N over the time.

use std::hint::black_box;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use dsf::proto::net::ooici::play::{KeyValue, ListObj};
use dsf::store::persist::StoredRepository;
use dsf::store::{BlobRow, BlobStore};
use dsf::{Element, HashAlgorithm, Key, Registry};
use dsf_benches::{COMMIT_DATE, DEFAULT_SEED, Rng, new_repository};
use dsf_store_backends::cassandra::{CassandraConfig, CassandraStore};
use dsf_store_backends::rocks::RocksStore;
use futures::{StreamExt as _, TryStreamExt as _, stream};
use prost::Message as _;
use tempfile::TempDir;

const USAGE: &str = "usage: storecmp rocksdb       [--rounds R] [--count N] [--dir DIR]
       storecmp cassandra     [--rounds R] [--count N] --node HOST:PORT
       storecmp commit-vs-git [--rounds R] [--count N] [--dir DIR]

Measures DSF against a peer, alternating rounds, and prints `NAME DSF PEER` per figure
(operations or objects per second, best round of each side). Defaults: 3 rounds; N = 100000
(rocksdb, commit-vs-git) or 20000 (cassandra); DIR = the system temporary directory.";

/// Blobs per `put_blobs` call and per raw write batch.
const PUT_BATCH: usize = 1000;
/// Keys per `get_blobs` call and per raw `MultiGet`.
const GET_BATCH: usize = 100;
/// Statements in flight on both Cassandra sides (`CassandraConfig`'s default).
const CASSANDRA_CONCURRENCY: usize = 64;
/// Children per `ListObj` parent in `commit-vs-git`.
const LIST_WIDTH: usize = 1000;

struct Options {
    command: String,
    rounds: u32,
    count: Option<usize>,
    dir: PathBuf,
    node: Option<String>,
}

fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let command = match args.next() {
        Some(c) if c == "-h" || c == "--help" => {
            println!("{USAGE}");
            std::process::exit(0);
        }
        Some(c) => c,
        None => return Err(USAGE.into()),
    };
    let mut opts = Options { command, rounds: 3, count: None, dir: std::env::temp_dir(), node: None };
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--rounds" => {
                opts.rounds = value("--rounds")?.parse().map_err(|e| format!("--rounds: {e}"))?;
                if opts.rounds == 0 {
                    return Err("--rounds must be at least 1".into());
                }
            }
            "--count" => {
                let n: usize = value("--count")?.parse().map_err(|e| format!("--count: {e}"))?;
                if n == 0 {
                    return Err("--count must be at least 1".into());
                }
                opts.count = Some(n);
            }
            "--dir" => opts.dir = PathBuf::from(value("--dir")?),
            "--node" => opts.node = Some(value("--node")?),
            other => return Err(format!("unexpected argument {other:?}\n\n{USAGE}")),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("storecmp: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("storecmp: cannot start a tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match opts.command.as_str() {
        "rocksdb" => compare_rocksdb(&opts, &runtime),
        "cassandra" => runtime.block_on(compare_cassandra(&opts)),
        "commit-vs-git" => compare_commit(&opts, &runtime),
        other => Err(format!("unknown subcommand {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("storecmp: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Turns an error into a message with its context, for `map_err`.
fn err<E: std::fmt::Display>(context: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("{context}: {e}")
}

/// `n` distinct `KeyValue`s whose encoding is exactly `len` bytes (`len` in 100..=16000).
fn key_values(n: usize, len: usize, seed: u64) -> Vec<KeyValue> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let key = format!("sensor/{i:07}/serial");
            // key: tag + length + bytes; value: tag + 2-byte length + bytes (128..16383 bytes).
            let fixed = 1 + 1 + key.len() + 1 + 2;
            let kv = KeyValue { key, value: rng.hex(len - fixed) };
            assert_eq!(kv.encoded_len(), len, "a KeyValue of {len} bytes");
            kv
        })
        .collect()
}

/// The rows `put_blobs` takes, for elements of `n` `KeyValue`s of `len` bytes.
fn blob_rows(n: usize, len: usize) -> Result<Vec<BlobRow>, String> {
    let registry = Registry::builtin();
    key_values(n, len, DEFAULT_SEED)
        .iter()
        .map(|kv| {
            let e = Element::from_message(HashAlgorithm::Sha1, &registry, kv).map_err(|e| e.to_string())?;
            Ok(BlobRow { key: e.key(), element: e.encode().into(), children: e.encode_children().into() })
        })
        .collect()
}

/// The best (largest) of a list of rates.
fn best(rates: &[f64]) -> f64 {
    rates.iter().copied().fold(0.0, f64::max)
}

fn rate(ops: usize, start: Instant) -> f64 {
    ops as f64 / start.elapsed().as_secs_f64()
}

fn temp_dir(parent: &Path, prefix: &str) -> Result<TempDir, String> {
    tempfile::Builder::new().prefix(prefix).tempdir_in(parent).map_err(err("cannot create a temporary directory"))
}

// ----- rocksdb --------------------------------------------------------------------------------

/// The value `RocksStore` stores for a blob: `varint(len(element)) ‖ element ‖ children`.
fn stored_blob(row: &BlobRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.element.len() + row.children.len() + 5);
    let mut n = row.element.len() as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(&row.element);
    out.extend_from_slice(&row.children);
    out
}

/// A raw database with `RocksStore`'s options: LZ4, bloom filters of 10 bits per key, a
/// 64 MiB LRU block cache holding index and filter blocks, parallelism = cores.
fn open_raw(path: &Path) -> Result<rocksdb::DB, String> {
    let cache = rocksdb::Cache::new_lru_cache(64 << 20);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(&cache);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_bloom_filter(10.0, false);
    let mut options = rocksdb::Options::default();
    options.create_if_missing(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    options.increase_parallelism(i32::try_from(threads).unwrap_or(i32::MAX));
    options.set_block_based_table_factory(&table);
    // The default column family opened by name, so that `cf_handle` finds it for `MultiGet`.
    rocksdb::DB::open_cf(&options, path, [rocksdb::DEFAULT_COLUMN_FAMILY_NAME]).map_err(err("cannot open raw RocksDB"))
}

struct RocksRound {
    put: f64,
    get: f64,
}

fn dsf_rocks_round(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    rows: &[BlobRow],
    reads: &[usize],
) -> Result<RocksRound, String> {
    let tmp = temp_dir(dir, "storecmp-dsf-")?;
    let store = RocksStore::open(tmp.path()).map_err(err("RocksStore::open"))?;
    let batches: Vec<Vec<BlobRow>> = rows.chunks(PUT_BATCH).map(<[BlobRow]>::to_vec).collect();
    let start = Instant::now();
    rt.block_on(async {
        for batch in batches {
            store.put_blobs(batch).await?;
        }
        Ok::<_, dsf::store::StoreError>(())
    })
    .map_err(err("put_blobs"))?;
    let put = rate(rows.len(), start);
    // Reopen, so that the reads come from the SST file the recovery flushes.
    drop(store);
    let store = RocksStore::open(tmp.path()).map_err(err("RocksStore::open (again)"))?;
    let batches: Vec<Vec<Key>> = reads.chunks(GET_BATCH).map(|c| c.iter().map(|&i| rows[i].key).collect()).collect();
    let start = Instant::now();
    let found = rt
        .block_on(async {
            let mut found = 0usize;
            for batch in batches {
                found += store.get_blobs(batch).await?.iter().filter(|r| r.is_some()).count();
            }
            Ok::<_, dsf::store::StoreError>(found)
        })
        .map_err(err("get_blobs"))?;
    let get = rate(reads.len(), start);
    if found != reads.len() {
        return Err(format!("get_blobs found {found} of {} blobs", reads.len()));
    }
    Ok(RocksRound { put, get })
}

fn raw_rocks_round(dir: &Path, rows: &[BlobRow], values: &[Vec<u8>], reads: &[usize]) -> Result<RocksRound, String> {
    let tmp = temp_dir(dir, "storecmp-raw-")?;
    let db = open_raw(tmp.path())?;
    let mut sync = rocksdb::WriteOptions::default();
    sync.set_sync(true);
    let start = Instant::now();
    for (rows, values) in rows.chunks(PUT_BATCH).zip(values.chunks(PUT_BATCH)) {
        let mut batch = rocksdb::WriteBatch::default();
        for (row, value) in rows.iter().zip(values) {
            batch.put(row.key.as_bytes(), value);
        }
        db.write_opt(batch, &sync).map_err(err("raw write"))?;
    }
    let put = rate(rows.len(), start);
    drop(db);
    let db = open_raw(tmp.path())?;
    let cf = db.cf_handle(rocksdb::DEFAULT_COLUMN_FAMILY_NAME).ok_or("no default column family")?;
    let batches: Vec<Vec<&[u8]>> =
        reads.chunks(GET_BATCH).map(|c| c.iter().map(|&i| rows[i].key.as_bytes()).collect()).collect();
    let start = Instant::now();
    let mut found = 0usize;
    for batch in &batches {
        for value in db.batched_multi_get_cf(cf, batch, false) {
            if let Some(v) = value.map_err(err("raw multi_get"))? {
                black_box(&*v);
                found += 1;
            }
        }
    }
    let get = rate(reads.len(), start);
    if found != reads.len() {
        return Err(format!("raw multi_get found {found} of {} values", reads.len()));
    }
    Ok(RocksRound { put, get })
}

fn compare_rocksdb(opts: &Options, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let n = opts.count.unwrap_or(100_000);
    let rows = blob_rows(n, 200)?;
    let values: Vec<Vec<u8>> = rows.iter().map(stored_blob).collect();
    let mut rng = Rng::new(DEFAULT_SEED ^ 0x6E7);
    let reads: Vec<usize> = (0..n).map(|_| rng.below(n)).collect();
    let bytes: usize = values.iter().map(Vec::len).sum();
    eprintln!(
        "rocksdb: {n} blobs ({:.1} B stored per blob), puts in batches of {PUT_BATCH}, {n} random gets in \
         batches of {GET_BATCH}, {} rounds",
        bytes as f64 / n as f64,
        opts.rounds
    );
    let (mut dsf_put, mut dsf_get, mut raw_put, mut raw_get) = (vec![], vec![], vec![], vec![]);
    for round in 1..=opts.rounds {
        let run_dsf = || dsf_rocks_round(rt, &opts.dir, &rows, &reads);
        let run_raw = || raw_rocks_round(&opts.dir, &rows, &values, &reads);
        let (d, r) = if round % 2 == 1 {
            let d = run_dsf()?;
            (d, run_raw()?)
        } else {
            let r = run_raw()?;
            (run_dsf()?, r)
        };
        eprintln!(
            "rocksdb round {round}/{}: put dsf {:.0}/s raw {:.0}/s; get dsf {:.0}/s raw {:.0}/s",
            opts.rounds, d.put, r.put, d.get, r.get
        );
        dsf_put.push(d.put);
        dsf_get.push(d.get);
        raw_put.push(r.put);
        raw_get.push(r.get);
    }
    println!("rocksdb-put {:.1} {:.1}", best(&dsf_put), best(&raw_put));
    println!("rocksdb-get {:.1} {:.1}", best(&dsf_get), best(&raw_get));
    Ok(())
}

// ----- cassandra ------------------------------------------------------------------------------

const DSF_KEYSPACE: &str = "dsf_bench_store";
const RAW_KEYSPACE: &str = "dsf_bench_raw";

struct RawCassandra {
    session: scylla::client::session::Session,
    insert: scylla::statement::prepared::PreparedStatement,
}

impl RawCassandra {
    async fn connect(node: &str) -> Result<RawCassandra, String> {
        use scylla::client::execution_profile::ExecutionProfile;
        use scylla::statement::Consistency;
        let profile = ExecutionProfile::builder()
            .consistency(Consistency::LocalQuorum)
            .request_timeout(Some(std::time::Duration::from_secs(30)))
            .build();
        let session = scylla::client::session_builder::SessionBuilder::new()
            .known_node(node)
            .default_execution_profile_handle(profile.into_handle())
            .build()
            .await
            .map_err(err("scylla connect"))?;
        let ks = RAW_KEYSPACE;
        for cql in [
            format!("DROP KEYSPACE IF EXISTS {ks}"),
            format!("CREATE KEYSPACE {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': 1}}"),
            format!("CREATE TABLE {ks}.blobs (key blob PRIMARY KEY, element blob, children blob)"),
        ] {
            session.query_unpaged(cql, ()).await.map_err(err("raw schema"))?;
        }
        session.await_schema_agreement().await.map_err(err("raw schema agreement"))?;
        let mut insert = session
            .prepare(format!("INSERT INTO {ks}.blobs (key, element, children) VALUES (?, ?, ?)"))
            .await
            .map_err(err("raw prepare"))?;
        insert.set_is_idempotent(true);
        Ok(RawCassandra { session, insert })
    }

    async fn put(&self, rows: Vec<BlobRow>) -> Result<(), String> {
        stream::iter(rows)
            .map(|r| async move {
                self.session.execute_unpaged(&self.insert, (r.key.as_bytes(), r.element, r.children)).await.map(drop)
            })
            .buffer_unordered(CASSANDRA_CONCURRENCY)
            .try_for_each(|()| async { Ok(()) })
            .await
            .map_err(err("raw insert"))
    }

    async fn drop_keyspace(&self) -> Result<(), String> {
        self.session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {RAW_KEYSPACE}"), ())
            .await
            .map(drop)
            .map_err(err("raw drop keyspace"))
    }
}

async fn connect_dsf(node: &str) -> Result<CassandraStore, String> {
    let mut config = CassandraConfig::local(DSF_KEYSPACE);
    config.contact_points = vec![node.to_string()];
    config.max_concurrency = CASSANDRA_CONCURRENCY;
    CassandraStore::connect(config).await.map_err(err("CassandraStore::connect"))
}

async fn dsf_cassandra_round(store: &CassandraStore, rows: &[BlobRow]) -> Result<f64, String> {
    let batches: Vec<Vec<BlobRow>> = rows.chunks(PUT_BATCH).map(<[BlobRow]>::to_vec).collect();
    let start = Instant::now();
    for batch in batches {
        store.put_blobs(batch).await.map_err(err("put_blobs"))?;
    }
    Ok(rate(rows.len(), start))
}

async fn raw_cassandra_round(raw: &RawCassandra, rows: &[BlobRow]) -> Result<f64, String> {
    let batches: Vec<Vec<BlobRow>> = rows.chunks(PUT_BATCH).map(<[BlobRow]>::to_vec).collect();
    let start = Instant::now();
    for batch in batches {
        raw.put(batch).await?;
    }
    Ok(rate(rows.len(), start))
}

async fn compare_cassandra(opts: &Options) -> Result<(), String> {
    let node = opts.node.as_deref().ok_or("cassandra needs --node HOST:PORT")?;
    let n = opts.count.unwrap_or(20_000);
    let rows = blob_rows(n, 200)?;
    eprintln!(
        "cassandra: {n} blobs of 200 B per round at {node}, batches of {PUT_BATCH}, {CASSANDRA_CONCURRENCY} in \
         flight, {} rounds",
        opts.rounds
    );
    // A fresh keyspace for each side.
    {
        let old = connect_dsf(node).await?;
        old.drop_keyspace().await.map_err(err("drop keyspace"))?;
    }
    let store = connect_dsf(node).await?;
    let raw = RawCassandra::connect(node).await?;
    // Warm-up: one untimed round on each side (connections, the JVM's JIT). Cassandra keeps
    // getting faster over the first rounds; without this, whichever side ran later won.
    let d = dsf_cassandra_round(&store, &rows).await?;
    let r = raw_cassandra_round(&raw, &rows).await?;
    eprintln!("cassandra warm-up (not counted): put dsf {d:.0}/s, raw scylla {r:.0}/s");
    let (mut dsf, mut peer) = (vec![], vec![]);
    for round in 1..=opts.rounds {
        let (d, r) = if round % 2 == 1 {
            let d = dsf_cassandra_round(&store, &rows).await?;
            (d, raw_cassandra_round(&raw, &rows).await?)
        } else {
            let r = raw_cassandra_round(&raw, &rows).await?;
            (dsf_cassandra_round(&store, &rows).await?, r)
        };
        eprintln!("cassandra round {round}/{}: put dsf {d:.0}/s, raw scylla {r:.0}/s", opts.rounds);
        dsf.push(d);
        peer.push(r);
    }
    store.drop_keyspace().await.map_err(err("drop keyspace"))?;
    raw.drop_keyspace().await?;
    println!("cassandra-put {:.1} {:.1}", best(&dsf), best(&peer));
    Ok(())
}

// ----- commit-vs-git --------------------------------------------------------------------------

/// Creates the objects in a `StoredRepository` on a fresh `RocksStore` and commits; returns
/// objects per second (creation through `commit` returning).
fn dsf_commit_round(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    registry: &Registry,
    objects: &[KeyValue],
) -> Result<f64, String> {
    let tmp = temp_dir(dir, "storecmp-commit-")?;
    let store = RocksStore::open(tmp.path()).map_err(err("RocksStore::open"))?;
    let repo = new_repository(registry);
    let start = Instant::now();
    rt.block_on(async {
        let mut stored = StoredRepository::create(&store, repo);
        let repo = stored.repository_mut();
        let mut lists = Vec::with_capacity(objects.len().div_ceil(LIST_WIDTH));
        for chunk in objects.chunks(LIST_WIDTH) {
            let mut items = Vec::with_capacity(chunk.len());
            for kv in chunk {
                let id = repo.create(kv)?;
                items.push(repo.link(id)?);
            }
            let list = repo.create(&ListObj { items })?;
            lists.push(repo.link(list)?);
        }
        let root = repo.create(&ListObj { items: lists })?;
        repo.set_root(root)?;
        stored.commit_at(&format!("{} objects", objects.len()), COMMIT_DATE).await?;
        Ok::<_, dsf::Error>(())
    })
    .map_err(err("DSF commit"))?;
    Ok(rate(objects.len(), start))
}

/// A `git fast-import` stream: one blob per object, one commit whose tree holds them in
/// subtrees of `LIST_WIDTH` blobs (`obj/NNN/NNNN`), the shape of DSF's `ListObj`s.
fn fast_import_stream(encoded: &[Vec<u8>]) -> Vec<u8> {
    let mut s = Vec::with_capacity(encoded.iter().map(|e| e.len() + 64).sum::<usize>() + encoded.len() * 40);
    for (i, bytes) in encoded.iter().enumerate() {
        write!(s, "blob\nmark :{}\ndata {}\n", i + 1, bytes.len()).expect("writing to a Vec");
        s.extend_from_slice(bytes);
        s.push(b'\n');
    }
    let message = format!("{} objects", encoded.len());
    write!(
        s,
        "commit refs/heads/master\ncommitter Bench <bench@example.invalid> {} +0000\ndata {}\n{message}\n",
        COMMIT_DATE as i64,
        message.len()
    )
    .expect("writing to a Vec");
    for i in 0..encoded.len() {
        writeln!(s, "M 100644 :{} obj/{:03}/{:04}", i + 1, i / LIST_WIDTH, i % LIST_WIDTH).expect("writing to a Vec");
    }
    s.extend_from_slice(b"\ndone\n");
    s
}

fn git(args: &[&str]) -> Result<String, String> {
    let out = Command::new("git").args(args).output().map_err(err("cannot run git"))?;
    if !out.status.success() {
        return Err(format!("git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `git fast-import` on `stream` into a fresh bare repository; returns objects per second
/// (process start to exit). With `check`, verifies the resulting tree afterwards (untimed).
fn git_round(dir: &Path, stream: &[u8], objects: usize, check: bool) -> Result<f64, String> {
    let tmp = temp_dir(dir, "storecmp-git-")?;
    let repo = tmp.path().join("repo.git");
    let repo_str = repo.to_str().ok_or("a temporary path that is not UTF-8")?;
    git(&["init", "--bare", "--quiet", repo_str])?;
    let start = Instant::now();
    let mut child = Command::new("git")
        .args(["--git-dir", repo_str, "fast-import", "--quiet", "--done"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .map_err(err("cannot start git fast-import"))?;
    child
        .stdin
        .take()
        .ok_or("no stdin for git fast-import")?
        .write_all(stream)
        .map_err(err("feeding git fast-import"))?;
    let status = child.wait().map_err(err("git fast-import"))?;
    let rate = rate(objects, start);
    if !status.success() {
        return Err(format!("git fast-import failed: {status}"));
    }
    if check {
        let listed = git(&["--git-dir", repo_str, "ls-tree", "-r", "--name-only", "master"])?.lines().count();
        if listed != objects {
            return Err(format!("git fast-import stored {listed} of {objects} objects"));
        }
    }
    Ok(rate)
}

fn compare_commit(opts: &Options, rt: &tokio::runtime::Runtime) -> Result<(), String> {
    let n = opts.count.unwrap_or(100_000);
    let registry = Registry::builtin();
    let objects = key_values(n, 512, DEFAULT_SEED);
    let encoded: Vec<Vec<u8>> = objects.iter().map(|kv| kv.encode_to_vec()).collect();
    let stream = fast_import_stream(&encoded);
    eprintln!(
        "commit-vs-git-tree: {n} objects of 512 B (KeyValue) under {} ListObj parents and a root, and under as \
         many git subtrees; git stream {:.1} MB; \
         {}; {} rounds",
        n.div_ceil(LIST_WIDTH),
        stream.len() as f64 / 1e6,
        git(&["--version"])?.trim(),
        opts.rounds
    );
    let (mut dsf, mut peer) = (vec![], vec![]);
    for round in 1..=opts.rounds {
        let check = round == 1;
        let (d, g) = if round % 2 == 1 {
            let d = dsf_commit_round(rt, &opts.dir, &registry, &objects)?;
            (d, git_round(&opts.dir, &stream, n, check)?)
        } else {
            let g = git_round(&opts.dir, &stream, n, check)?;
            (dsf_commit_round(rt, &opts.dir, &registry, &objects)?, g)
        };
        eprintln!(
            "commit-vs-git-tree round {round}/{}: dsf {d:.0} objects/s ({:.3} s), git fast-import {g:.0} objects/s \
             ({:.3} s)",
            opts.rounds,
            n as f64 / d,
            n as f64 / g
        );
        dsf.push(d);
        peer.push(g);
    }
    println!("commit-vs-git-tree {:.1} {:.1}", best(&dsf), best(&peer));
    Ok(())
}
