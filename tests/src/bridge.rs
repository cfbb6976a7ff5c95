//! A whole bridge (SFU + signaling) on loopback, on ports the OS picks.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use cauhop_sfu::{SfuConfig, SfuHandle};
use cauhop_signaling::{AppState, Options};
use cauhop_store::Store;
use tokio::sync::watch;

pub struct Bridge {
    pub http: SocketAddr,
    pub sfu: SfuHandle,
    pub state: Arc<AppState>,
    pub store: Store,
    shutdown: watch::Sender<bool>,
    _dir: Option<tempfile::TempDir>,
}

impl Bridge {
    /// A bridge with ad-hoc rooms (any id) and a fresh SQLite store: the media tests.
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(Options {
            ad_hoc: Some(None),
            ..Options::default()
        })
        .await
    }

    /// A bridge with these options and a fresh SQLite store in a temporary directory.
    pub async fn start_with(options: Options) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("cauhop.db");
        let store = Store::open(path.to_str().unwrap_or("cauhop.db")).await?;
        Self::start_on(store, options, Some(dir)).await
    }

    /// A bridge over an existing store (e.g. PostgreSQL), with the scheduler running.
    pub async fn start_on(
        store: Store,
        options: Options,
        dir: Option<tempfile::TempDir>,
    ) -> anyhow::Result<Self> {
        let config = SfuConfig {
            port: 0,
            listen_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            public_ip: None,
        };
        let sfu = cauhop_sfu::start(&config).await?;
        let (shutdown, rx) = watch::channel(false);
        let state = AppState::new(sfu.clone(), store.clone(), options, rx.clone()).await?;
        tokio::spawn(cauhop_signaling::scheduler::run(state.clone(), rx));
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
            store,
            shutdown,
            _dir: dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
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
