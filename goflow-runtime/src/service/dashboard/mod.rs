//! The dashboard at `/ui`: a page, a script and a stylesheet, compiled into the binary (no CDN,
//! no network: it works on an air-gapped host) and served without the API token, since they
//! hold no data. Everything the page shows it fetches from the public JSON routes and their
//! events, with the token the user gives its login form, so anything it shows a script can
//! get too; this module only hands out the files.

use std::path::PathBuf;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

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

/// The marker the page carries for its mode, which the script reads.
const READ_ONLY_OFF: &str = r#"<meta name="goflow-read-only" content="false">"#;
const READ_ONLY_ON: &str = r#"<meta name="goflow-read-only" content="true">"#;

/// What the page may load and connect to: itself only. Inline styles are allowed (the script
/// sizes the graph's boxes through them); inline scripts are not.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The dashboard's routes, or none when it is off. `dir`, when set, is a directory the files
/// are read from at each request instead of the binary (`GOFLOW_DASHBOARD_DIR`, for working
/// on them).
pub(super) fn router(dashboard: Dashboard, dir: Option<PathBuf>) -> Router {
    if dashboard == Dashboard::Off {
        return Router::new();
    }
    let read_only = dashboard == Dashboard::ReadOnly;
    let serve = move |asset: &'static Asset| {
        let dir = dir.clone();
        move || async move { respond(asset, dir.as_deref(), read_only).await }
    };
    Router::new()
        .route("/ui", get(serve(&PAGE)))
        .route("/ui/", get(serve(&PAGE)))
        .route("/ui/app.js", get(serve(&SCRIPT)))
        .route("/ui/app.css", get(serve(&STYLE)))
}

async fn respond(
    asset: &'static Asset,
    dir: Option<&std::path::Path>,
    read_only: bool,
) -> Response {
    let body = match dir {
        None => asset.embedded.to_owned(),
        Some(dir) => match tokio::fs::read_to_string(dir.join(asset.name)).await {
            Ok(text) => text,
            Err(error) => {
                return (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("GOFLOW_DASHBOARD_DIR: cannot read {}: {error}", asset.name),
                )
                    .into_response()
            }
        },
    };
    let body = if read_only && asset.name == PAGE.name {
        body.replace(READ_ONLY_OFF, READ_ONLY_ON)
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
    fn the_page_carries_the_marker_read_only_mode_replaces() {
        assert!(PAGE.embedded.contains(READ_ONLY_OFF));
        assert!(SCRIPT.embedded.contains("goflow-read-only"));
    }

    #[test]
    fn modes_read_from_their_words() {
        assert_eq!("read-only".parse(), Ok(Dashboard::ReadOnly));
        assert_eq!("off".parse(), Ok(Dashboard::Off));
        assert_eq!(" on".parse(), Ok(Dashboard::On));
        assert_eq!("maybe".parse::<Dashboard>(), Err(()));
    }
}
