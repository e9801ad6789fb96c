//! Tests of the security invariants (docs/security.md)

mod audit_flood;
mod caches;
mod commit_recheck;
mod cross_org_dpop;
mod group_commit;
mod housekeeping;
mod idempotency_race;
mod no_store;
mod offboarding;
mod promotion;
mod refresh_grace;
mod replay;
mod roles;
mod signing_rotation;
mod ssrf;
mod throttle;
