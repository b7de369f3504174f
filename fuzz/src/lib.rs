//! Fuzz targets of `dsf` (and of the AMQP message body of `dsf-container`) and the generator of
//! their seed corpus.
//!
//! The checks live in [`checks`], a file the corpus replay tests of `dsf`
//! (`dsf/tests/dsf/fuzz_corpus.rs`) include as well, so the fuzz targets and the tests run the
//! same properties.

use std::sync::OnceLock;

pub mod checks;
pub mod seeds;

/// ION's AMQP message body, from `dsf-container` (included as a file: that crate links RocksDB,
/// which the fuzz build should not compile).
#[path = "../../container/src/message.rs"]
pub mod message;
pub mod message_checks;

/// The built-in registry, built once per process.
pub fn registry() -> &'static dsf::Registry {
    static REGISTRY: OnceLock<dsf::Registry> = OnceLock::new();
    REGISTRY.get_or_init(dsf::Registry::builtin)
}
