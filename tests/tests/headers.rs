//! Every response carries the browser protections: the content security policy (own
//! scripts, styles and WebSocket only; no framing), `nosniff`, no `Referer` (a join
//! link's token must not leak to another site), and `X-Frame-Options` for old browsers.
//! The browser tests (`tests/browser.rs`) show the pages still work under that policy.

use cauhop_signaling::Options;
use cauhop_tests::bridge::Bridge;
use cauhop_tests::init_log;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_and_answer_carries_the_browser_protections() -> anyhow::Result<()> {
    init_log();
    let bridge = Bridge::start_with(Options::default()).await?;
    let http = reqwest::Client::new();
    let mut failures = Vec::new();
    for path in [
        "/",
        "/m/12",
        "/admin",
        "/kiosk",
        "/static/app.js",
        "/static/style.css",
        "/api/v1/me",
        "/api/v1/openapi.json",
        "/healthz",
        "/no-such-page",
    ] {
        let r = http.get(bridge.url(path)).send().await?;
        let h = r.headers();
        let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
        let csp = get("content-security-policy");
        for (what, ok) in [
            (
                "CSP frame-ancestors 'none'",
                csp.contains("frame-ancestors 'none'"),
            ),
            ("CSP script-src 'self'", csp.contains("script-src 'self'")),
            ("nosniff", get("x-content-type-options") == "nosniff"),
            ("no-referrer", get("referrer-policy") == "no-referrer"),
            ("X-Frame-Options DENY", get("x-frame-options") == "DENY"),
        ] {
            if !ok {
                failures.push(format!("{path} ({}): no {what}", r.status()));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
