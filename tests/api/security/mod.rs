//! Tests of the security invariants (docs/security.md)

mod audit_flood;
mod idempotency_race;
mod no_store;
mod signing_rotation;
mod ssrf;
mod throttle;
