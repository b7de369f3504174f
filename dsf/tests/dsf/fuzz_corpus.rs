//! Tests of `fuzz_corpus`.
