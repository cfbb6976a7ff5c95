//! The scheduler's runtime: once a second, ask the pure [`Scheduler`] what changed and
//! tell the rooms (state updates, the end-of-meeting warning, the close).

use std::sync::Arc;
use std::time::Duration;

use cauhop_protocol::ServerMsg;
use cauhop_store::Instant;
use cauhop_store::schedule::{Phase, Scheduler};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::AppState;
use crate::admission::{meeting_state, room_of};

/// Run until `shutdown` flips. Errors reading the store are logged and retried next tick.
pub async fn run(state: Arc<AppState>, mut shutdown: watch::Receiver<bool>) {
    let mut scheduler = Scheduler::new(state.schedule);
    let reach = state.schedule.lobby_before_secs + state.schedule.grace_secs + 13 * 3600;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return,
        }
        let now = Instant::now();
        let meetings = match state.store.meeting_times_near(now, reach).await {
            Ok(m) => m,
            Err(e) => {
                warn!("scheduler cannot read meetings: {e}");
                continue;
            }
        };
        for t in scheduler.tick(now, &meetings) {
            let room = room_of(t.meeting);
            info!(meeting = t.meeting, from = ?t.from, to = ?t.to, "meeting phase");
            if t.to == Phase::Closed {
                state.registry.broadcast(
                    &room,
                    None,
                    ServerMsg::MeetingEnded {
                        reason: "ended".into(),
                    },
                );
                continue;
            }
            match state.store.meeting(t.meeting).await {
                Ok(m) => {
                    if let Some(msg) = meeting_state(&m, &state.schedule, now) {
                        state.registry.broadcast(&room, None, msg);
                    }
                }
                Err(e) => warn!(meeting = t.meeting, "cannot load meeting: {e}"),
            }
        }
    }
}
