//! Easel: the backend of a text-to-image product. The binary in `main.rs` is a thin CLI over this library.

pub mod app;
pub mod billing;
pub mod catalog;
pub mod config;
pub mod credits;
pub mod db;
pub mod error;
pub mod export;
pub mod gallery;
pub mod generation;
pub mod http;
pub mod identity;
pub mod inputs;
pub mod mail;
pub mod model3d;
pub mod openapi;
pub mod ops;
pub mod providers;
pub mod server;
pub mod storage;
pub mod telemetry;

pub use config::Config;
pub use error::{ApiError, ErrorCode};
