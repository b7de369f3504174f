//! Arbitrary bytes as an encoded `StructureElement`: decode, verify, round-trip.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsf_fuzz::checks::element_verify(dsf_fuzz::registry(), data);
});
