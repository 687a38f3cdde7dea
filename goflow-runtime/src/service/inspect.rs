//! What the dashboard shows beside a request's state and a workflow's listing:
//! `GET /flow/{name}/requests/{id}/data` (the request's input and each vertex instance's
//! output, as JSON) and `GET /flow/{name}/workers` (who works on the workflow, and how far
//! behind its work is). Thin handlers over the engine.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Map, Value};

use super::http::{flow, request_id, ApiError, AppState, Valid};
use crate::codec::Codec as _;
use crate::engine::Engine;

/// `GET /flow/{name}/requests/{id}/data`: `{"input": .., "outputs": {"<vertex>": ..}}`, each
/// value decoded from the engine's codec into JSON (a value that cannot be is left out and
/// named in `undecodable`, with why).
pub(super) async fn data<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Valid(Path((name, id))): Valid<Path<(String, String)>>,
) -> Result<Json<Value>, ApiError> {
    let flow = flow(&state, &name)?;
    let id = request_id(&id)?;
    let data = state.engine.request_data(flow.name, &id).await?;
    let codec = state.engine.codec();
    let mut undecodable = Map::new();
    let mut decode = |what: &str, bytes: &[u8]| match codec.decode::<Value>(bytes) {
        Ok(value) => Some(value),
        Err(error) => {
            undecodable.insert(what.to_owned(), Value::String(error.to_string()));
            None
        }
    };
    let input = data.input.and_then(|bytes| decode("input", &bytes));
    let outputs: Map<String, Value> = data
        .outputs
        .iter()
        .filter_map(|(vertex, bytes)| Some((vertex.clone(), decode(vertex, bytes)?)))
        .collect();
    let mut answer = json!({"request_id": id, "input": input, "outputs": outputs});
    if !undecodable.is_empty() {
        answer["undecodable"] = Value::Object(undecodable);
    }
    Ok(Json(answer))
}

/// `GET /flow/{name}/workers`: `{"lag": n, "workers": [{"name", "in_flight", "idle_ms"}]}`.
pub(super) async fn workers<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Valid(Path(name)): Valid<Path<String>>,
) -> Result<Json<Value>, ApiError> {
    let flow = flow(&state, &name)?;
    let workers = state.engine.workers(flow.name).await?;
    Ok(Json(json!(workers)))
}
