//! [`Engine`]: the one interface of both engines, with the same signatures on each.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;

use crate::bulk::{BulkOutcome, Selection};
use crate::codec::Codec;
use crate::error::Error;
use crate::events::{EventId, EventStream, RequestEvent};
use crate::lifecycle::{Control, RequestStatus};
use crate::listing::{DeadLetterId, DeadLetterPage, RequestPage, RequestQuery, StatusCounts};
use crate::node::Data as _;
use crate::request::{Migrated, RequestData, RequestOutcome, RequestState, VersionInfo, Workers};
use crate::request_id::RequestId;
use crate::workflow::Workflow;

/// What both engines do: submit requests, run them, read their state, wait for them, pause,
/// resume and stop them. [`EmbeddedEngine`](crate::EmbeddedEngine) runs them in this process;
/// `goflow::redis::RedisEngine` on a fleet of workers. Code written against `Engine` runs on
/// either, with the same behaviour (the conformance suite checks it).
///
/// ```
/// use goflow::prelude::*;
/// use goflow::{EmbeddedEngine, Engine};
///
/// #[node]
/// async fn shout(text: String) -> String {
///     text.to_uppercase()
/// }
///
/// workflow! {
///     pub Shout = shout;
/// }
///
/// async fn submit_and_wait<E: Engine>(engine: &E) -> Result<String, goflow::Error> {
///     let id = engine.submit::<Shout>(&"hello".to_owned()).await?;
///     match engine.wait::<Shout>(&id, std::time::Duration::from_secs(5)).await? {
///         goflow::request::RequestOutcome::Completed(text) => Ok(text),
///         other => panic!("{other:?}"),
///     }
/// }
/// # #[tokio::main] async fn main() -> Result<(), goflow::Error> {
/// assert_eq!(submit_and_wait(&EmbeddedEngine::new()).await?, "HELLO");
/// # Ok(()) }
/// ```
///
/// Every method answers `Result<_, `[`Error`]`>`: a request that does not exist is
/// [`Error::UnknownRequest`], a control that does not apply [`Error::Conflict`], a storage
/// failure [`Error::Engine`] (whether it took effect is then unknown: submitting again under
/// the same id is safe).
///
/// The trait is sealed: goflow's engines are the ones there are.
pub trait Engine: Clone + Send + Sync + 'static + sealed::Sealed {
    /// The codec payloads are encoded with.
    type Codec: Codec;

    /// The codec payloads are encoded with.
    fn codec(&self) -> &Self::Codec;

    /// `"embedded"` or `"redis"`.
    fn kind(&self) -> &'static str;

    /// Makes workflow `W` known to the engine before a typed call about it: the embedded
    /// engine registers it on first use (so that typed calls need no registration), the Redis
    /// engine knows only the workflows registered with its builder.
    #[doc(hidden)]
    fn know<W: Workflow>(&self) {}

    /// Runs one request of `W` to its end under a fresh id, and returns its output; a request
    /// that fails or is stopped is an error ([`Error::Failed`], [`Error::Stopped`]).
    fn run<W: Workflow>(
        &self,
        input: W::Input,
    ) -> impl Future<Output = Result<W::Output, Error>> + Send {
        self.run_as::<W>(RequestId::generate(), input)
    }

    /// [`run`](Self::run) under the id `id`. On the Redis engine a request with that id that
    /// exists already is waited for instead of started again; the embedded engine does not
    /// record runs, so there the id only names the run (in spans, contexts and errors).
    fn run_as<W: Workflow>(
        &self,
        id: RequestId,
        input: W::Input,
    ) -> impl Future<Output = Result<W::Output, Error>> + Send;

    /// Starts a request of `W` under a fresh id.
    fn submit<W: Workflow>(
        &self,
        input: &W::Input,
    ) -> impl Future<Output = Result<RequestId, Error>> + Send {
        let id = RequestId::generate();
        let submitted = self.submit_as::<W>(id.clone(), input);
        async move {
            submitted.await?;
            Ok(id)
        }
    }

    /// Starts a request of `W` under `id`, unless a request with that id exists: returns
    /// whether this call created it. The same id never starts a second run, which makes a
    /// retried submission safe.
    fn submit_as<W: Workflow>(
        &self,
        id: RequestId,
        input: &W::Input,
    ) -> impl Future<Output = Result<bool, Error>> + Send {
        self.know::<W>();
        // Encoded before the future, which then does not borrow the input.
        let input = input
            .encode_with(self.codec())
            .map_err(Error::codec(W::NAME));
        async move {
            let submitted = self.submit_encoded(W::NAME, &id, input?).await?;
            Ok(submitted == Submitted::Created)
        }
    }

    /// The state of a request of `W`.
    fn status<W: Workflow>(
        &self,
        id: &RequestId,
    ) -> impl Future<Output = Result<RequestState, Error>> + Send {
        self.know::<W>();
        self.state(W::NAME, id)
    }

    /// Waits up to `timeout` for a request of `W` to end: its output, failure or stop, or
    /// [`RequestOutcome::Pending`] with its status if it has not ended by then.
    fn wait<W: Workflow>(
        &self,
        id: &RequestId,
        timeout: Duration,
    ) -> impl Future<Output = Result<RequestOutcome<W::Output>, Error>> + Send;

    /// Pauses a request of `W`: vertices not yet started wait until it is resumed. Answers the
    /// request's new status.
    fn pause<W: Workflow>(
        &self,
        id: &RequestId,
    ) -> impl Future<Output = Result<RequestStatus, Error>> + Send {
        self.know::<W>();
        self.control(W::NAME, id, Control::Pause)
    }

    /// Resumes a paused request of `W`: its parked vertices are queued, each once.
    fn resume<W: Workflow>(
        &self,
        id: &RequestId,
    ) -> impl Future<Output = Result<RequestStatus, Error>> + Send {
        self.know::<W>();
        self.control(W::NAME, id, Control::Resume)
    }

    /// Stops a request of `W` now: its running attempts are cancelled, nothing else runs.
    fn stop<W: Workflow>(
        &self,
        id: &RequestId,
    ) -> impl Future<Output = Result<RequestStatus, Error>> + Send {
        self.know::<W>();
        self.control(W::NAME, id, Control::Stop)
    }

    /// Retries a failed or stopped request of `W` under the same id: the vertex instances that
    /// failed, were cancelled or were parked run again (a failed for-each item alone, not its
    /// siblings), with the outputs that completed kept and each vertex's attempts counting on;
    /// the request is `running` again, and its state's `retries` counts one more. Answers
    /// [`Error::Conflict`] for a request that has not ended, or that completed.
    ///
    /// ```
    /// use goflow::prelude::*;
    /// use goflow::request::{RequestOutcome, RequestStatus};
    /// use goflow::{EmbeddedEngine, Engine};
    /// use std::sync::atomic::{AtomicBool, Ordering};
    ///
    /// static FIXED: AtomicBool = AtomicBool::new(false);
    ///
    /// #[node]
    /// async fn flaky(n: u32) -> Result<u32, NodeError> {
    ///     if FIXED.load(Ordering::SeqCst) { Ok(n) } else { Err(NodeError::permanent("not yet")) }
    /// }
    ///
    /// workflow! { pub Flaky = flaky; }
    ///
    /// # #[tokio::main] async fn main() -> Result<(), goflow::Error> {
    /// let engine = EmbeddedEngine::new();
    /// let id = engine.submit::<Flaky>(&7).await?;
    /// let failed = engine.wait::<Flaky>(&id, std::time::Duration::from_secs(5)).await?;
    /// assert!(matches!(failed, RequestOutcome::Failed(_)));
    /// FIXED.store(true, Ordering::SeqCst);
    /// assert_eq!(engine.retry::<Flaky>(&id).await?, RequestStatus::Running);
    /// let done = engine.wait::<Flaky>(&id, std::time::Duration::from_secs(5)).await?;
    /// assert!(matches!(done, RequestOutcome::Completed(7)));
    /// assert_eq!(engine.status::<Flaky>(&id).await?.retries, 1);
    /// # Ok(()) }
    /// ```
    fn retry<W: Workflow>(
        &self,
        id: &RequestId,
    ) -> impl Future<Output = Result<RequestStatus, Error>> + Send {
        self.know::<W>();
        self.control(W::NAME, id, Control::Retry)
    }

    /// Retries a failed or stopped request of `W` from its input: every vertex runs anew (their
    /// attempts counting on). On Redis, answers [`Error::StillEnding`] while an entry or
    /// attempt of its last run is still under way (for a moment after it ended).
    fn retry_from_start<W: Workflow>(
        &self,
        id: &RequestId,
    ) -> impl Future<Output = Result<RequestStatus, Error>> + Send {
        self.know::<W>();
        self.control(W::NAME, id, Control::RetryFromStart)
    }

    /// A page of the requests of `W` that `query` selects, newest first: those under way, and
    /// those that ended within the retention. Page on with
    /// [`RequestQuery::after`]`(page.next_cursor)`.
    ///
    /// ```
    /// use goflow::prelude::*;
    /// use goflow::request::{RequestQuery, RequestStatus};
    /// use goflow::{EmbeddedEngine, Engine};
    ///
    /// #[node]
    /// async fn echo(n: u32) -> u32 {
    ///     n
    /// }
    ///
    /// workflow! {
    ///     pub Echo = echo;
    /// }
    /// # #[tokio::main] async fn main() -> Result<(), goflow::Error> {
    /// let engine = EmbeddedEngine::new();
    /// for n in 0..3 {
    ///     let id = engine.submit::<Echo>(&n).await?;
    ///     engine.wait::<Echo>(&id, std::time::Duration::from_secs(5)).await?;
    /// }
    /// let query = RequestQuery::new().status(RequestStatus::Completed).limit(2);
    /// let first = engine.list::<Echo>(&query).await?;
    /// assert_eq!(first.requests.len(), 2);
    /// let rest = engine
    ///     .list::<Echo>(&query.after(first.next_cursor.expect("a third")))
    ///     .await?;
    /// assert_eq!((rest.requests.len(), rest.next_cursor), (1, None));
    /// assert_eq!(engine.counts::<Echo>().await?.get(RequestStatus::Completed), 3);
    /// # Ok(()) }
    /// ```
    fn list<W: Workflow>(
        &self,
        query: &RequestQuery,
    ) -> impl Future<Output = Result<RequestPage, Error>> + Send {
        self.know::<W>();
        self.list_requests(W::NAME, query)
    }

    /// How many requests of `W` there are in each status: those under way, and those that
    /// ended within the retention.
    fn counts<W: Workflow>(&self) -> impl Future<Output = Result<StatusCounts, Error>> + Send {
        self.know::<W>();
        self.count_requests(W::NAME, None)
    }

    /// Pauses, resumes or stops every request of `W` that `selection` picks, at most
    /// [`Selection::MAX`] (1,000) per call (`more` says whether others matched), each as
    /// [`pause`](Self::pause), [`resume`](Self::resume) or [`stop`](Self::stop) would: a
    /// request from whose status the action does not apply is skipped, with the reason.
    ///
    /// ```
    /// use goflow::prelude::*;
    /// use goflow::request::{Control, RequestQuery, RequestStatus, Selection};
    /// use goflow::{EmbeddedEngine, Engine};
    ///
    /// #[node]
    /// async fn nap(ms: u64) -> u64 {
    ///     tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
    ///     ms
    /// }
    ///
    /// workflow! {
    ///     pub Nap = nap;
    /// }
    /// # #[tokio::main] async fn main() -> Result<(), goflow::Error> {
    /// let engine = EmbeddedEngine::new();
    /// for _ in 0..3 {
    ///     engine.submit::<Nap>(&60_000).await?;
    /// }
    /// let running = Selection::matching(
    ///     RequestQuery::new()
    ///         .status(RequestStatus::Queued)
    ///         .status(RequestStatus::Running),
    /// );
    /// let stopped = engine.control_all::<Nap>(&running, Control::Stop).await?;
    /// assert_eq!((stopped.matched, stopped.applied), (3, 3));
    /// # Ok(()) }
    /// ```
    fn control_all<W: Workflow>(
        &self,
        selection: &Selection,
        action: Control,
    ) -> impl Future<Output = Result<BulkOutcome, Error>> + Send {
        self.know::<W>();
        self.control_many(W::NAME, selection, action)
    }

    /// Moves request `id` of `W` to this engine's version of `W`'s graph, when its progress
    /// carries over: every vertex where it has made progress has the same path, node, input
    /// and output types and inputs in this graph, and no vertex new to this graph takes the
    /// output of one it has already completed. What it has done stays done; what was queued
    /// (or running on workers that are gone) runs on this version. Otherwise
    /// [`Error::NotMigrated`], naming the first vertex where it does not carry over
    /// ([`Refusal::Incompatible`](crate::request::Refusal::Incompatible)), or an attempt
    /// still running on a live worker of its version
    /// ([`Refusal::Running`](crate::request::Refusal::Running)). A request already on this
    /// version is left as it is (`moved` false): the embedded engine's requests always are,
    /// as it runs one version per process.
    ///
    /// ```
    /// use goflow::prelude::*;
    /// use goflow::{EmbeddedEngine, Engine};
    ///
    /// #[node]
    /// async fn shout(text: String) -> String {
    ///     text.to_uppercase()
    /// }
    ///
    /// workflow! { pub Shout = shout; }
    ///
    /// # #[tokio::main] async fn main() -> Result<(), goflow::Error> {
    /// let engine = EmbeddedEngine::new();
    /// let id = engine.submit::<Shout>(&"hi".to_owned()).await?;
    /// let migrated = engine.migrate::<Shout>(&id).await?;
    /// assert!(!migrated.moved);
    /// assert_eq!(migrated.from, migrated.to);
    /// # Ok(()) }
    /// ```
    fn migrate<W: Workflow>(
        &self,
        id: &RequestId,
    ) -> impl Future<Output = Result<Migrated, Error>> + Send {
        self.know::<W>();
        self.migrate_request(W::NAME, id)
    }

    /// [`migrate`](Self::migrate) applied to every request of `W` that `selection` picks (at
    /// most [`Selection::MAX`]); those on this version already count as applied.
    fn migrate_all<W: Workflow>(
        &self,
        selection: &Selection,
    ) -> impl Future<Output = Result<BulkOutcome, Error>> + Send {
        self.know::<W>();
        self.migrate_many(W::NAME, selection)
    }

    /// A page of at most `limit` (1 to 500) dead letters of `W`, newest first, from `before`
    /// (the page before's `next_cursor`) on: the vertex instances that failed for good, each
    /// with its request and failure. Each workflow keeps about the newest 10,000.
    fn dead_letters<W: Workflow>(
        &self,
        limit: usize,
        before: Option<DeadLetterId>,
    ) -> impl Future<Output = Result<DeadLetterPage, Error>> + Send {
        self.know::<W>();
        self.list_dead(W::NAME, limit, before)
    }

    /// Starts a request of workflow `flow` on an input already encoded with this engine's
    /// codec (what [`submit_as`](Self::submit_as) does after encoding), unless a request with
    /// that id exists: then it says whether that request's input is this one. For services
    /// that work with workflow names, as the HTTP routes do.
    #[doc(hidden)]
    fn submit_encoded(
        &self,
        flow: &str,
        id: &RequestId,
        input: Bytes,
    ) -> impl Future<Output = Result<Submitted, Error>> + Send;

    /// [`status`](Self::status) by workflow name.
    #[doc(hidden)]
    fn state(
        &self,
        flow: &str,
        id: &RequestId,
    ) -> impl Future<Output = Result<RequestState, Error>> + Send;

    /// Waits up to `timeout` for a request of workflow `flow` to end; its state then, ended
    /// or not.
    #[doc(hidden)]
    fn wait_state(
        &self,
        flow: &str,
        id: &RequestId,
        timeout: Duration,
    ) -> impl Future<Output = Result<RequestState, Error>> + Send;

    /// Applies `action` to a request of workflow `flow`, by the lifecycle's control table.
    #[doc(hidden)]
    fn control(
        &self,
        flow: &str,
        id: &RequestId,
        action: Control,
    ) -> impl Future<Output = Result<RequestStatus, Error>> + Send;

    /// [`migrate`](Self::migrate) by workflow name.
    #[doc(hidden)]
    fn migrate_request(
        &self,
        flow: &str,
        id: &RequestId,
    ) -> impl Future<Output = Result<Migrated, Error>> + Send;

    /// [`migrate_all`](Self::migrate_all) by workflow name.
    #[doc(hidden)]
    fn migrate_many(
        &self,
        flow: &str,
        selection: &Selection,
    ) -> impl Future<Output = Result<BulkOutcome, Error>> + Send {
        crate::bulk::migrate_many(self, flow, selection)
    }

    /// [`list`](Self::list) by workflow name.
    #[doc(hidden)]
    fn list_requests(
        &self,
        flow: &str,
        query: &RequestQuery,
    ) -> impl Future<Output = Result<RequestPage, Error>> + Send;

    /// [`counts`](Self::counts) by workflow name, of the requests created from `since_ms`
    /// (every one kept, when `None`).
    #[doc(hidden)]
    fn count_requests(
        &self,
        flow: &str,
        since_ms: Option<u64>,
    ) -> impl Future<Output = Result<StatusCounts, Error>> + Send;

    /// [`control_all`](Self::control_all) by workflow name.
    #[doc(hidden)]
    fn control_many(
        &self,
        flow: &str,
        selection: &Selection,
        action: Control,
    ) -> impl Future<Output = Result<BulkOutcome, Error>> + Send {
        crate::bulk::control_many(self, flow, selection, action)
    }

    /// [`dead_letters`](Self::dead_letters) by workflow name.
    #[doc(hidden)]
    fn list_dead(
        &self,
        flow: &str,
        limit: usize,
        before: Option<DeadLetterId>,
    ) -> impl Future<Output = Result<DeadLetterPage, Error>> + Send;

    /// What request `id` of workflow `flow` was given and what its vertices made.
    #[doc(hidden)]
    fn request_data(
        &self,
        flow: &str,
        id: &RequestId,
    ) -> impl Future<Output = Result<RequestData, Error>> + Send;

    /// The workers of workflow `flow` and how far behind its work is.
    #[doc(hidden)]
    fn workers(&self, flow: &str) -> impl Future<Output = Result<Workers, Error>> + Send;

    /// The versions of workflow `flow`'s graph: this engine's first, then those of the other
    /// builds whose workers have started or which have requests under way.
    #[doc(hidden)]
    fn versions(&self, flow: &str) -> impl Future<Output = Result<Vec<VersionInfo>, Error>> + Send;

    /// Forgets version `version` of workflow `flow`'s graph: it is no longer listed, and what
    /// the engine kept of it is deleted. Refused ([`Error::VersionInUse`]) for this engine's
    /// version, and for one with requests under way or live workers.
    #[doc(hidden)]
    fn forget_version(
        &self,
        flow: &str,
        version: &str,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// Whether the engine can take requests now (Redis answers).
    #[doc(hidden)]
    fn ready(&self) -> impl Future<Output = Result<(), Error>> + Send;

    /// The events of workflow `flow` after `after` (those kept first, then, if `live`, those to
    /// come; else the stream ends with the newest kept), or from now on, with the newest event
    /// at the call: what [`flow_events`](Self::flow_events) and
    /// [`request_events`](Self::request_events) read.
    #[doc(hidden)]
    fn event_feed(
        &self,
        flow: &str,
        after: Option<EventId>,
        live: bool,
    ) -> impl Future<Output = Result<EventFeed, Error>> + Send;

    /// The live events of every request of `W`, from now on, or after `after` (an event's id,
    /// as a reconnecting client got it: each workflow keeps about the newest
    /// [`EVENTS_KEPT`](crate::request::EVENTS_KEPT) to resume from). The stream does not end.
    fn flow_events<W: Workflow>(
        &self,
        after: Option<EventId>,
    ) -> impl Future<Output = Result<EventStream, Error>> + Send {
        self.know::<W>();
        async move { Ok(self.event_feed(W::NAME, after, true).await?.events) }
    }

    /// The events of request `id` of `W`, in order: one per vertex transition and one per
    /// change of its status; the stream ends after its end. Without `after`, it starts with
    /// the request as it stands (an event per vertex that has moved, then its status), then
    /// follows it live; with `after` (an event's id), it resumes after that event.
    ///
    /// ```
    /// use futures_util::StreamExt as _;
    /// use goflow::prelude::*;
    /// use goflow::request::{EventKind, RequestStatus};
    /// use goflow::{EmbeddedEngine, Engine};
    ///
    /// #[node]
    /// async fn shout(text: String) -> String {
    ///     text.to_uppercase()
    /// }
    ///
    /// workflow! { pub Shout = shout; }
    ///
    /// # #[tokio::main] async fn main() -> Result<(), goflow::Error> {
    /// let engine = EmbeddedEngine::new();
    /// let id = engine.submit::<Shout>(&"hi".to_owned()).await?;
    /// let events: Vec<_> = engine.request_events::<Shout>(&id, None).await?.collect().await;
    /// let last = events.last().unwrap().as_ref().unwrap();
    /// assert_eq!(last.kind, EventKind::Request { status: RequestStatus::Completed });
    /// # Ok(()) }
    /// ```
    fn request_events<W: Workflow>(
        &self,
        id: &RequestId,
        after: Option<EventId>,
    ) -> impl Future<Output = Result<EventStream, Error>> + Send {
        self.know::<W>();
        crate::events::of_request(self, W::NAME, id.clone(), after)
    }
}

/// What [`Engine::submit_encoded`] did.
impl std::fmt::Debug for EventFeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventFeed")
            .field("position", &self.position)
            .finish_non_exhaustive()
    }
}

/// What [`Engine::event_feed`] answers: the newest event of the workflow when it was called,
/// and the events after the point asked for.
#[doc(hidden)]
#[non_exhaustive]
pub struct EventFeed {
    /// The newest event at the call (`0-0-0` when there is none).
    pub position: EventId,
    /// The events after the point asked for: those kept first, then live.
    pub events: futures_util::stream::BoxStream<'static, Result<RequestEvent, Error>>,
}

#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Submitted {
    /// The call created the request.
    Created,
    /// A request with that id existed already; nothing was started.
    Existed {
        /// Whether it was submitted with the same encoded input: a retry of the same
        /// submission (`true`), or another submission under an id already taken (`false`).
        same_input: bool,
    },
}

/// What both engines' builders collect: the plan of each workflow they are to run, by name, and
/// the finish hooks.
pub(crate) struct Registrations<C> {
    pub(crate) codec: C,
    pub(crate) limits: crate::request::Limits,
    /// How to build each registered workflow's plan: built when the engine is, so that
    /// settings given after a registration (the limits) apply to it too.
    plans: std::collections::HashMap<&'static str, PlanFor<C>>,
    pub(crate) hooks: std::collections::HashMap<&'static str, Hook>,
}

/// Builds one workflow's plan with a codec and limits.
type PlanFor<C> = fn(&C, crate::request::Limits) -> crate::plan::Plan;

/// What an engine is built from: its codec, limits, plans and hooks.
pub(crate) struct Registered<C> {
    pub(crate) codec: C,
    pub(crate) limits: crate::request::Limits,
    pub(crate) plans: std::collections::HashMap<&'static str, std::sync::Arc<crate::plan::Plan>>,
    pub(crate) hooks: std::collections::HashMap<&'static str, Hook>,
}

impl<C: Codec> Registrations<C> {
    pub(crate) fn new(codec: C) -> Self {
        Self {
            codec,
            limits: crate::request::Limits::DEFAULT,
            plans: std::collections::HashMap::new(),
            hooks: std::collections::HashMap::new(),
        }
    }

    /// Registers workflow `W`.
    pub(crate) fn register<W: Workflow>(&mut self) {
        self.plans.entry(W::NAME).or_insert(|codec, limits| {
            crate::plan::Plan::with_limits::<W, C>(codec.clone(), limits)
        });
    }

    /// Runs `hook` when a request of the workflow named `flow` ends.
    pub(crate) fn hook(&mut self, flow: &'static str, hook: Hook) {
        self.hooks.insert(flow, hook);
    }

    /// The names of the registered workflows, sorted (for `Debug`).
    pub(crate) fn names(&self) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = self.plans.keys().copied().collect();
        names.sort_unstable();
        names
    }

    /// Every registered workflow's plan, built with the codec and limits.
    pub(crate) fn build(self) -> Registered<C> {
        let plans = self
            .plans
            .into_iter()
            .map(|(name, plan)| (name, std::sync::Arc::new(plan(&self.codec, self.limits))))
            .collect();
        Registered {
            codec: self.codec,
            limits: self.limits,
            plans,
            hooks: self.hooks,
        }
    }
}

/// A finish hook, as both engines keep it: run once when a request of its workflow ends.
pub(crate) type Hook = std::sync::Arc<
    dyn Fn(crate::request::Finished) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync,
>;

/// A finish hook from the closure a user registers.
pub(crate) fn hook<F, Fut>(hook: F) -> Hook
where
    F: Fn(crate::request::Finished) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    std::sync::Arc::new(move |finished| Box::pin(hook(finished)))
}

pub(crate) mod sealed {
    /// Only goflow's engines implement [`Engine`](super::Engine).
    pub trait Sealed {}
}

/// A request's outcome decoded with `codec`.
pub(crate) fn decode_outcome<W: Workflow, C: Codec>(
    codec: &C,
    outcome: RequestOutcome<Bytes>,
) -> Result<RequestOutcome<W::Output>, Error> {
    outcome.try_map(|output| W::Output::decode_with(codec, &output).map_err(Error::codec(W::NAME)))
}

/// The result of a run from its outcome: the output, or the error of a failed or stopped
/// request (`run` waits until it has ended, so a pending one is an engine bug).
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn run_result<T>(
    flow: &'static str,
    request_id: RequestId,
    outcome: RequestOutcome<T>,
) -> Result<T, Error> {
    match outcome {
        RequestOutcome::Completed(output) => Ok(output),
        RequestOutcome::Failed(failure) => Err(Error::Failed {
            flow,
            request_id,
            failure,
        }),
        RequestOutcome::Stopped => Err(Error::Stopped { flow, request_id }),
        RequestOutcome::Pending(status) => Err(Error::Internal {
            flow,
            message: format!("request `{request_id}` ended its run while {status}"),
        }),
    }
}
