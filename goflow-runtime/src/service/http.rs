//! The HTTP routes. Every error is JSON `{"error": {"code", "message"}}` with the right status;
//! handlers decode and validate everything before touching the engine, so a bad request never
//! leaves a half-created one behind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};
use tracing::Instrument as _;

use super::metrics::Metrics;
use super::registry::FlowDef;
use crate::engine::Engine;
use crate::error::Error;
use crate::lifecycle::{Control, RequestStatus};
use crate::request::RequestState;
use crate::request_id::RequestId;

/// What the handlers share.
pub(crate) struct AppState<E> {
    pub(crate) engine: E,
    pub(crate) flows: HashMap<&'static str, FlowDef>,
    pub(crate) api_token: Option<String>,
    pub(crate) body_limit: usize,
    pub(crate) max_wait: Duration,
    pub(crate) metrics: Metrics,
}

/// The routes, ready to serve or to nest in another application's router.
pub(crate) fn router<E: Engine>(state: Arc<AppState<E>>) -> Router {
    let flows = Router::new()
        .route("/flows", get(list_flows::<E>))
        .route("/flow/{name}", get(describe_flow::<E>).post(submit::<E>))
        .route("/flow/{name}/requests/{id}", get(request_status::<E>))
        .route("/flow/{name}/requests/{id}/{action}", post(control::<E>))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            authorize::<E>,
        ));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready::<E>))
        .route("/metrics", get(metrics::<E>))
        .merge(flows)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .layer(middleware::from_fn(trace_request))
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .with_state(state)
}

/// A span per HTTP request, continuing the caller's trace when it sends a `traceparent`
/// header; requests submitted by the handler are its children.
async fn trace_request(request: Request, next: Next) -> Response {
    let span = tracing::info_span!(
        "goflow.http",
        method = %request.method(),
        path = request.uri().path(),
        status = tracing::field::Empty,
    );
    if let Some(parent) = request
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
    {
        crate::trace::set_parent(&span, parent);
    }
    let response = next.run(request).instrument(span.clone()).await;
    span.record("status", response.status().as_u16());
    response
}

/// An error answer.
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    fn unknown_flow(name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_flow",
            format!("no workflow named `{name}`; GET /flows lists them"),
        )
    }

    fn unknown_request(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "unknown_request",
            format!("no request `{id}` (never submitted, or expired)"),
        )
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        let message = crate::error::chain(&error);
        match error {
            Error::UnknownFlow { flow } => Self::unknown_flow(&flow),
            Error::UnknownRequest { request_id, .. } => Self::unknown_request(request_id.as_str()),
            Error::Conflict { .. } => Self::new(StatusCode::CONFLICT, "conflict", message),
            Error::Engine { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// Requires `Authorization: Bearer <token>` when a token is configured.
async fn authorize<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(expected) = &state.api_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "missing or wrong bearer token",
            )
            .into_response();
        }
    }
    next.run(request).await
}

/// The token of an `Authorization: Bearer <token>` header; the scheme is case-insensitive
/// (RFC 9110, 11.1).
fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Compares without an early exit, so the time taken does not tell how much of a guess was
/// right (only whether its length was).
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq as _;
    a.ct_eq(b).into()
}

fn flow<'a, E>(state: &'a AppState<E>, name: &str) -> Result<&'a FlowDef, ApiError> {
    state
        .flows
        .get(name)
        .ok_or_else(|| ApiError::unknown_flow(name))
}

fn request_id(text: &str) -> Result<RequestId, ApiError> {
    RequestId::parse(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_id", e.to_string()))
}

async fn list_flows<E: Engine>(State(state): State<Arc<AppState<E>>>) -> Json<Value> {
    let mut flows: Vec<Value> = state
        .flows
        .values()
        .map(|flow| {
            let graph = (flow.graph)();
            json!({
                "name": flow.name,
                "description": flow.description,
                "vertices": graph.vertices().len(),
                "hash": format!("{:016x}", graph.structural_hash()),
                "href": format!("/flow/{}", flow.name),
            })
        })
        .collect();
    flows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Json(json!({ "engine": state.engine.kind(), "flows": flows }))
}

/// `GET /flow/{name}`: the graph as JSON, or Mermaid / DOT by `Accept` or by a `.mmd` / `.dot`
/// suffix on the name.
async fn describe_flow<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (name, format) = if let Some(base) = name.strip_suffix(".mmd") {
        (base, "mermaid")
    } else if let Some(base) = name.strip_suffix(".dot") {
        (base, "dot")
    } else if accept.contains("mermaid") {
        (name.as_str(), "mermaid")
    } else if accept.contains("graphviz") || accept.contains("text/vnd.dot") {
        (name.as_str(), "dot")
    } else {
        (name.as_str(), "json")
    };
    let flow = flow(&state, name)?;
    let graph = (flow.graph)();
    Ok(match format {
        "mermaid" => (
            [(header::CONTENT_TYPE, "text/vnd.mermaid; charset=utf-8")],
            graph.to_mermaid(),
        )
            .into_response(),
        "dot" => (
            [(header::CONTENT_TYPE, "text/vnd.graphviz; charset=utf-8")],
            graph.to_dot(),
        )
            .into_response(),
        _ => Json(json!({ "name": graph.name(), "description": flow.description, "graph": graph }))
            .into_response(),
    })
}

/// `POST /flow/{name}`: body = the workflow input as JSON.
async fn submit<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let flow = flow(&state, &name)?;
    let id = match headers.get("x-request-id") {
        Some(value) => request_id(value.to_str().unwrap_or("\u{0}"))?,
        None => RequestId::generate(),
    };
    let wait = match query.get("wait") {
        Some(text) => Some(
            text.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.0)
                .map(|s| {
                    Duration::try_from_secs_f64(s)
                        .unwrap_or(Duration::MAX)
                        .min(state.max_wait)
                })
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_wait",
                        "`wait` is a number of seconds",
                    )
                })?,
        ),
        None => None,
    };
    let body: Bytes = axum::body::to_bytes(body, state.body_limit)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!(
                    "the body is larger than the limit of {} bytes",
                    state.body_limit
                ),
            )
        })?;
    let input = (flow.input_from_json)(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("the body is not a valid `{}` input: {e}", flow.name),
        )
    })?;
    let created = state.engine.submit_encoded(flow.name, &id, input).await?;
    if created {
        state.metrics.started(flow.name);
    }
    let location = format!("/flow/{}/requests/{id}", flow.name);
    let headers = [
        (
            header::HeaderName::from_static("x-request-id"),
            HeaderValue::from_str(id.as_str()).expect("validated id"),
        ),
        (
            header::LOCATION,
            HeaderValue::from_str(&location).expect("validated id"),
        ),
    ];
    let waited = match wait {
        Some(timeout) => Some(state.engine.wait_state(flow.name, &id, timeout).await?),
        None => None,
    };
    match waited {
        Some(request) if request.status.is_final() => {
            let body = request_json(flow, &request);
            Ok((StatusCode::OK, headers, Json(body)).into_response())
        }
        Some(request) => Ok((
            StatusCode::ACCEPTED,
            headers,
            Json(json!({"request_id": id, "status": request.status, "created": created})),
        )
            .into_response()),
        None => {
            let status = if created {
                RequestStatus::Queued
            } else {
                state.engine.state(flow.name, &id).await?.status
            };
            Ok((
                StatusCode::ACCEPTED,
                headers,
                Json(json!({"request_id": id, "status": status, "created": created})),
            )
                .into_response())
        }
    }
}

/// The JSON form of a request's state, with its output decoded.
fn request_json(flow: &FlowDef, request: &RequestState) -> Value {
    let mut body =
        serde_json::to_value(request).unwrap_or_else(|e| json!({"error": e.to_string()}));
    if let (Some(output), Some(object)) = (&request.output, body.as_object_mut()) {
        match (flow.output_to_json)(output) {
            Ok(value) => {
                object.insert("output".into(), value);
            }
            Err(error) => {
                object.insert("output_error".into(), Value::String(error.to_string()));
            }
        }
    }
    body
}

async fn request_status<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let flow = flow(&state, &name)?;
    let id = request_id(&id)?;
    let request = state.engine.state(flow.name, &id).await?;
    Ok(Json(request_json(flow, &request)))
}

async fn control<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Path((name, id, action)): Path<(String, String, String)>,
) -> Result<Response, ApiError> {
    let flow = flow(&state, &name)?;
    let id = request_id(&id)?;
    let Ok(action) = action.parse::<Control>() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the actions are `pause`, `resume` and `stop`",
        ));
    };
    let status = state.engine.control(flow.name, &id, action).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"request_id": id, "status": status})),
    )
        .into_response())
}

async fn ready<E: Engine>(State(state): State<Arc<AppState<E>>>) -> Result<Json<Value>, ApiError> {
    state.engine.ready().await?;
    Ok(Json(
        json!({"status": "ready", "engine": state.engine.kind()}),
    ))
}

/// `/metrics` and `/healthz` alone, for a worker-only process.
pub(crate) fn metrics_router() -> Router {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/metrics",
            get(|| async {
                let text = super::metrics::render_recorder();
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    text,
                )
            }),
        )
}

async fn metrics<E: Engine>(State(state): State<Arc<AppState<E>>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::{bearer, constant_time_eq};

    #[test]
    fn reads_the_bearer_scheme_in_any_case() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer abc"), Some("abc"));
        assert_eq!(bearer("BEARER abc"), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn compares_tokens() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret2"));
        assert!(!constant_time_eq(b"", b"x"));
    }
}
