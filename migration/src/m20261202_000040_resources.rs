//! Protected resources (RFC 8707): the APIs and MCP servers an organization issues tokens
//! for, and, on each session, the resources its tokens are for (a refresh may narrow them,
//! never add one).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Resources {
    Table,
    Id,
    OrgId,
    Uri,
    Name,
    Scopes,
    AccessTtlSecs,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Resources,
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
                    .table(Resources::Table)
                    .col(string(Resources::Id).primary_key())
                    .col(string(Resources::OrgId))
                    // Indexed (unique per organization): a bounded string, not text.
                    .col(string_len(Resources::Uri, 2048))
                    .col(string(Resources::Name))
                    .col(text(Resources::Scopes))
                    .col(big_integer_null(Resources::AccessTtlSecs))
                    .col(timestamp_with_time_zone(Resources::CreatedAt))
                    .col(timestamp_with_time_zone(Resources::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Resources::Table, Resources::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_resources_org_uri")
                    .table(Resources::Table)
                    .col(Resources::OrgId)
                    .col(Resources::Uri)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .add_column(text_null(Sessions::Resources))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Sessions::Table)
                    .drop_column(Sessions::Resources)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Resources::Table).to_owned())
            .await
    }
}
