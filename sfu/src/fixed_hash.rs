//! Maps keyed by what the server assigns (participant ids, room names), with a fixed
//! hasher: their iteration order, and so the order in which sessions are polled and
//! datagrams leave, is the same in every run of the same input. The simulated meeting
//! then gives the same answer twice from a seed (with the random hasher, the weak-link
//! figures of one seed moved from run to run as much as between seeds). Never for keys
//! a remote peer chooses (addresses, ICE ufrags): a fixed hasher would let a sender pick
//! colliding keys.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasherDefault;

pub(crate) type FixedState = BuildHasherDefault<DefaultHasher>;
pub(crate) type FixedMap<K, V> = HashMap<K, V, FixedState>;
pub(crate) type FixedSet<K> = HashSet<K, FixedState>;
