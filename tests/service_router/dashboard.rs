//! What the dashboard is served and reads beside the other routes: its files at `/ui` (without
//! the token, with a policy that lets the page load nothing from elsewhere, and without actions
//! in read-only mode), a request's data, a workflow's workers, counts since a time, and its
//! versions (and a migration to this service's).

use goflow::service::Dashboard;
use serde_json::json;

use super::*;

/// Each vertex's output and the input, as JSON; the workers; the counts since a time. The same
/// on both engines.
pub(super) async fn dashboard_round_trip(router: &Router) {
    let before = get(router, "/flow/kyc/requests/counts")
        .await
        .expect(StatusCode::OK);
    let reply = post(router, "/flow/kyc?wait=20", json!({"user_id": "ann"})).await;
    let state = reply.expect(StatusCode::OK);
    assert_eq!(state["status"], "completed", "{state}");
    assert!(
        state["trace_id"].is_null() || state["trace_id"].as_str().is_some_and(|t| t.len() == 32),
        "{state}"
    );
    let id = state["request_id"].as_str().unwrap();
    let data = get(router, &format!("/flow/kyc/requests/{id}/data"))
        .await
        .expect(StatusCode::OK);
    assert_eq!(data["input"], json!({"user_id": "ann"}), "{data}");
    let outputs = &data["outputs"];
    assert_eq!(
        outputs["get_kyc_image"]["url"], "s3://kyc/ann.jpg",
        "{data}"
    );
    assert_eq!(outputs["face_detect"]["faces"], 1, "{data}");
    assert_eq!(outputs["face_match"]["score"], 0.97, "{data}");
    // The exit's output is the request's.
    assert_eq!(outputs["mark_profile"], state["output"], "{data}");
    assert!(data.get("undecodable").is_none(), "{data}");
    get(router, "/flow/kyc/requests/nosuchrequest/data")
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_request");
    get(router, "/flow/nosuchflow/workers")
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_flow");

    let workers = get(router, "/flow/kyc/workers")
        .await
        .expect(StatusCode::OK);
    let listed = workers["workers"].as_array().expect("workers");
    assert!(!listed.is_empty(), "{workers}");
    for worker in listed {
        assert!(
            worker["name"].as_str().is_some_and(|n| !n.is_empty()),
            "{workers}"
        );
        assert!(
            worker["in_flight"].is_u64() && worker["idle_ms"].is_u64(),
            "{workers}"
        );
    }
    assert!(
        workers["lag"].is_u64() || workers["lag"].is_null(),
        "{workers}"
    );

    // Counts since a time count only what was created from then on.
    let created = state["created_at_ms"].as_u64().unwrap();
    let since = get(
        router,
        &format!("/flow/kyc/requests/counts?since={created}"),
    )
    .await
    .expect(StatusCode::OK);
    let all = get(router, "/flow/kyc/requests/counts")
        .await
        .expect(StatusCode::OK);
    assert_eq!(
        all["completed"].as_u64().unwrap(),
        before["completed"].as_u64().unwrap() + 1,
        "{all}"
    );
    assert!(since["completed"].as_u64().unwrap() >= 1, "{since}");
    let later = get(
        router,
        &format!("/flow/kyc/requests/counts?since={}", u64::MAX),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(later["completed"], 0, "{later}");
    get(router, "/flow/kyc/requests/counts?since=yesterday")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_filter");
    get(router, "/flow/kyc/requests/counts?status=failed")
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_filter");

    // The versions: this service's first, the one its requests are pinned to.
    let versions = get(router, "/flow/kyc/versions")
        .await
        .expect(StatusCode::OK);
    let current = &versions["versions"][0];
    assert_eq!(current["version"], state["version"], "{versions}");
    assert_eq!(
        (&current["current"], &current["state"]),
        (&json!(true), &json!("current"))
    );
    assert_eq!(current["graph"]["hash"], state["version"], "{versions}");
    let flow = get(router, "/flow/kyc").await.expect(StatusCode::OK);
    assert_eq!(flow["version"], state["version"]);
    let path = format!("/flow/kyc/versions/{}", state["version"].as_str().unwrap());
    send(router, Method::DELETE, &path, &[], Body::empty())
        .await
        .expect_error(StatusCode::CONFLICT, "version_in_use");
    send(
        router,
        Method::DELETE,
        "/flow/kyc/versions/v1",
        &[],
        Body::empty(),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_version");

    // A request on this service's version already: a migration leaves it as it is, and so
    // does the bulk form.
    let migrated = post(
        router,
        &format!("/flow/kyc/requests/{id}/migrate"),
        json!(null),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        (&migrated["moved"], &migrated["from"], &migrated["to"]),
        (&json!(false), &state["version"], &state["version"]),
        "{migrated}"
    );
    post(router, "/flow/kyc/requests/nobody/migrate", json!(null))
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_request");
    let bulk = post(
        router,
        "/flow/kyc/requests/actions/migrate",
        json!({ "ids": [id] }),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(
        (&bulk["matched"], &bulk["applied"]),
        (&json!(1), &json!(1)),
        "{bulk}"
    );
    post(
        router,
        "/flow/kyc/requests/actions/migrate?from=start",
        json!({ "ids": [id] }),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_action");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_reads_data_workers_and_counts() {
    let router = embedded(defaults()).await;
    dashboard_round_trip(&router).await;
    let workers = get(&router, "/flow/kyc/workers")
        .await
        .expect(StatusCode::OK);
    assert_eq!(workers["workers"][0]["name"], "embedded", "{workers}");
}

#[tokio::test]
async fn the_dashboard_is_served_without_the_token_and_loads_nothing_from_elsewhere() {
    let router = embedded(defaults().api_token("s3cret")).await;
    for (path, kind) in [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/app.css", "text/css"),
    ] {
        let reply = get(&router, path).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert!(
            reply
                .header("content-type")
                .is_some_and(|t| t.starts_with(kind)),
            "{path}: {:?}",
            reply.headers
        );
        let policy = reply.header("content-security-policy").expect("a policy");
        assert!(policy.contains("default-src 'none'"), "{policy}");
        assert!(policy.contains("script-src 'self'"), "{policy}");
        assert!(policy.contains("connect-src 'self'"), "{policy}");
    }
    let page = get(&router, "/ui").await.text();
    assert!(page.contains(r#"<meta name="goflow-read-only" content="false">"#));
    // Nothing the page loads comes from another host.
    for asset in ["/ui", "/ui/app.js", "/ui/app.css"] {
        // (XML namespaces are names, not addresses: the script makes SVG elements in one.)
        let text = get(&router, asset)
            .await
            .text()
            .replace("http://www.w3.org/2000/svg", "");
        for scheme in ["http://", "https://", "//cdn", "@import"] {
            assert!(!text.contains(scheme), "{asset} refers to {scheme}");
        }
    }
    // The data still needs the token, and `GET /` links to the dashboard.
    get(&router, "/flows")
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let index = send(
        &router,
        Method::GET,
        "/",
        &[("authorization", "Bearer s3cret")],
        Body::empty(),
    )
    .await
    .expect(StatusCode::OK);
    assert_eq!(index["dashboard"], "/ui", "{index}");
}

#[tokio::test]
async fn a_dashboard_dir_that_cannot_be_read_is_a_json_error() {
    let mut settings = Settings::default();
    settings.dashboard_dir = Some(std::env::temp_dir().join(unique("no-such-dashboard")));
    let router = embedded(FlowService::new(settings)).await;
    let message = get(&router, "/ui/app.js")
        .await
        .expect_error(StatusCode::INTERNAL_SERVER_ERROR, "dashboard_dir");
    assert!(message.contains("cannot read app.js"), "{message}");
}

#[tokio::test]
async fn read_only_mode_marks_the_page_and_off_serves_none() {
    let router = embedded(defaults().dashboard(Dashboard::ReadOnly)).await;
    let page = get(&router, "/ui").await.text();
    assert!(page.contains(r#"<meta name="goflow-read-only" content="true">"#));
    let router = embedded(defaults().dashboard(Dashboard::Off)).await;
    get(&router, "/ui")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    let index = get(&router, "/").await.expect(StatusCode::OK);
    assert!(index["dashboard"].is_null(), "{index}");
}
