//! # goflow
//!
//! Typed workflow DAGs, declared with two macros and checked by the compiler, run in-process
//! (the embedded engine) or, with the Redis engine, on a fleet of workers.
//!
//! Each step of a workflow is an ordinary `async fn` marked [`#[node]`](macro@node); the
//! [`workflow!`] macro wires the steps together with a small arrow DSL. Every edge's types, the
//! joins' arity, cycles and unknown nodes are checked at compile time, with errors that point
//! at the DSL. The same workflow types run on [`EmbeddedEngine`] (tokio, in this process) and
//! on [`redis::RedisEngine`] (Redis streams, any number of worker processes), both behind
//! the one [`Engine`] trait, with one lifecycle: parallel branches, retries with backoff,
//! timeouts, panic isolation, conditionals and for-each, request state, pause, resume, stop
//! and finish hooks. [`service::FlowService`] serves them over HTTP.
//!
//! ```
//! use goflow::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Clone, Serialize, Deserialize)]
//! pub struct Image(String);
//!
//! #[node]
//! async fn get_image(user: String) -> Image {
//!     Image(format!("{user}.png"))
//! }
//!
//! #[node(retries = 2, timeout = "5s")]
//! async fn face_detect(image: Image) -> Result<bool, NodeError> {
//!     Ok(image.0.ends_with(".png"))
//! }
//!
//! #[node]
//! async fn face_match(image: Image) -> Result<f64, std::io::Error> {
//!     Ok(if image.0.starts_with("alice") { 0.97 } else { 0.1 })
//! }
//!
//! #[node]
//! async fn verdict(detected: bool, score: f64) -> String {
//!     if detected && score > 0.9 { "verified".into() } else { "rejected".into() }
//! }
//!
//! workflow! {
//!     /// Checks a user's image.
//!     pub Verify = get_image -> [face_detect, face_match] => verdict;
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), goflow::Error> {
//! assert_eq!(Verify::run_local("alice".to_owned()).await?, "verified");
//! assert_eq!(Verify::NAME, "verify");
//! # Ok(()) }
//! ```
//!
//! `face_detect` and `face_match` run in parallel on the image, and `verdict` takes both of
//! their outputs as its two parameters. A crate using goflow also needs `serde` (with
//! `derive`) for its payload types and `tokio` (with `macros` and `rt-multi-thread`). Its
//! features, all on by default: `redis` (the Redis engine), `http` (`FlowService`) and `otel`
//! (OpenTelemetry export from the service).
//!
//! # Declaring nodes
//!
//! A node is a free, non-generic `async fn` marked [`#[node]`](macro@node), with at least one
//! input parameter. Its parameters are owned values decoded from the previous vertex's output:
//! with one parameter the node takes one vertex's output, with several it is a join, taking the
//! outputs of a `[..] =>` group in order. Inputs and outputs are any
//! `Serialize + DeserializeOwned + Send + 'static` type declared `pub` (derive serde's traits);
//! they need no `Clone`, since each output is encoded once and every branch decodes its own copy.
//!
//! - **The return type** is a plain `T` (the node cannot fail) or `Result<T, E>`, where `E` is
//!   [`NodeError`] or any `std::error::Error + Send + Sync + 'static` (converted into a
//!   `NodeError`, its chain of sources as the message). [`NodeError::new`] is a failure that may
//!   be retried, [`NodeError::permanent`] one that fails the vertex at once.
//! - **A [`Context`] parameter**, anywhere in the list, is not an input: it gives the workflow,
//!   the request id, the vertex, the attempt number, an idempotency key stable across retries
//!   and redeliveries, and cancellation. [`Context::for_test`] makes one for unit tests.
//! - **Options**, all optional: `#[node(name = "...", retries = N, timeout = "5s",
//!   backoff = "100ms", crate = path)]`:
//!   - `name`: the node's name in graphs, traces and metrics (default: the function's name);
//!   - `retries`: attempts after the first, for errors, timeouts and panics (default 0);
//!   - `timeout`: the limit of one attempt, whose future is dropped when it expires (default:
//!     none);
//!   - `backoff`: the delay before the first retry, doubled for each later one, capped at
//!     60 s, minus a random jitter of up to half (default `100ms`);
//!   - `crate`: the path of the `goflow` crate, if it is renamed (default `::goflow`).
//!
//!   Durations are whole numbers with a unit (`ns`, `us`, `ms`, `s`, `m`, `h`), compound as
//!   in `"1m30s"`.
//! - **The function stays callable as written** (unit tests call it directly); beside it,
//!   `#[node]` adds a field-less type of the same name, implementing [`Node`], which is what
//!   `workflow!` refers to.
//!
//! ```
//! use goflow::prelude::*;
//!
//! #[node(name = "fetch-profile", retries = 3, timeout = "2s", backoff = "50ms")]
//! async fn fetch_profile(ctx: Context, user: String) -> Result<String, NodeError> {
//!     if user.is_empty() {
//!         return Err(NodeError::permanent("no user"));
//!     }
//!     Ok(format!("{user} (attempt {}, key {})", ctx.attempt(), ctx.idempotency_key()))
//! }
//!
//! # #[tokio::main] async fn main() {
//! let profile = fetch_profile(Context::for_test("fetch_profile"), "ada".into()).await;
//! assert!(profile.unwrap().starts_with("ada (attempt 1"));
//! # }
//! ```
//!
//! # Declaring workflows
//!
//! Each declaration in [`workflow!`] becomes a type (keeping its docs, attributes and
//! visibility) implementing [`Workflow`]: [`Workflow::NAME`] is the type's name in snake_case
//! (`FraudSweep` is `"fraud_sweep"`), [`Workflow::DESCRIPTION`] its doc comment, `Input` and
//! `Output` the types of a request's input and output, and [`Workflow::graph`] its shape as data
//! ([`graph::Graph`], with Mermaid and Graphviz DOT renderings and a structural hash). The DSL:
//!
//! | form | meaning |
//! |---|---|
//! | `a -> b` | `b` takes `a`'s output |
//! | `a -> [b, c]` | `b` and `c` each take `a`'s output, in parallel; branches may be chains (`[b -> c, d]`) |
//! | `[b, c] => d` | a join: `d` takes `b`'s and `c`'s outputs as its two parameters, in that order |
//! | `{ a -> [b, c]; [b, c] => d; }` | a braced body: any DAG, over several statements; the same name is the same vertex |
//! | `a -> b as b2` | `as` names another vertex running the same node or workflow |
//! | `a -> Other -> b` | a workflow as a vertex: a sub-workflow, inlined when it runs |
//! | `v ? { Pass => a, Fail => b -> c, Skip => {} } -> merge` | a conditional: `v` outputs an enum of one-field variants, the arm of its variant runs with the payload (`{}` passes it on), and `merge` takes the output of the arm that ran; the arms must cover every variant, and the others end `skipped` |
//! | `v -> each { body } => gather` | a for-each: `v` outputs a `Vec<T>`, the body runs once per item, concurrently, and `gather` takes the `Vec` of the body's outputs in item order (empty for an empty `Vec`) |
//!
//! A workflow has one entry vertex, which takes the request's input, and one exit vertex, whose
//! output is the request's output. Mistakes (a cycle, an edge whose types differ, a join of the
//! wrong arity, an arm for a variant the enum does not have, `each` over something other than a
//! `Vec`, ...) are compile errors at the DSL tokens that caused them, all reported in one build.
//!
//! ```
//! use goflow::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! pub enum Checked {
//!     Valid(String),
//!     Invalid(String),
//! }
//!
//! #[node]
//! async fn list_users(region: String) -> Vec<String> {
//!     vec![format!("{region}-ada"), String::new(), format!("{region}-bob")]
//! }
//! #[node]
//! async fn check(user: String) -> Checked {
//!     if user.is_empty() { Checked::Invalid(user) } else { Checked::Valid(user) }
//! }
//! #[node]
//! async fn approve(user: String) -> bool {
//!     !user.is_empty()
//! }
//! #[node]
//! async fn reject(_user: String) -> bool {
//!     false
//! }
//! #[node]
//! async fn record(approved: bool) -> bool {
//!     approved
//! }
//! #[node]
//! async fn count(approved: Vec<bool>) -> usize {
//!     approved.into_iter().filter(|a| *a).count()
//! }
//!
//! workflow! {
//!     /// One user: approved when valid.
//!     pub Review = check ? { Valid => approve, Invalid => reject } -> record;
//!     /// Every user of a region, each reviewed by the `Review` sub-workflow.
//!     pub Sweep = list_users -> each { Review } => count;
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), goflow::Error> {
//! assert_eq!(Sweep::run_local("north".to_owned()).await?, 2);
//! assert_eq!(Sweep::NAME, "sweep");
//! assert_eq!(Review::DESCRIPTION, "One user: approved when valid.");
//! println!("{}", Sweep::graph().to_mermaid());
//! # Ok(()) }
//! ```
//!
//! # Running workflows
//!
//! [`Kyc::run_local(input)`](embedded::RunLocal::run_local) (in the [`prelude`]) runs one
//! request on a default embedded engine and returns its output. For more, use an engine:
//! [`EmbeddedEngine`] runs requests in this process, and like every engine implements
//! [`Engine`] (bring the trait into scope with `use goflow::Engine;`):
//!
//! - [`run`](Engine::run) / [`run_as`](Engine::run_as) run a request to its end and return its
//!   output;
//! - [`submit`](Engine::submit) / [`submit_as`](Engine::submit_as) start one and return at once
//!   (the same [`RequestId`] never starts a second run);
//! - [`status`](Engine::status) reads its [`RequestState`](request::RequestState): its status,
//!   every vertex instance's status and attempts, its output or failure;
//! - [`wait`](Engine::wait) waits for its end: a [`RequestOutcome`](request::RequestOutcome);
//! - [`pause`](Engine::pause), [`resume`](Engine::resume) and [`stop`](Engine::stop) control it
//!   and answer its new [`RequestStatus`](request::RequestStatus).
//!
//! The calls are typed by the workflow (`engine.status::<Kyc>(&id)`), and the same on both
//! engines, so code generic over `E: Engine` runs on either. Pause, resume and stop follow one
//! control table: pause from `queued` or `running`, resume from `paused`, stop from any of the
//! three; anything else is [`Error::Conflict`]. A paused request parks the vertices that become
//! ready, and resume queues each once; a stopped one cancels its running attempts. When a
//! request ends, every vertex that will never run is settled: `pending` ones end `skipped`,
//! `queued`, `parked`, `retrying` and `running` ones `cancelled`. Finished requests are kept
//! 24 h by default, and [`on_finish`](embedded::EmbeddedEngineBuilder::on_finish) hooks run
//! once per request that ends.
//!
//! ```
//! use std::time::Duration;
//!
//! use goflow::prelude::*;
//! use goflow::request::{RequestOutcome, RequestStatus};
//! use goflow::{EmbeddedEngine, Engine};
//!
//! #[node]
//! async fn greet(name: String) -> String {
//!     tokio::time::sleep(Duration::from_millis(20)).await;
//!     format!("hello, {name}")
//! }
//! #[node]
//! async fn shout(text: String) -> String {
//!     text.to_uppercase()
//! }
//!
//! workflow! {
//!     pub Greeting = greet -> shout;
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), goflow::Error> {
//! let engine = EmbeddedEngine::builder()
//!     .retention(Duration::from_secs(3600))
//!     .on_finish::<Greeting, _, _>(|finished| async move {
//!         println!("{} ended {}", finished.request_id, finished.status);
//!     })
//!     .build();
//! assert_eq!(engine.run::<Greeting>("ada".to_owned()).await?, "HELLO, ADA");
//!
//! let id = engine.submit::<Greeting>(&"bob".to_owned()).await?;
//! assert_eq!(engine.pause::<Greeting>(&id).await?, RequestStatus::Paused);
//! assert_eq!(engine.status::<Greeting>(&id).await?.status, RequestStatus::Paused);
//! assert_eq!(engine.resume::<Greeting>(&id).await?, RequestStatus::Running);
//! match engine.wait::<Greeting>(&id, Duration::from_secs(5)).await? {
//!     RequestOutcome::Completed(text) => assert_eq!(text, "HELLO, BOB"),
//!     other => panic!("{other:?}"),
//! }
//! // A control that does not apply is a conflict: the request has completed.
//! assert!(matches!(
//!     engine.stop::<Greeting>(&id).await,
//!     Err(goflow::Error::Conflict { status: RequestStatus::Completed, .. })
//! ));
//!
//! let id = engine.submit::<Greeting>(&"eve".to_owned()).await?;
//! assert_eq!(engine.stop::<Greeting>(&id).await?, RequestStatus::Stopped);
//! let state = engine.status::<Greeting>(&id).await?;
//! assert!(state.vertices.iter().all(|v| v.status.is_final()));
//! # Ok(()) }
//! ```
//!
//! # On Redis
//!
//! With the `redis` feature, [`redis::RedisEngine`] runs the same workflows across
//! processes: every process builds an engine with the workflows it knows; any of them submits
//! requests and reads or controls them, with the same [`Engine`] calls; workers run the
//! vertices. Delivery is at least once and a vertex's effect exactly once (a join fires once), a
//! dead worker's work is reclaimed by the others after a lease, retries wait in Redis, and a
//! request runs only on workers built with the graph it was submitted on (a rolling deploy of a
//! changed workflow lets old requests finish on old workers, or
//! [migrates](Engine::migrate) them where their progress carries over). The engine's settings are
//! the fields of [`redis::RedisConfig`]; the key layout and every script are described in
//! `goflow-runtime/src/redis/PROTOCOL.md`.
//!
//! ```no_run
//! use goflow::prelude::*;
//! use goflow::redis::{RedisConfig, RedisEngine};
//! use goflow::Engine;
//! use tokio_util::sync::CancellationToken;
//!
//! #[node]
//! async fn shout(text: String) -> String {
//!     text.to_uppercase()
//! }
//!
//! workflow! {
//!     pub Shout = shout;
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = RedisConfig::new("redis://127.0.0.1:6379");
//! config.prefix = "myapp".to_owned();
//! let engine = RedisEngine::builder(config)
//!     .register::<Shout>()
//!     .connect()
//!     .await?;
//!
//! // A worker running up to 8 attempts at once, here in this process; run as many as you
//! // like, in as many processes.
//! let shutdown = CancellationToken::new();
//! let worker = tokio::spawn(engine.worker(8).run(shutdown.clone()));
//!
//! assert_eq!(engine.run::<Shout>("hi".to_owned()).await?, "HI");
//! shutdown.cancel();
//! worker.await??;
//! # Ok(()) }
//! ```
//!
//! # Serving over HTTP
//!
//! With the `http` feature, [`service::FlowService`] serves registered workflows over
//! HTTP: `POST /flow/{name}` submits a request (with `?wait=` for its result),
//! `GET /flow/{name}/requests/{id}` reads its state, `POST .../pause`, `/resume` and `/stop`
//! control it, and `GET /flow/{name}` gives the graph as JSON, Mermaid or DOT. It runs the
//! embedded engine, or the Redis engine when it has a Redis URL (then `start_worker()` processes
//! share the work). Every setting comes from the environment (`GOFLOW_PORT`, `GOFLOW_REDIS_URL`,
//! `GOFLOW_LEASE`, `GOFLOW_RETENTION`, ...) or a builder method.
//!
//! ```no_run
//! use goflow::prelude::*;
//! use goflow::service::{FlowService, ServiceError};
//!
//! #[node]
//! async fn shout(text: String) -> String {
//!     text.to_uppercase()
//! }
//!
//! workflow! {
//!     pub Shout = shout;
//! }
//!
//! # #[tokio::main] async fn main() -> Result<(), ServiceError> {
//! FlowService::from_env()? // GOFLOW_* and OTEL_* settings; the error names a bad one
//!     .register::<Shout>()
//!     .start() // HTTP and workers, until SIGTERM or Ctrl-C
//!     .await
//! # }
//! ```
//!
//! # Errors
//!
//! A node returns a [`NodeError`] (or any error that converts into one). Everything an engine
//! does answers `Result<_, `[`Error`]`>`:
//!
//! - [`Error::Failed`]: a vertex failed on its last allowed attempt, which failed the request;
//!   its [`RequestFailure`](request::RequestFailure) names the vertex, the attempts and the last
//!   [`Failure`](request::Failure) (`Error`, `Permanent`, `Timeout`, `Panic`, `Codec`, and on
//!   Redis `Lost` and `Version`);
//! - [`Error::Stopped`]: the request was stopped before it completed;
//! - [`Error::UnknownRequest`]: no such request (never submitted, or expired);
//!   [`Error::UnknownFlow`]: no workflow of that name is registered;
//! - [`Error::Conflict`]: pause, resume or stop does not apply to the request's status;
//! - [`Error::Codec`]: a request's input or output could not be encoded or decoded;
//! - [`Error::Engine`]: the engine's storage failed (Redis unreachable); retrying with the same
//!   request id is safe;
//! - [`Error::Internal`]: a bug in goflow.
//!
//! ```
//! use goflow::prelude::*;
//! use goflow::request::Failure;
//!
//! #[node(retries = 1, backoff = "1ms")]
//! async fn flaky(n: u32) -> Result<u32, NodeError> {
//!     Err(NodeError::new(format!("{n} is down")))
//! }
//!
//! workflow! {
//!     pub Flaky = flaky;
//! }
//!
//! # #[tokio::main] async fn main() {
//! let error = Flaky::run_local(7).await.unwrap_err();
//! let goflow::Error::Failed { failure, .. } = &error else { panic!("{error}") };
//! assert_eq!((failure.vertex.as_str(), failure.attempts), ("flaky", 2));
//! assert_eq!(failure.failure, Failure::Error("7 is down".into()));
//! // "request `<id>` of `flaky` failed at vertex `flaky` after 2 attempt(s): 7 is down"
//! let message = error.to_string();
//! assert!(message.ends_with("failed at vertex `flaky` after 2 attempt(s): 7 is down"));
//! # }
//! ```
//!
//! # Modules
//!
//! - [`prelude`]: what a file declaring nodes and workflows imports;
//! - [`graph`]: a workflow's shape as data ([`graph::Graph`]), its renderings, and
//!   [`graph::NodeOptions`];
//! - [`codec`]: how payloads are encoded between vertices: [`codec::MsgPack`] (the default) and
//!   [`codec::Json`];
//! - [`request`]: what the engines report: a request's state, statuses, outcome and failure,
//!   the control actions, and what a finish hook receives;
//! - [`dsl`]: the traits `workflow!` uses to check edges; they appear in compile errors;
//! - [`embedded`]: the embedded engine, its builder, and [`RunLocal`](embedded::RunLocal);
//! - [`redis`] (feature `redis`): the Redis engine, its builder, its settings and its workers;
//! - [`service`] (feature `http`): `FlowService`, its settings and its errors, and the process's
//!   telemetry.
//!
//! # Glossary
//!
//! - **Node**: one step, an `async fn` marked `#[node]`; it may run in many workflows.
//! - **Workflow**: a typed DAG of vertices, declared with `workflow!`; a type implementing
//!   [`Workflow`].
//! - **Vertex**: a place in a workflow's graph, running a node or a sub-workflow; named by the
//!   node's name, its `as` name, or a path (`KycValidation/face_match`) inside a sub-workflow.
//! - **Plan**: a workflow compiled for an engine: sub-workflows inlined, each vertex with what it
//!   takes and what its output sets going. Built once per workflow and engine.
//! - **Request**: one run of a workflow on an input, named by a [`RequestId`]: it has a status,
//!   the state of each vertex instance, and an output or a failure.
//! - **Instance**: one run of a vertex within a request: a vertex outside `each` bodies has one,
//!   a vertex of a body one per item (`verify[3]`).
//! - **Attempt**: one try of an instance; a failed attempt is retried as the node's `retries`
//!   allow. The attempts of an instance are counted from 1, the running one included.

/// Turns an `async fn` into a workflow node; see [Declaring nodes](crate#declaring-nodes).
///
/// ```text
/// #[node(name = "face-detect", retries = 3, timeout = "5s", backoff = "200ms")]
/// async fn face_detect(ctx: Context, image: Image) -> Result<Detection, NodeError> { .. }
/// ```
///
/// - The function: a free, non-generic `async fn` with at least one input parameter, each an
///   owned `pub` payload type (`Serialize + DeserializeOwned + Send + 'static`); several
///   parameters make a join. A [`Context`] parameter, anywhere and at most once, is not an
///   input.
/// - The return type: a plain `T`, or `Result<T, E>` with `E` [`NodeError`] or any
///   `std::error::Error + Send + Sync + 'static`.
/// - The options, all optional: `name = "..."` (the node's name in graphs, traces and
///   metrics; default the function's), `retries = N` (attempts after the first, for errors,
///   timeouts and panics; default 0), `timeout = "5s"` (per attempt; default none),
///   `backoff = "100ms"` (before the first retry, then doubled, capped at 60 s, less a random
///   jitter of up to half; default `100ms`), `crate = path` (where `goflow` is, if renamed).
///   Durations are whole numbers with a unit (`ns`, `us`, `ms`, `s`, `m`, `h`), compound as in
///   `"1m30s"`.
/// - The function stays callable as written; `#[node]` adds a field-less type of the same name
///   implementing [`Node`], which `workflow!` refers to.
///
/// Mistakes (a borrowed parameter, a method, a generic or non-`async` function, an unknown
/// option, a bad duration, ...) are compile errors at the tokens that caused them.
pub use goflow_macros::node;
pub use goflow_runtime::{
    codec, dsl, embedded, graph, request, Context, EmbeddedEngine, Engine, Error, Node, NodeError,
    RequestId, Workflow,
};

#[cfg(feature = "redis")]
pub use goflow_runtime::redis;

#[cfg(feature = "http")]
pub use goflow_runtime::service;

/// Declares workflows: typed DAGs of nodes, checked at compile time.
///
/// ```text
/// workflow! {
///     /// Docs and attributes are kept.
///     pub Kyc = get_kyc_image -> [face_detect, face_match] => mark_profile;
///     pub Diamond = { start -> [left, right]; [left, right] => join; };
///     pub Outer = get_image -> Kyc -> mark_profile;        // a workflow as a vertex
///     pub Chain = inc -> dbl -> inc as inc2 -> dbl as dbl2;  // `as`: another vertex, same fn
///     pub Verify = face_detect -> check_face ? {              // a conditional
///         Pass => face_match,
///         Fail => create_user -> notify,
///         Skip => {},
///     } -> generate_result;
///     pub Sweep = get_users -> each { verify -> mark } => summarize; // a for-each
/// }
/// ```
///
/// - `a -> b`: `b` takes `a`'s output. `a -> [b, c]`: `b` and `c` each take it, in parallel.
/// - `[b, c] => d`: `d` takes `b`'s and `c`'s outputs as its parameters, in that order.
///   Branches may be chains: `a -> [b -> c, d] => e`.
/// - A braced body `{ ...; ...; }` allows any DAG; the same name is the same vertex.
/// - `v ? { Variant => arm, .. } -> merge`: `v` outputs an enum; the arm of its variant runs
///   with the variant's one-field payload (`{}` passes it straight on), and `merge` takes the
///   output of the arm that ran. The arms cover every variant, like a `match`.
/// - `v -> each { body } => gather`: `v` outputs a `Vec<T>`; the body runs once per item and
///   `gather` takes the `Vec` of its outputs, in item order (empty for an empty `Vec`).
/// - The vertices of an arm or a body belong to it: their names are not used elsewhere.
/// - Each workflow becomes a type implementing [`Workflow`], named in snake_case (`Kyc` is
///   `"kyc"`), with its graph as data and `run_local` on the embedded engine.
///
/// Cycles, self-loops, edge type mismatches, join arity mismatches, `[b, c] -> d`, vertices
/// with un-joined predecessors, unknown nodes, duplicate workflow names, missing or unknown
/// arms, arms or bodies whose types do not fit, and `each` over something other than a `Vec`
/// are compile errors pointing at the DSL tokens; all of them are reported in one build.
#[macro_export]
macro_rules! workflow {
    ($($tokens:tt)*) => {
        $crate::__private::workflow! { crate = $crate; $($tokens)* }
    };
}

/// Everything a file declaring nodes and workflows needs: the macros, [`Workflow`],
/// [`Context`], [`NodeError`], and [`RunLocal`](embedded::RunLocal) for `Kyc::run_local`.
pub mod prelude {
    pub use crate::embedded::RunLocal;
    pub use crate::{node, workflow, Context, NodeError, Workflow};
}

/// Support for the generated code. Not public API: anything here may change in any release.
#[doc(hidden)]
pub mod __private {
    pub use goflow_macros::workflow;
    pub use goflow_runtime::__private::*;
}
