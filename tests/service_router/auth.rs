//! Auth: the bearer token that guards every route but the probes, and the metrics token.

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_every_route_but_the_probes() {
    let router = embedded(defaults().api_token("s3cret-token")).await;
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
            // Nor are routes: an unknown route, or a known one with a wrong method, is 401
            // (not 404 or 405) without the token.
            (Method::GET, "/nope"),
            (Method::GET, "/"),
            (Method::POST, "/greet"),
            (Method::DELETE, "/flow/greet"),
            (Method::POST, "/flows"),
            (Method::GET, "/flow/greet/requests/abc/stop"),
            (Method::POST, "/metrics"),
            // Metrics give away the workflows' names and their traffic.
            (Method::GET, "/metrics"),
            // A path that cannot be read is not read before the token is checked.
            (Method::GET, "/flow/%FF"),
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
    // The scheme is case-insensitive (RFC 9110, 11.1); the token is not.
    for scheme in ["bearer", "BEARER", "bEaReR"] {
        let authorization = format!("{scheme} s3cret-token");
        let headers = [("authorization", authorization.as_str())];
        send(&router, Method::GET, "/flows", &headers, Body::empty())
            .await
            .expect(StatusCode::OK);
    }
    send(
        &router,
        Method::GET,
        "/flows",
        &[("authorization", "bearer S3CRET-TOKEN")],
        Body::empty(),
    )
    .await
    .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");

    // The probes need no token.
    for uri in ["/healthz", "/readyz"] {
        let reply = get(&router, uri).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.text());
    }
    // With it, metrics, unknown routes and wrong methods answer as without a token set.
    let metrics = send(&router, Method::GET, "/metrics", &auth, Body::empty()).await;
    assert_eq!(metrics.status, StatusCode::OK, "{}", metrics.text());
    assert!(metrics
        .text()
        .contains("goflow_http_flows_started_total{flow=\"greet\"} 1"));
    send(&router, Method::GET, "/nope", &auth, Body::empty())
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    send(&router, Method::DELETE, "/flow/greet", &auth, Body::empty())
        .await
        .expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metrics_token_opens_the_metrics_only() {
    let router = embedded(
        defaults()
            .api_token("api-token")
            .metrics_token("scrape-token"),
    )
    .await;
    let scraper = [("authorization", "Bearer scrape-token")];
    let api = [("authorization", "Bearer api-token")];
    // Either token reads the metrics; none, or another, does not.
    for headers in [&scraper[..], &api[..]] {
        let reply = send(&router, Method::GET, "/metrics", headers, Body::empty()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
        assert!(reply.text().contains("goflow_http_flows_started_total"));
    }
    for headers in [&[][..], &[("authorization", "Bearer wrong")][..]] {
        send(&router, Method::GET, "/metrics", headers, Body::empty())
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // The metrics token opens nothing else.
    for (method, uri) in [
        (Method::GET, "/flows"),
        (Method::GET, "/flow/greet"),
        (Method::POST, "/flow/greet"),
        (Method::GET, "/"),
    ] {
        send(&router, method, uri, &scraper, json!("Mo").to_string())
            .await
            .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    send(&router, Method::GET, "/flows", &api, Body::empty())
        .await
        .expect(StatusCode::OK);

    // A metrics token alone guards the metrics alone.
    let router = embedded(defaults().metrics_token("scrape-token")).await;
    send(&router, Method::GET, "/metrics", &[], Body::empty())
        .await
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    let reply = send(&router, Method::GET, "/metrics", &scraper, Body::empty()).await;
    assert_eq!(reply.status, StatusCode::OK);
    get(&router, "/flows").await.expect(StatusCode::OK);
}
