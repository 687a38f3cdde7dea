//! The engine behind a service: the embedded one (no Redis URL) or the Redis one, with one
//! interface over flow names and encoded payloads.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::registry::FlowDef;
use crate::embedded::Embedded;
use crate::request_id::RequestId;
use crate::state::{RequestState, Transition};

/// Why the engine could not answer.
#[derive(Debug, thiserror::Error)]
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum BackendError {
    /// The store (Redis) is unreachable or failed.
    #[error("{0}")]
    Unavailable(String),
}

#[derive(Clone)]
pub(crate) enum Backend {
    Embedded(Arc<Embedded>),
    #[cfg(feature = "redis")]
    Redis(crate::redis::RedisEngine),
}

#[cfg(feature = "redis")]
impl From<crate::redis::EngineError> for BackendError {
    fn from(error: crate::redis::EngineError) -> Self {
        BackendError::Unavailable(error.to_string())
    }
}

impl Backend {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Backend::Embedded(_) => "embedded",
            #[cfg(feature = "redis")]
            Backend::Redis(_) => "redis",
        }
    }

    /// Starts a request unless one with this id exists; `true` if this call started it.
    pub(crate) async fn submit(
        &self,
        flow: &FlowDef,
        id: &RequestId,
        input: Bytes,
    ) -> Result<bool, BackendError> {
        match self {
            Backend::Embedded(engine) => {
                Ok(engine.submit_encoded((flow.plan)(engine), id.clone(), input))
            }
            #[cfg(feature = "redis")]
            Backend::Redis(engine) => Ok(engine.submit_encoded(flow.name, id, input).await?),
        }
    }

    pub(crate) async fn status(
        &self,
        flow: &FlowDef,
        id: &RequestId,
    ) -> Result<Option<RequestState>, BackendError> {
        match self {
            Backend::Embedded(engine) => Ok(engine.status(flow.name, id)),
            #[cfg(feature = "redis")]
            Backend::Redis(engine) => Ok(engine.status(flow.name, id).await?),
        }
    }

    pub(crate) async fn wait(
        &self,
        flow: &FlowDef,
        id: &RequestId,
        timeout: Duration,
    ) -> Result<Option<RequestState>, BackendError> {
        match self {
            Backend::Embedded(engine) => Ok(engine.wait_state(flow.name, id, timeout).await),
            #[cfg(feature = "redis")]
            Backend::Redis(engine) => Ok(engine.wait_state(flow.name, id, timeout).await?),
        }
    }

    pub(crate) async fn control(
        &self,
        flow: &FlowDef,
        id: &RequestId,
        action: Action,
    ) -> Result<Transition, BackendError> {
        match self {
            Backend::Embedded(engine) => Ok(match action {
                Action::Pause => engine.pause(flow.name, id),
                Action::Resume => engine.resume(flow.name, id),
                Action::Stop => engine.stop(flow.name, id),
            }),
            #[cfg(feature = "redis")]
            Backend::Redis(engine) => Ok(match action {
                Action::Pause => engine.pause(flow.name, id).await?,
                Action::Resume => engine.resume(flow.name, id).await?,
                Action::Stop => engine.stop(flow.name, id).await?,
            }),
        }
    }

    /// Whether the engine can take requests (Redis answers a `PING` within 2 s).
    pub(crate) async fn ready(&self) -> Result<(), BackendError> {
        match self {
            Backend::Embedded(_) => Ok(()),
            #[cfg(feature = "redis")]
            Backend::Redis(engine) => {
                match tokio::time::timeout(Duration::from_secs(2), engine.ping()).await {
                    Ok(answer) => Ok(answer?),
                    Err(_) => Err(BackendError::Unavailable(
                        "redis did not answer PING within 2 s".into(),
                    )),
                }
            }
        }
    }
}

/// Pause, resume or stop.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    Pause,
    Resume,
    Stop,
}
