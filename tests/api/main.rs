//! keygate's integration tests: one binary, so it compiles once. Each test starts the real
//! application (or the real `keygate` binary) on port 0 with its own database: a temp-file
//! SQLite, or a fresh PostgreSQL database when `KEYGATE_TEST_POSTGRES_URL` is set.

// A failed expectation in a test should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod admin;
mod admin_helpers;
mod agents;
mod authorize;
mod binary;
mod cli;
mod client_assertion;
mod clients;
mod cross_org;
mod delegation;
mod device;
mod dpop_cli;
mod dpop_flow;
mod dpop_key;
mod dpop_proxy;
mod federation;
mod fuzz;
mod helpers;
mod jwks;
mod key_scopes;
mod limits;
mod me;
mod metrics;
mod negative;
mod oauth;
mod people;
mod postman;
mod reference;
mod replay_store;
mod resource_server;
mod resources;
mod resources_admin;
mod rotation;
mod security;
mod signin;
