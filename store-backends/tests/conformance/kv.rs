//! ION's `IStore` / `IndexStore` behaviours (spec §7.7), blobs and heads.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use dsf::store::{BlobRow, BlobStore, Cas, HeadStore, IndexStore, KvStore, Predicate, Row, StoreError};
use dsf::{Element, HashAlgorithm, Registry};

use crate::fixtures::Fixture;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn k(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
}

fn eq(n: &str, v: &str) -> Predicate {
    Predicate::Eq(n.into(), v.as_bytes().to_vec())
}

fn gt(n: &str, v: &str) -> Predicate {
    Predicate::Gt(n.into(), v.as_bytes().to_vec())
}

fn row(key: &str, value: &str, pairs: &[(&str, &str)]) -> Row {
    Row { key: k(key), value: Some(b(value)), attributes: attrs(pairs) }
}

/// Three people-like rows: (key, value, repository_key, keyword, resource_life_cycle_state).
async fn people<F: Fixture>(f: &F) {
    let s = f.store();
    s.put_row(row(
        "david",
        "DS",
        &[("repository_key", "people"), ("keyword", "1975"), ("resource_life_cycle_state", "ACTIVE")],
    ))
    .await
    .unwrap();
    s.put_row(row(
        "john",
        "JD",
        &[("repository_key", "people"), ("keyword", "1960"), ("resource_life_cycle_state", "RETIRED")],
    ))
    .await
    .unwrap();
    s.put_row(row("ann", "AN", &[("repository_key", "people"), ("resource_life_cycle_state", "ACTIVE")]))
        .await
        .unwrap();
    s.put_row(row("other", "OT", &[("repository_key", "others"), ("keyword", "1999")])).await.unwrap();
}

fn keys(rows: &[Row]) -> Vec<String> {
    rows.iter().map(|r| String::from_utf8(r.key.clone()).unwrap()).collect()
}

/// Spec §7.7 `test_batch` ★: batch put, get and has answer exactly the requested keys (missing
/// keys: nothing / false), and batched index rows are queryable.
pub async fn batch_operations<F: Fixture>(f: F) {
    let s = f.store();
    s.batch_put(vec![(k("a"), b("1")), (k("b"), b("2")), (k("c"), b("3"))]).await.unwrap();
    let got = s.batch_get(vec![k("c"), k("missing"), k("a"), k("c")]).await.unwrap();
    assert_eq!(got, vec![Some(b("3")), None, Some(b("1")), Some(b("3"))]);
    let has = s.batch_has_key(vec![k("b"), k("nope")]).await.unwrap();
    assert_eq!(has, vec![true, false]);
    s.batch_put_rows(vec![
        row("r1", "v1", &[("repository_key", "batch"), ("keyword", "x")]),
        row("r2", "v2", &[("repository_key", "batch"), ("keyword", "y")]),
    ])
    .await
    .unwrap();
    let rows = s.query(vec![eq("repository_key", "batch")]).await.unwrap();
    assert_eq!(keys(&rows), ["r1", "r2"]);
    assert_eq!(rows[0].value, Some(b("v1")));
}

/// Spec §7.7 `test_get_none`: a missing key reads as nothing.
pub async fn get_none<F: Fixture>(f: F) {
    assert_eq!(f.store().get(k("never written")).await.unwrap(), None);
}

/// Spec §7.7 `test_write_and_delete`, `test_delete` ★, `test_put_get_delete` ★: values read
/// back, overwrite, and are gone after remove; removing a missing key is fine.
pub async fn put_get_remove<F: Fixture>(f: F) {
    let s = f.store();
    s.put(k("key"), b("value")).await.unwrap();
    assert_eq!(s.get(k("key")).await.unwrap(), Some(b("value")));
    s.put(k("key"), b("other")).await.unwrap();
    assert_eq!(s.get(k("key")).await.unwrap(), Some(b("other")));
    s.remove(k("key")).await.unwrap();
    assert_eq!(s.get(k("key")).await.unwrap(), None);
    s.remove(k("key")).await.unwrap();
    s.remove(k("never")).await.unwrap();
}

/// Spec §7.7 `test_has_key`, `test_does_not_have_key`, `test_has_deleted_key` ★.
pub async fn has_key<F: Fixture>(f: F) {
    let s = f.store();
    assert!(!s.has_key(k("h")).await.unwrap());
    s.put(k("h"), b("1")).await.unwrap();
    assert!(s.has_key(k("h")).await.unwrap());
    s.remove(k("h")).await.unwrap();
    assert!(!s.has_key(k("h")).await.unwrap());
}

/// Spec §7.7 `test_get_query_attributes`: the declared indexed columns.
pub async fn query_attributes<F: Fixture>(f: F) {
    let mut names = f.store().indexed_attributes();
    names.sort();
    let mut expected: Vec<String> = dsf::store::COMMIT_ATTRIBUTES.iter().map(|s| s.to_string()).collect();
    expected.sort();
    assert_eq!(names, expected);
}

/// Spec §7.7 `test_query_single` ★ / `test_query_single_2`: an EQ query returns the matching
/// rows with their values and all attributes.
pub async fn query_single<F: Fixture>(f: F) {
    people(&f).await;
    let rows = f.store().query(vec![eq("keyword", "1975")]).await.unwrap();
    assert_eq!(keys(&rows), ["david"]);
    assert_eq!(rows[0].value, Some(b("DS")));
    assert_eq!(
        rows[0].attributes,
        attrs(&[("repository_key", "people"), ("keyword", "1975"), ("resource_life_cycle_state", "ACTIVE")])
    );
    let rows = f.store().query(vec![eq("repository_key", "people")]).await.unwrap();
    assert_eq!(keys(&rows), ["ann", "david", "john"]);
}

/// Spec §7.7 `test_query_multiple` ★: an AND of two EQs.
pub async fn query_multiple<F: Fixture>(f: F) {
    people(&f).await;
    let rows =
        f.store().query(vec![eq("repository_key", "people"), eq("resource_life_cycle_state", "ACTIVE")]).await.unwrap();
    assert_eq!(keys(&rows), ["ann", "david"]);
}

/// Spec §7.7 `test_query_no_resuluts`: no match is an empty answer.
pub async fn query_no_results<F: Fixture>(f: F) {
    people(&f).await;
    assert!(f.store().query(vec![eq("repository_key", "nobody")]).await.unwrap().is_empty());
    assert!(f.store().query(vec![eq("repository_key", "people"), eq("keyword", "2050")]).await.unwrap().is_empty());
}

/// Spec §7.7 `test_query_greater_and_eq` ★: `GT "1970"` AND an EQ.
pub async fn query_greater_and_eq<F: Fixture>(f: F) {
    people(&f).await;
    let rows = f.store().query(vec![gt("keyword", "1970"), eq("repository_key", "people")]).await.unwrap();
    assert_eq!(keys(&rows), ["david"]);
}

/// Spec §7.7 `test_query_greater_and_eq_2` ★: `GT ""` means present and non-empty; rows
/// without the attribute never match.
pub async fn query_greater_and_eq_blank<F: Fixture>(f: F) {
    people(&f).await;
    f.store().put_row(row("eve", "EV", &[("repository_key", "people"), ("keyword", "")])).await.unwrap();
    let rows = f.store().query(vec![eq("repository_key", "people"), gt("keyword", "")]).await.unwrap();
    assert_eq!(keys(&rows), ["david", "john"]);
}

/// Spec §5.2: a query needs at least one EQ, and (so that no backend has to index empty
/// values) one with a non-empty value; an EQ on the empty value beside it still filters.
pub async fn query_needs_equality<F: Fixture>(f: F) {
    people(&f).await;
    let err = f.store().query(vec![gt("keyword", "")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert!(matches!(f.store().query(vec![]).await, Err(StoreError::Invalid(_))));
    f.store().put_row(row("eve", "EV", &[("repository_key", "people"), ("keyword", "")])).await.unwrap();
    let err = f.store().query(vec![eq("keyword", "")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let rows = f.store().query(vec![eq("keyword", ""), eq("repository_key", "people")]).await.unwrap();
    assert_eq!(keys(&rows), ["eve"]);
}

/// Spec §7.7 `test_update_index_blank` ★ / `test_update_index_existing` ★: attribute-only
/// updates become queryable, the old value no longer matches, and the value is untouched.
pub async fn update_index<F: Fixture>(f: F) {
    people(&f).await;
    let s = f.store();
    s.update_index(k("ann"), attrs(&[("keyword", "1980")])).await.unwrap();
    s.update_index(k("david"), attrs(&[("keyword", "1976")])).await.unwrap();
    assert_eq!(keys(&s.query(vec![eq("keyword", "1980")]).await.unwrap()), ["ann"]);
    assert!(s.query(vec![eq("keyword", "1975")]).await.unwrap().is_empty());
    let rows = s.query(vec![eq("keyword", "1976")]).await.unwrap();
    assert_eq!(rows[0].value, Some(b("DS")));
    assert_eq!(rows[0].attributes.get("resource_life_cycle_state").map(Vec::as_slice), Some(&b"ACTIVE"[..]));
    // The batch form: a row without a value is an attribute-only update.
    s.batch_put_rows(vec![Row {
        key: k("john"),
        value: None,
        attributes: attrs(&[("resource_life_cycle_state", "ACTIVE")]),
    }])
    .await
    .unwrap();
    assert_eq!(
        keys(&s.query(vec![eq("resource_life_cycle_state", "ACTIVE")]).await.unwrap()),
        ["ann", "david", "john"]
    );
    assert_eq!(s.get(k("john")).await.unwrap(), Some(b("JD")));
}

/// Spec §7.7 `test_update_index_value_error` ★: `value` is not an index attribute.
pub async fn update_index_value_error<F: Fixture>(f: F) {
    people(&f).await;
    let err = f.store().update_index(k("ann"), attrs(&[("value", "x")])).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    assert_eq!(f.store().get(k("ann")).await.unwrap(), Some(b("AN")));
}

/// Spec §5: attributes that are not indexed are refused, and nothing is written.
pub async fn unindexed_attribute_error<F: Fixture>(f: F) {
    let err = f.store().put_row(row("x", "y", &[("full_name", "nobody")])).await.unwrap_err();
    assert!(err.to_string().contains("full_name"), "{err}");
    assert_eq!(f.store().get(k("x")).await.unwrap(), None);
}

/// Stored-only attributes (names beginning with `_`): written and read back with their row by
/// key (`get_rows`, in request order, `None` for an absent key) and by query, kept by
/// attribute-only updates of other attributes, and never indexed: a query cannot name one.
pub async fn stored_only_attributes<F: Fixture>(f: F) {
    let s = f.store();
    s.batch_put_rows(vec![
        row("a", "va", &[("branch_name", "m"), ("_generation", "7")]),
        row("b", "vb", &[("branch_name", ""), ("_generation", "8")]),
    ])
    .await
    .unwrap();
    s.update_index(k("a"), attrs(&[("branch_name", "")])).await.unwrap();
    let got = s.get_rows(vec![k("b"), k("none"), k("a")]).await.unwrap();
    assert_eq!(got[0], Some(row("b", "vb", &[("branch_name", ""), ("_generation", "8")])));
    assert_eq!(got[1], None);
    assert_eq!(got[2], Some(row("a", "va", &[("branch_name", ""), ("_generation", "7")])));
    s.put_row(row("q", "vq", &[("keyword", "w"), ("_generation", "1")])).await.unwrap();
    assert_eq!(
        s.query(vec![eq("keyword", "w")]).await.unwrap(),
        vec![row("q", "vq", &[("keyword", "w"), ("_generation", "1")])]
    );
    let err = s.query(vec![eq("_generation", "1")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
    let err = s.query(vec![eq("keyword", "w"), gt("_generation", "")]).await.unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)), "{err}");
}

/// Blobs: batch put, get and has in request order; a second put of a key is harmless.
pub async fn blobs<F: Fixture>(f: F) {
    let registry = Registry::builtin();
    let people: Vec<Element> = (0..5)
        .map(|i| {
            let p =
                dsf::proto::net::ooici::play::Person { name: Some(format!("p{i}")), id: Some(i), ..Default::default() };
            Element::from_message(HashAlgorithm::Sha1, &registry, &p).unwrap()
        })
        .collect();
    let rows: Vec<BlobRow> = people
        .iter()
        .map(|e| BlobRow { key: e.key(), element: e.encode().into(), children: e.encode_children().into() })
        .collect();
    let s = f.store();
    s.put_blobs(rows[..3].to_vec()).await.unwrap();
    s.put_blobs(rows[2..].to_vec()).await.unwrap();
    let keys: Vec<_> = people.iter().rev().map(|e| e.key()).collect();
    let got = s.get_blobs(keys.clone()).await.unwrap();
    for (row, e) in got.iter().zip(people.iter().rev()) {
        let row = row.as_ref().expect("stored");
        assert_eq!(Element::from_stored(&row.element, &row.children).unwrap(), *e);
    }
    let missing = HashAlgorithm::Sha1.element_key(b"absent", dsf::TypeId::new(20001, 1));
    assert_eq!(s.get_blobs(vec![missing, keys[0]]).await.unwrap()[0], None);
    assert_eq!(s.has_blobs(vec![keys[1], missing]).await.unwrap(), vec![true, false]);
}

/// Heads change only by compare-and-set; a lost race returns the current record.
pub async fn heads_compare_and_set<F: Fixture>(f: F) {
    let s = f.store();
    assert_eq!(s.get_heads("repo".into()).await.unwrap(), None);
    assert_eq!(s.cas_heads("repo".into(), Some(3), b("x")).await.unwrap(), Cas::Lost(None));
    assert_eq!(s.cas_heads("repo".into(), None, b("first")).await.unwrap(), Cas::Applied(1));
    let Cas::Lost(Some(current)) = s.cas_heads("repo".into(), None, b("again")).await.unwrap() else {
        panic!("creating twice must lose")
    };
    assert_eq!((current.version, current.record), (1, b("first")));
    assert_eq!(s.cas_heads("repo".into(), Some(1), b("second")).await.unwrap(), Cas::Applied(2));
    let Cas::Lost(Some(current)) = s.cas_heads("repo".into(), Some(1), b("stale")).await.unwrap() else {
        panic!("a stale version must lose")
    };
    assert_eq!((current.version, current.record), (2, b("second")));
    assert_eq!(s.get_heads("other".into()).await.unwrap(), None, "heads are per repository");
}

/// Among concurrent writers expecting the same version, exactly one wins.
pub async fn heads_one_winner<F: Fixture>(f: F) {
    let f = Arc::new(f);
    f.store().cas_heads("race".into(), None, b("start")).await.unwrap();
    for round in 1..=3u64 {
        let tasks: Vec<_> = (0..8)
            .map(|w| {
                let f = Arc::clone(&f);
                tokio::spawn(async move {
                    f.store().cas_heads("race".into(), Some(round), b(&format!("{round}:{w}"))).await
                })
            })
            .collect();
        let mut winners = 0;
        for t in tasks {
            match t.await.unwrap().unwrap() {
                Cas::Applied(v) => {
                    assert_eq!(v, round + 1);
                    winners += 1;
                }
                Cas::Lost(Some(current)) => assert!(current.version > round),
                Cas::Lost(None) => panic!("the record exists"),
            }
        }
        assert_eq!(winners, 1, "round {round}");
    }
}

/// A save writes blobs and rows, then the heads and `on_applied`; a stale version writes the
/// blobs and rows but neither the heads nor `on_applied`.
pub async fn save_batch<F: Fixture>(f: F) {
    use dsf::store::{SaveBatch, Store};
    let registry = Registry::builtin();
    let blob = |i: i32| {
        let p = dsf::proto::net::ooici::play::Person { name: Some(format!("s{i}")), id: Some(i), ..Default::default() };
        let e = Element::from_message(HashAlgorithm::Sha1, &registry, &p).unwrap();
        BlobRow { key: e.key(), element: e.encode().into(), children: e.encode_children().into() }
    };
    let row = |key: &str, branch: &str| Row {
        key: k(key),
        value: Some(b("commit")),
        attributes: attrs(&[("repository_key", "R"), ("branch_name", branch)]),
    };
    let mark = |key: &str| Row { key: k(key), value: None, attributes: attrs(&[("branch_name", "B")]) };
    let s = f.store();
    let first = SaveBatch {
        blobs: vec![blob(1)],
        rows: vec![row("c1", "")],
        repository: "R".into(),
        expected: None,
        record: b("heads 1"),
        on_applied: vec![mark("c1")],
    };
    assert_eq!(s.save(first).await.unwrap(), Cas::Applied(1));
    assert_eq!(s.get_heads("R".into()).await.unwrap().unwrap().record, b("heads 1"));
    assert!(s.has_blobs(vec![blob(1).key]).await.unwrap()[0]);
    let heads = s.query(vec![eq("repository_key", "R"), gt("branch_name", "")]).await.unwrap();
    assert_eq!(heads.iter().map(|r| r.key.clone()).collect::<Vec<_>>(), vec![k("c1")], "on_applied was written");

    let stale = SaveBatch {
        blobs: vec![blob(2)],
        rows: vec![row("c2", "")],
        repository: "R".into(),
        expected: None,
        record: b("heads 2"),
        on_applied: vec![mark("c2")],
    };
    match s.save(stale).await.unwrap() {
        Cas::Lost(Some(current)) => assert_eq!(current.record, b("heads 1")),
        other => panic!("a stale save must lose with the current heads: {other:?}"),
    }
    assert_eq!(s.get_heads("R".into()).await.unwrap().unwrap().record, b("heads 1"), "heads did not move");
    assert!(s.has_blobs(vec![blob(2).key]).await.unwrap()[0], "blobs are written anyway");
    assert!(s.has_key(k("c2")).await.unwrap(), "rows are written anyway");
    let heads = s.query(vec![eq("repository_key", "R"), gt("branch_name", "")]).await.unwrap();
    assert_eq!(heads.len(), 1, "on_applied of a lost save is not written");
}
