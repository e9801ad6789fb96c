//! Browser sessions: a person signed in to an organization's pages (consent, device
//! approval). The cookie's value is stored only as a digest.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BrowserSessions {
    Table,
    Id,
    OrgId,
    UserId,
    Digest,
    CreatedAt,
    ExpiresAt,
    EndedAt,
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
            .create_table(
                Table::create()
                    .table(BrowserSessions::Table)
                    .col(string(BrowserSessions::Id).primary_key())
                    .col(string(BrowserSessions::OrgId))
                    .col(string(BrowserSessions::UserId))
                    .col(string_len(BrowserSessions::Digest, 128))
                    .col(timestamp_with_time_zone(BrowserSessions::CreatedAt))
                    .col(timestamp_with_time_zone(BrowserSessions::ExpiresAt))
                    .col(timestamp_with_time_zone_null(BrowserSessions::EndedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(BrowserSessions::Table, BrowserSessions::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_browser_sessions_digest")
                    .table(BrowserSessions::Table)
                    .col(BrowserSessions::Digest)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(BrowserSessions::Table).to_owned())
            .await
    }
}
