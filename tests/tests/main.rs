//! The one integration-test binary: every test starts the real app on real HTTP and real PostgreSQL.
#![expect(
    clippy::expect_used,
    reason = "test helpers: a failed setup step should fail the test at once"
)]

mod admin;
mod billing;
mod credits;
mod deletion;
mod downloads;
mod errors;
mod export;
mod gallery;
mod generations;
mod harness;
mod identity;
mod identity_provider;
mod inputs;
mod ops;
mod providers;
mod spa;
mod storage;
mod two_factor;
mod webhooks;
