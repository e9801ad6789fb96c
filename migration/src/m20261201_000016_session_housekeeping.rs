//! Indexes for ending the sessions a user acts in, and for purging expired rows in batches.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    ActorUserId,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    At,
}

/// (index name, table, column)
fn indexes() -> Vec<(&'static str, DynIden, DynIden)> {
    vec![
        (
            "ix_sessions_actor",
            Sessions::Table.into_iden(),
            Sessions::ActorUserId.into_iden(),
        ),
        (
            "ix_sessions_expires_at",
            Sessions::Table.into_iden(),
            Sessions::ExpiresAt.into_iden(),
        ),
        (
            "ix_refresh_tokens_expires_at",
            RefreshTokens::Table.into_iden(),
            RefreshTokens::ExpiresAt.into_iden(),
        ),
        (
            "ix_idempotency_keys_expires_at",
            IdempotencyKeys::Table.into_iden(),
            IdempotencyKeys::ExpiresAt.into_iden(),
        ),
        (
            "ix_audit_events_at",
            AuditEvents::Table.into_iden(),
            AuditEvents::At.into_iden(),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, column) in indexes() {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (name, table, _) in indexes() {
            manager
                .drop_index(Index::drop().name(name).table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
