//! Tests of the security invariants (docs/security.md)

mod audit_flood;
mod cross_org_dpop;
mod idempotency_race;
mod no_store;
mod replay;
mod roles;
mod signing_rotation;
mod ssrf;
mod throttle;
