//! What other agent platforms offer (README, "Coming from another agent platform"):
//! per-organization switches for direct API-key requests and self-registration
//! (NULL: off), a `pending` flag on API keys awaiting an admin's approval, and the
//! organizations' Ed25519 identity keys (sealed under the KEK like signing keys).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    DirectApiKeys,
    SelfRegistration,
    RegistrationApproval,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Pending,
}

#[derive(DeriveIden)]
enum IdentityKeys {
    Table,
    Id,
    OrgId,
    PrivateKeyEnc,
    PublicJwk,
    CreatedAt,
    ActivatedAt,
    RetireAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite adds a single column per ALTER TABLE.
        for column in [
            Organizations::DirectApiKeys,
            Organizations::SelfRegistration,
            Organizations::RegistrationApproval,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Organizations::Table)
                        .add_column(ColumnDef::new(column).boolean().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(
                        ColumnDef::new(ApiKeys::Pending)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(IdentityKeys::Table)
                    .col(string(IdentityKeys::Id).primary_key())
                    .col(string(IdentityKeys::OrgId))
                    .col(blob(IdentityKeys::PrivateKeyEnc))
                    .col(text(IdentityKeys::PublicJwk))
                    .col(timestamp_with_time_zone(IdentityKeys::CreatedAt))
                    .col(timestamp_with_time_zone(IdentityKeys::ActivatedAt))
                    .col(timestamp_with_time_zone_null(IdentityKeys::RetireAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(IdentityKeys::Table, IdentityKeys::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_identity_keys_org")
                    .table(IdentityKeys::Table)
                    .col(IdentityKeys::OrgId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IdentityKeys::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .drop_column(ApiKeys::Pending)
                    .to_owned(),
            )
            .await?;
        for column in [
            Organizations::RegistrationApproval,
            Organizations::SelfRegistration,
            Organizations::DirectApiKeys,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Organizations::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
