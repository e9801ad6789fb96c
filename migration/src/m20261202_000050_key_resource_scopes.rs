//! Which scopes of the organization's protected resources (RFC 8707) an API key may use:
//! `api_keys.resource_scopes`. NULL: the key was created without a `scopes` list and may
//! use every scope of the organization's resources; otherwise the space-separated resource
//! scopes its list named (empty: none). `api_keys.scopes` keeps keygate's own scopes only.
//!
//! Existing keys: until now a key holding all six of keygate's original administrative
//! scopes (what a key created without a list held) could use every resource scope, and a
//! narrower key none. Those keys stay NULL and keep that power; every other key gets an
//! empty list, so no existing key gains or loses anything (a key whose list explicitly
//! named all six cannot be told apart from one created without a list: it is treated as
//! one, as before).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    ResourceScopes,
}

/// keygate's administrative scopes before protected resources existed.
const FULL: &[&str] = &[
    "keys:read",
    "keys:write",
    "users:read",
    "users:write",
    "sessions:write",
    "audit:read",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(ColumnDef::new(ApiKeys::ResourceScopes).text().null())
                    .to_owned(),
            )
            .await?;
        // `scopes` is space-separated; padding it makes each match a whole name.
        // `||` concatenates on both SQLite and PostgreSQL.
        let holds_all = FULL
            .iter()
            .map(|s| format!("(' ' || scopes || ' ') LIKE '% {s} %'"))
            .collect::<Vec<_>>()
            .join(" AND ");
        manager
            .get_connection()
            .execute_unprepared(&format!(
                "UPDATE api_keys SET resource_scopes = '' WHERE NOT ({holds_all})"
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .drop_column(ApiKeys::ResourceScopes)
                    .to_owned(),
            )
            .await
    }
}
