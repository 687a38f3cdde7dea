//! The HTTP routes. Every error is JSON `{"error": {"code", "message"}}` with the right status
//! (and, on a submission, the request's id); handlers decode and validate everything before
//! touching the engine, so a bad request never leaves a half-created one behind.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use tracing::Instrument as _;

use super::metrics::Metrics;
use super::registry::FlowDef;
use super::{openapi as document, requests};
use crate::engine::{Engine, Submitted};
use crate::error::{Error, Refusal};
use crate::lifecycle::{Control, RequestStatus};
use crate::request::RequestState;
use crate::request_id::RequestId;

/// The header that names a request (and makes its submission idempotent).
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// The standard header for the same, on a submission.
const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// What the handlers share.
pub(crate) struct AppState<E> {
    pub(crate) engine: E,
    pub(crate) flows: HashMap<&'static str, FlowDef>,
    pub(crate) tokens: Arc<Tokens>,
    pub(crate) body_limit: usize,
    pub(crate) body_timeout: Duration,
    pub(crate) max_wait: Duration,
    pub(crate) metrics: Metrics,
    /// Whether the dashboard is served at `/ui` (`GET /` links to it).
    pub(crate) dashboard: bool,
}

/// The bearer tokens the routes take.
#[derive(Debug, Default)]
pub(crate) struct Tokens {
    /// Required on every route but the probes.
    pub(crate) api: Option<String>,
    /// Accepted on `/metrics` (beside the API token), for scrapers.
    pub(crate) metrics: Option<String>,
}

/// The routes, ready to serve or to nest in another application's router.
pub(crate) fn router<E: Engine>(state: Arc<AppState<E>>) -> Router {
    let tokens = Arc::clone(&state.tokens);
    Router::new()
        .route("/", get(index::<E>))
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready::<E>))
        .route("/metrics", get(metrics::<E>))
        .route("/flows", get(list_flows::<E>))
        .route("/openapi.json", get(openapi::<E>))
        .route("/flow/{name}", get(describe_flow::<E>).post(submit::<E>))
        .route("/flow/{name}/requests", get(requests::list::<E>))
        .route("/flow/{name}/dead", get(requests::dead::<E>))
        .route("/flow/{name}/requests/counts", get(requests::counts::<E>))
        .route(
            "/flow/{name}/requests/actions/{action}",
            post(requests::act::<E>),
        )
        .route("/flow/{name}/events", get(super::events::of_flow::<E>))
        .route(
            "/flow/{name}/requests/{id}/events",
            get(super::events::of_request::<E>),
        )
        .route("/flow/{name}/workers", get(super::inspect::workers::<E>))
        .route("/flow/{name}/versions", get(super::versions::list::<E>))
        .route(
            "/flow/{name}/versions/{version}",
            axum::routing::delete(super::versions::forget::<E>),
        )
        .route(
            "/flow/{name}/requests/{id}/migrate",
            post(super::versions::migrate::<E>),
        )
        .route(
            "/flow/{name}/requests/{id}/data",
            get(super::inspect::data::<E>),
        )
        .route("/flow/{name}/requests/{id}", get(request_status::<E>))
        .route("/flow/{name}/requests/{id}/{action}", post(control::<E>))
        .fallback(fallback::<E>)
        .method_not_allowed_fallback(method_not_allowed)
        // Around every route and both fallbacks, so that no answer but the probes' (not even
        // a 404 or a 405) is given without the token.
        .layer(middleware::from_fn_with_state(tokens, authorize))
        .layer(middleware::from_fn(trace_request))
        .with_state(state)
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}

/// `GET /`: what this is, and where to look.
async fn index<E: Engine>(State(state): State<Arc<AppState<E>>>) -> Json<Value> {
    Json(json!({
        "service": "goflow",
        "engine": state.engine.kind(),
        "flows": "/flows",
        "dashboard": state.dashboard.then_some("/ui"),
        "message": "GET /flows lists the workflows; POST /flow/{name} submits a request of one",
    }))
}

/// No such route; when the path starts with a workflow's name (`POST /greet`), the answer
/// points at the route meant (`/flow/greet`).
async fn fallback<E: Engine>(State(state): State<Arc<AppState<E>>>, uri: Uri) -> ApiError {
    let path = uri.path();
    let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
    let first = first
        .strip_suffix(".mmd")
        .or_else(|| first.strip_suffix(".dot"))
        .unwrap_or(first);
    let message = if state.flows.contains_key(first) {
        format!("no such route; the workflow `{first}` is at /flow{path}")
    } else {
        "no such route; GET /flows lists the workflows, at /flow/{name}".to_owned()
    };
    ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
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
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The request it is about, on a submission's answer.
    request_id: Option<RequestId>,
    /// The vertex it is about, on a migration's refusal.
    vertex: Option<String>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            request_id: None,
            vertex: None,
        }
    }

    /// The error's code, as in its JSON (`invalid_filter`, say).
    #[cfg(test)]
    pub(crate) fn code(&self) -> &'static str {
        self.code
    }

    /// The same answer about request `id` (its `X-Request-Id` header and `request_id` field).
    fn about(mut self, id: &RequestId) -> Self {
        self.request_id = Some(id.clone());
        self
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
            Error::Conflict { .. } | Error::StillEnding { .. } => {
                Self::new(StatusCode::CONFLICT, "conflict", message)
            }
            Error::VersionInUse { .. } => {
                Self::new(StatusCode::CONFLICT, "version_in_use", message)
            }
            Error::NotMigrated { refusal, .. } => match *refusal {
                Refusal::Incompatible { vertex, .. } => Self {
                    vertex: Some(vertex),
                    ..Self::new(StatusCode::CONFLICT, "version_incompatible", message)
                },
                Refusal::UnknownGraph => {
                    Self::new(StatusCode::CONFLICT, "version_unknown", message)
                }
                _ => Self::new(StatusCode::CONFLICT, "conflict", message),
            },
            #[cfg(feature = "redis")]
            Error::Engine { source } if source.is::<crate::redis::EventsOff>() => {
                Self::new(StatusCode::NOT_FOUND, "events_off", source.to_string())
            }
            Error::Engine { source } if source.is::<crate::embedded::ShuttingDown>() => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                source.to_string(),
            ),
            Error::Engine { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
            }
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let Some(vertex) = &self.vertex {
            error["vertex"] = json!(vertex);
        }
        let body = match &self.request_id {
            Some(id) => json!({"error": error, "request_id": id}),
            None => json!({ "error": error }),
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        if let Some(id) = &self.request_id {
            headers.insert(X_REQUEST_ID, id_header(id));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// A request id as a header value (ids are visible ASCII by construction).
fn id_header(id: &RequestId) -> HeaderValue {
    HeaderValue::from_str(id.as_str()).expect("a request id is a valid header value")
}

/// Path segments or a query string, read as axum's `Path` and `Query` do, but refused with
/// the service's JSON error (`400 invalid_path`, `400 invalid_query`) instead of axum's text.
pub(super) struct Valid<T>(pub(super) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Valid<Path<T>> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(path) => Ok(Valid(path)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_path",
                format!(
                    "the URL's path cannot be read (a segment must be UTF-8 once \
                     percent-decoded): {}",
                    rejection.body_text()
                ),
            )),
        }
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Valid<Query<T>> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(query) => Ok(Valid(query)),
            Err(rejection) => Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("the URL's query cannot be read: {}", rejection.body_text()),
            )),
        }
    }
}

/// Requires `Authorization: Bearer <token>` when a token is configured, on every route but
/// the probes (`/healthz`, `/readyz`), before anything else answers (a 404 or a 405 would tell
/// which routes exist). `/metrics` also takes the metrics token, when there is one (and
/// requires one of the two as soon as either is configured).
pub(crate) async fn authorize(
    State(tokens): State<Arc<Tokens>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let accepted: &[&Option<String>] = match path {
        "/healthz" | "/readyz" => &[],
        "/metrics" => &[&tokens.api, &tokens.metrics],
        _ => &[&tokens.api],
    };
    let required: Vec<&str> = accepted.iter().filter_map(|t| t.as_deref()).collect();
    if !required.is_empty() {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer)
            .unwrap_or("");
        // Every token is compared, so the time taken does not tell which one was close.
        let matched = required.iter().fold(false, |matched, expected| {
            constant_time_eq(given.as_bytes(), expected.as_bytes()) | matched
        });
        if !matched {
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

pub(super) fn flow<'a, E>(state: &'a AppState<E>, name: &str) -> Result<&'a FlowDef, ApiError> {
    state
        .flows
        .get(name)
        .ok_or_else(|| ApiError::unknown_flow(name))
}

pub(super) fn request_id(text: &str) -> Result<RequestId, ApiError> {
    RequestId::parse(text)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_id", e.to_string()))
}

/// The id a submission names, in `X-Request-Id` or `Idempotency-Key` (both mean the same;
/// given both, they must agree), or a fresh one.
fn submitted_id(headers: &HeaderMap) -> Result<RequestId, ApiError> {
    let named = |name: &HeaderName| -> Option<Result<RequestId, ApiError>> {
        let value = headers.get(name)?;
        let Ok(text) = value.to_str() else {
            return Some(Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request_id",
                format!(
                    "the `{name}` header is not UTF-8 visible ASCII text: a request id is 1 to {} \
                     of `A-Z`, `a-z`, `0-9`, `_` and `-`",
                    RequestId::MAX_LEN
                ),
            )));
        };
        // The Idempotency-Key draft makes the key a structured-field string: quoted.
        let text = if *name == IDEMPOTENCY_KEY {
            text.strip_prefix('"')
                .and_then(|t| t.strip_suffix('"'))
                .unwrap_or(text)
        } else {
            text
        };
        Some(request_id(text).map_err(|mut e| {
            e.message = format!("`{name}`: {}", e.message);
            e
        }))
    };
    match (named(&X_REQUEST_ID), named(&IDEMPOTENCY_KEY)) {
        (None, None) => Ok(RequestId::generate()),
        (Some(id), None) | (None, Some(id)) => id,
        (Some(id), Some(key)) => {
            let (id, key) = (id?, key?);
            if id == key {
                Ok(id)
            } else {
                Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request_id",
                    format!(
                        "`x-request-id` (`{id}`) and `idempotency-key` (`{key}`) differ: give \
                         one, or the same id in both"
                    ),
                ))
            }
        }
    }
}

/// `GET /openapi.json`: every route, with each workflow's input and output schemas.
async fn openapi<E: Engine>(State(state): State<Arc<AppState<E>>>) -> Json<Value> {
    Json(document::document(&state.flows))
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
                // The version new requests are pinned to: this service's graph.
                "version": format!("{:016x}", graph.structural_hash()),
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
    Valid(Path(name)): Valid<Path<String>>,
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
        _ => {
            let (input, output) = document::schemas(flow);
            Json(json!({
                "name": graph.name(),
                "description": flow.description,
                "version": format!("{:016x}", graph.structural_hash()),
                "graph": graph,
                "input_schema": input,
                "output_schema": output,
            }))
            .into_response()
        }
    })
}

/// `POST /flow/{name}`: body = the workflow input as JSON. Every answer, errors included,
/// names the request (`X-Request-Id` and `request_id`) once its id is known, so that a client
/// whose submission failed (a `503`: it may have been created) can retry it under the same id.
async fn submit<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    name: Result<Valid<Path<String>>, ApiError>,
    query: Result<Valid<Query<HashMap<String, String>>>, ApiError>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let id = submitted_id(&headers)?;
    submit_as(&state, name, query, &id, body)
        .await
        .map_err(|error| error.about(&id))
}

async fn submit_as<E: Engine>(
    state: &AppState<E>,
    name: Result<Valid<Path<String>>, ApiError>,
    query: Result<Valid<Query<HashMap<String, String>>>, ApiError>,
    id: &RequestId,
    body: Body,
) -> Result<Response, ApiError> {
    let Valid(Path(name)) = name?;
    let Valid(Query(query)) = query?;
    let flow = flow(state, &name)?;
    let wait = wait_of(&query, state.max_wait)?;
    let body = read_body(state, body).await?;
    let input = (flow.input_from_json)(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_input",
            format!("the body is not a valid `{}` input: {e}", flow.name),
        )
    })?;
    let submitted = state
        .engine
        .submit_encoded(flow.name, id, input)
        .await
        .map_err(|error| {
            let mut error = ApiError::from(error);
            if error.code == "unavailable" {
                error.message.push_str(
                    " (the request may have been created: submitting it again with the same \
                     X-Request-Id or Idempotency-Key is safe, it never starts a second run)",
                );
            }
            error
        })?;
    let location = format!("/flow/{}/requests/{id}", flow.name);
    let headers = [
        (X_REQUEST_ID, id_header(id)),
        (
            header::LOCATION,
            HeaderValue::from_str(&location).expect("validated id"),
        ),
    ];
    match submitted {
        Submitted::Created => {
            state.metrics.started(flow.name);
        }
        Submitted::Existed { same_input: false } => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "idempotency_conflict",
                format!(
                    "request `{id}` of `{}` exists with another input: a request id names one \
                     submission (use a new id for another input)",
                    flow.name
                ),
            ));
        }
        Submitted::Existed { same_input: true } => {
            // The same submission again: the request as it is (or as it ends, with `wait`).
            let request = match wait {
                Some(timeout) => state.engine.wait_state(flow.name, id, timeout).await?,
                None => state.engine.state(flow.name, id).await?,
            };
            let mut body = request_json(flow, &request, VertexPage::FIRST);
            if let Some(object) = body.as_object_mut() {
                object.insert("created".into(), Value::Bool(false));
            }
            return Ok((StatusCode::OK, headers, Json(body)).into_response());
        }
    }
    let waited = match wait {
        Some(timeout) => Some(state.engine.wait_state(flow.name, id, timeout).await?),
        None => None,
    };
    Ok(match waited {
        Some(request) if request.status.is_final() => {
            let mut body = request_json(flow, &request, VertexPage::FIRST);
            if let Some(object) = body.as_object_mut() {
                object.insert("created".into(), Value::Bool(true));
            }
            (StatusCode::OK, headers, Json(body)).into_response()
        }
        waited => {
            let status = waited.map_or(RequestStatus::Queued, |request| request.status);
            (
                StatusCode::ACCEPTED,
                headers,
                Json(json!({"request_id": id, "status": status, "created": true})),
            )
                .into_response()
        }
    })
}

/// The wait asked for by `?wait=<seconds>`, at most `max_wait`.
fn wait_of(
    query: &HashMap<String, String>,
    max_wait: Duration,
) -> Result<Option<Duration>, ApiError> {
    let Some(text) = query.get("wait") else {
        return Ok(None);
    };
    text.parse::<f64>()
        .ok()
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map(|s| {
            Some(
                Duration::try_from_secs_f64(s)
                    .unwrap_or(Duration::MAX)
                    .min(max_wait),
            )
        })
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_wait",
                "`wait` is a number of seconds",
            )
        })
}

/// The whole body, within the body limit and the body timeout.
pub(super) async fn read_body<E>(state: &AppState<E>, body: Body) -> Result<Bytes, ApiError> {
    let read = axum::body::to_bytes(body, state.body_limit);
    match tokio::time::timeout(state.body_timeout, read).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(error)) => {
            let too_large = std::error::Error::source(&error)
                .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
            Err(if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "body_too_large",
                    format!(
                        "the body is larger than the limit of {} bytes",
                        state.body_limit
                    ),
                )
            } else {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("the body could not be read: {error}"),
                )
            })
        }
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "the body did not arrive within {:?} (GOFLOW_BODY_TIMEOUT)",
                state.body_timeout
            ),
        )),
    }
}

/// The JSON form of a request's state, with its output decoded.
/// Which of a request's vertex instances a state answer lists: a page of them, so that a
/// request with many instances (a large for-each) answers in bounded size.
#[derive(Debug, Clone, Copy)]
struct VertexPage {
    from: usize,
    limit: usize,
}

impl VertexPage {
    /// The most instances one answer lists, and the default.
    const MAX: usize = 1_000;

    const FIRST: Self = Self {
        from: 0,
        limit: Self::MAX,
    };

    /// The page asked for by `?vertices_from=<n>&vertices_limit=<n>` (limit 1 to 1,000).
    fn of(query: &HashMap<String, String>) -> Result<Self, ApiError> {
        let number = |name: &str, default: usize| match query.get(name) {
            None => Ok(default),
            Some(text) => text.parse::<usize>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_page",
                    format!("`{name}` is a whole number"),
                )
            }),
        };
        let from = number("vertices_from", 0)?;
        let limit = number("vertices_limit", Self::MAX)?;
        if !(1..=Self::MAX).contains(&limit) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_page",
                format!("`vertices_limit` is from 1 to {}", Self::MAX),
            ));
        }
        Ok(Self { from, limit })
    }
}

/// The JSON form of a request's state, with its output decoded, listing the instances of
/// `page`: `vertices_total` says how many there are, and `vertices_next` where the next page
/// starts, if there is one.
fn request_json(flow: &FlowDef, request: &RequestState, page: VertexPage) -> Value {
    let total = request.vertices.len();
    let from = page.from.min(total);
    let to = from.saturating_add(page.limit).min(total);
    let mut head = RequestState {
        vertices: Vec::new(),
        ..request.clone()
    };
    head.vertices = request.vertices[from..to].to_vec();
    let mut body = serde_json::to_value(&head).unwrap_or_else(|e| json!({"error": e.to_string()}));
    if let Some(object) = body.as_object_mut() {
        object.insert("vertices_total".into(), json!(total));
        if to < total {
            object.insert("vertices_next".into(), json!(to));
        }
    }
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
    Valid(Path((name, id))): Valid<Path<(String, String)>>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let flow = flow(&state, &name)?;
    let id = request_id(&id)?;
    let page = VertexPage::of(&query)?;
    // `?wait=` long-polls: the state once the request has ended, or when the wait is over.
    let request = match wait_of(&query, state.max_wait)? {
        Some(timeout) => state.engine.wait_state(flow.name, &id, timeout).await?,
        None => state.engine.state(flow.name, &id).await?,
    };
    Ok(Json(request_json(flow, &request, page)))
}

/// The action a route's `{action}` and its `?from=` name: `pause`, `resume`, `stop`, `retry`,
/// and `retry?from=start`; `404` for another word, `400 invalid_action` for another query.
pub(super) fn action_of(word: &str, query: &HashMap<String, String>) -> Result<Control, ApiError> {
    const WORDS: [Control; 4] = [
        Control::Pause,
        Control::Resume,
        Control::Stop,
        Control::Retry,
    ];
    let Some(action) = WORDS.into_iter().find(|a| a.as_str() == word) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "the actions are `pause`, `resume`, `stop` and `retry` (`retry?from=start` to run \
             everything again from the input), and `migrate`",
        ));
    };
    let invalid = |message: &str| {
        Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_action",
            message.to_owned(),
        ))
    };
    if let Some(unknown) = query.keys().find(|k| *k != "from") {
        return invalid(&format!(
            "unknown parameter `{unknown}`; an action takes only `from`"
        ));
    }
    match (action, query.get("from").map(String::as_str)) {
        (action, None) => Ok(action),
        (Control::Retry, Some("start")) => Ok(Control::RetryFromStart),
        (Control::Retry, Some("failed")) => Ok(Control::Retry),
        (Control::Retry, Some(_)) => invalid(
            "`from` is `start` (everything again from the input) or `failed` (the default: \
             what failed or did not run)",
        ),
        (_, Some(_)) => invalid("only `retry` takes `from`"),
    }
}

async fn control<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Valid(Path((name, id, action))): Valid<Path<(String, String, String)>>,
    Valid(Query(query)): Valid<Query<HashMap<String, String>>>,
) -> Result<Response, ApiError> {
    let flow = flow(&state, &name)?;
    let id = request_id(&id)?;
    let action = action_of(&action, &query)?;
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

/// `/metrics` and `/healthz` alone, for a worker-only process (`/metrics` with the same
/// tokens as the service's).
pub(crate) fn metrics_router(tokens: Arc<Tokens>) -> Router {
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
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "a worker serves /metrics and /healthz only",
            )
        })
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(tokens, authorize))
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
    use axum::response::IntoResponse;

    use super::{bearer, constant_time_eq, ApiError, StatusCode};
    use crate::error::{Error, Refusal};
    use crate::request_id::RequestId;

    /// A migration's refusals are 409s, an incompatible one naming its vertex in the error.
    #[tokio::test]
    async fn a_refused_migration_is_a_409_naming_the_vertex() {
        let refused = |refusal| Error::NotMigrated {
            flow: "kyc",
            request_id: RequestId::parse("r1").unwrap(),
            from: "0000000000000001".into(),
            to: "0000000000000002".into(),
            refusal: Box::new(refusal),
        };
        let incompatible = Refusal::Incompatible {
            vertex: "finish".into(),
            reason: "runs node `a` in the old graph, `b` in the new".into(),
        };
        let response = ApiError::from(refused(incompatible)).into_response();
        assert_eq!(response.status(), StatusCode::CONFLICT);
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], "version_incompatible", "{body}");
        assert_eq!(body["error"]["vertex"], "finish", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("from version 0000000000000001 to 0000000000000002: `finish` runs"),
            "{message}"
        );
        for (refusal, code) in [
            (
                Refusal::Running {
                    vertex: "hold".into(),
                },
                "conflict",
            ),
            (Refusal::Completed, "conflict"),
            (Refusal::UnknownGraph, "version_unknown"),
        ] {
            let error = ApiError::from(refused(refusal));
            assert_eq!((error.status, error.code()), (StatusCode::CONFLICT, code));
        }
    }

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
