//! `FlowService`'s routes, driven without sockets: the router answers requests built in the
//! test (`tower::ServiceExt::oneshot`), on the embedded engine and on Redis (with a worker run
//! in this process). Every route and every error status is covered.
//!
//! The workflows are the KYC example's (`kyc`, `kyc_linear`, `onboarding`, `greet`) plus three
//! of the tests' own: `counted` counts its runs per key (to see that a request id never starts
//! a second run), `held` waits until the test releases its key (so a request is paused, resumed
//! or stopped at a known point, without timing), and `priced` has a nested input (to see the
//! path of a mistyped field in the error).

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use goflow::prelude::*;
use goflow::redis::RedisEngine;
use goflow::service::{FlowService, Settings};
use goflow_kyc_app::{Greet, Kyc, KycLinear, Onboarding};
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tower::ServiceExt as _;

// ---------------------------------------------------------------------------------------------
// The tests' workflows.

/// Runs of `count` per key (keys are unique per test, so tests running at once do not mix).
fn counts() -> &'static Mutex<HashMap<String, u32>> {
    static COUNTS: OnceLock<Mutex<HashMap<String, u32>>> = OnceLock::new();
    COUNTS.get_or_init(Mutex::default)
}

fn count_of(key: &str) -> u32 {
    counts()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .copied()
        .unwrap_or(0)
}

/// Keys released by the tests: `hold` waits until its key is here.
fn released() -> &'static Mutex<HashSet<String>> {
    static RELEASED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    RELEASED.get_or_init(Mutex::default)
}

fn release(key: &str) {
    released()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.to_owned());
}

/// Counts its runs for `key`; returns how many there have been.
#[node]
async fn count(key: String) -> u32 {
    let mut counts = counts().lock().unwrap_or_else(|e| e.into_inner());
    let n = counts.entry(key).or_insert(0);
    *n += 1;
    *n
}

/// Waits until the test releases `key` (failing after a minute, so a test bug cannot hang).
#[node]
async fn hold(ctx: Context, key: String) -> Result<String, NodeError> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if released()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(&key)
        {
            return Ok(key);
        }
        if ctx.is_cancelled() || Instant::now() > deadline {
            return Err(NodeError::permanent(format!("`{key}` was never released")));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs after `hold`.
#[node]
async fn after_hold(key: String) -> String {
    format!("{key} done")
}

/// A customer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Customer {
    /// Name.
    pub name: String,
    /// Age in years.
    pub age: u32,
}

/// A line of an order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Line {
    /// Units.
    pub qty: u32,
    /// Price of one unit, in cents.
    pub cents: u32,
}

/// An order.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    /// Who orders.
    pub customer: Customer,
    /// What.
    pub lines: Vec<Line>,
}

/// The order's total, in cents.
#[node]
async fn price(order: Order) -> u32 {
    order.lines.iter().map(|l| l.qty * l.cents).sum()
}

workflow! {
    /// Counts its runs.
    pub Counted = count;
    /// Waits for the test, then finishes.
    pub Held = hold -> after_hold;
    /// Prices an order.
    pub Priced = price;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A name no other test (or earlier run) uses.
fn unique(what: &str) -> String {
    format!("{what}-{:08x}", fastrand::u32(..))
}

/// The KYC example's service with the tests' workflows added.
fn service(settings: Settings) -> FlowService {
    goflow_kyc_app::service(FlowService::new(settings))
        .register::<Counted>()
        .register::<Held>()
        .register::<Priced>()
}

/// The routes of a service on the embedded engine.
async fn embedded(settings: Settings) -> Router {
    assert!(settings.redis_url.is_none());
    service(settings)
        .router()
        .await
        .expect("the embedded service builds its router")
}

/// An answer of the router.
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}); status {}, body {:?}",
                self.status,
                self.text()
            )
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, then returns the body as JSON.
    #[track_caller]
    fn expect(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        self.json()
    }

    /// Asserts an error answer: the status, a JSON content type, and
    /// `{"error": {"code", "message"}}` with this code and a message; returns the message.
    #[track_caller]
    fn expect_error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "error content type: {:?}",
            self.header("content-type")
        );
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "body: {body}");
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {body}"));
        assert!(!message.is_empty(), "empty error message in {body}");
        message.to_owned()
    }
}

/// Sends one request through `router`, failing the test if it gets no answer within 30 s.
async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> Reply {
    let limit = Duration::from_secs(30);
    send_within(router, method, uri, headers, body, limit)
        .await
        .unwrap_or_else(|| panic!("{uri}: no answer within {limit:?}"))
}

/// Sends one request through `router`; `None` if it gets no answer within `limit`.
async fn send_within(
    router: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
    limit: Duration,
) -> Option<Reply> {
    let mut request = Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(body.into()).expect("a valid request");
    let response = tokio::time::timeout(limit, router.clone().oneshot(request))
        .await
        .ok()?
        .expect("the router is infallible");
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .expect("read the response body")
        .to_bytes()
        .to_vec();
    Some(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

async fn get(router: &Router, uri: &str) -> Reply {
    send(router, Method::GET, uri, &[], Body::empty()).await
}

async fn post(router: &Router, uri: &str, body: Value) -> Reply {
    send(
        router,
        Method::POST,
        uri,
        &[("content-type", "application/json")],
        body.to_string(),
    )
    .await
}

/// Polls the request's status until `done` holds for it, failing after 30 s (a hang, not a
/// timing expectation); returns the status JSON.
async fn poll(router: &Router, location: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = get(router, location).await.expect(StatusCode::OK);
        if done(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within 30 s; last status {status}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn is_final(status: &Value) -> bool {
    matches!(
        status["status"].as_str(),
        Some("completed" | "failed" | "stopped")
    )
}

/// The vertex at `path` in a status JSON.
fn vertex<'a>(status: &'a Value, path: &str) -> &'a Value {
    status["vertices"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["vertex"] == path))
        .unwrap_or_else(|| panic!("no vertex `{path}` in {status}"))
}

/// The value of `goflow_http_flows_started_total` for `flow` in `/metrics`.
async fn started_total(router: &Router, flow: &str) -> u64 {
    let reply = get(router, "/metrics").await;
    assert_eq!(reply.status, StatusCode::OK);
    let prefix = format!("goflow_http_flows_started_total{{flow=\"{flow}\"}} ");
    reply
        .text()
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no counter for `{flow}` in {:?}", reply.text()))
}

/// Submits a request without waiting; asserts the 202 answer (headers and body) and returns
/// its id and location.
#[track_caller]
fn accepted(reply: &Reply, flow: &str) -> (String, String) {
    let body = reply.expect(StatusCode::ACCEPTED);
    let id = reply
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no X-Request-Id header: {:?}", reply.headers))
        .to_owned();
    assert!(
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
        "generated id {id:?}"
    );
    let location = format!("/flow/{flow}/requests/{id}");
    assert_eq!(reply.header("location"), Some(location.as_str()));
    assert_eq!(body["request_id"], id.as_str(), "body: {body}");
    (id, location)
}

// ---------------------------------------------------------------------------------------------
// Submitting.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_answers_202_with_id_and_location() {
    let router = embedded(Settings::default()).await;
    let key = unique("submit");
    let reply = post(&router, "/flow/held", json!(key)).await;
    let (_, location) = accepted(&reply, "held");
    let body = reply.json();
    assert_eq!(body["status"], "queued", "body: {body}");
    assert_eq!(body["created"], true, "body: {body}");

    // The location reports the request; once released it completes with its output.
    let status = get(&router, &location).await.expect(StatusCode::OK);
    assert_eq!(status["flow"], "held");
    release(&key);
    let status = poll(&router, &location, "held completes", is_final).await;
    assert_eq!(status["status"], "completed", "status: {status}");
    assert_eq!(status["output"], format!("{key} done"));

    // A plain flow.
    let reply = post(&router, "/flow/greet", json!("Ann")).await;
    let (_, location) = accepted(&reply, "greet");
    let status = poll(&router, &location, "greet completes", is_final).await;
    assert_eq!(status["output"], "Hello Ann", "status: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_answers_200_with_the_output() {
    let router = embedded(Settings::default()).await;
    let reply = post(&router, "/flow/kyc?wait=5", json!({"user_id": "alice"})).await;
    let body = reply.expect(StatusCode::OK);
    assert_eq!(body["status"], "completed", "body: {body}");
    assert_eq!(
        body["output"],
        json!({"user_id": "alice", "kyc_verified": true, "reason": "1 face(s), match score 0.97"})
    );
    let id = reply
        .header("x-request-id")
        .expect("X-Request-Id")
        .to_owned();
    assert_eq!(body["request_id"], id.as_str());
    assert_eq!(
        reply.header("location"),
        Some(format!("/flow/kyc/requests/{id}").as_str())
    );

    // Another user, the linear flow, and the sub-workflow.
    let body = post(&router, "/flow/kyc?wait=5", json!({"user_id": "bob"}))
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["output"]["kyc_verified"], false, "body: {body}");
    let body = post(
        &router,
        "/flow/kyc_linear?wait=5",
        json!({"user_id": "amy"}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(body["output"]["kyc_verified"], true, "body: {body}");
    let body = post(
        &router,
        "/flow/onboarding?wait=5",
        json!({"user_id": "  ALICE "}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(body["output"]["user_id"], "alice", "body: {body}");
    assert_eq!(body["output"]["kyc_verified"], true, "body: {body}");
    assert_eq!(vertex(&body, "Kyc/mark_profile")["status"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_wait_on_an_unfinished_request_answers_202() {
    let router = embedded(Settings::default()).await;
    let key = unique("wait");
    let reply = post(&router, "/flow/held?wait=0.05", json!(key)).await;
    let (_, location) = accepted(&reply, "held");
    let body = reply.json();
    assert!(
        matches!(body["status"].as_str(), Some("queued" | "running")),
        "body: {body}"
    );
    release(&key);
    let status = poll(&router, &location, "held completes", is_final).await;
    assert_eq!(status["status"], "completed");

    // `wait` must be a non-negative number of seconds.
    for bad in ["abc", "-1", "NaN", "inf", ""] {
        post(&router, &format!("/flow/greet?wait={bad}"), json!("x"))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_wait");
    }
    // `wait=0` does not wait, but is accepted.
    let reply = post(&router, "/flow/greet?wait=0", json!("x")).await;
    assert!(
        matches!(reply.status, StatusCode::OK | StatusCode::ACCEPTED),
        "wait=0: {} {}",
        reply.status,
        reply.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_is_capped_at_max_wait() {
    // Asked to wait an hour, the service waits `max_wait` and answers 202 (long before the
    // 30 s after which `send` gives up).
    let router = embedded(Settings {
        max_wait: Duration::from_millis(50),
        ..Settings::default()
    })
    .await;
    let key = unique("max-wait");
    let reply = post(&router, "/flow/held?wait=3600", json!(key)).await;
    let (_, location) = accepted(&reply, "held");
    release(&key);
    poll(&router, &location, "held completes", is_final).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_wait_is_capped_at_max_wait() {
    let router = embedded(Settings::default()).await;
    let body = post(&router, "/flow/greet?wait=1e30", json!("Hu"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["output"], "Hello Hu");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_request_id_never_starts_a_second_run() {
    let router = embedded(Settings::default()).await;
    let key = unique("idem");
    let id = unique("order");
    let headers = [("x-request-id", id.as_str())];
    let submit = || {
        send(
            &router,
            Method::POST,
            "/flow/counted?wait=5",
            &headers,
            json!(key).to_string(),
        )
    };
    let first = submit().await;
    let body = first.expect(StatusCode::OK);
    assert_eq!(first.header("x-request-id"), Some(id.as_str()));
    assert_eq!(body["request_id"], id.as_str());
    assert_eq!(body["output"], 1, "body: {body}");

    let second = submit().await;
    let body = second.expect(StatusCode::OK);
    assert_eq!(body["request_id"], id.as_str());
    assert_eq!(
        body["output"], 1,
        "the second POST ran the flow again: {body}"
    );

    // Without `wait`: 202, not created, with the existing request's status.
    let third = send(
        &router,
        Method::POST,
        "/flow/counted",
        &headers,
        json!(key).to_string(),
    )
    .await;
    let body = third.expect(StatusCode::ACCEPTED);
    assert_eq!(body["created"], false, "body: {body}");
    assert_eq!(body["status"], "completed", "body: {body}");
    assert_eq!(
        third.header("location"),
        Some(format!("/flow/counted/requests/{id}").as_str())
    );

    assert_eq!(count_of(&key), 1, "the node ran more than once");
    assert_eq!(started_total(&router, "counted").await, 1);

    // The same id in another flow is another request.
    let body = send(
        &router,
        Method::POST,
        "/flow/greet?wait=5",
        &headers,
        json!("Bo").to_string(),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(body["output"], "Hello Bo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_request_id_is_400() {
    let router = embedded(Settings::default()).await;
    let key = unique("badid");
    let too_long = "a".repeat(65);
    for bad in ["bad id", "a*", "{tag}", "x:y", "", too_long.as_str()] {
        let reply = send(
            &router,
            Method::POST,
            "/flow/counted",
            &[("x-request-id", bad)],
            json!(key).to_string(),
        )
        .await;
        reply.expect_error(StatusCode::BAD_REQUEST, "invalid_request_id");
    }
    // A header that is not even text.
    let request = Request::post("/flow/counted")
        .header(
            "x-request-id",
            axum::http::HeaderValue::from_bytes(b"caf\xe9").expect("an opaque header value"),
        )
        .body(Body::from(json!(key).to_string()))
        .expect("a request");
    let response = router.clone().oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);

    // In the paths of the status and control routes too.
    get(&router, "/flow/counted/requests/x:y")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request_id");
    send(
        &router,
        Method::POST,
        "/flow/counted/requests/a*b/stop",
        &[],
        Body::empty(),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_request_id");

    // Nothing was started.
    assert_eq!(count_of(&key), 0);
    assert_eq!(started_total(&router, "counted").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_body_is_400() {
    let router = embedded(Settings::default()).await;
    for bad in ["{not json", "", "{\"user_id\": \"a\"} trailing", "[]", "{}"] {
        let reply = send(
            &router,
            Method::POST,
            "/flow/kyc",
            &[("content-type", "application/json")],
            bad,
        )
        .await;
        let message = reply.expect_error(StatusCode::BAD_REQUEST, "invalid_input");
        assert!(message.contains("kyc"), "{bad:?}: {message}");
    }
    assert_eq!(started_total(&router, "kyc").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_field_is_400_naming_its_path() {
    let router = embedded(Settings::default()).await;
    let message = post(
        &router,
        "/flow/priced",
        json!({"customer": {"name": "Ann", "age": "old"}, "lines": []}),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("customer.age"), "{message}");

    let message = post(
        &router,
        "/flow/priced",
        json!({"customer": {"name": "Ann", "age": 30},
               "lines": [{"qty": 1, "cents": 5}, {"qty": "two", "cents": 5}]}),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("lines[1].qty"), "{message}");

    let message = post(&router, "/flow/kyc", json!({"user_id": 7}))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("user_id"), "{message}");

    // The well-typed order goes through.
    let body = post(
        &router,
        "/flow/priced?wait=5",
        json!({"customer": {"name": "Ann", "age": 30},
               "lines": [{"qty": 2, "cents": 150}, {"qty": 1, "cents": 99}]}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(body["output"], 399);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_flows_and_requests_are_404() {
    let router = embedded(Settings::default()).await;
    post(&router, "/flow/nope", json!({}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_flow");
    get(&router, "/flow/nope")
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_flow");
    get(&router, "/flow/nope.mmd")
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_flow");
    get(&router, "/flow/nope/requests/abc")
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_flow");
    send(
        &router,
        Method::POST,
        "/flow/nope/requests/abc/pause",
        &[],
        Body::empty(),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "unknown_flow");

    let never = unique("never");
    let message = get(&router, &format!("/flow/greet/requests/{never}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_request");
    assert!(message.contains(&never), "{message}");
    for action in ["pause", "resume", "stop"] {
        send(
            &router,
            Method::POST,
            &format!("/flow/greet/requests/{never}/{action}"),
            &[],
            Body::empty(),
        )
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_request");
    }

    // A request of one flow is unknown to another.
    let reply = post(&router, "/flow/greet?wait=5", json!("Cy")).await;
    let id = reply.header("x-request-id").expect("an id").to_owned();
    reply.expect(StatusCode::OK);
    get(&router, &format!("/flow/kyc/requests/{id}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_413() {
    let router = embedded(Settings {
        body_limit: 64,
        ..Settings::default()
    })
    .await;
    let key = unique("big");
    let message = post(
        &router,
        "/flow/counted",
        json!(format!("{key}{}", "x".repeat(100))),
    )
    .await
    .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    assert!(message.contains("64"), "{message}");
    // A declared length over the limit is refused too.
    let big = "y".repeat(200);
    send(
        &router,
        Method::POST,
        "/flow/counted",
        &[("content-length", "202")],
        json!(big).to_string(),
    )
    .await
    .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");
    // Under the limit it is accepted.
    let body = post(&router, "/flow/counted?wait=5", json!(key))
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["output"], 1);
    assert_eq!(started_total(&router, "counted").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limit_above_axums_default_is_honoured() {
    // axum limits extracted bodies to 2 MB by default; the service's own limit is what counts.
    let router = embedded(Settings {
        body_limit: 4 << 20,
        ..Settings::default()
    })
    .await;
    let name = "n".repeat(3 << 20);
    let body = post(&router, "/flow/greet?wait=10", json!(name))
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["output"].as_str().map(str::len), Some(6 + (3 << 20)));
}

// ---------------------------------------------------------------------------------------------
// Auth.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_the_flow_routes_only() {
    let router = embedded(Settings {
        api_token: Some("s3cret-token".to_owned()),
        ..Settings::default()
    })
    .await;
    let body = json!("Di").to_string();
    for authorization in [
        None,
        Some("Bearer wrong"),
        Some("Bearer s3cret-token2"),
        Some("Bearer s3cret-toke"),
        Some("Basic s3cret-token"),
        Some("s3cret-token"),
        Some("Bearer "),
    ] {
        let headers: Vec<(&str, &str)> = authorization
            .map(|a| ("authorization", a))
            .into_iter()
            .collect();
        for (method, uri) in [
            (Method::POST, "/flow/greet"),
            (Method::GET, "/flows"),
            (Method::GET, "/flow/greet"),
            (Method::GET, "/flow/greet.mmd"),
            (Method::GET, "/flow/greet/requests/abc"),
            (Method::POST, "/flow/greet/requests/abc/stop"),
            // Unknown flows are not told apart from known ones without the token.
            (Method::POST, "/flow/nope"),
        ] {
            let reply = send(&router, method.clone(), uri, &headers, body.clone()).await;
            reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
            assert_eq!(
                reply.header("www-authenticate"),
                Some("Bearer"),
                "{method} {uri} with {authorization:?}"
            );
        }
    }

    let auth = [("authorization", "Bearer s3cret-token")];
    let reply = send(&router, Method::POST, "/flow/greet", &auth, body.clone()).await;
    let (_, location) = accepted(&reply, "greet");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = send(&router, Method::GET, &location, &auth, Body::empty())
            .await
            .expect(StatusCode::OK);
        if status["status"] == "completed" {
            assert_eq!(status["output"], "Hello Di");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "greet did not complete: {status}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    send(&router, Method::GET, "/flows", &auth, Body::empty())
        .await
        .expect(StatusCode::OK);

    // Probes and metrics need no token.
    for uri in ["/healthz", "/readyz", "/metrics"] {
        let reply = get(&router, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
    }
    assert_eq!(started_total(&router, "greet").await, 1);
    // Unknown routes are 404 with or without it.
    get(&router, "/nope")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
}

// ---------------------------------------------------------------------------------------------
// Status and control.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_every_vertex_and_the_decoded_output() {
    let router = embedded(Settings::default()).await;
    let reply = post(&router, "/flow/kyc?wait=5", json!({"user_id": "alice"})).await;
    reply.expect(StatusCode::OK);
    let id = reply.header("x-request-id").expect("an id").to_owned();
    let status = get(&router, &format!("/flow/kyc/requests/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(status["flow"], "kyc");
    assert_eq!(status["request_id"], id.as_str());
    assert_eq!(status["status"], "completed");
    assert_eq!(status["output"]["user_id"], "alice");
    assert_eq!(status["output"]["kyc_verified"], true);
    assert!(status["failure"].is_null(), "status: {status}");
    for key in ["created_at_ms", "updated_at_ms", "finished_at_ms"] {
        assert!(status[key].is_u64(), "{key} in {status}");
    }
    let vertices = status["vertices"].as_array().expect("vertices");
    let paths: Vec<&str> = vertices
        .iter()
        .filter_map(|v| v["vertex"].as_str())
        .collect();
    assert_eq!(
        paths.iter().copied().collect::<HashSet<_>>(),
        HashSet::from(["get_kyc_image", "face_detect", "face_match", "mark_profile"]),
        "status: {status}"
    );
    for v in vertices {
        assert_eq!(v["status"], "done", "vertex {v}");
        assert_eq!(v["attempts"], 1, "vertex {v}");
        assert!(v["started_at_ms"].is_u64(), "vertex {v}");
        assert!(v["finished_at_ms"].is_u64(), "vertex {v}");
        assert!(v["last_failure"].is_null(), "vertex {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_request_reports_its_failure() {
    let router = embedded(Settings::default()).await;
    let reply = post(&router, "/flow/kyc?wait=5", json!({"user_id": ""})).await;
    let body = reply.expect(StatusCode::OK);
    assert_failed_on_empty_user(&body);
    let id = reply.header("x-request-id").expect("an id").to_owned();
    let status = get(&router, &format!("/flow/kyc/requests/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_failed_on_empty_user(&status);
}

#[track_caller]
fn assert_failed_on_empty_user(status: &Value) {
    assert_eq!(status["status"], "failed", "status: {status}");
    assert!(
        status.get("output").is_none_or(Value::is_null),
        "status: {status}"
    );
    let failure = &status["failure"];
    assert_eq!(failure["vertex"], "get_kyc_image", "status: {status}");
    assert_eq!(failure["attempts"], 1, "status: {status}");
    assert_eq!(failure["failure"]["kind"], "permanent", "status: {status}");
    assert!(
        failure["failure"]["detail"]
            .as_str()
            .is_some_and(|d| d.contains("empty")),
        "status: {status}"
    );
    let first = vertex(status, "get_kyc_image");
    assert_eq!(first["status"], "failed", "status: {status}");
    assert_eq!(
        first["last_failure"]["kind"], "permanent",
        "status: {status}"
    );
    assert_eq!(vertex(status, "mark_profile")["status"], "pending");
}

/// Pause, resume and stop a `held` request, checking every impossible transition; shared by
/// the embedded and the Redis tests.
async fn control_round_trip(router: &Router) {
    let action = |location: &str, action: &str| {
        let uri = format!("{location}/{action}");
        let router = router.clone();
        async move { send(&router, Method::POST, &uri, &[], Body::empty()).await }
    };

    // Pause while `hold` runs; the request goes on only once resumed.
    let key = unique("pause");
    let (_, location) = accepted(&post(router, "/flow/held", json!(key)).await, "held");
    poll(router, &location, "hold starts", |s| {
        vertex(s, "hold")["status"] == "running"
    })
    .await;
    let body = action(&location, "pause")
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(body["status"], "paused", "body: {body}");
    let message = action(&location, "pause")
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert!(message.contains("paused"), "{message}");
    release(&key);
    let status = poll(router, &location, "hold finishes while paused", |s| {
        vertex(s, "hold")["status"] == "done"
    })
    .await;
    assert_eq!(status["status"], "paused", "status: {status}");
    assert!(
        matches!(
            vertex(&status, "after_hold")["status"].as_str(),
            Some("pending" | "parked")
        ),
        "status: {status}"
    );
    let body = action(&location, "resume")
        .await
        .expect(StatusCode::ACCEPTED);
    assert_eq!(body["status"], "running", "body: {body}");
    let status = poll(router, &location, "resumed request completes", is_final).await;
    assert_eq!(status["status"], "completed", "status: {status}");
    assert_eq!(status["output"], format!("{key} done"));
    for a in ["pause", "resume", "stop"] {
        let message = action(&location, a)
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
        assert!(message.contains("completed"), "{a}: {message}");
    }
    action(&location, "frobnicate")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    // Stop while `hold` runs.
    let key = unique("stop");
    let (_, location) = accepted(&post(router, "/flow/held", json!(key)).await, "held");
    poll(router, &location, "hold starts", |s| {
        vertex(s, "hold")["status"] == "running"
    })
    .await;
    action(&location, "resume")
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    let body = action(&location, "stop").await.expect(StatusCode::ACCEPTED);
    assert_eq!(body["status"], "stopped", "body: {body}");
    for a in ["pause", "resume", "stop"] {
        action(&location, a)
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
    }
    let status = poll(router, &location, "the stopped attempt is cancelled", |s| {
        vertex(s, "hold")["status"] == "cancelled"
    })
    .await;
    assert_eq!(status["status"], "stopped", "status: {status}");
    assert_eq!(vertex(&status, "after_hold")["status"], "pending");
    release(&key);

    // Stop a paused request.
    let key = unique("pause-stop");
    let (_, location) = accepted(&post(router, "/flow/held", json!(key)).await, "held");
    action(&location, "pause")
        .await
        .expect(StatusCode::ACCEPTED);
    let body = action(&location, "stop").await.expect(StatusCode::ACCEPTED);
    assert_eq!(body["status"], "stopped", "body: {body}");
    release(&key);
    let status = get(router, &location).await.expect(StatusCode::OK);
    assert_eq!(status["status"], "stopped", "status: {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_stop_with_conflicts() {
    let router = embedded(Settings::default()).await;
    control_round_trip(&router).await;
}

// ---------------------------------------------------------------------------------------------
// Graphs, probes, metrics, routing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_and_graphs() {
    let router = embedded(Settings::default()).await;
    let body = get(&router, "/flows").await.expect(StatusCode::OK);
    assert_eq!(body["engine"], "embedded");
    let flows = body["flows"].as_array().expect("flows");
    let names: Vec<&str> = flows.iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "counted",
            "greet",
            "held",
            "kyc",
            "kyc_linear",
            "onboarding",
            "priced"
        ]
    );
    let kyc = flows.iter().find(|f| f["name"] == "kyc").expect("kyc");
    assert_eq!(kyc["vertices"], 4);
    assert_eq!(kyc["href"], "/flow/kyc");
    let hash = kyc["hash"].as_str().expect("a hash");
    assert!(
        hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()),
        "hash {hash}"
    );

    let reply = get(&router, "/flow/kyc").await;
    let body = reply.expect(StatusCode::OK);
    assert!(reply
        .header("content-type")
        .is_some_and(|t| t.starts_with("application/json")));
    assert_eq!(body["name"], "kyc");
    assert_eq!(body["graph"]["name"], "kyc");
    // The workflow's doc comment in `workflow!` is its description.
    assert_eq!(
        body["description"],
        "Validates a user's KYC image and marks the profile (Go goflow's branching KYC)."
    );
    let vertices = body["graph"]["vertices"].as_array().expect("vertices");
    assert_eq!(vertices.len(), 4);
    assert!(
        vertices.iter().any(|v| v["node"] == "face-detect"),
        "graph: {body}"
    );
    assert_eq!(body["graph"]["edges"].as_array().map(Vec::len), Some(4));
    let onboarding = get(&router, "/flow/onboarding")
        .await
        .expect(StatusCode::OK);
    assert!(
        onboarding["graph"]["vertices"]
            .as_array()
            .expect("vertices")
            .iter()
            .any(|v| v["kind"] == "flow"),
        "graph: {onboarding}"
    );

    let mermaid = get(&router, "/flow/kyc.mmd").await;
    assert_eq!(mermaid.status, StatusCode::OK);
    assert!(mermaid
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/vnd.mermaid")));
    assert!(
        mermaid.text().starts_with("flowchart LR\n"),
        "{}",
        mermaid.text()
    );
    assert!(mermaid.text().contains("face-detect"), "{}", mermaid.text());

    let dot = get(&router, "/flow/kyc.dot").await;
    assert_eq!(dot.status, StatusCode::OK);
    assert!(dot
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/vnd.graphviz")));
    assert!(
        dot.text().starts_with("digraph \"kyc\" {"),
        "{}",
        dot.text()
    );

    // The same by `Accept`.
    let by_accept = send(
        &router,
        Method::GET,
        "/flow/kyc",
        &[("accept", "text/vnd.mermaid")],
        Body::empty(),
    )
    .await;
    assert_eq!(by_accept.status, StatusCode::OK);
    assert_eq!(by_accept.text(), mermaid.text());
    let by_accept = send(
        &router,
        Method::GET,
        "/flow/kyc",
        &[("accept", "text/vnd.graphviz")],
        Body::empty(),
    )
    .await;
    assert_eq!(by_accept.status, StatusCode::OK);
    assert_eq!(by_accept.text(), dot.text());
    let json_by_accept = send(
        &router,
        Method::GET,
        "/flow/kyc",
        &[("accept", "application/json")],
        Body::empty(),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(json_by_accept["name"], "kyc");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let router = embedded(Settings::default()).await;
    assert_eq!(
        get(&router, "/healthz").await.expect(StatusCode::OK),
        json!({"status": "ok"})
    );
    assert_eq!(
        get(&router, "/readyz").await.expect(StatusCode::OK),
        json!({"status": "ready", "engine": "embedded"})
    );
    let metrics = get(&router, "/metrics").await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(metrics
        .header("content-type")
        .is_some_and(|t| t.starts_with("text/plain")));
    let text = metrics.text();
    assert!(
        text.contains("# TYPE goflow_http_flows_started_total counter"),
        "{text}"
    );
    for flow in [
        "greet",
        "kyc",
        "kyc_linear",
        "onboarding",
        "counted",
        "held",
        "priced",
    ] {
        assert_eq!(started_total(&router, flow).await, 0, "{flow}");
    }

    post(&router, "/flow/greet?wait=5", json!("Ed"))
        .await
        .expect(StatusCode::OK);
    post(&router, "/flow/greet", json!("Flo"))
        .await
        .expect(StatusCode::ACCEPTED);
    // Refused requests are not counted.
    post(&router, "/flow/greet", json!(1))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    assert_eq!(started_total(&router, "greet").await, 2);
    assert_eq!(started_total(&router, "kyc").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_404_and_wrong_methods_405() {
    let router = embedded(Settings::default()).await;
    for uri in [
        "/",
        "/nope",
        "/flow",
        "/flows/greet",
        "/flow/greet/requests",
    ] {
        get(&router, uri)
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    for (method, uri) in [
        (Method::DELETE, "/flow/greet"),
        (Method::PUT, "/flow/greet"),
        (Method::POST, "/healthz"),
        (Method::POST, "/readyz"),
        (Method::POST, "/metrics"),
        (Method::POST, "/flows"),
        (Method::POST, "/flow/greet/requests/abc"),
        (Method::GET, "/flow/greet/requests/abc/pause"),
    ] {
        let reply = send(&router, method.clone(), uri, &[], Body::empty()).await;
        reply.expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    }
}

// ---------------------------------------------------------------------------------------------
// The same routes on Redis.

/// A service on a Redis server of its own, with a worker running in this process; the worker
/// stops, and the server is killed, when dropped.
///
/// (Not `support::shared_url()`: that server is leaked on purpose and outlives the test
/// process, one more `redis-server` left running per run.)
struct RedisService {
    router: Router,
    worker: support::LocalWorker,
    /// Dropped last, after the worker has been stopped.
    _server: support::RedisServer,
}

impl RedisService {
    async fn start(test: &str, settings: Settings) -> Self {
        Self::start_with(test, settings, 4, None).await
    }

    /// A service whose worker runs `concurrency` attempts at once, with `lease` instead of
    /// the tests' short one.
    async fn start_with(
        test: &str,
        settings: Settings,
        concurrency: usize,
        lease: Option<Duration>,
    ) -> Self {
        let server = support::RedisServer::start();
        let mut config = support::config_at(&server.url(), test);
        if let Some(lease) = lease {
            config.lease = lease;
        }
        let settings = Settings {
            redis_url: Some(config.url.clone()),
            redis_prefix: config.prefix.clone(),
            ..settings
        };
        let router = service(settings)
            .router()
            .await
            .expect("the redis service builds its router");
        let engine = RedisEngine::builder(config)
            .register::<Kyc>()
            .register::<KycLinear>()
            .register::<Onboarding>()
            .register::<Greet>()
            .register::<Counted>()
            .register::<Held>()
            .register::<Priced>()
            .connect()
            .await
            .expect("connect the worker's engine");
        Self {
            router,
            worker: support::LocalWorker::start(&engine, concurrency),
            _server: server,
        }
    }

    async fn stop(self) {
        self.worker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_submit_wait_status_and_errors() {
    let service = RedisService::start("svc-submit", Settings::default()).await;
    let router = &service.router;

    assert_eq!(
        get(router, "/readyz").await.expect(StatusCode::OK),
        json!({"status": "ready", "engine": "redis"})
    );
    assert_eq!(
        get(router, "/flows").await.expect(StatusCode::OK)["engine"],
        "redis"
    );

    // ?wait: the verdict, and every vertex run by the worker.
    let reply = post(router, "/flow/kyc?wait=10", json!({"user_id": "alice"})).await;
    let body = reply.expect(StatusCode::OK);
    assert_eq!(body["status"], "completed", "body: {body}");
    assert_eq!(body["output"]["kyc_verified"], true, "body: {body}");
    let id = reply.header("x-request-id").expect("an id").to_owned();
    let status = get(router, &format!("/flow/kyc/requests/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(status["output"]["user_id"], "alice");
    for v in status["vertices"].as_array().expect("vertices") {
        assert_eq!(v["status"], "done", "vertex {v}");
        assert_eq!(v["worker"], service.worker.consumer(), "vertex {v}");
    }

    // 202, then the location reports the request.
    let reply = post(router, "/flow/greet", json!("Gus")).await;
    let (_, location) = accepted(&reply, "greet");
    assert_eq!(reply.json()["status"], "queued");
    let status = poll(router, &location, "greet completes", is_final).await;
    assert_eq!(status["output"], "Hello Gus", "status: {status}");

    // A client id never starts a second run.
    let key = unique("redis-idem");
    let id = unique("redis-order");
    for _ in 0..3 {
        let body = send(
            router,
            Method::POST,
            "/flow/counted?wait=10",
            &[("x-request-id", id.as_str())],
            json!(key).to_string(),
        )
        .await
        .expect(StatusCode::OK);
        assert_eq!(body["output"], 1, "body: {body}");
    }
    assert_eq!(count_of(&key), 1);
    assert_eq!(started_total(router, "counted").await, 1);

    // A failure.
    let body = post(router, "/flow/kyc?wait=10", json!({"user_id": ""}))
        .await
        .expect(StatusCode::OK);
    assert_failed_on_empty_user(&body);

    // The errors that do not depend on the engine, and those that do.
    send(
        router,
        Method::POST,
        "/flow/greet",
        &[("x-request-id", "no spaces")],
        json!("x").to_string(),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_request_id");
    let message = post(
        router,
        "/flow/priced",
        json!({"customer": {"name": "Ann", "age": -1}, "lines": []}),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("customer.age"), "{message}");
    post(router, "/flow/nope", json!({}))
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_flow");
    get(router, &format!("/flow/greet/requests/{}", unique("never")))
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_request");
    send(
        router,
        Method::POST,
        &format!("/flow/greet/requests/{}/stop", unique("never")),
        &[],
        Body::empty(),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "unknown_request");

    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_short_wait_auth_and_body_limit() {
    let service = RedisService::start(
        "svc-auth",
        Settings {
            api_token: Some("redis-token".to_owned()),
            body_limit: 128,
            ..Settings::default()
        },
    )
    .await;
    let router = &service.router;
    let auth = [("authorization", "Bearer redis-token")];

    let reply = send(router, Method::POST, "/flow/greet?wait=5", &[], "\"x\"").await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    for uri in ["/healthz", "/readyz", "/metrics"] {
        assert_eq!(get(router, uri).await.status, StatusCode::OK, "{uri}");
    }

    // A short wait on an unfinished request: 202 with its current status.
    let key = unique("redis-wait");
    let reply = send(
        router,
        Method::POST,
        "/flow/held?wait=0.05",
        &auth,
        json!(key).to_string(),
    )
    .await;
    let (_, location) = accepted(&reply, "held");
    assert!(
        matches!(reply.json()["status"].as_str(), Some("queued" | "running")),
        "body: {}",
        reply.text()
    );
    release(&key);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = send(router, Method::GET, &location, &auth, Body::empty())
            .await
            .expect(StatusCode::OK);
        if status["status"] == "completed" {
            assert_eq!(status["output"], format!("{key} done"));
            break;
        }
        assert!(Instant::now() < deadline, "held did not complete: {status}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    send(
        router,
        Method::POST,
        "/flow/greet",
        &auth,
        json!("z".repeat(200)).to_string(),
    )
    .await
    .expect_error(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large");

    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_pause_resume_and_stop_with_conflicts() {
    let service = RedisService::start("svc-control", Settings::default()).await;
    control_round_trip(&service.router).await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_busy_worker_strands_no_entries() {
    // One slot and a lease longer than the test: an entry delivered to this worker but not
    // run would only be run again after the lease, so every request must complete without it.
    let service = RedisService::start_with(
        "svc-strand",
        Settings::default(),
        1,
        Some(Duration::from_secs(600)),
    )
    .await;
    let router = &service.router;
    // Occupy the only slot, then make entries ready in two more flows.
    let key = unique("strand");
    let (_, held) = accepted(&post(router, "/flow/held", json!(key)).await, "held");
    poll(router, &held, "hold starts", |s| {
        vertex(s, "hold")["status"] == "running"
    })
    .await;
    let (_, greet) = accepted(&post(router, "/flow/greet", json!("Hal")).await, "greet");
    let counted_key = unique("strand-count");
    let (_, counted) = accepted(
        &post(router, "/flow/counted", json!(counted_key)).await,
        "counted",
    );
    // Freed, the slot takes the next entries: `after_hold`, `greet` and `count` are ready in
    // three streams.
    release(&key);
    for location in [&held, &greet, &counted] {
        let status = poll(router, location, "every request completes", is_final).await;
        assert_eq!(status["status"], "completed", "status: {status}");
    }
    service.stop().await;
}

/// A service on a Redis server of this test's own.
async fn service_on(server: &support::RedisServer) -> Router {
    service(Settings {
        redis_url: Some(server.url()),
        redis_prefix: unique("svc-ready"),
        ..Settings::default()
    })
    .router()
    .await
    .expect("the redis service builds its router")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_readiness_follows_the_server() {
    let mut server = support::RedisServer::start();
    let router = service_on(&server).await;
    assert_eq!(
        get(&router, "/readyz").await.expect(StatusCode::OK),
        json!({"status": "ready", "engine": "redis"})
    );
    // Liveness does not depend on Redis.
    server.kill();
    assert_eq!(
        get(&router, "/healthz").await.expect(StatusCode::OK),
        json!({"status": "ok"})
    );
    assert_eq!(get(&router, "/flow/kyc.mmd").await.status, StatusCode::OK);
    // Back up: ready again (the client reconnects on its own).
    server.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reply = get(&router, "/readyz").await;
        if reply.status == StatusCode::OK {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ready again after the restart: {} {}",
            reply.status,
            reply.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    post(&router, "/flow/greet", json!("back"))
        .await
        .expect(StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_readiness_is_503_while_the_server_is_down() {
    let mut server = support::RedisServer::start();
    let router = service_on(&server).await;
    get(&router, "/readyz").await.expect(StatusCode::OK);
    server.kill();
    let limit = Duration::from_secs(10);
    for (method, uri, body) in [
        (Method::GET, "/readyz", String::new()),
        (Method::POST, "/flow/greet", json!("x").to_string()),
        (Method::GET, "/flow/greet/requests/abc", String::new()),
    ] {
        let reply = send_within(&router, method.clone(), uri, &[], body, limit)
            .await
            .unwrap_or_else(|| {
                panic!("{method} {uri}: no answer within {limit:?} while Redis is down")
            });
        reply.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    }
}
