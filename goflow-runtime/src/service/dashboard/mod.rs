//! The dashboard at `/ui`: a page, a script and a stylesheet, compiled into the binary (no CDN,
//! no network: it works on an air-gapped host) and served without the API token, since they
//! hold no data. Everything the page shows it fetches from the public JSON routes and their
//! events, with the token the user gives its login form, so anything it shows a script can
//! get too; this module only hands out the files.

use std::path::Path;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::Settings;

/// What the service's dashboard offers (`GOFLOW_DASHBOARD`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Dashboard {
    /// Served at `/ui`, with its actions (retry, pause, resume, stop, bulk actions, a form to
    /// submit a request): `on`, the default.
    #[default]
    On,
    /// Served at `/ui` without any action: `read-only`. The API still takes actions from
    /// whoever holds the token; this hides them from the people looking at the page.
    ReadOnly,
    /// Not served: `off`.
    Off,
}

impl std::str::FromStr for Dashboard {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text.trim() {
            "on" | "true" | "1" => Ok(Self::On),
            "read-only" | "readonly" => Ok(Self::ReadOnly),
            "off" | "false" | "0" => Ok(Self::Off),
            _ => Err(()),
        }
    }
}

/// One file of the dashboard.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    embedded: &'static str,
}

const PAGE: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    embedded: include_str!("assets/index.html"),
};
const SCRIPT: Asset = Asset {
    name: "app.js",
    content_type: "text/javascript; charset=utf-8",
    embedded: include_str!("assets/app.js"),
};
const STYLE: Asset = Asset {
    name: "app.css",
    content_type: "text/css; charset=utf-8",
    embedded: include_str!("assets/app.css"),
};

/// The markers the page carries for its settings, which the script reads: its mode, and the
/// address of a request's trace.
const READ_ONLY_OFF: &str = r#"<meta name="goflow-read-only" content="false">"#;
const READ_ONLY_ON: &str = r#"<meta name="goflow-read-only" content="true">"#;
const TRACE_URL: &str = r#"<meta name="goflow-trace-url" content="">"#;

/// What the page is told when it is served.
#[derive(Clone)]
struct PageSettings {
    read_only: bool,
    /// `GOFLOW_TRACE_URL`: a tracing UI's address of a trace, `{trace_id}` standing for its id.
    trace_url: Option<String>,
}

impl PageSettings {
    /// The page with its markers set.
    fn apply(&self, page: String) -> String {
        let page = if self.read_only {
            page.replace(READ_ONLY_OFF, READ_ONLY_ON)
        } else {
            page
        };
        match &self.trace_url {
            Some(url) => page.replace(
                TRACE_URL,
                &format!(
                    r#"<meta name="goflow-trace-url" content="{}">"#,
                    attribute(url)
                ),
            ),
            None => page,
        }
    }
}

/// `text` as the value of a quoted HTML attribute.
fn attribute(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// What the page may load and connect to: itself only. Inline styles are allowed (the script
/// sizes the graph's boxes through them); inline scripts are not.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard's routes, or none when it is off. Its files are read from
/// `GOFLOW_DASHBOARD_DIR` at each request, when it is set, instead of the binary (for working
/// on them).
pub(super) fn router(settings: &Settings) -> Router {
    if settings.dashboard == Dashboard::Off {
        return Router::new();
    }
    let page = PageSettings {
        read_only: settings.dashboard == Dashboard::ReadOnly,
        trace_url: settings.trace_url.clone(),
    };
    let dir = settings.dashboard_dir.clone();
    let serve = move |asset: &'static Asset| {
        let (dir, page) = (dir.clone(), page.clone());
        move || async move { respond(asset, dir.as_deref(), &page).await }
    };
    Router::new()
        .route("/ui", get(serve(&PAGE)))
        .route("/ui/", get(serve(&PAGE)))
        .route("/ui/app.js", get(serve(&SCRIPT)))
        .route("/ui/app.css", get(serve(&STYLE)))
}

async fn respond(asset: &'static Asset, dir: Option<&Path>, page: &PageSettings) -> Response {
    let body = match dir {
        None => asset.embedded.to_owned(),
        Some(dir) => match tokio::fs::read_to_string(dir.join(asset.name)).await {
            Ok(text) => text,
            Err(error) => {
                return super::http::ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "dashboard_dir",
                    format!(
                        "GOFLOW_DASHBOARD_DIR={}: cannot read {}: {error}",
                        dir.display(),
                        asset.name
                    ),
                )
                .into_response()
            }
        },
    };
    let body = if asset.name == PAGE.name {
        page.apply(body)
    } else {
        body
    };
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    // The files change with the binary: a browser asks again rather than run an old script
    // against a new API.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_carries_the_markers_its_settings_replace() {
        assert!(PAGE.embedded.contains(READ_ONLY_OFF));
        assert!(PAGE.embedded.contains(TRACE_URL));
        assert!(SCRIPT.embedded.contains("goflow-read-only"));
        assert!(SCRIPT.embedded.contains("goflow-trace-url"));
        let page = PageSettings {
            read_only: true,
            trace_url: Some(r#"http://jaeger:16686/trace/{trace_id}?a=1&b="2""#.to_owned()),
        }
        .apply(PAGE.embedded.to_owned());
        assert!(page.contains(READ_ONLY_ON));
        assert!(page
            .contains(r#"content="http://jaeger:16686/trace/{trace_id}?a=1&amp;b=&quot;2&quot;""#));
    }

    #[test]
    fn modes_read_from_their_words() {
        assert_eq!("read-only".parse(), Ok(Dashboard::ReadOnly));
        assert_eq!("off".parse(), Ok(Dashboard::Off));
        assert_eq!(" on".parse(), Ok(Dashboard::On));
        assert_eq!("maybe".parse::<Dashboard>(), Err(()));
    }
}
