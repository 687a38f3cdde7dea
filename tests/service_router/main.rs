//! `FlowService`'s routes, driven without sockets: the router answers requests built in the
//! test (`tower::ServiceExt::oneshot`), on the embedded engine and on Redis (with a worker run
//! in this process). Every route and every error status is covered.
//!
//! The workflows are the KYC example's (`kyc`, `kyc_linear`, `onboarding`, `greet`) plus three
//! of the tests' own: `counted` counts its runs per key (to see that a request id never starts
//! a second run), `held` waits until the test releases its key (so a request is paused, resumed
//! or stopped at a known point, without timing), and `priced` has a nested input (to see the
//! path of a mistyped field in the error).
//!
//! The workflows and helpers are here; the tests are in one module per part of the API:
//! [`submit`], [`auth`], [`control`] (status and control), [`graphs`] (graphs, probes, metrics,
//! routing), [`requests`] (listing, counts, long-poll), [`dashboard`] (its files and what it reads)
//! and [`redis`] (the same routes on Redis).

#[path = "../support/mod.rs"]
mod support;

// The answer type shared with the KYC example's end-to-end test, which includes this file
// too; it names `HeaderMap`, `StatusCode` and `Value` from here.
mod reply;

mod auth;
mod control;
mod dashboard;
mod graphs;
mod redis;
mod requests;
mod submit;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use goflow::prelude::*;
use goflow::service::{FlowService, Settings};
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower::ServiceExt as _;

use reply::{assert_settled, is_final, vertex, Reply};

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

/// `n` numbers.
#[node]
async fn numbers(n: u32) -> Vec<u32> {
    (0..n).collect()
}

#[node]
async fn double(n: u32) -> u32 {
    n * 2
}

#[node]
async fn sum(all: Vec<u32>) -> u32 {
    all.into_iter().sum()
}

workflow! {
    /// Counts its runs.
    pub Counted = count;
    /// A for-each over `n` items: a request with many vertex instances.
    pub Doubled = numbers -> each { double } => sum;
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

/// A service with the default settings, for a test to change with the service's builder
/// methods (`defaults().max_wait(..)`).
fn defaults() -> FlowService {
    FlowService::new(Settings::default())
}

/// The KYC example's service with the tests' workflows added.
fn service(base: FlowService) -> FlowService {
    goflow_kyc_app::service(base)
        .register::<Counted>()
        .register::<Held>()
        .register::<Priced>()
        .register::<Doubled>()
}

/// The routes of a service on the embedded engine.
async fn embedded(base: FlowService) -> Router {
    assert!(base.settings().redis_url.is_none());
    service(base)
        .router()
        .await
        .expect("the embedded service builds its router")
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

/// Asserts the status of a `kyc` request for the empty user: failed at its first vertex, for
/// good, and every other vertex skipped.
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
    // Never ready when the request ended: skipped, on both engines.
    for never in ["face_detect", "face_match", "mark_profile"] {
        assert_eq!(
            vertex(status, never)["status"],
            "skipped",
            "status: {status}"
        );
    }
    assert_settled(status);
}
