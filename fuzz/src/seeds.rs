//! The seed corpus: valid inputs built with the public API of `dsf`, and broken variants of
//! them. Everything is deterministic (fixed repository key, fixed commit dates), so the seeds
//! regenerate to the same bytes and the same file names.

use dsf::proto::net::ooici::core::message::{IonMsg, ion_msg};
use dsf::proto::net::ooici::play::{AddressLink, ListObj, Person, TestObj, person};
use dsf::structure::{self, Envelope};
use dsf::{Element, HashAlgorithm, ObjectId, Repository, Result, TypeId};

use crate::registry;

/// The repository key of every seed repository.
const REPO_KEY: &str = "3F2504E0-4F89-11D3-9A0C-0305E82C3301";
/// The date of every seed commit (seconds since the epoch).
const DATE: f64 = 1_300_000_000.0;

/// Seeds of `structure_decode`: packed message envelopes and broken variants.
pub fn structure_decode() -> Result<Vec<Vec<u8>>> {
    let mut valid = Vec::new();
    for alg in [HashAlgorithm::Sha1, HashAlgorithm::Blake3] {
        valid.push(structure::pack(&message(alg, |r| r.create(&person("David", 5)).map(Some))?, &[])?);
        valid.push(structure::pack(&message(alg, address_link)?, &[])?);
    }
    valid.push(structure::pack(&message(HashAlgorithm::Sha1, |_| Ok(None))?, &[])?);
    valid.push(structure::pack(&message(HashAlgorithm::Sha1, list_of_links)?, &[])?);
    valid.push(structure::pack(&message(HashAlgorithm::Sha1, wrapped_payload)?, &[])?);
    valid.push(structure::pack(&message(HashAlgorithm::Sha1, test_obj)?, &[])?);

    let mut out = valid.clone();
    let deep = &valid[valid.len() - 3];
    let env = Envelope::decode(registry(), deep)?;
    let mut items: Vec<&Element> = env.items.values().collect();
    items.sort_by_key(|e| e.key());
    // The head alone: its links dangle.
    out.push(envelope(&env.head, &[]));
    // An extra, unreachable commit among the items.
    let commit = first_commit(HashAlgorithm::Sha1)?;
    let mut with_commit = items.clone();
    with_commit.push(&commit);
    out.push(envelope(&env.head, &with_commit));
    // The head twice, and an item as the head.
    let mut twice = envelope(&env.head, &items);
    twice.extend_from_slice(&envelope(&env.head, &[]));
    out.push(twice);
    out.push(envelope(items[0], &items));
    for v in &valid[..3] {
        out.extend(broken(v));
    }
    out.push(Vec::new());
    Ok(out)
}

/// Seeds of `element_verify`: encoded elements of several types and broken variants.
pub fn element_verify() -> Result<Vec<Vec<u8>>> {
    let reg = registry();
    let mut elements = Vec::new();
    for alg in [HashAlgorithm::Sha1, HashAlgorithm::Blake3] {
        elements.push(Element::from_message(alg, reg, &person("David", 5))?);
        elements.push(first_commit(alg)?);
    }
    let phone = person::PhoneNumber { number: Some("a number".into()), r#type: Some(person::PhoneType::Work as i32) };
    let mut stuebe = person("David Stuebe", 1_592_733_398);
    stuebe.phone.push(phone);
    elements.push(Element::from_message(HashAlgorithm::Sha1, reg, &stuebe)?);

    // Links: an IonMsg, an AddressLink and a ListObj from a committed message repository, and
    // the commit after a first one (it links to its parent).
    let repo = message(HashAlgorithm::Sha1, list_of_links)?;
    let mut linked: Vec<Element> = repo.elements().iter().filter(|e| !e.is_leaf()).cloned().collect();
    linked.sort_by_key(|e| (e.ty(), e.key()));
    elements.extend(linked);
    elements.push(second_commit()?);

    let test = TestObj {
        string: Some("s".into()),
        integer: Some(-1),
        float: Some(1.5),
        strings: vec!["a".into(), String::new()],
        integers: vec![i32::MIN, 0, i32::MAX],
        floats: vec![f32::NAN, f32::INFINITY],
    };
    elements.push(Element::from_message(HashAlgorithm::Sha1, reg, &test)?);
    // Types the registry does not know are accepted as opaque leaves.
    elements.push(Element::new(HashAlgorithm::Sha1, TypeId::new(424_242, 1), &b"opaque"[..], Vec::new()));
    elements.push(Element::new(HashAlgorithm::Sha1, TypeId::new(-5, 1), &b""[..], Vec::new()));

    // Wrapped for transport, once and twice.
    let address = repo.elements().iter().find(|e| e.ty() == TypeId::of::<AddressLink>()).cloned();
    let address = address.expect("the message links to an AddressLink");
    let once = structure::wrap(HashAlgorithm::Sha1, &address);
    let twice = structure::wrap(HashAlgorithm::Sha1, &once);
    let blake = structure::wrap(HashAlgorithm::Blake3, &elements[0]);

    let mut out: Vec<Vec<u8>> = elements.iter().map(Element::encode).collect();
    out.extend([once.encode(), twice.encode(), blake.encode()]);

    // Broken variants of a leaf, a linking element, a commit and a wrapped element.
    for e in [&elements[0], &address, &elements[1], &once] {
        let bytes = e.encode();
        out.extend(broken(&bytes));
        // isleaf flipped: the key still verifies, the flag contradicts the links.
        out.push(raw_element(e.key().as_bytes(), &e.ty().encode(), !e.is_leaf(), e.value()));
        // Fields in reverse order and isleaf as a longer varint: not canonical, but valid.
        out.push(reordered(e));
    }
    // A key of neither 20 nor 32 bytes, and a wrong type.
    let e = &elements[0];
    out.push(raw_element(&e.key().as_bytes()[..19], &e.ty().encode(), true, e.value()));
    out.push(raw_element(e.key().as_bytes(), &TypeId::new(20002, 1).encode(), true, e.value()));
    out.push(Vec::new());
    Ok(out)
}

/// An encoded `Structure {head, items}` with the items in the order given. (`Envelope::encode`
/// takes them from a hash map, in an order that changes from run to run.)
fn envelope(head: &Element, items: &[&Element]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, e) in std::iter::once((0x0a, head)).chain(items.iter().map(|e| (0x12, *e))) {
        let bytes = e.encode();
        out.push(tag);
        put_varint(&mut out, bytes.len());
        out.extend_from_slice(&bytes);
    }
    out
}

/// Truncated and bit-flipped copies of a valid input.
fn broken(valid: &[u8]) -> Vec<Vec<u8>> {
    let mut out = vec![valid[..valid.len() / 2].to_vec(), valid[..valid.len() - 1].to_vec()];
    let mut flipped = valid.to_vec();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x01;
    out.push(flipped);
    out
}

/// An encoded `StructureElement` from raw parts, canonical field order.
fn raw_element(key: &[u8], ty: &[u8], isleaf: bool, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (tag, bytes) in [(0x0a, key), (0x12, ty)] {
        out.push(tag);
        out.push(u8::try_from(bytes.len()).expect("short field"));
        out.extend_from_slice(bytes);
    }
    out.extend_from_slice(&[0x18, u8::from(isleaf), 0x22]);
    put_varint(&mut out, value.len());
    out.extend_from_slice(value);
    out
}

/// The element with its fields in reverse order and `isleaf` as a two-byte varint.
fn reordered(e: &Element) -> Vec<u8> {
    let mut out = vec![0x22];
    put_varint(&mut out, e.value().len());
    out.extend_from_slice(e.value());
    out.extend_from_slice(&[0x18, 0x80 | u8::from(e.is_leaf()), 0x00]);
    let ty = e.ty().encode();
    out.extend_from_slice(&[0x12, ty.len() as u8]);
    out.extend_from_slice(&ty);
    out.extend_from_slice(&[0x0a, e.key().as_bytes().len() as u8]);
    out.extend_from_slice(e.key().as_bytes());
    out
}

fn put_varint(out: &mut Vec<u8>, mut v: usize) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn person(name: &str, id: i32) -> Person {
    Person { name: Some(name.into()), id: Some(id), email: None, phone: Vec::new() }
}

fn repository(alg: HashAlgorithm) -> Repository {
    Repository::with_key(registry().clone(), REPO_KEY, alg)
}

/// A committed message repository: an `IonMsg` root linking the payload `payload` creates.
fn message(
    alg: HashAlgorithm,
    payload: impl FnOnce(&mut Repository) -> Result<Option<ObjectId>>,
) -> Result<Repository> {
    let mut repo = repository(alg);
    let payload = payload(&mut repo)?;
    let msg = IonMsg {
        name: Some("seed".into()),
        identity: Some(REPO_KEY.into()),
        message_object: payload.map(|p| repo.link(p)).transpose()?,
        response_code: Some(ion_msg::ResponseCodes::Ok as i32),
        response_body: None,
    };
    let root = repo.create(&msg)?;
    repo.set_root(root)?;
    repo.commit_at("Commiting to send message with wrapper object", DATE)?;
    Ok(repo)
}

/// An `AddressLink` to two persons, one of them linked twice (as a person and as the owner).
fn address_link(repo: &mut Repository) -> Result<Option<ObjectId>> {
    let a = repo.create(&person("Alice", 1))?;
    let b = repo.create(&person("Bob", 2))?;
    let book = AddressLink {
        person: vec![repo.link(a)?, repo.link(b)?],
        owner: Some(repo.link(a)?),
        title: Some("friends".into()),
    };
    repo.create(&book).map(Some)
}

/// A `ListObj` linking an `AddressLink` and a person the address book also links to.
fn list_of_links(repo: &mut Repository) -> Result<Option<ObjectId>> {
    let book = address_link(repo)?.expect("an address book");
    let carol = repo.create(&person("Carol", 3))?;
    let list = ListObj { items: vec![repo.link(book)?, repo.link(carol)?] };
    repo.create(&list).map(Some)
}

/// An element carried as data: an object of type `StructureElement` holding a person.
fn wrapped_payload(repo: &mut Repository) -> Result<Option<ObjectId>> {
    let inner = Element::from_message(repo.algorithm(), registry(), &person("Wrapped", 7))?;
    let outer = structure::wrap(repo.algorithm(), &inner);
    repo.create_encoded(TypeId::STRUCTURE_ELEMENT, outer.value().clone()).map(Some)
}

fn test_obj(repo: &mut Repository) -> Result<Option<ObjectId>> {
    let obj = TestObj { string: Some("x".into()), integers: vec![1, -2], ..Default::default() };
    repo.create(&obj).map(Some)
}

/// The first commit of a repository holding one person.
fn first_commit(alg: HashAlgorithm) -> Result<Element> {
    let mut repo = repository(alg);
    let p = repo.create(&person("David", 5))?;
    repo.set_root(p)?;
    let key = repo.commit_at("committed...", DATE)?;
    Ok(repo.elements().get(&key).expect("the commit element").clone())
}

/// A second commit: it links to the first as its parent.
fn second_commit() -> Result<Element> {
    let mut repo = repository(HashAlgorithm::Sha1);
    let p = repo.create(&person("David", 5))?;
    repo.set_root(p)?;
    repo.commit_at("first", DATE)?;
    repo.update::<Person>(p, |p| p.email = Some("d@example.invalid".into()))?;
    let key = repo.commit_at("second", DATE + 1.0)?;
    Ok(repo.elements().get(&key).expect("the commit element").clone())
}

/// Seeds of `message_decode`: ION AMQP message bodies (every header, few headers, text as raw
/// bytes as old msgpack writers made it, a packed envelope as content) and broken variants.
pub fn message_decode() -> Result<Vec<Vec<u8>>> {
    use crate::message::{Headers, Message};
    use rmpv::Value;
    let envelope = structure::pack(&message(HashAlgorithm::Sha1, |r| r.create(&person("David", 5)).map(Some))?, &[])?;
    let full = Message {
        headers: Headers {
            sender: "dsf-0123456789ab.1".into(),
            sender_name: "client".into(),
            receiver: "sys.datastore".into(),
            reply_to: "dsf-0123456789ab.1".into(),
            conv_id: "dsf-0123456789ab.1#7".into(),
            ts: "1300000000000".into(),
            op: "push".into(),
            quiet: Some(false),
            other: vec![("x-extra".into(), Value::from(1.5))],
            ..Headers::default()
        },
        content: envelope.into(),
    };
    let reply = Message {
        headers: Headers {
            conv_seq: 2,
            status: "ERROR".into(),
            performative: "failure".into(),
            op: "result".into(),
            ..full.headers.clone()
        },
        content: bytes::Bytes::from_static(b"\x0a\x00"),
    };
    let raw = |pairs: &[(&[u8], Value)]| {
        let map = pairs.iter().map(|(k, v)| (Value::Binary(k.to_vec()), v.clone())).collect();
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, &Value::Map(map)).expect("writing to a Vec");
        out
    };
    let ion = raw(&[
        (b"sender", Value::Binary(b"p.1".to_vec())),
        (b"op", Value::Binary(b"pull".to_vec())),
        (b"conv-seq", Value::Binary(b"1".to_vec())),
        (b"content", Value::Binary(vec![1, 2, 3])),
    ]);
    let odd = raw(&[
        (b"conv-seq", Value::from(-3)),
        (b"reply-to", Value::Nil),
        (b"quiet", Value::from(7)),
        (b"content", Value::Nil),
        (b"x", Value::Array(vec![Value::from(f64::NAN), Value::Map(vec![])])),
    ]);
    let valid = vec![full.encode(), reply.encode(), ion, odd];
    let mut out = valid.clone();
    for v in &valid {
        out.push(v[..v.len() / 2].to_vec());
        let mut flipped = v.clone();
        flipped[1] ^= 0x40;
        out.push(flipped);
        let mut extra = v.clone();
        extra.push(0xc0);
        out.push(extra);
    }
    out.extend([Vec::new(), vec![0xc1], vec![0x93, 1, 2, 3], vec![0x81, 0x01, 0x02], b"\x81\xa7content\x05".to_vec()]);
    Ok(out)
}

/// Seeds of `document_parse`: documents in the working-copy form, valid and broken.
pub fn document_parse() -> Result<Vec<Vec<u8>>> {
    let docs = [
        r#"{"@type": "net.ooici.play.Person", "name": "Ann", "id": 1, "email": "ann@example.org"}"#,
        r#"{"@type": "net.ooici.play.Person", "name": "Bob", "phone": [{"number": "555", "type": "WORK"}, {"number": "556"}]}"#,
        r#"{"@type": "net.ooici.play.AddressLink", "title": "Friends",
            "owner": {"@type": "net.ooici.play.Person", "name": "Owen", "id": 1},
            "person": [{"@type": "net.ooici.play.Person", "name": "Ann", "id": 2},
                       {"@type": "net.ooici.play.Person", "name": "Owen", "id": 1}]}"#,
        r#"{"@type": "net.ooici.play.ListObj", "items": [
            {"@type": "net.ooici.play.KeyValue", "key": "a", "value": "1"},
            {"@type": "net.ooici.play.ListObj", "items": [{"@type": "net.ooici.play.KeyValue", "key": "b", "value": "2"}]}]}"#,
        r#"{"@type": "net.ooici.play.TestObj", "string": "s", "integer": -5, "float": 1.5, "strings": ["a", "b"], "integers": [1, -2], "floats": [0.5, -0.0, "NaN"]}"#,
        r#"{"@type": "net.ooici.play.Person", "@key": "0000000000000000000000000000000000000000", "name": "Hint"}"#,
        r#"{"@type": "net.ooici.play.Person", "name": {"@conflict": {"path": "root.name", "ours": "a", "theirs": "b"}}}"#,
        r#"{"@type": "net.ooici.play.AddressLink", "owner": {"@ref": "0123456789ABCDEF0123456789ABCDEF01234567"}}"#,
        r#"{"@type": "net.ooici.play.AddressLink", "owner": {"key": "AAAA", "type": {"object_id": 20001, "version": 1}, "isleaf": true}}"#,
        r#"{"@type": "no.such.Type"}"#,
        r#"{"name": "no type"}"#,
        r#"[1, 2, 3]"#,
        r#"{"@type": "net.ooici.play.Person", "nmae": "typo"}"#,
        r#"{"@type": "net.ooici.play.Person", "id": "not a number"}"#,
        r#"{"@type": "net.ooici.play.Person", "name": "unterminated"#,
    ];
    Ok(docs.iter().map(|d| d.as_bytes().to_vec()).collect())
}
