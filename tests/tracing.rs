//! One request is one trace: every vertex span of a request, on whichever worker it ran,
//! carries the request's trace id, descends from the span that submitted it (the HTTP request's
//! span when it came over HTTP), and has the span of the vertex that enqueued it as parent.
//!
//! A single test per binary: it installs the process-wide subscriber with an in-memory span
//! exporter.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use goflow::prelude::*;
use goflow::redis::RedisEngine;
use goflow::request::RequestOutcome;
use goflow::service::{FlowService, Settings};
use goflow::Engine as _;
use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry::Value;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

/// A KYC image.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image(String);

#[node]
async fn get_image(user: String) -> Image {
    Image(user)
}
#[node]
async fn detect(image: Image) -> bool {
    tokio::time::sleep(Duration::from_millis(2)).await;
    !image.0.is_empty()
}
#[node]
async fn score(image: Image) -> u32 {
    tokio::time::sleep(Duration::from_millis(2)).await;
    u32::try_from(image.0.len()).unwrap_or(0)
}
#[node]
async fn verdict(detected: bool, score: u32) -> String {
    format!("{detected}:{score}")
}

workflow! {
    pub Kyc = get_image -> [detect, score] => verdict;
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| match &kv.value {
            Value::String(s) => s.to_string(),
            other => other.to_string(),
        })
}

/// Checks one request's spans; returns the workers its vertices ran on.
/// `chained`: each vertex's parent is the vertex that enqueued it (the Redis engine, across
/// processes); otherwise every vertex span is a child of the request span (the embedded
/// engine, where the request span is the parent of every vertex task).
fn check_request(
    spans: &[SpanData],
    request_id: &str,
    root: Option<(TraceId, SpanId)>,
    chained: bool,
) -> HashSet<String> {
    let request = spans
        .iter()
        .find(|s| {
            s.name == "goflow.request" && attribute(s, "request_id").as_deref() == Some(request_id)
        })
        .unwrap_or_else(|| panic!("no request span for {request_id}"));
    let trace = request.span_context.trace_id();
    if let Some((root_trace, root_span)) = root {
        assert_eq!(
            trace, root_trace,
            "the request continues its caller's trace"
        );
        assert_eq!(
            request.parent_span_id, root_span,
            "the request span's parent is the caller's span"
        );
    }
    let vertices: HashMap<String, &SpanData> = spans
        .iter()
        .filter(|s| {
            s.name == "goflow.vertex" && attribute(s, "request_id").as_deref() == Some(request_id)
        })
        .map(|s| (attribute(s, "vertex").expect("vertex field"), s))
        .collect();
    assert_eq!(
        vertices.len(),
        4,
        "one span per vertex: {:?}",
        vertices.keys()
    );
    for span in vertices.values() {
        assert_eq!(
            span.span_context.trace_id(),
            trace,
            "{}: same trace as its request",
            span.name
        );
    }
    let id = |name: &str| vertices[name].span_context.span_id();
    let parent = |name: &str| vertices[name].parent_span_id;
    // The entry descends from the request; each other vertex from the vertex that enqueued it
    // (a join is enqueued by whichever parent finished last).
    let request_span = request.span_context.span_id();
    let dump: Vec<String> = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .map(|s| {
            format!(
                "{} {:?} id={} parent={}",
                s.name,
                attribute(s, "vertex"),
                s.span_context.span_id(),
                s.parent_span_id
            )
        })
        .collect();
    let dump = dump.join("\n");
    assert_eq!(
        parent("get_image"),
        request_span,
        "the entry's parent is the request span\n{dump}"
    );
    if chained {
        assert_eq!(parent("detect"), id("get_image"), "{dump}");
        assert_eq!(parent("score"), id("get_image"), "{dump}");
        assert!(
            [id("detect"), id("score")].contains(&parent("verdict")),
            "the join's parent is one of the branches\n{dump}"
        );
    } else {
        for name in ["detect", "score", "verdict"] {
            assert_eq!(parent(name), request_span, "{name}\n{dump}");
        }
    }
    vertices
        .values()
        .filter_map(|s| attribute(s, "worker"))
        .collect()
}

#[test]
fn every_span_of_a_request_shares_one_trace_on_both_engines() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    tracing::subscriber::set_global_default(subscriber)
        .expect("the only subscriber of this binary");

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // Redis: two worker instances sharing one server, a client submitting under a span of
        // its own (as the HTTP handler does).
        let config = support::config("trace");
        let client = RedisEngine::builder(config.clone())
            .register::<Kyc>()
            .connect()
            .await
            .unwrap();
        let shutdown = CancellationToken::new();
        let mut workers = Vec::new();
        for _ in 0..2 {
            let engine = RedisEngine::builder(config.clone())
                .register::<Kyc>()
                .connect()
                .await
                .unwrap();
            workers.push(tokio::spawn(engine.worker(2).run(shutdown.clone())));
        }
        let mut requests = Vec::new();
        for i in 0..12 {
            let caller = tracing::info_span!("caller");
            let id = async { client.submit::<Kyc>(&format!("user-{i}")).await.unwrap() }
                .instrument(caller.clone())
                .await;
            requests.push((id, caller));
        }
        for (id, _) in &requests {
            match client
                .wait::<Kyc>(id, Duration::from_secs(20))
                .await
                .unwrap()
            {
                RequestOutcome::Completed(_) => {}
                other => panic!("{other:?}"),
            }
        }
        shutdown.cancel();
        for worker in workers {
            worker.await.unwrap().unwrap();
        }

        // Embedded, over HTTP: the HTTP request's span is the request span's parent.
        let router = FlowService::new(Settings::default())
            .register::<Kyc>()
            .router()
            .await
            .unwrap();
        let response = router
            .oneshot(
                axum::http::Request::post("/flow/kyc?wait=10")
                    .header(
                        "traceparent",
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
                    )
                    .body(axum::body::Body::from("\"http-user\""))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let http_request_id = response.headers()["x-request-id"]
            .to_str()
            .unwrap()
            .to_owned();

        // A span is exported when it closes, which for the HTTP span is when the last task
        // holding it (the request's, which the handler's wait does not join) lets go: shortly
        // after the response, not before it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let spans = loop {
            provider.force_flush().unwrap();
            let spans = exporter.get_finished_spans().unwrap();
            let http_closed = spans.iter().any(|s| s.name == "goflow.http");
            if http_closed || std::time::Instant::now() > deadline {
                break spans;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let caller_context = |span: &tracing::Span| {
            use opentelemetry::trace::TraceContextExt as _;
            use tracing_opentelemetry::OpenTelemetrySpanExt as _;
            let context = span.context();
            let span_context = context.span().span_context().clone();
            (span_context.trace_id(), span_context.span_id())
        };
        let mut seen_workers = HashSet::new();
        for (id, caller) in &requests {
            seen_workers.extend(check_request(
                &spans,
                id.as_str(),
                Some(caller_context(caller)),
                true,
            ));
        }
        assert!(
            seen_workers.len() >= 2,
            "both worker instances ran vertices: {seen_workers:?}"
        );

        // The HTTP span continues the trace of the `traceparent` header, and the embedded
        // engine's vertex spans are in it too.
        let http = spans
            .iter()
            .find(|s| {
                s.name == "goflow.http" && attribute(s, "path").as_deref() == Some("/flow/kyc")
            })
            .expect("http span");
        assert_eq!(
            http.span_context.trace_id(),
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
        );
        check_request(
            &spans,
            &http_request_id,
            Some((http.span_context.trace_id(), http.span_context.span_id())),
            false,
        );
    });
}
