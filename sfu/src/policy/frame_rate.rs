//! How fast a picture may run on a path that loses packets over a long round trip.
//!
//! A lost packet is repaired by a resend (NACK, then RTX) about one round trip after
//! the receiver notices the gap; the frame waits, and so does every frame that refers
//! to it. A browser counts a freeze when the gap between two shown frames exceeds
//! max(3 × the mean frame interval, the mean + 150 ms) (`freezeCount`). With a repair
//! delay D and a frame interval I the gap is about I + D, so a repair is no freeze
//! while D ≤ max(2I, 150 ms). On a 3G commune's 370 ms round trip every repair at 15
//! or 30 fps was a freeze (22 a minute in the weak-link simulation); at 3.75 fps, none
//! is. So on such a path the subscriber is offered only the steps whose frames come
//! slowly enough to be repaired in time: its video slows down instead of freezing. A
//! path that does not lose packets, or whose round trip is short, is not limited.
//! Pure: figures in, figures out.

use std::time::Duration;

use super::allocator::Layer;

/// What a repair takes beyond one round trip: noticing the gap (the next packet) and
/// the jitter of both ways.
pub const REPAIR_MARGIN: Duration = Duration::from_millis(60);

/// A repair this quick is no freeze at any frame rate (the 150 ms of the browser's rule).
const ALWAYS_IN_TIME: Duration = Duration::from_millis(150);

/// A round trip this long is a mobile or satellite path, where loss comes and goes: it
/// is limited before its first loss, or the first burst switched the subscriber down a
/// resolution (a keyframe) right after the allocator had switched it up.
pub const LONG_RTT: Duration = Duration::from_millis(250);

/// The shortest frame interval (ms) at which a repair on this path arrives in time;
/// `None`: no limit (the path neither loses packets nor has a long round trip, or its
/// round trip is not known yet).
pub fn min_frame_ms(rtt: Option<Duration>, lossy: bool) -> Option<u16> {
    let rtt = rtt?;
    if !lossy && rtt < LONG_RTT {
        return None;
    }
    let repair = rtt + REPAIR_MARGIN;
    if repair <= ALWAYS_IN_TIME {
        return None;
    }
    Some((repair.as_millis() / 2).min(u128::from(u16::MAX)) as u16)
}

/// How long a limit outlives the last sign of it: the loss that makes a path "lossy"
/// comes in bursts, and a limit that came and went with them switched the subscriber
/// between resolutions (a keyframe each time) every few seconds.
pub const HOLD: Duration = Duration::from_secs(10);

/// A subscriber's limit over time: the strictest seen within [`HOLD`].
#[derive(Debug, Default, Clone)]
pub struct RepairLimit {
    held: Option<(u16, std::time::Instant)>,
}

impl RepairLimit {
    /// This moment's limit (`min_frame_ms`) in; the one to apply out.
    pub fn update(&mut self, now: std::time::Instant, min: Option<u16>) -> Option<u16> {
        match (min, self.held) {
            (Some(m), Some((h, _))) if m >= h => self.held = Some((m, now)),
            (Some(m), Some((h, at))) if now.saturating_duration_since(at) < HOLD => {
                self.held = Some((h.max(m), at));
            }
            (Some(m), _) => self.held = Some((m, now)),
            (None, Some((_, at))) if now.saturating_duration_since(at) >= HOLD => {
                self.held = None;
            }
            (None, _) => {}
        }
        self.held.map(|h| h.0)
    }
}

/// Keep the steps whose frames come at least `min_ms` apart (or whose rate is not known),
/// and always the first: the lowest picture is still worth more than none.
pub fn keep_repairable<T>(steps: &mut Vec<T>, layer: impl Fn(&T) -> &Layer, min_ms: u16) {
    let mut first = true;
    steps.retain(|x| {
        let l = layer(x);
        let keep = first || l.frame_ms == 0 || l.frame_ms >= min_ms;
        first = false;
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chrome's ladder as the SFU measures it: 180p at 15 fps, 360p and 720p at 30, each
    /// in three temporal layers (a quarter, half and all of the frames).
    fn ladder() -> Vec<Layer> {
        [
            (180u16, 150_000u32, 15u32),
            (360, 500_000, 30),
            (720, 1_200_000, 30),
        ]
        .iter()
        .flat_map(|&(height, bps, fps)| {
            [(0u8, 0.4, 4u32), (1, 0.6, 2), (2, 1.0, 1)].map(|(t, share, every)| Layer {
                height,
                bps: (f64::from(bps) * share) as u32,
                temporal: Some(t),
                frame_ms: (1000 * every / fps) as u16,
            })
        })
        .collect()
    }

    #[test]
    fn a_clean_or_near_path_is_not_limited() {
        let ms = Duration::from_millis;
        assert_eq!(min_frame_ms(Some(ms(200)), false), None, "no loss");
        assert_eq!(
            min_frame_ms(Some(ms(400)), false),
            Some(230),
            "3G: before its loss"
        );
        assert_eq!(
            min_frame_ms(Some(ms(80)), true),
            None,
            "4G: repaired in time"
        );
        assert_eq!(min_frame_ms(None, true), None, "round trip not known yet");
    }

    #[test]
    fn a_lossy_3g_commune_gets_the_slow_steps_only() {
        let min = min_frame_ms(Some(Duration::from_millis(370)), true).expect("limited");
        assert_eq!(min, 215);
        let mut steps = ladder();
        keep_repairable(&mut steps, |l| l, min);
        // 180p at 3.75 fps (267 ms apart) only: 7.5 fps (133 ms) would freeze on
        // every repair.
        assert_eq!(steps.len(), 1);
        assert_eq!((steps[0].height, steps[0].temporal), (180, Some(0)));
        // A 200 ms round trip repairs in 130 ms steps: 7.5 fps at every resolution.
        let min = min_frame_ms(Some(Duration::from_millis(200)), true).expect("limited");
        let mut steps = ladder();
        keep_repairable(&mut steps, |l| l, min);
        let kept: Vec<(u16, Option<u8>)> = steps.iter().map(|l| (l.height, l.temporal)).collect();
        assert_eq!(
            kept,
            [
                (180, Some(0)),
                (180, Some(1)),
                (360, Some(0)),
                (720, Some(0))
            ]
        );
    }

    #[test]
    fn a_limit_holds_through_the_gaps_between_loss_bursts() {
        let t0 = std::time::Instant::now();
        let s = Duration::from_secs;
        let mut r = RepairLimit::default();
        assert_eq!(r.update(t0, None), None);
        assert_eq!(r.update(t0, Some(200)), Some(200));
        assert_eq!(r.update(t0 + s(3), None), Some(200), "a clean moment");
        assert_eq!(
            r.update(t0 + s(4), Some(150)),
            Some(200),
            "the stricter holds"
        );
        assert_eq!(r.update(t0 + s(9), Some(220)), Some(220));
        assert_eq!(r.update(t0 + s(18), None), Some(220));
        assert_eq!(r.update(t0 + s(19), None), None, "ten clean seconds");
    }

    #[test]
    fn the_lowest_step_stays_and_unknown_rates_are_kept() {
        let mut steps = ladder();
        keep_repairable(&mut steps, |l| l, u16::MAX);
        assert_eq!(steps.len(), 1, "always a picture");
        let mut steps = ladder();
        for l in &mut steps {
            l.frame_ms = 0;
        }
        keep_repairable(&mut steps, |l| l, 300);
        assert_eq!(steps.len(), 9);
    }
}
