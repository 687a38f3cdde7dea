//! The same routes on Redis, with a worker running in this process.

use goflow::redis::RedisEngine;
use goflow_kyc_app::{Greet, Kyc, KycLinear, Onboarding, SlowGreet};
use serde_json::json;

use super::control::control_round_trip;
use super::dashboard::dashboard_round_trip;
use super::requests::{events_round_trip, listing_round_trip};
use super::*;

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
    async fn start(test: &str, base: FlowService) -> Self {
        Self::start_with(test, base, 4, None).await
    }

    /// A service whose worker runs `concurrency` attempts at once, with `lease` instead of
    /// the tests' short one.
    async fn start_with(
        test: &str,
        base: FlowService,
        concurrency: usize,
        lease: Option<Duration>,
    ) -> Self {
        let server = support::RedisServer::start();
        let mut config = support::config_at(&server.url(), test);
        if let Some(lease) = lease {
            config.lease = lease;
        }
        // The service's engine and the worker's share the server, the prefix and the lease.
        let base = base
            .redis_url(config.url.clone())
            .redis_prefix(config.prefix.clone())
            .lease(config.lease);
        let router = service(base)
            .router()
            .await
            .expect("the redis service builds its router");
        let engine = RedisEngine::builder(config)
            .register::<Kyc>()
            .register::<KycLinear>()
            .register::<Onboarding>()
            .register::<Greet>()
            .register::<SlowGreet>()
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
    let service = RedisService::start("svc-submit", defaults()).await;
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
        defaults().api_token("redis-token").body_limit(128),
    )
    .await;
    let router = &service.router;
    let auth = [("authorization", "Bearer redis-token")];

    let reply = send(router, Method::POST, "/flow/greet?wait=5", &[], "\"x\"").await;
    reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    for uri in ["/healthz", "/readyz"] {
        assert_eq!(get(router, uri).await.status, StatusCode::OK, "{uri}");
    }
    get(router, "/metrics")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let metrics = send(router, Method::GET, "/metrics", &auth, Body::empty()).await;
    assert_eq!(metrics.status, StatusCode::OK, "{}", metrics.text());

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
    let service = RedisService::start("svc-control", defaults()).await;
    control_round_trip(&service.router).await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_requests_are_listed_counted_and_long_polled() {
    let service = RedisService::start("svc-listing", defaults()).await;
    listing_round_trip(&service.router).await;
    events_round_trip(&service.router).await;
    dashboard_round_trip(&service.router).await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_a_busy_worker_strands_no_entries() {
    // One slot and a lease longer than the test: an entry delivered to this worker but not
    // run would only be run again after the lease, so every request must complete without it.
    let service =
        RedisService::start_with("svc-strand", defaults(), 1, Some(Duration::from_secs(600))).await;
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
    service(
        defaults()
            .redis_url(server.url())
            .redis_prefix(unique("svc-ready")),
    )
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

/// `FlowService::redis_config` changes the Redis engine's settings after those the service
/// derives from its own: here the key prefix, over the one `redis_prefix` set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_config_changes_the_engines_settings_after_the_services_own() {
    let server = support::RedisServer::start();
    let chosen = format!("chosen-{:08x}", fastrand::u32(..));
    let prefix = chosen.clone();
    let router = service(defaults())
        .redis_url(server.url())
        .redis_prefix("overridden")
        .redis_config(move |config| config.prefix = prefix.clone())
        .router()
        .await
        .expect("the redis service builds its router");
    let reply = post(&router, "/flow/greet", json!("ada")).await;
    let body = reply.expect(StatusCode::ACCEPTED);
    let id = body["request_id"]
        .as_str()
        .expect("a request id")
        .to_owned();
    let client = support::raw_client(&server.url()).await;
    let exists = |prefix: &str| format!("{}:req:{id}", support::flow_tag(prefix, "greet"));
    let under_chosen: u64 = support::raw(&client, "EXISTS", vec![exists(&chosen).into()]).await;
    let under_overridden: u64 =
        support::raw(&client, "EXISTS", vec![exists("overridden").into()]).await;
    assert_eq!((under_chosen, under_overridden), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_events_off_answers_404_events_off() {
    let base = defaults().redis_config(|config| config.events = false);
    let service = RedisService::start("svc-events-off", base).await;
    let router = &service.router;
    let key = unique("events-off");
    release(&key);
    let (_, location) = accepted(&post(router, "/flow/held", json!(key)).await, "held");
    for uri in [format!("{location}/events"), "/flow/held/events".to_owned()] {
        let message = get(router, &uri)
            .await
            .expect_error(StatusCode::NOT_FOUND, "events_off");
        assert!(message.contains("GOFLOW_EVENTS=off"), "{message}");
    }
    service.stop().await;
}
