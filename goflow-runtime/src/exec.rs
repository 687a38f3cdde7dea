//! Running one attempt of a vertex, guarded against panics and timeouts, in its span and with
//! its metrics. Shared by both engines; what happens after an attempt (a retry, the next
//! vertices) is the lifecycle core's and each engine's.

use std::any::Any;
use std::panic::AssertUnwindSafe;

use bytes::Bytes;
use futures_util::FutureExt as _;
use tracing::Instrument as _;

use crate::context::Context;
use crate::error::Failure;
use crate::plan::PlanVertex;

/// The span of one attempt of `vertex`, with stable fields: `flow`, `vertex` (the context's
/// vertex name, with item indices inside `each` bodies: `verify[3]`), `node`,
/// `request_id`, `attempt`, `worker` and `version` (the Redis consumer running it, and the
/// version of the graph it runs; empty on the embedded engine, whose vertex spans are children
/// of their request's span, which has the version), and `outcome` (`ok`, `error`, `timeout`,
/// `panic`) once it ends.
pub(crate) fn vertex_span(vertex: &PlanVertex, ctx: &Context) -> tracing::Span {
    tracing::info_span!(
        "goflow.vertex",
        flow = ctx.flow(),
        vertex = ctx.vertex(),
        node = vertex.node(),
        request_id = ctx.request_id().as_str(),
        attempt = ctx.attempt(),
        worker = tracing::field::Empty,
        version = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

/// Runs one attempt of `vertex` in its own [`vertex_span`]: a panic becomes
/// [`Failure::Panic`], running past the node's timeout drops (cancels) the future and becomes
/// [`Failure::Timeout`].
pub(crate) async fn attempt(
    vertex: &PlanVertex,
    parts: &[Bytes],
    ctx: Context,
) -> Result<Bytes, Failure> {
    let span = vertex_span(vertex, &ctx);
    attempt_in(span, vertex, parts, ctx).await
}

/// [`attempt`] in a span made by the caller (the Redis worker sets its parent first).
pub(crate) async fn attempt_in(
    span: tracing::Span,
    vertex: &PlanVertex,
    parts: &[Bytes],
    ctx: Context,
) -> Result<Bytes, Failure> {
    // Duration, outcome and in-flight gauge (`cancelled` if this future is dropped first).
    let meter = crate::metrics::AttemptMeter::start(vertex.meters());
    let guarded = async {
        // `start` itself may panic (a node's input decoding runs there), so it is inside.
        let run = AssertUnwindSafe(async { vertex.start(parts, ctx).await }).catch_unwind();
        let outcome = match vertex.options().timeout {
            Some(limit) => match tokio::time::timeout(limit, run).await {
                Ok(outcome) => outcome,
                Err(_elapsed) => return Err(Failure::Timeout(limit)),
            },
            None => run.await,
        };
        outcome.unwrap_or_else(|payload| Err(Failure::Panic(panic_message(payload.as_ref()))))
    };
    let result = guarded.instrument(span.clone()).await;
    meter.finish(&result);
    span.record("outcome", crate::metrics::outcome(&result));
    result
}

/// The text of a panic payload (`panic!("...")` gives `&str` or `String`).
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
