//! [`Settings`]: every setting of a [`FlowService`](super::FlowService), each with its
//! environment variable, and [`ServiceError`].

use std::time::Duration;

/// Every setting of a [`FlowService`](super::FlowService); each has an environment variable
/// and a builder method of the service. Durations in the environment are whole seconds
/// (`30`) or a duration with units (`1m30s`, `500ms`). Its `Debug` shows the tokens and the
/// Redis URL's password as `***`.
#[derive(Clone)]
#[non_exhaustive]
pub struct Settings {
    /// HTTP port (`GOFLOW_PORT`, default 8080).
    pub port: u16,
    /// HTTP bind address (`GOFLOW_HOST`, default `0.0.0.0`).
    pub host: String,
    /// Redis URL (`GOFLOW_REDIS_URL`); absent: the embedded engine.
    pub redis_url: Option<String>,
    /// Key prefix of the Redis engine (`GOFLOW_REDIS_PREFIX`, default `goflow`).
    pub redis_prefix: String,
    /// How many partitions each workflow's Redis keys are split into
    /// (`GOFLOW_REDIS_PARTITIONS`, default 1; on a Redis Cluster, about its number of
    /// primaries; see [`RedisConfig::partitions`](crate::redis::RedisConfig)).
    pub redis_partitions: u16,
    /// Attempts one worker runs at once (`GOFLOW_WORKER_CONCURRENCY`, default 8, at least 1).
    pub worker_concurrency: usize,
    /// How long a Redis worker may hold an entry without renewing it before other workers
    /// reclaim it (`GOFLOW_LEASE`, default 30 s).
    pub lease: Duration,
    /// How long finished requests are kept (`GOFLOW_RETENTION`, default 24 h).
    pub retention: Duration,
    /// Bearer token required by every route but `/healthz` and `/readyz`
    /// (`GOFLOW_API_TOKEN`); absent: no auth.
    pub api_token: Option<String>,
    /// Bearer token accepted on `/metrics` besides the API token, for scrapers
    /// (`GOFLOW_METRICS_TOKEN`); with either set, `/metrics` requires one of them.
    pub metrics_token: Option<String>,
    /// Largest request body in bytes (`GOFLOW_BODY_LIMIT`, default 1 MiB).
    pub body_limit: usize,
    /// How long a client may take to send a request's body, from when the handler starts
    /// reading it (`GOFLOW_BODY_TIMEOUT`, default 30 s): `408` after that.
    pub body_timeout: Duration,
    /// How long a client may take to send a request's head (line and headers), counted from
    /// when the connection opens or its previous answer has been sent, so it is also how long
    /// an idle keep-alive connection stays open (`GOFLOW_HEADER_TIMEOUT`, default 10 s).
    /// Applies to the listener `start*()` opens.
    pub header_timeout: Duration,
    /// How long a connection may go without reading or writing a byte while none of its
    /// requests is being handled (a client that stops reading its answer, say) before it is
    /// closed (`GOFLOW_IDLE_TIMEOUT`, default 60 s). Applies to the listener `start*()` opens.
    pub idle_timeout: Duration,
    /// The most connections served at once (`GOFLOW_MAX_CONNECTIONS`, default 1024); more wait
    /// in the listen backlog until one closes. Applies to the listener `start*()` opens.
    pub max_connections: usize,
    /// Longest `?wait=` honoured (`GOFLOW_MAX_WAIT`, default 60 s).
    pub max_wait: Duration,
    /// OTLP endpoint for traces (`OTEL_EXPORTER_OTLP_ENDPOINT`); with the `otel` feature every
    /// span is exported there when the service installs its telemetry
    /// ([`with_telemetry`](super::FlowService::with_telemetry); see
    /// [`telemetry`](super::telemetry)), and nowhere without it.
    pub otlp_endpoint: Option<String>,
    /// Port on which a worker-only process (`start_worker`) serves `/metrics` and `/healthz`
    /// (`GOFLOW_METRICS_PORT`); absent: none. Services with HTTP serve them on their port.
    pub metrics_port: Option<u16>,
    /// Whether the Redis engine's scripts record each step's events, for the `…/events`
    /// routes (`GOFLOW_EVENTS`, `on` or `off`, default on; see
    /// [`RedisConfig::events`](crate::redis::RedisConfig)). The embedded engine always keeps
    /// them, in memory.
    pub events: bool,
    /// How long to let running attempts finish on shutdown (`GOFLOW_SHUTDOWN_GRACE`, default
    /// 30 s).
    pub shutdown_grace: Duration,
    /// How large one request may grow: items per for-each (`GOFLOW_MAX_ITEMS`, default
    /// 10,000) and bytes per vertex output (`GOFLOW_MAX_OUTPUT_BYTES`, default 1 MiB). See
    /// [`Limits`](crate::request::Limits).
    pub limits: crate::request::Limits,
    /// Whether the service serves its dashboard at `/ui`, with or without its actions
    /// (`GOFLOW_DASHBOARD`: `on`, `read-only` or `off`; default on).
    pub dashboard: super::Dashboard,
    /// A directory to read the dashboard's files from at each request instead of the binary
    /// (`GOFLOW_DASHBOARD_DIR`), for working on them; absent: the files compiled in.
    pub dashboard_dir: Option<std::path::PathBuf>,
    /// The address of a trace in a tracing UI, with `{trace_id}` where the trace's id goes
    /// (`GOFLOW_TRACE_URL`, e.g. `http://localhost:16686/trace/{trace_id}` for Jaeger): the
    /// dashboard links each request's trace id to it. Absent: the id is shown, not linked.
    pub trace_url: Option<String>,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Destructured, so that a new setting cannot be left out (or leak a secret).
        let Self {
            port,
            host,
            redis_url,
            redis_prefix,
            redis_partitions,
            worker_concurrency,
            lease,
            retention,
            api_token,
            metrics_token,
            body_limit,
            body_timeout,
            header_timeout,
            idle_timeout,
            max_connections,
            max_wait,
            otlp_endpoint,
            metrics_port,
            events,
            shutdown_grace,
            limits,
            dashboard,
            dashboard_dir,
            trace_url,
        } = self;
        f.debug_struct("Settings")
            .field("port", port)
            .field("host", host)
            .field(
                "redis_url",
                &redis_url.as_deref().map(crate::secret::redact_url),
            )
            .field("redis_prefix", redis_prefix)
            .field("redis_partitions", redis_partitions)
            .field("worker_concurrency", worker_concurrency)
            .field("lease", lease)
            .field("retention", retention)
            .field("api_token", &crate::secret::Hidden(api_token))
            .field("metrics_token", &crate::secret::Hidden(metrics_token))
            .field("body_limit", body_limit)
            .field("body_timeout", body_timeout)
            .field("header_timeout", header_timeout)
            .field("idle_timeout", idle_timeout)
            .field("max_connections", max_connections)
            .field("max_wait", max_wait)
            .field("otlp_endpoint", otlp_endpoint)
            .field("metrics_port", metrics_port)
            .field("events", events)
            .field("shutdown_grace", shutdown_grace)
            .field("limits", limits)
            .field("dashboard", dashboard)
            .field("dashboard_dir", dashboard_dir)
            .field("trace_url", trace_url)
            .finish()
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            port: 8080,
            host: "0.0.0.0".to_owned(),
            redis_url: None,
            redis_prefix: "goflow".to_owned(),
            redis_partitions: 1,
            worker_concurrency: 8,
            lease: Duration::from_secs(30),
            retention: crate::embedded::DEFAULT_RETENTION,
            api_token: None,
            metrics_token: None,
            body_limit: 1 << 20,
            body_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
            max_wait: Duration::from_secs(60),
            otlp_endpoint: None,
            metrics_port: None,
            events: true,
            shutdown_grace: Duration::from_secs(30),
            limits: crate::request::Limits::DEFAULT,
            dashboard: super::Dashboard::On,
            dashboard_dir: None,
            trace_url: None,
        }
    }
}

/// A service could not start or serve.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// A setting holds something unusable.
    #[error("{name}={value:?}: expected {expected}")]
    Setting {
        /// The setting's environment variable.
        name: &'static str,
        /// Its value.
        value: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The HTTP port could not be bound.
    #[error("cannot listen on {address}")]
    Bind {
        /// Host and port.
        address: String,
        /// Why.
        source: std::io::Error,
    },
    /// Workers need the Redis engine.
    #[error("running workers on their own needs a Redis URL (GOFLOW_REDIS_URL): the embedded engine runs inside the HTTP service")]
    WorkerNeedsRedis,
    /// A Redis URL is set, but this build has no Redis engine.
    #[error(
        "a Redis URL (GOFLOW_REDIS_URL) is set, but goflow was built without its `redis` feature"
    )]
    RedisNotBuilt,
    /// The engine failed (Redis unreachable, say).
    #[error("the engine failed")]
    Engine(#[source] crate::Error),
    /// Serving HTTP failed.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

impl ServiceError {
    fn setting(name: &'static str, value: String, expected: &'static str) -> Self {
        Self::Setting {
            name,
            value,
            expected,
        }
    }
}

impl Settings {
    /// Defaults overridden by the environment; the error names the first variable that holds
    /// something unusable, and its value.
    pub fn from_env() -> Result<Self, ServiceError> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables (a test's map, say).
    pub(crate) fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Self, ServiceError> {
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let mut settings = Self::default();
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
        fn duration(name: &'static str, value: String) -> Result<Duration, ServiceError> {
            let text = value.trim();
            let parsed = match text.parse::<u64>() {
                Ok(seconds) => Ok(Duration::from_secs(seconds)),
                Err(_) => humantime::parse_duration(text),
            };
            parsed.map_err(|_| ServiceError::Setting {
                name,
                value,
                expected: "a number of seconds, or a duration such as `1m30s` or `500ms`",
            })
        }
        if let Some(v) = var("GOFLOW_PORT") {
            settings.port = parse("GOFLOW_PORT", v, "a port number")?;
        }
        if let Some(v) = var("GOFLOW_HOST") {
            settings.host = v;
        }
        settings.redis_url = var("GOFLOW_REDIS_URL");
        if let Some(v) = var("GOFLOW_REDIS_PREFIX") {
            settings.redis_prefix = v;
        }
        if let Some(v) = var("GOFLOW_REDIS_PARTITIONS") {
            // At most `RedisConfig::MAX_PARTITIONS`, which the engine checks as it connects.
            settings.redis_partitions = parse::<std::num::NonZeroU16>(
                "GOFLOW_REDIS_PARTITIONS",
                v,
                "a whole number from 1 to 1024",
            )?
            .get();
        }
        if let Some(v) = var("GOFLOW_WORKER_CONCURRENCY") {
            settings.worker_concurrency = parse::<std::num::NonZeroUsize>(
                "GOFLOW_WORKER_CONCURRENCY",
                v,
                "a positive whole number",
            )?
            .get();
        }
        if let Some(v) = var("GOFLOW_LEASE") {
            settings.lease = duration("GOFLOW_LEASE", v)?;
        }
        if let Some(v) = var("GOFLOW_RETENTION") {
            settings.retention = duration("GOFLOW_RETENTION", v)?;
        }
        settings.api_token = var("GOFLOW_API_TOKEN");
        settings.metrics_token = var("GOFLOW_METRICS_TOKEN");
        if let Some(v) = var("GOFLOW_BODY_LIMIT") {
            settings.body_limit = parse("GOFLOW_BODY_LIMIT", v, "a number of bytes")?;
        }
        if let Some(v) = var("GOFLOW_BODY_TIMEOUT") {
            settings.body_timeout = duration("GOFLOW_BODY_TIMEOUT", v)?;
        }
        if let Some(v) = var("GOFLOW_HEADER_TIMEOUT") {
            settings.header_timeout = duration("GOFLOW_HEADER_TIMEOUT", v)?;
        }
        if let Some(v) = var("GOFLOW_IDLE_TIMEOUT") {
            settings.idle_timeout = duration("GOFLOW_IDLE_TIMEOUT", v)?;
        }
        if let Some(v) = var("GOFLOW_MAX_CONNECTIONS") {
            settings.max_connections = parse::<std::num::NonZeroUsize>(
                "GOFLOW_MAX_CONNECTIONS",
                v,
                "a positive whole number",
            )?
            .get();
        }
        if let Some(v) = var("GOFLOW_MAX_WAIT") {
            settings.max_wait = duration("GOFLOW_MAX_WAIT", v)?;
        }
        if let Some(v) = var("GOFLOW_SHUTDOWN_GRACE") {
            settings.shutdown_grace = duration("GOFLOW_SHUTDOWN_GRACE", v)?;
        }
        if let Some(v) = var("GOFLOW_METRICS_PORT") {
            settings.metrics_port = Some(parse("GOFLOW_METRICS_PORT", v, "a port number")?);
        }
        if let Some(v) = var("GOFLOW_EVENTS") {
            settings.events = match v.trim() {
                "on" | "true" | "1" => true,
                "off" | "false" | "0" => false,
                _ => return Err(ServiceError::setting("GOFLOW_EVENTS", v, "`on` or `off`")),
            };
        }
        if let Some(v) = var("GOFLOW_DASHBOARD") {
            settings.dashboard = v.parse().map_err(|()| {
                ServiceError::setting("GOFLOW_DASHBOARD", v, "`on`, `read-only` or `off`")
            })?;
        }
        settings.dashboard_dir = var("GOFLOW_DASHBOARD_DIR").map(std::path::PathBuf::from);
        settings.trace_url = var("GOFLOW_TRACE_URL");
        if let Some(v) = var("GOFLOW_MAX_ITEMS") {
            settings.limits.max_items = parse("GOFLOW_MAX_ITEMS", v, "a number of items")?;
        }
        if let Some(v) = var("GOFLOW_MAX_OUTPUT_BYTES") {
            settings.limits.max_output_bytes =
                parse("GOFLOW_MAX_OUTPUT_BYTES", v, "a number of bytes")?;
        }
        settings.otlp_endpoint = var("OTEL_EXPORTER_OTLP_ENDPOINT");
        Ok(settings)
    }

    /// Checks what the types cannot: a worker runs at least one attempt at a time, a lease is
    /// long enough to renew, the service takes at least one connection, and its timeouts are
    /// not zero.
    pub(crate) fn validate(&self) -> Result<(), ServiceError> {
        if self.max_connections == 0 {
            return Err(ServiceError::Setting {
                name: "GOFLOW_MAX_CONNECTIONS",
                value: "0".to_owned(),
                expected: "a positive whole number",
            });
        }
        for (name, timeout) in [
            ("GOFLOW_BODY_TIMEOUT", self.body_timeout),
            ("GOFLOW_HEADER_TIMEOUT", self.header_timeout),
            ("GOFLOW_IDLE_TIMEOUT", self.idle_timeout),
        ] {
            if timeout.is_zero() {
                return Err(ServiceError::Setting {
                    name,
                    value: "0".to_owned(),
                    expected: "a duration above zero",
                });
            }
        }
        if self.worker_concurrency == 0 {
            return Err(ServiceError::Setting {
                name: "GOFLOW_WORKER_CONCURRENCY",
                value: "0".to_owned(),
                expected: "a positive whole number",
            });
        }
        if self.lease < Duration::from_millis(100) {
            return Err(ServiceError::Setting {
                name: "GOFLOW_LEASE",
                value: format!("{:?}", self.lease),
                expected: "at least 100 ms",
            });
        }
        #[cfg(feature = "redis")]
        if let Some(url) = &self.redis_url {
            if fred::types::config::Config::from_url(url).is_err() {
                return Err(ServiceError::Setting {
                    name: "GOFLOW_REDIS_URL",
                    value: crate::secret::redact_url(url),
                    expected: "a Redis URL such as `redis://127.0.0.1:6379` \
                               (`rediss://` for TLS, `redis-cluster://`, `redis-sentinel://`)",
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> Result<Settings, ServiceError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_vars(|name| vars.get(name).cloned())
    }

    #[test]
    fn debug_hides_the_secrets() {
        let settings = from(&[
            ("GOFLOW_REDIS_URL", "redis://u:redispw@h:6379"),
            ("GOFLOW_API_TOKEN", "apitoken"),
            ("GOFLOW_METRICS_TOKEN", "metricstoken"),
        ])
        .unwrap();
        let shown = format!("{settings:?}");
        for secret in ["redispw", "apitoken", "metricstoken"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(shown.contains("redis://u:***@h:6379"), "{shown}");
        assert!(shown.contains("api_token: Some(***)"), "{shown}");
    }

    #[cfg(feature = "redis")]
    #[test]
    fn an_unusable_redis_url_is_named_without_its_password() {
        let error = from(&[("GOFLOW_REDIS_URL", "notaurl")])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("GOFLOW_REDIS_URL=\"notaurl\": expected a Redis URL"),
            "{error}"
        );
        let error = from(&[("GOFLOW_REDIS_URL", "redis://user:hunter2@h:port")])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(error.contains("redis://user:***@h:port"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        from(&[("GOFLOW_REDIS_URL", "redis://:pw@127.0.0.1:6379/2")])
            .unwrap()
            .validate()
            .expect("a usable URL");
    }

    #[test]
    fn every_variable_is_read() {
        let settings = from(&[
            ("GOFLOW_PORT", "9090"),
            ("GOFLOW_HOST", "127.0.0.1"),
            ("GOFLOW_REDIS_URL", "redis://r:6379"),
            ("GOFLOW_REDIS_PREFIX", "p"),
            ("GOFLOW_REDIS_PARTITIONS", "3"),
            ("GOFLOW_WORKER_CONCURRENCY", "3"),
            ("GOFLOW_LEASE", "10s"),
            ("GOFLOW_RETENTION", "2h"),
            ("GOFLOW_API_TOKEN", "t"),
            ("GOFLOW_METRICS_TOKEN", "m"),
            ("GOFLOW_BODY_LIMIT", "1000"),
            ("GOFLOW_BODY_TIMEOUT", "5s"),
            ("GOFLOW_HEADER_TIMEOUT", "1500ms"),
            ("GOFLOW_IDLE_TIMEOUT", "2m"),
            ("GOFLOW_MAX_CONNECTIONS", "16"),
            ("GOFLOW_MAX_WAIT", "5"),
            ("GOFLOW_SHUTDOWN_GRACE", "1m30s"),
            ("GOFLOW_METRICS_PORT", "9100"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318"),
            ("GOFLOW_MAX_ITEMS", "500"),
            ("GOFLOW_MAX_OUTPUT_BYTES", "4096"),
            ("GOFLOW_EVENTS", "off"),
            ("GOFLOW_DASHBOARD", "read-only"),
            ("GOFLOW_DASHBOARD_DIR", "/tmp/ui"),
            ("GOFLOW_TRACE_URL", "http://jaeger:16686/trace/{trace_id}"),
        ])
        .unwrap();
        assert!(!settings.events);
        assert_eq!(settings.dashboard, super::super::Dashboard::ReadOnly);
        assert_eq!(
            settings.dashboard_dir.as_deref(),
            Some(std::path::Path::new("/tmp/ui"))
        );
        assert_eq!(
            settings.trace_url.as_deref(),
            Some("http://jaeger:16686/trace/{trace_id}")
        );
        assert_eq!(settings.limits.max_items, 500);
        assert_eq!(settings.limits.max_output_bytes, 4096);
        assert_eq!(settings.port, 9090);
        assert_eq!(settings.host, "127.0.0.1");
        assert_eq!(settings.redis_url.as_deref(), Some("redis://r:6379"));
        assert_eq!(settings.redis_prefix, "p");
        assert_eq!(settings.redis_partitions, 3);
        assert_eq!(settings.worker_concurrency, 3);
        assert_eq!(settings.lease, Duration::from_secs(10));
        assert_eq!(settings.retention, Duration::from_secs(7200));
        assert_eq!(settings.api_token.as_deref(), Some("t"));
        assert_eq!(settings.metrics_token.as_deref(), Some("m"));
        assert_eq!(settings.body_limit, 1000);
        assert_eq!(settings.body_timeout, Duration::from_secs(5));
        assert_eq!(settings.header_timeout, Duration::from_millis(1500));
        assert_eq!(settings.idle_timeout, Duration::from_secs(120));
        assert_eq!(settings.max_connections, 16);
        assert_eq!(settings.max_wait, Duration::from_secs(5));
        assert_eq!(settings.shutdown_grace, Duration::from_secs(90));
        assert_eq!(settings.metrics_port, Some(9100));
        assert_eq!(
            settings.otlp_endpoint.as_deref(),
            Some("http://localhost:4318")
        );
    }

    #[test]
    fn a_bad_value_names_the_variable_and_the_value() {
        let error = from(&[("GOFLOW_WORKER_CONCURRENCY", "0")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "GOFLOW_WORKER_CONCURRENCY=\"0\": expected a positive whole number"
        );
        let error = from(&[("GOFLOW_MAX_WAIT", "soon")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "GOFLOW_MAX_WAIT=\"soon\": expected a number of seconds, or a duration such as `1m30s` or `500ms`"
        );
        let error = from(&[("GOFLOW_DASHBOARD", "maybe")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "GOFLOW_DASHBOARD=\"maybe\": expected `on`, `read-only` or `off`"
        );
        let error = from(&[("GOFLOW_MAX_CONNECTIONS", "0")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "GOFLOW_MAX_CONNECTIONS=\"0\": expected a positive whole number"
        );
        let error = from(&[("GOFLOW_HEADER_TIMEOUT", "0")]).unwrap().validate();
        assert_eq!(
            error.unwrap_err().to_string(),
            "GOFLOW_HEADER_TIMEOUT=\"0\": expected a duration above zero"
        );
        let error = from(&[("GOFLOW_REDIS_PARTITIONS", "0")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "GOFLOW_REDIS_PARTITIONS=\"0\": expected a whole number from 1 to 1024"
        );
        let error = from(&[("GOFLOW_PORT", "99999")]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "GOFLOW_PORT=\"99999\": expected a port number"
        );
    }
}
