//! The KYC example end to end: the `kyc` and `worker` binaries of this package run as real
//! processes, on a Redis server of the test's own or on the embedded engine, and are driven
//! over real HTTP (reqwest's blocking client).
//!
//! Cargo builds the package's binaries for its integration tests and tells them where
//! (`CARGO_BIN_EXE_<name>`). Every child process is killed when its test ends, passed or
//! failed.

// SIGTERM is sent with `kill`.
#![cfg(unix)]

// The Redis server helpers of the workspace's tests.
#[path = "../../../tests/support/mod.rs"]
mod support;

// The answer type of the router tests (`tests/service_router`), shared; it names
// `HeaderMap`, `StatusCode` and `Value` from here.
#[path = "../../../tests/service_router/reply.rs"]
mod reply;

// The binaries as child processes, and the HTTP client.
mod processes;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use processes::{free_port, id_in, location, terminate, unique, Cluster};
use reply::{assert_settled, is_final, vertex};

/// The pid inside a worker's consumer name (`{host}-{pid}-{random}`).
fn consumer_pid(consumer: &str) -> Option<u32> {
    consumer.rsplit('-').nth(1)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[test]
fn redis_service_with_two_workers() {
    let mut cluster = Cluster::new("workers");
    let redis = cluster.redis();
    let env = vec![
        ("GOFLOW_REDIS_URL", redis),
        ("GOFLOW_REDIS_PREFIX", unique("e2e-workers")),
    ];
    let kyc = cluster.kyc("kyc", &env);
    let worker_a = cluster.worker("worker-a", &env);
    let worker_b = cluster.worker("worker-b", &env);
    let pids: HashSet<u32> = [kyc.index, worker_a, worker_b]
        .iter()
        .map(|&i| cluster.procs[i].pid())
        .collect();

    let body = kyc.get("/readyz").expect(StatusCode::OK);
    assert_eq!(body["engine"], "redis");

    // `?wait` answers with the verdict.
    let reply = kyc.post("/flow/kyc?wait=20", &json!({"user_id": "alice"}));
    let body = reply.expect(StatusCode::OK);
    assert_eq!(body["status"], "completed", "body: {body}");
    assert_eq!(
        body["output"],
        json!({"user_id": "alice", "kyc_verified": true, "reason": "1 face(s), match score 0.97"})
    );
    assert!(reply.header("x-request-id").is_some());
    let body = kyc
        .post("/flow/kyc?wait=20", &json!({"user_id": "bob"}))
        .expect(StatusCode::OK);
    assert_eq!(body["output"]["kyc_verified"], false, "body: {body}");
    let body = kyc
        .post("/flow/onboarding?wait=20", &json!({"user_id": " Ann "}))
        .expect(StatusCode::OK);
    assert_eq!(body["output"]["user_id"], "ann", "body: {body}");

    // 40 requests, all completed, run by more than one worker. Ten are slow: more than one
    // worker's slots (8), so at least two consumers must take a share.
    let locations: Vec<(String, String)> = (0..40)
        .map(|i| {
            let user = if i < 10 {
                format!("slow-{i}")
            } else {
                format!("a-user-{i}")
            };
            let reply = kyc.post("/flow/kyc", &json!({ "user_id": user }));
            (user, location(&reply))
        })
        .collect();
    let mut consumers = HashSet::new();
    for (user, location) in &locations {
        let status = kyc.poll(location, "each of the 40 requests ends", is_final);
        assert_eq!(status["status"], "completed", "status: {status}");
        assert_eq!(status["output"]["user_id"], user.as_str());
        assert_eq!(
            status["output"]["kyc_verified"],
            user.starts_with('a'),
            "status: {status}"
        );
        for v in status["vertices"].as_array().expect("vertices") {
            assert_eq!(v["status"], "done", "vertex {v}");
            let consumer = v["worker"]
                .as_str()
                .unwrap_or_else(|| panic!("no worker on {v}"));
            consumers.insert(consumer.to_owned());
        }
    }
    assert!(
        consumers.len() >= 2,
        "all 40 requests ran on one consumer: {consumers:?}"
    );
    for consumer in &consumers {
        let pid = consumer_pid(consumer);
        assert!(
            pid.is_some_and(|p| pids.contains(&p)),
            "consumer {consumer} is none of this test's processes {pids:?}"
        );
    }

    // Pause, resume and stop a slow user over HTTP.
    let paused = location(&kyc.post("/flow/kyc", &json!({"user_id": "slow-pause"})));
    let body = kyc
        .request(Method::POST, &format!("{paused}/pause"), &[], None)
        .expect(StatusCode::ACCEPTED);
    assert_eq!(body["status"], "paused", "body: {body}");
    let message = kyc
        .request(Method::POST, &format!("{paused}/pause"), &[], None)
        .expect_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(
        message,
        format!(
            "cannot pause request `{}` of `kyc`: it is paused",
            id_in(&paused)
        )
    );
    // Whatever had started finishes; nothing new starts.
    let status = kyc.poll(&paused, "the paused request settles", |s| {
        s["vertices"]
            .as_array()
            .is_some_and(|vs| vs.iter().all(|v| v["status"] != "running"))
    });
    assert_eq!(status["status"], "paused", "status: {status}");
    assert_ne!(
        vertex(&status, "mark_profile")["status"],
        "done",
        "status: {status}"
    );
    let body = kyc
        .request(Method::POST, &format!("{paused}/resume"), &[], None)
        .expect(StatusCode::ACCEPTED);
    assert_eq!(body["status"], "running", "body: {body}");
    let status = kyc.poll(&paused, "the resumed request ends", is_final);
    assert_eq!(status["status"], "completed", "status: {status}");
    assert_eq!(status["output"]["user_id"], "slow-pause");

    let stopped = location(&kyc.post("/flow/kyc", &json!({"user_id": "slow-stop"})));
    let body = kyc
        .request(Method::POST, &format!("{stopped}/stop"), &[], None)
        .expect(StatusCode::ACCEPTED);
    assert_eq!(body["status"], "stopped", "body: {body}");
    for action in ["resume", "stop"] {
        let message = kyc
            .request(Method::POST, &format!("{stopped}/{action}"), &[], None)
            .expect_error(StatusCode::CONFLICT, "conflict");
        assert_eq!(
            message,
            format!(
                "cannot {action} request `{}` of `kyc`: it is stopped",
                id_in(&stopped)
            )
        );
    }
    let status = kyc.get(&stopped).expect(StatusCode::OK);
    assert_eq!(status["status"], "stopped", "status: {status}");
    assert!(status.get("output").is_none(), "status: {status}");
    assert_settled(&status);
}

#[test]
fn a_token_is_required_over_http() {
    let mut cluster = Cluster::new("auth");
    let kyc = cluster.kyc("kyc", &[("GOFLOW_API_TOKEN", "e2e-token".to_owned())]);
    let body = json!({"user_id": "alice"});

    let reply = kyc.post("/flow/kyc", &body);
    reply.expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(reply.header("www-authenticate"), Some("Bearer"));
    kyc.request(
        Method::POST,
        "/flow/kyc",
        &[("Authorization", "Bearer wrong")],
        Some(&body),
    )
    .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    kyc.get("/flows")
        .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");

    let auth = [("Authorization", "Bearer e2e-token")];
    let reply = kyc.request(Method::POST, "/flow/kyc", &auth, Some(&body));
    let location = location(&reply);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let status = kyc
            .request(Method::GET, &location, &auth, None)
            .expect(StatusCode::OK);
        if is_final(&status) {
            assert_eq!(status["output"]["kyc_verified"], true, "status: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "not completed: {status}");
        std::thread::sleep(Duration::from_millis(10));
    }
    for path in ["/healthz", "/readyz"] {
        assert_eq!(kyc.get(path).status, StatusCode::OK, "{path}");
    }
    // The metrics name every workflow and count its traffic: the token guards them too, and
    // so it does every other route, known or not, with any method.
    for (method, path) in [
        (Method::GET, "/metrics"),
        (Method::GET, "/"),
        (Method::GET, "/nope"),
        (Method::DELETE, "/flow/kyc"),
        (Method::PUT, "/metrics"),
    ] {
        kyc.request(method.clone(), path, &[], None)
            .expect_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let metrics = kyc.request(Method::GET, "/metrics", &auth, None);
    assert_eq!(metrics.status, StatusCode::OK, "{}", metrics.text());
    kyc.request(Method::DELETE, "/flow/kyc", &auth, None)
        .expect_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[test]
fn the_embedded_mode_serves_wait_and_shuts_down_on_sigterm() {
    let mut cluster = Cluster::new("embedded");
    let kyc = cluster.kyc("kyc", &[]);
    assert_eq!(
        kyc.get("/readyz").expect(StatusCode::OK),
        json!({"status": "ready", "engine": "embedded"})
    );
    let body = kyc
        .post("/flow/kyc?wait=20", &json!({"user_id": "alice"}))
        .expect(StatusCode::OK);
    assert_eq!(body["status"], "completed", "body: {body}");
    assert_eq!(body["output"]["kyc_verified"], true, "body: {body}");
    let body = kyc
        .post("/flow/greet?wait=20", &json!("e2e"))
        .expect(StatusCode::OK);
    assert_eq!(body["output"], "Hello e2e");
    let body = kyc
        .post("/flow/kyc?wait=20", &json!({"user_id": ""}))
        .expect(StatusCode::OK);
    assert_eq!(body["status"], "failed", "body: {body}");
    let failed_id = body["request_id"].as_str().expect("an id").to_owned();
    assert_eq!(body["failure"]["vertex"], "get_kyc_image", "body: {body}");
    assert_eq!(
        vertex(&body, "mark_profile")["status"],
        "skipped",
        "body: {body}"
    );
    assert_settled(&body);
    let metrics = kyc.get("/metrics");
    assert!(
        metrics
            .text()
            .contains("goflow_http_flows_started_total{flow=\"kyc\"} 2"),
        "{}",
        metrics.text()
    );
    let mermaid = kyc.get("/flow/kyc.mmd");
    assert_eq!(mermaid.status, StatusCode::OK);
    assert!(mermaid.text().starts_with("flowchart LR"));

    let proc = &mut cluster.procs[kyc.index];
    terminate(proc);
    let status = proc
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("kyc still running 30 s after SIGTERM\n{}", proc.log_tail()));
    assert!(
        status.success(),
        "kyc exited with {status}\n{}",
        proc.log_tail()
    );
    // The request that failed for good is one warning, naming its flow, id and vertex, as
    // the Redis worker logs it.
    let log = proc.log();
    let failed: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("a request failed"))
        .collect();
    assert_eq!(failed.len(), 1, "{}", proc.log_tail());
    for part in [
        "WARN",
        "kyc",
        failed_id.as_str(),
        "get_kyc_image",
        "is empty",
    ] {
        assert!(failed[0].contains(part), "{part}: {}", failed[0]);
    }
}

#[test]
fn sigterm_lets_the_redis_service_finish_and_exit_0() {
    let mut cluster = Cluster::new("sigterm");
    let redis = cluster.redis();
    let env = vec![
        ("GOFLOW_REDIS_URL", redis),
        ("GOFLOW_REDIS_PREFIX", unique("e2e-sigterm")),
    ];
    let kyc = cluster.kyc("kyc", &env);
    // A request in flight when the signal arrives.
    let slow = location(&kyc.post("/flow/kyc", &json!({"user_id": "slow-term"})));
    kyc.poll(&slow, "the slow request starts", |s| {
        s["status"] != "queued"
    });

    let proc = &mut cluster.procs[kyc.index];
    terminate(proc);
    let status = proc
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("kyc still running 30 s after SIGTERM\n{}", proc.log_tail()));
    assert!(
        status.success(),
        "kyc exited with {status}\n{}",
        proc.log_tail()
    );
    assert!(
        proc.log().contains("shutting down"),
        "no shutdown in the log\n{}",
        proc.log_tail()
    );

    // Nothing was lost: a new process picks the request up where it was left.
    let next = cluster.kyc("kyc-2", &env);
    let status = next.poll(&slow, "the request ends after the restart", is_final);
    assert_eq!(status["status"], "completed", "status: {status}");
    assert_eq!(status["output"]["user_id"], "slow-term");
}

// ---------------------------------------------------------------------------------------------
// Raw connections: what a client that is not a well-behaved HTTP client gets.

/// Opens a connection to the service on `port`, writes `bytes`, and reads until the service
/// closes it or `limit` passes: what it answered, how long the connection was held, and
/// whether the service closed it.
fn hold(port: u16, bytes: &[u8], limit: Duration) -> (Vec<u8>, Duration, bool) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.write_all(bytes).expect("write the request");
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 16 * 1024];
    loop {
        let Some(left) = limit
            .checked_sub(started.elapsed())
            .filter(|left| !left.is_zero())
        else {
            return (answer, started.elapsed(), false);
        };
        stream.set_read_timeout(Some(left)).expect("set a timeout");
        match stream.read(&mut buffer) {
            Ok(0) => return (answer, started.elapsed(), true),
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (answer, started.elapsed(), false)
            }
            // Reset: closed too.
            Err(_) => return (answer, started.elapsed(), true),
        }
    }
}

/// An answer read off a raw connection: its status line, headers and body.
fn parse_answer(answer: &[u8]) -> (String, String, String) {
    let text = String::from_utf8_lossy(answer).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_owned(), headers.to_lowercase(), body.to_owned())
}

#[test]
fn slow_and_silent_clients_are_closed_after_the_timeouts() {
    let mut cluster = Cluster::new("slow-clients");
    let kyc = cluster.kyc(
        "kyc",
        &[
            ("GOFLOW_HEADER_TIMEOUT", "1".to_owned()),
            ("GOFLOW_IDLE_TIMEOUT", "30s".to_owned()),
        ],
    );
    let within = Duration::from_millis(900)..Duration::from_secs(4);
    // Half a request head, then nothing.
    let (answer, held, closed) = hold(
        kyc.port,
        b"POST /flow/kyc HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le",
        Duration::from_secs(20),
    );
    println!("half a header: held {held:?}, closed: {closed}");
    assert!(
        closed && within.contains(&held),
        "held {held:?}, closed: {closed}, answer {answer:?}"
    );
    // Nothing at all.
    let (_, held, closed) = hold(kyc.port, b"", Duration::from_secs(20));
    println!("silent: held {held:?}, closed: {closed}");
    assert!(
        closed && within.contains(&held),
        "held {held:?}, closed: {closed}"
    );
    // A keep-alive connection that stays idle after its answer.
    let (answer, held, closed) = hold(
        kyc.port,
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        Duration::from_secs(20),
    );
    let (status, _, _) = parse_answer(&answer);
    assert_eq!(status, "HTTP/1.1 200 OK");
    println!("idle keep-alive: held {held:?}, closed: {closed}");
    assert!(
        closed && within.contains(&held),
        "held {held:?}, closed: {closed}"
    );
    // The service is fine.
    kyc.get("/healthz").expect(StatusCode::OK);

    // The idle timeout closes a connection that moves nothing, whatever the header timeout.
    let idle = cluster.kyc(
        "kyc-idle",
        &[
            ("GOFLOW_HEADER_TIMEOUT", "30s".to_owned()),
            ("GOFLOW_IDLE_TIMEOUT", "1".to_owned()),
        ],
    );
    let (_, held, closed) = hold(idle.port, b"GET /hea", Duration::from_secs(20));
    println!("idle timeout: held {held:?}, closed: {closed}");
    assert!(
        closed && within.contains(&held),
        "held {held:?}, closed: {closed}"
    );
    // A connection whose request is being handled is not idle, however long the handler
    // takes: a `?wait` longer than the idle timeout gets its answer.
    let body = idle
        .post("/flow/slow_greet?wait=10", &json!("Ida"))
        .expect(StatusCode::OK);
    assert_eq!(body["output"], "Hello Ida, at last", "{body}");
}

#[test]
fn connections_past_the_limit_wait_for_one_to_close() {
    use std::io::{Read as _, Write as _};
    let mut cluster = Cluster::new("max-connections");
    let kyc = cluster.kyc(
        "kyc",
        &[
            ("GOFLOW_MAX_CONNECTIONS", "2".to_owned()),
            ("GOFLOW_HEADER_TIMEOUT", "30s".to_owned()),
        ],
    );
    // (The readiness polls' connections are closed: `Cluster::kyc`.)
    std::thread::sleep(Duration::from_millis(200));
    let silent: Vec<std::net::TcpStream> = (0..2)
        .map(|_| std::net::TcpStream::connect(("127.0.0.1", kyc.port)).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut third = std::net::TcpStream::connect(("127.0.0.1", kyc.port)).expect("connect");
    third
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("write");
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("set a timeout");
    let mut answer = Vec::new();
    let waited = third.read_to_end(&mut answer);
    assert!(
        waited.is_err() && answer.is_empty(),
        "answered past the limit: {:?}",
        String::from_utf8_lossy(&answer)
    );
    // One closes: the third is served.
    drop(silent);
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set a timeout");
    third.read_to_end(&mut answer).expect("an answer");
    let (status, _, body) = parse_answer(&answer);
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
}

#[test]
fn hypers_own_errors_are_json_too() {
    let mut cluster = Cluster::new("hyper-errors");
    let kyc = cluster.kyc("kyc", &[]);
    let long = "a".repeat(70 * 1024);
    let too_many: String = (0..120).map(|i| format!("x-h{i}: v\r\n")).collect();
    for (request, expected, code) in [
        (
            format!("GET /flow/kyc/requests/{long} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),
            "HTTP/1.1 414 URI Too Long",
            "uri_too_long",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n{too_many}\r\n"),
            "HTTP/1.1 431 Request Header Fields Too Large",
            "headers_too_large",
        ),
        (
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nno colon here\r\n\r\n".to_owned(),
            "HTTP/1.1 400 Bad Request",
            "bad_request",
        ),
    ] {
        let (answer, _, closed) = hold(kyc.port, request.as_bytes(), Duration::from_secs(20));
        assert!(closed, "{code}: the connection stayed open");
        let (status, headers, body) = parse_answer(&answer);
        assert_eq!(status, expected, "{body}");
        assert!(
            headers.contains("content-type: application/json"),
            "{headers}"
        );
        assert!(
            headers.contains(&format!("content-length: {}", body.len())),
            "{headers}"
        );
        let body: Value = serde_json::from_str(&body).expect("a JSON body");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    // Under hyper's limit, a long URL reaches the router.
    let long = "a".repeat(60 * 1024);
    kyc.get(&format!("/flow/kyc/requests/{long}"))
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request_id");
}

// ---------------------------------------------------------------------------------------------
// Shutdown of the embedded service.

#[test]
fn sigterm_lets_the_embedded_service_finish_its_requests() {
    let mut cluster = Cluster::new("embedded-sigterm");
    let kyc = cluster.kyc("kyc", &[]);
    let submitted = Instant::now();
    let slow = location(&kyc.post("/flow/slow_greet", &json!("Sam")));
    kyc.poll(&slow, "the slow request starts", |s| {
        s["status"] == "running"
    });

    let terminated = Instant::now();
    terminate(&cluster.procs[kyc.index]);
    // The service takes no new request: 503, naming the id of the one refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let reply = kyc.post("/flow/greet", &json!("late"));
        if reply.status == StatusCode::SERVICE_UNAVAILABLE {
            break reply;
        }
        assert!(
            Instant::now() < deadline,
            "still taking requests: {}",
            reply.text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let message = refused.expect_error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down");
    assert!(message.contains("shutting down"), "{message}");
    let id = refused.header("x-request-id").expect("an id").to_owned();
    assert_eq!(refused.json()["request_id"], id.as_str());
    kyc.get("/readyz")
        .expect_error(StatusCode::SERVICE_UNAVAILABLE, "shutting_down");
    // It still answers about the requests it runs.
    let status = kyc.get(&slow).expect(StatusCode::OK);
    assert!(
        matches!(status["status"].as_str(), Some("running" | "completed")),
        "status: {status}"
    );

    let proc = &mut cluster.procs[kyc.index];
    let status = proc
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("kyc still running 30 s after SIGTERM\n{}", proc.log_tail()));
    let exited = terminated.elapsed();
    println!(
        "SIGTERM {:?} after the submission; exit {exited:?} after SIGTERM ({:?} after the submission)",
        terminated - submitted,
        submitted.elapsed()
    );
    assert!(
        status.success(),
        "kyc exited with {status}\n{}",
        proc.log_tail()
    );
    let log = proc.log();
    assert!(
        log.contains("slow greeting done"),
        "the request did not complete\n{}",
        proc.log_tail()
    );
    assert!(
        log.contains("every request in flight has ended"),
        "{}",
        proc.log_tail()
    );
}

#[test]
fn the_embedded_service_exits_at_the_end_of_its_grace() {
    let mut cluster = Cluster::new("embedded-grace");
    let kyc = cluster.kyc("kyc", &[("GOFLOW_SHUTDOWN_GRACE", "300ms".to_owned())]);
    let slow = location(&kyc.post("/flow/slow_greet", &json!("Sue")));
    kyc.poll(&slow, "the slow request starts", |s| {
        s["status"] == "running"
    });
    let terminated = Instant::now();
    let proc = &mut cluster.procs[kyc.index];
    terminate(proc);
    let status = proc
        .wait_exit(Duration::from_secs(30))
        .unwrap_or_else(|| panic!("kyc still running 30 s after SIGTERM\n{}", proc.log_tail()));
    let exited = terminated.elapsed();
    println!("grace 300 ms: exit {exited:?} after SIGTERM");
    assert!(
        status.success(),
        "kyc exited with {status}\n{}",
        proc.log_tail()
    );
    assert!(
        exited < Duration::from_millis(1400),
        "exited after {exited:?}"
    );
    let log = proc.log();
    assert!(
        log.contains("the shutdown grace is over"),
        "{}",
        proc.log_tail()
    );
    assert!(!log.contains("slow greeting done"), "{}", proc.log_tail());
}

// ---------------------------------------------------------------------------------------------
// A Redis that does not answer.

/// A redis-server of this test's own, whose pid the test knows (to stop and continue it).
struct StoppableRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl StoppableRedis {
    fn start() -> Self {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "goflow-e2e-redis-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).expect("create a directory for redis-server");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server (install it: apt-get install -y redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Sends `signal` (`STOP`, `CONT`) to the server.
    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("run `kill`");
        assert!(status.success(), "kill -{signal} {}", self.child.id());
    }
}

impl Drop for StoppableRedis {
    fn drop(&mut self) {
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn a_503_names_the_request_and_retrying_it_runs_it_once() {
    let redis = StoppableRedis::start();
    let mut cluster = Cluster::new("redis-stopped");
    let env = vec![
        ("GOFLOW_REDIS_URL", redis.url()),
        ("GOFLOW_REDIS_PREFIX", unique("e2e-stopped")),
    ];
    let kyc = cluster.kyc("kyc", &env);
    let body = json!({"user_id": "alice-retry"});

    redis.signal("STOP");
    let started = Instant::now();
    let reply = kyc.post("/flow/kyc", &body);
    let took = started.elapsed();
    let message = reply.expect_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable");
    println!("503 after {took:?}: {message}");
    assert!(message.contains("same X-Request-Id"), "{message}");
    let id = reply
        .header("x-request-id")
        .unwrap_or_else(|| panic!("the 503 names no request: {:?}", reply.headers))
        .to_owned();
    assert_eq!(reply.json()["request_id"], id.as_str(), "{}", reply.text());
    redis.signal("CONT");
    // Whether that submission took effect, once Redis woke, is what a 503 cannot tell.
    std::thread::sleep(Duration::from_millis(500));
    let existed = kyc.get(&format!("/flow/kyc/requests/{id}")).status == StatusCode::OK;
    println!("the submission answered 503 created the request: {existed}");

    // Retried under its id once Redis answers: one request, run once.
    let retry = kyc.request(
        Method::POST,
        "/flow/kyc?wait=20",
        &[("X-Request-Id", id.as_str())],
        Some(&body),
    );
    let state = retry.expect(StatusCode::OK);
    assert_eq!(state["request_id"], id.as_str(), "{state}");
    assert_eq!(state["status"], "completed", "{state}");
    assert_eq!(state["output"]["user_id"], "alice-retry", "{state}");
    // Created by the retry only if the first submission had not been.
    assert_eq!(state["created"], !existed, "{state}");
    for v in state["vertices"].as_array().expect("vertices") {
        assert_eq!(v["status"], "done", "{state}");
        assert_eq!(v["attempts"], 1, "run more than once: {state}");
    }
    // Retrying again changes nothing; another input under that id is refused.
    let again = kyc.request(
        Method::POST,
        "/flow/kyc",
        &[("Idempotency-Key", id.as_str())],
        Some(&body),
    );
    assert_eq!(again.expect(StatusCode::OK)["created"], false);
    kyc.request(
        Method::POST,
        "/flow/kyc",
        &[("X-Request-Id", id.as_str())],
        Some(&json!({"user_id": "someone-else"})),
    )
    .expect_error(StatusCode::CONFLICT, "idempotency_conflict");
}
