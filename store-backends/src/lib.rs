//! Storage engines for DSF repositories: the embedded RocksDB default and Apache Cassandra,
//! and the conformance suite every engine must pass.
//!
//! This crate maps the storage contract of `dsf` onto engines. It never computes keys and
//! never decodes objects. The contract and the engines are not written yet: DSF repositories
//! currently live in memory only (see `ARCHITECTURE.md`).

pub mod cassandra;
pub mod rocks;
