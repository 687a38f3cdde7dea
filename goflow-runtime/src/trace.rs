//! W3C trace context (`traceparent`) for requests whose vertices run in other tasks or other
//! processes, so that one request is one trace.
//!
//! Without the `otel` feature, ids are generated so that every hop of a request still carries
//! the request's trace id. With it, `tracing` spans are bridged to OpenTelemetry
//! (`tracing-opentelemetry`): a request's trace context is the context of the span that
//! submitted it (under the HTTP request's span when submitted over HTTP), each vertex span's
//! parent is the context its stream entry carried, and a vertex passes its own span's context
//! on to the successors it enqueues.

// The HTTP layer only sets parents, and the embedded engine only reads a span's trace id; the
// rest serves the Redis engine.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

/// A `traceparent` continuing `trace` (32 hex digits) with a fresh span id, or starting a new
/// trace.
pub(crate) fn generated(trace: Option<&str>) -> String {
    let trace = match trace {
        Some(t) if t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()) => t.to_owned(),
        _ => format!("{:032x}", fastrand::u128(1..)),
    };
    format!("00-{trace}-{:016x}-01", fastrand::u64(1..))
}

/// The trace id inside a `traceparent`.
pub(crate) fn trace_id(traceparent: &str) -> Option<&str> {
    traceparent.split('-').nth(1)
}

/// The `traceparent` of `span`, when it is recorded by an OpenTelemetry layer.
#[cfg(feature = "otel")]
pub(crate) fn of_span(span: &tracing::Span) -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            span_context.trace_id(),
            span_context.span_id(),
            span_context.trace_flags().to_u8()
        )
    })
}

/// Without the `otel` feature, spans carry no exportable context.
#[cfg(not(feature = "otel"))]
pub(crate) fn of_span(_span: &tracing::Span) -> Option<String> {
    None
}

/// Makes the context in `traceparent` the parent of `span` (a remote parent: the span that
/// enqueued this work, possibly in another process).
#[cfg(feature = "otel")]
pub(crate) fn set_parent(span: &tracing::Span, traceparent: &str) {
    use opentelemetry::trace::{
        SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
    };
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let mut parts = traceparent.split('-');
    let (Some("00"), Some(trace), Some(parent), Some(flags)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let (Ok(trace), Ok(parent), Ok(flags)) = (
        TraceId::from_hex(trace),
        SpanId::from_hex(parent),
        u8::from_str_radix(flags, 16),
    ) else {
        return;
    };
    let remote = SpanContext::new(
        trace,
        parent,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    if remote.is_valid() {
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(remote));
    }
}

/// Without the `otel` feature there is no span context to set.
#[cfg(not(feature = "otel"))]
pub(crate) fn set_parent(_span: &tracing::Span, _traceparent: &str) {}

/// The context to hand on from `span`: its own when it is exported, else a generated one in the
/// trace of `inherited` (the context the work arrived with), or a new trace.
///
/// Read inside the span: the OpenTelemetry bridge settles a span's ids when it is entered, and
/// reading them from outside can give ids the exported span does not have.
pub(crate) fn hand_on(span: &tracing::Span, inherited: Option<&str>) -> String {
    span.in_scope(|| of_span(&tracing::Span::current()))
        .unwrap_or_else(|| generated(inherited.and_then(trace_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_contexts_keep_the_trace() {
        let first = generated(None);
        let next = generated(trace_id(&first));
        assert_eq!(trace_id(&first), trace_id(&next));
        assert_ne!(first, next);
        assert_eq!(first.len(), 55, "{first}");
        assert!(first.starts_with("00-") && first.ends_with("-01"));
        // A malformed trace id starts a new trace rather than propagating garbage.
        assert_ne!(trace_id(&generated(Some("zz"))), Some("zz"));
    }
}
