//! A small REST client for the bridge's `/api/v1`: logs in like the admin page does
//! (session cookie + CSRF header) or calls as a room endpoint (device key).

use reqwest::Method;
use serde_json::Value;

#[derive(Clone)]
pub enum As {
    Anonymous,
    /// Cookie header value and CSRF token from a login.
    Session {
        cookie: String,
        csrf: String,
    },
    Device(String),
}

#[derive(Clone)]
pub struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            http: reqwest::Client::new(),
        }
    }

    /// A client whose every request says it was forwarded for `client` (as the TLS proxy on
    /// the bridge's machine, a trusted one, writes it).
    pub fn forwarded_for(
        base: impl Into<String>,
        client: std::net::IpAddr,
    ) -> anyhow::Result<Self> {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-forwarded-for", client.to_string().parse()?);
        Ok(Self {
            base: base.into(),
            http: reqwest::Client::builder()
                .default_headers(headers)
                .build()?,
        })
    }

    /// Log in; returns the credentials to call as that person.
    pub async fn login(&self, username: &str, password: &str) -> anyhow::Result<As> {
        let r = self
            .http
            .post(format!("{}/api/v1/login", self.base))
            .json(&serde_json::json!({"username": username, "password": password}))
            .send()
            .await?;
        anyhow::ensure!(r.status() == 200, "login {username}: {}", r.status());
        let cookie = r
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no session cookie"))?;
        let body: Value = r.json().await?;
        let csrf = body["csrf_token"].as_str().unwrap_or_default().to_owned();
        Ok(As::Session { cookie, csrf })
    }

    /// Send a request; returns the status and the body (JSON, or a string for other types).
    pub async fn call(
        &self,
        who: &As,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        match who {
            As::Anonymous => {}
            As::Session { cookie, csrf } => {
                req = req.header("cookie", cookie).header("x-csrf-token", csrf);
            }
            As::Device(key) => req = req.header("authorization", format!("Device {key}")),
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        let r = req.send().await?;
        let status = r.status().as_u16();
        let text = r.text().await?;
        let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok((status, value))
    }

    pub async fn get(&self, who: &As, path: &str) -> anyhow::Result<(u16, Value)> {
        self.call(who, Method::GET, path, None).await
    }

    pub async fn post(&self, who: &As, path: &str, body: &Value) -> anyhow::Result<(u16, Value)> {
        self.call(who, Method::POST, path, Some(body)).await
    }
}
