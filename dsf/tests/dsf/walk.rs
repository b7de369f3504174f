//! `dsf::store::walk`: fsck and gc over the memory store, whose futures complete at once, so
//! the walks run without a runtime.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use dsf::proto::net::ooici::play::Person;
use dsf::store::memory::MemoryStore;
use dsf::store::persist::StoredRepository;
use dsf::store::walk::{self, GcOptions, WalkError};
use dsf::store::{BlobRow, BlobStore, IndexStore, KvStore, Maintenance, Row};
use dsf::{Element, HashAlgorithm, Key, Registry, TypeId};

use crate::common::*;

/// Runs a future that completes on its first poll (every memory-store future does).
fn now<F: Future>(future: F) -> F::Output {
    match pin!(future).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a memory-store walk waited"),
    }
}

const NO_GRACE: GcOptions = GcOptions { now: 0, grace: Duration::ZERO, pause: Duration::ZERO, dry_run: false };

fn gc(store: &MemoryStore, options: GcOptions, extra: Vec<Key>) -> Result<walk::GcReport, WalkError> {
    now(walk::gc(store, &Registry::builtin(), options, extra, |_| std::future::ready(()), |_| {}))
}

/// A stored repository with two commits; returns its key and the key of an object its head
/// reaches.
fn stored(store: &MemoryStore) -> (String, Key) {
    let mut s = StoredRepository::create(store, repo());
    let (book, [david, _]) = address_book_in(s.repository_mut(), "book");
    s.repository_mut().set_root(book).unwrap();
    now(s.commit("first")).unwrap();
    s.repository_mut().update::<Person>(david, |p| p.name = Some("Dave".into())).unwrap();
    now(s.commit("second")).unwrap();
    let dave = s.repository().object_key(david).unwrap().unwrap();
    (s.repository().key().to_owned(), dave)
}

fn blob(e: &Element) -> BlobRow {
    BlobRow { key: e.key(), element: e.encode().into(), children: e.encode_children().into() }
}

/// fsck verifies what the heads reach and reports a damaged element by its key.
#[test]
fn fsck_reports_damage_by_key() {
    let store = MemoryStore::new();
    let (_, dave) = stored(&store);
    let report = now(walk::fsck(&store, &Registry::builtin(), |_| {})).unwrap();
    assert_eq!(report.problems, vec![]);
    assert_eq!((report.repositories, report.heads, report.commits), (1, 1, 2));
    assert_eq!(report.objects, 5, "two books, David, Dave, John");

    let mut row = now(store.get_blobs(vec![dave])).unwrap().pop().flatten().unwrap();
    let mut bytes = row.element.to_vec();
    *bytes.last_mut().unwrap() ^= 1;
    row.element = bytes.into();
    now(store.put_blobs(vec![row])).unwrap();
    let report = now(walk::fsck(&store, &Registry::builtin(), |_| {})).unwrap();
    assert_eq!(report.problems.iter().map(|p| p.key).collect::<Vec<_>>(), vec![Some(dave)], "{:?}", report.problems);
    // gc deletes nothing from a damaged store.
    assert!(matches!(gc(&store, NO_GRACE, vec![]), Err(WalkError::Damaged(p)) if p.len() == 1));

    now(store.delete_blobs(vec![dave], None)).unwrap();
    let report = now(walk::fsck(&store, &Registry::builtin(), |_| {})).unwrap();
    assert_eq!(report.problems.len(), 1);
    assert!(report.problems[0].what.starts_with("missing"), "{}", report.problems[0]);
}

/// gc removes exactly the blobs and commit rows nothing reaches, keeps what extra roots
/// reach, and leaves rows that are not commits alone.
#[test]
fn gc_removes_exactly_the_unreachable() {
    let store = MemoryStore::new();
    let (key, _) = stored(&store);
    let registry = Registry::builtin();
    let stray = Element::from_message(HashAlgorithm::Sha1, &registry, &person("stray", 9)).unwrap();
    let kept = Element::from_message(HashAlgorithm::Sha1, &registry, &person("kept", 10)).unwrap();
    now(store.put_blobs(vec![blob(&stray), blob(&kept)])).unwrap();
    // A commit row of a push that never moved the heads, over the kept person.
    let mut other = repo();
    let p = other.create(&person("kept", 10)).unwrap();
    other.set_root(p).unwrap();
    let commit_key = other.commit("never landed").unwrap();
    let commit = other.elements().get(&commit_key).unwrap().clone();
    assert_eq!(commit.ty(), TypeId::COMMIT);
    now(store.put_row(Row {
        key: commit_key.as_bytes().to_vec(),
        value: Some(commit.encode().into()),
        ..Row::default()
    }))
    .unwrap();
    now(store.put_row(Row { key: b"not a commit".to_vec(), value: Some("x".into()), ..Row::default() })).unwrap();

    let dry = gc(&store, GcOptions { dry_run: true, ..NO_GRACE }, vec![]).unwrap();
    assert_eq!(dry.removed_objects.iter().copied().collect::<BTreeSet<_>>(), BTreeSet::from([stray.key(), kept.key()]));
    assert_eq!(dry.removed_commits, vec![commit_key]);
    assert_eq!(now(store.has_blobs(vec![stray.key()])).unwrap(), vec![true], "a dry run removes nothing");

    // The unlanded commit as an extra root keeps it and its person.
    let report = gc(&store, NO_GRACE, vec![commit_key]).unwrap();
    assert_eq!(report.removed_objects, vec![stray.key()]);
    assert_eq!(report.removed_commits, vec![]);
    let report = gc(&store, NO_GRACE, vec![]).unwrap();
    assert_eq!(report.removed_objects, vec![kept.key()]);
    assert_eq!(report.removed_commits, vec![commit_key]);
    assert!(now(store.has_blobs(vec![stray.key(), kept.key()])).unwrap().iter().all(|p| !p));
    assert!(now(store.has_key(b"not a commit".to_vec())).unwrap());
    let fsck = now(walk::fsck(&store, &registry, |_| {})).unwrap();
    assert_eq!(fsck.problems, vec![]);
    assert!(matches!(now(StoredRepository::open(&store, registry, &key)), Ok(Some(_))));
}
