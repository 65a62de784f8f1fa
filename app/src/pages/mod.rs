//! One module per route.

pub mod admin;
pub mod history;
pub mod home;
pub mod test_credits;
