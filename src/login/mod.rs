//! Who may log in: the user table and password verification.

mod users;

pub use users::hash_password;

pub use users::{Users, VerifiedUser};
