//! Tests of `structure`.
