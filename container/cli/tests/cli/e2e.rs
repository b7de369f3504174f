//! `dsf-cli` end to end: the real binary on working copies in temporary folders, talking to a
//! datastore served over loopback gRPC or RabbitMQ, or to a store folder. Every check reads what the
//! command printed (`--json`), its exit code, the working copy's files or its RocksDB store.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dsf::store::{BlobRow, BlobStore, HeadStore, Versioned};
use dsf::{Element, HashAlgorithm, Key, Registry};
use dsf_store_backends::rocks::RocksStore;
use serde_json::{Value, json};

use crate::common::*;

/// The longest one `dsf-cli` run may take before the test gives up on it.
const RUN_LIMIT: Duration = Duration::from_secs(60);

// ----- running dsf-cli ------------------------------------------------------------------------

/// What one run of `dsf-cli` did.
struct Run {
    command: String,
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts the exit code.
    fn expect(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "`{}` exited with {} instead of {code}\n--- stdout\n{}--- stderr\n{}",
            self.command, self.code, self.stdout, self.stderr
        );
        self
    }

    /// The one JSON document printed on stdout (the run had `--json`).
    fn doc(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!("`{}` did not print one JSON document ({e})\n--- stdout\n{}", self.command, self.stdout)
        })
    }
}

/// Runs `dsf-cli -C DIR ARGS…`, killing it if it outlives [`RUN_LIMIT`].
fn dsf_cli(dir: &Path, args: &[&str]) -> Run {
    let command = format!("dsf-cli -C {} {}", dir.display(), args.join(" "));
    let mut child = Command::new(env!("CARGO_BIN_EXE_dsf-cli"))
        .arg("-C")
        .arg(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("dsf-cli starts");
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped")));
    let deadline = Instant::now() + RUN_LIMIT;
    let status = loop {
        if let Some(status) = child.try_wait().expect("dsf-cli can be waited for") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("`{command}` did not finish within {RUN_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code().unwrap_or_else(|| panic!("`{command}` was killed by a signal: {status}")),
        stdout: stdout.join().expect("stdout read"),
        stderr: stderr.join().expect("stderr read"),
        command,
    }
}

/// A working copy (or the folder where one is to be made).
struct Copy {
    dir: PathBuf,
}

impl Copy {
    /// `dsf-cli init DIR`.
    fn init(dir: PathBuf) -> Copy {
        let parent = dir.parent().expect("a parent folder");
        let doc = dsf_cli(parent, &["--json", "init", &dir.to_string_lossy()]).expect(0).doc();
        assert_eq!(doc["algorithm"], "sha1");
        Copy { dir }
    }

    /// `dsf-cli clone URL KEY DIR`.
    fn clone_from(url: &str, key: &str, dir: PathBuf) -> Copy {
        let parent = dir.parent().expect("a parent folder");
        let doc = dsf_cli(parent, &["--json", "clone", url, key, &dir.to_string_lossy()]).expect(0).doc();
        assert_eq!(doc["repository"], key);
        let copy = Copy { dir };
        assert_eq!(doc["commit"], copy.head(), "the clone checked out what it reported");
        copy
    }

    /// Runs a command in this copy (text output).
    fn run(&self, args: &[&str]) -> Run {
        dsf_cli(&self.dir, args)
    }

    /// Runs a command with `--json`, expects success, and returns its document.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        self.run(&all).expect(0).doc()
    }

    /// Runs a command with `--json`, expects it to fail with `code`, and returns the error text
    /// (after checking the error document's fields).
    fn fails(&self, args: &[&str], code: i32) -> String {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let doc = self.run(&all).expect(code).doc();
        assert_eq!(doc["exit_code"], code, "{doc}");
        assert!(doc.get("hint").is_some(), "an error document has a hint field: {doc}");
        doc["error"].as_str().filter(|e| !e.is_empty()).unwrap_or_else(|| panic!("no error message: {doc}")).to_owned()
    }

    /// The repository key.
    fn key(&self) -> String {
        self.json(&["status"])["repository"].as_str().expect("a repository key").to_owned()
    }

    /// The checked-out commit.
    fn head(&self) -> String {
        self.json(&["status"])["commit"].as_str().expect("a checked-out commit").to_owned()
    }

    fn document_path(&self) -> PathBuf {
        self.dir.join("root.json")
    }

    /// root.json.
    fn document(&self) -> Value {
        let text = std::fs::read_to_string(self.document_path()).expect("root.json is there");
        serde_json::from_str(&text).expect("root.json is JSON")
    }

    /// Edits root.json.
    fn edit(&self, change: impl FnOnce(&mut Value)) {
        let mut doc = self.document();
        change(&mut doc);
        std::fs::write(self.document_path(), serde_json::to_vec_pretty(&doc).unwrap()).unwrap();
    }

    /// Commits root.json; returns the new commit.
    fn commit(&self, message: &str) -> String {
        let doc = self.json(&["commit", "-m", message]);
        let commit = doc["commit"].as_str().expect("a commit key").to_owned();
        assert_eq!(commit, self.head());
        commit
    }

    /// Edits root.json and commits.
    fn change(&self, message: &str, change: impl FnOnce(&mut Value)) -> String {
        self.edit(change);
        self.commit(message)
    }

    /// The parents of the checked-out commit, as `log --json` reports them.
    fn head_parents(&self) -> BTreeSet<String> {
        let log = self.json(&["log", "-n", "1"]);
        let commits = log["commits"].as_array().expect("a commit list");
        assert_eq!(commits.len(), 1, "{log}");
        assert_eq!(commits[0]["commit"], self.head());
        strings(commits[0]["parents"].as_array().expect("a parent list").iter().map(|p| &p["commit"]))
    }

    /// Every commit `log --json REV` lists.
    fn history(&self, rev: &str) -> BTreeSet<String> {
        let log = self.json(&["log", rev]);
        strings(log["commits"].as_array().expect("a commit list").iter().map(|c| &c["commit"]))
    }

    /// The local store (no `dsf-cli` may run in this copy while it is open).
    fn store(&self) -> RocksStore {
        RocksStore::open(self.dir.join(".dsf").join("store")).expect("the local store opens")
    }
}

/// The strings among `values`.
fn strings<'a>(values: impl IntoIterator<Item = &'a Value>) -> BTreeSet<String> {
    values.into_iter().map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_owned()).collect()
}

/// The heads of master in a push or fetch document.
fn master_heads(doc: &Value) -> BTreeSet<String> {
    let key = doc["nicknames"]["master"].as_str().unwrap_or_else(|| panic!("no master branch: {doc}"));
    strings(doc["branches"][key].as_array().unwrap_or_else(|| panic!("no heads of master: {doc}")))
}

/// Replaces every `{"@conflict": …}` in a document with its "theirs" value.
fn take_theirs(doc: &mut Value) -> usize {
    match doc {
        Value::Object(map) => {
            if let Some(marker) = map.get("@conflict") {
                *doc = marker["theirs"].clone();
                return 1;
            }
            map.values_mut().map(take_theirs).sum()
        }
        Value::Array(items) => items.iter_mut().map(take_theirs).sum(),
        _ => 0,
    }
}

/// A small address book in the form of root.json.
fn address_book_json() -> Value {
    json!({
        "@type": "net.ooici.play.AddressLink",
        "title": "Friends",
        "person": [
            {"@type": "net.ooici.play.Person", "name": "Ann", "id": 1, "email": "ann@example.org"},
            {"@type": "net.ooici.play.Person", "name": "Bob", "id": 2},
        ],
    })
}

/// A new working copy `name` in `scratch` with the address book committed.
fn copy_with_book(scratch: &Path, name: &str) -> Copy {
    let book = scratch.join("book.json");
    std::fs::write(&book, serde_json::to_vec(&address_book_json()).unwrap()).unwrap();
    let copy = Copy::init(scratch.join(name));
    let imported = copy.json(&["import", &book.to_string_lossy()]);
    assert_eq!(imported["objects"], 3);
    assert_eq!(imported["root"], copy.document()["@key"]);
    copy.commit("an address book");
    copy
}

// ----- datastores -----------------------------------------------------------------------------

/// Every blob key of a store, in key order.
fn blob_keys(store: &RocksStore) -> Vec<Key> {
    block_on(dsf::store::maint::all_blobs(store)).unwrap().into_iter().map(|l| l.key).collect()
}

/// Every row key of a store, in key order.
fn row_keys(store: &RocksStore) -> Vec<Vec<u8>> {
    block_on(dsf::store::maint::all_rows(store)).unwrap().into_iter().map(|l| l.key).collect()
}

/// Every repository of a store.
fn repositories(store: &RocksStore) -> Vec<String> {
    block_on(dsf::store::maint::all_repositories(store)).unwrap()
}

/// A port nothing listens on (bound once, then released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A datastore served in-process, over loopback gRPC or on the test broker.
type Datastore = Served;

// ----- the exchange between working copies ----------------------------------------------------

/// Copy `a` publishes the book to `url`; `b` clones it, retitles it and pushes; `a` pulls
/// (a fast-forward). Returns both copies.
fn publish_and_fast_forward(url: &str, scratch: &Path) -> (Copy, Copy) {
    let a = copy_with_book(scratch, "a");
    let added = a.json(&["remote", "add", "origin", url]);
    assert_eq!(added["url"], url);
    let pushed = a.json(&["push"]);
    assert_eq!(master_heads(&pushed), BTreeSet::from([a.head()]));

    let b = Copy::clone_from(url, &a.key(), scratch.join("b"));
    assert_eq!(b.document(), a.document());
    assert_eq!(b.head(), a.head());

    let retitled = b.change("retitled", |d| d["title"] = json!("Family"));
    assert_eq!(master_heads(&b.json(&["push"])), BTreeSet::from([retitled.clone()]));
    let status = a.json(&["status"]);
    assert_eq!(status["clean"], true, "{status}");
    let pulled = a.json(&["pull"]);
    assert_eq!(pulled["outcome"], "fast-forward", "{pulled}");
    assert_eq!(pulled["commit"], retitled);
    assert_eq!(a.head(), retitled);
    assert_eq!(a.document()["title"], "Family");
    assert_eq!(a.document(), b.document());
    (a, b)
}

/// `a` and `b` change different fields; `a` pushes first, `b`'s push is refused until `b`
/// pulls, which merges field by field into a commit with both as parents.
fn divergent_pushes_merge_cleanly(a: &Copy, b: &Copy) {
    let by_a = a.change("a new email", |d| d["person"][0]["email"] = json!("ann@example.com"));
    let by_b = b.change("Bob is Robert", |d| d["person"][1]["name"] = json!("Robert"));
    a.json(&["push"]);

    let refused = b.run(&["push"]).expect(1);
    assert!(refused.stderr.contains("pull"), "the refusal says to pull: {}", refused.stderr);
    let error = b.fails(&["push"], 1);
    assert!(error.contains("not here"), "{error}");

    let merged = b.json(&["pull"]);
    assert_eq!(merged["outcome"], "merged", "{merged}");
    assert_eq!(merged["settled"], json!([]), "nothing conflicted: {merged}");
    assert_eq!(merged["commit"], b.head());
    assert_eq!(b.head_parents(), BTreeSet::from([by_a, by_b]));
    let doc = b.document();
    assert_eq!((&doc["person"][0]["email"], &doc["person"][1]["name"]), (&json!("ann@example.com"), &json!("Robert")));
    assert_eq!(doc["title"], "Family");

    assert_eq!(master_heads(&b.json(&["push"])), BTreeSet::from([b.head()]));
    assert_eq!(a.json(&["pull"])["outcome"], "fast-forward");
    assert_eq!(a.head(), b.head());
    assert_eq!(a.document(), b.document());
}

/// Both change the title: `b`'s pull stops with the conflict in root.json (exit 3), status
/// lists it, `merge --continue` refuses while the marker remains, and commits once it is
/// replaced by "theirs"; `a` pulls the resolution.
fn conflicting_edits_are_resolved_by_hand(a: &Copy, b: &Copy) {
    let by_a = a.change("a's title", |d| d["title"] = json!("Team A"));
    let by_b = b.change("b's title", |d| d["title"] = json!("Team B"));
    a.json(&["push"]);

    let pulled = b.run(&["--json", "pull"]).expect(3).doc();
    assert_eq!(pulled["outcome"], "conflicts", "{pulled}");
    let conflicts = pulled["conflicts"].as_array().expect("a conflict list");
    assert_eq!(conflicts.len(), 1, "{pulled}");
    assert_eq!(conflicts[0]["path"], "root.title");
    assert_eq!(b.document()["title"]["@conflict"]["ours"], "Team B");
    assert_eq!(b.document()["title"]["@conflict"]["theirs"], "Team A");
    assert_eq!(b.document()["title"]["@conflict"]["base"], "Family");

    let status = b.json(&["status"]);
    assert_eq!(status["clean"], false);
    assert_eq!(status["merge"]["theirs"], by_a, "{status}");
    let listed = status["conflicts"].as_array().expect("a conflict list");
    assert_eq!(listed.len(), 1, "{status}");
    assert_eq!(listed[0]["path"], "root.title");

    let left = b.fails(&["merge", "--continue"], 3);
    assert!(left.contains("root.title"), "{left}");
    assert!(b.fails(&["commit", "-m", "too early"], 1).contains("merge is in progress"));
    assert_eq!(b.head(), by_b, "nothing was committed");

    let mut resolved = b.document();
    assert_eq!(take_theirs(&mut resolved), 1);
    std::fs::write(b.document_path(), serde_json::to_vec(&resolved).unwrap()).unwrap();
    let done = b.json(&["merge", "--continue"]);
    assert_eq!(done["outcome"], "merged");
    assert_eq!(done["commit"], b.head());
    assert_eq!(b.head_parents(), BTreeSet::from([by_a, by_b]));
    assert_eq!(b.document()["title"], "Team A");
    assert_eq!(b.json(&["status"])["merge"], Value::Null);

    b.json(&["push"]);
    assert_eq!(a.json(&["pull"])["outcome"], "fast-forward");
    assert_eq!(a.document()["title"], "Team A");
    assert_eq!(a.document(), b.document());
}

/// With `push --diverge` the datastore keeps both heads of master; a third copy, cloned
/// before, pulls both and merges them field by field; once it pushes, the others pull it.
fn diverged_heads_are_merged_by_a_third_copy(url: &str, scratch: &Path, a: &Copy, b: &Copy) {
    let c = Copy::clone_from(url, &a.key(), scratch.join("c"));
    let base = c.head();
    let by_a = a.change("Anna", |d| d["person"][0]["name"] = json!("Anna"));
    let by_b = b.change("id 22", |d| d["person"][1]["id"] = json!(22));
    assert_eq!(master_heads(&a.json(&["push", "--diverge"])), BTreeSet::from([by_a.clone()]));
    b.fails(&["push"], 1);
    let both = BTreeSet::from([by_a, by_b.clone()]);
    assert_eq!(master_heads(&b.json(&["push", "--diverge"])), both, "the datastore keeps both heads");
    assert_eq!(master_heads(&c.json(&["fetch"])), both);
    assert_eq!(c.head(), base, "a fetch moves no branch");

    // A copy cloned now starts at the newest head, and its pull merges the other field by field.
    let d = Copy::clone_from(url, &a.key(), scratch.join("d"));
    assert_eq!(d.head(), by_b, "a clone checks out the newest of diverged heads");
    assert_eq!(d.document()["person"][0]["name"], "Ann", "only the newest head's change is checked out");
    let pulled = d.json(&["pull"]);
    assert_eq!(pulled["outcome"], "merged", "{pulled}");
    assert_eq!(d.head_parents(), both);
    let doc = d.document();
    assert_eq!((&doc["person"][0]["name"], &doc["person"][1]["id"]), (&json!("Anna"), &json!(22)));

    // With two heads to merge, pull reports every merge in one document.
    let pulled = c.json(&["pull"]);
    let merges = pulled["merges"].as_array().expect("a list of merges");
    assert_eq!(merges.len(), 2, "{pulled}");
    assert_eq!(pulled["outcome"], "merged", "{pulled}");
    assert_eq!(c.head_parents(), both);
    let doc = c.document();
    assert_eq!((&doc["person"][0]["name"], &doc["person"][1]["id"]), (&json!("Anna"), &json!(22)));
    assert_eq!(doc["title"], "Team A");

    assert_eq!(master_heads(&c.json(&["push"])), BTreeSet::from([c.head()]), "the merge joins the heads");
    for copy in [a, b] {
        copy.json(&["pull"]);
        assert_eq!(copy.head(), c.head());
        assert_eq!(copy.document(), c.document());
    }
}

/// Over gRPC (a `dsf-container` serving gRPC on RocksDB): clone; a pull that fast-forwards;
/// a refused push, then a pull that merges changes of different fields; a conflict on one
/// field, resolved by hand with `merge --continue`; and `push --diverge` leaving two heads
/// that a third copy merges.
#[test]
fn grpc_remote_clone_push_pull_merge_and_conflict() {
    exchange_through(&Datastore::grpc());
}

/// The same exchange over RabbitMQ (a `dsf-container` on the test broker, remote URL
/// amqp://…/SYSNAME): clone, fast-forward, refused push and field-level merge, a resolved
/// conflict, and diverged heads (which the push reports as the datastore holds them).
#[test]
fn amqp_remote_clone_push_pull_merge_and_conflict() {
    exchange_through(&Datastore::amqp());
}

/// Two copies exchanging commits through a datastore, then a third merging diverged heads.
fn exchange_through(ds: &Datastore) {
    let scratch = tempfile::tempdir().unwrap();
    let (a, b) = publish_and_fast_forward(&ds.url, scratch.path());
    divergent_pushes_merge_cleanly(&a, &b);
    conflicting_edits_are_resolved_by_hand(&a, &b);
    diverged_heads_are_merged_by_a_third_copy(&ds.url, scratch.path(), &a, &b);
}

/// A store folder as a remote: push creates the store there, clone copies from it (also
/// from another working copy's folder, which refuses pushes), and a pull brings a change made
/// in the clone.
#[test]
fn store_folder_remote_push_and_clone() {
    let scratch = tempfile::tempdir().unwrap();
    let a = copy_with_book(scratch.path(), "a");
    let folder = scratch.path().join("store");
    a.json(&["remote", "add", "disk", &folder.to_string_lossy()]);
    assert_eq!(master_heads(&a.json(&["push", "disk"])), BTreeSet::from([a.head()]));
    {
        let store = RocksStore::open(&folder).expect("the push made a store");
        assert_eq!(repositories(&store), vec![a.key()]);
    }

    let b = Copy::clone_from(&folder.to_string_lossy(), &a.key(), scratch.path().join("b"));
    assert_eq!(b.document(), a.document());
    let remotes = b.json(&["remote", "list"]);
    assert_eq!(remotes["remotes"], json!([{"name": "origin", "url": folder.to_string_lossy()}]));
    let renamed = b.change("Ann is Annie", |d| d["person"][0]["name"] = json!("Annie"));
    b.json(&["push"]);
    let pulled = a.json(&["pull", "disk"]);
    assert_eq!((&pulled["outcome"], &pulled["commit"]), (&json!("fast-forward"), &json!(renamed)));
    assert_eq!(a.document(), b.document());

    let c = Copy::clone_from(&a.dir.to_string_lossy(), &a.key(), scratch.path().join("c"));
    assert_eq!(c.document(), a.document());
    assert_eq!(c.history("HEAD"), a.history("HEAD"));
    // Pushing into another working copy would move branches under its root.json: refused.
    c.change("Bob is Robert", |d| d["person"][1]["name"] = json!("Robert"));
    let head = a.head();
    let refused = c.fails(&["push"], 1);
    assert!(refused.contains("another working copy"), "{refused}");
    assert_eq!(a.head(), head);
}

// ----- user types -----------------------------------------------------------------------------

/// A descriptor set declaring `acme.Station` (type 90002): a name and links to sensors, as
/// `protoc --include_imports --descriptor_set_out` would write it (the imported link.proto is
/// one of the built-in files).
fn station_descriptor_set() -> Vec<u8> {
    use prost::Message as _;
    use prost_types::field_descriptor_proto::{Label, Type};
    use prost_types::{
        DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto, FileDescriptorProto,
        FileDescriptorSet,
    };
    let value = |name: &str, number: i32| EnumValueDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        ..Default::default()
    };
    let field = |name: &str, number: i32, label: Label, ty: Type, type_name: Option<&str>| FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(label as i32),
        r#type: Some(ty as i32),
        type_name: type_name.map(Into::into),
        ..Default::default()
    };
    let station = DescriptorProto {
        name: Some("Station".into()),
        field: vec![
            field("name", 1, Label::Optional, Type::String, None),
            field("sensors", 2, Label::Repeated, Type::Message, Some(".net.ooici.core.link.CASRef")),
        ],
        enum_type: vec![EnumDescriptorProto {
            name: Some("_MessageTypeIdentifier".into()),
            value: vec![value("_ID", 90002), value("_VERSION", 1)],
            ..Default::default()
        }],
        ..Default::default()
    };
    let file = FileDescriptorProto {
        name: Some("acme/station.proto".into()),
        package: Some("acme".into()),
        dependency: vec!["net/ooici/core/link/link.proto".into()],
        message_type: vec![station],
        syntax: Some("proto2".into()),
        ..Default::default()
    };
    FileDescriptorSet { file: vec![file] }.encode_to_vec()
}

/// Objects of a user type travel when both ends know the type: a datastore configured with the
/// descriptor set takes the push, and `clone --types` copies it; a
/// datastore that does not know the type refuses the push with a clear error (exit 4), and a
/// clone without the types says how to register them.
#[test]
fn user_types_travel_with_their_descriptor_sets() {
    let scratch = tempfile::tempdir().unwrap();
    let types = scratch.path().join("station.pb");
    std::fs::write(&types, station_descriptor_set()).unwrap();
    let a = Copy::init(scratch.path().join("a"));
    let added = a.json(&["types", "add", &types.to_string_lossy()]);
    assert_eq!(added["added"], json!([{"id": 90002, "version": 1, "name": "acme.Station"}]));
    std::fs::write(
        a.document_path(),
        serde_json::to_vec(&json!({
            "@type": "acme.Station",
            "name": "North buoy",
            "sensors": [
                {"@type": "net.ooici.play.Person", "name": "thermometer", "id": 1},
                {"@type": "net.ooici.play.Person", "name": "barometer", "id": 2},
            ],
        }))
        .unwrap(),
    )
    .unwrap();
    a.commit("a station");

    // A datastore without the type cannot verify the station's links: the push is refused.
    let plain = Datastore::grpc();
    a.json(&["remote", "add", "plain", &plain.url]);
    let refused = a.fails(&["push", "plain"], 4);
    assert!(refused.contains("90002"), "{refused}");

    // One configured with the descriptor set takes it.
    let registry = Registry::from_descriptor_sets(&[dsf::proto::DESCRIPTOR_SET, &station_descriptor_set()]).unwrap();
    let typed = Served::grpc_with(registry);
    let url = typed.url.clone();
    a.json(&["remote", "add", "typed", &url]);
    assert_eq!(master_heads(&a.json(&["push", "typed"])), BTreeSet::from([a.head()]));

    let parent = scratch.path();
    let without = dsf_cli(parent, &["--json", "clone", &url, &a.key(), "b"]).expect(1).doc();
    assert!(without["hint"].as_str().is_some_and(|h| h.contains("--types")), "{without}");
    assert!(!parent.join("b").exists(), "a failed clone leaves nothing behind");
    let b =
        dsf_cli(parent, &["--json", "clone", &url, &a.key(), "b", "--types", &types.to_string_lossy()]).expect(0).doc();
    assert_eq!(b["commit"], a.head());
    let b = Copy { dir: parent.join("b") };
    assert_eq!(b.document(), a.document());
    assert_eq!(b.document()["sensors"][1]["name"], "barometer");
}

// ----- the local store ------------------------------------------------------------------------

/// `fsck` passes a clean copy (exit 0) and finds an element whose stored bytes were changed
/// behind its back (exit 5, that key listed, nothing else).
#[test]
fn fsck_finds_a_corrupted_element() {
    let scratch = tempfile::tempdir().unwrap();
    let a = copy_with_book(scratch.path(), "a");
    let clean = a.json(&["fsck"]);
    assert_eq!((&clean["ok"], &clean["problems"]), (&json!(true), &json!([])), "{clean}");
    assert_eq!((&clean["objects"], &clean["commits"], &clean["heads"]), (&json!(3), &json!(1), &json!(1)));

    let bob = a.document()["person"][1]["@key"].as_str().expect("Bob's key").to_owned();
    {
        let store = a.store();
        let key = Key::from_hex(&bob).unwrap();
        assert!(blob_keys(&store).contains(&key));
        let mut row = block_on(store.get_blobs(vec![key])).unwrap().pop().flatten().expect("Bob is stored");
        let mut element = row.element.to_vec();
        *element.last_mut().expect("an element has bytes") ^= 0x20;
        row.element = element.into();
        block_on(store.put_blobs(vec![row])).unwrap();
    }

    let report = a.run(&["--json", "fsck"]).expect(5).doc();
    assert_eq!(report["ok"], false);
    let problems = report["problems"].as_array().expect("a problem list");
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["key"], bob);
    let text = a.run(&["fsck"]).expect(5);
    assert!(text.stdout.contains(&bob), "{}", text.stdout);

    let clean_copy = copy_with_book(scratch.path(), "b");
    clean_copy.json(&["fsck"]);
}

/// `gc` removes exactly what nothing reaches: the objects and commits of a deleted branch and
/// a stray blob, computed here from `show`, `log` and `hash-object`. `--dry-run` removes
/// nothing; afterwards fsck is clean, every commit of master checks out, and the removed keys
/// are gone.
#[test]
fn gc_removes_exactly_the_unreachable_elements() {
    let scratch = tempfile::tempdir().unwrap();
    let a = copy_with_book(scratch.path(), "a");
    a.change("on master", |d| d["title"] = json!("Master"));

    a.json(&["checkout", "-b", "draft"]);
    let draft_title = a.change("draft 1", |d| d["title"] = json!("Draft"));
    let draft_email = a.change("draft 2", |d| d["person"][0]["email"] = json!("ann@draft.example"));
    let draft_person = a.document()["person"][0].clone();
    a.json(&["checkout", "master"]);
    let master = a.history("master");
    let draft_commits: BTreeSet<String> = a.history("draft").difference(&master).cloned().collect();
    assert_eq!(draft_commits, BTreeSet::from([draft_title.clone(), draft_email.clone()]));

    // The objects only the draft reaches: its two roots and the edited person.
    let mut unreachable: BTreeSet<String> = [&draft_title, &draft_email]
        .into_iter()
        .map(|c| a.json(&["show", c])["root"].as_str().expect("a root").to_owned())
        .collect();
    let person_text = serde_json::to_string(&draft_person).unwrap();
    let hashed = a.json(&["hash-object", "--text", &person_text]);
    assert_eq!(hashed["key"], draft_person["@key"]);
    unreachable.insert(hashed["key"].as_str().unwrap().to_owned());
    assert_eq!(unreachable.len(), 3);

    let deleted = a.json(&["branch", "-d", "draft"]);
    assert_eq!(deleted["deleted"], "draft");
    let stray = Element::from_message(HashAlgorithm::Sha1, &Registry::builtin(), &person("stray", 99)).unwrap();
    unreachable.insert(stray.key().to_hex());
    let before = {
        let store = a.store();
        let row =
            BlobRow { key: stray.key(), element: stray.encode().into(), children: stray.encode_children().into() };
        block_on(store.put_blobs(vec![row])).unwrap();
        blob_keys(&store)
    };

    let dry = a.json(&["gc", "--dry-run"]);
    assert_eq!(strings(dry["removed_objects"].as_array().unwrap()), unreachable, "{dry}");
    assert_eq!(strings(dry["removed_commits"].as_array().unwrap()), draft_commits, "{dry}");
    assert_eq!(blob_keys(&a.store()), before, "a dry run removes nothing");

    let gc = a.json(&["gc"]);
    assert_eq!(strings(gc["removed_objects"].as_array().unwrap()), unreachable, "{gc}");
    assert_eq!(strings(gc["removed_commits"].as_array().unwrap()), draft_commits, "{gc}");
    assert_eq!((&gc["kept_objects"], &gc["kept_commits"]), (&json!(before.len() - 4), &json!(master.len())));
    let after: BTreeSet<String> = blob_keys(&a.store()).iter().map(Key::to_hex).collect();
    let expected: BTreeSet<String> =
        before.iter().map(Key::to_hex).filter(|k| !unreachable.contains(k.as_str())).collect();
    assert_eq!(after, expected);

    let fsck = a.json(&["fsck"]);
    assert_eq!(fsck["ok"], true, "{fsck}");
    for commit in &master {
        let checked = a.json(&["checkout", commit]);
        assert_eq!(checked["commit"], *commit);
        assert_eq!(a.document()["@key"], a.json(&["show", commit])["root"]);
        let exported: Value = serde_json::from_str(&a.run(&["export", commit]).expect(0).stdout).unwrap();
        assert_eq!(exported, a.document());
    }
    a.json(&["checkout", "master"]);
    for gone in unreachable.iter().chain(&draft_commits) {
        assert!(a.fails(&["cat-object", gone], 1).contains("no object"));
    }
    let again = a.json(&["gc"]);
    assert_eq!((&again["removed_objects"], &again["removed_commits"]), (&json!([]), &json!([])));
}

// ----- bad input ------------------------------------------------------------------------------

/// Everything a working copy holds: the store's blob keys, row keys and heads, and every file
/// outside the store.
#[derive(Debug, PartialEq)]
struct Snapshot {
    blobs: Vec<Key>,
    rows: Vec<Vec<u8>>,
    heads: Vec<(String, Option<Versioned>)>,
    files: BTreeMap<PathBuf, Vec<u8>>,
}

fn snapshot(copy: &Copy) -> Snapshot {
    fn files(dir: &Path, skip: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path == skip {
                continue;
            }
            if path.is_dir() {
                files(&path, skip, out);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    let store = copy.store();
    let mut heads = Vec::new();
    for repo in repositories(&store) {
        heads.push((repo.clone(), block_on(store.get_heads(repo)).unwrap()));
    }
    let mut all = BTreeMap::new();
    files(&copy.dir, &copy.dir.join(".dsf").join("store"), &mut all);
    Snapshot { blobs: blob_keys(&store), rows: row_keys(&store), heads, files: all }
}

/// Runs a command that must fail with `code` and change nothing; returns its error message.
fn refused(copy: &Copy, args: &[&str], code: i32) -> String {
    let before = snapshot(copy);
    let error = copy.fails(args, code);
    assert_eq!(snapshot(copy), before, "`dsf-cli {}` changed the working copy", args.join(" "));
    error
}

/// Bad input is a clear error with the documented exit code, and leaves the store, the state
/// files and root.json as they were: malformed root.json, an unknown type, an unknown remote,
/// unreachable remotes (AMQP and gRPC, push and clone), a malformed import, a bad command line.
#[test]
fn bad_input_is_refused_without_changing_anything() {
    let scratch = tempfile::tempdir().unwrap();
    let a = copy_with_book(scratch.path(), "a");
    let closed = free_port();
    let dead_amqp = format!("amqp://guest:guest@127.0.0.1:{closed}/{}", sysname());
    let dead_grpc = format!("grpc://127.0.0.1:{closed}");
    a.json(&["remote", "add", "dead-amqp", &dead_amqp]);
    a.json(&["remote", "add", "dead-grpc", &dead_grpc]);
    let committed = std::fs::read(a.document_path()).unwrap();

    std::fs::write(a.document_path(), b"{\"@type\": \"net.ooici.play.AddressLink\", \"title\": ").unwrap();
    let error = refused(&a, &["commit", "-m", "broken"], 1);
    assert!(error.contains("root.json") && error.contains("not valid JSON"), "{error}");

    std::fs::write(a.document_path(), &committed).unwrap();
    a.edit(|d| d["person"][1]["@type"] = json!("net.ooici.play.NoSuchType"));
    let error = refused(&a, &["commit", "-m", "unknown type"], 1);
    assert!(error.contains("unknown type") && error.contains("net.ooici.play.NoSuchType"), "{error}");
    std::fs::write(a.document_path(), &committed).unwrap();
    assert_eq!(a.json(&["status"])["clean"], true);

    let error = refused(&a, &["push", "nowhere"], 1);
    assert!(error.contains("nowhere"), "{error}");
    let error = refused(&a, &["push", "dead-amqp"], 4);
    assert!(error.contains(&closed.to_string()), "{error}");
    let error = refused(&a, &["push", "dead-grpc"], 4);
    assert!(error.contains(&closed.to_string()), "{error}");
    refused(&a, &["fetch", "dead-grpc"], 4);
    refused(&a, &["pull", "dead-amqp"], 4);

    let bad = scratch.path().join("bad.json");
    std::fs::write(&bad, b"{\"@type\": \"net.ooici.play.Person\", \"name\": }").unwrap();
    let error = refused(&a, &["import", &bad.to_string_lossy()], 1);
    assert!(error.contains("bad.json"), "{error}");
    std::fs::write(&bad, b"{\"@type\": \"net.ooici.play.Person\", \"name\": 7}").unwrap();
    refused(&a, &["import", &bad.to_string_lossy()], 1);

    let usage = a.run(&["commit"]).expect(2);
    assert!(usage.stderr.contains("--message"), "{}", usage.stderr);
    assert_eq!(std::fs::read(a.document_path()).unwrap(), committed);

    for url in [&dead_amqp, &dead_grpc] {
        let target = scratch.path().join("never");
        let run = dsf_cli(scratch.path(), &["--json", "clone", url, &a.key(), "never"]).expect(4);
        assert_eq!(run.doc()["exit_code"], 4);
        assert!(!target.exists(), "a failed clone leaves no folder behind");
    }
}

// ----- plumbing -------------------------------------------------------------------------------

/// `hash-object` gives the key that `import` and `cat-object` report for the same object
/// (files named relative to `-C`), and stores nothing.
#[test]
fn hash_object_matches_import_and_stores_nothing() {
    let scratch = tempfile::tempdir().unwrap();
    let a = Copy::init(scratch.path().join("a"));
    let ann = json!({"@type": "net.ooici.play.Person", "name": "Ann", "id": 1, "email": "ann@example.org"});
    std::fs::write(a.dir.join("ann.json"), serde_json::to_vec(&ann).unwrap()).unwrap();

    let hashed = a.json(&["hash-object", "ann.json"]);
    let key = hashed["key"].as_str().expect("a key").to_owned();
    assert_eq!(key.len(), 40, "a sha1 key: {hashed}");
    assert_eq!(hashed["type"], json!({"id": 20001, "version": 1}));
    let untyped = a.json(&[
        "hash-object",
        "--type",
        "net.ooici.play.Person",
        "--text",
        r#"{"name": "Ann", "id": 1, "email": "ann@example.org"}"#,
    ]);
    assert_eq!(untyped["key"], key);
    assert_eq!(a.run(&["hash-object", "ann.json"]).expect(0).stdout.trim(), key);
    assert!(blob_keys(&a.store()).is_empty(), "hash-object stores nothing");
    assert!(a.fails(&["cat-object", &key], 1).contains("no object"));

    let imported = a.json(&["import", "ann.json"]);
    assert_eq!(imported["root"], key);
    assert_eq!(a.document()["@key"], key);
    a.commit("Ann");
    let stored = a.json(&["cat-object", &key]);
    assert_eq!(stored["@key"], key);
    assert_eq!((&stored["name"], &stored["email"]), (&ann["name"], &ann["email"]));

    let other = a.json(&["hash-object", "--text", r#"{"@type": "net.ooici.play.Person", "name": "Nobody"}"#]);
    assert_ne!(other["key"], key);
    let keys: Vec<String> = blob_keys(&a.store()).iter().map(Key::to_hex).collect();
    assert_eq!(keys, vec![key]);
}
