//! Shared HTTP plumbing: the edge middleware every request passes, request ids, extractor configs
//! that speak problem+json, and the fallback for unknown routes and wrong methods.

pub mod edge;
pub mod extract;
pub mod fallback;
pub mod idempotency;
pub mod rate_limit;
pub mod request_id;
pub mod signature;
pub mod spa;
