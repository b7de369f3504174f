//! Tests of `types`.
