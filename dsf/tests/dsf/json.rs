//! Tests of `json`: the working-copy form of a graph, rendered and read back.

use dsf::json::{self, KEY, REF, TYPE};
use dsf::merge::Conflict;
use dsf::proto::net::ooici::play::{AddressLink, Person};
use dsf::{Element, Elements, Error, HashAlgorithm, Key, Registry, Repository, Side, TypeId};
use prost::Message;
use serde_json::{Value, json};

use crate::common::{address_book_in, repo};

/// A committed address book (David listed and owner, John listed): (repository, root key).
fn book() -> (Repository, Key) {
    let mut r = repo();
    let (book, _) = address_book_in(&mut r, "Friends");
    r.set_root(book).unwrap();
    let commit = r.commit("book").unwrap();
    let root = r.commit_info(commit).unwrap().root.unwrap().key;
    (r, root)
}

fn parse(r: &Repository, doc: Value) -> dsf::Result<json::Parsed> {
    json::parse(r.registry(), r.algorithm(), r.elements(), doc)
}

/// ★ Unchanged subgraphs keep their keys: a rendered graph reads back to the same root and
/// nothing new.
#[test]
fn render_then_parse_is_identity() {
    let (r, root) = book();
    let doc = json::render(r.registry(), r.elements(), root, &[]).unwrap();
    assert_eq!(doc[TYPE], "net.ooici.play.AddressLink");
    assert_eq!(doc[KEY], root.to_hex());
    assert_eq!(doc["title"], "Friends");
    assert_eq!(doc["person"][0]["name"], "David");
    assert_eq!(doc["person"][1]["name"], "John");
    let parsed = parse(&r, doc).unwrap();
    assert_eq!(parsed.root, root);
    assert_eq!(parsed.root_type, TypeId::new(20003, 1));
    assert!(parsed.new_elements.is_empty(), "{:?}", parsed.new_elements);
    assert_eq!(parsed.stale_keys, 0, "every @key is right");
}

/// An object met a second time is written `{"@ref": KEY}` and reads back as the same link.
#[test]
fn repeated_objects_are_references() {
    let (r, root) = book();
    let doc = json::render(r.registry(), r.elements(), root, &[]).unwrap();
    // David is person[0] and the owner: written in full once, as a reference the second time.
    let david = doc["person"][0][KEY].as_str().unwrap().to_owned();
    assert_eq!(doc["owner"], json!({ REF: david }));
    assert_eq!(parse(&r, doc).unwrap().root, root);
}

/// Editing one field makes new elements for the edited object and its ancestors only.
#[test]
fn an_edit_renews_the_path_to_the_root_only() {
    let (r, root) = book();
    let mut doc = json::render(r.registry(), r.elements(), root, &[]).unwrap();
    doc["person"][1]["email"] = json!("john@example.org");
    let parsed = parse(&r, doc).unwrap();
    assert_ne!(parsed.root, root);
    assert_eq!(parsed.stale_keys, 2, "John's and the book's @key are out of date");
    let types: Vec<TypeId> = parsed.new_elements.iter().map(Element::ty).collect();
    assert_eq!(types, vec![TypeId::new(20001, 1), TypeId::new(20003, 1)], "John, then the book");
    let john: Person = parsed.new_elements[0].decode_as().unwrap();
    assert_eq!(john.email.as_deref(), Some("john@example.org"));
    // The book still links the unchanged David by his old key.
    let book: AddressLink = parsed.new_elements[1].decode_as().unwrap();
    let david = r.elements().iter().find(|e| e.decode_as::<Person>().is_ok_and(|p| p.id == Some(5))).unwrap();
    assert_eq!(book.person[0].key, david.key().as_bytes());
    assert_eq!(book.person[1].key, parsed.new_elements[0].key().as_bytes());
}

/// New objects need no `@key`; any link may be written by reference.
#[test]
fn new_objects_and_references_by_hand() {
    let (r, root) = book();
    let david = r.elements().iter().find(|e| e.decode_as::<Person>().is_ok_and(|p| p.id == Some(5))).unwrap().key();
    let doc = json!({
        TYPE: "net.ooici.play.AddressLink",
        "title": "Two",
        "owner": { REF: david.to_hex() },
        "person": [{ TYPE: "net.ooici.play.Person", "name": "Eve", "id": "7" }],
    });
    let parsed = parse(&r, doc).unwrap();
    assert_ne!(parsed.root, root);
    assert_eq!(parsed.new_elements.len(), 2);
    let book: AddressLink = parsed.new_elements[1].decode_as().unwrap();
    assert_eq!(book.owner.unwrap().key, david.as_bytes());
}

/// Objects of excluded types are written as references and read back unchanged.
#[test]
fn excluded_types_are_references() {
    let (r, root) = book();
    let doc = json::render(r.registry(), r.elements(), root, &[TypeId::new(20001, 1)]).unwrap();
    assert!(doc["person"][0].get(REF).is_some() && doc["person"][1].get(REF).is_some(), "{doc}");
    assert_eq!(parse(&r, doc).unwrap().root, root);
}

/// An element whose stored encoding is not canonical keeps its key when its content is
/// unchanged: the `@key` hint is checked against the decoded content.
#[test]
fn non_canonical_encodings_keep_their_keys() {
    let registry = Registry::builtin();
    let person = Person { name: Some("Ann".into()), id: Some(1), email: None, phone: Vec::new() };
    let canonical = person.encode_to_vec();
    // The same fields in reverse order: valid protobuf, other bytes, another key.
    let mut reversed = Person { id: Some(1), ..Default::default() }.encode_to_vec();
    reversed.extend(Person { name: Some("Ann".into()), ..Default::default() }.encode_to_vec());
    assert_ne!(reversed, canonical);
    let odd = Element::build(HashAlgorithm::Sha1, &registry, TypeId::new(20001, 1), reversed).unwrap();
    let mut known = Elements::default();
    known.insert(odd.clone());
    let doc = json::render(&registry, &known, odd.key(), &[]).unwrap();
    let parsed = json::parse(&registry, HashAlgorithm::Sha1, &known, doc.clone()).unwrap();
    assert_eq!(parsed.root, odd.key());
    assert!(parsed.new_elements.is_empty());
    // Changed content gets the canonical encoding's key.
    let mut edited = doc;
    edited["name"] = json!("Anna");
    let parsed = json::parse(&registry, HashAlgorithm::Sha1, &known, edited).unwrap();
    let expected = Person { name: Some("Anna".into()), ..person };
    assert_eq!(parsed.root, HashAlgorithm::Sha1.element_key(&expected.encode_to_vec(), TypeId::new(20001, 1)));
}

fn document_error(result: dsf::Result<json::Parsed>) -> (String, String) {
    match result {
        Err(Error::Document { path, reason }) => (path, reason),
        other => panic!("expected a document error, got {other:?}"),
    }
}

/// Bad documents are refused with the path of the problem and what is wrong.
#[test]
fn bad_documents_say_where_and_why() {
    let (r, root) = book();
    let good = json::render(r.registry(), r.elements(), root, &[]).unwrap();
    let cases: Vec<(Value, &str, &str)> = vec![
        (json!([1, 2]), "root", "expected an object"),
        (json!({ "title": "x" }), "root", "@type"),
        (json!({ TYPE: "no.such.Type" }), "root", "unknown type"),
        (json!({ TYPE: "net.ooici.play.Person", "nmae": "x" }), "root", "nmae"),
        (json!({ TYPE: "net.ooici.play.Person", "id": "seven" }), "root", "id"),
        (json!({ REF: "00" }), "root", "@ref"),
        (json!({ REF: "AB".repeat(20) }), "root", "not in this repository"),
        (json!({ TYPE: "net.ooici.play.AddressLink", "owner": { "key": "AAAA" } }), "root.owner", "a link holds"),
        (json!({ TYPE: "net.ooici.play.Person", KEY: "xyz" }), "root", "@key"),
    ];
    for (doc, path, reason) in cases {
        let (p, why) = document_error(parse(&r, doc.clone()));
        assert_eq!(p, path, "{doc}");
        assert!(why.contains(reason), "{doc}: {why:?} should mention {reason:?}");
    }
    let mut nested = good;
    nested["person"][1]["name"] = json!(5);
    let (p, _) = document_error(parse(&r, nested));
    assert_eq!(p, "root.person[1]");
}

/// Conflict markers go where the merge found the conflicts, carry every side, and a document
/// holding one does not read back.
#[test]
fn conflict_markers() {
    let (r, root) = book();
    let ours = json::render(r.registry(), r.elements(), root, &[]).unwrap();
    let mut theirs = ours.clone();
    theirs["person"][1]["name"] = json!("Johnny");
    theirs["title"] = json!("Pals");
    let conflicts = ["root.person[1].name", "root.title", "root.person[7].name"].map(|path| Conflict {
        path: path.into(),
        base: None,
        ours: None,
        theirs: None,
        taken: Side::Ours,
    });
    let mut doc = ours.clone();
    let unplaced = json::mark_conflicts(&mut doc, Some(&ours), &ours, &theirs, &conflicts);
    assert_eq!(unplaced, vec!["root.person[7].name".to_owned()]);
    let marker = json::at_path(&doc, "root.person[1].name").unwrap();
    assert_eq!(marker["@conflict"]["ours"], "John");
    assert_eq!(marker["@conflict"]["theirs"], "Johnny");
    assert_eq!(marker["@conflict"]["base"], "John");
    let found: Vec<String> = json::conflicts(&doc).into_iter().map(|(p, _)| p).collect();
    assert_eq!(found, vec!["root.person[1].name", "root.title"]);
    let (path, why) = document_error(parse(&r, doc.clone()));
    assert!(why.contains("unresolved merge conflict"), "{why}");
    assert!(path.starts_with("root"), "{path}");
    // Resolving every marker makes it readable again.
    doc["person"][1]["name"] = json!("Johnny");
    doc["title"] = json!("Friends");
    assert!(json::conflicts(&doc).is_empty());
    assert_ne!(parse(&r, doc).unwrap().root, root);
}

/// `references` lists what `@ref` names, so a reader can load it first.
#[test]
fn references_are_listed() {
    let (r, root) = book();
    let doc = json::render(r.registry(), r.elements(), root, &[]).unwrap();
    let david = doc["person"][0][KEY].as_str().unwrap();
    assert_eq!(json::references(&doc), vec![Key::from_hex(david).unwrap()]);
}
