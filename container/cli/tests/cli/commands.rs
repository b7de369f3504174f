//! Every command of the `dsf_cli` library called in-process, as ordinary functions: the local
//! commands on working copies in temporary folders, and clone, fetch, pull, push and the
//! remote commands against a store folder, a datastore over loopback gRPC and one on the test
//! broker. Each check reads the exit code, the working copy's files or its store.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use dsf::MergePolicy;
use dsf_cli::commands::{self, CheckoutArgs, SyncOptions};
use dsf_cli::ui::{Ui, exit};
use dsf_cli::workdir::Workdir;
use serde_json::{Value, json};

use crate::common::*;

/// Says nothing: the tests read what the commands did, not what they printed.
const QUIET: Ui = Ui { json: false, color: false, progress: false, quiet: true };

/// Every type, and a timeout that a healthy loopback exchange never reaches.
const OPTS: SyncOptions = SyncOptions {
    timeout: Some(std::time::Duration::from_secs(60)),
    all_types: true,
    depth: None,
    deepen: None,
    unshallow: false,
};

/// Runs an async test body on a thread with a large stack (as the binary does).
fn run<F: std::future::Future<Output = ()>>(body: impl FnOnce() -> F + Send + 'static) {
    std::thread::Builder::new()
        .stack_size(64 << 20)
        .spawn(move || block_on(body()))
        .expect("a test thread")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
}

/// A working copy's folder, read through the library's own view of it.
#[derive(Clone)]
struct Wc(PathBuf);

impl Wc {
    fn dir(&self) -> &Path {
        &self.0
    }

    /// The commit the document was written from.
    fn head(&self) -> String {
        Workdir::open(&self.0).expect("a working copy").state.commit.expect("a commit")
    }

    /// The document.
    fn doc(&self) -> Value {
        Workdir::open(&self.0).expect("a working copy").read_document().expect("readable").expect("a document")
    }

    /// Edits the document.
    fn edit(&self, change: impl FnOnce(&mut Value)) {
        let mut doc = self.doc();
        change(&mut doc);
        Workdir::open(&self.0).unwrap().write_document(Some(&doc)).unwrap();
    }

    /// The commits of a revision's history (by `log`'s walk of the stored repository).
    async fn history(&self) -> BTreeSet<String> {
        let s = dsf_cli::session::Session::open(&self.0).unwrap();
        let sr = s.repo().await.unwrap();
        let head = dsf::Key::from_hex(&self.head()).unwrap();
        commands::topo_order(sr.repository(), &[head]).into_iter().map(|k| k.to_hex()).collect()
    }

    async fn commit(&self, message: &str) -> String {
        assert_eq!(commands::commit(&self.0, message, QUIET).await.unwrap(), exit::OK);
        self.head()
    }

    async fn change(&self, message: &str, change: impl FnOnce(&mut Value)) -> String {
        self.edit(change);
        self.commit(message).await
    }
}

/// A new working copy `name` in `scratch` with an address book imported and committed.
async fn copy_with_book(scratch: &Path, name: &str) -> Wc {
    let book = scratch.join(format!("{name}-book.json"));
    let doc = json!({
        "@type": "net.ooici.play.AddressLink",
        "title": "Friends",
        "person": [
            {"@type": "net.ooici.play.Person", "name": "Ann", "id": 1, "email": "ann@example.org"},
            {"@type": "net.ooici.play.Person", "name": "Bob", "id": 2},
        ],
    });
    std::fs::write(&book, serde_json::to_vec(&doc).unwrap()).unwrap();
    assert_eq!(commands::init(scratch, Some(name.into()), "sha1", None, QUIET).unwrap(), exit::OK);
    let wc = Wc(scratch.join(name));
    assert_eq!(commands::import(wc.dir(), &book, "json", None, false, QUIET).await.unwrap(), exit::OK);
    wc.commit("an address book").await;
    wc
}

/// The local commands, one after another on one copy: init, import, commit, status, diff,
/// branch, checkout, merge (clean, conflicting then aborted, conflicting then continued), log,
/// show, export and import of a Structure, hash-object, cat-object, types, fsck and gc.
#[test]
fn local_commands_run_in_process() {
    run(|| async {
        let scratch = tempfile::tempdir().unwrap();
        let wc = copy_with_book(scratch.path(), "a").await;
        let first = wc.head();
        let dir = wc.dir().to_path_buf();

        assert_eq!(commands::status(&dir, QUIET).await.unwrap(), exit::OK);
        wc.edit(|d| d["title"] = json!("Family"));
        assert_eq!(commands::diff(&dir, None, None, QUIET).await.unwrap(), exit::OK);
        let retitled = wc.commit("retitled").await;
        assert_ne!(retitled, first);
        assert_eq!(commands::diff(&dir, Some(first.clone()), Some(retitled.clone()), QUIET).await.unwrap(), exit::OK);

        // A branch, a change on it, and a clean merge back into master.
        assert_eq!(commands::branch(&dir, Some("draft".into()), None, false, QUIET).await.unwrap(), exit::OK);
        let to = |target: &str| CheckoutArgs { target: Some(target.into()), ..CheckoutArgs::default() };
        assert_eq!(commands::checkout(&dir, to("draft"), QUIET).await.unwrap(), exit::OK);
        let on_draft = wc.change("Bob is Robert", |d| d["person"][1]["name"] = json!("Robert")).await;
        assert_eq!(commands::checkout(&dir, to("master"), QUIET).await.unwrap(), exit::OK);
        assert_eq!(wc.head(), retitled);
        assert_eq!(wc.doc()["person"][1]["name"], "Bob");
        let on_master = wc.change("new email", |d| d["person"][0]["email"] = json!("ann@example.com")).await;
        let s = dsf_cli::session::Session::open(&dir).unwrap();
        assert_eq!(commands::merge(&s, "draft", MergePolicy::Manual, None, QUIET).await.unwrap(), exit::OK);
        drop(s);
        assert_eq!(wc.doc()["person"][1]["name"], "Robert");
        assert_eq!(wc.doc()["person"][0]["email"], "ann@example.com");
        let merged = wc.head();
        let history = wc.history().await;
        assert!(
            [&first, &retitled, &on_draft, &on_master, &merged].iter().all(|c| history.contains(*c)),
            "{history:?}"
        );

        // A conflict, aborted; then again, resolved by hand and continued.
        assert_eq!(commands::checkout(&dir, to("draft"), QUIET).await.unwrap(), exit::OK);
        let theirs = wc.change("draft title", |d| d["title"] = json!("Draft")).await;
        assert_eq!(commands::checkout(&dir, to("master"), QUIET).await.unwrap(), exit::OK);
        wc.change("master title", |d| d["title"] = json!("Master")).await;
        let ours = wc.head();
        let s = dsf_cli::session::Session::open(&dir).unwrap();
        assert_eq!(commands::merge(&s, "draft", MergePolicy::Manual, None, QUIET).await.unwrap(), exit::CONFLICT);
        drop(s);
        assert_eq!(wc.doc()["title"]["@conflict"]["theirs"], "Draft");
        assert_eq!(commands::merge_abort(&dir, QUIET).await.unwrap(), exit::OK);
        assert_eq!(wc.doc()["title"], "Master");
        assert_eq!(wc.head(), ours);
        let s = dsf_cli::session::Session::open(&dir).unwrap();
        assert_eq!(commands::merge(&s, "draft", MergePolicy::Manual, None, QUIET).await.unwrap(), exit::CONFLICT);
        drop(s);
        let refused = commands::merge_continue(&dir, None, QUIET).await.unwrap_err();
        assert!(refused.to_string().contains("root.title"), "{refused}");
        wc.edit(|d| d["title"] = json!("Both"));
        assert_eq!(commands::merge_continue(&dir, None, QUIET).await.unwrap(), exit::OK);
        let resolved = wc.head();
        assert!(wc.history().await.contains(&theirs));
        assert_eq!(wc.doc()["title"], "Both");

        // History and inspection.
        assert_eq!(commands::log(&dir, None, true, Some(3), false, QUIET).await.unwrap(), exit::OK);
        assert_eq!(commands::show(&dir, Some("master~1".into()), QUIET).await.unwrap(), exit::OK);
        let key = wc.doc()["person"][0]["@key"].as_str().unwrap().to_owned();
        assert_eq!(commands::cat_object(&dir, &key, QUIET).await.unwrap(), exit::OK);
        assert!(commands::cat_object(&dir, &"AB".repeat(20), QUIET).await.is_err());
        assert_eq!(
            commands::hash_object(
                &dir,
                Some("net.ooici.play.Person".into()),
                Some(r#"{"name": "Ann", "id": 1, "email": "ann@example.org"}"#.into()),
                None,
                None,
                QUIET
            )
            .unwrap(),
            exit::OK
        );
        assert_eq!(commands::types_list(&dir, QUIET).unwrap(), exit::OK);

        // Export as a Structure, import it back: the same root, so nothing to commit.
        let bin = scratch.path().join("book.bin");
        assert_eq!(commands::export(&dir, None, "binary", Some(bin.clone()), QUIET).await.unwrap(), exit::OK);
        let before = wc.doc();
        assert_eq!(commands::import(&dir, &bin, "binary", None, false, QUIET).await.unwrap(), exit::OK);
        assert_eq!(wc.doc()["@key"], before["@key"]);
        let json_out = scratch.path().join("book.json");
        assert_eq!(
            commands::export(&dir, Some(first.clone()), "json", Some(json_out.clone()), QUIET).await.unwrap(),
            0
        );
        let exported: Value = serde_json::from_slice(&std::fs::read(&json_out).unwrap()).unwrap();
        assert_eq!(exported["title"], "Friends");

        // Branch deletion, fsck, gc.
        assert_eq!(commands::branch(&dir, Some("draft".into()), None, true, QUIET).await.unwrap(), exit::OK);
        assert_eq!(commands::fsck(&dir, QUIET).await.unwrap(), exit::OK);
        assert_eq!(commands::gc(&dir, true, QUIET).await.unwrap(), exit::OK);
        assert_eq!(commands::gc(&dir, false, QUIET).await.unwrap(), exit::OK);
        assert_eq!(commands::fsck(&dir, QUIET).await.unwrap(), exit::OK);
        assert_eq!(wc.head(), resolved);
    });
}

/// Two copies exchanging commits through `url`: remote add and list, push, clone, a
/// fast-forward pull, a refused push then a pull that merges, fetch (which moves no branch),
/// and remote remove.
async fn exchange_in_process(url: String) {
    let scratch = tempfile::tempdir().unwrap();
    let a = copy_with_book(scratch.path(), "a").await;
    assert_eq!(commands::remote_add(a.dir(), "origin", &url, QUIET).unwrap(), exit::OK);
    assert_eq!(commands::remote_list(a.dir(), QUIET).unwrap(), exit::OK);
    assert_eq!(commands::push(a.dir(), None, false, OPTS, QUIET).await.unwrap(), exit::OK);

    let key = Workdir::open(a.dir()).unwrap().config.repository.clone();
    assert_eq!(
        commands::clone(scratch.path(), &url, &key, Some("b".into()), &[], OPTS, QUIET).await.unwrap(),
        exit::OK
    );
    let b = Wc(scratch.path().join("b"));
    assert_eq!(b.head(), a.head());
    assert_eq!(b.doc(), a.doc());

    let retitled = b.change("retitled", |d| d["title"] = json!("Family")).await;
    assert_eq!(commands::push(b.dir(), None, false, OPTS, QUIET).await.unwrap(), exit::OK);
    assert_eq!(commands::pull(a.dir(), None, MergePolicy::Manual, OPTS, QUIET).await.unwrap(), exit::OK);
    assert_eq!(a.head(), retitled);
    assert_eq!(a.doc(), b.doc());

    let by_a = a.change("a new email", |d| d["person"][0]["email"] = json!("ann@example.com")).await;
    let by_b = b.change("Bob is Robert", |d| d["person"][1]["name"] = json!("Robert")).await;
    assert_eq!(commands::push(a.dir(), None, false, OPTS, QUIET).await.unwrap(), exit::OK);
    let refused = commands::push(b.dir(), None, false, OPTS, QUIET).await.unwrap_err();
    assert!(refused.to_string().contains("not here"), "{refused}");
    assert_eq!(commands::fetch(b.dir(), None, OPTS, QUIET).await.unwrap(), exit::OK);
    assert_eq!(b.head(), by_b, "a fetch moves no branch");
    assert_eq!(commands::pull(b.dir(), None, MergePolicy::Manual, OPTS, QUIET).await.unwrap(), exit::OK);
    let history = b.history().await;
    assert!(history.contains(&by_a) && history.contains(&by_b), "{history:?}");
    assert_eq!(
        (&b.doc()["person"][0]["email"], &b.doc()["person"][1]["name"]),
        (&json!("ann@example.com"), &json!("Robert"))
    );
    assert_eq!(commands::push(b.dir(), None, false, OPTS, QUIET).await.unwrap(), exit::OK);
    assert_eq!(commands::pull(a.dir(), None, MergePolicy::Manual, OPTS, QUIET).await.unwrap(), exit::OK);
    assert_eq!(a.head(), b.head());

    assert_eq!(commands::remote_remove(a.dir(), "origin", QUIET).unwrap(), exit::OK);
    assert!(commands::push(a.dir(), None, false, OPTS, QUIET).await.is_err(), "no remote origin any more");
}

/// The exchange with a store folder as the remote.
#[test]
fn sync_commands_in_process_with_a_store_folder() {
    run(|| async {
        let folder = tempfile::tempdir().unwrap();
        exchange_in_process(folder.path().join("store").to_string_lossy().into_owned()).await;
    });
}

/// The exchange with a datastore over loopback gRPC.
#[test]
fn sync_commands_in_process_over_grpc() {
    let served = Served::grpc();
    let url = served.url.clone();
    run(|| exchange_in_process(url));
}

/// The exchange with a datastore on the test broker.
#[test]
fn sync_commands_in_process_over_amqp() {
    let served = Served::amqp();
    let url = served.url.clone();
    run(|| exchange_in_process(url));
}

/// A push reads from the local store only what the new commits add to what the remote holds:
/// an element that only an older commit reaches can be gone from the local store (here
/// deleted behind the copy's back) and the push, and a clone of what it pushed, still work.
#[test]
fn push_reads_only_what_changed_since_the_remote_heads() {
    run(|| async {
        let scratch = tempfile::tempdir().unwrap();
        let a = copy_with_book(scratch.path(), "a").await;
        let ann = a.doc()["person"][0]["@key"].as_str().unwrap().to_owned();
        a.change("Ann is Annie", |d| d["person"][0]["name"] = json!("Annie")).await;
        let folder = scratch.path().join("store").to_string_lossy().into_owned();
        assert_eq!(commands::remote_add(a.dir(), "origin", &folder, QUIET).unwrap(), exit::OK);
        assert_eq!(commands::push(a.dir(), None, false, OPTS, QUIET).await.unwrap(), exit::OK);

        {
            use dsf::store::Maintenance as _;
            let store = dsf_store_backends::rocks::RocksStore::open(a.dir().join(".dsf").join("store")).unwrap();
            store.delete_blobs(vec![dsf::Key::from_hex(&ann).unwrap()], None).await.unwrap();
        }
        let bob = a.change("Bob is 22", |d| d["person"][1]["id"] = json!(22)).await;
        assert_eq!(commands::push(a.dir(), None, false, OPTS, QUIET).await.unwrap(), exit::OK);

        let key = Workdir::open(a.dir()).unwrap().config.repository.clone();
        assert_eq!(
            commands::clone(scratch.path(), &folder, &key, Some("b".into()), &[], OPTS, QUIET).await.unwrap(),
            0
        );
        let b = Wc(scratch.path().join("b"));
        assert_eq!(b.head(), bob);
        assert_eq!(b.doc(), a.doc());
    });
}

/// The commits of the stored repository of a copy.
async fn stored_commits(wc: &Wc) -> BTreeSet<String> {
    let s = dsf_cli::session::Session::open(wc.dir()).unwrap();
    let sr = s.repo().await.unwrap();
    sr.repository().commits().map(|c| c.key.to_hex()).collect()
}

/// The keys of the elements a copy's local store holds (hex).
async fn stored_keys(wc: &Wc) -> BTreeSet<String> {
    use dsf::store::Maintenance as _;
    let s = dsf_cli::session::Session::open(wc.dir()).unwrap();
    let page = s.store.list_blobs(None, 1 << 20).await.unwrap();
    assert!(page.next.is_none(), "one page holds a test copy's store");
    page.items.into_iter().map(|e| e.key.to_hex()).collect()
}

/// The shallow boundary a copy records.
fn boundary(wc: &Wc) -> Vec<String> {
    Workdir::open(wc.dir()).unwrap().state.shallow
}

/// `clone --depth 2` of a five-commit history has exactly the two newest commits and records
/// the second as its boundary; log and fsck work, a revision beyond the boundary is a clear
/// error; a push from the shallow copy lands; `fetch --deepen 1` brings one more generation
/// and `fetch --unshallow` the rest.
async fn shallow_clone_through(url: String) {
    let scratch = tempfile::tempdir().unwrap();
    let a = copy_with_book(scratch.path(), "a").await;
    let mut commits = vec![a.head()];
    for i in 1..5 {
        commits.push(a.change(&format!("id {i}"), |d| d["person"][1]["id"] = json!(100 + i)).await);
    }
    assert_eq!(commands::remote_add(a.dir(), "origin", &url, QUIET).unwrap(), exit::OK);
    assert_eq!(commands::push(a.dir(), None, false, OPTS, QUIET).await.unwrap(), exit::OK);
    let key = Workdir::open(a.dir()).unwrap().config.repository.clone();

    let depth2 = SyncOptions { depth: Some(2), ..OPTS };
    assert_eq!(commands::clone(scratch.path(), &url, &key, Some("b".into()), &[], depth2, QUIET).await.unwrap(), 0);
    let b = Wc(scratch.path().join("b"));
    assert_eq!(stored_commits(&b).await, BTreeSet::from([commits[4].clone(), commits[3].clone()]));
    assert_eq!(boundary(&b), vec![commits[3].clone()]);
    assert_eq!(b.doc(), a.doc());
    assert_eq!(commands::log(b.dir(), None, true, None, false, QUIET).await.unwrap(), exit::OK);
    assert_eq!(commands::fsck(b.dir(), QUIET).await.unwrap(), exit::OK);
    let beyond = CheckoutArgs { target: Some("master~3".into()), ..CheckoutArgs::default() };
    let error = commands::checkout(b.dir(), beyond, QUIET).await.unwrap_err();
    assert!(error.to_string().contains("shallow"), "{error}");

    // A push from the shallow copy; the full copy pulls it.
    let pushed = b.change("from the shallow copy", |d| d["title"] = json!("Shallow")).await;
    assert_eq!(commands::push(b.dir(), None, false, OPTS, QUIET).await.unwrap(), exit::OK);
    assert_eq!(commands::pull(a.dir(), None, MergePolicy::Manual, OPTS, QUIET).await.unwrap(), exit::OK);
    assert_eq!(a.head(), pushed);

    let deepen = SyncOptions { deepen: Some(1), ..OPTS };
    assert_eq!(commands::fetch(b.dir(), None, deepen, QUIET).await.unwrap(), exit::OK);
    let expected: BTreeSet<String> = [&pushed, &commits[4], &commits[3], &commits[2]].into_iter().cloned().collect();
    assert_eq!(stored_commits(&b).await, expected);
    assert_eq!(boundary(&b), vec![commits[2].clone()]);
    let back = CheckoutArgs { target: Some(commits[2].clone()), ..CheckoutArgs::default() };
    assert_eq!(commands::checkout(b.dir(), back, QUIET).await.unwrap(), exit::OK);
    assert_eq!(b.doc()["person"][1]["id"], 102);

    let unshallow = SyncOptions { unshallow: true, ..OPTS };
    assert_eq!(commands::fetch(b.dir(), None, unshallow, QUIET).await.unwrap(), exit::OK);
    assert_eq!(stored_commits(&b).await, stored_commits(&a).await);
    assert_eq!(boundary(&b), Vec::<String>::new());
    assert_eq!(commands::fsck(b.dir(), QUIET).await.unwrap(), exit::OK);
}

/// A shallow clone from a store folder.
#[test]
fn shallow_clone_deepen_and_unshallow_with_a_store_folder() {
    run(|| async {
        let folder = tempfile::tempdir().unwrap();
        shallow_clone_through(folder.path().join("store").to_string_lossy().into_owned()).await;
    });
}

/// A shallow clone over gRPC.
#[test]
fn shallow_clone_deepen_and_unshallow_over_grpc() {
    let served = Served::grpc();
    let url = served.url.clone();
    run(|| shallow_clone_through(url));
}

/// A shallow clone over AMQP.
#[test]
fn shallow_clone_deepen_and_unshallow_over_amqp() {
    let served = Served::amqp();
    let url = served.url.clone();
    run(|| shallow_clone_through(url));
}

/// A clone leaves ArrayStructure payloads out by default, as ION did: its document names the
/// payload by key, and the partial copy still checks out, edits, commits and pushes. `pull
/// --all-types` then completes it, and `clone --all-types` takes every type from the start:
/// both documents are the original's, arrays included.
async fn arrays_through(url: String) {
    let scratch = tempfile::tempdir().unwrap();
    let doc = json!({
        "@type": "net.ooici.cdm.syntactic.Variable",
        "name": "temperature",
        "content": {
            "@type": "net.ooici.cdm.syntactic.ArrayStructure",
            "bounded_arrays": [{
                "@type": "net.ooici.cdm.syntactic.BoundedArray",
                "ndarray": {"@type": "net.ooici.cdm.syntactic.int32Array", "value": [1, 2, 3]},
            }],
        },
    });
    let file = scratch.path().join("variable.json");
    std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
    assert_eq!(commands::init(scratch.path(), Some("a".into()), "sha1", None, QUIET).unwrap(), exit::OK);
    let a = Wc(scratch.path().join("a"));
    assert_eq!(commands::import(a.dir(), &file, "json", None, false, QUIET).await.unwrap(), exit::OK);
    a.commit("a variable").await;
    assert_eq!(commands::remote_add(a.dir(), "origin", &url, QUIET).unwrap(), exit::OK);
    assert_eq!(commands::push(a.dir(), None, false, OPTS, QUIET).await.unwrap(), exit::OK);
    let key = Workdir::open(a.dir()).unwrap().config.repository.clone();

    // By default the clone leaves the array payload out: the document names it by key, and
    // the copy still edits, commits and pushes (the parent keeps its link to the payload).
    let partial = SyncOptions { all_types: false, ..OPTS };
    assert_eq!(commands::clone(scratch.path(), &url, &key, Some("p".into()), &[], partial, QUIET).await.unwrap(), 0);
    let p = Wc(scratch.path().join("p"));
    let array_key = a.doc()["content"]["@key"].as_str().unwrap().to_owned();
    assert_eq!(p.doc()["content"], json!({ "@ref": array_key }));
    assert!(!stored_keys(&p).await.contains(&array_key), "the payload stayed on the remote");
    assert_eq!(commands::status(p.dir(), QUIET).await.unwrap(), exit::OK);
    let renamed = p.change("renamed in the partial copy", |d| d["name"] = json!("air temperature")).await;
    assert_eq!(commands::push(p.dir(), None, false, partial, QUIET).await.unwrap(), exit::OK);
    assert_eq!(commands::pull(a.dir(), None, MergePolicy::Manual, OPTS, QUIET).await.unwrap(), exit::OK);
    assert_eq!(a.head(), renamed);
    assert_eq!(a.doc()["name"], json!("air temperature"));
    assert_eq!(a.doc()["content"]["bounded_arrays"][0]["ndarray"]["value"], json!([1, 2, 3]));
    // A pull taking every type completes the partial copy.
    assert_eq!(commands::pull(p.dir(), None, MergePolicy::Manual, OPTS, QUIET).await.unwrap(), exit::OK);
    assert!(stored_keys(&p).await.contains(&array_key), "--all-types brought the payload");
    assert_eq!(commands::checkout(p.dir(), CheckoutArgs::default(), QUIET).await.unwrap(), exit::OK);
    assert_eq!(p.doc(), a.doc());

    assert_eq!(commands::clone(scratch.path(), &url, &key, Some("b".into()), &[], OPTS, QUIET).await.unwrap(), 0);
    let b = Wc(scratch.path().join("b"));
    assert_eq!(b.doc(), a.doc(), "--all-types clones every type");
    assert_eq!(b.doc()["content"]["bounded_arrays"][0]["ndarray"]["value"], json!([1, 2, 3]));

    let changed = a.change("renamed", |d| d["name"] = json!("sea temperature")).await;
    assert_eq!(commands::push(a.dir(), None, false, OPTS, QUIET).await.unwrap(), exit::OK);
    assert_eq!(commands::pull(b.dir(), None, MergePolicy::Manual, OPTS, QUIET).await.unwrap(), exit::OK);
    assert_eq!(b.head(), changed);
    assert_eq!(b.doc(), a.doc());
    assert_eq!(commands::fsck(b.dir(), QUIET).await.unwrap(), exit::OK);
}

/// Every type, with a store folder.
#[test]
fn all_types_brings_arrays_with_a_store_folder() {
    run(|| async {
        let folder = tempfile::tempdir().unwrap();
        arrays_through(folder.path().join("store").to_string_lossy().into_owned()).await;
    });
}

/// Every type, over gRPC.
#[test]
fn all_types_brings_arrays_over_grpc() {
    let served = Served::grpc();
    let url = served.url.clone();
    run(|| arrays_through(url));
}

/// Every type, over AMQP.
#[test]
fn all_types_brings_arrays_over_amqp() {
    let served = Served::amqp();
    let url = served.url.clone();
    run(|| arrays_through(url));
}

/// `--timeout` reaches the client: a push to a broker where no datastore serves the system
/// name fails after the given time, with an error that says so and the remote exit code.
#[test]
fn a_silent_remote_fails_after_the_timeout() {
    run(|| async {
        let scratch = tempfile::tempdir().unwrap();
        let a = copy_with_book(scratch.path(), "a").await;
        let silent = amqp_remote(&broker_url(), &sysname());
        assert_eq!(commands::remote_add(a.dir(), "origin", &silent, QUIET).unwrap(), exit::OK);
        let opts = SyncOptions { timeout: Some(std::time::Duration::from_secs(1)), ..OPTS };
        let error = commands::push(a.dir(), None, false, opts, QUIET).await.unwrap_err();
        assert_eq!(dsf_cli::remote::exit_code(&error), exit::REMOTE, "{error}");
        assert!(error.to_string().contains("no reply within 1s"), "{error}");
        assert!(Workdir::open(a.dir()).unwrap().remote_heads("origin").unwrap().all().is_empty());
    });
}
