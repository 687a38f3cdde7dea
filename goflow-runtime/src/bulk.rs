//! Bulk actions: pause, resume, stop, retry or migrate every request of a workflow that a
//! [`Selection`] picks (by status, creation time or id), at most [`Selection::MAX`] per call,
//! each as one request's control (by the lifecycle's control table) or migration would be.
//! Written once, over the [`Engine`] interface, so both engines do exactly the same.

use serde::Serialize;

use crate::engine::Engine;
use crate::error::Error;
use crate::lifecycle::Control;
use crate::listing::RequestQuery;
use crate::request_id::RequestId;

/// Which requests of a workflow a bulk action applies to: those the filter of a
/// [`RequestQuery`] selects (its statuses and creation times; its limit and cursor do not
/// count), and, when `ids` is not empty, only those ids. A selection picks nothing until it
/// names a status, a time or an id, so that an empty one never stops every request by mistake.
///
/// ```
/// use goflow::request::{RequestQuery, RequestStatus, Selection};
///
/// let stuck = Selection::matching(
///     RequestQuery::new().status(RequestStatus::Paused).until_ms(1_700_000_000_000),
/// );
/// assert!(!stuck.is_empty());
/// assert!(Selection::new().is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Selection {
    /// The statuses and creation times picked (its limit and cursor are not used).
    pub filter: RequestQuery,
    /// Only these requests, when not empty (at most [`MAX`](Self::MAX)).
    pub ids: Vec<RequestId>,
}

impl Selection {
    /// The most requests one bulk action applies to.
    pub const MAX: usize = 1_000;

    /// A selection that picks nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The requests `filter` selects, by status and creation time.
    pub fn matching(filter: RequestQuery) -> Self {
        Self {
            filter,
            ids: Vec::new(),
        }
    }

    /// Only request `id` (among any others named so).
    pub fn id(mut self, id: RequestId) -> Self {
        if !self.ids.contains(&id) {
            self.ids.push(id);
        }
        self
    }

    /// Whether it names nothing to pick by (and so picks nothing).
    pub fn is_empty(&self) -> bool {
        self.filter.statuses.is_empty()
            && self.filter.since_ms.is_none()
            && self.filter.until_ms.is_none()
            && self.ids.is_empty()
    }

    /// The list query of its filter, from the first page, pages as large as they go.
    fn query(&self) -> RequestQuery {
        let mut query = self.filter.clone().limit(RequestQuery::MAX_LIMIT);
        query.cursor = None;
        query
    }
}

/// What a bulk action did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct BulkOutcome {
    /// How many requests the selection picked (at most [`Selection::MAX`]).
    pub matched: usize,
    /// To how many of them the action applied.
    pub applied: usize,
    /// Those it did not apply to, and why.
    pub skipped: Vec<Skipped>,
    /// Whether more requests than [`Selection::MAX`] matched: call again for the rest.
    pub more: bool,
}

/// A request a bulk action did not apply to.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Skipped {
    /// The request.
    pub request_id: RequestId,
    /// Why: the control table's conflict (`cannot stop request … it is completed`), a request
    /// that expired meanwhile, or a storage failure (then whether it applied is unknown).
    pub reason: String,
}

/// Applies `action` to the requests of workflow `flow` that `selection` picks.
pub(crate) async fn control_many<E: Engine>(
    engine: &E,
    flow: &str,
    selection: &Selection,
    action: Control,
) -> Result<BulkOutcome, Error> {
    apply(engine, flow, selection, |id| async move {
        engine.control(flow, &id, action).await.map(drop)
    })
    .await
}

/// Moves the requests of workflow `flow` that `selection` picks to the engine's version (see
/// [`Engine::migrate`]); those on it already count as applied.
pub(crate) async fn migrate_many<E: Engine>(
    engine: &E,
    flow: &str,
    selection: &Selection,
) -> Result<BulkOutcome, Error> {
    apply(engine, flow, selection, |id| async move {
        engine.migrate_request(flow, &id).await.map(drop)
    })
    .await
}

/// Applies `one` to each request `selection` picks, one after the other: what it did to
/// each, and why it did not to the others.
async fn apply<E, F, Fut>(
    engine: &E,
    flow: &str,
    selection: &Selection,
    mut one: F,
) -> Result<BulkOutcome, Error>
where
    E: Engine,
    F: FnMut(RequestId) -> Fut,
    Fut: std::future::Future<Output = Result<(), Error>>,
{
    let (picked, more) = pick(engine, flow, selection).await?;
    let mut outcome = BulkOutcome {
        matched: picked.len(),
        applied: 0,
        skipped: Vec::new(),
        more,
    };
    for id in picked {
        match one(id.clone()).await {
            Ok(()) => outcome.applied += 1,
            Err(Error::UnknownFlow { flow }) => return Err(Error::UnknownFlow { flow }),
            Err(error) => outcome.skipped.push(Skipped {
                request_id: id,
                reason: crate::error::chain(&error),
            }),
        }
    }
    Ok(outcome)
}

/// The ids `selection` picks (at most [`Selection::MAX`]), and whether more matched.
async fn pick<E: Engine>(
    engine: &E,
    flow: &str,
    selection: &Selection,
) -> Result<(Vec<RequestId>, bool), Error> {
    if selection.is_empty() {
        return Ok((Vec::new(), false));
    }
    let query = selection.query();
    let mut picked = Vec::new();
    if !selection.ids.is_empty() {
        for (i, id) in selection.ids.iter().enumerate() {
            if picked.len() == Selection::MAX {
                return Ok((picked, i < selection.ids.len()));
            }
            match engine.state(flow, id).await {
                Ok(state) if query.selects(state.status, state.created_at_ms) => {
                    picked.push(id.clone());
                }
                Ok(_) | Err(Error::UnknownRequest { .. }) => {}
                Err(error) => return Err(error),
            }
        }
        return Ok((picked, false));
    }
    let mut query = query;
    loop {
        let page = engine.list_requests(flow, &query).await?;
        for request in page.requests {
            if picked.len() == Selection::MAX {
                return Ok((picked, true));
            }
            picked.push(request.request_id);
        }
        match page.next_cursor {
            Some(cursor) => query = query.after(cursor),
            None => return Ok((picked, false)),
        }
    }
}
