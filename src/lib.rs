//! keygate: a self-hosted token authorization server for machine clients and AI agents.
//! The binary in `main.rs` only parses the command line; everything else lives here so
//! integration tests and benchmarks drive the same code.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod dpop_client;
pub mod housekeeping;
pub mod http;
pub mod idempotency;
pub mod identity;
pub mod ids;
pub mod keys;
pub mod limits;
pub mod metrics;
pub mod oauth;
pub mod outbound;
pub mod people;
pub mod registration;
pub mod resources;
pub mod secrets;
pub mod signing_keys;
pub mod startup;
pub mod state;
pub mod storage;
pub mod telemetry;
pub mod tokens;
pub mod types;
pub mod web;
