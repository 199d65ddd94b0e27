//! Who may log in: the user table, password verification and failed-login throttling.

mod admission;
mod throttle;
mod users;

pub use admission::{Busy, HashPool};
pub use throttle::{Limits, Locked, LoginThrottle, Refused, Slot, MAX_TRACKED, SLOT_WAIT};
pub use users::{hash_password, Users, VerifiedUser};
