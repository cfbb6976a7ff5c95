//! Which simulcast layers a publisher should send: the ones some subscriber receives or
//! is switching to, and always the lowest (every thumbnail uses it, and it keeps the
//! publisher ready for the main slot). A layer is paused only after nobody has used it
//! for [`PAUSE_AFTER`], so a subscriber's brief dip does not stop and restart the
//! encoder; it resumes the moment someone wants it (the switch then happens on the
//! layer's first keyframe). Pure: time is passed in.

use std::time::{Duration, Instant};

/// How long a layer must be unused before the publisher is told to stop it.
pub const PAUSE_AFTER: Duration = Duration::from_secs(3);

/// One publisher track's layers, as last told to the publisher.
#[derive(Debug, Clone)]
pub struct LayerPause<R> {
    /// Per layer: when a subscriber last used it.
    used: Vec<(R, Instant)>,
    /// What the publisher was last told to send; `None`: nothing told yet (it sends all).
    told: Option<Vec<R>>,
    /// The first look: a layer never used counts as used then.
    since: Option<Instant>,
}

impl<R> Default for LayerPause<R> {
    fn default() -> Self {
        Self {
            used: Vec::new(),
            told: None,
            since: None,
        }
    }
}

impl<R: Copy + Eq + Ord> LayerPause<R> {
    /// `layers`: every layer the track has, ascending (the first is the lowest);
    /// `in_use`: the ones a subscriber receives or waits for now. Returns the layers to
    /// send when that changed.
    pub fn update(&mut self, now: Instant, layers: &[R], in_use: &[R]) -> Option<Vec<R>> {
        for r in in_use {
            match self.used.iter_mut().find(|(x, _)| x == r) {
                Some(e) => e.1 = now,
                None => self.used.push((*r, now)),
            }
        }
        let since = *self.since.get_or_insert(now);
        let mut active: Vec<R> = layers
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                let last = self
                    .used
                    .iter()
                    .find(|(x, _)| x == *r)
                    .map_or(since, |(_, at)| *at);
                *i == 0 || now.saturating_duration_since(last) < PAUSE_AFTER
            })
            .map(|(_, r)| *r)
            .collect();
        active.sort_unstable();
        if self.told.as_ref() == Some(&active) {
            return None;
        }
        if self.told.is_none() && active.len() == layers.len() {
            // Everything is on, as the publisher started: nothing to say.
            return None;
        }
        self.told = Some(active.clone());
        Some(active)
    }

    /// Whether `layer` is paused by us (so the allocator may still choose it: it
    /// resumes on demand).
    pub fn paused(&self, layer: R) -> bool {
        self.told.as_ref().is_some_and(|t| !t.contains(&layer))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unused_top_layers_pause_after_a_while_and_resume_at_once() {
        let t0 = Instant::now();
        let layers = [0u8, 1, 2];
        let mut p = LayerPause::default();
        assert_eq!(
            p.update(t0, &layers, &[0, 1, 2]),
            None,
            "it starts with all on"
        );
        assert_eq!(p.update(t0 + Duration::from_secs(2), &layers, &[0]), None);
        assert_eq!(p.update(t0 + PAUSE_AFTER, &layers, &[0]), Some(vec![0]));
        assert!(p.paused(2) && p.paused(1) && !p.paused(0));
        assert_eq!(
            p.update(t0 + PAUSE_AFTER * 2, &layers, &[0]),
            None,
            "said once"
        );
        // A subscriber asks for the top layer: it comes back now.
        assert_eq!(
            p.update(t0 + PAUSE_AFTER * 3, &layers, &[2]),
            Some(vec![0, 2])
        );
    }

    #[test]
    fn layers_never_used_pause_once_the_track_has_been_seen_that_long() {
        let t0 = Instant::now();
        let layers = [0u8, 1, 2];
        let mut p = LayerPause::default();
        assert_eq!(p.update(t0, &layers, &[]), None);
        assert_eq!(p.update(t0 + Duration::from_secs(2), &layers, &[0]), None);
        assert_eq!(p.update(t0 + PAUSE_AFTER, &layers, &[0]), Some(vec![0]));
    }
}
