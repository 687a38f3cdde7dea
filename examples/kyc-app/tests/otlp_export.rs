//! The README's tracing recipe works: the real `kyc` binary, started with
//! `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP/HTTP receiver (here one of the test's own,
//! standing in for Jaeger's port 4318), exports the spans of a request it ran, and flushes them
//! when it is stopped with SIGTERM.
//!
//! The receiver decodes what it gets with `opentelemetry-proto`'s message types (the crate
//! opentelemetry-otlp encodes with, at the same version): checking the raw bytes for the
//! UTF-8 strings would work too (protobuf stores strings verbatim), but could not tell the
//! service name (a resource attribute) from a span name that contains it (`goflow.request`
//! contains `goflow`), nor say which spans arrived when the test fails.

// SIGTERM is sent with `kill`.
#![cfg(unix)]

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message as _;
use serde_json::{json, Value};

/// The service binary, built by Cargo for this test.
const KYC: &str = env!("CARGO_BIN_EXE_kyc");

/// What the receiver was sent: one decoded export per `POST /v1/traces`, or why one was
/// refused.
#[derive(Default)]
struct Received {
    exports: Vec<ExportTraceServiceRequest>,
    refused: Vec<String>,
}

/// An OTLP/HTTP trace receiver on a free local port, serving until the test process ends (in
/// a thread of its own, with its own runtime: the test itself is synchronous).
fn start_receiver() -> (u16, Arc<Mutex<Received>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the receiver");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let port = listener.local_addr().expect("its address").port();
    let received = Arc::new(Mutex::new(Received::default()));
    let state = Arc::clone(&received);
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the receiver");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            let router = Router::new()
                .route("/v1/traces", post(receive))
                .with_state(state);
            axum::serve(listener, router).await.expect("serve OTLP");
        });
    });
    (port, received)
}

/// `POST /v1/traces`: a protobuf `ExportTraceServiceRequest`, answered as a collector does
/// (an empty `ExportTraceServiceResponse`: full success).
async fn receive(
    State(received): State<Arc<Mutex<Received>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(header::HeaderName, &'static str); 1]) {
    let protobuf = [(header::CONTENT_TYPE, "application/x-protobuf")];
    let mut received = received.lock().unwrap_or_else(|e| e.into_inner());
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if content_type != "application/x-protobuf" {
        received
            .refused
            .push(format!("content-type {content_type:?}"));
        return (StatusCode::UNSUPPORTED_MEDIA_TYPE, protobuf);
    }
    match ExportTraceServiceRequest::decode(body) {
        Ok(export) => {
            received.exports.push(export);
            (StatusCode::OK, protobuf)
        }
        Err(error) => {
            received.refused.push(format!("undecodable: {error}"));
            (StatusCode::BAD_REQUEST, protobuf)
        }
    }
}

/// The names of the spans in `exports`, and the `service.name` of their resources.
fn names(exports: &[ExportTraceServiceRequest]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut spans = BTreeSet::new();
    let mut services = BTreeSet::new();
    for resource_spans in exports.iter().flat_map(|e| &e.resource_spans) {
        let attributes = resource_spans.resource.iter().flat_map(|r| &r.attributes);
        for attribute in attributes.filter(|a| a.key == "service.name") {
            if let Some(AnyValue::StringValue(name)) =
                attribute.value.as_ref().and_then(|v| v.value.as_ref())
            {
                services.insert(name.clone());
            }
        }
        for scope_spans in &resource_spans.scope_spans {
            spans.extend(scope_spans.spans.iter().map(|s| s.name.clone()));
        }
    }
    (spans, services)
}

/// The `kyc` process, killed (by its pid, as `Child::kill` does) if the test fails first.
struct Kyc {
    child: Child,
    log: PathBuf,
}

impl Kyc {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the kyc process") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Kyc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Captured by the test harness and shown with the failure.
            println!("--- kyc log ---\n{}", self.log());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port")
}

#[test]
fn the_kyc_binary_exports_its_spans_over_otlp_and_flushes_them_on_sigterm() {
    let (otlp_port, received) = start_receiver();
    let port = free_port();
    let log = std::env::temp_dir().join(format!(
        "goflow-otlp-kyc-{}-{:08x}.log",
        std::process::id(),
        fastrand::u32(..)
    ));
    let file = std::fs::File::create(&log).expect("create the log file");
    let mut command = Command::new(KYC);
    // Only what the recipe sets (and where to listen): no setting of the test's environment.
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| {
            k.starts_with("GOFLOW_") || k.starts_with("OTEL_") || k == "RUST_LOG" || k == "NO_COLOR"
        }) {
            command.env_remove(key);
        }
    }
    command
        .env(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("http://127.0.0.1:{otlp_port}"),
        )
        .env("GOFLOW_PORT", port.to_string())
        .env("GOFLOW_HOST", "127.0.0.1")
        .env("GOFLOW_SHUTDOWN_GRACE", "15")
        // The batch exporter's timer (5 s by default) set beyond the test: spans reach the
        // receiver only through the flush at shutdown, which this test is about.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .stdin(Stdio::null())
        .stdout(file.try_clone().expect("clone the log file"))
        .stderr(file);
    let mut kyc = Kyc {
        child: command.spawn().expect("start the kyc binary"),
        log,
    };

    let client = reqwest::blocking::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(status) = kyc.child.try_wait().expect("poll the kyc process") {
            panic!("kyc exited ({status}) before it was ready");
        }
        let ready = client
            .get(format!("{base}/readyz"))
            .send()
            .is_ok_and(|r| r.status().is_success());
        if ready {
            break;
        }
        assert!(Instant::now() < deadline, "kyc not ready within 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }

    let reply = client
        .post(format!("{base}/flow/kyc?wait=5"))
        .header("content-type", "application/json")
        .body(json!({"user_id": "alice"}).to_string())
        .send()
        .expect("submit a KYC request");
    assert_eq!(reply.status(), reqwest::StatusCode::OK);
    let body: Value = serde_json::from_str(&reply.text().expect("a body")).expect("a JSON body");
    assert_eq!(body["status"], "completed", "{body}");
    let before_shutdown = received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .exports
        .len();

    let status = Command::new("kill")
        .arg("-TERM")
        .arg(kyc.child.id().to_string())
        .status()
        .expect("run `kill`");
    assert!(status.success(), "kill -TERM failed");
    let exit = kyc
        .wait_exit(Duration::from_secs(30))
        .expect("kyc exits within 30 s of SIGTERM");
    assert!(exit.success(), "kyc exited with {exit}");

    let received = received.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        received.refused.is_empty(),
        "refused: {:?}",
        received.refused
    );
    assert!(
        !received.exports.is_empty(),
        "no OTLP export reached the receiver at 127.0.0.1:{otlp_port}"
    );
    assert_eq!(
        before_shutdown, 0,
        "an export arrived before SIGTERM, although the batch timer is 10 minutes"
    );
    let (spans, services) = names(&received.exports);
    for span in ["goflow.request", "goflow.vertex", "goflow.http"] {
        assert!(spans.contains(span), "no `{span}` span among {spans:?}");
    }
    // The default service name (`OTEL_SERVICE_NAME` is not set).
    assert_eq!(
        services,
        BTreeSet::from(["goflow".to_owned()]),
        "service names"
    );

    // Its log lines, on stderr (a file here), carry no ANSI colour codes.
    let log = kyc.log();
    assert!(log.contains("serving HTTP"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a log file:\n{log}"
    );
}
