//! Tests of the security invariants (DESIGN §5.8 / docs/security.md)

mod housekeeping;
mod offboarding;
mod refresh_grace;
