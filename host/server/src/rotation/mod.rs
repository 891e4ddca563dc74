//! Rotation at run time: the injectable clock and the background auto-assignment of new periods.

mod auto_assign;
mod clock;

pub use auto_assign::{AutoAssigner, RotationSettings, RunReport};
pub use clock::{Clock, ManualClock, SystemClock};
