//! Per-key issuance limits and where a key was last used from: `api_keys.limit_per_minute`
//! and `api_keys.limit_per_hour` (NULL: the server's `limits.issuance_per_minute` /
//! `limits.issuance_per_hour`), and `api_keys.last_used_ip`, written with `last_used_at`
//! (sampled). An index on `(org_id, last_used_at)` serves `?unused_since=`.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    OrgId,
    LastUsedAt,
    LimitPerMinute,
    LimitPerHour,
    LastUsedIp,
}

const INDEX: &str = "idx_api_keys_org_last_used";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            ColumnDef::new(ApiKeys::LimitPerMinute)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(ApiKeys::LimitPerHour)
                .big_integer()
                .null()
                .to_owned(),
            ColumnDef::new(ApiKeys::LastUsedIp)
                .string()
                .null()
                .to_owned(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiKeys::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(ApiKeys::Table)
                    .col(ApiKeys::OrgId)
                    .col(ApiKeys::LastUsedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(Index::drop().name(INDEX).table(ApiKeys::Table).to_owned())
            .await?;
        for column in [
            ApiKeys::LimitPerMinute,
            ApiKeys::LimitPerHour,
            ApiKeys::LastUsedIp,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(ApiKeys::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
