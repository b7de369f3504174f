//! Arbitrary bytes as a `Structure` whose element keys are recomputed first, so that mutated
//! graphs get past key verification into unpacking and packing.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsf_fuzz::checks::structure_rekeyed(dsf_fuzz::registry(), data);
});
