//! The versions of a workflow's graph: `GET /flow/{name}/versions` (each with its requests under
//! way and its workers), `DELETE /flow/{name}/versions/{version}` (forgets a drained one) and
//! `POST /flow/{name}/requests/{id}/migrate` (moves a request to this service's version when
//! its progress carries over). Thin handlers over the engine; the bulk form of a migration is
//! `POST /flow/{name}/requests/actions/migrate` (see `requests.rs`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::http::{flow, request_id, ApiError, AppState, Valid};
use crate::engine::Engine;

/// `GET /flow/{name}/versions`: `{"versions": [{"version", "current", "state", "open",
/// "workers", "graph"}]}`, this service's version first.
pub(super) async fn list<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Valid(Path(name)): Valid<Path<String>>,
) -> Result<Json<Value>, ApiError> {
    let flow = flow(&state, &name)?;
    let versions = state.engine.versions(flow.name).await?;
    Ok(Json(json!({ "versions": versions })))
}

/// `DELETE /flow/{name}/versions/{version}`: `204` once forgotten; `409 version_in_use` for
/// this service's version or one with requests under way or live workers.
pub(super) async fn forget<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Valid(Path((name, version))): Valid<Path<(String, String)>>,
) -> Result<StatusCode, ApiError> {
    let flow = flow(&state, &name)?;
    if version.len() != 16 || !version.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_version",
            "a version is a graph's structural hash: 16 hex digits, as `GET /flow/{name}/versions` lists them",
        ));
    }
    state.engine.forget_version(flow.name, &version).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /flow/{name}/requests/{id}/migrate`: `{"request_id", "from", "to", "moved", "status",
/// "queued"}`; `409 version_incompatible` naming the first vertex whose progress does not carry
/// over (`error.vertex`), `409 conflict` while an attempt runs on a live worker of the old
/// version or for a completed request, `409 version_unknown` when the old graph is not known.
pub(super) async fn migrate<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Valid(Path((name, id))): Valid<Path<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let flow = flow(&state, &name)?;
    let id = request_id(&id)?;
    let migrated = state.engine.migrate_request(flow.name, &id).await?;
    Ok(Json(json!(migrated)))
}
