//! Rotation at run time: the injectable clock and the background auto-assignment of new periods.

mod clock;

pub use clock::{Clock, ManualClock, SystemClock};
