//! The check of the `message_decode` target: ION's AMQP message body (`message.rs` of
//! `dsf-container`). Included by that crate's tests too (`container/tests/container/fuzz.rs`),
//! where `super::message` is `dsf_container::message`.

use super::message::Message;

/// Arbitrary bytes as a message body: decoding never panics, and what decodes encodes to a
/// body that decodes to the same message (compared by encoding, so NaN headers compare equal).
pub fn message_decode(data: &[u8]) {
    let Ok(m) = Message::decode(data) else { return };
    let encoded = m.encode();
    let again = Message::decode(&encoded).expect("an encoded message decodes");
    assert_eq!(again.encode(), encoded, "decode(encode(m)) encodes like m");
    assert_eq!(again.content, m.content);
    assert_eq!(again.headers.reply_to, m.headers.reply_to);
}
