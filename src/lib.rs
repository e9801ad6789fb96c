//! keygate: a self-hosted token authorization server for machine clients and AI agents.
//! The binary in `main.rs` only parses the command line; everything else lives here so
//! integration tests and benchmarks drive the same code.

pub mod clock;
pub mod config;
pub mod ids;
pub mod keys;
pub mod secrets;
pub mod tokens;
pub mod types;
