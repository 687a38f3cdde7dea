//! Errors: [`NodeError`] is what a node returns, [`Error`] is what running a workflow returns.

use std::fmt;
use std::time::Duration;

use crate::codec::CodecError;
use crate::lifecycle::{Control, RequestStatus};
use crate::request::RequestFailure;
use crate::request_id::RequestId;

/// The error a node returns.
///
/// Any `std::error::Error + Send + Sync + 'static` converts into it, so `?` works inside a node
/// on I/O, parsing and client errors alike. Like `anyhow::Error`, `NodeError` does not implement
/// `std::error::Error` itself: that is what makes the blanket conversion possible.
///
/// By default a failed attempt is retried as the node's `retries` option allows;
/// [`NodeError::permanent`] marks a failure that no retry can fix (bad input, say).
pub struct NodeError {
    message: String,
    permanent: bool,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl NodeError {
    /// A failure with this message, retried if the node allows retries.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            permanent: false,
            source: None,
        }
    }

    /// A failure that retrying cannot fix: the vertex fails at once, whatever its `retries`.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            permanent: true,
            ..Self::new(message)
        }
    }

    /// The message, as recorded in the request's failure.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether retries are skipped for this failure.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The error this one was converted from, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for NodeError {
    fn from(error: E) -> Self {
        // The chain of sources is part of the message: it is what a user reads in a failure.
        Self {
            message: chain(&error),
            permanent: false,
            source: Some(Box::new(error)),
        }
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeError")
            .field("message", &self.message)
            .field("permanent", &self.permanent)
            .finish()
    }
}

/// Why one attempt of a vertex failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Failure {
    /// The node returned an error; the message is the error's.
    Error(String),
    /// The node returned an error marked [`NodeError::permanent`].
    Permanent(String),
    /// The attempt ran longer than the node's `timeout` and was cancelled.
    Timeout(#[serde(with = "crate::time")] Duration),
    /// The node panicked; the message is the panic's payload when it was a string.
    Panic(String),
    /// The vertex's input could not be decoded into the node's parameter types, or its output
    /// could not be encoded.
    Codec(String),
    /// With the Redis engine: this many deliveries of the vertex ended with their worker
    /// (it crashed or was killed) before finishing, more than the engine allows.
    Lost(u32),
    /// The request grew past one of its engine's limits (a for-each's items, a vertex's
    /// output): see [`Limits`](crate::request::Limits). Not retried.
    Limit(String),
    /// With the Redis engine: the request was submitted on another graph of the workflow
    /// than the worker's (a deploy changed it), so the worker did not run its vertices; the
    /// detail names both graphs' structural hashes.
    Version(String),
}

impl Failure {
    /// Whether another attempt could succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Failure::Error(_) | Failure::Timeout(_) | Failure::Panic(_)
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error(message) | Failure::Permanent(message) => f.write_str(message),
            Failure::Timeout(limit) => write!(f, "timed out after {limit:?}"),
            Failure::Panic(message) => write!(f, "panicked: {message}"),
            Failure::Codec(message) => write!(f, "payload codec error: {message}"),
            Failure::Lost(deliveries) => write!(
                f,
                "lost: {deliveries} deliveries ended with their worker before finishing"
            ),
            Failure::Limit(detail) => write!(f, "over a limit: {detail}"),
            Failure::Version(detail) => write!(
                f,
                "submitted on another graph of the workflow than this worker's: {detail}"
            ),
        }
    }
}

impl From<NodeError> for Failure {
    fn from(error: NodeError) -> Self {
        if error.permanent {
            Failure::Permanent(error.message)
        } else {
            Failure::Error(error.message)
        }
    }
}

impl From<CodecError> for Failure {
    fn from(error: CodecError) -> Self {
        Failure::Codec(error.to_string())
    }
}

/// The error of running, submitting, reading or controlling a request, on either engine.
///
/// Following the convention of `std` and thiserror, the message of a variant does not repeat
/// its [`source`](std::error::Error::source): print the chain (anyhow and eyre do) for the
/// whole story.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A vertex failed on its last allowed attempt, which failed the whole request.
    #[error(
        "request `{request_id}` of `{flow}` failed at vertex `{}` after {} attempt(s): {}",
        failure.vertex,
        failure.attempts,
        failure.failure
    )]
    Failed {
        /// The workflow's name.
        flow: &'static str,
        /// The request.
        request_id: RequestId,
        /// Which vertex failed, after how many attempts, and why.
        failure: RequestFailure,
    },
    /// The request was stopped before it completed.
    #[error("request `{request_id}` of `{flow}` was stopped")]
    Stopped {
        /// The workflow's name.
        flow: &'static str,
        /// The request.
        request_id: RequestId,
    },
    /// No such request: never submitted, or its state has expired.
    #[error("no request `{request_id}` of `{flow}` (never submitted, or expired)")]
    UnknownRequest {
        /// The workflow's name.
        flow: &'static str,
        /// The request.
        request_id: RequestId,
    },
    /// The engine does not run a workflow of this name (the Redis engine runs those
    /// registered with it).
    #[error("no workflow named `{flow}` is registered with this engine")]
    UnknownFlow {
        /// The name asked for.
        flow: String,
    },
    /// The action does not apply to the request's status (pausing a finished request, resuming
    /// a running one, retrying one that has not ended).
    #[error(
        "cannot {} request `{request_id}` of `{flow}`: it is {status}{}",
        action.verb(),
        crate::lifecycle::why_not(*action, *status)
    )]
    Conflict {
        /// The workflow's name.
        flow: &'static str,
        /// The request.
        request_id: RequestId,
        /// What was asked.
        action: Control,
        /// The request's status, from which `action` does not apply.
        status: RequestStatus,
    },
    /// A retry from the start must wait: an entry or an attempt of the request's last run is
    /// still under way (the Redis engine's workers drop or cancel those of an ended request as
    /// soon as they see them), and would run on inputs the retry forgets.
    #[error(
        "cannot retry request `{request_id}` of `{flow}` from the start yet: `{vertex}` of its \
         last run is still under way (workers settle it shortly); try again in a moment"
    )]
    StillEnding {
        /// The workflow's name.
        flow: &'static str,
        /// The request.
        request_id: RequestId,
        /// The vertex instance still under way.
        vertex: String,
    },
    /// A version of a workflow's graph cannot be forgotten: it is this engine's, it has
    /// requests under way, or live workers.
    #[error("version {version} of `{flow}` is not forgotten: {reason}")]
    VersionInUse {
        /// The workflow's name.
        flow: &'static str,
        /// The version (structural hash).
        version: String,
        /// What still uses it.
        reason: String,
    },
    /// A request cannot move to this engine's version of its workflow's graph: its progress
    /// does not carry over (see [`Refusal`]), or not yet.
    #[error(
        "cannot migrate request `{request_id}` of `{flow}` from version {from} to {to}: {refusal}"
    )]
    NotMigrated {
        /// The workflow's name.
        flow: &'static str,
        /// The request.
        request_id: RequestId,
        /// The request's version.
        from: String,
        /// This engine's version.
        to: String,
        /// Why not (boxed: errors stay small).
        refusal: Box<Refusal>,
    },
    /// The workflow's input could not be encoded or its output decoded.
    #[error("workflow `{flow}`: a payload could not be encoded or decoded")]
    Codec {
        /// The workflow's name.
        flow: &'static str,
        /// What the codec reported.
        #[source]
        source: CodecError,
    },
    /// The engine's storage or transport failed (Redis unreachable, say). Whether the
    /// operation took effect is unknown: retry it with the same request id.
    #[error("the engine's storage failed")]
    Engine {
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// The engine itself broke an invariant; this is a bug in goflow, please report it.
    #[error("workflow `{flow}`: internal engine error: {message}")]
    Internal {
        /// The workflow's name.
        flow: &'static str,
        /// What went wrong.
        message: String,
    },
}

/// Why a request cannot move to another version of its workflow's graph
/// ([`Error::NotMigrated`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refusal {
    /// Its progress does not carry over: the first vertex (by its path) where it does not.
    /// Compared from the two graphs: a vertex where the request has made progress must have
    /// the same path, node, input and output types and inputs in the new graph, and no vertex
    /// new to it may take the output of one the request has already completed.
    #[error("`{vertex}` {reason}")]
    Incompatible {
        /// The vertex, by its path.
        vertex: String,
        /// Why, as a sentence that follows the vertex's name.
        reason: String,
    },
    /// An attempt is running on a live worker of the request's version; once it has ended,
    /// the request can move.
    #[error("`{vertex}` is running on a live worker of its version; migrate once it has ended")]
    Running {
        /// The vertex instance running (`verify[3]`).
        vertex: String,
    },
    /// It has completed: nothing of it is left to run.
    #[error("it has completed")]
    Completed,
    /// The graph of the request's version is not known: none of its workers wrote it, or an
    /// earlier goflow did, without what a migration compares.
    #[error(
        "the graph of its version is not known here (none of its workers has written it with \
         this goflow); retry the request from the start instead"
    )]
    UnknownGraph,
}

impl Error {
    /// The failure of the vertex that failed the request, if that is what happened.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Error::Failed { failure, .. } => Some(&failure.failure),
            _ => None,
        }
    }

    /// An [`Error::Engine`] from the storage's own error.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn engine(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Engine {
            source: Box::new(source),
        }
    }

    /// An [`Error::Codec`] of workflow `flow`.
    pub(crate) fn codec(flow: &'static str) -> impl Fn(CodecError) -> Self {
        move |source| Error::Codec { flow, source }
    }
}

/// An error and its chain of sources, one after the other (`a: b: c`): what logs and HTTP
/// answers show.
pub(crate) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn conversion_keeps_the_source_chain_in_the_message() {
        let error = NodeError::from(Outer(std::io::Error::other("disk full")));
        assert_eq!(error.message(), "outer: disk full");
        assert!(!error.is_permanent());
        assert!(error.source().is_some());
    }

    #[test]
    fn permanent_failures_are_not_retryable() {
        assert!(!Failure::from(NodeError::permanent("bad input")).is_retryable());
        assert!(Failure::from(NodeError::new("flaky")).is_retryable());
        assert!(Failure::Timeout(Duration::from_secs(1)).is_retryable());
    }
}
