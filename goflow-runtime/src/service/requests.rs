//! The routes that find a workflow's requests and act on many at once:
//! `GET /flow/{name}/requests` (a page of them, filtered by status and creation time),
//! `GET /flow/{name}/requests/counts` (how many in each status), `GET /flow/{name}/dead` (its
//! dead letters) and `POST /flow/{name}/requests/actions/{action}` (pause, resume, stop, retry
//! or migrate the requests a selection picks). Thin handlers over
//! [`Engine::list`](crate::Engine::list), [`Engine::counts`](crate::Engine::counts),
//! [`Engine::dead_letters`](crate::Engine::dead_letters),
//! [`Engine::control_all`](crate::Engine::control_all) and
//! [`Engine::migrate_all`](crate::Engine::migrate_all): they read the query, and the engine
//! answers.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

use super::http::{action_of, flow, read_body, ApiError, AppState, Valid};
use crate::bulk::Selection;
use crate::engine::Engine;
use crate::lifecycle::RequestStatus;
use crate::listing::{Cursor, DeadLetterId, RequestQuery};
use crate::request_id::RequestId;

/// `GET /flow/{name}/requests?status=failed,running&since=<ms>&until=<ms>&limit=50&cursor=..`:
/// `{"requests": [..], "next_cursor": ..}`, newest first.
pub(super) async fn list<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Valid(Path(name)): Valid<Path<String>>,
    Valid(Query(query)): Valid<Query<HashMap<String, String>>>,
) -> Result<Json<Value>, ApiError> {
    let flow = flow(&state, &name)?;
    let query = query_of(&query)?;
    let page = state.engine.list_requests(flow.name, &query).await?;
    Ok(Json(json!(page)))
}

/// `GET /flow/{name}/requests/counts?since=<ms>`: `{"queued": n, "running": n, ..}`, of the
/// requests created from `since` (every one kept, without it).
pub(super) async fn counts<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Valid(Path(name)): Valid<Path<String>>,
    Valid(Query(query)): Valid<Query<HashMap<String, String>>>,
) -> Result<Json<Value>, ApiError> {
    let flow = flow(&state, &name)?;
    only(&query, &["since"])?;
    let since = millis(&query, "since")?;
    let counts = state.engine.count_requests(flow.name, since).await?;
    Ok(Json(json!(counts)))
}

/// `GET /flow/{name}/dead?limit=50&cursor=..`: `{"dead": [..], "next_cursor": ..}`, newest
/// first.
pub(super) async fn dead<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Valid(Path(name)): Valid<Path<String>>,
    Valid(Query(query)): Valid<Query<HashMap<String, String>>>,
) -> Result<Json<Value>, ApiError> {
    let flow = flow(&state, &name)?;
    only(&query, &["limit", "cursor"])?;
    let limit = limit_of(&query)?.unwrap_or(RequestQuery::DEFAULT_LIMIT);
    let before = query
        .get("cursor")
        .map(|text| text.parse::<DeadLetterId>())
        .transpose()
        .map_err(|e| invalid(format!("`cursor`: {e}")))?;
    let page = state.engine.list_dead(flow.name, limit, before).await?;
    Ok(Json(json!(page)))
}

/// What a bulk action's body names: `{"status": [..], "since": ms, "until": ms, "ids": [..]}`,
/// each optional, at least one given.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SelectionBody {
    #[serde(default)]
    status: Vec<String>,
    since: Option<u64>,
    until: Option<u64>,
    #[serde(default)]
    ids: Vec<String>,
}

/// `POST /flow/{name}/requests/actions/{pause|resume|stop|retry|migrate}` (and
/// `retry?from=start`) with a [`SelectionBody`]: `{"matched", "applied", "skipped": [{"request_id", "reason"}],
/// "more"}`.
pub(super) async fn act<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Valid(Path((name, action))): Valid<Path<(String, String)>>,
    Valid(Query(query)): Valid<Query<HashMap<String, String>>>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let flow = flow(&state, &name)?;
    if action == "migrate" {
        if let Some(unknown) = query.keys().next() {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_action",
                format!("unknown parameter `{unknown}`; `migrate` takes none"),
            ));
        }
        let body = read_body(&state, body).await?;
        let selection = selection_of(&body)?;
        let outcome = state.engine.migrate_many(flow.name, &selection).await?;
        return Ok(Json(json!(outcome)));
    }
    let action = action_of(&action, &query)?;
    let body = read_body(&state, body).await?;
    let selection = selection_of(&body)?;
    let outcome = state
        .engine
        .control_many(flow.name, &selection, action)
        .await?;
    Ok(Json(json!(outcome)))
}

/// The selection a bulk action's body names; `400 invalid_filter` otherwise.
fn selection_of(body: &[u8]) -> Result<Selection, ApiError> {
    let body: SelectionBody = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "the body is `{{\"status\": [..], \"since\": <ms>, \"until\": <ms>, \"ids\": [..]}}`: {e}"
        ))
    })?;
    let mut filter = RequestQuery::new();
    for word in &body.status {
        filter = filter.status(status_of(word)?);
    }
    filter.since_ms = body.since;
    filter.until_ms = body.until;
    if let (Some(since), Some(until)) = (filter.since_ms, filter.until_ms) {
        if until < since {
            return Err(invalid("`until` is before `since`"));
        }
    }
    if body.ids.len() > Selection::MAX {
        return Err(invalid(format!(
            "at most {} `ids` per call",
            Selection::MAX
        )));
    }
    let mut selection = Selection::matching(filter);
    for id in &body.ids {
        let id = RequestId::parse(id).map_err(|e| invalid(format!("`ids`: {e}")))?;
        selection = selection.id(id);
    }
    if selection.is_empty() {
        return Err(invalid(
            "name the requests to act on: `status`, `since`, `until` or `ids` (an empty \
             selection would pick every request)",
        ));
    }
    Ok(selection)
}

/// A status word, or `400 invalid_filter` listing them.
fn status_of(word: &str) -> Result<RequestStatus, ApiError> {
    word.parse::<RequestStatus>().map_err(|_| {
        let words: Vec<&str> = RequestStatus::ALL.iter().map(|s| s.as_str()).collect();
        invalid(format!(
            "`status` is a comma-separated list of {}; not `{}`",
            words.join(", "),
            word.chars().take(40).collect::<String>()
        ))
    })
}

/// `?limit=`, from 1 to [`RequestQuery::MAX_LIMIT`].
fn limit_of(query: &HashMap<String, String>) -> Result<Option<usize>, ApiError> {
    query
        .get("limit")
        .map(|limit| match limit.parse::<usize>() {
            Ok(limit) if (1..=RequestQuery::MAX_LIMIT).contains(&limit) => Ok(limit),
            _ => Err(invalid(format!(
                "`limit` is from 1 to {}",
                RequestQuery::MAX_LIMIT
            ))),
        })
        .transpose()
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_filter", message)
}

/// `400 invalid_filter` naming the first parameter of `query` that is not one of `known`.
fn only(query: &HashMap<String, String>, known: &[&str]) -> Result<(), ApiError> {
    match query.keys().find(|k| !known.contains(&k.as_str())) {
        Some(unknown) => Err(invalid(format!(
            "unknown filter `{unknown}`; the filters are {}",
            known.join(", ")
        ))),
        None => Ok(()),
    }
}

/// The time parameter `name` of `query`, if given.
fn millis(query: &HashMap<String, String>, name: &str) -> Result<Option<u64>, ApiError> {
    query
        .get(name)
        .map(|text| {
            text.parse::<u64>()
                .map_err(|_| invalid(format!("`{name}` is a time in ms since the Unix epoch")))
        })
        .transpose()
}

/// The list a query string asks for; `400 invalid_filter` naming what is wrong otherwise.
fn query_of(query: &HashMap<String, String>) -> Result<RequestQuery, ApiError> {
    only(query, &["status", "since", "until", "limit", "cursor"])?;
    let mut list = RequestQuery::new();
    if let Some(statuses) = query.get("status") {
        for word in statuses.split(',').map(str::trim).filter(|w| !w.is_empty()) {
            let status = status_of(word)?;
            list = list.status(status);
        }
    }
    if let Some(since) = millis(query, "since")? {
        list = list.since_ms(since);
    }
    if let Some(until) = millis(query, "until")? {
        list = list.until_ms(until);
    }
    if let (Some(since), Some(until)) = (list.since_ms, list.until_ms) {
        if until < since {
            return Err(invalid("`until` is before `since`"));
        }
    }
    if let Some(limit) = limit_of(query)? {
        list = list.limit(limit);
    }
    if let Some(cursor) = query.get("cursor") {
        let cursor = cursor
            .parse::<Cursor>()
            .map_err(|e| invalid(format!("`cursor`: {e}")))?;
        list = list.after(cursor);
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn reads_every_filter() {
        let list = query_of(&query(&[
            ("status", "failed, running"),
            ("since", "10"),
            ("until", "20"),
            ("limit", "7"),
            ("cursor", "15-abc"),
        ]))
        .unwrap();
        assert_eq!(
            list.statuses,
            [RequestStatus::Failed, RequestStatus::Running]
        );
        assert_eq!(
            (list.since_ms, list.until_ms, list.limit),
            (Some(10), Some(20), 7)
        );
        assert_eq!(list.cursor.unwrap().to_string(), "15-abc");
        assert_eq!(query_of(&query(&[])).unwrap(), RequestQuery::new());
    }

    #[test]
    fn refuses_a_bad_filter() {
        for bad in [
            ("status", "done"),
            ("since", "yesterday"),
            ("until", "-1"),
            ("limit", "0"),
            ("limit", "501"),
            ("cursor", "nope"),
            ("colour", "red"),
        ] {
            let error = query_of(&query(&[bad])).expect_err("refused");
            assert_eq!(error.code(), "invalid_filter", "{bad:?}");
        }
        let error = query_of(&query(&[("since", "20"), ("until", "10")])).err();
        assert!(error.is_some());
    }
}
