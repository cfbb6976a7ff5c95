//! A whole bridge (SFU + signaling) on loopback, on ports the OS picks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use cauhop_sfu::{SfuConfig, SfuHandle};
use cauhop_signaling::{AdHoc, AppState};
use tokio::sync::watch;

pub struct Bridge {
    pub http: SocketAddr,
    pub sfu: SfuHandle,
    pub state: Arc<AppState>,
    shutdown: watch::Sender<bool>,
}

impl Bridge {
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(AdHoc::new(None)).await
    }

    pub async fn start_with(admission: AdHoc) -> anyhow::Result<Self> {
        let config = SfuConfig {
            port: 0,
            listen_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            public_ip: None,
        };
        let sfu = cauhop_sfu::start(&config).await?;
        let (shutdown, rx) = watch::channel(false);
        let state = AppState::new(sfu.clone(), Box::new(admission), rx);
        let app = cauhop_signaling::app(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let http = listener.local_addr()?;
        tokio::spawn(async move {
            let _ = axum_serve(listener, app).await;
        });
        Ok(Self {
            http,
            sfu,
            state,
            shutdown,
        })
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.http)
    }

    pub fn media_addr(&self) -> SocketAddr {
        self.sfu.media_addrs()[0]
    }

    /// Tell every session the server is going down (what SIGTERM does in the binary).
    pub fn shutdown(&self) {
        let _ = self.shutdown.send(true);
    }
}

async fn axum_serve(listener: tokio::net::TcpListener, app: axum::Router) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await
}
