//! Tests of `repository`.
