//! SFU settings. Each field is documented where an operator reads it (deploy/ and README).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SfuConfig {
    /// UDP port all media uses (one port for every participant).
    pub port: u16,
    /// Local addresses to receive media on. Empty: every IPv4 address of this machine.
    /// One socket per address on the same port, so each packet's destination is known
    /// (ICE needs it) without platform-specific socket options.
    pub listen_ips: Vec<IpAddr>,
    /// Address clients should send media to when it differs from the local one
    /// (1:1 NAT, cloud VMs). Advertised instead of every non-loopback listen address.
    pub public_ip: Option<IpAddr>,
    /// Threads that poll media sessions. 0: one per core this process may run on.
    pub workers: usize,
    /// On a weak link, send a lower frame rate of a picture (VP8 temporal layers, as
    /// Chrome sends them) before a lower resolution. Off only to compare.
    pub temporal_layers: bool,
}

impl Default for SfuConfig {
    fn default() -> Self {
        Self {
            port: 50000,
            listen_ips: Vec::new(),
            public_ip: None,
            workers: 0,
            temporal_layers: true,
        }
    }
}
