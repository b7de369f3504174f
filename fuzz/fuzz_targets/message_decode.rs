//! Arbitrary bytes as an ION AMQP message body (msgpack headers and content).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    dsf_fuzz::message_checks::message_decode(data);
});
