//! Tests of the security invariants (DESIGN §5.8 / docs/security.md)

mod cross_org_dpop;
mod replay;
