//! Helpers shared by the tests.

#![allow(dead_code)]

use dsf::proto::net::ooici::play::{Person, person};
use dsf::{Registry, Repository};

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
