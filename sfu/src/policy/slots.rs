//! Which source each of a subscriber's slots carries. A subscriber has a fixed number of
//! audio and video slots (one m-line each, negotiated once); this module decides what is
//! in them, as a pure function of the room and the previous choice, so the SDP never
//! grows with the meeting and a site joining renegotiates nobody.
//!
//! - **Main video slot**: a shared screen, else the user's own pin, else the site
//!   holding the floor, else the active speaker, else the chair, else the most recent
//!   speaker; never the subscriber itself (the active speaker sees the previous one).
//! - **Thumbnails**: the sharer's camera, the pinned, floor, speaker and chair when the
//!   main slot does not show them, then the most recent speakers, then the rest in join
//!   order. A source keeps its thumbnail position while it stays chosen, so tiles do
//!   not shuffle when the speaker changes.
//! - **Audio**: the floor holder (else the chair) always has a slot, so three loud
//!   communes cannot cut the chair off; the rest go to the audible voices, loudest
//!   first. A voice keeps its slot while it stays audible.
//!
//! Hysteresis comes from the inputs: the speaker detector switches only after a clear
//! margin held for a while, and voices stay audible through pauses.

/// The room as one subscriber's slots see it. `K` names a participant, `S` a video
/// source (a participant's camera or screen).
#[derive(Debug, Clone)]
pub struct SlotInputs<'a, K, S> {
    pub me: K,
    /// The user's pin, from its page.
    pub pinned: Option<K>,
    pub floor: Option<K>,
    pub speaker: Option<K>,
    pub chair: Option<K>,
    /// Participants by how recently they were the active speaker, most recent first.
    pub recent: &'a [K],
    /// Every participant with a camera, in join order, and its source.
    pub cameras: &'a [(K, S)],
    /// A shared screen: who shares it, and the source. The latest share wins.
    pub screen: Option<(K, S)>,
    /// Audible voices, loudest first, then the voices whose level cannot be known (no
    /// RFC 6464 header: webrtc-rs, some room systems), which are never taken for silent.
    pub audible: &'a [K],
    /// Participants that publish audio.
    pub voices: &'a [K],
}

fn camera_of<K: Copy + Eq, S: Copy>(cameras: &[(K, S)], who: K) -> Option<S> {
    cameras.iter().find(|(k, _)| *k == who).map(|(_, s)| *s)
}

/// The main slot's source.
pub fn main_source<K: Copy + Eq, S: Copy + Eq>(i: &SlotInputs<'_, K, S>) -> Option<S> {
    if let Some((who, s)) = i.screen
        && who != i.me
    {
        return Some(s);
    }
    // Nobody spoke yet and no chair: the first camera, so the main tile is not empty.
    [i.pinned, i.floor, i.speaker, i.chair]
        .into_iter()
        .flatten()
        .chain(i.recent.iter().copied())
        .chain(i.cameras.iter().map(|(k, _)| *k))
        .filter(|k| *k != i.me)
        .find_map(|k| camera_of(i.cameras, k))
}

/// Fill `current` (the thumbnails as they are, one entry per slot the page shows) with
/// the thumbnails for now, keeping each source that stays chosen where it is.
pub fn thumbnails<K: Copy + Eq, S: Copy + Eq>(
    i: &SlotInputs<'_, K, S>,
    main: Option<S>,
    current: &mut [Option<S>],
) {
    let n = current.len();
    let mut chosen: Vec<S> = Vec::with_capacity(n);
    let screen_sharer = i.screen.map(|(k, _)| k);
    let ranked = screen_sharer
        .into_iter()
        .chain(
            [i.pinned, i.floor, i.speaker, i.chair]
                .into_iter()
                .flatten(),
        )
        .chain(i.recent.iter().copied())
        .chain(i.cameras.iter().map(|(k, _)| *k));
    for k in ranked {
        if chosen.len() == n {
            break;
        }
        if k == i.me {
            continue;
        }
        let Some(s) = camera_of(i.cameras, k) else {
            continue;
        };
        if Some(s) == main || chosen.contains(&s) {
            continue;
        }
        chosen.push(s);
    }
    place(current, &chosen);
}

/// Fill `current` (one entry per audio slot) with the voices for now.
pub fn audio<K: Copy + Eq, S>(i: &SlotInputs<'_, K, S>, current: &mut [Option<K>]) {
    let n = current.len();
    let mut chosen: Vec<K> = Vec::with_capacity(n);
    let reserved = i.floor.or(i.chair).filter(|k| i.voices.contains(k));
    for k in reserved.into_iter().chain(i.audible.iter().copied()) {
        if chosen.len() == n {
            break;
        }
        if k != i.me && !chosen.contains(&k) {
            chosen.push(k);
        }
    }
    place(current, &chosen);
}

/// Put `chosen` into `slots`: what is already in a slot stays there, the newcomers take
/// the free slots in order, the rest are emptied.
fn place<T: Copy + Eq>(slots: &mut [Option<T>], chosen: &[T]) {
    for s in slots.iter_mut() {
        if s.is_some_and(|x| !chosen.contains(&x)) {
            *s = None;
        }
    }
    for c in chosen {
        if slots.contains(&Some(*c)) {
            continue;
        }
        if let Some(free) = slots.iter_mut().find(|s| s.is_none()) {
            *free = Some(*c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Participants are numbers; a camera source is the participant times ten, a screen
    // source the participant times ten plus one.
    fn inputs<'a>(
        me: u32,
        cameras: &'a [(u32, u32)],
        recent: &'a [u32],
    ) -> SlotInputs<'a, u32, u32> {
        SlotInputs {
            me,
            pinned: None,
            floor: None,
            speaker: None,
            chair: None,
            recent,
            cameras,
            screen: None,
            audible: &[],
            voices: &[],
        }
    }

    fn cams(n: u32) -> Vec<(u32, u32)> {
        (1..=n).map(|k| (k, k * 10)).collect()
    }

    #[test]
    fn the_main_slot_follows_floor_then_speaker_then_chair_and_never_shows_me() {
        let c = cams(5);
        let mut i = inputs(3, &c, &[]);
        assert_eq!(
            main_source(&i),
            Some(10),
            "nobody spoke, no chair: the first camera"
        );
        i.chair = Some(2);
        assert_eq!(main_source(&i), Some(20));
        i.chair = Some(1);
        assert_eq!(main_source(&i), Some(10));
        i.speaker = Some(4);
        assert_eq!(main_source(&i), Some(40));
        i.floor = Some(2);
        assert_eq!(
            main_source(&i),
            Some(20),
            "the floor holder outranks the speaker"
        );
        i.pinned = Some(5);
        assert_eq!(
            main_source(&i),
            Some(50),
            "my pin outranks everything but a screen"
        );
        i.screen = Some((4, 41));
        assert_eq!(
            main_source(&i),
            Some(41),
            "a shared screen takes the main slot"
        );
        // The speaker is me: I see the floor holder, or the chair.
        let mut i = inputs(4, &c, &[4, 2]);
        i.speaker = Some(4);
        i.chair = Some(1);
        assert_eq!(main_source(&i), Some(10));
        i.chair = None;
        assert_eq!(main_source(&i), Some(20), "else the previous speaker");
    }

    #[test]
    fn my_own_screen_is_not_my_main_slot() {
        let c = cams(3);
        let mut i = inputs(2, &c, &[]);
        i.screen = Some((2, 21));
        i.chair = Some(1);
        assert_eq!(main_source(&i), Some(10));
    }

    #[test]
    fn thumbnails_rank_the_sharer_the_chair_and_recent_speakers_and_stay_in_place() {
        let c = cams(10);
        let recent = [7, 8];
        let mut i = inputs(1, &c, &recent);
        i.chair = Some(2);
        i.speaker = Some(7);
        let main = main_source(&i);
        assert_eq!(main, Some(70));
        let mut t = vec![None; 3];
        thumbnails(&i, main, &mut t);
        assert_eq!(
            t,
            [Some(20), Some(80), Some(30)],
            "chair, then recent, then join order"
        );
        // Speaker 8 takes the floor of attention: 7 drops to a thumbnail, and the
        // thumbnails already there keep their places.
        let recent = [8, 7];
        let mut i2 = inputs(1, &c, &recent);
        i2.chair = Some(2);
        i2.speaker = Some(8);
        let main = main_source(&i2);
        assert_eq!(main, Some(80));
        thumbnails(&i2, main, &mut t);
        assert_eq!(
            t,
            [Some(20), Some(70), Some(30)],
            "8 went to the main slot, 7 took its thumbnail, the others did not move"
        );
    }

    #[test]
    fn audio_slots_keep_the_floor_or_the_chair_and_the_loudest_others() {
        let c = cams(6);
        let voices = [1, 2, 3, 4, 5, 6];
        let audible = [4, 5, 6];
        let mut i = inputs(3, &c, &[]);
        i.voices = &voices;
        i.audible = &audible;
        i.chair = Some(1);
        let mut a = vec![None; 3];
        audio(&i, &mut a);
        assert_eq!(a, [Some(1), Some(4), Some(5)], "the chair is always heard");
        i.floor = Some(2);
        audio(&i, &mut a);
        assert!(a.contains(&Some(2)) && a.contains(&Some(4)) && a.contains(&Some(5)));
        assert_eq!(a[1], Some(4), "a voice that stays keeps its slot");
        // I am never sent my own voice.
        let audible = [3, 4];
        i.audible = &audible;
        audio(&i, &mut a);
        assert!(!a.contains(&Some(3)));
    }

    proptest! {
        /// Whatever the room, a slot never carries the subscriber itself, no source is in
        /// two slots, and a source that stays chosen keeps its position.
        #[test]
        fn slots_are_distinct_stable_and_never_me(
            n in 1u32..40,
            me in 1u32..40,
            speakers in proptest::collection::vec(1u32..40, 0..30),
            slots in 1usize..7,
        ) {
            let c = cams(n);
            let mut thumbs = vec![None; slots];
            let mut recent: Vec<u32> = Vec::new();
            for sp in speakers {
                recent.retain(|k| *k != sp);
                recent.insert(0, sp);
                let mut i = inputs(me, &c, &recent);
                i.speaker = Some(sp);
                i.chair = Some(1);
                let main = main_source(&i);
                let before = thumbs.clone();
                thumbnails(&i, main, &mut thumbs);
                prop_assert!(main != Some(me * 10));
                prop_assert!(!thumbs.contains(&Some(me * 10)));
                let filled: Vec<u32> = thumbs.iter().flatten().copied().collect();
                let mut dedup = filled.clone();
                dedup.sort_unstable();
                dedup.dedup();
                prop_assert_eq!(filled.len(), dedup.len());
                prop_assert!(main.is_none_or(|m| !filled.contains(&m)));
                for (b, a) in before.iter().zip(&thumbs) {
                    if let Some(b) = b && filled.contains(b) {
                        prop_assert_eq!(Some(*b), *a, "a kept thumbnail moved");
                    }
                }
            }
        }
    }
}
