//! Listing a workflow's requests: which to list ([`RequestQuery`]), a page of them
//! ([`RequestPage`]) and where the next page starts ([`Cursor`]), and how many there are in each
//! status ([`StatusCounts`]); and its dead letters ([`DeadLetter`], [`DeadLetterPage`]). Both engines list the requests they keep (for the retention once
//! ended), newest first; the Redis engine from indexes it writes with each change of status,
//! never by scanning the keyspace.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::lifecycle::RequestStatus;
use crate::request::RequestFailure;
use crate::request_id::RequestId;

/// Which requests of a workflow to list, and how many: those with one of the `statuses` (every
/// status when empty), created from `since_ms` (included) until `until_ms` (excluded), at most
/// `limit`, after `cursor` (the page before's [`RequestPage::next_cursor`]).
///
/// ```
/// use goflow::request::{RequestQuery, RequestStatus};
///
/// let query = RequestQuery::new()
///     .status(RequestStatus::Failed)
///     .status(RequestStatus::Stopped)
///     .limit(20);
/// assert_eq!(query.limit, 20);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestQuery {
    /// The statuses to list; every status when empty.
    pub statuses: Vec<RequestStatus>,
    /// Only requests created at or after this time (ms since the Unix epoch).
    pub since_ms: Option<u64>,
    /// Only requests created before this time (ms since the Unix epoch).
    pub until_ms: Option<u64>,
    /// The most requests on one page: from 1 to [`MAX_LIMIT`](Self::MAX_LIMIT).
    pub limit: usize,
    /// Where the page starts: after the last request of the page before.
    pub cursor: Option<Cursor>,
}

impl RequestQuery {
    /// The most requests one page holds.
    pub const MAX_LIMIT: usize = 500;

    /// The number of requests on a page unless [`limit`](Self::limit) says otherwise.
    pub const DEFAULT_LIMIT: usize = 50;

    /// Every request, newest first, [`DEFAULT_LIMIT`](Self::DEFAULT_LIMIT) to a page.
    pub fn new() -> Self {
        Self {
            statuses: Vec::new(),
            since_ms: None,
            until_ms: None,
            limit: Self::DEFAULT_LIMIT,
            cursor: None,
        }
    }

    /// Lists requests with status `status` too (the first call narrows the list from every
    /// status to this one).
    pub fn status(mut self, status: RequestStatus) -> Self {
        if !self.statuses.contains(&status) {
            self.statuses.push(status);
        }
        self
    }

    /// Only requests created at or after `ms` (ms since the Unix epoch).
    pub fn since_ms(mut self, ms: u64) -> Self {
        self.since_ms = Some(ms);
        self
    }

    /// Only requests created before `ms` (ms since the Unix epoch).
    pub fn until_ms(mut self, ms: u64) -> Self {
        self.until_ms = Some(ms);
        self
    }

    /// At most `limit` requests on the page, kept from 1 to [`MAX_LIMIT`](Self::MAX_LIMIT).
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = limit.clamp(1, Self::MAX_LIMIT);
        self
    }

    /// The page after the one whose [`next_cursor`](RequestPage::next_cursor) is `cursor`.
    pub fn after(mut self, cursor: Cursor) -> Self {
        self.cursor = Some(cursor);
        self
    }

    /// Whether a request with `status` created at `created_at_ms` is listed.
    pub(crate) fn selects(&self, status: RequestStatus, created_at_ms: u64) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&status))
            && self.since_ms.is_none_or(|since| created_at_ms >= since)
            && self.until_ms.is_none_or(|until| created_at_ms < until)
    }

    /// The statuses listed: those asked for, or every one (the Redis engine reads an index per
    /// status).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn listed_statuses(&self) -> &[RequestStatus] {
        if self.statuses.is_empty() {
            RequestStatus::ALL
        } else {
            &self.statuses
        }
    }

    /// The number of requests on a page, within its bounds whatever the field holds.
    pub(crate) fn page_size(&self) -> usize {
        self.limit.clamp(1, Self::MAX_LIMIT)
    }
}

impl Default for RequestQuery {
    fn default() -> Self {
        Self::new()
    }
}

/// Where a page of requests ends: the next page starts after this request. Opaque to clients
/// over HTTP (`next_cursor`), which pass it back as `cursor`; its text form is
/// `<created at, ms>-<request id>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cursor {
    created_at_ms: u64,
    request_id: RequestId,
}

impl Cursor {
    /// The place of the request `request_id` created at `created_at_ms` in the order of the
    /// list (newest first; by id, descending, among those created in the same millisecond).
    pub(crate) fn new(created_at_ms: u64, request_id: RequestId) -> Self {
        Self {
            created_at_ms,
            request_id,
        }
    }

    /// When the last request of the page was created.
    pub(crate) fn created_at_ms(&self) -> u64 {
        self.created_at_ms
    }

    /// The last request of the page.
    pub(crate) fn request_id(&self) -> &RequestId {
        &self.request_id
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.created_at_ms, self.request_id)
    }
}

impl FromStr for Cursor {
    type Err = InvalidCursor;

    fn from_str(text: &str) -> Result<Self, InvalidCursor> {
        let (ms, id) = text.split_once('-').ok_or(InvalidCursor)?;
        Ok(Self {
            created_at_ms: ms.parse().map_err(|_| InvalidCursor)?,
            request_id: RequestId::parse(id).map_err(|_| InvalidCursor)?,
        })
    }
}

impl Serialize for Cursor {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A text that is not a [`Cursor`]: cursors come from a page's `next_cursor`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a cursor: pass back the `next_cursor` of the page before")]
#[non_exhaustive]
pub struct InvalidCursor;

/// One request of a list: what it is and how it stands, without its vertices (its state,
/// [`RequestState`](crate::request::RequestState), has them).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RequestSummary {
    /// The request.
    pub request_id: RequestId,
    /// Its status.
    pub status: RequestStatus,
    /// When it was submitted (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When it ended.
    pub ended_at_ms: Option<u64>,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<RequestFailure>,
    /// The version of the graph it is pinned to (as in its state's `version`).
    pub version: String,
}

impl RequestSummary {
    /// Where the list goes on after this request.
    pub(crate) fn cursor(&self) -> Cursor {
        Cursor::new(self.created_at_ms, self.request_id.clone())
    }
}

/// A page of a workflow's requests, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct RequestPage {
    /// The requests.
    pub requests: Vec<RequestSummary>,
    /// Where the next page starts ([`RequestQuery::after`]); `None` on the last page.
    pub next_cursor: Option<Cursor>,
}

impl RequestPage {
    /// The page of `query.page_size()` requests from `newest_first`, which holds the requests
    /// the query selects in list order, at least one more than a page if there are more.
    pub(crate) fn of(
        query: &RequestQuery,
        newest_first: impl IntoIterator<Item = RequestSummary>,
    ) -> Self {
        let size = query.page_size();
        let mut requests: Vec<RequestSummary> = newest_first.into_iter().take(size + 1).collect();
        let next_cursor = if requests.len() > size {
            requests.truncate(size);
            requests.last().map(RequestSummary::cursor)
        } else {
            None
        };
        Self {
            requests,
            next_cursor,
        }
    }
}

/// How many requests of a workflow the engine keeps in each status: the requests under way,
/// and those that ended within the retention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StatusCounts {
    counts: [u64; RequestStatus::ALL.len()],
}

impl StatusCounts {
    /// How many are in `status`.
    pub fn get(&self, status: RequestStatus) -> u64 {
        self.counts[Self::index(status)]
    }

    /// How many there are in all.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Counts one more in `status`.
    pub(crate) fn add(&mut self, status: RequestStatus, n: u64) {
        self.counts[Self::index(status)] += n;
    }

    fn index(status: RequestStatus) -> usize {
        RequestStatus::ALL
            .iter()
            .position(|s| *s == status)
            .expect("every status is in ALL")
    }
}

impl Serialize for StatusCounts {
    /// As an object with a member per status: `{"queued": 0, "running": 2, ...}`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(
            RequestStatus::ALL
                .iter()
                .map(|status| (status.as_str(), self.get(*status))),
        )
    }
}

/// How many dead letters each workflow keeps, about (the oldest go first).
pub(crate) const DEAD_LETTERS_KEPT: usize = 10_000;

/// Where a dead letter is in its workflow's list of them: `<ms>-<n>`, the time it was written
/// and its number within that millisecond (on Redis, the dead-letter stream's entry id). Pass
/// the last of a page to [`Engine::dead_letters`](crate::Engine::dead_letters) for the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeadLetterId {
    ms: u64,
    n: u64,
}

impl DeadLetterId {
    pub(crate) fn new(ms: u64, n: u64) -> Self {
        Self { ms, n }
    }

    /// When the dead letter was written (ms since the Unix epoch).
    pub fn at_ms(&self) -> u64 {
        self.ms
    }

    /// The id that comes after this one within the same millisecond, or the first of `now_ms`
    /// if that is later: ids written in a row never repeat or go back.
    pub(crate) fn next(last: Option<Self>, now_ms: u64) -> Self {
        match last {
            Some(last) if last.ms >= now_ms => Self::new(last.ms, last.n + 1),
            _ => Self::new(now_ms, 0),
        }
    }
}

impl fmt::Display for DeadLetterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.n)
    }
}

impl FromStr for DeadLetterId {
    type Err = InvalidCursor;

    fn from_str(text: &str) -> Result<Self, InvalidCursor> {
        let (ms, n) = text.split_once('-').ok_or(InvalidCursor)?;
        let digits = |s: &str| {
            (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .then(|| s.parse::<u64>().ok())
                .flatten()
                .ok_or(InvalidCursor)
        };
        Ok(Self::new(digits(ms)?, digits(n)?))
    }
}

impl Serialize for DeadLetterId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A vertex instance that failed for good, and with it its request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DeadLetter {
    /// Its place in the list.
    pub id: DeadLetterId,
    /// When it was written (ms since the Unix epoch).
    pub at_ms: u64,
    /// The request.
    pub request_id: RequestId,
    /// The instance that failed (`verify[3]`), its attempts and its last failure.
    pub failure: RequestFailure,
}

/// A page of a workflow's dead letters, newest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct DeadLetterPage {
    /// The dead letters.
    pub dead: Vec<DeadLetter>,
    /// The last one's id, when more follow: pass it as `before` for the next page.
    pub next_cursor: Option<DeadLetterId>,
}

impl DeadLetterPage {
    /// The page of at most `limit` (1 to [`RequestQuery::MAX_LIMIT`]) from `newest_first`,
    /// which holds one more if more follow.
    pub(crate) fn of(limit: usize, newest_first: impl IntoIterator<Item = DeadLetter>) -> Self {
        let size = limit.clamp(1, RequestQuery::MAX_LIMIT);
        let mut dead: Vec<DeadLetter> = newest_first.into_iter().take(size + 1).collect();
        let next_cursor = if dead.len() > size {
            dead.truncate(size);
            dead.last().map(|d| d.id)
        } else {
            None
        };
        Self { dead, next_cursor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back() {
        let cursor = Cursor::new(1_700_000_000_123, RequestId::parse("a-b_c").unwrap());
        assert_eq!(cursor.to_string(), "1700000000123-a-b_c");
        assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        for bad in ["", "12", "x-abc", "12-", "12-a b", "-abc"] {
            assert_eq!(bad.parse::<Cursor>(), Err(InvalidCursor), "{bad:?}");
        }
    }

    #[test]
    fn dead_letter_ids_read_back_and_never_repeat() {
        let id = DeadLetterId::new(1_700_000_000_123, 4);
        assert_eq!(id.to_string().parse::<DeadLetterId>(), Ok(id));
        for bad in ["", "1", "1-", "-1", "1-x", "1-+2", "a-1"] {
            assert_eq!(bad.parse::<DeadLetterId>(), Err(InvalidCursor), "{bad:?}");
        }
        assert_eq!(DeadLetterId::next(None, 10), DeadLetterId::new(10, 0));
        assert_eq!(DeadLetterId::next(Some(id), 5), DeadLetterId::new(id.ms, 5));
        assert_eq!(
            DeadLetterId::next(Some(id), id.ms + 1),
            DeadLetterId::new(id.ms + 1, 0)
        );
    }

    #[test]
    fn a_query_selects_by_status_and_time() {
        let query = RequestQuery::new()
            .status(RequestStatus::Failed)
            .since_ms(10)
            .until_ms(20);
        assert!(query.selects(RequestStatus::Failed, 10));
        assert!(!query.selects(RequestStatus::Failed, 20));
        assert!(!query.selects(RequestStatus::Running, 15));
        assert!(RequestQuery::new().selects(RequestStatus::Running, 0));
        assert_eq!(RequestQuery::new().limit(0).limit, 1);
        assert_eq!(
            RequestQuery::new().limit(10_000).limit,
            RequestQuery::MAX_LIMIT
        );
    }

    #[test]
    fn counts_are_an_object_of_every_status() {
        let mut counts = StatusCounts::default();
        counts.add(RequestStatus::Failed, 2);
        assert_eq!(
            serde_json::to_value(counts).unwrap(),
            serde_json::json!({"queued": 0, "running": 0, "paused": 0, "completed": 0,
                               "failed": 2, "stopped": 0})
        );
        assert_eq!(counts.total(), 2);
    }
}
