//! Starting an SFU under test as a child process: optionally pinned to CPUs, on ports
//! the OS picks.

use std::ffi::OsStr;

use tokio::process::Command;

/// `binary`, or `taskset -c CPUS binary` when `cpus` is given.
pub fn command(binary: impl AsRef<OsStr>, cpus: Option<&str>) -> Command {
    match cpus {
        Some(c) => {
            let mut t = Command::new("taskset");
            t.args(["-c", c]).arg(binary);
            t
        }
        None => Command::new(binary),
    }
}

/// A TCP port free on 127.0.0.1 now.
pub fn free_tcp_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A UDP port free on 127.0.0.1 now.
pub fn free_udp_port() -> anyhow::Result<u16> {
    Ok(std::net::UdpSocket::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
