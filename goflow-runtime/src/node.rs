//! The node trait, implemented by `#[node]` for the type it generates beside each node function.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::codec::{Codec, CodecError};
use crate::context::Context;
use crate::error::NodeError;

/// A value that can flow between vertices: encoded by a [`Codec`], and owned, so it can cross
/// threads and (with the Redis engine) processes.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a node input or output",
    label = "`{Self}` must implement `Serialize + DeserializeOwned + Send + 'static`",
    note = "values between vertices are encoded: derive `serde::Serialize` and `serde::Deserialize` for the type, and keep it free of borrows"
)]
///
/// Implemented for every `Serialize + DeserializeOwned + Send + 'static` type. The serde traits
/// are bounds of that impl rather than supertraits so that a type lacking both derives fails
/// one bound with the message above, not one error per missing trait.
pub trait Data: Send + 'static {
    /// Encodes the value with `codec`.
    fn encode_with<C: Codec>(&self, codec: &C) -> Result<Bytes, CodecError>;

    /// Decodes a value with `codec`.
    fn decode_with<C: Codec>(codec: &C, bytes: &[u8]) -> Result<Self, CodecError>
    where
        Self: Sized;
}

#[diagnostic::do_not_recommend]
impl<T: Serialize + DeserializeOwned + Send + 'static> Data for T {
    fn encode_with<C: Codec>(&self, codec: &C) -> Result<Bytes, CodecError> {
        codec.encode(self)
    }

    fn decode_with<C: Codec>(codec: &C, bytes: &[u8]) -> Result<Self, CodecError> {
        codec.decode(bytes)
    }
}

/// One step of a workflow: an async function of its inputs.
///
/// Written by `#[node]`; implement it by hand only for a node the attribute cannot express.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a node or a workflow",
    label = "not a `#[node]` function or a workflow of `workflow!`",
    note = "a vertex of a workflow names an `async fn` marked `#[node]` (which adds a type of its name), or a workflow declared with `workflow!`"
)]
pub trait Node: Send + Sync + 'static {
    /// The node's input: its one parameter's type, or the tuple of its parameters' types when
    /// it takes several (a join).
    type Input: Data;
    /// The node's output (the `T` of a `Result<T, E>` return).
    type Output: Data;
    /// The node's display name (`name = "..."`, else the function's name).
    const NAME: &'static str;
    /// How many input parameters the node takes (a context parameter not counted).
    const ARITY: usize;

    /// Retries, timeout and backoff.
    fn options() -> NodeOptions;

    /// Runs the node once.
    fn call(
        input: Self::Input,
        ctx: Context,
    ) -> impl Future<Output = Result<Self::Output, NodeError>> + Send + 'static;
}

/// Per-node execution options, set with `#[node(retries = 3, timeout = "5s", backoff = "100ms")]`.
///
/// Serialized (in a workflow's graph) with durations in milliseconds: `timeout_ms`,
/// `backoff_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct NodeOptions {
    /// Attempts after the first one, for failures that may pass (errors, timeouts, panics).
    pub retries: u32,
    /// How long one attempt may run before it is cancelled; `None` means no limit.
    #[serde(rename = "timeout_ms", with = "crate::time::option")]
    pub timeout: Option<Duration>,
    /// The delay before the first retry; each later retry doubles it (up to
    /// [`NodeOptions::MAX_BACKOFF`]), then a random jitter of up to half is taken off.
    #[serde(rename = "backoff_ms", with = "crate::time")]
    pub backoff: Duration,
}

impl NodeOptions {
    /// No retries, no timeout, 100 ms base backoff.
    pub const DEFAULT: Self = Self {
        retries: 0,
        timeout: None,
        backoff: Duration::from_millis(100),
    };

    /// These options with `retries` attempts after the first.
    #[must_use]
    pub const fn with_retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// These options with an attempt cancelled after `timeout`.
    #[must_use]
    pub const fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// These options with `backoff` before the first retry.
    #[must_use]
    pub const fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// The longest delay between two attempts.
    pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

    /// How many attempts are allowed in all.
    pub fn max_attempts(&self) -> u32 {
        self.retries.saturating_add(1)
    }

    /// The delay before attempt `next_attempt` (2 for the first retry): exponential, capped,
    /// with "equal jitter" (between half and all of the exponential delay) so that many failed
    /// vertices do not retry in lockstep.
    pub fn backoff_before(&self, next_attempt: u32) -> Duration {
        let doublings = next_attempt.saturating_sub(2).min(30);
        let full = self
            .backoff
            .saturating_mul(1u32 << doublings)
            .min(Self::MAX_BACKOFF);
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

impl Default for NodeOptions {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let options = NodeOptions::DEFAULT
            .with_retries(40)
            .with_backoff(Duration::from_millis(100));
        for _ in 0..100 {
            let first = options.backoff_before(2);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = options.backoff_before(4);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            assert!(options.backoff_before(40) <= NodeOptions::MAX_BACKOFF);
        }
        assert_eq!(options.max_attempts(), 41);
    }
}
