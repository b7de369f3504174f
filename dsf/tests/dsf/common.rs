//! Helpers shared by the tests.

#![allow(dead_code)]

use dsf::proto::net::ooici::play::{AddressLink, Person, person};
use dsf::{ObjectId, Registry, Repository};

/// A repository on the built-in registry.
pub fn repo() -> Repository {
    Repository::new(Registry::builtin())
}

/// A person with a name and an id.
pub fn person(name: &str, id: i32) -> Person {
    Person { name: Some(name.into()), id: Some(id), email: None, phone: Vec::new() }
}

/// A person with one phone number.
pub fn person_with_phone(name: &str, id: i32, number: &str, ty: person::PhoneType) -> Person {
    Person {
        name: Some(name.into()),
        id: Some(id),
        email: None,
        phone: vec![person::PhoneNumber { number: Some(number.into()), r#type: Some(ty as i32) }],
    }
}

/// Creates an AddressLink titled `title` with three links to two persons (David is in the list
/// and is the owner); returns (book, [david, john]). The root is not set.
pub fn address_book_in(repo: &mut Repository, title: &str) -> (ObjectId, [ObjectId; 2]) {
    let p1 = repo.create(&person("David", 5)).unwrap();
    let p2 = repo.create(&person("John", 6)).unwrap();
    let book = AddressLink {
        person: vec![repo.link(p1).unwrap(), repo.link(p2).unwrap()],
        owner: Some(repo.link(p1).unwrap()),
        title: Some(title.into()),
    };
    (repo.create(&book).unwrap(), [p1, p2])
}
