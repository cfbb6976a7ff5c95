use thiserror::Error;

/// What the SFU reports to its caller (signaling). Messages are safe to show a client.
#[derive(Debug, Error)]
pub enum SfuError {
    #[error("SDP could not be used: {0}")]
    BadSdp(String),
    #[error("an answer arrived but no offer was outstanding")]
    NoOfferPending,
    #[error("participant {0} is not connected to the media server")]
    UnknownParticipant(String),
    #[error("participant {0} already joined")]
    AlreadyJoined(String),
    #[error("the media server has stopped")]
    Stopped,
    #[error("could not open the media socket on {addr}: {source}")]
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("no address to advertise for media: set sfu.public_ip or sfu.listen_ips")]
    NoAddress,
    #[error("could not start the media worker threads: {0}")]
    Workers(String),
}
