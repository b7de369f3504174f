//! Tests of `element` and `key`: the golden vectors of spec §1.2 and verification.

use dsf::proto::net::ooici::play::{AddressLink, Person, person};
use dsf::{Element, Error, HashAlgorithm, Key, Registry, TypeId};
use prost::Message as _;

use crate::common::*;

fn hex(k: Key) -> String {
    k.to_hex()
}

/// Spec §1.2: `GPBType(20001,1)` encodes as `08 A1 9C 01 10 01`; `GPBType(8,1)` as `08 08 10 01`.
#[test]
fn gpbtype_encoding_vectors() {
    assert_eq!(TypeId::new(20001, 1).encode(), [0x08, 0xA1, 0x9C, 0x01, 0x10, 0x01]);
    assert_eq!(TypeId::new(8, 1).encode(), [0x08, 0x08, 0x10, 0x01]);
    // Negative ids are sign-extended to ten bytes, as proto2 encodes an int32.
    assert_eq!(TypeId::new(-99, 1).encode().len(), 1 + 10 + 2);
}

/// Spec §1.2 / §7.9 item 1: the key of Person {name:"David", id:5}.
#[test]
fn key_vector_person_david() {
    let value = person("David", 5).encode_to_vec();
    assert_eq!(value, [0x0A, 0x05, 0x44, 0x61, 0x76, 0x69, 0x64, 0x10, 0x05]);
    let key = HashAlgorithm::Sha1.element_key(&value, TypeId::new(20001, 1));
    assert_eq!(hex(key), "9AF39498F3E359988F9946EC91CD2980F91D02B5");
}

/// Spec §1.2: the keys of empty values of types 20001 and 20003.
#[test]
fn key_vectors_empty_values() {
    assert_eq!(
        hex(HashAlgorithm::Sha1.element_key(&[], TypeId::new(20001, 1))),
        "025FE401676A8011594BB656B90DB67E5C23988A"
    );
    assert_eq!(
        hex(HashAlgorithm::Sha1.element_key(&[], TypeId::new(20003, 1))),
        "79BCAA780DD964FC21EBE942B4779BD05B3313B5"
    );
}

/// Spec §7.6 `test_size` ★: the element of the person "David Stuebe" is 68 bytes.
#[test]
fn element_size_person_68() {
    let registry = Registry::builtin();
    let p = person_with_phone("David Stuebe", 1592733398, "a number", person::PhoneType::Work);
    let e = Element::from_message(HashAlgorithm::Sha1, &registry, &p).unwrap();
    assert_eq!(e.encoded_len(), 68);
    assert_eq!(e.encode().len(), 68);
    assert!(e.is_leaf());
}

/// Spec §7.6 `test_size` ★: the first commit of that person is a 127-byte element.
#[test]
fn element_size_commit_127() {
    let mut repo = repo();
    let id = repo.create(&person_with_phone("David Stuebe", 1592733398, "a number", person::PhoneType::Work)).unwrap();
    repo.set_root(id).unwrap();
    assert_eq!(repo.key().len(), 36);
    let commit = repo.commit("committed...").unwrap();
    let e = repo.elements().get(&commit).unwrap();
    assert_eq!(e.encoded_len(), 127);
    assert!(!e.is_leaf(), "a commit element is never a leaf");
    assert_eq!(repo.commit_info(commit).unwrap().root_seed.as_deref(), Some(repo.key()));
}

/// Spec §1.2: a received element is verified over its exact bytes; a flipped bit is refused.
#[test]
fn decode_verifies_key_over_exact_bytes() {
    let registry = Registry::builtin();
    let e = Element::from_message(HashAlgorithm::Sha1, &registry, &person("David", 5)).unwrap();
    let bytes = e.encode();
    let back = Element::decode(&registry, &bytes).unwrap();
    assert_eq!(back, e);

    let mut corrupt = bytes.clone();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0x01;
    assert!(matches!(Element::decode(&registry, &corrupt), Err(Error::Corrupt { key }) if key == e.key()));
}

/// Non-canonical bytes keep their own key: verification never re-serialises.
#[test]
fn non_canonical_value_is_hashed_as_received() {
    let registry = Registry::builtin();
    // id before name: valid protobuf, not the canonical order.
    let value: Vec<u8> = [&[0x10u8, 0x05][..], &[0x0A, 0x05, b'D', b'a', b'v', b'i', b'd']].concat();
    let ty = TypeId::of::<Person>();
    let key = HashAlgorithm::Sha1.element_key(&value, ty);
    let e = Element::from_parts(&registry, key.as_bytes(), ty, true, value.clone().into()).unwrap();
    assert_eq!(e.value().as_ref(), value.as_slice());
    assert_ne!(key.to_hex(), "9AF39498F3E359988F9946EC91CD2980F91D02B5");
}

/// BLAKE3 repositories use the same construction with 32-byte keys.
#[test]
fn blake3_keys_are_32_bytes_and_verified() {
    let registry = Registry::builtin();
    let e = Element::from_message(HashAlgorithm::Blake3, &registry, &person("David", 5)).unwrap();
    assert_eq!(e.key().as_bytes().len(), 32);
    let value = person("David", 5).encode_to_vec();
    let inner = blake3::hash(&value);
    let mut outer = blake3::Hasher::new();
    outer.update(inner.as_bytes());
    outer.update(&TypeId::new(20001, 1).encode());
    assert_eq!(e.key().as_bytes(), outer.finalize().as_bytes());
    assert_eq!(Element::decode(&registry, &e.encode()).unwrap(), e);
}

/// A link-holding element lists its distinct children; the leaf flag must agree with the links.
#[test]
fn children_are_distinct_and_leaf_flag_is_checked() {
    let registry = Registry::builtin();
    let child = Element::from_message(HashAlgorithm::Sha1, &registry, &person("a", 1)).unwrap();
    let link = dsf::proto::prelude::CasRef {
        key: child.key().as_bytes().to_vec(),
        r#type: dsf::proto::prelude::GpbType { object_id: 20001, version: 1 },
        isleaf: true,
    };
    let book = AddressLink { person: vec![link.clone(), link.clone()], owner: Some(link), title: None };
    let e = Element::from_message(HashAlgorithm::Sha1, &registry, &book).unwrap();
    assert_eq!(e.children(), &[child.key()]);
    assert!(!e.is_leaf());
    let lying = Element::from_parts(&registry, e.key().as_bytes(), e.ty(), true, e.value().clone());
    assert!(matches!(lying, Err(Error::Codec { .. })), "{lying:?}");
}

/// Garbage never panics: it is a codec error.
#[test]
fn garbage_element_is_a_codec_error() {
    let registry = Registry::builtin();
    for bytes in
        [&b""[..], b"\xff", b"\x0a\x50abc", b"\x22\x01", b"\x0a\x14aaaaaaaaaaaaaaaaaaaa\x12\x00\x18\x01\x22\x00"]
    {
        let r = Element::decode(&registry, bytes);
        assert!(
            matches!(r, Err(Error::Codec { .. }) | Err(Error::Corrupt { .. }) | Err(Error::UnknownType { .. })),
            "{bytes:?}: {r:?}"
        );
    }
}

/// Spec §7.1 `test_setitem_getitem` ★ and `test_update_1_get_2`, for the repository's element
/// index: a stored element reads back, a missing key reads as absent and adds nothing, and
/// insertion is idempotent with exact byte accounting. (ION's process-wide weak cache shared
/// between indexes belongs to the workbench, not to the repository.)
#[test]
fn element_index_set_get() {
    let registry = Registry::builtin();
    let mut index = dsf::Elements::default();
    let e = Element::from_message(HashAlgorithm::Sha1, &registry, &person("David", 5)).unwrap();
    assert!(index.get(&e.key()).is_none());
    assert!(index.is_empty());
    assert!(index.insert(e.clone()));
    assert!(!index.insert(e.clone()), "same key, same content: inserted once");
    assert_eq!(index.get(&e.key()), Some(&e));
    assert_eq!((index.len(), index.bytes()), (1, e.encoded_len()));
    let missing = HashAlgorithm::Sha1.element_key(b"nothing", TypeId::of::<Person>());
    assert!(index.get(&missing).is_none());
    assert_eq!(index.len(), 1, "a failed lookup adds nothing");
    assert_eq!(index.remove(&e.key()), Some(e));
    assert_eq!((index.len(), index.bytes()), (0, 0));
}

/// `reachable` lists every key under the roots once, and does not descend into excluded types.
#[test]
fn reachable_respects_exclusions() {
    let registry = Registry::builtin();
    let leaf = Element::from_message(HashAlgorithm::Sha1, &registry, &person("a", 1)).unwrap();
    let link = dsf::proto::prelude::CasRef {
        key: leaf.key().as_bytes().to_vec(),
        r#type: dsf::proto::prelude::GpbType { object_id: 20001, version: 1 },
        isleaf: true,
    };
    let book = AddressLink { person: vec![link.clone(), link], owner: None, title: None };
    let book = Element::from_message(HashAlgorithm::Sha1, &registry, &book).unwrap();
    let mut index = dsf::Elements::default();
    index.insert(leaf.clone());
    index.insert(book.clone());
    assert_eq!(index.reachable(&[book.key()], &[]), vec![book.key(), leaf.key()]);
    let excluded = [TypeId::of::<AddressLink>()];
    assert_eq!(index.reachable(&[book.key()], &excluded), vec![book.key(), leaf.key()], "roots always descend");
    assert_eq!(index.reachable(&[leaf.key()], &[]), vec![leaf.key()]);
}
