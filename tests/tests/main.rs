//! The one integration-test binary: every test starts the real app on real HTTP and real PostgreSQL.

mod errors;
mod harness;
mod identity;
mod identity_provider;
mod ops;
