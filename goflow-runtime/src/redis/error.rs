//! [`RedisError`]: what can go wrong talking to Redis. The engine's public methods answer
//! [`crate::Error`], whose [`Engine`](crate::Error::Engine) variant carries a `RedisError` as
//! its source.

use crate::codec::CodecError;
use crate::error::Error;

/// An error of the Redis engine: Redis failed, or answered what the engine did not expect.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// Redis could not be reached, or refused a command.
    #[error(transparent)]
    Redis(#[from] fred::error::Error),
    /// Redis answered something the engine did not expect (a bug, or keys written by
    /// something else).
    #[error("unexpected reply from redis: {0}")]
    Protocol(String),
    /// A workflow is not registered with the engine.
    #[error("no workflow named `{0}` is registered with this engine")]
    UnknownFlow(String),
    /// This process splits a workflow into another number of partitions than the one Redis
    /// recorded for it ([`RedisConfig::partitions`](super::RedisConfig::partitions)): its
    /// requests would be looked for in the wrong keys.
    #[error(
        "workflow `{flow}` is split into {recorded} partitions in Redis (key `{key}`), but this \
         process is set to {configured} (RedisConfig::partitions, GOFLOW_REDIS_PARTITIONS): \
         every process of a deployment must use the same number; to change it, see the \
         README's \"Scaling out\""
    )]
    Partitions {
        /// The workflow.
        flow: String,
        /// The key that records the number.
        key: String,
        /// The number recorded in Redis.
        recorded: String,
        /// This process's number.
        configured: u16,
    },
    /// A setting is out of its range.
    #[error("{0}")]
    Setting(String),
    /// A payload could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
}

impl RedisError {
    /// Whether Redis only did not answer in time or could not be reached (a timeout, a
    /// connection lost, a server paused or failing over): what may pass by itself.
    pub(crate) fn is_transient(&self) -> bool {
        use fred::error::ErrorKind;
        matches!(
            self,
            RedisError::Redis(error)
                if matches!(error.kind(), ErrorKind::Timeout | ErrorKind::IO | ErrorKind::Canceled)
        )
    }

    /// The engine-neutral error of workflow `flow` (`""` when none is concerned).
    pub(crate) fn into_error(self, flow: &'static str) -> Error {
        match self {
            RedisError::UnknownFlow(flow) => Error::UnknownFlow { flow },
            RedisError::Codec(source) => Error::Codec { flow, source },
            other => Error::engine(other),
        }
    }
}
