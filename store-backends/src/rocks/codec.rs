//! Encodings of the stored values and index keys, and the mapping of RocksDB's errors.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use dsf::key::Key;
use dsf::store::{BlobRow, StoreError, StoreResult, Versioned};

/// Maps a RocksDB error: corruption is [`StoreError::Corrupt`], everything else (I/O, busy,
/// shutdown) [`StoreError::Unavailable`].
pub(super) fn db_error(e: rocksdb::Error) -> StoreError {
    match e.kind() {
        rocksdb::ErrorKind::Corruption => StoreError::Corrupt(format!("rocksdb: {e}")),
        _ => StoreError::Unavailable(format!("rocksdb: {e}")),
    }
}

/// A decoded row of the `rows` column family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct StoredRow {
    pub(super) value: Bytes,
    pub(super) attributes: BTreeMap<String, Vec<u8>>,
}

fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a varint from the front of `input`; `None` if it is cut short or overflows a u64.
fn take_varint(input: &mut &[u8]) -> Option<u64> {
    let bytes: &[u8] = input;
    let mut n = 0u64;
    for (i, &byte) in bytes.iter().enumerate().take(10) {
        let bits = u64::from(byte & 0x7F);
        if i == 9 && byte > 1 {
            return None;
        }
        n |= bits << (7 * i);
        if byte & 0x80 == 0 {
            *input = &bytes[i + 1..];
            return Some(n);
        }
    }
    None
}

fn put_field(out: &mut Vec<u8>, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Reads a length-prefixed field from the front of `input`.
fn take_field<'a>(input: &mut &'a [u8]) -> Option<&'a [u8]> {
    let len = usize::try_from(take_varint(input)?).ok()?;
    if len > input.len() {
        return None;
    }
    let (field, rest) = input.split_at(len);
    *input = rest;
    Some(field)
}

#[cfg(test)]
pub(super) fn encode_blob(element: &[u8], children: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(element.len() + children.len() + 5);
    encode_blob_into(&mut out, element, children);
    out
}

/// Replaces the contents of `out` with the stored form of a blob, so that one buffer serves a
/// whole batch of blobs.
pub(super) fn encode_blob_into(out: &mut Vec<u8>, element: &[u8], children: &[u8]) {
    out.clear();
    put_field(out, element);
    out.extend_from_slice(children);
}

pub(super) fn decode_blob(key: Key, stored: &[u8]) -> StoreResult<BlobRow> {
    let mut input = stored;
    let element = take_field(&mut input)
        .ok_or_else(|| StoreError::Corrupt(format!("the stored blob {key} has a bad element length")))?;
    Ok(BlobRow { key, element: Bytes::copy_from_slice(element), children: Bytes::copy_from_slice(input) })
}

pub(super) fn encode_heads(heads: &Versioned) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + heads.record.len());
    out.extend_from_slice(&heads.version.to_be_bytes());
    out.extend_from_slice(&heads.record);
    out
}

pub(super) fn decode_heads(repository: &str, stored: &[u8]) -> StoreResult<Versioned> {
    let corrupt = || StoreError::Corrupt(format!("the stored heads of {repository} have no valid version"));
    let (version, record) = stored.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let version = u64::from_be_bytes(*version);
    if version == 0 {
        return Err(corrupt());
    }
    Ok(Versioned { version, record: Bytes::copy_from_slice(record) })
}

pub(super) fn encode_row(row: &StoredRow) -> Vec<u8> {
    let mut out = Vec::with_capacity(row.value.len() + 16);
    put_field(&mut out, &row.value);
    put_varint(&mut out, row.attributes.len() as u64);
    for (name, value) in &row.attributes {
        put_field(&mut out, name.as_bytes());
        put_field(&mut out, value);
    }
    out
}

pub(super) fn decode_row(key: &[u8], stored: &[u8]) -> StoreResult<StoredRow> {
    decode_row_fields(stored).ok_or_else(|| StoreError::Corrupt(format!("the stored row {} is undecodable", hex(key))))
}

fn decode_row_fields(stored: &[u8]) -> Option<StoredRow> {
    let mut input = stored;
    let value = Bytes::copy_from_slice(take_field(&mut input)?);
    let count = take_varint(&mut input)?;
    let mut attributes = BTreeMap::new();
    for _ in 0..count {
        let name = std::str::from_utf8(take_field(&mut input)?).ok()?.to_owned();
        let value = take_field(&mut input)?.to_vec();
        if attributes.insert(name, value).is_some() {
            return None;
        }
    }
    input.is_empty().then_some(StoredRow { value, attributes })
}

/// The prefix of the index entries of the rows whose attribute `name` is `value`.
pub(super) fn index_prefix(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len() + value.len() + 4);
    put_field(&mut out, name.as_bytes());
    put_field(&mut out, value);
    out
}

/// The index entries of a row (none for an absent row).
pub(super) fn index_keys(key: &[u8], row: Option<&StoredRow>) -> BTreeSet<Vec<u8>> {
    row.iter()
        .flat_map(|r| &r.attributes)
        .filter(|(name, _)| !dsf::store::is_stored_only(name))
        .map(|(name, value)| {
            let mut entry = index_prefix(name, value);
            entry.extend_from_slice(key);
            entry
        })
        .collect()
}

pub(super) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::attrs;
    use super::*;

    #[test]
    fn varints_round_trip_and_reject_truncation_and_overflow() {
        for n in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut buf = Vec::new();
            put_varint(&mut buf, n);
            buf.push(0xAA);
            let mut input = buf.as_slice();
            assert_eq!(take_varint(&mut input), Some(n));
            assert_eq!(input, &[0xAA]);
            let mut cut = &buf[..buf.len() - 2];
            if n >= 128 {
                assert_eq!(take_varint(&mut cut), None);
            }
        }
        let mut overflow: &[u8] = &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
        assert_eq!(take_varint(&mut overflow), None);
        let mut too_long: &[u8] = &[0x80; 11];
        assert_eq!(take_varint(&mut too_long), None);
    }

    #[test]
    fn encodings_round_trip() {
        for (element, children) in [(&b""[..], &b""[..]), (b"e", b""), (b"", b"c"), (&[7u8; 300][..], &[9u8; 40][..])] {
            let key = Key::from_slice(&[1; 20]).unwrap();
            let decoded = decode_blob(key, &encode_blob(element, children)).unwrap();
            assert_eq!((decoded.element.as_ref(), decoded.children.as_ref()), (element, children));
        }
        let stored = StoredRow { value: Bytes::from_static(b"v"), attributes: attrs(&[("a", ""), ("b", "x")]) };
        assert_eq!(decode_row(b"k", &encode_row(&stored)).unwrap(), stored);
        let heads = Versioned { version: 7, record: Bytes::from_static(b"r") };
        assert_eq!(decode_heads("r", &encode_heads(&heads)).unwrap(), heads);
    }

    #[test]
    fn index_prefixes_do_not_capture_other_values() {
        // "ab" must not be found under the prefix of "a", nor name "a" + value "b…" under name "ab".
        let a = index_prefix("n", b"a");
        assert!(
            !index_keys(b"k", Some(&StoredRow { value: Bytes::new(), attributes: attrs(&[("n", "ab")]) }))
                .iter()
                .any(|e| e.starts_with(&a))
        );
        assert!(!index_prefix("a", b"bc").starts_with(&index_prefix("ab", b"c")));
        assert!(!index_prefix("ab", b"c").starts_with(&index_prefix("a", b"bc")));
    }
}
