//! Clients of the browser and device flows: registered by an admin or through RFC 7591
//! dynamic registration (`clients`), and the organization's switch for dynamic
//! registration (`organizations.dynamic_registration`, NULL: off). A client secret is
//! stored only as its digest; a `private_key_jwt` client's public keys as a JWK Set.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Clients {
    Table,
    Id,
    OrgId,
    Name,
    RedirectUris,
    AuthMethod,
    SecretDigest,
    PublicJwks,
    Scope,
    Source,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    DynamicRegistration,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Clients::Table)
                    .col(string(Clients::Id).primary_key())
                    .col(string(Clients::OrgId))
                    .col(string(Clients::Name))
                    // A JSON array of strings.
                    .col(text(Clients::RedirectUris))
                    .col(string_len(Clients::AuthMethod, 32))
                    .col(string_len_null(Clients::SecretDigest, 128))
                    .col(text_null(Clients::PublicJwks))
                    .col(text_null(Clients::Scope))
                    .col(string_len(Clients::Source, 16))
                    .col(timestamp_with_time_zone(Clients::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Clients::Table, Clients::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Listings: an organization's clients, newest first.
        manager
            .create_index(
                Index::create()
                    .name("ix_clients_org_created")
                    .table(Clients::Table)
                    .col(Clients::OrgId)
                    .col(Clients::CreatedAt)
                    .col(Clients::Id)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .add_column(boolean_null(Organizations::DynamicRegistration))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Organizations::Table)
                    .drop_column(Organizations::DynamicRegistration)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Clients::Table).to_owned())
            .await
    }
}
