//! Running a vertex: one attempt guarded against panics and timeouts, and the retry loop with
//! backoff. Shared by both engines.

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
/// `request_id`, `attempt`, `worker` (the Redis consumer running it; empty on the embedded
/// engine), and `outcome` (`ok`, `error`, `timeout`, `panic`) once it ends.
pub fn vertex_span(vertex: &PlanVertex, ctx: &Context) -> tracing::Span {
    tracing::info_span!(
        "goflow.vertex",
        flow = ctx.flow(),
        vertex = ctx.vertex(),
        node = vertex.node(),
        request_id = ctx.request_id().as_str(),
        attempt = ctx.attempt(),
        worker = tracing::field::Empty,
        outcome = tracing::field::Empty,
    )
}

/// Runs one attempt of `vertex` in its own [`vertex_span`]: a panic becomes
/// [`Failure::Panic`], running past the node's timeout drops (cancels) the future and becomes
/// [`Failure::Timeout`].
pub async fn attempt(vertex: &PlanVertex, parts: &[Bytes], ctx: Context) -> Result<Bytes, Failure> {
    let span = vertex_span(vertex, &ctx);
    attempt_in(span, vertex, parts, ctx).await
}

/// [`attempt`] in a span made by the caller (the Redis worker sets its parent first).
pub async fn attempt_in(
    span: tracing::Span,
    vertex: &PlanVertex,
    parts: &[Bytes],
    ctx: Context,
) -> Result<Bytes, Failure> {
    // Duration, outcome and in-flight gauge (`cancelled` if this future is dropped first).
    let meter = crate::metrics::AttemptMeter::start(ctx.flow(), vertex.path());
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
    span.record(
        "outcome",
        match &result {
            Ok(_) => "ok",
            Err(Failure::Timeout(_)) => "timeout",
            Err(Failure::Panic(_)) => "panic",
            Err(_) => "error",
        },
    );
    result
}

/// The outcome of running a vertex with its retries.
#[derive(Debug)]
pub struct Outcome {
    /// How many attempts ran.
    pub attempts: u32,
    /// The encoded output, or the last attempt's failure.
    pub result: Result<Bytes, Failure>,
}

/// Runs `vertex` until it succeeds, fails permanently, or has used its attempts, sleeping the
/// node's backoff between attempts. Cancelling `ctx` ends the wait for a retry.
///
/// `on_retry(failed_attempt, failure)` is called before each wait for a retry (the embedded
/// engine records it in the request's state).
pub async fn with_retries(
    vertex: &PlanVertex,
    parts: &[Bytes],
    ctx: &Context,
    on_retry: impl Fn(u32, &Failure),
) -> Outcome {
    let max_attempts = vertex.options().max_attempts();
    let mut attempt_no = ctx.attempt().max(1);
    loop {
        let result = attempt(vertex, parts, ctx.with_attempt(attempt_no)).await;
        match result {
            Err(failure) if failure.is_retryable() && attempt_no < max_attempts => {
                tracing::debug!(vertex = &**vertex.path(), attempt = attempt_no, %failure, "retrying");
                on_retry(attempt_no, &failure);
                let delay = vertex.options().backoff_before(attempt_no + 1);
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = ctx.cancelled() => {
                        return Outcome { attempts: attempt_no, result: Err(failure) };
                    }
                }
                attempt_no += 1;
            }
            result => {
                return Outcome {
                    attempts: attempt_no,
                    result,
                }
            }
        }
    }
}

/// The text of a panic payload (`panic!("...")` gives `&str` or `String`).
pub fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}
