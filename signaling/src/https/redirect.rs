//! Port 80 on a bridge that serves HTTPS: every request is sent to the same host and
//! path over https://, so a user who types the bridge's address reaches the page that
//! may use the camera.

use axum::Router;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

/// The router for the plain-HTTP port; `https_port` is where HTTPS listens.
pub fn redirect_to_https(https_port: u16) -> Router {
    Router::new().fallback(
        move |method: Method, headers: HeaderMap, uri: Uri| async move {
            redirect(https_port, &method, &headers, &uri)
        },
    )
}

fn redirect(https_port: u16, method: &Method, headers: &HeaderMap, uri: &Uri) -> Response {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(host_without_port);
    let Some(host) = host else {
        return (
            StatusCode::BAD_REQUEST,
            "Dùng https:// / Use https:// (this request has no valid Host header)\n",
        )
            .into_response();
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let location = format!("https://{host}{port}{path}");
    // 301 for what a browser's address bar sends; 308 keeps the method and body of
    // anything else (an agent's POST).
    let status = if method == Method::GET || method == Method::HEAD {
        StatusCode::MOVED_PERMANENTLY
    } else {
        StatusCode::PERMANENT_REDIRECT
    };
    (status, [(header::LOCATION, location)]).into_response()
}

/// The host part of a Host header (`name`, `name:80`, `[v6]:80`), if it is a plausible
/// host name or address: nothing that could change where the redirect points.
fn host_without_port(h: &str) -> Option<&str> {
    let host = if let Some(rest) = h.strip_prefix('[') {
        let end = rest.find(']')?;
        &h[..end + 2]
    } else {
        h.split(':').next()?
    };
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn location(port: u16, method: Method, host: Option<&str>, uri: &str) -> (u16, String) {
        let mut headers = HeaderMap::new();
        if let Some(h) = host {
            headers.insert(header::HOST, h.parse().expect("header"));
        }
        let r = redirect(port, &method, &headers, &uri.parse().expect("uri"));
        let loc = r
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (r.status().as_u16(), loc)
    }

    #[test]
    fn same_host_and_path_over_https() {
        assert_eq!(
            location(443, Method::GET, Some("cauhop.laocai.gov.vn"), "/admin?x=1"),
            (301, "https://cauhop.laocai.gov.vn/admin?x=1".into())
        );
        assert_eq!(
            location(8443, Method::GET, Some("10.0.0.5:80"), "/"),
            (301, "https://10.0.0.5:8443/".into())
        );
        assert_eq!(
            location(443, Method::POST, Some("[fd00::5]:80"), "/api/v1/login"),
            (308, "https://[fd00::5]/api/v1/login".into())
        );
    }

    #[test]
    fn a_host_that_could_move_the_redirect_is_refused() {
        for bad in ["evil.com/x", "a@evil.com", "", "x y"] {
            assert_eq!(location(443, Method::GET, Some(bad), "/").0, 400, "{bad}");
        }
        assert_eq!(location(443, Method::GET, None, "/").0, 400);
    }
}
