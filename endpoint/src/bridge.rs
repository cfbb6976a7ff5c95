//! The bridge's device API, as the agent sees it.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

use crate::follower::{Phase, Slot};

#[derive(Debug, Error)]
pub enum BridgeError {
    #[error("the bridge refused the device key (unknown or revoked)")]
    Unauthorized,
    #[error("the bridge answered {0}: {1}")]
    Status(u16, String),
    #[error("cannot reach the bridge: {0}")]
    Network(String),
    #[error("unexpected answer from the bridge: {0}")]
    Decode(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Meeting {
    pub id: i64,
    pub title: String,
    pub phase: Phase,
    pub starts_at: String,
    pub ends_at: String,
}

impl Meeting {
    pub fn slot(&self) -> Slot {
        let t = |s: &str| {
            chrono::DateTime::parse_from_rfc3339(s)
                .map(|d| d.timestamp())
                .unwrap_or(0)
        };
        Slot {
            meeting: self.id,
            phase: self.phase,
            starts_at: t(&self.starts_at),
            ends_at: t(&self.ends_at),
        }
    }
}

#[derive(Clone)]
pub struct BridgeClient {
    base: String,
    key: String,
    http: reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
}

impl BridgeClient {
    /// `base`: the bridge's address, e.g. `https://cauhop.laocai.gov.vn`, trusted through
    /// the public web's roots.
    pub fn new(base: &str, key: &str) -> Self {
        let tls = crate::tls::client_config(None)
            .expect("the web roots alone always make a TLS configuration");
        Self::with_tls(base, key, tls)
    }

    /// As [`new`](Self::new), trusting what `tls` trusts (e.g. a province's own CA).
    pub fn with_tls(base: &str, key: &str, tls: Arc<rustls::ClientConfig>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .use_preconfigured_tls((*tls).clone())
            .build()
            .unwrap_or_default();
        Self {
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
            http,
            tls,
        }
    }

    /// What the WebSocket to the bridge trusts: the same as the device API.
    pub fn tls(&self) -> Arc<rustls::ClientConfig> {
        self.tls.clone()
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The bridge runs on this machine (a demo, or tests): loopback media is fine.
    pub fn is_local(&self) -> bool {
        crate::tls::is_loopback_url(&self.base)
    }

    /// The WebSocket URL of the bridge.
    pub fn ws_url(&self) -> String {
        let rest = self
            .base
            .strip_prefix("https://")
            .map(|r| format!("wss://{r}"))
            .or_else(|| {
                self.base
                    .strip_prefix("http://")
                    .map(|r| format!("ws://{r}"))
            })
            .unwrap_or_else(|| self.base.clone());
        format!("{rest}/ws")
    }

    async fn check(r: reqwest::Response) -> Result<reqwest::Response, BridgeError> {
        match r.status().as_u16() {
            200..=299 => Ok(r),
            401 => Err(BridgeError::Unauthorized),
            s => Err(BridgeError::Status(s, r.text().await.unwrap_or_default())),
        }
    }

    /// A device-API request with this room's key, checked for status.
    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, BridgeError> {
        let r = req
            .header("authorization", format!("Device {}", self.key))
            .send()
            .await
            .map_err(|e| BridgeError::Network(e.to_string()))?;
        Self::check(r).await
    }

    async fn json<T: serde::de::DeserializeOwned>(r: reqwest::Response) -> Result<T, BridgeError> {
        r.json()
            .await
            .map_err(|e| BridgeError::Decode(e.to_string()))
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1/device/{path}", self.base)
    }

    pub async fn schedule(&self) -> Result<Vec<Meeting>, BridgeError> {
        Self::json(self.send(self.http.get(self.url("schedule"))).await?).await
    }

    pub async fn health(&self, report: &serde_json::Value) -> Result<(), BridgeError> {
        self.send(self.http.post(self.url("health")).json(report))
            .await
            .map(|_| ())
    }

    /// A link-check ticket: a token the media port accepts for a minute.
    pub async fn link_check_ticket(&self) -> Result<Ticket, BridgeError> {
        Self::json(self.send(self.http.post(self.url("link-check"))).await?).await
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct Ticket {
    pub token: String,
    pub media: Vec<String>,
    pub ttl_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_bridges_are_recognised() {
        for (url, local) in [
            ("http://127.0.0.1:8080", true),
            ("http://localhost:8080/", true),
            ("http://[::1]:8080", true),
            ("https://cauhop.laocai.gov.vn", false),
            ("http://10.0.0.5", false),
        ] {
            assert_eq!(BridgeClient::new(url, "k").is_local(), local, "{url}");
        }
    }
}
