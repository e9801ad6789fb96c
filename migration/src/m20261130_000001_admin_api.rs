//! The admin API: soft-deleted users, remembered idempotency keys, and the indexes that
//! cursor pagination (newest first by creation time, then id) walks.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Users {
    Table,
    OrgId,
    CreatedAt,
    Id,
    DeletedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    OrgId,
    CreatedAt,
    Id,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    OrgId,
    CreatedAt,
    Id,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Id,
    OrgId,
    ActorUserId,
    IdemKey,
    Fingerprint,
    StatusCode,
    Response,
    Redacted,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(timestamp_with_time_zone_null(Users::DeletedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(string(IdempotencyKeys::Id).primary_key())
                    .col(string(IdempotencyKeys::OrgId))
                    .col(string(IdempotencyKeys::ActorUserId))
                    .col(string(IdempotencyKeys::IdemKey))
                    .col(string(IdempotencyKeys::Fingerprint))
                    .col(integer_null(IdempotencyKeys::StatusCode))
                    .col(text_null(IdempotencyKeys::Response))
                    .col(boolean(IdempotencyKeys::Redacted))
                    .col(timestamp_with_time_zone(IdempotencyKeys::CreatedAt))
                    .col(timestamp_with_time_zone(IdempotencyKeys::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(IdempotencyKeys::Table, IdempotencyKeys::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_idempotency_keys_owner_key")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::OrgId)
                    .col(IdempotencyKeys::ActorUserId)
                    .col(IdempotencyKeys::IdemKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_users_org_created")
                    .table(Users::Table)
                    .col(Users::OrgId)
                    .col(Users::CreatedAt)
                    .col(Users::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_api_keys_org_created")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::OrgId)
                    .col(ApiKeys::CreatedAt)
                    .col(ApiKeys::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_sessions_org_created")
                    .table(Sessions::Table)
                    .col(Sessions::OrgId)
                    .col(Sessions::CreatedAt)
                    .col(Sessions::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table) in [
            ("ix_sessions_org_created", Sessions::Table.into_iden()),
            ("ix_api_keys_org_created", ApiKeys::Table.into_iden()),
            ("ix_users_org_created", Users::Table.into_iden()),
        ] {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        manager
            .drop_table(Table::drop().table(IdempotencyKeys::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::DeletedAt)
                    .to_owned(),
            )
            .await
    }
}
