//! ION's AMQP message body (spec §1.6): one msgpack map holding every header and the
//! `content` bytes.
//!
//! Decoding accepts msgpack `str` and `bin` for every text header (ION's msgpack packed text
//! as raw bytes) and an integer or a decimal string for `conv-seq`; unknown headers are kept.
//! Encoding writes text headers as `str` and `content` as `bin`.

use bytes::Bytes;
use rmpv::Value;

/// `encoding` of DSF content: a serialised `Structure`.
pub const ENCODING_GPB: &str = "ION R1 GPB";

/// The headers of one message. Field names follow ION's header names (`reply-to` is
/// `reply_to`, and so on).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub struct Headers {
    pub sender: String,
    pub sender_name: String,
    pub receiver: String,
    pub reply_to: String,
    pub encoding: String,
    pub language: String,
    pub format: String,
    pub ontology: String,
    pub user_id: String,
    pub expiry: String,
    pub conv_id: String,
    pub conv_seq: i64,
    pub protocol: String,
    pub status: String,
    pub ts: String,
    pub performative: String,
    pub op: String,
    pub quiet: Option<bool>,
    /// Headers this implementation does not know, kept as they came.
    pub other: Vec<(String, Value)>,
}

impl Default for Headers {
    fn default() -> Headers {
        Headers {
            sender: String::new(),
            sender_name: String::new(),
            receiver: String::new(),
            reply_to: String::new(),
            encoding: ENCODING_GPB.to_owned(),
            language: "ion1".to_owned(),
            format: "raw".to_owned(),
            ontology: String::new(),
            user_id: "ANONYMOUS".to_owned(),
            expiry: "0".to_owned(),
            conv_id: String::new(),
            conv_seq: 1,
            protocol: "rpc".to_owned(),
            status: "OK".to_owned(),
            ts: String::new(),
            performative: "request".to_owned(),
            op: String::new(),
            quiet: None,
            other: Vec::new(),
        }
    }
}

impl Headers {
    /// True for RPC replies (`inform_result` or `failure`).
    pub fn is_reply(&self) -> bool {
        self.performative == "inform_result" || self.performative == "failure" || self.op == "result"
    }
}

/// A message: headers and content.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// The headers.
    pub headers: Headers,
    /// The content (a serialised `Structure` for DSF operations).
    pub content: Bytes,
}

/// Why a message body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed message body: {0}")]
pub struct BodyError(pub String);

impl Message {
    /// Encodes the body: a msgpack map of every header plus `content`.
    pub fn encode(&self) -> Vec<u8> {
        let h = &self.headers;
        let text = |k: &str, v: &str| (Value::from(k), Value::from(v));
        let mut map = vec![
            text("sender", &h.sender),
            text("sender-name", &h.sender_name),
            text("receiver", &h.receiver),
            text("reply-to", &h.reply_to),
            text("encoding", &h.encoding),
            text("language", &h.language),
            text("format", &h.format),
            text("ontology", &h.ontology),
            text("user-id", &h.user_id),
            text("expiry", &h.expiry),
            text("conv-id", &h.conv_id),
            (Value::from("conv-seq"), Value::from(h.conv_seq)),
            text("protocol", &h.protocol),
            text("status", &h.status),
            text("ts", &h.ts),
            text("performative", &h.performative),
            text("op", &h.op),
        ];
        if let Some(q) = h.quiet {
            map.push((Value::from("quiet"), Value::from(q)));
        }
        for (k, v) in &h.other {
            map.push((Value::from(k.as_str()), v.clone()));
        }
        map.push((Value::from("content"), Value::Binary(self.content.to_vec())));
        let mut out = Vec::with_capacity(self.content.len() + 512);
        rmpv::encode::write_value(&mut out, &Value::Map(map)).expect("writing to a Vec cannot fail");
        out
    }

    /// Decodes a body. Missing headers take ION's defaults; a body that is not a msgpack map,
    /// or a header of the wrong kind, is an error.
    pub fn decode(body: &[u8]) -> Result<Message, BodyError> {
        let mut reader = body;
        let value = rmpv::decode::read_value(&mut reader).map_err(|e| BodyError(format!("not msgpack: {e}")))?;
        if !reader.is_empty() {
            return Err(BodyError(format!("{} bytes after the msgpack map", reader.len())));
        }
        let Value::Map(entries) = value else { return Err(BodyError("not a msgpack map".into())) };
        let mut h = Headers { encoding: "json".to_owned(), ..Headers::default() };
        let mut content = None;
        let mut reply_to = None;
        for (k, v) in entries {
            let key = bytes_of(&k).ok_or_else(|| BodyError("a header name that is not text".into()))?;
            let key = String::from_utf8_lossy(key).into_owned();
            let text = |v: &Value| -> Result<String, BodyError> {
                match v {
                    Value::Nil => Ok(String::new()),
                    Value::Integer(i) => Ok(i.to_string()),
                    _ => bytes_of(v)
                        .map(|b| String::from_utf8_lossy(b).into_owned())
                        .ok_or_else(|| BodyError(format!("header {key:?} is not text"))),
                }
            };
            match key.as_str() {
                "content" => {
                    content = Some(match &v {
                        Value::Nil => Bytes::new(),
                        _ => Bytes::copy_from_slice(
                            bytes_of(&v).ok_or_else(|| BodyError("content is not bytes".into()))?,
                        ),
                    })
                }
                "sender" => h.sender = text(&v)?,
                "sender-name" => h.sender_name = text(&v)?,
                "receiver" => h.receiver = text(&v)?,
                "reply-to" => reply_to = Some(text(&v)?),
                "encoding" => h.encoding = text(&v)?,
                "language" => h.language = text(&v)?,
                "format" => h.format = text(&v)?,
                "ontology" => h.ontology = text(&v)?,
                "user-id" => h.user_id = text(&v)?,
                "expiry" => h.expiry = text(&v)?,
                "conv-id" => h.conv_id = text(&v)?,
                "conv-seq" => {
                    h.conv_seq = match &v {
                        Value::Integer(i) => i.as_i64(),
                        _ => text(&v)?.trim().parse().ok(),
                    }
                    .ok_or_else(|| BodyError("conv-seq is not an integer".into()))?
                }
                "protocol" => h.protocol = text(&v)?,
                "status" => h.status = text(&v)?,
                "ts" => h.ts = text(&v)?,
                "performative" => h.performative = text(&v)?,
                "op" => h.op = text(&v)?,
                "quiet" => h.quiet = v.as_bool(),
                _ => h.other.push((key, v)),
            }
        }
        // `reply-to` defaults to the sender (spec §1.6).
        h.reply_to = reply_to.filter(|r| !r.is_empty()).unwrap_or_else(|| h.sender.clone());
        Ok(Message { headers: h, content: content.unwrap_or_default() })
    }
}

fn bytes_of(v: &Value) -> Option<&[u8]> {
    match v {
        Value::String(s) => Some(s.as_bytes()),
        Value::Binary(b) => Some(b),
        _ => None,
    }
}

/// Milliseconds since the epoch, as ION's `ts` header carries them.
pub fn timestamp() -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    now.as_millis().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_header_round_trips() {
        let m = Message {
            headers: Headers {
                sender: "c1.3".into(),
                sender_name: "client".into(),
                receiver: "sys.datastore".into(),
                reply_to: "c1.3".into(),
                conv_id: "c1.3#7".into(),
                conv_seq: 2,
                ts: timestamp(),
                op: "push".into(),
                quiet: Some(true),
                other: vec![("x-extra".into(), Value::from(5))],
                ..Headers::default()
            },
            content: Bytes::from_static(b"\x0a\x00"),
        };
        assert_eq!(Message::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn ion_style_raw_text_and_defaults() {
        // A body as old msgpack writers produced it: text as raw bytes, few headers.
        let v = Value::Map(vec![
            (Value::Binary(b"sender".to_vec()), Value::Binary(b"p.1".to_vec())),
            (Value::Binary(b"op".to_vec()), Value::Binary(b"pull".to_vec())),
            (Value::Binary(b"conv-seq".to_vec()), Value::Binary(b"1".to_vec())),
            (Value::Binary(b"content".to_vec()), Value::Binary(vec![1, 2, 3])),
        ]);
        let mut body = Vec::new();
        rmpv::encode::write_value(&mut body, &v).unwrap();
        let m = Message::decode(&body).unwrap();
        assert_eq!(m.headers.reply_to, "p.1", "reply-to defaults to the sender");
        assert_eq!(m.headers.op, "pull");
        assert_eq!(m.headers.encoding, "json", "ION's default encoding when absent");
        assert_eq!(m.content.as_ref(), &[1, 2, 3]);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for body in [&b""[..], b"\xc1", b"\x93\x01\x02\x03", b"\x81\x01\x02", b"\x81\xa7content\x05"] {
            assert!(Message::decode(body).is_err(), "{body:?}");
        }
    }
}
