//! Auth: the bearer token that guards the `/flow` routes.

use serde_json::json;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_the_flow_routes_only() {
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
