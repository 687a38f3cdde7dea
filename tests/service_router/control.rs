//! Status and control: `GET /flow/{name}/requests/{id}` and pause, resume and stop.

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_every_vertex_and_the_decoded_output() {
    let router = embedded(defaults()).await;
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
    let router = embedded(defaults()).await;
    let reply = post(&router, "/flow/kyc?wait=5", json!({"user_id": ""})).await;
    let body = reply.expect(StatusCode::OK);
    assert_failed_on_empty_user(&body);
    let id = reply.header("x-request-id").expect("an id").to_owned();
    let status = get(&router, &format!("/flow/kyc/requests/{id}"))
        .await
        .expect(StatusCode::OK);
    assert_failed_on_empty_user(&status);
}

/// Pause, resume and stop a `held` request, checking every impossible transition; shared by
/// the embedded and the Redis tests. A control that does not apply is a 409 whose message is
/// the engine's `Error::Conflict`: "cannot <action> request `<id>` of `held`: it is <status>".
pub(super) async fn control_round_trip(router: &Router) {
    let action = |location: &str, action: &str| {
        let uri = format!("{location}/{action}");
        let router = router.clone();
        async move { send(&router, Method::POST, &uri, &[], Body::empty()).await }
    };

    // Pause while `hold` runs; the request goes on only once resumed.
    let key = unique("pause");
    let (id, location) = accepted(&post(router, "/flow/held", json!(key)).await, "held");
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
    assert_eq!(
        message,
        format!("cannot pause request `{id}` of `held`: it is paused")
    );
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
        assert_eq!(
            message,
            format!("cannot {a} request `{id}` of `held`: it is completed")
        );
    }
    action(&location, "frobnicate")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    // Stop while `hold` runs.
    let key = unique("stop");
    let (id, location) = accepted(&post(router, "/flow/held", json!(key)).await, "held");
    poll(router, &location, "hold starts", |s| {
        vertex(s, "hold")["status"] == "running"
    })
    .await;
    let message = action(&location, "resume")
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(
        message,
        format!("cannot resume request `{id}` of `held`: it is running")
    );
    let body = action(&location, "stop").await.expect(StatusCode::ACCEPTED);
    assert_eq!(body["status"], "stopped", "body: {body}");
    for a in ["pause", "resume", "stop"] {
        let message = action(&location, a)
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
        assert_eq!(
            message,
            format!("cannot {a} request `{id}` of `held`: it is stopped")
        );
    }
    let status = poll(router, &location, "the stopped attempt is cancelled", |s| {
        vertex(s, "hold")["status"] == "cancelled"
    })
    .await;
    assert_eq!(status["status"], "stopped", "status: {status}");
    // Still waiting for its input when the request ended: skipped.
    assert_eq!(
        vertex(&status, "after_hold")["status"],
        "skipped",
        "status: {status}"
    );
    assert_settled(&status);
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
    assert_eq!(
        vertex(&status, "after_hold")["status"],
        "skipped",
        "status: {status}"
    );
    assert_settled(&status);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_stop_with_conflicts() {
    let router = embedded(defaults()).await;
    control_round_trip(&router).await;
}
