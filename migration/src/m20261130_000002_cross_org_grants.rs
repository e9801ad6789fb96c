//! Cross-organization grants (DESIGN §5.5): organization `org_id` lets users of
//! `source_org_id` (one user, or all when `user_id` is NULL) work in it with `role`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum CrossOrgGrants {
    Table,
    Id,
    OrgId,
    SourceOrgId,
    UserId,
    Role,
    CreatedBy,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
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
                    .table(CrossOrgGrants::Table)
                    .col(string(CrossOrgGrants::Id).primary_key())
                    .col(string(CrossOrgGrants::OrgId))
                    .col(string(CrossOrgGrants::SourceOrgId))
                    .col(string_null(CrossOrgGrants::UserId))
                    .col(string(CrossOrgGrants::Role))
                    .col(string(CrossOrgGrants::CreatedBy))
                    .col(timestamp_with_time_zone(CrossOrgGrants::CreatedAt))
                    .col(timestamp_with_time_zone_null(CrossOrgGrants::ExpiresAt))
                    .col(timestamp_with_time_zone_null(CrossOrgGrants::RevokedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(CrossOrgGrants::Table, CrossOrgGrants::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(CrossOrgGrants::Table, CrossOrgGrants::SourceOrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_cross_org_grants_lookup")
                    .table(CrossOrgGrants::Table)
                    .col(CrossOrgGrants::OrgId)
                    .col(CrossOrgGrants::SourceOrgId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_cross_org_grants_org_created")
                    .table(CrossOrgGrants::Table)
                    .col(CrossOrgGrants::OrgId)
                    .col(CrossOrgGrants::CreatedAt)
                    .col(CrossOrgGrants::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(CrossOrgGrants::Table).to_owned())
            .await
    }
}
