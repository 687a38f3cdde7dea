//! Schemathesis against the `kyc` binary's own `/openapi.json`: property-based requests to
//! every route the document describes, from its schemas (valid and invalid ones). No answer may
//! be a server error, and every answer must match the document (status, content and schema).
//!
//! Needs Schemathesis's `st` on `PATH` (`pip install schemathesis`; `.ci/run` installs it): the
//! test fails with that advice when it is missing, rather than passing without having run.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const KYC: &str = env!("CARGO_BIN_EXE_kyc");

/// The service process, killed when the test ends.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_off_the_document() {
    let version = Command::new("st").arg("--version").output();
    assert!(
        version.as_ref().is_ok_and(|o| o.status.success()),
        "Schemathesis's `st` is not on PATH ({version:?}): install it with \
         `pip install schemathesis` (.ci/run does)"
    );
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let mut command = Command::new(KYC);
    for (key, _) in std::env::vars_os() {
        if key.to_str().is_some_and(|k| k.starts_with("GOFLOW_")) {
            command.env_remove(key);
        }
    }
    let service = Service(
        command
            .env("GOFLOW_PORT", port.to_string())
            .env("GOFLOW_HOST", "127.0.0.1")
            // Fuzzed waits end within a second, so the run stays short.
            .env("GOFLOW_MAX_WAIT", "1")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the kyc binary"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "the kyc service did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    // In a directory of its own: Schemathesis keeps a cache of what it found where it runs.
    let workdir = std::env::temp_dir().join(format!(
        "goflow-schemathesis-{}-{:08x}",
        std::process::id(),
        port
    ));
    std::fs::create_dir_all(&workdir).expect("a directory for schemathesis");
    let output = Command::new("st")
        .current_dir(&workdir)
        .args([
            "run",
            &format!("{base}/openapi.json"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            // Not the coverage phase: on this CPython (3.11.7) it trips an interpreter error
            // inside Schemathesis (`AST constructor recursion depth mismatch`), whatever the API.
            "--phases",
            "fuzzing,stateful",
            "--max-examples",
            "30",
            "--workers",
            "2",
            "--max-time",
            "45",
            "--generation-deterministic",
            "--request-timeout",
            "10",
            // A workflow's event stream never ends by itself (by design: it follows every
            // request from now on), so no answer of it completes within a timeout; its routes
            // are tested in `tests/service_router/requests.rs`. A request's stream ends with
            // the request and is fuzzed.
            "--exclude-operation-id",
            "flow_events",
        ])
        .env("NO_COLOR", "1")
        .output()
        .expect("run schemathesis");
    drop(service);
    let _ = std::fs::remove_dir_all(&workdir);
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}"
    );
    // It ran: every operation of the document was tested.
    assert!(report.contains("passed"), "{report}");
}
