//! Trusted identity providers (DESIGN §5.5.1): an organization accepts tokens of an
//! external OpenID provider for its users, matched by `users.external_subject`.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TrustedIssuers {
    Table,
    Id,
    OrgId,
    Issuer,
    JwksUri,
    Jwks,
    Audience,
    SubjectClaim,
    Algorithms,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    OrgId,
    ExternalSubject,
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
                    .table(TrustedIssuers::Table)
                    .col(string(TrustedIssuers::Id).primary_key())
                    .col(string(TrustedIssuers::OrgId))
                    .col(text(TrustedIssuers::Issuer))
                    .col(text_null(TrustedIssuers::JwksUri))
                    .col(text_null(TrustedIssuers::Jwks))
                    .col(text(TrustedIssuers::Audience))
                    .col(string(TrustedIssuers::SubjectClaim))
                    .col(string(TrustedIssuers::Algorithms))
                    .col(timestamp_with_time_zone(TrustedIssuers::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TrustedIssuers::Table, TrustedIssuers::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_trusted_issuers_org_issuer")
                    .table(TrustedIssuers::Table)
                    .col(TrustedIssuers::OrgId)
                    .col(TrustedIssuers::Issuer)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(string_null(Users::ExternalSubject))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_users_org_external_subject")
                    .table(Users::Table)
                    .col(Users::OrgId)
                    .col(Users::ExternalSubject)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ux_users_org_external_subject")
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::ExternalSubject)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(TrustedIssuers::Table).to_owned())
            .await
    }
}
