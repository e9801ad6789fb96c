//! Tests of the security invariants (DESIGN §5.8 / docs/security.md)

mod roles;
