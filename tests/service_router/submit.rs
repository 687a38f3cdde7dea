//! Submitting: `POST /flow/{name}`, with and without `?wait`, and every way a submission is
//! refused.

use futures_util::StreamExt as _;
use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submit_answers_202_with_id_and_location() {
    let router = embedded(defaults()).await;
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
    let router = embedded(defaults()).await;
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
    let router = embedded(defaults()).await;
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
    let router = embedded(defaults().max_wait(Duration::from_millis(50))).await;
    let key = unique("max-wait");
    let reply = post(&router, "/flow/held?wait=3600", json!(key)).await;
    let (_, location) = accepted(&reply, "held");
    release(&key);
    poll(&router, &location, "held completes", is_final).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_wait_is_capped_at_max_wait() {
    let router = embedded(defaults()).await;
    let body = post(&router, "/flow/greet?wait=1e30", json!("Hu"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["output"], "Hello Hu");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_request_id_never_starts_a_second_run() {
    let router = embedded(defaults()).await;
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

    // Without `wait`: 200, not created, with the existing request's state.
    let third = send(
        &router,
        Method::POST,
        "/flow/counted",
        &headers,
        json!(key).to_string(),
    )
    .await;
    let body = third.expect(StatusCode::OK);
    assert_eq!(body["created"], false, "body: {body}");
    assert_eq!(body["status"], "completed", "body: {body}");
    assert_eq!(body["output"], 1, "body: {body}");
    assert_eq!(third.header("x-request-id"), Some(id.as_str()));
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
    let router = embedded(defaults()).await;
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
    // A header that is not even text: said so, not shown as `\u0000`.
    for header in ["x-request-id", "idempotency-key"] {
        let request = Request::post("/flow/counted")
            .header(
                header,
                axum::http::HeaderValue::from_bytes(b"caf\xe9").expect("an opaque header value"),
            )
            .body(Body::from(json!(key).to_string()))
            .expect("a request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let reply = Reply {
            status: parts.status,
            headers: parts.headers,
            body: body.collect().await.expect("a body").to_bytes().to_vec(),
        };
        let message = reply.expect_error(StatusCode::BAD_REQUEST, "invalid_request_id");
        assert!(
            message.contains(header) && message.contains("not UTF-8 visible ASCII"),
            "{message}"
        );
        assert!(!message.contains('\u{0}'), "{message:?}");
    }

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
    let router = embedded(defaults()).await;
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
    let router = embedded(defaults()).await;
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
    let router = embedded(defaults()).await;
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
    let router = embedded(defaults().body_limit(64)).await;
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
    // axum limits extracted bodies to 2 MB by default; the service's own limit is what counts
    // (with outputs allowed to be as large: greet's echoes its input).
    let limits = goflow::request::Limits::DEFAULT.with_max_output_bytes(8 << 20);
    let router = embedded(defaults().body_limit(4 << 20).limits(limits)).await;
    let name = "n".repeat(3 << 20);
    let body = post(&router, "/flow/greet?wait=10", json!(name))
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["output"].as_str().map(str::len), Some(6 + (3 << 20)));
}

/// The service's limits reach its engine: an output over `GOFLOW_MAX_OUTPUT_BYTES` fails its
/// vertex with a `limit` failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_services_limits_reach_its_engine() {
    let limits = goflow::request::Limits::DEFAULT.with_max_output_bytes(100);
    let router = embedded(defaults().limits(limits)).await;
    let body = post(&router, "/flow/greet?wait=10", json!("n".repeat(200)))
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["status"], "failed", "{body}");
    assert_eq!(body["failure"]["failure"]["kind"], "limit", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_input_under_an_existing_id_is_an_idempotency_conflict() {
    let router = embedded(defaults()).await;
    let key = unique("conflict");
    let id = unique("order");
    let headers = [("x-request-id", id.as_str())];
    let first = send(
        &router,
        Method::POST,
        "/flow/counted?wait=5",
        &headers,
        json!(key).to_string(),
    )
    .await;
    assert_eq!(first.expect(StatusCode::OK)["output"], 1);

    // Another body under the same id: 409, with the id, and nothing run.
    for wait in ["", "?wait=1"] {
        let reply = send(
            &router,
            Method::POST,
            &format!("/flow/counted{wait}"),
            &headers,
            json!(format!("{key}-other")).to_string(),
        )
        .await;
        let message = reply.expect_error(StatusCode::CONFLICT, "idempotency_conflict");
        assert!(message.contains(&id), "{message}");
        assert_eq!(reply.header("x-request-id"), Some(id.as_str()));
        assert_eq!(reply.json()["request_id"], id.as_str());
    }
    assert_eq!(count_of(&format!("{key}-other")), 0);

    // The same input written otherwise (spacing) is the same submission.
    let reply = send(
        &router,
        Method::POST,
        "/flow/counted",
        &headers,
        format!("  {}\n", json!(key)),
    )
    .await;
    let body = reply.expect(StatusCode::OK);
    assert_eq!(body["created"], false, "body: {body}");
    assert_eq!(count_of(&key), 1);
    assert_eq!(started_total(&router, "counted").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_a_request_id() {
    let router = embedded(defaults()).await;
    let key = unique("idem-key");
    let id = unique("key");
    // Bare, or quoted as the Idempotency-Key draft writes it: the same id.
    let quoted = format!("\"{id}\"");
    for value in [id.as_str(), quoted.as_str()] {
        let reply = send(
            &router,
            Method::POST,
            "/flow/counted?wait=5",
            &[("idempotency-key", value)],
            json!(key).to_string(),
        )
        .await;
        let body = reply.expect(StatusCode::OK);
        assert_eq!(body["request_id"], id.as_str(), "body: {body}");
        assert_eq!(body["output"], 1, "body: {body}");
        assert_eq!(reply.header("x-request-id"), Some(id.as_str()));
    }
    // With X-Request-Id too: the same id is fine, different ones are refused.
    let reply = send(
        &router,
        Method::POST,
        "/flow/counted",
        &[
            ("idempotency-key", id.as_str()),
            ("x-request-id", id.as_str()),
        ],
        json!(key).to_string(),
    )
    .await;
    assert_eq!(reply.expect(StatusCode::OK)["created"], false);
    let other = unique("other");
    let message = send(
        &router,
        Method::POST,
        "/flow/counted",
        &[
            ("idempotency-key", id.as_str()),
            ("x-request-id", other.as_str()),
        ],
        json!(key).to_string(),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_request_id");
    assert!(message.contains("differ"), "{message}");
    send(
        &router,
        Method::POST,
        "/flow/counted",
        &[("idempotency-key", "not valid")],
        json!(key).to_string(),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_request_id");
    assert_eq!(count_of(&key), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_submission_names_its_request_id() {
    let router = embedded(defaults().body_limit(64)).await;
    let id = unique("refused");
    let given = [("x-request-id", id.as_str())];
    for headers in [&given[..], &[][..]] {
        for (uri, body, status, code) in [
            (
                "/flow/greet",
                "1".to_owned(),
                StatusCode::BAD_REQUEST,
                "invalid_input",
            ),
            (
                "/flow/greet?wait=x",
                "\"a\"".to_owned(),
                StatusCode::BAD_REQUEST,
                "invalid_wait",
            ),
            (
                "/flow/greet",
                json!("x".repeat(100)).to_string(),
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
            ),
            (
                "/flow/nope",
                "\"a\"".to_owned(),
                StatusCode::NOT_FOUND,
                "unknown_flow",
            ),
        ] {
            let reply = send(&router, Method::POST, uri, headers, body).await;
            reply.expect_error(status, code);
            let named = reply
                .header("x-request-id")
                .unwrap_or_else(|| panic!("{uri}: no X-Request-Id on {}", reply.text()))
                .to_owned();
            assert_eq!(reply.json()["request_id"], named.as_str(), "{uri}");
            if !headers.is_empty() {
                assert_eq!(named, id, "{uri}");
            }
        }
    }
    // Nothing was created under the id.
    get(&router, &format!("/flow/greet/requests/{id}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_does_not_arrive_in_time_is_408() {
    let router = embedded(defaults().body_timeout(Duration::from_millis(300))).await;
    let id = unique("slow-body");
    // A body that sends a first byte, then nothing.
    let first = futures_util::stream::once(async { Ok::<_, std::io::Error>(b"\"".to_vec()) });
    let body = Body::from_stream(first.chain(futures_util::stream::pending()));
    let started = Instant::now();
    let reply = send(
        &router,
        Method::POST,
        "/flow/greet",
        &[("x-request-id", id.as_str())],
        body,
    )
    .await;
    let message = reply.expect_error(StatusCode::REQUEST_TIMEOUT, "body_timeout");
    assert!(message.contains("GOFLOW_BODY_TIMEOUT"), "{message}");
    assert_eq!(reply.header("x-request-id"), Some(id.as_str()));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}
