//! `FlowService`: one struct configures everything, as Go goflow's `FlowService{Port, RedisURL,
//! OpenTraceUrl, WorkerConcurrency}` did, typed and complete.
//!
//! ```no_run
//! # use goflow_runtime::service::FlowService;
//! # async fn f() -> Result<(), goflow_runtime::service::ServiceError> {
//! FlowService::from_env()?     // GOFLOW_PORT, GOFLOW_REDIS_URL, ... (see `Settings`)
//!     // .register::<Kyc>()
//!     .with_telemetry()        // logs, OTLP traces, Prometheus metrics (see `telemetry`)
//!     .start()                 // HTTP + workers; `start_worker()`, `start_server()`
//!     .await
//! # }
//! ```
//!
//! The service installs nothing process-wide (no log subscriber, no metrics recorder) unless
//! asked to with [`with_telemetry`](FlowService::with_telemetry): see [`telemetry`].
//!
//! Without a Redis URL the service runs the embedded engine in-process (HTTP and execution in
//! one process, state in memory). With one, it runs the Redis engine: `start()` serves HTTP
//! and runs workers, `start_worker()` only runs workers (add processes to scale), and
//! `start_server()` only serves HTTP. Either way the routes are the same, served by one
//! handler generic over the [`Engine`].

mod dashboard;
mod events;
mod http;
mod inspect;
mod metrics;
mod openapi;
mod registry;
mod requests;
mod serve;
mod settings;
pub mod telemetry;
mod versions;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt as _;
use tokio_util::sync::CancellationToken;

pub use self::dashboard::Dashboard;
pub use self::settings::{ServiceError, Settings};

use self::http::AppState;
use self::registry::FlowDef;
use crate::embedded::EmbeddedEngine;
use crate::engine::{self, Engine, Hook};
use crate::request::Finished;
use crate::workflow::Workflow;

/// Serves registered workflows over HTTP and runs them.
pub struct FlowService {
    settings: Settings,
    flows: Vec<FlowDef>,
    hooks: Vec<(&'static str, Hook)>,
    #[cfg(feature = "redis")]
    redis_config: Vec<RedisConfigFn>,
    shutdown: CancellationToken,
    /// Whether `start*()` installs the process's telemetry.
    telemetry: bool,
}

/// A change to the Redis engine's settings, applied after those the service derives from its
/// own.
#[cfg(feature = "redis")]
type RedisConfigFn = Arc<dyn Fn(&mut crate::redis::RedisConfig) + Send + Sync>;

impl std::fmt::Debug for FlowService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowService")
            .field("settings", &self.settings)
            .field(
                "flows",
                &self.flows.iter().map(|f| f.name).collect::<Vec<_>>(),
            )
            .field("telemetry", &self.telemetry)
            .finish_non_exhaustive()
    }
}

impl FlowService {
    /// A service with `settings`.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            flows: Vec::new(),
            hooks: Vec::new(),
            #[cfg(feature = "redis")]
            redis_config: Vec::new(),
            shutdown: CancellationToken::new(),
            telemetry: false,
        }
    }

    /// A service configured from the environment ([`Settings::from_env`]); the error names
    /// the variable that holds something unusable, and its value.
    pub fn from_env() -> Result<Self, ServiceError> {
        Settings::from_env().map(Self::new)
    }

    /// The HTTP port (default 8080).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.settings.port = port;
        self
    }

    /// The HTTP bind address (default `0.0.0.0`).
    #[must_use]
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.settings.host = host.into();
        self
    }

    /// Runs on Redis at `url` instead of the embedded engine.
    #[must_use]
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.settings.redis_url = Some(url.into());
        self
    }

    /// The key prefix of the Redis engine (default `goflow`).
    #[must_use]
    pub fn redis_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.settings.redis_prefix = prefix.into();
        self
    }

    /// Attempts one worker runs at once (default 8; at least 1).
    #[must_use]
    pub fn worker_concurrency(mut self, concurrency: usize) -> Self {
        self.settings.worker_concurrency = concurrency;
        self
    }

    /// How long a Redis worker may hold an entry without renewing it before others reclaim
    /// it (default 30 s).
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.settings.lease = lease;
        self
    }

    /// How long finished requests are kept (default 24 h), on either engine.
    #[must_use]
    pub fn retention(mut self, retention: Duration) -> Self {
        self.settings.retention = retention;
        self
    }

    /// Requires this bearer token on every route but `/healthz` and `/readyz`.
    #[must_use]
    pub fn api_token(mut self, token: impl Into<String>) -> Self {
        self.settings.api_token = Some(token.into());
        self
    }

    /// Accepts this bearer token on `/metrics` too (for a scraper that should not hold the
    /// API token); with it, `/metrics` requires one of the two.
    #[must_use]
    pub fn metrics_token(mut self, token: impl Into<String>) -> Self {
        self.settings.metrics_token = Some(token.into());
        self
    }

    /// The largest request body, in bytes (default 1 MiB).
    #[must_use]
    pub fn body_limit(mut self, bytes: usize) -> Self {
        self.settings.body_limit = bytes;
        self
    }

    /// How long a client may take to send a request's body (default 30 s; `408` after that).
    #[must_use]
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.settings.body_timeout = timeout;
        self
    }

    /// How long a client may take to send a request's head, from when its connection opens
    /// or has sent its previous answer (default 10 s; the connection is closed after that).
    /// Applies to the listener of `start*()`.
    #[must_use]
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.settings.header_timeout = timeout;
        self
    }

    /// How long a connection may move no byte while none of its requests is being handled
    /// (default 60 s; it is closed after that). Applies to the listener of `start*()`.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.settings.idle_timeout = timeout;
        self
    }

    /// The most connections served at once (default 1024; more wait to be accepted).
    /// Applies to the listener of `start*()`.
    #[must_use]
    pub fn max_connections(mut self, connections: usize) -> Self {
        self.settings.max_connections = connections;
        self
    }

    /// The longest `?wait=` honoured (default 60 s).
    #[must_use]
    pub fn max_wait(mut self, wait: Duration) -> Self {
        self.settings.max_wait = wait;
        self
    }

    /// The OTLP endpoint to which spans are exported (`OTEL_EXPORTER_OTLP_ENDPOINT`), when the
    /// service installs its [telemetry](Self::with_telemetry); ignored without it.
    #[must_use]
    pub fn otlp_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.settings.otlp_endpoint = Some(endpoint.into());
        self
    }

    /// The port on which a worker-only process serves `/metrics` and `/healthz`.
    #[must_use]
    pub fn metrics_port(mut self, port: u16) -> Self {
        self.settings.metrics_port = Some(port);
        self
    }

    /// How large one request may grow (default: 10,000 items per for-each, 1 MiB per vertex
    /// output; see [`Limits`](crate::request::Limits)), on either engine.
    #[must_use]
    pub fn limits(mut self, limits: crate::request::Limits) -> Self {
        self.settings.limits = limits;
        self
    }

    /// Whether the dashboard is served at `/ui`, and with its actions (default
    /// [`Dashboard::On`]).
    #[must_use]
    pub fn dashboard(mut self, dashboard: Dashboard) -> Self {
        self.settings.dashboard = dashboard;
        self
    }

    /// The address of a trace in a tracing UI, `{trace_id}` standing for the trace's id: the
    /// dashboard links each request's trace id to it (default: none, the id is shown).
    #[must_use]
    pub fn trace_url(mut self, url: impl Into<String>) -> Self {
        self.settings.trace_url = Some(url.into());
        self
    }

    /// How long running attempts may finish on shutdown (default 30 s): on the embedded
    /// engine, the requests in flight.
    #[must_use]
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.settings.shutdown_grace = grace;
        self
    }

    /// Changes any setting of the Redis engine the service runs (its batch size, hand-off
    /// budget, lost deliveries allowed, ...: see [`RedisConfig`](crate::redis::RedisConfig)),
    /// after the service has set those it derives from its own settings (URL, prefix, lease,
    /// retention).
    #[cfg(feature = "redis")]
    #[must_use]
    pub fn redis_config(
        mut self,
        change: impl Fn(&mut crate::redis::RedisConfig) + Send + Sync + 'static,
    ) -> Self {
        self.redis_config.push(Arc::new(change));
        self
    }

    /// Makes [`start`](Self::start), [`start_worker`](Self::start_worker) and
    /// [`start_server`](Self::start_server) install the process's telemetry before the engine
    /// starts (see [`telemetry`] for the details and the environment variables):
    ///
    /// - the tracing subscriber of [`telemetry::install`]: log lines on stderr filtered by
    ///   `RUST_LOG` (default `info`; colours only on a terminal), and, with the `otel` feature
    ///   and an [OTLP endpoint](Self::otlp_endpoint), every span exported over OTLP/HTTP;
    /// - the Prometheus recorder of [`telemetry::install_metrics_recorder`], which
    ///   `GET /metrics` renders (when the service serves HTTP, or a worker its
    ///   [metrics port](Self::metrics_port)).
    ///
    /// The service keeps them for its life; when it shuts down it flushes the spans not yet
    /// exported, within its [shutdown grace](Self::shutdown_grace) (what the running attempts
    /// leave of it, and at least a quarter of it, up to 5 s). A subscriber or recorder the
    /// process has already stays in charge: the service says so in a log line and goes on.
    ///
    /// Opt-in, because a subscriber and a recorder are process globals that belong to the
    /// program, not to a library: a program that has its own (or serves [`router`](Self::router)
    /// inside its own app) leaves this off and nothing is installed behind its back, while a
    /// binary that is just a goflow service gets logs, traces and metrics from this one call.
    /// It takes effect at start rather than here so that the guard that flushes the exporter
    /// lives exactly as long as the service, and so that building or configuring a service
    /// (in tests, say) installs nothing.
    #[must_use]
    pub fn with_telemetry(mut self) -> Self {
        self.telemetry = true;
        self
    }

    /// Serves and runs workflow `W`.
    #[must_use]
    pub fn register<W: Workflow>(mut self) -> Self {
        if !self.flows.iter().any(|f| f.name == W::NAME) {
            self.flows.push(FlowDef::of::<W>());
        }
        self
    }

    /// Runs `hook` once when a request of `W` ends (completed, failed or stopped), on
    /// whichever engine the service runs (on Redis, on one of the workers), and registers
    /// `W`. See the engines' `on_finish`.
    #[must_use]
    pub fn on_finish<W, F, Fut>(mut self, hook: F) -> Self
    where
        W: Workflow,
        F: Fn(Finished) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.hooks.push((W::NAME, engine::hook(hook)));
        self.register::<W>()
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A token that shuts the service down when cancelled (as SIGTERM or Ctrl-C do).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The routes, to serve yourself or to nest in your own `axum::Router`. Installs nothing
    /// process-wide, [`with_telemetry`](Self::with_telemetry) or not (call
    /// [`telemetry::install`] and [`telemetry::install_metrics_recorder`] yourself for that).
    /// With the Redis engine, run workers separately ([`start_worker`](Self::start_worker)).
    ///
    /// The routes apply the token, body limit and body timeout; the limits of the connections
    /// (header and idle timeouts, the connection limit) belong to the listener, which is
    /// yours: set them on your server.
    pub async fn router(&self) -> Result<axum::Router, ServiceError> {
        self.settings.validate()?;
        Ok(match &self.settings.redis_url {
            None => self.router_for(self.embedded()),
            Some(url) => self.router_for(self.redis(url).await?),
        })
    }

    /// Serves HTTP and runs the workflows until shut down.
    pub async fn start(self) -> Result<(), ServiceError> {
        self.run(true, true).await
    }

    /// Runs workers only (needs a Redis URL).
    pub async fn start_worker(self) -> Result<(), ServiceError> {
        if self.settings.redis_url.is_none() {
            return Err(ServiceError::WorkerNeedsRedis);
        }
        self.run(false, true).await
    }

    /// Serves HTTP only; with the embedded engine this also runs the workflows, in-process.
    pub async fn start_server(self) -> Result<(), ServiceError> {
        self.run(true, false).await
    }

    fn embedded(&self) -> EmbeddedEngine {
        let mut builder = EmbeddedEngine::builder()
            .retention(self.settings.retention)
            .limits(self.settings.limits);
        for flow in &self.flows {
            builder = (flow.register_embedded)(builder);
        }
        for (flow, hook) in &self.hooks {
            builder = builder.hook(flow, Arc::clone(hook));
        }
        builder.build()
    }

    #[cfg(feature = "redis")]
    async fn redis(&self, url: &str) -> Result<crate::redis::RedisEngine, ServiceError> {
        let mut config = crate::redis::RedisConfig::new(url);
        config.prefix = self.settings.redis_prefix.clone();
        config.partitions = self.settings.redis_partitions;
        config.lease = self.settings.lease;
        config.retention = self.settings.retention;
        config.events = self.settings.events;
        for change in &self.redis_config {
            change(&mut config);
        }
        let mut builder = crate::redis::RedisEngine::builder(config).limits(self.settings.limits);
        for flow in &self.flows {
            builder = (flow.register_redis)(builder);
        }
        for (flow, hook) in &self.hooks {
            builder = builder.hook(flow, Arc::clone(hook));
        }
        builder.connect().await.map_err(ServiceError::Engine)
    }

    /// Without the `redis` feature a Redis URL cannot be honoured.
    #[cfg(not(feature = "redis"))]
    #[allow(clippy::unused_async)]
    async fn redis(&self, _url: &str) -> Result<EmbeddedEngine, ServiceError> {
        Err(ServiceError::RedisNotBuilt)
    }

    fn router_for<E: Engine>(&self, engine: E) -> axum::Router {
        let flows: HashMap<&'static str, FlowDef> =
            self.flows.iter().map(|f| (f.name, *f)).collect();
        let state = AppState {
            engine,
            metrics: metrics::Metrics::new(flows.keys().copied()),
            flows,
            tokens: self.tokens(),
            body_limit: self.settings.body_limit,
            body_timeout: self.settings.body_timeout,
            max_wait: self.settings.max_wait,
            dashboard: self.settings.dashboard != Dashboard::Off,
        };
        http::router(Arc::new(state)).merge(dashboard::router(&self.settings))
    }

    fn tokens(&self) -> Arc<http::Tokens> {
        Arc::new(http::Tokens {
            api: self.settings.api_token.clone(),
            metrics: self.settings.metrics_token.clone(),
        })
    }

    fn connection_limits(&self) -> serve::Limits {
        serve::Limits {
            header_timeout: self.settings.header_timeout,
            idle_timeout: self.settings.idle_timeout,
            max_connections: self.settings.max_connections,
        }
    }

    async fn run(self, serve: bool, work: bool) -> Result<(), ServiceError> {
        // First, so that whatever follows (a bad setting, Redis unreachable) is logged.
        let telemetry = self
            .telemetry
            .then(|| telemetry::install(self.settings.otlp_endpoint.as_deref()));
        if self.telemetry && (serve || self.settings.metrics_port.is_some()) {
            // Before the workers start, so that `GET /metrics` misses none of their metrics.
            telemetry::install_metrics_recorder();
        }
        let grace = self.settings.shutdown_grace;
        let mut stop = Stop {
            grace,
            // The part of the grace kept for the flush, when there is one.
            flush: match &telemetry {
                Some(telemetry) if telemetry.exporting() => (grace / 4).min(FLUSH_AT_MOST),
                _ => Duration::ZERO,
            },
            deadline: None,
        };
        let result = self.run_engine(serve, work, &mut stop).await;
        if let Some(telemetry) = telemetry {
            // What the attempts left of the grace (all of it when the service did not get as
            // far as serving); the subscriber stays installed, so later lines are logged.
            let left = stop.deadline.map_or(grace, |deadline| {
                deadline.saturating_duration_since(Instant::now())
            });
            let flushed = tokio::task::spawn_blocking(move || telemetry.shutdown(left));
            let _ = flushed.await;
        }
        result
    }

    async fn run_engine(
        self,
        serve: bool,
        work: bool,
        stop: &mut Stop,
    ) -> Result<(), ServiceError> {
        self.settings.validate()?;
        match self.settings.redis_url.clone() {
            None => {
                let engine = self.embedded();
                let drain = engine.clone();
                self.run_with(engine, serve, None, Some(drain), stop).await
            }
            Some(url) => {
                let engine = self.redis(&url).await?;
                let worker = work.then(|| Worker::of(&engine, self.settings.worker_concurrency));
                self.run_with(engine, serve, worker.flatten(), None, stop)
                    .await
            }
        }
    }

    /// Serves `engine` over HTTP (if `serve`) and runs `worker` (if any) until shut down.
    ///
    /// At shutdown the Redis service stops serving HTTP at once (what it has taken is in
    /// Redis), and its worker lets its running attempts finish. The embedded engine, `drain`,
    /// holds its requests in memory: it takes no new ones, and the service goes on answering
    /// (status, `?wait`, controls; submissions are `503`) until those in flight have ended,
    /// within the grace; then it stops serving.
    async fn run_with<E: Engine>(
        self,
        engine: E,
        serve: bool,
        worker: Option<Worker>,
        drain: Option<EmbeddedEngine>,
        stop: &mut Stop,
    ) -> Result<(), ServiceError> {
        if let (false, Some(port)) = (serve, self.settings.metrics_port) {
            // A worker-only process serves its metrics (and liveness) on a port of its own.
            let listener = self.bind(port).await?;
            let router = http::metrics_router(self.tokens());
            tokio::spawn(serve::serve(
                listener,
                router,
                self.connection_limits(),
                self.shutdown.clone(),
            ));
        }
        let shutdown = self.shutdown.clone();
        tokio::spawn(shutdown_on_signal(shutdown.clone()));
        // When HTTP stops: at shutdown, or once the embedded engine has drained.
        let http_stop = match &drain {
            Some(_) => CancellationToken::new(),
            None => shutdown.clone(),
        };
        let mut tasks = tokio::task::JoinSet::new();
        if let Some(worker) = worker {
            tasks.spawn(worker.run(shutdown.clone()));
        }
        if serve {
            let listener = self.bind(self.settings.port).await?;
            tracing::info!(
                engine = engine.kind(),
                flows = self.flows.len(),
                "serving HTTP"
            );
            let router = self.router_for(engine);
            tasks.spawn(
                serve::serve(
                    listener,
                    router,
                    self.connection_limits(),
                    http_stop.clone(),
                )
                .map(Ok),
            );
        }
        if let Some(engine) = drain {
            // The part of the grace the requests in flight may have: what is left of it goes
            // to the answers being written (a tenth, up to a second, so that the drain's own
            // end is logged before the service's wait for its tasks runs out), and the flush
            // of the spans.
            let patience = stop.grace.saturating_sub(stop.flush);
            let patience = patience - (patience / 10).min(Duration::from_secs(1));
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                shutdown.cancelled().await;
                drain_embedded(&engine, patience).await;
                http_stop.cancel();
                Ok(())
            });
        }
        let mut result = Ok(());
        // The first task to end (with an error) or the shutdown ends the service.
        tokio::select! {
            joined = tasks.join_next() => {
                if let Some(Ok(Err(error))) = joined {
                    result = Err(error);
                }
            }
            () = shutdown.cancelled() => {}
        }
        shutdown.cancel();
        let deadline = Instant::now() + stop.grace;
        stop.deadline = Some(deadline);
        // Let the others finish what they are doing, within the grace period (but the part
        // kept for flushing their spans).
        let _ = tokio::time::timeout(stop.grace.saturating_sub(stop.flush), async {
            while let Some(joined) = tasks.join_next().await {
                if let (Ok(Err(error)), Ok(())) = (joined, &result) {
                    result = Err(error);
                }
            }
        })
        .await;
        result
    }

    async fn bind(&self, port: u16) -> Result<tokio::net::TcpListener, ServiceError> {
        let address = format!("{}:{port}", self.settings.host);
        let listener = tokio::net::TcpListener::bind(&address)
            .await
            .map_err(|source| ServiceError::Bind {
                address: address.clone(),
                source,
            })?;
        tracing::info!(%address, "listening");
        Ok(listener)
    }
}

/// Closes the embedded engine to new requests and waits, up to `patience`, for those in
/// flight to end; says in the log how it went.
async fn drain_embedded(engine: &EmbeddedEngine, patience: Duration) {
    engine.close();
    let in_flight = engine.in_flight();
    if in_flight == 0 {
        return;
    }
    tracing::info!(
        in_flight,
        grace = ?patience,
        "shutting down: no new requests; waiting for those in flight to end"
    );
    let started = Instant::now();
    match tokio::time::timeout(patience, engine.drained()).await {
        Ok(()) => tracing::info!(
            ended = in_flight,
            waited = ?started.elapsed(),
            "every request in flight has ended"
        ),
        Err(_) => tracing::warn!(
            still_running = engine.in_flight(),
            "the shutdown grace is over: the requests still running are dropped"
        ),
    }
}

/// The most of the shutdown grace kept for flushing the spans not yet exported (a quarter of
/// the grace, up to this): a batch to a collector takes milliseconds, but an attempt that does
/// not finish within the grace must not cost the trace of every request before it.
const FLUSH_AT_MOST: Duration = Duration::from_secs(5);

/// How a service's shutdown spends its grace.
struct Stop {
    /// The whole grace, counted from the shutdown.
    grace: Duration,
    /// The part of it kept for the flush of the spans.
    flush: Duration,
    /// When the grace ends, once the shutdown has begun.
    deadline: Option<Instant>,
}

/// The service's worker, when it runs the Redis engine's.
enum Worker {
    #[cfg(feature = "redis")]
    Redis(crate::redis::Worker<crate::codec::MsgPack>),
}

impl Worker {
    #[cfg(feature = "redis")]
    #[allow(clippy::unnecessary_wraps)]
    fn of(engine: &crate::redis::RedisEngine, concurrency: usize) -> Option<Self> {
        let worker = engine.worker(concurrency);
        tracing::info!(consumer = worker.consumer(), concurrency, "worker started");
        Some(Self::Redis(worker))
    }

    /// The embedded engine has no workers apart from itself.
    #[cfg(not(feature = "redis"))]
    fn of(_engine: &EmbeddedEngine, _concurrency: usize) -> Option<Self> {
        None
    }

    #[cfg_attr(not(feature = "redis"), allow(clippy::unused_async, unused_variables))]
    async fn run(self, shutdown: CancellationToken) -> Result<(), ServiceError> {
        match self {
            #[cfg(feature = "redis")]
            Worker::Redis(worker) => worker.run(shutdown).await.map_err(ServiceError::Engine),
        }
    }
}

/// Cancels `shutdown` on Ctrl-C or SIGTERM.
async fn shutdown_on_signal(shutdown: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        () = terminate => {}
        () = shutdown.cancelled() => return,
    }
    tracing::info!("shutting down: no new work; running attempts may finish");
    shutdown.cancel();
}
