//! The datastore service.

pub mod extract;
