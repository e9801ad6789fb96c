//! Tests of the security invariants (DESIGN §5.8 / docs/security.md)

mod audit_flood;
mod idempotency_race;
mod no_store;
mod throttle;
