//! Maintenance: paged listing of blobs, rows and repositories; idempotent and conditional
//! deletion; freshening.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use dsf::store::maint::{all_blobs, all_repositories, all_rows};
use dsf::store::{BlobRow, BlobStore, HeadStore, IndexStore, KvStore, Maintenance, Predicate, Row};
use dsf::{Element, HashAlgorithm, Key, Registry};

use crate::fixtures::Fixture;

fn blob(i: i32) -> BlobRow {
    let p = dsf::proto::net::ooici::play::Person { name: Some(format!("m{i}")), id: Some(i), ..Default::default() };
    let e = Element::from_message(HashAlgorithm::Sha1, &Registry::builtin(), &p).unwrap();
    BlobRow { key: e.key(), element: e.encode().into(), children: e.encode_children().into() }
}

fn row(i: usize) -> Row {
    Row {
        key: format!("row{i:02}").into_bytes(),
        value: Some(Bytes::from(format!("v{i}"))),
        attributes: BTreeMap::from([("keyword".to_string(), format!("w{}", i % 3).into_bytes())]),
    }
}

/// Pages through a listing with a small page size: every entry once, whatever the page size.
async fn paged_blobs<S: Maintenance>(s: &S, limit: usize) -> Vec<Key> {
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..1000 {
        let page = s.list_blobs(cursor, limit).await.unwrap();
        assert!(page.items.len() <= limit, "a page holds at most the limit");
        out.extend(page.items.into_iter().map(|l| l.key));
        match page.next {
            Some(next) => cursor = Some(next),
            None => return out,
        }
    }
    panic!("the listing never ended");
}

/// Listing pages through blobs, rows and repositories: each entry exactly once.
pub async fn listing<F: Fixture>(f: F) {
    let s = f.store();
    assert!(all_blobs(s).await.unwrap().is_empty());
    assert!(all_rows(s).await.unwrap().is_empty());
    assert!(all_repositories(s).await.unwrap().is_empty());
    let blobs: Vec<BlobRow> = (0..23).map(blob).collect();
    s.put_blobs(blobs.clone()).await.unwrap();
    s.batch_put_rows((0..11).map(row).collect()).await.unwrap();
    for r in ["repo-a", "repo-b", "repo-c"] {
        s.cas_heads(r.into(), None, Bytes::from_static(b"h")).await.unwrap();
    }
    let expected: BTreeSet<Key> = blobs.iter().map(|b| b.key).collect();
    for limit in [1, 4, 23, 100] {
        let listed = paged_blobs(s, limit).await;
        assert_eq!(listed.len(), expected.len(), "limit {limit}: no entry twice");
        assert_eq!(listed.into_iter().collect::<BTreeSet<_>>(), expected, "limit {limit}");
    }
    let listed = all_blobs(s).await.unwrap();
    assert!(listed.iter().all(|l| l.written.is_some() == s.write_times()), "write times iff the store keeps them");
    let rows: BTreeSet<Vec<u8>> = all_rows(s).await.unwrap().into_iter().map(|l| l.key).collect();
    assert_eq!(rows, (0..11).map(|i| row(i).key).collect());
    let mut repos = all_repositories(s).await.unwrap();
    repos.sort();
    assert_eq!(repos, ["repo-a", "repo-b", "repo-c"]);
}

/// Deletion removes blobs and rows (with their index entries), and is idempotent.
pub async fn deletion<F: Fixture>(f: F) {
    let s = f.store();
    let blobs: Vec<BlobRow> = (0..6).map(blob).collect();
    s.put_blobs(blobs.clone()).await.unwrap();
    s.batch_put_rows((0..6).map(row).collect()).await.unwrap();
    let gone: Vec<Key> = blobs[..3].iter().map(|b| b.key).collect();
    let absent = blob(99).key;
    for _ in 0..2 {
        let mut keys = gone.clone();
        keys.push(absent);
        s.delete_blobs(keys, None).await.unwrap();
    }
    let left: BTreeSet<Key> = all_blobs(s).await.unwrap().into_iter().map(|l| l.key).collect();
    assert_eq!(left, blobs[3..].iter().map(|b| b.key).collect());
    assert_eq!(s.has_blobs(gone.clone()).await.unwrap(), vec![false; 3]);

    let dead: Vec<Vec<u8>> = (0..6).filter(|i| i % 3 == 0).map(|i| row(i).key).collect();
    for _ in 0..2 {
        let mut keys = dead.clone();
        keys.push(b"no such row".to_vec());
        s.delete_rows(keys, None).await.unwrap();
    }
    let left: BTreeSet<Vec<u8>> = all_rows(s).await.unwrap().into_iter().map(|l| l.key).collect();
    assert_eq!(left, (0..6).filter(|i| i % 3 != 0).map(|i| row(i).key).collect());
    assert_eq!(s.get(dead[0].clone()).await.unwrap(), None);
    // The index forgets them too.
    let found = s.query(vec![Predicate::Eq("keyword".into(), b"w0".to_vec())]).await.unwrap();
    assert!(found.is_empty(), "{found:?}");
    assert_eq!(s.query(vec![Predicate::Eq("keyword".into(), b"w1".to_vec())]).await.unwrap().len(), 2);
}

/// Freshening reports presence and writes present entries again; with write times, a deletion
/// `written_before` an entry's last write leaves it alone, and one at or after removes it.
/// Without write times deletions are unconditional.
pub async fn conditional_deletion<F: Fixture>(f: F) {
    let s = f.store();
    let (a, b) = (blob(1), blob(2));
    s.put_blobs(vec![a.clone(), b.clone()]).await.unwrap();
    s.put_row(row(1)).await.unwrap();
    let written =
        |listed: &[dsf::store::Listed<Key>], k: Key| listed.iter().find(|l| l.key == k).and_then(|l| l.written);
    let before = all_blobs(s).await.unwrap();
    let absent = blob(3).key;
    assert_eq!(s.freshen_blobs(vec![a.key, absent]).await.unwrap(), vec![true, false]);
    assert_eq!(s.freshen_rows(vec![row(1).key, b"none".to_vec()]).await.unwrap(), vec![true, false]);
    let after = all_blobs(s).await.unwrap();
    assert_eq!(s.get_blobs(vec![a.key]).await.unwrap()[0].as_ref(), Some(&a), "freshening changes no byte");
    let found = s.query(vec![Predicate::Eq("keyword".into(), b"w1".to_vec())]).await.unwrap();
    assert_eq!(found, vec![row(1)], "freshening keeps a row's value and attributes");
    if !s.write_times() {
        assert!(after.iter().all(|l| l.written.is_none()));
        s.delete_blobs(vec![a.key], Some(0)).await.unwrap();
        s.delete_rows(vec![row(1).key], Some(0)).await.unwrap();
        assert_eq!(s.has_blobs(vec![a.key, b.key]).await.unwrap(), vec![false, true]);
        assert!(!s.has_key(row(1).key).await.unwrap());
        return;
    }
    let (a0, a1) = (written(&before, a.key).unwrap(), written(&after, a.key).unwrap());
    assert!(a1 > a0, "freshening gives a new write time: {a0} then {a1}");
    let b0 = written(&after, b.key).unwrap();
    // Written again after the cut-off: survives.
    s.delete_blobs(vec![a.key, b.key], Some(a0)).await.unwrap();
    assert_eq!(s.has_blobs(vec![a.key, b.key]).await.unwrap(), vec![true, b0 > a0]);
    let r = all_rows(s).await.unwrap()[0].written.unwrap();
    s.delete_rows(vec![row(1).key], Some(r - 1)).await.unwrap();
    assert!(s.has_key(row(1).key).await.unwrap(), "a row written after the cut-off survives");
    s.delete_rows(vec![row(1).key], Some(r)).await.unwrap();
    assert!(!s.has_key(row(1).key).await.unwrap(), "a row written at the cut-off goes");
    assert!(s.query(vec![Predicate::Eq("keyword".into(), b"w1".to_vec())]).await.unwrap().is_empty());
    s.delete_blobs(vec![a.key], Some(a1)).await.unwrap();
    assert!(!s.has_blobs(vec![a.key]).await.unwrap()[0]);
    // A deletion stamped before a later write does not hide it: put again, delete at the old
    // cut-off, and the blob is there.
    s.put_blobs(vec![a.clone()]).await.unwrap();
    s.delete_blobs(vec![a.key], Some(a1)).await.unwrap();
    assert!(s.has_blobs(vec![a.key]).await.unwrap()[0], "a write after the cut-off outlives the deletion");
}
