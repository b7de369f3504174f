//! `dsf::sync`: the heads codecs, the commits and elements a push sends, the have-lists.

use std::collections::{BTreeMap, HashSet};

use dsf::proto::net::ooici::play::{AddressLink, Person};
use dsf::sync::{Heads, PushWalk, have_commits, new_commits, push_delta};
use dsf::{Branch, Element, HashAlgorithm, Key, Repository, TypeId};

use crate::common::*;

fn heads() -> Heads {
    let k = |b: u8| Key::from_slice(&[b; 20]).unwrap();
    Heads {
        algorithm: HashAlgorithm::Sha1,
        branches: vec![
            Branch { key: "B1".into(), heads: vec![k(1)] },
            Branch { key: "B2".into(), heads: vec![k(2), k(3)] },
        ],
        nicknames: BTreeMap::from([("master".to_owned(), "B1".to_owned()), ("draft".to_owned(), "B2".to_owned())]),
    }
}

/// The heads record round-trips; garbage and a bad key length are codec errors.
#[test]
fn heads_record_round_trips() {
    let h = heads();
    assert_eq!(Heads::decode_record(&h.encode_record()).unwrap(), h);
    assert_eq!(h.all().len(), 3);
    assert_eq!(h.branch("draft").unwrap().heads.len(), 2);
    assert_eq!(h.branch("B1").unwrap().key, "B1");
    assert!(matches!(Heads::decode_record(b"\xff\xff\xff"), Err(dsf::Error::Codec { .. })));
    let mut bad = h.clone();
    bad.algorithm = HashAlgorithm::Blake3;
    let mut bytes = bad.encode_record();
    // A record naming an unknown algorithm.
    let name = b"blake3";
    let at = bytes.windows(name.len()).position(|w| w == name).unwrap();
    bytes[at] = b'x';
    assert!(matches!(Heads::decode_record(&bytes), Err(dsf::Error::Codec { .. })));
}

/// ION's head element lists each branch's heads as links (its children), and reads back to the
/// same branches and repository key; its key pins the encoding.
#[test]
fn head_element_round_trips() {
    let h = heads();
    let e = h.head_element("REPO");
    assert_eq!(e.ty(), TypeId::MUTABLE_NODE);
    assert_eq!(e.children().len(), 3);
    let (key, branches) = Heads::read_head_element(&e).unwrap();
    assert_eq!((key.as_str(), branches), ("REPO", h.branches.clone()));
    let again = Element::decode(&dsf::Registry::builtin(), &e.encode()).unwrap();
    assert_eq!(again.key(), e.key(), "the element verifies over its bytes");
    let not_a_head = Element::from_message(HashAlgorithm::Sha1, &dsf::Registry::builtin(), &person("Ann", 1)).unwrap();
    assert!(Heads::read_head_element(&not_a_head).is_err());
}

/// A repository with `n` commits, each renaming the book's first person.
fn history(n: usize) -> (Repository, Vec<Key>) {
    let mut r = repo();
    let (book, _) = address_book_in(&mut r, "book");
    r.set_root(book).unwrap();
    let mut commits = vec![r.commit("first").unwrap()];
    for i in 1..n {
        let root = r.root().unwrap();
        let first = r.children(root).unwrap()[0];
        r.update::<Person>(first, |p| p.name = Some(format!("name {i}"))).unwrap();
        commits.push(r.commit(&format!("rename {i}")).unwrap());
    }
    (r, commits)
}

/// The new commits are those not in the known commits' history, newest first.
#[test]
fn new_commits_stop_at_what_is_known() {
    let (r, commits) = history(5);
    let parents = |k: &Key| r.commit_info(*k).ok().map(|c| c.parent_keys().collect());
    assert_eq!(new_commits(&[commits[4]], &[commits[2]], parents), vec![commits[4], commits[3]]);
    assert_eq!(new_commits(&[commits[4]], &[commits[4]], parents), Vec::<Key>::new());
    assert_eq!(new_commits(&[commits[1]], &[], parents), vec![commits[1], commits[0]]);
    // A commit that is not here ends the walk (a shallow boundary).
    let shallow = |k: &Key| if *k == commits[1] { None } else { parents(k) };
    assert_eq!(new_commits(&[commits[4]], &[], shallow), vec![commits[4], commits[3], commits[2]]);
}

/// A push after one rename sends the new commit, the new book and the renamed person only;
/// from nothing known it sends everything.
#[test]
fn push_delta_sends_only_what_changed() {
    let (r, commits) = history(2);
    let delta: HashSet<Key> = push_delta(&r, &commits[1..], &commits[..1]).iter().map(|e| e.key()).collect();
    let root = |c: Key| r.commit_info(c).unwrap().root.as_ref().unwrap().key;
    let new_book = r.elements().get(&root(commits[1])).unwrap();
    let old_book = r.elements().get(&root(commits[0])).unwrap();
    let changed: HashSet<Key> =
        new_book.children().iter().filter(|c| !old_book.children().contains(c)).copied().collect();
    let mut expected: HashSet<Key> = changed.clone();
    expected.extend([commits[1], new_book.key()]);
    assert_eq!(changed.len(), 1, "one person was renamed");
    assert_eq!(delta, expected);
    let everything = push_delta(&r, &commits, &[]);
    let reachable = r.elements().reachable(&[root(commits[0]), root(commits[1])], &[]);
    assert_eq!(everything.len(), reachable.len() + 2);
}

/// The walk reads level by level and never descends the known side where it equals the new
/// side: a book of many persons, one renamed, asks for a handful of keys.
#[test]
fn push_walk_reads_only_around_the_change() {
    let mut r = repo();
    let people: Vec<_> = (0..200).map(|i| r.create(&person(&format!("p{i}"), i)).unwrap()).collect();
    let links = people.iter().map(|p| r.link(*p).unwrap()).collect();
    let book = r.create(&AddressLink { person: links, owner: None, title: Some("big".into()) }).unwrap();
    r.set_root(book).unwrap();
    let c0 = r.commit("first").unwrap();
    r.update::<Person>(people[7], |p| p.name = Some("seven".into())).unwrap();
    let c1 = r.commit("rename").unwrap();
    let root = |c: Key| r.commit_info(c).unwrap().root.as_ref().unwrap().key;
    let mut walk = PushWalk::new([root(c1)], [root(c0)]);
    let mut asked = 0;
    let mut sent = Vec::new();
    while !walk.done() {
        let wanted = walk.wanted();
        asked += wanted.len();
        sent.extend(walk.step(|k| r.elements().get(k).cloned()));
    }
    assert_eq!(sent.len(), 2, "the new book and the renamed person");
    // Level 1: both books; level 2: the 200 persons of the new book and of the old book (equal
    // but for one): none of them is descended further.
    assert!(asked <= 2 + 200 + 200, "{asked}");
}

/// With head content, a commit whose graph is not complete here is not listed as held.
#[test]
fn have_commits_lists_only_complete_graphs() {
    let (r, commits) = history(2);
    assert_eq!(have_commits(&r, false, &[]).unwrap().len(), 2);
    let mut partial = Repository::with_key(r.registry().clone(), r.key(), r.algorithm());
    let root1 = r.commit_info(commits[1]).unwrap().root.as_ref().unwrap().key;
    partial.add_elements(r.elements().iter().filter(|e| e.key() != root1).cloned()).unwrap();
    partial.receive_branches(r.branches().to_vec(), r.nicknames().clone()).unwrap();
    assert_eq!(have_commits(&partial, true, &[]).unwrap(), vec![commits[0]].into_iter().collect::<Vec<_>>());
}

/// A depth counts the heads as the first generation and follows every parent.
#[test]
fn within_depth_counts_generations_from_the_heads() {
    let (r, commits) = history(5);
    let parents = |k: &Key| r.commit_info(*k).ok().map(|c| c.parent_keys().collect());
    assert_eq!(dsf::sync::within_depth(&[commits[4]], 1, parents), vec![commits[4]]);
    assert_eq!(dsf::sync::within_depth(&[commits[4]], 3, parents), vec![commits[4], commits[3], commits[2]]);
    assert_eq!(dsf::sync::within_depth(&[commits[4]], 10, parents).len(), 5);
    assert_eq!(dsf::sync::within_depth(&[commits[1], commits[4]], 2, parents).len(), 4);
}
