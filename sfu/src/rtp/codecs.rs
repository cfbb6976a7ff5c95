//! The codecs the bridge negotiates: Opus (in-band FEC, DTX, RED), VP8 and H.264.
//!
//! DTX matters on 3G: a muted or silent site's browser then sends one packet every
//! 400 ms instead of fifty a second, on an uplink of 128 kbit/s. Browsers switch DTX on
//! in their encoder when the far side's fmtp says `usedtx=1`, so the bridge says it in
//! every offer and answer. str0m's `enable_opus` sets in-band FEC and RED but has no DTX
//! switch, and its payload parameters have no setter for the format; they do round-trip
//! through serde, which is public API, so the Opus entry is edited that way.

use str0m::RtcConfig;
use str0m::format::{Codec, CodecConfig, PayloadParams};

/// `config` with Opus (FEC, DTX, and RED when `red`), VP8 and H.264, and nothing else.
pub(crate) fn with_codecs(config: RtcConfig, red: bool) -> RtcConfig {
    let mut config = config
        .clear_codecs()
        .enable_opus(true, red)
        .enable_vp8(true)
        .enable_h264(true);
    let params: Vec<PayloadParams> = config
        .codec_config()
        .params()
        .iter()
        .map(|p| {
            if p.spec().codec == Codec::Opus {
                with_dtx(p).unwrap_or(*p)
            } else {
                *p
            }
        })
        .collect();
    *config.codec_config() = CodecConfig::new_from_payload_params(params);
    config
}

fn with_dtx(p: &PayloadParams) -> Option<PayloadParams> {
    let mut v = serde_json::to_value(p).ok()?;
    *v.pointer_mut("/spec/format/use_dtx")? = serde_json::Value::Bool(true);
    serde_json::from_value(v).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use str0m::media::{Direction, MediaKind};
    use str0m::{Rtc, RtcConfig};

    use super::*;

    fn opus_fmtp(sdp: &str) -> String {
        sdp.lines()
            .find(|l| l.starts_with("a=fmtp:") && l.contains("useinbandfec"))
            .unwrap_or_default()
            .to_string()
    }

    #[test]
    fn opus_keeps_fec_and_red_and_gains_dtx() {
        let mut c = with_codecs(RtcConfig::new(), true);
        let opus: Vec<_> = c
            .codec_config()
            .params()
            .iter()
            .filter(|p| p.spec().codec == Codec::Opus)
            .copied()
            .collect();
        assert_eq!(opus.len(), 1);
        let f = opus[0].spec().format;
        assert_eq!(f.use_dtx, Some(true));
        assert_eq!(f.use_inband_fec, Some(true));
        assert!(opus[0].red().is_some(), "RED kept");
        assert!(
            c.codec_config()
                .params()
                .iter()
                .any(|p| p.spec().codec == Codec::Vp8)
        );
    }

    /// What a browser sees: the bridge's answer to an offer without DTX, and the bridge's
    /// own offer, both ask for `usedtx=1` (and keep FEC and RED).
    #[test]
    fn offers_and_answers_ask_for_dtx() {
        let now = Instant::now();
        // A browser offers RED (Chrome does), FEC, and no DTX.
        let mut browser = RtcConfig::new()
            .clear_codecs()
            .enable_opus(true, true)
            .build(now);
        let mut change = browser.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendRecv, None, None, None);
        let (offer, _pending) = change.apply().expect("an offer");
        assert!(!opus_fmtp(&offer.to_sdp_string()).contains("usedtx"));

        let mut bridge = with_codecs(RtcConfig::new(), true).build(now);
        let answer = bridge
            .sdp_api()
            .accept_offer(offer)
            .expect("bridge answers");
        let answer = answer.to_sdp_string();
        let fmtp = opus_fmtp(&answer);
        assert!(fmtp.contains("usedtx=1"), "answer: {fmtp}");
        assert!(fmtp.contains("useinbandfec=1"), "answer: {fmtp}");
        assert!(answer.contains("red/48000"), "RED offered back");

        let mut bridge: Rtc = with_codecs(RtcConfig::new(), true).build(now);
        let mut change = bridge.sdp_api();
        change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let (offer, _) = change.apply().expect("an offer");
        assert!(opus_fmtp(&offer.to_sdp_string()).contains("usedtx=1"));
    }
}
