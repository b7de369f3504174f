//! The integration tests of `dsf`, laid out like `src`.

mod common;
mod element;
mod fuzz_corpus;
mod json;
mod merge;
mod properties;
mod repository;
mod structure;
mod sync;
mod types;
mod walk;
