//! Arbitrary bytes as an encoded `StructureElement` whose key is recomputed first, so that
//! mutated values get past key verification into link scanning and the round trips.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsf_fuzz::checks::element_rekeyed(dsf_fuzz::registry(), data);
});
