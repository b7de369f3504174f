//! Arbitrary bytes as a working-copy document: read, render, read again.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsf_fuzz::checks::document_parse(dsf_fuzz::registry(), data);
});
