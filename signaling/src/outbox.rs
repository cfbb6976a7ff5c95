//! A connection's outgoing messages: bounded, so a client that stops reading cannot
//! grow the server's memory. When the queue is full the connection is ended (the client
//! is too far behind to follow the meeting anyway; a page reconnects and starts fresh).

use std::sync::Arc;

use cauhop_protocol::ServerMsg;
use tokio::sync::{Notify, mpsc};

/// Messages a connection may have waiting. A 270-site join wave is 270 roster messages
/// to each page; a page on a stalled 3G link falls this far behind only when it is gone.
pub const OUTBOX_CAPACITY: usize = 2048;

#[derive(Clone, Debug)]
pub struct Outbox {
    tx: mpsc::Sender<ServerMsg>,
    end: Arc<Notify>,
}

impl Outbox {
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<ServerMsg>) {
        let (tx, rx) = mpsc::channel(capacity);
        (
            Self {
                tx,
                end: Arc::new(Notify::new()),
            },
            rx,
        )
    }

    /// Queue `msg`; false if the connection is gone or too far behind (then it is told
    /// to end).
    pub fn send(&self, msg: ServerMsg) -> bool {
        match self.tx.try_send(msg) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.end.notify_one();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Ask the connection's session to end (a withdrawn credential, a full queue).
    pub fn end(&self) {
        self.end.notify_one();
    }

    /// Completes when the connection has been asked to end.
    pub async fn ended(&self) {
        self.end.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_queue_refuses_and_asks_the_session_to_end() {
        let (out, mut rx) = Outbox::new(2);
        assert!(out.send(ServerMsg::Pong));
        assert!(out.send(ServerMsg::Pong));
        assert!(!out.send(ServerMsg::Pong), "the third does not fit");
        tokio::time::timeout(Duration::from_secs(1), out.ended())
            .await
            .expect("the session is told to end");
        assert!(rx.recv().await.is_some());
        drop(rx);
        assert!(!out.send(ServerMsg::Pong), "gone");
    }
}
