//! Payload codecs: how vertex inputs and outputs travel between vertices (and, with the Redis
//! engine, between processes). The default is [`MsgPack`]; [`Json`] is there for inspection.
//! Values passed between vertices are [`Data`].

use bytes::Bytes;

pub use crate::node::Data;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Encodes and decodes the values passed between vertices.
///
/// Every vertex output is encoded once; a fan-out hands the same bytes to each branch, which
/// decodes its own copy. That is why outputs need no `Clone`.
pub trait Codec: Clone + Send + Sync + 'static {
    /// A short name, recorded with stored payloads (`"msgpack"`, `"json"`).
    const NAME: &'static str;

    /// Encodes a value.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, CodecError>;

    /// Decodes a value.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;

    /// Frames separately encoded values as the encoding of the tuple of them, so that a join's
    /// parameters, which arrive from different parents, decode as one tuple.
    fn tuple(&self, parts: &[Bytes]) -> Bytes;
}

/// A value could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{codec} {direction} failed: {message}")]
pub struct CodecError {
    codec: &'static str,
    direction: &'static str,
    message: String,
}

impl CodecError {
    /// An encoding failure reported by `codec`.
    pub fn encode(codec: &'static str, message: &dyn std::fmt::Display) -> Self {
        Self {
            codec,
            direction: "encoding",
            message: message.to_string(),
        }
    }

    /// A decoding failure reported by `codec`.
    pub fn decode(codec: &'static str, message: &dyn std::fmt::Display) -> Self {
        Self {
            codec,
            direction: "decoding",
            message: message.to_string(),
        }
    }
}

/// The capacity an encoding starts with.
const ENCODE_START: usize = 64;

/// The default codec: MessagePack through `rmp-serde`, with struct fields by name.
///
/// Compact and maintained, and self-describing, so `#[serde(flatten)]`, untagged enums and
/// `serde_json::Value` inside user types round-trip (postcard cannot do that). Fields by name
/// let a deployment add an `Option` field to a type while old payloads are still in flight.
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPack;

impl Codec for MsgPack {
    const NAME: &'static str = "msgpack";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, CodecError> {
        // Room for a typical small payload from the start: grown from empty, the buffer is
        // reallocated two or three times on the way to a few dozen bytes.
        let mut out = Vec::with_capacity(ENCODE_START);
        rmp_serde::encode::write_named(&mut out, value)
            .map_err(|e| CodecError::encode(Self::NAME, &e))?;
        Ok(Bytes::from(out))
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        rmp_serde::from_slice(bytes).map_err(|e| CodecError::decode(Self::NAME, &e))
    }

    fn tuple(&self, parts: &[Bytes]) -> Bytes {
        // A tuple is a MessagePack array: a length header, then the elements as they are.
        let len = parts.len();
        let mut out = Vec::with_capacity(5 + parts.iter().map(Bytes::len).sum::<usize>());
        if len < 16 {
            out.push(0x90 | len as u8);
        } else if let Ok(len) = u16::try_from(len) {
            out.push(0xdc);
            out.extend_from_slice(&len.to_be_bytes());
        } else {
            out.push(0xdd);
            out.extend_from_slice(&(len as u32).to_be_bytes());
        }
        for part in parts {
            out.extend_from_slice(part);
        }
        Bytes::from(out)
    }
}

/// JSON through `serde_json`: larger and slower than [`MsgPack`], but readable when inspecting
/// stored payloads.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    const NAME: &'static str = "json";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Bytes, CodecError> {
        serde_json::to_vec(value)
            .map(Bytes::from)
            .map_err(|e| CodecError::encode(Self::NAME, &e))
    }

    /// Errors name the path of the offending field: `user.emails[2]: invalid type: ...`.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let mut deserializer = serde_json::Deserializer::from_slice(bytes);
        let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path == "." {
                CodecError::decode(Self::NAME, &inner)
            } else {
                CodecError::decode(Self::NAME, &format_args!("at `{path}`: {inner}"))
            }
        })?;
        deserializer
            .end()
            .map_err(|e| CodecError::decode(Self::NAME, &e))?;
        Ok(value)
    }

    fn tuple(&self, parts: &[Bytes]) -> Bytes {
        let mut out = Vec::with_capacity(2 + parts.iter().map(|p| p.len() + 1).sum::<usize>());
        out.push(b'[');
        for (i, part) in parts.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(part);
        }
        out.push(b']');
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Profile {
        user: String,
        score: f64,
        #[serde(flatten)]
        extra: BTreeMap<String, serde_json::Value>,
    }

    fn round_trip<C: Codec>(codec: &C) {
        let mut extra = BTreeMap::new();
        extra.insert("tags".to_owned(), serde_json::json!(["a", "b"]));
        let value = Profile {
            user: "alice".into(),
            score: 0.5,
            extra,
        };
        let bytes = codec.encode(&value).unwrap();
        assert_eq!(codec.decode::<Profile>(&bytes).unwrap(), value);
    }

    #[test]
    fn msgpack_round_trips_self_describing_types() {
        round_trip(&MsgPack);
    }

    #[test]
    fn json_round_trips() {
        round_trip(&Json);
    }

    fn tuple_of_parts<C: Codec>(codec: &C, n: usize) {
        let parts: Vec<Bytes> = (0..n)
            .map(|i| codec.encode(&format!("p{i}")).unwrap())
            .collect();
        let decoded: Vec<String> = codec.decode(&codec.tuple(&parts)).unwrap();
        assert_eq!(decoded, (0..n).map(|i| format!("p{i}")).collect::<Vec<_>>());
        if n == 3 {
            let tuple: (String, String, String) = codec.decode(&codec.tuple(&parts)).unwrap();
            assert_eq!(tuple.2, "p2");
        }
    }

    #[test]
    fn separately_encoded_parts_frame_into_a_tuple() {
        for n in [2, 3, 15, 16, 40, 70_000] {
            tuple_of_parts(&MsgPack, n);
            tuple_of_parts(&Json, n);
        }
    }

    #[test]
    fn decoding_garbage_is_an_error_naming_the_codec() {
        let error = MsgPack.decode::<Profile>(b"\xc1").unwrap_err();
        assert!(
            error.to_string().starts_with("msgpack decoding failed"),
            "{error}"
        );
    }
}
