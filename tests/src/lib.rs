//! Test harness for whole-bridge tests: a bridge on loopback, real WebRTC peers (the
//! `webrtc` crate, an independent stack from the SFU's str0m), and a user-space link
//! emulator between a peer and the SFU.

pub mod api;
pub mod bridge;
pub mod emulator;
pub mod fixture;
pub mod gst_peer;
pub mod link;
pub mod peer;
pub mod profiles;
pub mod reception;
pub mod signal;
pub mod sim_peer;
pub mod tls_front;
pub mod weak_sim;
pub mod webm_frames;

/// The VP8 framing of every simulated publisher (the SFU's own, so there is one copy).
pub use cauhop_sfu::vp8_shape;

/// The value after `name` in a test program's arguments (`--ws URL`).
pub fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Wait until `cond` holds, polling every 50 ms; `Err` with `what` after `timeout`.
pub async fn wait_for(
    what: &str,
    timeout: std::time::Duration,
    mut cond: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let start = std::time::Instant::now();
    while !cond() {
        if start.elapsed() > timeout {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    Ok(())
}

pub fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,cauhop_sfu=info".into()),
        )
        .with_test_writer()
        .try_init();
}
