//! `GET /ui`: the live dashboard on the admin listener — a page, a script and a style sheet,
//! embedded in the binary (no CDN, no framework). The assets hold no data and are served
//! without the admin token, like `/healthz`; everything the page shows it fetches from the
//! admin API (`/control`, `/control/history`, `/services`, `/services/{name}/backends`),
//! through the admin guard, with the token from the page's URL fragment (`/ui#token=…`).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("ui/index.html");
const SCRIPT: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/app.css");

/// The paths served here (open, as static assets).
pub(crate) const PATHS: [&str; 3] = ["/ui", "/ui/app.js", "/ui/app.css"];

/// Only this page's own script and style sheet may run on it, and it may only talk to this
/// admin API.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    r
}

pub(crate) async fn index() -> Response {
    asset(INDEX, "text/html; charset=utf-8")
}

pub(crate) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub(crate) async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}
