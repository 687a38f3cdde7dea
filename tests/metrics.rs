//! The engines' Prometheus metrics, read from `FlowService`'s `GET /metrics` (router driven
//! without sockets): flows started and ended, attempt durations by outcome, retries,
//! dead-lettered vertices, reclaimed entries, the in-flight gauge and the streams' backlog, on
//! the embedded engine and on Redis (worker in this process).
//!
//! Metrics are process-global and the tests of this binary run at once, so every test has
//! workflows of its own (their names are the `flow` label) and compares before and after.
//! Neither `router()` nor a service started without `with_telemetry()` installs a recorder: the
//! first test to start checks that (a router's `/metrics` shows only its own counter, and says
//! no recorder is installed), then runs a service `with_telemetry()`, which installs it (see
//! `install_recorder`).

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use goflow::prelude::*;
use goflow::redis::RedisEngine;
use goflow::service::{FlowService, Settings};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;

// ---------------------------------------------------------------------------------------------
// The tests' workflows: the same nodes under a name per test.

/// Keys whose first attempt of `flaky` has failed.
fn failed_once() -> &'static Mutex<HashSet<String>> {
    static FAILED: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    FAILED.get_or_init(Mutex::default)
}

/// Succeeds at once.
#[node]
async fn ok(key: String) -> String {
    format!("{key} ok")
}

/// Fails its first attempt for each key, then succeeds.
#[node(retries = 2, backoff = "10ms")]
async fn flaky(key: String) -> Result<String, NodeError> {
    let first = failed_once()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.clone());
    if first {
        return Err(NodeError::new(format!("{key}: first attempt fails")));
    }
    Ok(key)
}

/// Fails every attempt (retryably): two attempts, then the vertex fails for good.
#[node(retries = 1, backoff = "10ms")]
async fn doomed(key: String) -> Result<String, NodeError> {
    Err(NodeError::new(format!("{key}: never works")))
}

/// Runs until its request is stopped, which drops the attempt (failing after a minute, so a
/// test bug cannot hang). It does not watch its `Context`: returning when cancelled would race
/// with the engine dropping it, and the outcome would be `error` or `cancelled` by chance.
#[node]
async fn held(key: String) -> Result<String, NodeError> {
    tokio::time::sleep(Duration::from_secs(60)).await;
    Err(NodeError::permanent(format!("{key} was never stopped")))
}

workflow! {
    /// Embedded: completes.
    pub EmbOk = ok;
    /// Embedded: completes after a retry.
    pub EmbFlaky = flaky;
    /// Embedded: fails after a retry.
    pub EmbDoomed = doomed;
    /// Embedded: runs until stopped.
    pub EmbHeld = held;
    /// Embedded: run by one service, seen by another.
    pub EmbShared = ok;
    /// Embedded: run by a router before any recorder is installed.
    pub EmbBare = ok;
    /// Redis: completes.
    pub RedOk = ok;
    /// Redis: completes after a retry.
    pub RedFlaky = flaky;
    /// Redis: fails after a retry, and is dead-lettered.
    pub RedDoomed = doomed;
    /// Redis: runs until stopped.
    pub RedHeld = held;
    /// Redis: its entry is taken by a worker that dies, and reclaimed.
    pub RedReclaim = ok;
}

// ---------------------------------------------------------------------------------------------
// Helpers.

/// A name no other test (or earlier run) uses.
fn unique(what: &str) -> String {
    format!("{what}-{:08x}", fastrand::u32(..))
}

/// Sends one request through `router`; returns the status and the body as text.
async fn send(
    router: &Router,
    method: Method,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, String) {
    let mut request = Request::builder().method(method).uri(uri);
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    let request = request
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_string())))
        .expect("a valid request");
    let response = tokio::time::timeout(Duration::from_secs(30), router.clone().oneshot(request))
        .await
        .unwrap_or_else(|_| panic!("{uri}: no answer within 30 s"))
        .expect("the router is infallible");
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("read the response body")
        .to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Submits `input` to `flow` and waits for the end; returns the final status JSON.
async fn run(router: &Router, flow: &str, input: &str) -> Value {
    let (status, body) = send(
        router,
        Method::POST,
        &format!("/flow/{flow}?wait=30"),
        Some(json!(input)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{flow}: {body}");
    serde_json::from_str(&body).expect("a JSON body")
}

/// Submits `input` to `flow` without waiting; returns the request's location.
async fn submit(router: &Router, flow: &str, input: &str) -> String {
    let (status, body) = send(
        router,
        Method::POST,
        &format!("/flow/{flow}"),
        Some(json!(input)),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{flow}: {body}");
    let body: Value = serde_json::from_str(&body).expect("a JSON body");
    format!(
        "/flow/{flow}/requests/{}",
        body["request_id"].as_str().expect("an id")
    )
}

/// The request's status JSON.
async fn status(router: &Router, location: &str) -> Value {
    let (status, body) = send(router, Method::GET, location, None).await;
    assert_eq!(status, StatusCode::OK, "{location}: {body}");
    serde_json::from_str(&body).expect("a JSON body")
}

/// Installs the process's Prometheus recorder, once, as a program does: `router()` installs
/// nothing (it leaves process globals to the application), nor does a service that runs
/// without `with_telemetry()`; one that runs with it does. Before that, checks that a router's
/// `/metrics` shows only the service's own counter, however many flows it ran, while a
/// service without the opt-in runs. The service with it runs for the rest of the test process,
/// on a free local port, in a thread of its own (each test has its own runtime, which ends with
/// the test).
async fn install_recorder() {
    static INSTALLED: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            // A service that runs, without the opt-in: it installs neither a recorder nor a
            // subscriber.
            let (_, bare) = start_service(FlowService::new(Settings::default())).await;
            assert!(
                !tracing::dispatcher::has_been_set(),
                "a service started without with_telemetry() installed a tracing subscriber"
            );
            let router = FlowService::new(Settings::default())
                .register::<EmbBare>()
                .router()
                .await
                .expect("the embedded service builds its router");
            let done = run(&router, "emb_bare", "bare").await;
            assert_eq!(done["status"], "completed", "{done}");
            let text = scrape(&router).await;
            assert!(
                text.contains("goflow_http_flows_started_total{flow=\"emb_bare\"} 1"),
                "{text}"
            );
            assert!(
                !text.contains("goflow_flows_started_total")
                    && !text.contains("goflow_vertex_duration_seconds"),
                "a router, or a service started without with_telemetry(), installed a \
                 recorder:\n{text}"
            );
            assert!(
                text.contains("\n# No metrics recorder is installed: "),
                "/metrics does not say that no recorder is installed:\n{text}"
            );
            bare.cancel();

            // The service would install its log subscriber too (unless there is one): the
            // tests' output stays quiet with a silent one installed first (the service says,
            // to it, that it installs none).
            let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry());
            // It installs the recorder before it listens.
            let _ = start_service(FlowService::new(Settings::default()).with_telemetry()).await;
        })
        .await;
}

/// Starts `service` (`start_server()`) on a free local port, in a thread of its own; returns
/// once it listens, with its port and the token that shuts it down.
async fn start_service(service: FlowService) -> (u16, tokio_util::sync::CancellationToken) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let service = service.host("127.0.0.1").port(port);
    let shutdown = service.shutdown_token();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the service");
        runtime.block_on(service.start_server())
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            !thread.is_finished(),
            "the service ended: {:?}",
            thread.join()
        );
        assert!(
            Instant::now() < deadline,
            "the service did not listen on port {port} within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (port, shutdown)
}

/// `GET /metrics`, as text.
async fn scrape(router: &Router) -> String {
    let (status, body) = send(router, Method::GET, "/metrics", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The sum of the samples of `name` whose labels include `labels` (0 when there are none), in
/// a page of the Prometheus text format.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((metric, rest)) => (metric, rest.strip_suffix('}')?),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let found: HashMap<&str, &str> = label_text
                .split(',')
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key, value.trim_matches('"')))
                })
                .collect();
            labels
                .iter()
                .all(|(key, value)| found.get(key) == Some(value))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// Whether the page has a sample of `name` with `labels`.
fn has_series(text: &str, name: &str, labels: &[(&str, &str)]) -> bool {
    let wanted = format!("{name}{{");
    text.lines().any(|line| {
        line.starts_with(&wanted)
            && labels
                .iter()
                .all(|(key, value)| line.contains(&format!("{key}=\"{value}\"")))
    })
}

/// One expected value: metric, labels, and its increase since `before`.
type Expected<'a> = (&'a str, Vec<(&'a str, &'a str)>, f64);

/// Scrapes until every metric in `expected` has grown by its amount since `before` (the
/// Redis worker counts an end after the script that wakes the caller, so a moment later),
/// failing after 30 s with the differences; returns the last page.
async fn expect_increases(router: &Router, before: &str, expected: &[Expected<'_>]) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = scrape(router).await;
        let wrong: Vec<String> = expected
            .iter()
            .filter_map(|(name, labels, increase)| {
                let got = sample(&now, name, labels) - sample(before, name, labels);
                ((got - increase).abs() > 1e-9)
                    .then(|| format!("{name}{labels:?}: +{got}, expected +{increase}"))
            })
            .collect();
        if wrong.is_empty() {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "after 30 s:\n{}\n\n/metrics:\n{now}",
            wrong.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls the request's status until its vertex `vertex` is running.
async fn until_running(router: &Router, location: &str, vertex: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = status(router, location).await;
        let running = state["vertices"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|v| v["vertex"] == vertex && v["status"] == "running");
        if running {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{vertex}` not running within 30 s: {state}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The expectations shared by both engines, for the flows `ok`, `flaky`, `doomed` and `held`
/// (named `{prefix}_ok` and so on) after three runs of `ok`, one each of `flaky` and `doomed`,
/// and one `held` request stopped while running.
fn shared_expectations(
    ok: &'static str,
    flaky: &'static str,
    doomed: &'static str,
    held: &'static str,
) -> Vec<Expected<'static>> {
    let f = |flow| vec![("flow", flow)];
    let v = |flow, vertex| vec![("flow", flow), ("vertex", vertex)];
    let o = |flow, vertex, outcome| vec![("flow", flow), ("vertex", vertex), ("outcome", outcome)];
    let count = "goflow_vertex_duration_seconds_count";
    vec![
        ("goflow_flows_started_total", f(ok), 3.0),
        ("goflow_flows_started_total", f(flaky), 1.0),
        ("goflow_flows_started_total", f(doomed), 1.0),
        ("goflow_flows_started_total", f(held), 1.0),
        ("goflow_flows_completed_total", f(ok), 3.0),
        ("goflow_flows_completed_total", f(flaky), 1.0),
        ("goflow_flows_completed_total", f(doomed), 0.0),
        ("goflow_flows_failed_total", f(doomed), 1.0),
        ("goflow_flows_failed_total", f(ok), 0.0),
        ("goflow_flows_stopped_total", f(held), 1.0),
        ("goflow_flows_completed_total", f(held), 0.0),
        ("goflow_flows_failed_total", f(held), 0.0),
        // Every attempt, by outcome: its `_count` is the number of attempts.
        (count, v(ok, "ok"), 3.0),
        (count, o(ok, "ok", "ok"), 3.0),
        (count, v(flaky, "flaky"), 2.0),
        (count, o(flaky, "flaky", "error"), 1.0),
        (count, o(flaky, "flaky", "ok"), 1.0),
        (count, o(doomed, "doomed", "error"), 2.0),
        (count, v(doomed, "doomed"), 2.0),
        (count, o(held, "held", "cancelled"), 1.0),
        (count, v(held, "held"), 1.0),
        ("goflow_vertex_retries_total", v(flaky, "flaky"), 1.0),
        ("goflow_vertex_retries_total", v(doomed, "doomed"), 1.0),
        ("goflow_vertex_retries_total", v(ok, "ok"), 0.0),
        // Nothing left running.
        ("goflow_vertices_in_flight", f(ok), 0.0),
        ("goflow_vertices_in_flight", f(held), 0.0),
    ]
}

/// The expectations of `ok`'s three runs (workflow `W`), by the version of its graph too.
fn versioned<W: goflow::Workflow>() -> Vec<Expected<'static>> {
    let version: &'static str =
        Box::leak(format!("{:016x}", W::graph().structural_hash()).into_boxed_str());
    let labels = vec![("flow", W::NAME), ("version", version)];
    vec![
        ("goflow_flows_started_total", labels.clone(), 3.0),
        ("goflow_flows_completed_total", labels.clone(), 3.0),
        ("goflow_vertex_duration_seconds_count", labels, 3.0),
    ]
}

/// Runs the shared scenario through `router`: three `ok`, one `flaky`, one `doomed`, and one
/// `held` stopped while it runs.
async fn run_scenario(router: &Router, ok: &str, flaky: &str, doomed: &str, held: &str) {
    for i in 0..3 {
        let done = run(router, ok, &format!("ok-{i}")).await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    let done = run(router, flaky, &unique("flaky")).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["vertices"][0]["attempts"], 2, "{done}");
    let done = run(router, doomed, "doomed").await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["failure"]["attempts"], 2, "{done}");

    let location = submit(router, held, "held").await;
    until_running(router, &location, "held").await;
    let (code, body) = send(router, Method::POST, &format!("{location}/stop"), None).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
}

// ---------------------------------------------------------------------------------------------
// The embedded engine.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_flows_attempts_and_retries_are_counted() {
    install_recorder().await;
    let router = FlowService::new(Settings::default())
        .register::<EmbOk>()
        .register::<EmbFlaky>()
        .register::<EmbDoomed>()
        .register::<EmbHeld>()
        .router()
        .await
        .expect("the embedded service builds its router");
    let before = scrape(&router).await;

    run_scenario(&router, "emb_ok", "emb_flaky", "emb_doomed", "emb_held").await;

    let mut expected = shared_expectations("emb_ok", "emb_flaky", "emb_doomed", "emb_held");
    expected.extend(versioned::<EmbOk>());
    // No dead-letter stream, no reclaiming on the embedded engine.
    expected.push((
        "goflow_vertices_dead_lettered_total",
        vec![("flow", "emb_doomed")],
        0.0,
    ));
    let text = expect_increases(&router, &before, &expected).await;

    // A real histogram, with the configured buckets, and HELP lines.
    assert!(
        text.contains("# TYPE goflow_vertex_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        has_series(
            &text,
            "goflow_vertex_duration_seconds_bucket",
            &[("flow", "emb_ok"), ("outcome", "ok"), ("le", "+Inf")]
        ),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "goflow_vertex_duration_seconds_bucket",
            &[("flow", "emb_ok"), ("le", "+Inf")]
        ),
        3.0,
        "{text}"
    );
    assert!(
        text.contains("# HELP goflow_flows_started_total "),
        "{text}"
    );
    // The service's own counter is still there.
    assert!(
        text.contains("goflow_http_flows_started_total{flow=\"emb_ok\"} 3"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_of_one_process_share_the_recorder() {
    // The recorder a running service installed is the process's: every service's routes
    // render it.
    install_recorder().await;
    let first = FlowService::new(Settings::default())
        .register::<EmbShared>()
        .router()
        .await
        .expect("a router");
    let second = FlowService::new(Settings::default())
        .register::<EmbShared>()
        .router()
        .await
        .expect("a router");
    let before = scrape(&second).await;
    let done = run(&first, "emb_shared", "shared").await;
    assert_eq!(done["status"], "completed", "{done}");
    // What one service's engine counts, every service of the process shows; each service's
    // own counter is its own.
    let expected: Vec<Expected<'_>> = vec![
        (
            "goflow_flows_started_total",
            vec![("flow", "emb_shared")],
            1.0,
        ),
        (
            "goflow_flows_completed_total",
            vec![("flow", "emb_shared")],
            1.0,
        ),
        (
            "goflow_http_flows_started_total",
            vec![("flow", "emb_shared")],
            0.0,
        ),
    ];
    expect_increases(&second, &before, &expected).await;
    let text = scrape(&first).await;
    assert_eq!(
        sample(
            &text,
            "goflow_http_flows_started_total",
            &[("flow", "emb_shared")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "goflow_flows_completed_total",
            &[("flow", "emb_shared")]
        ),
        1.0,
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------------
// The Redis engine.

/// A service on a Redis server of the test's own, and a worker in this process.
struct RedisService {
    router: Router,
    config: goflow::redis::RedisConfig,
    worker: Option<support::LocalWorker>,
    /// Dropped last, after the worker has stopped.
    _server: support::RedisServer,
}

impl RedisService {
    /// The service (no worker yet: see [`start_worker`](Self::start_worker)).
    async fn new(test: &str) -> Self {
        let (server, config) = support::own_server(test);
        let router = FlowService::new(Settings::default())
            .redis_url(config.url.clone())
            .redis_prefix(config.prefix.clone())
            .register::<RedOk>()
            .register::<RedFlaky>()
            .register::<RedDoomed>()
            .register::<RedHeld>()
            .register::<RedReclaim>()
            .router()
            .await
            .expect("the redis service builds its router");
        Self {
            router,
            config,
            worker: None,
            _server: server,
        }
    }

    async fn start_worker(&mut self) {
        let engine = RedisEngine::builder(self.config.clone())
            .register::<RedOk>()
            .register::<RedFlaky>()
            .register::<RedDoomed>()
            .register::<RedHeld>()
            .register::<RedReclaim>()
            .connect()
            .await
            .expect("connect the worker's engine");
        self.worker = Some(support::LocalWorker::start(&engine, 4));
    }

    async fn stop(self) {
        if let Some(worker) = self.worker {
            worker.stop().await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_flows_attempts_retries_and_dead_letters_are_counted() {
    install_recorder().await;
    let mut service = RedisService::new("metrics").await;
    service.start_worker().await;
    let router = &service.router;
    let before = scrape(router).await;

    run_scenario(router, "red_ok", "red_flaky", "red_doomed", "red_held").await;

    let mut expected = shared_expectations("red_ok", "red_flaky", "red_doomed", "red_held");
    expected.extend(versioned::<RedOk>());
    expected.extend([
        (
            "goflow_vertices_dead_lettered_total",
            vec![("flow", "red_doomed"), ("vertex", "doomed")],
            1.0,
        ),
        (
            "goflow_vertices_dead_lettered_total",
            vec![("flow", "red_flaky")],
            0.0,
        ),
        (
            "goflow_entries_reclaimed_total",
            vec![("flow", "red_ok")],
            0.0,
        ),
    ]);
    expect_increases(router, &before, &expected).await;

    // The backlog gauges, sampled by the worker (XLEN, and XINFO GROUPS' lag on Redis 7).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = scrape(router).await;
        let sampled = has_series(&text, "goflow_stream_length", &[("flow", "red_ok")])
            && has_series(&text, "goflow_consumer_group_lag", &[("flow", "red_ok")]);
        if sampled {
            assert!(
                sample(&text, "goflow_consumer_group_lag", &[("flow", "red_ok")]) >= 0.0,
                "{text}"
            );
            assert!(text.contains("# TYPE goflow_stream_length gauge"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no backlog gauges for red_ok within 30 s:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_reclaimed_entries_are_counted() {
    install_recorder().await;
    let mut service = RedisService::new("metrics-reclaim").await;
    let before = scrape(&service.router).await;
    // A request whose entry a worker reads and then dies with: read it as a consumer that
    // never acknowledges, before any real worker runs.
    let location = submit(&service.router, "red_reclaim", "lost").await;
    let client = support::raw_client(&service.config.url).await;
    let ready = support::ready_stream::<RedReclaim>(&service.config.prefix);
    let _: fred::prelude::Value = support::raw(
        &client,
        "XGROUP",
        vec![
            "CREATE".into(),
            ready.clone().into(),
            "workers".into(),
            "0".into(),
        ],
    )
    .await;
    let _: fred::prelude::Value = support::raw(
        &client,
        "XREADGROUP",
        vec![
            "GROUP".into(),
            "workers".into(),
            "ghost".into(),
            "COUNT".into(),
            "10".into(),
            "STREAMS".into(),
            ready.clone().into(),
            ">".into(),
        ],
    )
    .await;
    assert_eq!(
        support::pending_by_consumer(&client, &ready)
            .await
            .get("ghost"),
        Some(&1)
    );

    // The worker claims it once its lease (1.5 s in the tests) has passed, and runs it.
    service.start_worker().await;
    let expected: Vec<Expected<'_>> = vec![
        (
            "goflow_entries_reclaimed_total",
            vec![("flow", "red_reclaim")],
            1.0,
        ),
        (
            "goflow_flows_started_total",
            vec![("flow", "red_reclaim")],
            1.0,
        ),
        (
            "goflow_flows_completed_total",
            vec![("flow", "red_reclaim")],
            1.0,
        ),
        (
            "goflow_vertex_duration_seconds_count",
            vec![("flow", "red_reclaim"), ("outcome", "ok")],
            1.0,
        ),
    ];
    expect_increases(&service.router, &before, &expected).await;
    assert_eq!(
        status(&service.router, &location).await["status"],
        "completed"
    );
    service.stop().await;
}
