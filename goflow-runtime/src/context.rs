//! What a node can know about the execution it is part of.

use std::sync::{Arc, OnceLock};

use tokio_util::sync::CancellationToken;

use crate::request_id::RequestId;

/// The execution context of one attempt of one vertex.
///
/// A node receives it by taking a parameter of type `Context` (by value; it is cheap to clone):
///
/// ```
/// use goflow_runtime::{Context, NodeError};
/// # struct Charge; struct Receipt;
/// async fn charge(ctx: Context, order: Charge) -> Result<Receipt, NodeError> {
///     // Stable across retries and redeliveries: use it to make side effects idempotent.
///     let _key = ctx.idempotency_key();
///     tokio::select! {
///         _ = ctx.cancelled() => Err(NodeError::permanent("stopped")),
///         receipt = async { Receipt } => Ok(receipt),
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Context {
    inner: Arc<Inner>,
    attempt: u32,
}

struct Inner {
    flow: &'static str,
    request_id: RequestId,
    vertex: Arc<str>,
    /// Built on first use: most nodes never ask, and every vertex run makes a context.
    idempotency_key: OnceLock<String>,
    cancel: CancellationToken,
}

impl Context {
    /// A context for `attempt` (1-based) of `vertex` in `request_id`.
    pub fn new(
        flow: &'static str,
        request_id: RequestId,
        vertex: Arc<str>,
        attempt: u32,
        cancel: CancellationToken,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                flow,
                request_id,
                vertex,
                idempotency_key: OnceLock::new(),
                cancel,
            }),
            attempt,
        }
    }

    /// A context outside any engine, for calling a node function that takes a `Context`
    /// directly (in a unit test, say): flow `"test"`, a fresh request id, attempt 1, never
    /// cancelled.
    pub fn for_test(vertex: &str) -> Self {
        Self::new(
            "test",
            RequestId::generate(),
            Arc::from(vertex),
            1,
            CancellationToken::new(),
        )
    }

    /// The token that cancels this attempt (the engine's handle on it).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn cancellation(&self) -> CancellationToken {
        self.inner.cancel.clone()
    }

    /// The same context for another attempt.
    pub(crate) fn with_attempt(&self, attempt: u32) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            attempt,
        }
    }

    /// The workflow's name.
    pub fn flow(&self) -> &'static str {
        self.inner.flow
    }

    /// The request this execution belongs to.
    pub fn request_id(&self) -> &RequestId {
        &self.inner.request_id
    }

    /// The vertex's path in the workflow (`verify/face_match` inside a sub-workflow).
    pub fn vertex(&self) -> &str {
        &self.inner.vertex
    }

    /// The attempt number, starting at 1.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// `flow:request:vertex`: the same for every attempt and every redelivery of this vertex in
    /// this request, and different for any other. Use it to deduplicate side effects.
    pub fn idempotency_key(&self) -> &str {
        let inner = &*self.inner;
        inner
            .idempotency_key
            .get_or_init(|| format!("{}:{}:{}", inner.flow, inner.request_id, inner.vertex))
    }

    /// Whether the request was stopped or has failed elsewhere; a long node should give up.
    pub fn is_cancelled(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }

    /// Completes when the request is stopped or has failed elsewhere.
    pub async fn cancelled(&self) {
        self.inner.cancel.cancelled().await;
    }
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("flow", &self.inner.flow)
            .field("request_id", &self.inner.request_id)
            .field("vertex", &self.inner.vertex)
            .field("attempt", &self.attempt)
            .finish()
    }
}
