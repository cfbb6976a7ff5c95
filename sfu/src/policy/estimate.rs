//! What a subscriber's link is taken to carry, and what str0m should probe and pad for:
//! the bandwidth decisions around the allocator, as pure functions of the estimates, the
//! path's state and time, so each tuned number has a test that runs in microseconds.

use std::time::{Duration, Instant};

/// What a subscriber that gives no bandwidth feedback at all (no TWCC, no REMB) is
/// assumed to carry after [`UNMEASURED_AFTER`]: audio and one small picture.
pub const UNMEASURED_BPS: u32 = 300_000;
pub const UNMEASURED_AFTER: Duration = Duration::from_secs(10);

/// While a queue stands on the path, this share of the estimate is given out, so the
/// queue drains: on the step profile (2 Mbit/s to 300 kbit/s) the allocation sat at the
/// estimate and the audio waited 0.4-0.5 s in the full queue for 7 s.
pub const DRAIN_SHARE: (u64, u64) = (85, 100);

/// The share of the estimate given out while a queue stands (what `DRAIN_SHARE` was for
/// the allocation too). With temporal layers the allocation sits much closer to the
/// estimate than whole simulcast layers allowed, and 85 % left the queue standing seconds
/// longer: over ten seeds of the simulated step profile, 70 % gave 88.6 % of the audio on
/// time against 86.3 % (60 %: the same, with more audio-only time on 3G).
pub const QUEUE_DRAIN_SHARE: (u64, u64) = (70, 100);

/// The path as the congestion detector sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Path {
    /// Queueing delay or heavy loss in the feedback: the raw estimate is in force.
    pub congested: bool,
    /// The round trip stands above its floor (a queue, not loss).
    pub queueing: bool,
    /// The subscriber reports losing packets (1 % or more, or RED is on for it).
    pub lossy: bool,
}

/// The estimate the allocator shares out (bit/s). `raw`: str0m's unsmoothed estimate;
/// `smoothed`: its 3 s average (its event). `None`: too early to decide anything.
///
/// On a congested path the lower of the two, because a late downgrade costs everyone on
/// the link; otherwise the average: the raw estimate dips on noise and overshoots after
/// every probe, and following either flaps layers (measured: a 200 kbit/s link left
/// audio-only on each probe's overshoot and flooded). The average also lags a loss
/// burst on a lossy link: it read 187 kbit/s for a second while the raw value and the
/// path said a 3G commune's 384 kbit/s link was fine, and the commune lost its picture.
/// So off congestion a higher raw value may lift it by a quarter, no more (an overshoot
/// cannot buy an upgrade, whose headroom is that quarter).
///
/// Before the first estimate the raw value is only str0m's starting guess: on a 200
/// kbit/s link whose feedback was slow it sent video into a full queue for 8 s
/// (measured). No video until the link has been measured; a client that never gives
/// feedback is assumed at [`UNMEASURED_BPS`] after [`UNMEASURED_AFTER`] connected.
pub fn shared_bps(
    raw: Option<u64>,
    smoothed: Option<u64>,
    path: Path,
    connected_at: Option<Instant>,
    now: Instant,
) -> Option<u32> {
    let bps = match (raw, smoothed) {
        (Some(r), Some(s)) if path.congested => Some(r.min(s)),
        (Some(r), Some(s)) => Some(r.min(s * 5 / 4).max(s)),
        (_, Some(s)) => Some(s),
        (_, None) => None,
    };
    let bps = if path.queueing {
        bps.map(|b| b * QUEUE_DRAIN_SHARE.0 / QUEUE_DRAIN_SHARE.1)
    } else {
        bps
    };
    if let Some(bps) = bps {
        return Some(bps.min(u64::from(u32::MAX)) as u32);
    }
    let since = connected_at?;
    (now.saturating_duration_since(since) >= UNMEASURED_AFTER).then_some(UNMEASURED_BPS)
}

/// How far str0m may probe (bit/s): what the tiles could use plus the upgrade headroom,
/// so an upgrade has an estimate to go on, and no further: a probe far above a 3G link's
/// capacity fills its queue, delays the audio and reads as loss. While the link holds
/// the subscriber on audio only (`resume_bps`: the rate at which video comes back), the
/// only useful probe is to a little above that rate; probing for every tile's top layer
/// let a 384 kbit/s commune's estimate reach 545 kbit/s (bwe.rs, intermittently).
pub fn probe_ceiling_bps(wanted_video_bps: u64, audio_bps: u64, resume_bps: Option<u32>) -> u64 {
    let ceiling = ((wanted_video_bps + audio_bps) * 3 / 2).max(300_000);
    match resume_bps {
        Some(r) => ceiling.min((u64::from(r) * 5 / 4).max(300_000)),
        None => ceiling,
    }
}

/// What str0m keeps media and padding up to (bit/s) while the subscriber's link holds it
/// on audio only: put there by its link, a subscriber's estimate cannot climb back by
/// itself (str0m raises it to at most 1.5 × what it saw delivered, the audio, and on a
/// lossy link its probe controller stays loss-limited and never probes; measured: a 3G
/// commune stuck at 148 kbit/s for 13 s after its link recovered). So media and padding
/// are kept up to the rate at which video resumes, but no higher than 0.85 × the
/// estimate (padding at the estimate kept a 200 kbit/s link's queue full: 3g-bad audio
/// on time fell from 95 % to 87 %), and none while the path shows congestion.
pub fn padding_bps(
    resume_bps: Option<u32>,
    forced_audio_only: bool,
    congested: bool,
    ceiling_bps: u64,
    budget_bps: u32,
) -> u64 {
    match resume_bps {
        Some(r) if forced_audio_only && !congested => u64::from(r)
            .min(ceiling_bps)
            .min(u64::from(budget_bps) * DRAIN_SHARE.0 / DRAIN_SHARE.1),
        _ => 0,
    }
}

/// When the layer the main slot's tile asks for does not fit the estimate yet
/// (`next_total_bps`: everything sent with that layer instead), pad towards it with the
/// upgrade headroom, so the estimate learns whether the link carries it. A clean
/// loopback link sat at 180p for 20 s with the estimate near 500 kbit/s and no padding,
/// because nothing ever sent more than the 180p layer and str0m's estimate grows to at
/// most 1.5 × what it sees delivered. Capped at 0.85 × the estimate like the padding
/// on audio only, and none on a path that shows congestion, a queue or loss: on a 3G
/// commune's lossy link the padding lifted the estimate to 545 kbit/s on a 384 kbit/s
/// link (bwe.rs, measured).
pub fn upgrade_padding_bps(
    next_total_bps: Option<u64>,
    headroom: f64,
    path: Path,
    ceiling_bps: u64,
    budget_bps: u32,
) -> u64 {
    match next_total_bps {
        Some(next) if !path.congested && !path.queueing && !path.lossy => ((next as f64 * headroom)
            as u64)
            .min(ceiling_bps)
            .min(u64::from(budget_bps) * DRAIN_SHARE.0 / DRAIN_SHARE.1),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CALM: Path = Path {
        congested: false,
        queueing: false,
        lossy: false,
    };

    #[test]
    fn nothing_before_the_first_measurement_then_the_unmeasured_guess() {
        let t0 = Instant::now();
        assert_eq!(shared_bps(Some(300_000), None, CALM, None, t0), None);
        assert_eq!(
            shared_bps(None, None, CALM, Some(t0), t0 + Duration::from_secs(9)),
            None
        );
        assert_eq!(
            shared_bps(None, None, CALM, Some(t0), t0 + UNMEASURED_AFTER),
            Some(UNMEASURED_BPS)
        );
    }

    #[test]
    fn the_raw_estimate_lifts_the_average_by_a_quarter_at_most_and_rules_when_congested() {
        let t0 = Instant::now();
        let s = Some(400_000);
        assert_eq!(shared_bps(Some(450_000), s, CALM, None, t0), Some(450_000));
        assert_eq!(shared_bps(Some(900_000), s, CALM, None, t0), Some(500_000));
        assert_eq!(
            shared_bps(Some(200_000), s, CALM, None, t0),
            Some(400_000),
            "a dip is noise"
        );
        let congested = Path {
            congested: true,
            ..CALM
        };
        assert_eq!(
            shared_bps(Some(200_000), s, congested, None, t0),
            Some(200_000)
        );
        let queue = Path {
            congested: true,
            queueing: true,
            ..CALM
        };
        assert_eq!(
            shared_bps(Some(400_000), s, queue, None, t0),
            Some(280_000),
            "0.70 drains a queue"
        );
    }

    #[test]
    fn padding_only_while_forced_to_audio_and_never_into_congestion() {
        assert_eq!(
            padding_bps(Some(250_000), true, false, 1_000_000, 200_000),
            170_000
        );
        assert_eq!(
            padding_bps(Some(150_000), true, false, 1_000_000, 400_000),
            150_000
        );
        assert_eq!(
            padding_bps(Some(250_000), true, true, 1_000_000, 400_000),
            0
        );
        assert_eq!(
            padding_bps(Some(250_000), false, false, 1_000_000, 400_000),
            0
        );
        assert_eq!(padding_bps(None, true, false, 1_000_000, 400_000), 0);
    }

    #[test]
    fn the_probe_ceiling_has_headroom_and_a_floor() {
        assert_eq!(probe_ceiling_bps(0, 40_000, None), 300_000);
        assert_eq!(probe_ceiling_bps(1_200_000, 120_000, None), 1_980_000);
    }

    #[test]
    fn on_audio_only_the_probe_goes_a_little_above_where_video_resumes() {
        assert_eq!(
            probe_ceiling_bps(2_400_000, 120_000, Some(360_000)),
            450_000
        );
        assert_eq!(
            probe_ceiling_bps(2_400_000, 120_000, Some(100_000)),
            300_000,
            "the floor"
        );
        assert_eq!(
            probe_ceiling_bps(100_000, 40_000, Some(360_000)),
            300_000,
            "never above the wish"
        );
    }

    #[test]
    fn upgrade_padding_asks_for_the_next_layer_with_headroom_on_a_calm_path() {
        assert_eq!(
            upgrade_padding_bps(Some(600_000), 1.25, CALM, 2_000_000, 2_000_000),
            750_000
        );
        assert_eq!(
            upgrade_padding_bps(Some(600_000), 1.25, CALM, 700_000, 2_000_000),
            700_000
        );
        assert_eq!(
            upgrade_padding_bps(Some(600_000), 1.25, CALM, 2_000_000, 500_000),
            425_000,
            "0.85 of the estimate: delivered that much, str0m lets it grow by half"
        );
        let q = Path {
            queueing: true,
            ..CALM
        };
        let lossy = Path {
            lossy: true,
            ..CALM
        };
        assert_eq!(
            upgrade_padding_bps(Some(600_000), 1.25, lossy, 2_000_000, 2_000_000),
            0,
            "no probing into a link that loses packets"
        );
        assert_eq!(
            upgrade_padding_bps(Some(600_000), 1.25, q, 2_000_000, 2_000_000),
            0
        );
        assert_eq!(
            upgrade_padding_bps(None, 1.25, CALM, 2_000_000, 2_000_000),
            0
        );
    }
}
