//! Finding requests: `GET /flow/{name}/requests` (filters, paging, bad filters),
//! `GET /flow/{name}/requests/counts`, the long-poll `GET /flow/{name}/requests/{id}?wait=`, and
//! the dead letters, `GET /flow/{name}/dead`, and bulk actions,
//! `POST /flow/{name}/requests/actions/{action}`.

use serde_json::json;

use super::*;

/// Submits `count` requests of `held` under fresh keys, releasing the first `completed` of
/// them and leaving the rest running; answers the keys and the locations, in submission order.
async fn held_requests(router: &Router, count: usize, completed: usize) -> Vec<(String, String)> {
    let mut requests = Vec::new();
    for i in 0..count {
        let key = unique("list");
        let (_, location) = accepted(&post(router, "/flow/held", json!(key)).await, "held");
        if i < completed {
            release(&key);
        }
        requests.push((key, location));
    }
    for (i, (_, location)) in requests.iter().enumerate() {
        let target = if i < completed {
            "completed"
        } else {
            "running"
        };
        poll(router, location, "the request settles", |s| {
            s["status"] == target
                && (target == "completed" || vertex(s, "hold")["status"] == "running")
        })
        .await;
    }
    requests
}

/// The listing routes, shared by the embedded and the Redis tests.
pub(super) async fn listing_round_trip(router: &Router) {
    let requests = held_requests(router, 5, 3).await;

    let counts = get(router, "/flow/held/requests/counts")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        counts,
        json!({"queued": 0, "running": 2, "paused": 0, "completed": 3, "failed": 0, "stopped": 0})
    );

    // Newest first, two to a page, the cursor leading on.
    let page = get(
        router,
        "/flow/held/requests?status=completed,running&limit=2",
    )
    .await
    .expect(StatusCode::OK);
    let listed = page["requests"].as_array().expect("requests").clone();
    assert_eq!(listed.len(), 2, "page: {page}");
    let newest = requests.last().unwrap().1.rsplit('/').next().unwrap();
    assert_eq!(listed[0]["request_id"], newest, "page: {page}");
    assert_eq!(listed[0]["status"], "running");
    assert!(
        listed[0]["created_at_ms"].as_u64().is_some(),
        "page: {page}"
    );
    assert_eq!(listed[0]["ended_at_ms"], Value::Null);
    let mut seen: Vec<Value> = listed.iter().map(|r| r["request_id"].clone()).collect();
    let mut cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    loop {
        let page = get(
            router,
            &format!("/flow/held/requests?limit=2&cursor={cursor}"),
        )
        .await
        .expect(StatusCode::OK);
        seen.extend(
            page["requests"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["request_id"].clone()),
        );
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let expected: Vec<Value> = requests
        .iter()
        .rev()
        .map(|(_, location)| json!(location.rsplit('/').next().unwrap()))
        .collect();
    assert_eq!(seen, expected);

    let completed = get(router, "/flow/held/requests?status=completed")
        .await
        .expect(StatusCode::OK);
    let completed = completed["requests"].as_array().unwrap();
    assert_eq!(completed.len(), 3);
    assert!(completed
        .iter()
        .all(|r| r["ended_at_ms"].as_u64().is_some()));
    let created: Vec<u64> = completed
        .iter()
        .map(|r| r["created_at_ms"].as_u64().unwrap())
        .collect();
    let later = get(
        router,
        &format!("/flow/held/requests?since={}", created[0] + 1),
    )
    .await
    .expect(StatusCode::OK);
    assert!(
        later["requests"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["created_at_ms"].as_u64() > Some(created[0])),
        "{later}"
    );

    // Bad filters name what is wrong.
    for (query, says) in [
        ("status=done", "`status`"),
        ("limit=0", "`limit`"),
        ("limit=501", "`limit`"),
        ("since=yesterday", "`since`"),
        ("since=20&until=10", "`until`"),
        ("cursor=nope", "`cursor`"),
        ("colour=red", "`colour`"),
    ] {
        let message = get(router, &format!("/flow/held/requests?{query}"))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_filter");
        assert!(message.contains(says), "{query}: {message}");
    }
    get(router, "/flow/nosuch/requests")
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_flow");
    get(router, "/flow/nosuch/requests/counts")
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_flow");

    // Long-poll a running request: a short wait answers it running, a longer one once it has
    // ended (it is released meanwhile).
    let (key, location) = &requests[4];
    let body = get(router, &format!("{location}?wait=0.2"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["status"], "running", "body: {body}");
    let waiting = {
        let router = router.clone();
        let location = location.clone();
        tokio::spawn(async move { get(&router, &format!("{location}?wait=30")).await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    release(key);
    let body = waiting.await.unwrap().expect(StatusCode::OK);
    assert_eq!(body["status"], "completed", "body: {body}");
    assert_eq!(body["output"], format!("{key} done"));
    get(router, &format!("{location}?wait=soon"))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_wait");
    release(&requests[3].0);
    poll(router, &requests[3].1, "the last one completes", is_final).await;

    // A request that fails for good is a dead letter, newest first.
    let mut failed = Vec::new();
    for _ in 0..3 {
        let reply = post(router, "/flow/kyc?wait=10", json!({"user_id": ""})).await;
        let body = reply.expect(StatusCode::OK);
        assert_eq!(body["status"], "failed", "body: {body}");
        failed.push(body["request_id"].clone());
    }
    let page = get(router, "/flow/kyc/dead?limit=2")
        .await
        .expect(StatusCode::OK);
    let dead = page["dead"].as_array().expect("dead").clone();
    assert_eq!(dead.len(), 2, "page: {page}");
    assert_eq!(dead[0]["request_id"], failed[2], "page: {page}");
    assert_eq!(dead[1]["request_id"], failed[1], "page: {page}");
    assert_eq!(
        dead[0]["failure"]["vertex"], "get_kyc_image",
        "page: {page}"
    );
    assert!(dead[0]["at_ms"].as_u64().is_some(), "page: {page}");
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let rest = get(router, &format!("/flow/kyc/dead?limit=2&cursor={cursor}"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(rest["dead"][0]["request_id"], failed[0], "rest: {rest}");
    for query in ["limit=0", "cursor=nope", "colour=red"] {
        get(router, &format!("/flow/kyc/dead?{query}"))
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_filter");
    }

    // Bulk actions: stop the running ones, skip the rest with the reason.
    let running = held_requests(router, 2, 0).await;
    let body = post(
        router,
        "/flow/held/requests/actions/stop",
        json!({"status": ["running", "paused"]}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(body["matched"], 2, "body: {body}");
    assert_eq!(body["applied"], 2, "body: {body}");
    assert_eq!(body["more"], false, "body: {body}");
    let ended = json!([id_of(&running[0].1), id_of(&requests[0].1)]);
    let body = post(
        router,
        "/flow/held/requests/actions/pause",
        json!({"ids": ended}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        (&body["matched"], &body["applied"]),
        (&json!(2), &json!(0)),
        "body: {body}"
    );
    assert_eq!(body["skipped"][0]["request_id"], ended[0], "body: {body}");
    let reason = body["skipped"][0]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("it is stopped"), "body: {body}");
    for (key, _) in &running {
        release(key);
    }

    // Retries: a stopped request runs on under the same id, by its own route or in bulk (here
    // from the start); a completed one is a conflict that says why.
    let (first, second) = (id_of(&running[0].1), id_of(&running[1].1));
    let body = post(
        router,
        &format!("/flow/held/requests/{first}/retry"),
        json!(null),
    )
    .await
    .expect(StatusCode::ACCEPTED);
    assert_eq!(body["status"], "running", "body: {body}");
    let body = post(
        router,
        "/flow/held/requests/actions/retry?from=start",
        json!({"ids": [second], "status": ["stopped"]}),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        (&body["matched"], &body["applied"]),
        (&json!(1), &json!(1)),
        "body: {body}"
    );
    for (_, location) in &running {
        let state = poll(router, location, "the retried request completes", is_final).await;
        assert_eq!(state["status"], "completed", "state: {state}");
        assert_eq!(state["retries"], 1, "state: {state}");
    }
    let message = post(
        router,
        &format!("/flow/held/requests/{first}/retry"),
        json!(null),
    )
    .await
    .expect_error(StatusCode::CONFLICT, "conflict");
    assert!(
        message.contains("a completed request is not retried"),
        "{message}"
    );
    for bad in ["retry?from=later", "pause?from=start", "retry?colour=red"] {
        post(
            router,
            &format!("/flow/held/requests/{first}/{bad}"),
            json!(null),
        )
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_action");
    }
    for bad in [
        json!({}),
        json!({"status": ["done"]}),
        json!({"colour": "red"}),
        json!({"ids": ["not an id"]}),
        json!({"since": 20, "until": 10}),
        json!({"ids": vec!["a"; 1_001]}),
        json!([1, 2]),
    ] {
        post(router, "/flow/held/requests/actions/stop", bad.clone())
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_filter");
    }
    post(
        router,
        "/flow/held/requests/actions/explode",
        json!({"status": ["running"]}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
    post(
        router,
        "/flow/nosuch/requests/actions/stop",
        json!({"status": ["running"]}),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "unknown_flow");
}

/// The request id at the end of a location.
fn id_of(location: &str) -> &str {
    location.rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_listed_counted_and_long_polled() {
    let router = embedded(defaults()).await;
    listing_round_trip(&router).await;
}

/// The parsed events of an SSE body: `(event, id, data)` each.
fn sse_events(text: &str) -> Vec<(String, String, Value)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = None;
            let mut id = None;
            let mut data = None;
            for line in block.lines() {
                if let Some(rest) = line.strip_prefix("event: ") {
                    event = Some(rest.to_owned());
                } else if let Some(rest) = line.strip_prefix("id: ") {
                    id = Some(rest.to_owned());
                } else if let Some(rest) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(rest).ok();
                }
            }
            Some((event?, id?, data?))
        })
        .collect()
}

/// The events routes, shared by the embedded and the Redis tests: a request's events as SSE,
/// ending with its end; resumed with `Last-Event-ID`; a workflow's events; bad ids.
pub(super) async fn events_round_trip(router: &Router) {
    let key = unique("events");
    let (_, location) = accepted(&post(router, "/flow/held", json!(key)).await, "held");
    let id = id_of(&location).to_owned();
    poll(router, &location, "hold runs", |s| {
        vertex(s, "hold")["status"] == "running"
    })
    .await;
    let events_of = format!("/flow/held/requests/{id}/events");
    let follow = {
        let (router, uri) = (router.clone(), events_of.clone());
        tokio::spawn(async move { get(&router, &uri).await })
    };
    // The stream answers as it stands at once; then the request ends, and the stream with it.
    tokio::time::sleep(Duration::from_millis(50)).await;
    release(&key);
    let reply = follow.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "body: {}", reply.text());
    assert_eq!(reply.header("content-type"), Some("text/event-stream"));
    let events = sse_events(&reply.text());
    let (last_event, _, last) = events.last().expect("events").clone();
    assert_eq!(last_event, "request");
    assert_eq!(last["status"], "completed", "events: {events:?}");
    assert!(events.iter().any(|(event, _, data)| event == "vertex"
        && data["vertex"] == "after_hold"
        && data["status"] == "done"));
    for (_, event_id, data) in &events {
        assert_eq!(data["request_id"], id.as_str());
        assert_eq!(&data["id"], event_id);
    }

    // Resumed after its first event: what came after it, ending with the end.
    let first_id = events[0].1.clone();
    let resumed = send(
        router,
        Method::GET,
        &events_of,
        &[("last-event-id", &first_id)],
        Body::empty(),
    )
    .await;
    assert_eq!(resumed.status, StatusCode::OK, "body: {}", resumed.text());
    let resumed = sse_events(&resumed.text());
    assert!(resumed.len() < events.len(), "resumed: {resumed:?}");
    assert_eq!(resumed.last().expect("the end").2["status"], "completed");
    let bad = send(
        router,
        Method::GET,
        &events_of,
        &[("last-event-id", "yesterday")],
        Body::empty(),
    )
    .await;
    bad.expect_error(StatusCode::BAD_REQUEST, "invalid_event_id");
    get(
        router,
        "/flow/held/requests/0123456789abcdef0123456789abcdef/events",
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "unknown_request");
    get(router, "/flow/nosuch/events")
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_flow");

    // A workflow's events, resumed after that first event: the rest of that request's, as
    // they come (the stream itself never ends).
    let request = Request::builder()
        .uri("/flow/held/events")
        .header("last-event-id", &first_id)
        .body(Body::empty())
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut text = String::new();
    while !text.contains("\"completed\"") {
        let frame = tokio::time::timeout(Duration::from_secs(30), body.frame())
            .await
            .expect("the next event")
            .expect("the stream goes on")
            .expect("a frame");
        if let Ok(data) = frame.into_data() {
            text.push_str(&String::from_utf8_lossy(&data));
        }
    }
    let flow_events = sse_events(&text);
    assert!(flow_events
        .iter()
        .all(|(_, _, data)| data["request_id"] == id.as_str()));
    assert_eq!(flow_events.last().unwrap().2["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_events_are_served_as_sse() {
    let router = embedded(defaults()).await;
    events_round_trip(&router).await;
}
