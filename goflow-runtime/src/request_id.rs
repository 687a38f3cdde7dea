//! Request ids: generated, or chosen by a client and validated before they reach any key.

use std::fmt;
use std::sync::Arc;

/// The id of one workflow request: 1 to 64 characters of `[A-Za-z0-9_-]`.
///
/// Ids end up inside storage keys, so a client-chosen id is validated by [`RequestId::parse`];
/// nothing else constructs one from a string. Generated ids are UUIDv7 (time-ordered).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The longest request id accepted.
    pub const MAX_LEN: usize = 64;

    /// A fresh, unique, time-ordered id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().simple().to_string().into())
    }

    /// Validates a client-chosen id.
    pub fn parse(id: &str) -> Result<Self, InvalidRequestId> {
        let valid = !id.is_empty()
            && id.len() <= Self::MAX_LEN
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if valid {
            Ok(Self(id.into()))
        } else {
            Err(InvalidRequestId(id.chars().take(80).collect()))
        }
    }

    /// The empty id, which sorts before every id and names no request: a bound for ranges
    /// of ids.
    pub(crate) fn before_all() -> Self {
        Self("".into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RequestId {
    type Err = InvalidRequestId;

    /// [`RequestId::parse`].
    fn from_str(id: &str) -> Result<Self, InvalidRequestId> {
        Self::parse(id)
    }
}

impl TryFrom<&str> for RequestId {
    type Error = InvalidRequestId;

    /// [`RequestId::parse`].
    fn try_from(id: &str) -> Result<Self, InvalidRequestId> {
        Self::parse(id)
    }
}

// `Eq`, `Ord` and `Hash` are those of the text, so maps keyed by id can be read with a `&str`.
impl std::borrow::Borrow<str> for RequestId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for RequestId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequestId({})", self.0)
    }
}

impl serde::Serialize for RequestId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for RequestId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A string that is not a valid [`RequestId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid request id `{0}`: expected 1 to 64 characters of `A-Z`, `a-z`, `0-9`, `_`, `-`")]
pub struct InvalidRequestId(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_valid_and_unique() {
        let a = RequestId::generate();
        let b = RequestId::generate();
        assert_ne!(a, b);
        assert_eq!(RequestId::parse(a.as_str()).unwrap(), a);
    }

    #[test]
    fn rejects_ids_that_could_reach_a_key_pattern() {
        for bad in ["", "a*", "a b", "{tag}", "x:y", "é", &"a".repeat(65)] {
            assert!(RequestId::parse(bad).is_err(), "{bad:?} accepted");
        }
        assert!(RequestId::parse(&"a".repeat(64)).is_ok());
        assert!(RequestId::parse("order-42_B").is_ok());
        assert_eq!(
            "order-42".parse::<RequestId>().unwrap().as_str(),
            "order-42"
        );
        assert!(RequestId::try_from("a b").is_err());
    }
}
