//! Who may log in: the user table, password verification, failed-login throttling and the
//! limits on logins in flight.

mod admission;
mod inflight;
mod throttle;
mod users;

pub use admission::{Busy, HashPool};
pub use inflight::{ConnLogins, LoginPermit, TooManyInFlight, MAX_PER_ADDRESS, MAX_PER_CONNECTION};
pub use throttle::{Limits, Locked, LoginThrottle, Refused, Slot, MAX_TRACKED, SLOT_WAIT};
pub use users::{hash_password, Users, VerifiedUser};
