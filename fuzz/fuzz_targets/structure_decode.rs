//! Arbitrary bytes as a `Structure` message envelope: decode, and unpack what decodes.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsf_fuzz::checks::structure_decode(dsf_fuzz::registry(), data);
});
