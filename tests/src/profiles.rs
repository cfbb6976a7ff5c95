//! Named link profiles (`tests/link-profiles.toml`) for the emulator.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::emulator::{LinkParams, Schedule};

const PROFILES: &str = include_str!("../link-profiles.toml");

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub name: String,
    pub description: String,
    /// From the peer to the SFU.
    pub up: Schedule,
    /// From the SFU to the peer.
    pub down: Schedule,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    profile: BTreeMap<String, Spec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    #[serde(default)]
    description: String,
    up: Direction,
    down: Direction,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Direction {
    Steps { steps: Vec<Step> },
    Constant(LinkParams),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Step {
    at_s: f64,
    link: LinkParams,
}

impl Direction {
    fn schedule(self, what: &str) -> anyhow::Result<Schedule> {
        match self {
            Direction::Constant(p) => Ok(Schedule::constant(p)),
            Direction::Steps { steps } => {
                anyhow::ensure!(
                    steps.first().is_some_and(|s| s.at_s == 0.0),
                    "{what}: the first step must be at_s = 0"
                );
                anyhow::ensure!(
                    steps.windows(2).all(|w| w[0].at_s < w[1].at_s),
                    "{what}: steps must be in time order"
                );
                Ok(Schedule {
                    steps: steps
                        .into_iter()
                        .map(|s| (Duration::from_secs_f64(s.at_s), s.link))
                        .collect(),
                })
            }
        }
    }
}

/// Parse a profiles file.
pub fn parse(text: &str) -> anyhow::Result<BTreeMap<String, Profile>> {
    let file: File = toml::from_str(text)?;
    file.profile
        .into_iter()
        .map(|(name, spec)| {
            let p = Profile {
                up: spec.up.schedule(&format!("{name}.up"))?,
                down: spec.down.schedule(&format!("{name}.down"))?,
                description: spec.description,
                name: name.clone(),
            };
            Ok((name, p))
        })
        .collect()
}

/// The profile called `name` from `tests/link-profiles.toml`.
pub fn profile(name: &str) -> anyhow::Result<Profile> {
    parse(PROFILES)?
        .remove(name)
        .ok_or_else(|| anyhow::anyhow!("no link profile '{name}' in tests/link-profiles.toml"))
}

/// A 3G cell that goes dark both ways for `length`, `at` after the link starts (20 ms
/// each way otherwise).
pub fn blackout(at: Duration, length: Duration) -> Profile {
    let clear = LinkParams {
        delay_ms: 20,
        ..Default::default()
    };
    let dark = LinkParams {
        blackout: true,
        ..clear
    };
    let s = Schedule {
        steps: vec![(Duration::ZERO, clear), (at, dark), (at + length, clear)],
    };
    Profile {
        name: format!("blackout-{}s", length.as_secs()),
        description: format!("dark for {} s", length.as_secs()),
        up: s.clone(),
        down: s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_issue_profiles_are_there_with_their_figures() {
        let all = parse(PROFILES).expect("profiles parse");
        for name in ["fibre", "adsl", "4g", "3g-commune", "3g-bad", "step"] {
            assert!(all.contains_key(name), "{name} missing");
        }
        let c = &all["3g-commune"];
        let (down, up) = (c.down.at(Duration::ZERO), c.up.at(Duration::ZERO));
        assert_eq!(
            (down.rate_kbps, up.rate_kbps, down.delay_ms),
            (384, 128, 150)
        );
        let loss = down.burst.expect("bursty").mean_loss();
        assert!((0.025..0.035).contains(&loss), "3g-commune loss {loss}");
        let bad = all["3g-bad"].down.at(Duration::ZERO);
        assert_eq!((bad.rate_kbps, bad.delay_ms), (200, 300));
        let l = bad.burst.expect("bursty").mean_loss();
        assert!((0.07..0.09).contains(&l), "3g-bad loss {l}");
        let step = &all["step"].down;
        let rates: Vec<u32> = [0, 10, 20]
            .iter()
            .map(|s| step.at(Duration::from_secs(*s)).rate_kbps)
            .collect();
        assert_eq!(rates, [2000, 300, 2000]);
    }

    #[test]
    fn mistakes_in_a_profile_file_are_named() {
        let err = parse("[profile.x]\nup = { rate_kbps = 1 }\ndown = { rat_kbps = 1 }\n")
            .expect_err("typo");
        assert!(format!("{err:#}").contains("line 3"), "{err:#}");
        let err = parse("[profile.x]\nup = {}\ndown = { steps = [{ at_s = 5, link = {} }] }\n")
            .expect_err("late start");
        assert!(format!("{err:#}").contains("at_s = 0"), "{err:#}");
        assert!(profile("nope").is_err());
    }
}
