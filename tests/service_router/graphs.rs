//! Graphs, probes, metrics and routing.

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flows_and_graphs() {
    let router = embedded(defaults()).await;
    let body = get(&router, "/flows").await.expect(StatusCode::OK);
    assert_eq!(body["engine"], "embedded");
    let flows = body["flows"].as_array().expect("flows");
    let names: Vec<&str> = flows.iter().filter_map(|f| f["name"].as_str()).collect();
    assert_eq!(
        names,
        [
            "counted",
            "doubled",
            "greet",
            "held",
            "kyc",
            "kyc_linear",
            "onboarding",
            "priced",
            "slow_greet"
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
    let router = embedded(defaults()).await;
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
    let router = embedded(defaults()).await;
    for uri in [
        "/nope",
        "/flow",
        "/flows/greet",
        "/flow/greet/requests/x/y/z",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_root_points_at_the_flows_and_a_flow_name_at_its_route() {
    let router = embedded(defaults()).await;
    let body = get(&router, "/").await.expect(StatusCode::OK);
    assert_eq!(body["flows"], "/flows", "body: {body}");
    assert_eq!(body["engine"], "embedded", "body: {body}");

    // A workflow's name without `/flow/`: the answer names the route meant.
    for (method, uri, meant) in [
        (Method::POST, "/greet", "/flow/greet"),
        (Method::GET, "/kyc", "/flow/kyc"),
        (Method::GET, "/kyc.mmd", "/flow/kyc.mmd"),
        (Method::GET, "/kyc/requests/abc", "/flow/kyc/requests/abc"),
    ] {
        let message = send(&router, method, uri, &[], json!("Al").to_string())
            .await
            .expect_error(StatusCode::NOT_FOUND, "not_found");
        assert!(message.contains(meant), "{uri}: {message}");
    }
    // Anything else: where the workflows are.
    let message = get(&router, "/nope")
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert!(message.contains("/flows"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_that_is_not_utf8_is_a_json_400() {
    let router = embedded(defaults()).await;
    for (method, uri) in [
        (Method::GET, "/flow/kyc/requests/%FF%FE"),
        (Method::GET, "/flow/%FF"),
        (Method::POST, "/flow/%FF"),
        (Method::POST, "/flow/kyc/requests/%FF/stop"),
        (Method::POST, "/flow/kyc/requests/abc/%C3"),
    ] {
        let message = send(&router, method.clone(), uri, &[], Body::empty())
            .await
            .expect_error(StatusCode::BAD_REQUEST, "invalid_path");
        assert!(message.contains("UTF-8"), "{method} {uri}: {message}");
    }
}

/// A request's state lists its vertex instances a page at a time: at most 1,000 by default,
/// with `vertices_total` and, while more remain, `vertices_next` (the offset of the next page,
/// for `?vertices_from=`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_with_many_instances_answers_a_page_of_them() {
    let router = embedded(defaults()).await;
    let body = post(&router, "/flow/doubled?wait=10", json!(2_500))
        .await
        .expect(StatusCode::OK);
    assert_eq!(body["output"], (0..2_500).map(|n| n * 2).sum::<u32>());
    let id = body["request_id"].as_str().expect("an id").to_owned();
    // numbers, sum and 2,500 instances of double.
    assert_eq!(body["vertices_total"], 2_502);
    assert_eq!(body["vertices"].as_array().map(Vec::len), Some(1_000));
    assert_eq!(body["vertices_next"], 1_000);
    let mut seen = 0;
    let mut from = Some(0);
    while let Some(at) = from {
        let page = get(
            &router,
            &format!("/flow/doubled/requests/{id}?vertices_from={at}&vertices_limit=700"),
        )
        .await
        .expect(StatusCode::OK);
        seen += page["vertices"].as_array().map_or(0, Vec::len);
        from = page["vertices_next"].as_u64();
    }
    assert_eq!(seen, 2_502);
    for bad in ["vertices_limit=0", "vertices_limit=1001", "vertices_from=x"] {
        let reply = get(&router, &format!("/flow/doubled/requests/{id}?{bad}")).await;
        assert_eq!(
            reply.expect(StatusCode::BAD_REQUEST)["error"]["code"],
            "invalid_page"
        );
    }
}

/// `GET /openapi.json` describes every route, and each workflow's `POST /flow/{name}` with its
/// input and output as JSON Schema; a workflow whose types have no schema (`priced`'s `Order`
/// does not derive `JsonSchema`) is described as any JSON, with a note. `GET /flow/{name}`
/// gives the same schemas.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_every_route_and_each_flows_types() {
    let router = embedded(defaults()).await;
    let document = get(&router, "/openapi.json").await.expect(StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().expect("paths");
    for path in [
        "/",
        "/flows",
        "/healthz",
        "/readyz",
        "/openapi.json",
        "/flow/{name}/requests",
        "/flow/{name}/requests/counts",
        "/flow/{name}/requests/{id}",
        "/flow/{name}/requests/{id}/{action}",
        "/flow/{name}/requests/actions/{action}",
        "/flow/{name}/dead",
        "/flow/{name}/workers",
        "/flow/{name}/versions",
        "/flow/{name}/versions/{version}",
        "/flow/{name}/requests/{id}/data",
        "/flow/{name}/requests/{id}/migrate",
    ] {
        assert!(paths.contains_key(path), "{path} is not in the document");
    }
    for flow in [
        "counted",
        "doubled",
        "greet",
        "held",
        "kyc",
        "kyc_linear",
        "onboarding",
        "priced",
    ] {
        assert!(paths.contains_key(&format!("/flow/{flow}")), "{flow}");
    }
    let kyc = &paths["/flow/kyc"]["post"];
    let input = &kyc["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(input["properties"]["user_id"]["type"], "string", "{input}");
    let output =
        &kyc["responses"]["200"]["content"]["application/json"]["schema"]["properties"]["output"];
    assert_eq!(
        output["properties"]["kyc_verified"]["type"], "boolean",
        "{output}"
    );
    let greet =
        &paths["/flow/greet"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert_eq!(greet["type"], "string", "{greet}");
    let priced =
        &paths["/flow/priced"]["post"]["requestBody"]["content"]["application/json"]["schema"];
    assert!(
        priced["description"]
            .as_str()
            .unwrap_or_default()
            .contains("JsonSchema"),
        "{priced}"
    );
    // Every reference resolves.
    let text = document.to_string();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(
            document["components"]["schemas"].get(name).is_some(),
            "#/components/schemas/{name} is not defined"
        );
    }

    let kyc = get(&router, "/flow/kyc").await.expect(StatusCode::OK);
    assert_eq!(
        kyc["input_schema"]["properties"]["user_id"]["type"],
        "string"
    );
    assert_eq!(
        kyc["output_schema"]["properties"]["kyc_verified"]["type"],
        "boolean"
    );
    let priced = get(&router, "/flow/priced").await.expect(StatusCode::OK);
    assert!(
        priced["input_schema"]["description"].is_string(),
        "{priced}"
    );
}
