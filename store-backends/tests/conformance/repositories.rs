//! Repositories kept in a store: commit, reopen, lazy checkout, concurrent writers.

use std::sync::Arc;

use dsf::proto::net::ooici::play::{AddressLink, KeyValue, ListObj, Person};
use dsf::store::persist::StoredRepository;
use dsf::store::{GENERATION, IndexStore, Predicate};
use dsf::{Checkout, Key, MASTER_BRANCH as MASTER, Registry, Repository, TypeId};

use crate::fixtures::Fixture;

fn person(name: &str, id: i32) -> Person {
    Person { name: Some(name.into()), id: Some(id), ..Default::default() }
}

/// Builds an address book of `n` people in `repo` and sets it as root.
fn address_book(repo: &mut Repository, n: i32) {
    let people: Vec<_> = (0..n).map(|i| repo.create(&person(&format!("p{i}"), i)).unwrap()).collect();
    let links = people.iter().map(|&p| repo.link(p).unwrap()).collect();
    let book = repo.create(&AddressLink { person: links, owner: None, title: Some("book".into()) }).unwrap();
    repo.set_root(book).unwrap();
}

fn title(repo: &Repository) -> Option<String> {
    repo.get::<AddressLink>(repo.root().unwrap()).unwrap().title
}

/// Spec §7.8 `test_push_clear_pull` ★ at the store level: commit, reopen the store, open the
/// repository and check out: the same content, history and branches.
pub async fn commit_reopen_checkout<F: Fixture>(mut f: F) {
    let registry = Registry::builtin();
    let key;
    let (first, second);
    {
        let mut stored = StoredRepository::create(f.store(), Repository::new(registry.clone()));
        key = stored.repository().key().to_owned();
        address_book(stored.repository_mut(), 5);
        first = stored.commit("five people").await.unwrap();
        let root = stored.repository().root().unwrap();
        stored.repository_mut().update::<AddressLink>(root, |b| b.title = Some("renamed".into())).unwrap();
        second = stored.commit("renamed").await.unwrap();
        stored.repository_mut().branch(Some("side")).unwrap();
        stored.save().await.unwrap();
    }
    f.reopen().await;
    assert!(StoredRepository::open(f.store(), registry.clone(), "no such repository").await.unwrap().is_none());
    let mut stored = StoredRepository::open(f.store(), registry.clone(), &key).await.unwrap().expect("stored");
    assert_eq!(stored.repository().workspace_len(), 0, "objects are fetched on checkout, not on open");
    stored.checkout(Checkout::branch(MASTER)).await.unwrap();
    assert_eq!(title(stored.repository()).as_deref(), Some("renamed"));
    assert_eq!(stored.repository().workspace_len(), 6);
    assert_eq!(stored.repository().get_branch(MASTER).unwrap().heads, vec![second]);
    assert_eq!(stored.repository().get_branch("side").unwrap().heads, vec![second]);
    stored.load_history().await.unwrap();
    let log: Vec<Key> = stored.repository().log(MASTER).unwrap().iter().map(|c| c.key).collect();
    assert_eq!(log, vec![second, first]);
    stored.checkout(Checkout::branch(MASTER).commit(first)).await.unwrap();
    assert_eq!(title(stored.repository()).as_deref(), Some("book"));
    // And a commit after reopening moves the stored head.
    stored.checkout(Checkout::branch(MASTER)).await.unwrap();
    let root = stored.repository().root().unwrap();
    stored.repository_mut().update::<AddressLink>(root, |b| b.title = Some("third".into())).unwrap();
    let third = stored.commit("third").await.unwrap();
    let again = StoredRepository::open(f.store(), registry, &key).await.unwrap().unwrap();
    assert_eq!(again.repository().get_branch(MASTER).unwrap().heads, vec![third]);
}

/// A checkout fetches only what it loads: excluded types and old versions stay in the store.
pub async fn lazy_fetch_and_exclusions<F: Fixture>(f: F) {
    let registry = Registry::builtin();
    let mut stored = StoredRepository::create(f.store(), Repository::new(registry.clone()));
    let key = stored.repository().key().to_owned();
    address_book(stored.repository_mut(), 3);
    stored.commit("one").await.unwrap();
    let root = stored.repository().root().unwrap();
    stored.repository_mut().update::<AddressLink>(root, |b| b.title = Some("two".into())).unwrap();
    stored.commit("two").await.unwrap();

    let mut fresh = StoredRepository::open(f.store(), registry, &key).await.unwrap().unwrap();
    assert_eq!(fresh.repository().elements().len(), 0, "open reads the heads record only");
    fresh.checkout(Checkout::branch(MASTER).excluded_types([TypeId::of::<Person>()])).await.unwrap();
    assert_eq!(fresh.repository().workspace_len(), 1);
    let persons = fresh.repository().elements().iter().filter(|e| e.ty() == TypeId::of::<Person>()).count();
    assert!(persons <= 3, "excluded subtrees are not descended");
    assert_eq!(
        fresh.repository().elements().len(),
        1 + 1 + persons,
        "the head commit and the head's book only, not the first commit nor its book"
    );
    fresh.checkout(Checkout::branch(MASTER).excluded_types([])).await.unwrap();
    assert_eq!(fresh.repository().workspace_len(), 4);
}

/// Concurrent writers on one repository never lose a head: the loser of each compare-and-set
/// merges the winner's heads, so divergent commits stay as heads side by side.
pub async fn concurrent_writers_keep_every_head<F: Fixture>(f: F) {
    let registry = Registry::builtin();
    let f = Arc::new(f);
    let mut origin = StoredRepository::create(f.store(), Repository::new(registry.clone()));
    let key = origin.repository().key().to_owned();
    let kv = origin.repository_mut().create(&KeyValue { key: "k".into(), value: "v0".into() }).unwrap();
    origin.repository_mut().set_root(kv).unwrap();
    let base = origin.commit("base").await.unwrap();

    // Every writer checks out the same head first, then all commit at once.
    let mut writers = Vec::new();
    for _ in 0..4 {
        let mut mine = StoredRepository::open(f.store(), registry.clone(), &key).await.unwrap().unwrap();
        mine.checkout(Checkout::branch(MASTER)).await.unwrap();
        writers.push(mine);
    }
    let commits: Vec<Key> = futures::future::join_all(writers.iter_mut().enumerate().map(|(w, mine)| async move {
        let root = mine.repository().root().unwrap();
        mine.repository_mut().update::<KeyValue>(root, |kv| kv.value = format!("writer {w}")).unwrap();
        mine.commit(&format!("writer {w}")).await.unwrap()
    }))
    .await;
    drop(writers);
    let mut stored = StoredRepository::open(f.store(), registry.clone(), &key).await.unwrap().unwrap();
    let heads = stored.repository().get_branch(MASTER).unwrap().heads.clone();
    for c in &commits {
        for h in &heads {
            stored.load_ancestry_between(*c, *h).await.unwrap();
        }
        assert!(heads.iter().any(|h| stored.repository().is_ancestor(*c, *h)), "commit {c} is reachable from a head");
    }
    assert!(!heads.contains(&base));
    // Checking out merges the divergent heads by date and saves the merge.
    let mut reader = StoredRepository::open(f.store(), registry.clone(), &key).await.unwrap().unwrap();
    reader.checkout(Checkout::branch(MASTER)).await.unwrap();
    let merged = StoredRepository::open(f.store(), registry, &key).await.unwrap().unwrap();
    assert_eq!(merged.repository().get_branch(MASTER).unwrap().heads.len(), 1);
}

/// Spec §4.1 / §7.9 item 21: commit rows carry `repository_key`; heads carry `branch_name`,
/// others an empty one, kept up to date as heads move.
pub async fn commit_rows_are_indexed<F: Fixture>(f: F) {
    let registry = Registry::builtin();
    let mut stored = StoredRepository::create(f.store(), Repository::new(registry));
    let key = stored.repository().key().to_owned();
    let list = stored.repository_mut().create(&ListObj { items: vec![] }).unwrap();
    stored.repository_mut().set_root(list).unwrap();
    let c1 = stored.commit("one").await.unwrap();
    let root = stored.repository().root().unwrap();
    let kv = stored.repository_mut().create(&KeyValue { key: "a".into(), value: "b".into() }).unwrap();
    let link = stored.repository().link(kv).unwrap();
    stored.repository_mut().update::<ListObj>(root, |l| l.items.push(link)).unwrap();
    let c2 = stored.commit("two").await.unwrap();
    let repo_rows =
        f.store().query(vec![Predicate::Eq("repository_key".into(), key.as_bytes().to_vec())]).await.unwrap();
    assert_eq!(repo_rows.len(), 2);
    let heads = f
        .store()
        .query(vec![
            Predicate::Eq("repository_key".into(), key.as_bytes().to_vec()),
            Predicate::Gt("branch_name".into(), Vec::new()),
        ])
        .await
        .unwrap();
    assert_eq!(heads.len(), 1);
    assert_eq!(heads[0].key, c2.as_bytes());
    let master = stored.repository().get_branch(MASTER).unwrap().key.clone();
    assert_eq!(heads[0].attributes["branch_name"], master.as_bytes());
    let old = repo_rows.iter().find(|r| r.key == c1.as_bytes()).unwrap();
    assert_eq!(old.attributes["branch_name"], b"");
    // Each row carries its commit's generation, stored but not indexed.
    assert_eq!(old.attributes[GENERATION], b"1");
    assert_eq!(heads[0].attributes[GENERATION], b"2");
}

/// Rows written before generations were kept carry none: such a repository still opens, checks
/// out an old commit and walks (reading its whole history once), and its next commit is stored
/// with the right generation, so later walks stop early again.
pub async fn rows_without_generations<F: Fixture>(f: F) {
    let registry = Registry::builtin();
    let mut stored = StoredRepository::create(f.store(), Repository::new(registry.clone()));
    let key = stored.repository().key().to_owned();
    let kv = stored.repository_mut().create(&KeyValue { key: "k".into(), value: "v0".into() }).unwrap();
    stored.repository_mut().set_root(kv).unwrap();
    let mut commits = vec![stored.commit("0").await.unwrap()];
    for i in 1..3 {
        let root = stored.repository().root().unwrap();
        stored.repository_mut().update::<KeyValue>(root, |kv| kv.value = format!("v{i}")).unwrap();
        commits.push(stored.commit(&i.to_string()).await.unwrap());
    }
    // Written as before generations: the same rows without the attribute.
    let rows = f.store().query(vec![Predicate::Eq("repository_key".into(), key.as_bytes().to_vec())]).await.unwrap();
    assert_eq!(rows.len(), 3);
    for mut row in rows {
        assert!(row.attributes.remove(GENERATION).is_some());
        f.store().put_row(row).await.unwrap();
    }
    let mut old = StoredRepository::open(f.store(), registry.clone(), &key).await.unwrap().unwrap();
    old.checkout(Checkout::branch(MASTER).commit(commits[0])).await.unwrap();
    let root = old.repository().root().unwrap();
    assert_eq!(old.repository().get::<KeyValue>(root).unwrap().value, "v0");
    old.checkout(Checkout::branch(MASTER)).await.unwrap();
    let root = old.repository().root().unwrap();
    old.repository_mut().update::<KeyValue>(root, |kv| kv.value = "v3".into()).unwrap();
    let next = old.commit("3").await.unwrap();
    let row = f.store().get_rows(vec![next.as_bytes().to_vec()]).await.unwrap().remove(0).unwrap();
    assert_eq!(row.attributes[GENERATION], b"4");
    let mut again = StoredRepository::open(f.store(), registry, &key).await.unwrap().unwrap();
    again.load_ancestry_between(commits[0], next).await.unwrap();
    assert!(again.repository().is_ancestor(commits[0], next));
    assert!(!again.repository().is_ancestor(next, commits[0]));
}
