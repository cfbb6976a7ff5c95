//! The web client, embedded in the binary so `cargo run` serves it with no build step.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

const INDEX: &str = include_str!("../../web-client/index.html");
const APP_JS: &str = include_str!("../../web-client/app.js");
const PROTOCOL_JS: &str = include_str!("../../web-client/protocol.js");
const I18N_JS: &str = include_str!("../../web-client/i18n.js");
const STYLE_CSS: &str = include_str!("../../web-client/style.css");
const ADMIN_HTML: &str = include_str!("../../web-client/admin.html");
const ADMIN_JS: &str = include_str!("../../web-client/admin.js");
const REPORT_HTML: &str = include_str!("../../web-client/report.html");
const REPORT_JS: &str = include_str!("../../web-client/report.js");
const REPORT_CSS: &str = include_str!("../../web-client/report.css");
const KIOSK_HTML: &str = include_str!("../../web-client/kiosk.html");
const KIOSK_JS: &str = include_str!("../../web-client/kiosk.js");

fn asset(body: &'static str, mime: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, mime),
            // Small files, changed only with the binary: a short cache keeps upgrades visible.
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
}

pub(crate) fn routes() -> Router<Arc<AppState>> {
    let index = || async { asset(INDEX, "text/html; charset=utf-8") };
    Router::new()
        .route("/", get(index))
        .route("/m/{meeting}", get(index))
        .route(
            "/admin",
            get(|| async { asset(ADMIN_HTML, "text/html; charset=utf-8") }),
        )
        // The meeting report and a site's last weeks, printable; the data comes from the
        // API with the admin's session, so the page itself holds nothing.
        .route(
            "/admin/report",
            get(|| async { asset(REPORT_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/static/report.js",
            get(|| async { asset(REPORT_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/report.css",
            get(|| async { asset(REPORT_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/kiosk",
            get(|| async { asset(KIOSK_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/static/kiosk.js",
            get(|| async { asset(KIOSK_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/admin.js",
            get(|| async { asset(ADMIN_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/protocol.js",
            get(|| async { asset(PROTOCOL_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/i18n.js",
            get(|| async { asset(I18N_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/static/style.css",
            get(|| async { asset(STYLE_CSS, "text/css; charset=utf-8") }),
        )
}
