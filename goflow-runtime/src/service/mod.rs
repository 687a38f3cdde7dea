//! `FlowService`: one struct configures everything, as Go goflow's `FlowService{Port, RedisURL,
//! OpenTraceUrl, WorkerConcurrency}` did, typed and complete.
//!
//! ```no_run
//! # use goflow_runtime::service::FlowService;
//! # async fn f() -> Result<(), goflow_runtime::service::ServiceError> {
//! FlowService::from_env()      // GOFLOW_PORT, GOFLOW_REDIS_URL, ... (see `Settings`)
//!     // .register::<Kyc>()
//!     .start()                 // HTTP + workers; `start_worker()`, `start_server()`
//!     .await
//! # }
//! ```
//!
//! Without a Redis URL the service runs the embedded engine in-process (HTTP and execution in
//! one process, state in memory). With one, it runs the Redis engine: `start()` serves HTTP
//! and runs workers, `start_worker()` only runs workers (add processes to scale), and
//! `start_server()` only serves HTTP.

mod backend;
mod http;
mod metrics;
mod registry;
pub mod telemetry;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use self::backend::Backend;
use self::http::AppState;
use self::registry::FlowDef;
use crate::embedded::Embedded;
use crate::workflow::Workflow;

/// Every setting of a [`FlowService`]; each has an environment variable.
#[derive(Debug, Clone)]
pub struct Settings {
    /// HTTP port (`GOFLOW_PORT`, default 8080).
    pub port: u16,
    /// HTTP bind address (`GOFLOW_HOST`, default `0.0.0.0`).
    pub host: String,
    /// Redis URL (`GOFLOW_REDIS_URL`); absent: the embedded engine.
    pub redis_url: Option<String>,
    /// Attempts one worker runs at once (`GOFLOW_WORKER_CONCURRENCY`, default 8).
    pub worker_concurrency: usize,
    /// Bearer token required by the `/flow` routes (`GOFLOW_API_TOKEN`); absent: no auth.
    pub api_token: Option<String>,
    /// Largest request body in bytes (`GOFLOW_BODY_LIMIT`, default 1 MiB).
    pub body_limit: usize,
    /// Longest `?wait=` honoured, in seconds (`GOFLOW_MAX_WAIT`, default 60).
    pub max_wait: Duration,
    /// OTLP endpoint for traces (`OTEL_EXPORTER_OTLP_ENDPOINT`); with the `otel` feature every
    /// span is exported there (see [`telemetry`]).
    pub otlp_endpoint: Option<String>,
    /// Key prefix of the Redis engine (`GOFLOW_REDIS_PREFIX`, default `goflow`).
    pub redis_prefix: String,
    /// Port on which a worker-only process (`start_worker`) serves `/metrics` and `/healthz`
    /// (`GOFLOW_METRICS_PORT`); absent: none. Services with HTTP serve them on their port.
    pub metrics_port: Option<u16>,
    /// How long to let running attempts finish on shutdown (`GOFLOW_SHUTDOWN_GRACE`, seconds,
    /// default 30).
    pub shutdown_grace: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            port: 8080,
            host: "0.0.0.0".to_owned(),
            redis_url: None,
            worker_concurrency: 8,
            api_token: None,
            body_limit: 1 << 20,
            max_wait: Duration::from_secs(60),
            otlp_endpoint: None,
            redis_prefix: "goflow".to_owned(),
            metrics_port: None,
            shutdown_grace: Duration::from_secs(30),
        }
    }
}

/// A setting's environment variable holds something unusable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// An environment variable could not be parsed.
    #[error("environment variable {name}={value:?}: {expected}")]
    Setting {
        /// The variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The HTTP port could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// Host and port.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// Workers need the Redis engine.
    #[error("running workers on their own needs a Redis URL (GOFLOW_REDIS_URL): the embedded engine runs inside the HTTP service")]
    WorkerNeedsRedis,
    /// The Redis engine failed.
    #[cfg(feature = "redis")]
    #[error(transparent)]
    Engine(#[from] crate::redis::EngineError),
    /// Serving HTTP failed.
    #[error("http server: {0}")]
    Serve(std::io::Error),
}

impl Settings {
    /// Defaults overridden by the environment.
    pub fn from_env() -> Result<Self, ServiceError> {
        let mut settings = Self::default();
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        fn parse<T: std::str::FromStr>(
            name: &'static str,
            value: String,
            expected: &'static str,
        ) -> Result<T, ServiceError> {
            value.trim().parse().map_err(|_| ServiceError::Setting {
                name,
                value,
                expected,
            })
        }
        if let Some(v) = var("GOFLOW_PORT") {
            settings.port = parse("GOFLOW_PORT", v, "a port number")?;
        }
        if let Some(v) = var("GOFLOW_HOST") {
            settings.host = v;
        }
        settings.redis_url = var("GOFLOW_REDIS_URL");
        if let Some(v) = var("GOFLOW_WORKER_CONCURRENCY") {
            settings.worker_concurrency =
                parse("GOFLOW_WORKER_CONCURRENCY", v, "a positive whole number")?;
        }
        settings.api_token = var("GOFLOW_API_TOKEN");
        if let Some(v) = var("GOFLOW_BODY_LIMIT") {
            settings.body_limit = parse("GOFLOW_BODY_LIMIT", v, "a number of bytes")?;
        }
        if let Some(v) = var("GOFLOW_MAX_WAIT") {
            settings.max_wait =
                Duration::from_secs(parse("GOFLOW_MAX_WAIT", v, "a number of seconds")?);
        }
        if let Some(v) = var("GOFLOW_SHUTDOWN_GRACE") {
            settings.shutdown_grace =
                Duration::from_secs(parse("GOFLOW_SHUTDOWN_GRACE", v, "a number of seconds")?);
        }
        if let Some(v) = var("GOFLOW_METRICS_PORT") {
            settings.metrics_port = Some(parse("GOFLOW_METRICS_PORT", v, "a port number")?);
        }
        if let Some(v) = var("GOFLOW_REDIS_PREFIX") {
            settings.redis_prefix = v;
        }
        settings.otlp_endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT");
        Ok(settings)
    }
}

/// Serves registered workflows over HTTP and runs them.
pub struct FlowService {
    settings: Settings,
    flows: Vec<FlowDef>,
    shutdown: CancellationToken,
}

impl FlowService {
    /// A service with `settings`.
    pub fn new(settings: Settings) -> Self {
        Self {
            settings,
            flows: Vec::new(),
            shutdown: CancellationToken::new(),
        }
    }

    /// A service configured from the environment; panics with the variable's name when one
    /// holds something unusable (use [`Settings::from_env`] to handle that yourself).
    pub fn from_env() -> Self {
        match Settings::from_env() {
            Ok(settings) => Self::new(settings),
            Err(error) => panic!("{error}"),
        }
    }

    /// The HTTP port.
    pub fn port(mut self, port: u16) -> Self {
        self.settings.port = port;
        self
    }

    /// Runs on Redis at `url` instead of the embedded engine.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.settings.redis_url = Some(url.into());
        self
    }

    /// Attempts one worker runs at once.
    pub fn worker_concurrency(mut self, concurrency: usize) -> Self {
        self.settings.worker_concurrency = concurrency.max(1);
        self
    }

    /// Requires this bearer token on the `/flow` routes.
    pub fn api_token(mut self, token: impl Into<String>) -> Self {
        self.settings.api_token = Some(token.into());
        self
    }

    /// The OTLP endpoint for traces.
    pub fn otlp_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.settings.otlp_endpoint = Some(endpoint.into());
        self
    }

    /// Serves and runs workflow `W`.
    pub fn register<W: Workflow>(mut self) -> Self {
        self.flows.push(FlowDef::of::<W>());
        self
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// A token that shuts the service down when cancelled (as SIGTERM or Ctrl-C do).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The routes, to serve yourself or to nest in your own `axum::Router`. With the Redis
    /// engine, run workers separately ([`start_worker`](Self::start_worker)).
    pub async fn router(&self) -> Result<axum::Router, ServiceError> {
        let backend = self.backend().await?;
        Ok(self.router_for(backend))
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

    async fn backend(&self) -> Result<Backend, ServiceError> {
        match &self.settings.redis_url {
            None => Ok(Backend::Embedded(Arc::new(Embedded::new()))),
            #[cfg(feature = "redis")]
            Some(url) => {
                let mut config = crate::redis::RedisConfig::new(url.clone());
                config.prefix = self.settings.redis_prefix.clone();
                let mut builder = crate::redis::RedisEngine::builder(config);
                for flow in &self.flows {
                    builder = (flow.register_redis)(builder);
                }
                Ok(Backend::Redis(builder.connect().await?))
            }
            #[cfg(not(feature = "redis"))]
            Some(_) => Err(ServiceError::WorkerNeedsRedis),
        }
    }

    fn router_for(&self, backend: Backend) -> axum::Router {
        let flows: HashMap<&'static str, FlowDef> =
            self.flows.iter().map(|f| (f.name, *f)).collect();
        let state = AppState {
            backend,
            metrics: metrics::Metrics::new(flows.keys().copied()),
            flows,
            api_token: self.settings.api_token.clone(),
            body_limit: self.settings.body_limit,
            max_wait: self.settings.max_wait,
        };
        http::router(Arc::new(state))
    }

    // Without the Redis engine there are no workers apart from the embedded engine.
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    async fn run(self, serve: bool, work: bool) -> Result<(), ServiceError> {
        // A no-op when the application installed its own subscriber.
        let _telemetry = telemetry::install(self.settings.otlp_endpoint.as_deref());
        if serve || self.settings.metrics_port.is_some() {
            // Before the workers start, so that `GET /metrics` misses none of their metrics.
            metrics::recorder();
        }
        if let (false, Some(port)) = (serve, self.settings.metrics_port) {
            // A worker-only process serves its metrics (and liveness) on a port of its own.
            let address = format!("{}:{port}", self.settings.host);
            let listener = tokio::net::TcpListener::bind(&address)
                .await
                .map_err(|source| ServiceError::Bind {
                    address: address.clone(),
                    source,
                })?;
            tracing::info!(%address, "serving /metrics and /healthz");
            let router = http::metrics_router();
            let metrics_shutdown = self.shutdown.clone();
            tokio::spawn(async move {
                let _ = axum::serve(listener, router)
                    .with_graceful_shutdown(async move { metrics_shutdown.cancelled().await })
                    .await;
            });
        }
        let backend = self.backend().await?;
        let shutdown = self.shutdown.clone();
        tokio::spawn(shutdown_on_signal(shutdown.clone()));
        let mut tasks = tokio::task::JoinSet::new();
        #[cfg(feature = "redis")]
        if let (true, Backend::Redis(engine)) = (work, &backend) {
            let worker = engine.worker(self.settings.worker_concurrency);
            tracing::info!(
                consumer = worker.consumer(),
                concurrency = self.settings.worker_concurrency,
                "worker started"
            );
            let worker_shutdown = shutdown.clone();
            tasks.spawn(async move {
                worker
                    .run(worker_shutdown)
                    .await
                    .map_err(ServiceError::from)
            });
        }
        if serve {
            let address = format!("{}:{}", self.settings.host, self.settings.port);
            let listener = tokio::net::TcpListener::bind(&address)
                .await
                .map_err(|source| ServiceError::Bind {
                    address: address.clone(),
                    source,
                })?;
            tracing::info!(%address, engine = backend.kind(), flows = self.flows.len(), "serving HTTP");
            let router = self.router_for(backend);
            let http_shutdown = shutdown.clone();
            tasks.spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move { http_shutdown.cancelled().await })
                    .await
                    .map_err(ServiceError::Serve)
            });
        }
        let grace = self.settings.shutdown_grace;
        let mut result = Ok(());
        // The first task to end (with an error, or at shutdown) ends the service.
        if let Some(Ok(Err(error))) = tasks.join_next().await {
            result = Err(error);
        }
        shutdown.cancel();
        // Let the others finish what they are doing, within the grace period.
        let _ = tokio::time::timeout(grace, async {
            while let Some(joined) = tasks.join_next().await {
                if let (Ok(Err(error)), Ok(())) = (joined, &result) {
                    result = Err(error);
                }
            }
        })
        .await;
        result
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
