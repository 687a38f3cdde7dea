//! The live events of requests as Server-Sent Events: `GET /flow/{name}/requests/{id}/events`
//! (one request, from how it stands, until it ends; then the stream closes) and
//! `GET /flow/{name}/events` (every request of the workflow, from now on). Each event's `id` is
//! its [`EventId`]: a client that reconnects with it in `Last-Event-ID` (as a browser's
//! `EventSource` does by itself) resumes after it. Thin handlers over the engine's events.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{Stream, StreamExt as _};

use super::http::{flow, request_id, ApiError, AppState, Valid};
use crate::engine::Engine;
use crate::events::{EventId, EventStream, RequestEvent};

/// How often an idle event stream sends a comment, so that proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /flow/{name}/requests/{id}/events`.
pub(super) async fn of_request<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Valid(Path((name, id))): Valid<Path<(String, String)>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let flow = flow(&state, &name)?;
    let id = request_id(&id)?;
    let after = last_event_id(&headers)?;
    let events = crate::events::of_request(&state.engine, flow.name, id, after).await?;
    Ok(sse(events))
}

/// `GET /flow/{name}/events`.
pub(super) async fn of_flow<E: Engine>(
    State(state): State<Arc<AppState<E>>>,
    Valid(Path(name)): Valid<Path<String>>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let flow = flow(&state, &name)?;
    let after = last_event_id(&headers)?;
    let feed = state.engine.event_feed(flow.name, after, true).await?;
    Ok(sse(feed.events))
}

/// Where a reconnecting client resumes: its `Last-Event-ID`, if any; `400 invalid_event_id` if
/// it is not an event's id.
fn last_event_id(headers: &HeaderMap) -> Result<Option<EventId>, ApiError> {
    let Some(value) = headers.get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|text| text.trim().parse::<EventId>().ok())
        .map(Some)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_event_id",
                "`Last-Event-ID` is the `id` of an event of this stream (`<ms>-<n>-<i>`)",
            )
        })
}

/// The events as SSE: `event: vertex` or `request`, the event's id, its JSON; an error (the
/// engine's storage failing) is one `event: error` with its message, which ends the stream.
fn sse(events: EventStream) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let events = crate::events::through(events, |_| false).map(|event| {
        Ok(match event {
            Ok(event) => as_sse(&event),
            Err(error) => Event::default()
                .event("error")
                .data(crate::error::chain(&error)),
        })
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}

fn as_sse(event: &RequestEvent) -> Event {
    match serde_json::to_string(event) {
        Ok(json) => Event::default()
            .id(event.id.to_string())
            .event(event.name())
            .data(json),
        Err(error) => Event::default().event("error").data(error.to_string()),
    }
}
