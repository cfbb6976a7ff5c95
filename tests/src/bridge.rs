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
    options: Options,
    server: tokio::task::JoinHandle<()>,
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
        let http: SocketAddr = "127.0.0.1:0".parse()?;
        Self::start_at(store, options, dir, http, 0).await
    }

    async fn start_at(
        store: Store,
        options: Options,
        dir: Option<tempfile::TempDir>,
        http: SocketAddr,
        media_port: u16,
    ) -> anyhow::Result<Self> {
        let config = SfuConfig {
            port: media_port,
            listen_ips: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            public_ip: None,
            // Two, so every real-peer test also runs the sessions on worker threads.
            workers: 2,
            // A benchmark compares with temporal layer selection off.
            temporal_layers: std::env::var("CAUHOP_TEMPORAL_LAYERS").map_or(true, |v| v != "0"),
        };
        let sfu = cauhop_sfu::start(&config).await?;
        let (shutdown, rx) = watch::channel(false);
        let state = AppState::new(sfu.clone(), store.clone(), options.clone(), rx.clone()).await?;
        tokio::spawn(cauhop_signaling::scheduler::run(state.clone(), rx));
        tokio::spawn(cauhop_signaling::link_history::run(state.clone()));
        tokio::spawn(cauhop_signaling::webhooks::run(state.clone()));
        let app = cauhop_signaling::app(state.clone());
        let listener = tokio::net::TcpListener::bind(http).await?;
        let http = listener.local_addr()?;
        let server = tokio::spawn(async move {
            let _ = axum_serve(listener, app).await;
        });
        Ok(Self {
            http,
            sfu,
            state,
            store,
            shutdown,
            options,
            server,
            _dir: dir,
        })
    }

    /// Stop everything (sessions are told, sockets closed), stay down for `down`, and
    /// start again on the same HTTP address, media port and store: a bridge restart.
    pub async fn restart(&mut self, down: std::time::Duration) -> anyhow::Result<()> {
        self.shutdown();
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        self.server.abort();
        self.sfu.stop().await;
        tokio::time::sleep(down).await;
        let next = Self::start_at(
            self.store.clone(),
            self.options.clone(),
            self._dir.take(),
            self.http,
            self.media_addr().port(),
        )
        .await?;
        *self = next;
        Ok(())
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
