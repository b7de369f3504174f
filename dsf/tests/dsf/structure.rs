//! Tests of `structure`: the envelope of spec §1.5 (§7.3 ★ and §7.9 items 14 and 15).

use dsf::proto::net::ooici::core::message::IonMsg;
use dsf::proto::net::ooici::core::workbench_messages::BlobsMessage;
use dsf::proto::net::ooici::play::{AddressLink, Person};
use dsf::structure::{self, Envelope};
use dsf::{Element, Error, HashAlgorithm, Registry, Repository, TypeId};

use crate::common::*;

/// A message repository: IonMsg → AddressLink → 3 links to 2 distinct persons.
fn message() -> Repository {
    let mut repo = repo();
    let (book, _) = address_book_in(&mut repo, "book");
    let msg =
        IonMsg { name: Some("a message".into()), message_object: Some(repo.link(book).unwrap()), ..Default::default() };
    let root = repo.create(&msg).unwrap();
    repo.set_root(root).unwrap();
    repo.commit("to send").unwrap();
    repo
}

/// Spec §7.3 `test_pack_eq_unpack` ★ and `test_children` ★: pack → unpack gives an equal root
/// and equal children; three child links with two distinct keys survive unchanged.
#[test]
fn pack_eq_unpack() {
    let sent = message();
    let bytes = structure::pack(&sent, &[]).unwrap();
    let registry = Registry::builtin();
    let env = Envelope::decode(&registry, &bytes).unwrap();
    assert_eq!(env.head.ty(), TypeId::ION_MSG);
    assert_eq!(env.items.len(), 3, "book and two persons; the commit is not sent");
    assert!(env.items.values().all(|e| e.ty() != TypeId::COMMIT));

    let got = structure::unpack(&registry, &bytes, &[]).unwrap();
    let (a, b) = (sent.root().unwrap(), got.root().unwrap());
    assert_eq!(sent.get::<IonMsg>(a).unwrap(), got.get::<IonMsg>(b).unwrap());
    let book_a = sent.resolve(sent.get::<IonMsg>(a).unwrap().message_object.as_ref().unwrap()).unwrap();
    let book_b = got.resolve(got.get::<IonMsg>(b).unwrap().message_object.as_ref().unwrap()).unwrap();
    let (la, lb) = (sent.get::<AddressLink>(book_a).unwrap(), got.get::<AddressLink>(book_b).unwrap());
    assert_eq!(la, lb);
    assert_eq!(lb.person.len() + usize::from(lb.owner.is_some()), 3);
    assert_eq!(got.children(book_b).unwrap().len(), 2);
    for (x, y) in la.person.iter().zip(&lb.person) {
        assert_eq!(
            sent.get::<Person>(sent.resolve(x).unwrap()).unwrap(),
            got.get::<Person>(got.resolve(y).unwrap()).unwrap()
        );
    }
    let c = got.get_branch(dsf::MASTER_BRANCH).unwrap().heads[0];
    assert_eq!(got.commit_info(c).unwrap().comment, structure::UNPACK_COMMENT);
}

/// Spec §7.3 `test_unpack_error` ★: garbage bytes are a codec error, never a panic.
#[test]
fn garbage_is_a_codec_error() {
    let registry = Registry::builtin();
    for garbage in [&b"not a structure"[..], b"", b"\x0a", b"\x0a\x05hello", b"\x12\x00", &[0xff; 64]] {
        let err = structure::unpack(&registry, garbage, &[]).unwrap_err();
        assert!(matches!(err, Error::Codec { .. }), "{garbage:?}: {err}");
    }
}

/// Spec §1.2: a corrupt item inside an envelope is refused as corrupt.
#[test]
fn corrupt_item_is_refused() {
    let sent = message();
    let mut bytes = structure::pack(&sent, &[]).unwrap();
    let at = bytes.windows(4).position(|w| w == b"John").unwrap();
    bytes[at] = b'j';
    let err = structure::unpack(&Registry::builtin(), &bytes, &[]).unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
}

/// Spec §1.5 and §2.5: a missing linked element fails checkout and packing unless its type is
/// excluded.
#[test]
fn missing_links_need_exclusion() {
    let sent = message();
    let person = TypeId::of::<Person>();
    let mut partial = Repository::with_key(Registry::builtin(), sent.key(), HashAlgorithm::Sha1);
    partial.add_elements(sent.elements().iter().filter(|e| e.ty() != person).cloned()).unwrap();
    let head = sent.get_branch(dsf::MASTER_BRANCH).unwrap().heads[0];
    let master = partial.get_branch(dsf::MASTER_BRANCH).unwrap().key.clone();
    partial.receive_heads(&master, &[head]).unwrap();

    let err = partial.checkout(dsf::Checkout::branch(dsf::MASTER_BRANCH)).unwrap_err();
    assert!(matches!(err, Error::MissingElement { .. }), "{err}");
    partial.checkout(dsf::Checkout::branch(dsf::MASTER_BRANCH).excluded_types([person])).unwrap();
    assert_eq!(partial.workspace_len(), 2, "IonMsg and AddressLink");

    let err = structure::pack(&partial, &[]).unwrap_err();
    assert!(err.to_string().contains("not found (and not excluded)"), "{err}");
    let bytes = structure::pack(&partial, &[person]).unwrap();
    let got = structure::unpack(&Registry::builtin(), &bytes, &[person]).unwrap();
    assert_eq!(got.workspace_len(), 2);
    assert_eq!(got.elements().iter().filter(|e| e.ty() == person).count(), 0);
}

/// Spec §1.5 [QUIRK] / §7.9 item 15: elements carried as data are double wrapped: the outer
/// element has type StructureElement, is a leaf, and hashes the encoded inner element.
#[test]
fn double_wrapping() {
    let registry = Registry::builtin();
    let inner = Element::from_message(HashAlgorithm::Sha1, &registry, &person("David", 5)).unwrap();
    let outer = structure::wrap(HashAlgorithm::Sha1, &inner);
    assert_eq!(outer.ty(), TypeId::STRUCTURE_ELEMENT);
    assert!(outer.is_leaf());
    assert_eq!(outer.value().as_ref(), inner.encode().as_slice());
    assert_eq!(outer.key(), HashAlgorithm::Sha1.element_key(&inner.encode(), TypeId::new(1, 1)));
    assert_eq!(structure::unwrap(&registry, &outer).unwrap(), inner);

    // A BlobsMessage whose blob_elements link to wrapped elements travels in an envelope.
    let mut msg_repo = repo();
    let wrapped = msg_repo.create_encoded(TypeId::STRUCTURE_ELEMENT, outer.value().clone()).unwrap();
    let blobs = msg_repo.create(&BlobsMessage { blob_elements: vec![msg_repo.link(wrapped).unwrap()] }).unwrap();
    let ion =
        msg_repo.create(&IonMsg { message_object: Some(msg_repo.link(blobs).unwrap()), ..Default::default() }).unwrap();
    msg_repo.set_root(ion).unwrap();
    msg_repo.commit("blobs").unwrap();
    let bytes = structure::pack(&msg_repo, &[]).unwrap();
    let got = structure::unpack(&registry, &bytes, &[]).unwrap();
    let root = got.get::<IonMsg>(got.root().unwrap()).unwrap();
    let blobs = got.get::<BlobsMessage>(got.resolve(root.message_object.as_ref().unwrap()).unwrap()).unwrap();
    let carried = got.elements().get(&dsf::Key::from_slice(&blobs.blob_elements[0].key).unwrap()).unwrap();
    assert_eq!(structure::unwrap(&registry, carried).unwrap(), inner);
    let wrong = structure::unwrap(&registry, &inner).unwrap_err();
    assert!(matches!(wrong, Error::Codec { .. }), "{wrong}");
}
