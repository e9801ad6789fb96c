//! keygate's schema migrations. Landed migrations are never edited: a change is a new one.
//! The server runs them on start (`keygate serve`, `keygate migrate`); this crate's binary
//! runs them on their own (`DATABASE_URL=… cargo run -p migration -- up`).

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_initial;
mod m20261124_000001_org_dpop_policy;
mod m20261124_000002_refresh_and_revocation;
mod m20261130_000001_admin_api;
mod m20261130_000002_cross_org_grants;
mod m20261130_000003_trusted_issuers;
mod m20261201_000016_session_housekeeping;
mod m20261201_000020_api_key_issuer;
mod m20261202_000022_key_pair_clients;
mod m20261202_000040_resources;
mod m20261202_000050_key_resource_scopes;
mod m20261207_000010_browser_sessions;
mod m20261207_000015_login_codes;
mod m20261207_000020_clients;
mod m20261207_000030_authorization_codes;
mod m20261207_000040_device_codes;
mod m20261214_000110_delegation;
mod m20261214_000210_agent_platforms;
mod m20261214_000300_key_limits_and_use;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_initial::Migration),
            Box::new(m20261124_000001_org_dpop_policy::Migration),
            Box::new(m20261124_000002_refresh_and_revocation::Migration),
            Box::new(m20261130_000001_admin_api::Migration),
            Box::new(m20261130_000002_cross_org_grants::Migration),
            Box::new(m20261130_000003_trusted_issuers::Migration),
            Box::new(m20261201_000016_session_housekeeping::Migration),
            Box::new(m20261201_000020_api_key_issuer::Migration),
            Box::new(m20261202_000022_key_pair_clients::Migration),
            Box::new(m20261202_000040_resources::Migration),
            Box::new(m20261202_000050_key_resource_scopes::Migration),
            Box::new(m20261207_000010_browser_sessions::Migration),
            Box::new(m20261207_000015_login_codes::Migration),
            Box::new(m20261207_000020_clients::Migration),
            Box::new(m20261207_000030_authorization_codes::Migration),
            Box::new(m20261207_000040_device_codes::Migration),
            Box::new(m20261214_000110_delegation::Migration),
            Box::new(m20261214_000210_agent_platforms::Migration),
            Box::new(m20261214_000300_key_limits_and_use::Migration),
        ]
    }
}
