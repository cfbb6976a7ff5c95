//! Scheduling rules, free of IO: recurrence, phases over `now`, double-booking.

pub mod overlap;
pub mod phase;
pub mod recurrence;

pub use overlap::{Booking, first_conflict};
pub use phase::{MeetingTimes, Occurrence, Phase, ScheduleConfig, Scheduler, Transition};
pub use recurrence::{Rule, Window, occurrences};
