//! Helpers of the unit tests: rows, predicates and blobs to write, and raw access to the
//! column families.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use dsf::key::Key;
use dsf::store::{BlobRow, Predicate, Row};
use rocksdb::IteratorMode;

use super::RocksStore;
use super::codec::{decode_row, index_keys};
use super::schema::{INDEX, ROWS};

pub(super) fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs.iter().map(|(n, v)| (n.to_string(), v.as_bytes().to_vec())).collect()
}

pub(super) fn row(key: &str, value: &str, pairs: &[(&str, &str)]) -> Row {
    Row {
        key: key.as_bytes().to_vec(),
        value: Some(Bytes::copy_from_slice(value.as_bytes())),
        attributes: attrs(pairs),
    }
}

pub(super) fn eq(name: &str, value: &str) -> Predicate {
    Predicate::Eq(name.into(), value.as_bytes().to_vec())
}

pub(super) fn blob(seed: u8) -> BlobRow {
    BlobRow {
        key: Key::from_slice(&[seed; 20]).unwrap(),
        element: Bytes::from(vec![seed; 3 + seed as usize]),
        children: Bytes::from(vec![seed ^ 0xFF; seed as usize]),
    }
}

pub(super) fn keys_of(rows: &[Row]) -> Vec<&[u8]> {
    rows.iter().map(|r| r.key.as_slice()).collect()
}

/// Every key of a column family, in order.
pub(super) fn cf_keys(store: &RocksStore, name: &'static str) -> Vec<Vec<u8>> {
    let s = &store.shared;
    s.db.iterator_cf(s.cf(name).unwrap(), IteratorMode::Start).map(|e| e.unwrap().0.to_vec()).collect()
}

pub(super) fn put_raw(store: &RocksStore, name: &'static str, key: &[u8], value: &[u8]) {
    let s = &store.shared;
    s.db.put_cf(s.cf(name).unwrap(), key, value).unwrap();
}

/// The index column family equals the entries derived from the rows column family.
pub(super) fn assert_index_consistent(store: &RocksStore) {
    let s = &store.shared;
    let mut expected = BTreeSet::new();
    for entry in s.db.iterator_cf(s.cf(ROWS).unwrap(), IteratorMode::Start) {
        let (key, stored) = entry.unwrap();
        expected.extend(index_keys(&key, Some(&decode_row(&key, &stored).unwrap())));
    }
    let actual: BTreeSet<Vec<u8>> = cf_keys(store, INDEX).into_iter().collect();
    assert_eq!(actual, expected);
}
