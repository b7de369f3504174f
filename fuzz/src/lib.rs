//! Fuzz targets of `dsf` and the generator of their seed corpus.
//!
//! The checks live in [`checks`], a file the corpus replay tests of `dsf`
//! (`dsf/tests/dsf/fuzz_corpus.rs`) include as well, so the fuzz targets and the tests run the
//! same properties.

use std::sync::OnceLock;

pub mod checks;
pub mod seeds;

/// The built-in registry, built once per process.
pub fn registry() -> &'static dsf::Registry {
    static REGISTRY: OnceLock<dsf::Registry> = OnceLock::new();
    REGISTRY.get_or_init(dsf::Registry::builtin)
}
