//! An HTTP answer, read whole, the assertions the service tests make on it, and readers of a
//! request's state as JSON.
//!
//! One file for two test crates: `tests/service_router` (answers of the router, without
//! sockets) and the KYC example's `tests/service_e2e.rs` (answers over HTTP), which includes
//! it with `#[path]`. Each crate imports, at its root, the `http` crate's `HeaderMap` and
//! `StatusCode` (axum and reqwest re-export the same types) and `serde_json::Value`.

use crate::{HeaderMap, StatusCode, Value};

/// An answer: its status, its headers and its whole body.
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    /// The body as text (lossily).
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON, failing the test if it is not.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "the body is not JSON ({e}); status {}, body {:?}",
                self.status,
                self.text()
            )
        })
    }

    /// The header `name`, if present and text.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, then returns the body as JSON.
    #[track_caller]
    pub(crate) fn expect(&self, status: StatusCode) -> Value {
        assert_eq!(self.status, status, "body: {}", self.text());
        self.json()
    }

    /// Asserts an error answer: the status, a JSON content type, and
    /// `{"error": {"code", "message"}}` with this code and a message; returns the message.
    #[track_caller]
    pub(crate) fn expect_error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "body: {}", self.text());
        assert!(
            self.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "error content type: {:?}",
            self.header("content-type")
        );
        let body = self.json();
        assert_eq!(body["error"]["code"], code, "body: {body}");
        let message = body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message in {body}"));
        assert!(!message.is_empty(), "empty error message in {body}");
        message.to_owned()
    }
}

/// Whether a request's state (as JSON) says it has ended.
pub(crate) fn is_final(status: &Value) -> bool {
    matches!(
        status["status"].as_str(),
        Some("completed" | "failed" | "stopped")
    )
}

/// The vertex at `path` in a request's state (as JSON).
pub(crate) fn vertex<'a>(status: &'a Value, path: &str) -> &'a Value {
    status["vertices"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["vertex"] == path))
        .unwrap_or_else(|| panic!("no vertex `{path}` in {status}"))
}

/// Asserts that every vertex of an ended request is settled (`done`, `failed`, `cancelled` or
/// `skipped`): both engines settle the rest when a request ends.
#[track_caller]
pub(crate) fn assert_settled(status: &Value) {
    assert!(is_final(status), "not ended: {status}");
    for v in status["vertices"].as_array().expect("vertices") {
        assert!(
            matches!(
                v["status"].as_str(),
                Some("done" | "failed" | "cancelled" | "skipped")
            ),
            "vertex {v} of an ended request is not settled: {status}"
        );
    }
}
