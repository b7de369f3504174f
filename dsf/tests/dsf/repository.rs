//! Tests of `repository`: the ★ behaviours of spec §7.1, §7.5 and §7.6 that belong to the
//! object model and the repository, and the acceptance items of §7.9.

use dsf::proto::net::ooici::play::{AddressLink, KeyValue, ListObj, Person, TestObj};
use dsf::{Checkout, Current, Error, Key, MASTER_BRANCH as MASTER, ObjectId, Relationship, Repository, Status, TypeId};

use crate::common::*;

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue { key: k.into(), value: v.into() }
}

/// A repository whose root is [`address_book_in`]'s book; returns (repo, root, [p1, p2]).
fn address_book() -> (Repository, ObjectId, [ObjectId; 2]) {
    let mut repo = repo();
    let (root, people) = address_book_in(&mut repo, "an address book");
    repo.set_root(root).unwrap();
    (repo, root, people)
}

fn master(repo: &Repository) -> String {
    repo.get_branch(MASTER).unwrap().key.clone()
}

fn root_of(repo: &Repository) -> ObjectId {
    repo.root().expect("a root")
}

/// Spec §7.9 item 6 and §2.2: status is NOTINITIALIZED, then MODIFIED, then UPTODATE.
#[test]
fn status_follows_the_workspace() {
    let mut repo = repo();
    assert_eq!(repo.status(), Status::NotInitialized);
    let p = repo.create(&person("a", 1)).unwrap();
    repo.set_root(p).unwrap();
    assert_eq!(repo.status(), Status::Modified);
    repo.commit("first").unwrap();
    assert_eq!(repo.status(), Status::UpToDate);
    repo.update::<Person>(p, |p| p.email = Some("a@b".into())).unwrap();
    assert_eq!(repo.status(), Status::Modified);
}

/// Spec §7.2 `test_simple_commit` ★ / §7.9 items 3 and 5: the commit is the branch head, the
/// commit element's only child is the root, the first commit's root seed is the repository key,
/// and a later commit has one PARENT.
#[test]
fn simple_commit() {
    let (mut repo, root, [p1, p2]) = address_book();
    let c1 = repo.commit("first").unwrap();
    assert_eq!(repo.get_branch(MASTER).unwrap().heads, vec![c1]);
    let root_key = repo.object_key(root).unwrap().unwrap();
    let commit_element = repo.elements().get(&c1).unwrap();
    assert_eq!(commit_element.children(), &[root_key]);
    for id in [p1, p2] {
        assert!(repo.elements().contains(&repo.object_key(id).unwrap().unwrap()));
    }
    let info = repo.commit_info(c1).unwrap();
    assert_eq!(info.root_seed.as_deref(), Some(repo.key()));
    assert!(info.parents.is_empty());
    repo.update::<AddressLink>(root, |b| b.title = Some("renamed".into())).unwrap();
    let c2 = repo.commit("second").unwrap();
    let info = repo.commit_info(c2).unwrap();
    assert_eq!(info.root_seed, None);
    assert_eq!(info.parents.len(), 1);
    assert_eq!(info.parents[0].relationship, Relationship::Parent);
    assert_eq!(info.parents[0].commit, c1);
}

/// Spec §7.9 item 4: re-committing unchanged content reuses the element keys; the commit
/// objects differ (by date).
#[test]
fn recommit_unchanged_reuses_keys() {
    let (mut repo, root, _) = address_book();
    let c1 = repo.commit_at("one", 1000.0).unwrap();
    let before = repo.elements().len();
    let c2 = repo.commit_at("two", 2000.0).unwrap();
    assert_ne!(c1, c2);
    assert_eq!(repo.elements().len(), before + 1, "only the new commit element is added");
    let r1 = repo.commit_info(c1).unwrap().root.unwrap().key;
    let r2 = repo.commit_info(c2).unwrap().root.unwrap().key;
    assert_eq!(r1, r2);
    assert_eq!(repo.object_key(root).unwrap(), Some(r1));
}

/// Spec §7.6 `test_dag` ★ / §7.1 `test_dag_structure` ★: an object linked from two places is one
/// shared object, before and after commit and checkout; an edit through one path is seen through
/// the other.
#[test]
fn dag_shares_objects() {
    let (mut repo, root, [p1, _]) = address_book();
    repo.commit("first").unwrap();
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    let root = {
        let _ = root;
        root_of(&repo)
    };
    let book: AddressLink = repo.get(root).unwrap();
    let via_list = repo.resolve(&book.person[0]).unwrap();
    let via_owner = repo.resolve(book.owner.as_ref().unwrap()).unwrap();
    assert_eq!(via_list, via_owner, "one object, two links");
    assert!(repo.get::<Person>(p1).is_err(), "handles from before the checkout are invalid");
    repo.update::<Person>(via_list, |p| p.name = Some("Dave".into())).unwrap();
    assert_eq!(repo.get::<Person>(via_owner).unwrap().name.as_deref(), Some("Dave"));
    repo.commit("renamed").unwrap();
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    let root = root_of(&repo);
    let book: AddressLink = repo.get(root).unwrap();
    assert_eq!(book.person[0].key, book.owner.as_ref().unwrap().key);
    let shared = repo.resolve(&book.person[0]).unwrap();
    assert_eq!(repo.get::<Person>(shared).unwrap().name.as_deref(), Some("Dave"));
    assert_eq!(repo.parents(shared).unwrap(), vec![root]);
}

/// Spec §7.6 `test_dag_conflict` ★: two distinct but equal children hash to one element; the
/// root element has one child key and the survivor has both parent links.
#[test]
fn equal_children_become_one_element() {
    let mut repo = repo();
    let a = repo.create(&kv("k", "v")).unwrap();
    let b = repo.create(&kv("k", "v")).unwrap();
    assert_ne!(a, b);
    let list = repo.create(&ListObj { items: vec![repo.link(a).unwrap(), repo.link(b).unwrap()] }).unwrap();
    let other = repo.create(&AddressLink { person: vec![], owner: None, title: Some("x".into()) }).unwrap();
    let _ = other;
    repo.set_root(list).unwrap();
    repo.commit("dedupe").unwrap();
    let root_key = repo.object_key(list).unwrap().unwrap();
    let root_element = repo.elements().get(&root_key).unwrap();
    assert_eq!(root_element.children().len(), 1);
    let structure = repo.elements().reachable(&[root_key], &[]);
    assert_eq!(structure.len(), 2, "root and one child");
    let survivor = repo.resolve(&repo.get::<ListObj>(list).unwrap().items[0]).unwrap();
    assert_eq!(repo.object_key(a).unwrap(), repo.object_key(b).unwrap());
    assert_eq!(repo.children(list).unwrap(), vec![survivor]);
    assert_eq!(repo.parents(survivor).unwrap(), vec![list]);
    let items = repo.get::<ListObj>(list).unwrap().items;
    assert_eq!(items.len(), 2, "both links stay");
    assert_eq!(items[0], items[1]);
}

/// Spec §7.1 `test_inparents` ★ / §7.9 item 7: linking an ancestor into its descendant is refused.
#[test]
fn cycles_are_refused() {
    let mut repo = repo();
    let leaf = repo.create(&ListObj { items: vec![] }).unwrap();
    let mid = repo.create(&ListObj { items: vec![repo.link(leaf).unwrap()] }).unwrap();
    let top = repo.create(&ListObj { items: vec![repo.link(mid).unwrap()] }).unwrap();
    repo.set_root(top).unwrap();
    let top_link = repo.link(top).unwrap();
    let err = repo.update::<ListObj>(leaf, |l| l.items.push(top_link.clone())).unwrap_err();
    assert!(matches!(err, Error::Cycle { .. }), "{err}");
    let self_link = repo.link(leaf).unwrap();
    assert!(matches!(repo.update::<ListObj>(leaf, |l| l.items.push(self_link)), Err(Error::Cycle { .. })));
    // The refused edit changed nothing.
    assert!(repo.get::<ListObj>(leaf).unwrap().items.is_empty());
    // After commit too.
    repo.commit("chain").unwrap();
    let top_link = repo.link(top).unwrap();
    assert!(matches!(repo.update::<ListObj>(leaf, |l| l.items.push(top_link)), Err(Error::Cycle { .. })));
    assert_eq!(repo.status(), Status::UpToDate);
}

/// Spec §7.1 `test_invalidate` ★ and `test_lost_objects`: after checkout, earlier handles of the
/// root and of children are invalid.
#[test]
fn checkout_invalidates_handles() {
    let (mut repo, root, [p1, _]) = address_book();
    repo.commit("first").unwrap();
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    for id in [root, p1] {
        assert!(matches!(repo.get::<Person>(id), Err(Error::InvalidHandle(_))));
        assert!(matches!(repo.link(id), Err(Error::InvalidHandle(_))));
    }
    let new_root = root_of(&repo);
    assert_eq!(repo.get::<AddressLink>(new_root).unwrap().title.as_deref(), Some("an address book"));
}

/// Spec §7.9 item 9 / §2.5: checkout while the workspace is dirty fails and keeps the changes.
#[test]
fn checkout_refused_while_dirty() {
    let (mut repo, root, _) = address_book();
    repo.commit("first").unwrap();
    repo.update::<AddressLink>(root, |b| b.title = Some("dirty".into())).unwrap();
    let err = repo.checkout(Checkout::branch(MASTER)).unwrap_err();
    assert!(err.to_string().contains("dirty"), "{err}");
    assert_eq!(repo.get::<AddressLink>(root).unwrap().title.as_deref(), Some("dirty"));
    repo.reset().unwrap();
    assert_eq!(repo.status(), Status::UpToDate);
    assert_eq!(repo.get::<AddressLink>(root_of(&repo)).unwrap().title.as_deref(), Some("an address book"));
}

/// Spec §7.1 `test_branch_checkout` ★: commits on two branches check out independently.
#[test]
fn branch_checkout() {
    let (mut repo, root, _) = address_book();
    repo.commit("first").unwrap();
    let b = repo.branch(Some("other")).unwrap();
    assert_eq!(repo.current(), Some(&Current::Branch(b.clone())));
    repo.update::<AddressLink>(root, |x| x.title = Some("on other".into())).unwrap();
    repo.commit("other").unwrap();
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    let r = root_of(&repo);
    repo.update::<AddressLink>(r, |x| x.title = Some("on master".into())).unwrap();
    repo.commit("master").unwrap();
    for (branch, title) in [("other", "on other"), (MASTER, "on master"), (b.as_str(), "on other")] {
        repo.checkout(Checkout::branch(branch)).unwrap();
        assert_eq!(repo.get::<AddressLink>(root_of(&repo)).unwrap().title.as_deref(), Some(title), "{branch}");
    }
}

/// Spec §7.1 `test_branch`, `test_branch_no_commit` and §7.9 item 10: branches by nickname or
/// key, removal, branching from an empty branch fails, two branches may share a head.
#[test]
fn branches() {
    let mut repo = repo();
    let err = repo.branch(Some("early")).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let p = repo.create(&person("a", 1)).unwrap();
    repo.set_root(p).unwrap();
    let c = repo.commit("first").unwrap();
    let key = repo.branch(Some("twin")).unwrap();
    assert_eq!(key.len(), 8);
    assert!(key.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase()));
    assert_eq!(repo.get_branch("twin").unwrap().key, key);
    assert_eq!(repo.get_branch(&key).unwrap().heads, vec![c]);
    assert_eq!(repo.get_branch(MASTER).unwrap().heads, vec![c], "two branches, one head");
    assert_eq!(repo.current_heads(), vec![c]);
    assert!(repo.branch(Some("twin")).is_err(), "duplicate nickname");
    repo.remove_branch("twin").unwrap();
    assert!(repo.get_branch("twin").is_none());
    assert!(repo.get_branch(&key).is_none());
    assert!(matches!(repo.remove_branch("twin"), Err(Error::UnknownBranch { .. })));
    assert!(matches!(repo.checkout(Checkout::branch("nope")), Err(Error::UnknownBranch { .. })));
}

/// Spec §7.1 `test_checkout_commit_id` ★ / §7.9 item 8: older commit ids check out their
/// historical content, detached and read only; branching re-attaches.
#[test]
fn checkout_by_commit_id() {
    let mut repo = repo();
    let obj = repo.create(&TestObj { string: Some("v0".into()), ..Default::default() }).unwrap();
    repo.set_root(obj).unwrap();
    let mut commits = vec![repo.commit("v0").unwrap()];
    for i in 1..4 {
        let r = root_of(&repo);
        repo.update::<TestObj>(r, |t| t.string = Some(format!("v{i}"))).unwrap();
        commits.push(repo.commit(&format!("v{i}")).unwrap());
    }
    for (i, &c) in commits.iter().enumerate() {
        repo.checkout(Checkout::branch(MASTER).commit(c)).unwrap();
        assert_eq!(repo.current(), Some(&Current::Detached(c)));
        let r = root_of(&repo);
        assert_eq!(repo.get::<TestObj>(r).unwrap().string, Some(format!("v{i}")));
        let err = repo.update::<TestObj>(r, |t| t.integer = Some(1)).unwrap_err();
        assert!(matches!(err, Error::ReadOnly(_)), "{err}");
        assert!(matches!(repo.commit("no"), Err(Error::ReadOnly(_))));
    }
    repo.checkout(Checkout::branch(MASTER).commit(commits[1])).unwrap();
    repo.branch(Some("from-v1")).unwrap();
    let r = root_of(&repo);
    repo.update::<TestObj>(r, |t| t.integer = Some(7)).unwrap();
    let c = repo.commit("edit v1").unwrap();
    assert_eq!(repo.commit_info(c).unwrap().first_parent(), Some(commits[1]));
    let stranger = Key::from_hex("00112233445566778899AABBCCDDEEFF00112233").unwrap();
    assert!(matches!(repo.checkout(Checkout::branch(MASTER).commit(stranger)), Err(Error::UnknownCommit { .. })));
    let both = Checkout::branch(MASTER).commit(commits[0]).older_than(1.0);
    assert!(repo.checkout(both).is_err());
}

/// Spec §2.5 (`older_than`, broken in ION): the newest commit dated at or before the date.
#[test]
fn checkout_by_date() {
    let mut repo = repo();
    let obj = repo.create(&TestObj { integer: Some(0), ..Default::default() }).unwrap();
    repo.set_root(obj).unwrap();
    let mut commits = vec![repo.commit_at("0", 100.0).unwrap()];
    for i in 1..5 {
        let r = root_of(&repo);
        repo.update::<TestObj>(r, |t| t.integer = Some(i)).unwrap();
        commits.push(repo.commit_at(&i.to_string(), 100.0 + f64::from(i) * 10.0).unwrap());
    }
    for (date, expect) in [(100.0, 0), (125.0, 2), (130.0, 3), (1e12, 4)] {
        repo.checkout(Checkout::branch(MASTER).older_than(date)).unwrap();
        assert_eq!(repo.current(), Some(&Current::Detached(commits[expect as usize])));
        assert_eq!(repo.get::<TestObj>(root_of(&repo)).unwrap().integer, Some(expect));
    }
    assert!(repo.checkout(Checkout::branch(MASTER).older_than(99.0)).is_err());
}

/// Spec §7.1 `test_checkout_excluded` ★: excluded types are not loaded, the rest is; excluding
/// the root's type fails; an edit above an excluded subtree keeps the link to it.
#[test]
fn checkout_excluded_types() {
    let (mut repo, _, _) = address_book();
    repo.commit("first").unwrap();
    let person_type = TypeId::of::<Person>();
    repo.checkout(Checkout::branch(MASTER).excluded_types([person_type])).unwrap();
    let root = root_of(&repo);
    assert_eq!(repo.workspace_len(), 1);
    assert!(repo.children(root).unwrap().is_empty());
    let book: AddressLink = repo.get(root).unwrap();
    assert_eq!(book.person.len(), 2);
    assert!(repo.resolve(&book.person[0]).is_none(), "excluded objects are not loaded");
    repo.update::<AddressLink>(root, |b| b.title = Some("edited".into())).unwrap();
    let c = repo.commit("edit with persons excluded").unwrap();
    repo.checkout(Checkout::branch(MASTER).excluded_types([])).unwrap();
    assert_eq!(repo.workspace_len(), 3);
    let book: AddressLink = repo.get(root_of(&repo)).unwrap();
    assert_eq!(book.title.as_deref(), Some("edited"));
    assert_eq!(repo.get::<Person>(repo.resolve(&book.person[1]).unwrap()).unwrap().name.as_deref(), Some("John"));
    let _ = c;
    let err = repo.checkout(Checkout::branch(MASTER).excluded_types([TypeId::of::<AddressLink>()])).unwrap_err();
    assert!(err.to_string().contains("root"), "{err}");
}

/// Spec §7.1 `test_size` ★: size is 0 before commit, positive after, unchanged by purging the
/// workspace, and 0 after clear.
#[test]
fn size_accounting() {
    let (mut repo, _, _) = address_book();
    assert_eq!(repo.size(), 0);
    repo.commit("first").unwrap();
    let size = repo.size();
    let sum: usize = repo.elements().iter().map(|e| e.encoded_len()).sum();
    assert_eq!(size, sum);
    assert!(size > 0);
    repo.purge_workspace();
    assert_eq!(repo.size(), size);
    repo.clear();
    assert_eq!(repo.size(), 0);
}

/// Spec §7.1 `test_transfer_repository_objects` ★ / §7.9 item 7: an object copied from another
/// repository has equal content but a different identity in a different repository.
#[test]
fn transfer_between_repositories() {
    let (mut source, _, [p1, _]) = address_book();
    source.commit("source").unwrap();
    let mut target = repo();
    let copy =
        target.import_from(&source, source.object_by_key(&source.object_key(p1).unwrap().unwrap()).unwrap()).unwrap();
    assert_eq!(target.get::<Person>(copy).unwrap(), source.get::<Person>(p1).unwrap());
    let list = target.create(&ListObj { items: vec![target.link(copy).unwrap()] }).unwrap();
    target.set_root(list).unwrap();
    target.commit("copied").unwrap();
    target.update::<Person>(copy, |p| p.name = Some("changed in target".into())).unwrap();
    assert_eq!(source.get::<Person>(p1).unwrap().name.as_deref(), Some("David"), "the source is untouched");
    // A modified source object must be committed before copying.
    let fresh = source.create(&person("new", 9)).unwrap();
    assert!(target.import_from(&source, fresh).is_err());
}

/// Spec §7.6 `test_clearfield` ★: clearing link fields removes child and parent links.
#[test]
fn clearing_links_removes_edges() {
    let (mut repo, root, [p1, p2]) = address_book();
    repo.commit("first").unwrap();
    repo.update::<AddressLink>(root, |b| b.owner = None).unwrap();
    assert_eq!(repo.parents(p1).unwrap(), vec![root], "still linked from the list");
    repo.update::<AddressLink>(root, |b| b.person.clear()).unwrap();
    assert!(repo.children(root).unwrap().is_empty());
    assert!(repo.parents(p1).unwrap().is_empty());
    assert!(repo.parents(p2).unwrap().is_empty());
    let c = repo.commit("cleared").unwrap();
    let root_key = repo.commit_info(c).unwrap().root.unwrap().key;
    assert!(repo.elements().get(&root_key).unwrap().is_leaf());
}

/// Spec §7.5 `test_del` ★ and `test_delslice` ★: deleting links, before and after commit and
/// checkout, keeps the remaining links in order.
#[test]
fn deleting_links_preserves_order() {
    let mut repo = repo();
    let items: Vec<ObjectId> = (0..6).map(|i| repo.create(&kv(&format!("k{i}"), "v")).unwrap()).collect();
    let links = items.iter().map(|&i| repo.link(i).unwrap()).collect();
    let list = repo.create(&ListObj { items: links }).unwrap();
    repo.set_root(list).unwrap();
    let keys = |repo: &Repository, list| -> Vec<String> {
        repo.get::<ListObj>(list)
            .unwrap()
            .items
            .iter()
            .map(|l| repo.get::<KeyValue>(repo.resolve(l).unwrap()).unwrap().key)
            .collect()
    };
    repo.update::<ListObj>(list, |l| {
        l.items.remove(1);
    })
    .unwrap();
    assert_eq!(keys(&repo, list), ["k0", "k2", "k3", "k4", "k5"]);
    repo.commit("del one").unwrap();
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    let list = root_of(&repo);
    assert_eq!(keys(&repo, list), ["k0", "k2", "k3", "k4", "k5"]);
    repo.update::<ListObj>(list, |l| {
        l.items.drain(1..3);
    })
    .unwrap();
    assert_eq!(keys(&repo, list), ["k0", "k4", "k5"]);
    repo.commit("del slice").unwrap();
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    assert_eq!(keys(&repo, root_of(&repo)), ["k0", "k4", "k5"]);
}

/// Spec §7.5 `test_init` ★: a checked-out root is unmodified, with no children for a leaf type
/// (the commit is not a workspace object, so it has no loaded parents either).
#[test]
fn checked_out_root_is_clean() {
    let mut repo = repo();
    let t = repo
        .create(&TestObj { string: Some("s".into()), integer: Some(1), float: Some(1.5), ..Default::default() })
        .unwrap();
    repo.set_root(t).unwrap();
    repo.commit("one").unwrap();
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    let r = root_of(&repo);
    assert!(!repo.is_modified(r).unwrap());
    assert!(repo.children(r).unwrap().is_empty());
    assert!(repo.parents(r).unwrap().is_empty());
    assert_eq!(repo.status(), Status::UpToDate);
}

/// Spec §7.6 `test_reset_same_value` ★: re-setting a field marks the object modified; committing
/// unchanged content yields the same key, clears modified and keeps handles valid.
#[test]
fn reset_same_value() {
    let mut repo = repo();
    let t = repo.create(&TestObj { string: Some("same".into()), ..Default::default() }).unwrap();
    repo.set_root(t).unwrap();
    repo.commit("one").unwrap();
    let key = repo.object_key(t).unwrap();
    repo.update::<TestObj>(t, |o| o.string = Some("same".into())).unwrap();
    assert!(repo.is_modified(t).unwrap());
    repo.commit("two").unwrap();
    assert!(!repo.is_modified(t).unwrap());
    assert_eq!(repo.object_key(t).unwrap(), key);
    assert_eq!(repo.get::<TestObj>(t).unwrap().string.as_deref(), Some("same"));
}

/// Spec §7.9 item 6: modifying a child marks every ancestor up to the root modified, and leaves
/// siblings unmodified.
#[test]
fn modification_propagates_to_ancestors() {
    let mut repo = repo();
    let leaf = repo.create(&kv("a", "1")).unwrap();
    let sibling = repo.create(&kv("b", "2")).unwrap();
    let mid = repo.create(&ListObj { items: vec![repo.link(leaf).unwrap()] }).unwrap();
    let top = repo.create(&ListObj { items: vec![repo.link(mid).unwrap(), repo.link(sibling).unwrap()] }).unwrap();
    repo.set_root(top).unwrap();
    repo.commit("tree").unwrap();
    let sibling_key = repo.object_key(sibling).unwrap();
    repo.update::<KeyValue>(leaf, |k| k.value = "changed".into()).unwrap();
    for id in [leaf, mid, top] {
        assert!(repo.is_modified(id).unwrap());
    }
    assert!(!repo.is_modified(sibling).unwrap());
    repo.commit("changed").unwrap();
    assert_eq!(repo.object_key(sibling).unwrap(), sibling_key);
}

/// Spec §7.1 `test_resolve_treeish` / §7.9 item 11: `^`, `^^`, `^^^`, `~3`, `^2`, `^2^`, `^2~1`
/// resolve; `~4`, `^3`, `^^2` fail.
#[test]
fn treeish() {
    let mut repo = repo();
    let t = repo.create(&TestObj { integer: Some(0), ..Default::default() }).unwrap();
    repo.set_root(t).unwrap();
    let c1 = repo.commit_at("c1", 1.0).unwrap();
    repo.branch(Some("side")).unwrap();
    let r = root_of(&repo);
    repo.update::<TestObj>(r, |o| o.string = Some("side".into())).unwrap();
    let d1 = repo.commit_at("d1", 2.0).unwrap();
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    let mut chain = vec![c1];
    for i in 2..4 {
        let r = root_of(&repo);
        repo.update::<TestObj>(r, |o| o.integer = Some(i)).unwrap();
        chain.push(repo.commit_at(&format!("c{i}"), f64::from(i) + 10.0).unwrap());
    }
    let outcome = repo.merge("side", dsf::MergePolicy::Manual).unwrap();
    assert!(matches!(outcome, dsf::MergeOutcome::Merged { ref conflicts } if conflicts.is_empty()), "{outcome:?}");
    let m = repo.commit_at("merge", 20.0).unwrap();
    let (c2, c3) = (chain[1], chain[2]);
    let resolve = |t: &str| repo.resolve_treeish(t, MASTER);
    assert_eq!(resolve("").unwrap(), m);
    assert_eq!(resolve("^").unwrap(), c3);
    assert_eq!(resolve("^^").unwrap(), c2);
    assert_eq!(resolve("^^^").unwrap(), c1);
    assert_eq!(resolve("~3").unwrap(), c1);
    assert_eq!(resolve("^2").unwrap(), d1);
    assert_eq!(resolve("^2^").unwrap(), c1);
    assert_eq!(resolve("^2~1").unwrap(), c1);
    for bad in ["~4", "^3", "^^2", "x", "~1x"] {
        let err = resolve(bad).unwrap_err();
        assert!(matches!(err, Error::Treeish { .. }), "{bad}: {err}");
        assert!(err.to_string().contains("resolve treeish"), "{err}");
    }
    let merge = repo.commit_info(m).unwrap();
    assert_eq!(merge.parents[0].relationship, Relationship::Parent);
    assert_eq!(merge.parents[1].relationship, Relationship::MergedFrom);
    assert_eq!(repo.log(MASTER).unwrap().iter().map(|c| c.key).collect::<Vec<_>>(), vec![m, c3, c2, c1]);
    assert_eq!(repo.common_ancestor(&[c3, d1]).unwrap(), c1);
}

/// Two copies of one repository that commit independently; `a` then receives `b`'s head.
fn diverged() -> (Repository, Key, Key, Key) {
    let mut a = repo();
    let t = a.create(&TestObj { string: Some("base".into()), ..Default::default() }).unwrap();
    a.set_root(t).unwrap();
    let base = a.commit_at("base", 10.0).unwrap();
    let mut b = a.clone();
    let ra = root_of(&a);
    a.update::<TestObj>(ra, |o| o.string = Some("from a".into())).unwrap();
    let ha = a.commit_at("a", 20.0).unwrap();
    let rb = root_of(&b);
    b.update::<TestObj>(rb, |o| o.string = Some("from b".into())).unwrap();
    let hb = b.commit_at("b", 30.0).unwrap();
    a.add_elements(b.elements().iter().cloned()).unwrap();
    let m = master(&a);
    a.receive_heads(&m, &[hb]).unwrap();
    (a, base, ha, hb)
}

/// Spec §3.5 and §7.9 item 20: a received head in the local history is ignored, a descendant
/// fast-forwards, anything else diverges; duplicates are dropped.
#[test]
fn receiving_heads() {
    let (mut a, base, ha, hb) = diverged();
    let m = master(&a);
    assert_eq!(a.get_branch(&m).unwrap().heads, vec![ha, hb]);
    a.receive_heads(&m, &[base, ha, hb]).unwrap();
    assert_eq!(a.get_branch(&m).unwrap().heads, vec![ha, hb], "known heads change nothing");
    assert!(a.commit_head().is_err(), "a divergent branch has no single head");
    let r = root_of(&a);
    a.update::<TestObj>(r, |o| o.integer = Some(1)).unwrap();
    let err = a.commit("on a diverged branch").unwrap_err();
    assert!(err.to_string().contains("divergent"), "{err}");
    a.reset().unwrap();
    let mut b = a.clone();
    let nb = b.branch(Some("fresh")).unwrap();
    let _ = nb;
    b.receive_heads("new-branch", &[base]).unwrap();
    assert_eq!(b.get_branch("new-branch").unwrap().heads, vec![base]);
    b.receive_heads("new-branch", &[ha]).unwrap();
    assert_eq!(b.get_branch("new-branch").unwrap().heads, vec![ha], "fast-forward");
}

/// Spec §7.2 `test_pull_diverge` ★ / §7.9 item 12: checking out a diverged branch merges by
/// date: the newest head wins, one merge commit with PARENT newest and MERGEDFROM the other.
#[test]
fn divergence_merges_by_date() {
    let (mut a, _, ha, hb) = diverged();
    a.checkout(Checkout::branch(MASTER)).unwrap();
    assert_eq!(a.get::<TestObj>(root_of(&a)).unwrap().string.as_deref(), Some("from b"));
    let heads = a.get_branch(MASTER).unwrap().heads.clone();
    assert_eq!(heads.len(), 1);
    let merge = a.commit_info(heads[0]).unwrap();
    assert_eq!(merge.parents.len(), 2);
    assert_eq!((merge.parents[0].relationship, merge.parents[0].commit), (Relationship::Parent, hb));
    assert_eq!((merge.parents[1].relationship, merge.parents[1].commit), (Relationship::MergedFrom, ha));
    assert_eq!(merge.root, a.commit_info(hb).unwrap().root);
}

/// Spec §7.2 `test_pull_no_automerge` ★, §7.1 `test_merge` ★ and §7.9 item 13: without
/// auto-merge, a diverged branch checks out at the common ancestor with the heads as merge
/// states; content from a merge state can be adopted; the commit has PARENT then MERGEDFROM and
/// closes the divergence (ION could not commit here).
#[test]
fn divergence_without_auto_merge() {
    let (mut a, base, ha, hb) = diverged();
    a.checkout(Checkout::branch(MASTER).auto_merge(false)).unwrap();
    assert_eq!(a.get::<TestObj>(root_of(&a)).unwrap().string.as_deref(), Some("base"));
    assert_eq!(a.merge_states(), &[hb]);
    assert_eq!(a.status(), Status::Modified, "a merge is pending");
    assert!(a.checkout(Checkout::branch(MASTER)).is_err(), "pending merge counts as dirty");
    let theirs_root = a.commit_info(hb).unwrap().root.unwrap().key;
    let adopted = a.adopt(theirs_root).unwrap();
    let mut merged: TestObj = a.get(adopted).unwrap();
    merged.integer = Some(42);
    let r = root_of(&a);
    a.set(r, &merged).unwrap();
    let c = a.commit("merged by hand").unwrap();
    let info = a.commit_info(c).unwrap();
    assert_eq!(
        info.parents.iter().map(|p| (p.relationship, p.commit)).collect::<Vec<_>>(),
        vec![(Relationship::Parent, ha), (Relationship::MergedFrom, hb)]
    );
    assert_eq!(a.get_branch(MASTER).unwrap().heads, vec![c]);
    assert!(a.is_ancestor(base, c));
}

/// Spec §7.1 `test_get_common_ancestor`: the fork commit of two branches.
#[test]
fn common_ancestor_of_branches() {
    let (a, base, ha, hb) = diverged();
    assert_eq!(a.common_ancestor(&[ha, hb]).unwrap(), base);
    assert_eq!(a.common_ancestor(&[ha, base]).unwrap(), base);
}

/// Objects of user types loaded at run time from a descriptor set work like built-in ones,
/// through dynamic messages.
#[test]
fn dynamic_objects() {
    use dsf::prost_reflect::{DynamicMessage, Value};
    let mut repo = repo();
    let desc = repo.registry().require(TypeId::of::<Person>()).unwrap().descriptor.clone();
    let mut msg = DynamicMessage::new(desc);
    msg.set_field_by_name("name", Value::String("David".into()));
    msg.set_field_by_name("id", Value::I32(5));
    let id = repo.create_dynamic(&msg).unwrap();
    repo.set_root(id).unwrap();
    repo.commit("dynamic").unwrap();
    assert_eq!(repo.object_key(id).unwrap().unwrap().to_hex(), "9AF39498F3E359988F9946EC91CD2980F91D02B5");
    repo.update_dynamic(id, |m| m.set_field_by_name("email", Value::String("d@x".into()))).unwrap();
    assert_eq!(repo.get::<Person>(id).unwrap().email.as_deref(), Some("d@x"));
}

/// A link to nothing, or a placeholder of an earlier checkout, is refused with a clear error.
#[test]
fn dangling_links_are_refused() {
    let mut repo = repo();
    let stale = repo.create(&kv("a", "b")).unwrap();
    let stale_link = repo.link(stale).unwrap();
    repo.set_root(stale).unwrap();
    repo.commit("one").unwrap();
    let mut bogus = stale_link.clone();
    bogus.key = vec![7; 20];
    let err = repo.create(&ListObj { items: vec![bogus] }).unwrap_err();
    assert!(matches!(err, Error::DanglingLink(_)), "{err}");
    repo.checkout(Checkout::branch(MASTER)).unwrap();
    let modified_link = {
        let r = root_of(&repo);
        repo.update::<KeyValue>(r, |k| k.value = "c".into()).unwrap();
        repo.link(r).unwrap()
    };
    repo.reset().unwrap();
    assert!(repo.create(&ListObj { items: vec![modified_link] }).is_err(), "placeholder of an earlier checkout");
}
