//! HTTPS in the bridge itself (rustls, so `cargo` alone builds it): browsers allow the
//! camera and microphone only on https:// (or localhost), so a district's IT officer
//! should not need a separate proxy to run a bridge. The certificate comes from files
//! or is made on first run ([`certificate`]); port 80 can redirect to it ([`redirect`]).

pub mod acme;
pub mod certificate;
mod listener;
mod redirect;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

pub use certificate::{CertificateError, CertificateInfo, Certificates, Source, fingerprint};
pub use listener::{HANDSHAKE_DEADLINE, MAX_HANDSHAKES, TlsCounters, TlsListener};
pub use redirect::redirect_to_https;

/// Serve `app` over HTTPS on `tcp` with `certs` until `shutdown` completes; ICE-TCP
/// connections on the same port go to `ice_tcp` when given.
pub async fn serve(
    tcp: TcpListener,
    certs: &Arc<Certificates>,
    app: Router,
    ice_tcp: Option<cauhop_sfu::SfuHandle>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let config = certs.server_config().map_err(std::io::Error::other)?;
    let listener = TlsListener::new(tcp, config, ice_tcp)?;
    // `tap_io` only to get the client's address into `ConnectInfo`, as for plain HTTP.
    axum::serve(
        listener.tap_io(|_| {}),
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
