//! The first schema: organizations, users, API keys, sessions, refresh tokens,
//! signing keys and audit events. Runs unchanged on SQLite and PostgreSQL.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
    Slug,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    OrgId,
    Email,
    Name,
    Role,
    Disabled,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    OrgId,
    UserId,
    Name,
    Environment,
    Scopes,
    Digest,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    OrgId,
    UserId,
    ApiKeyId,
    ActorUserId,
    DpopJkt,
    Scope,
    CreatedAt,
    ExpiresAt,
    RevokedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    SessionId,
    Digest,
    CreatedAt,
    ExpiresAt,
    UsedAt,
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Id,
    Alg,
    PrivateKeyEnc,
    PublicJwk,
    CreatedAt,
    ActivatedAt,
    RetireAt,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    OrgId,
    At,
    Action,
    Outcome,
    Reason,
    ActorUserId,
    ActorKeyId,
    TargetType,
    TargetId,
    Ip,
    UserAgent,
    RequestId,
}

fn fk(
    name: &str,
    from: (impl IntoIden, impl IntoIden),
    to: (impl IntoIden, impl IntoIden),
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from.0, from.1)
        .to(to.0, to.1)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Organizations::Table)
                    .col(string(Organizations::Id).primary_key())
                    .col(string_uniq(Organizations::Slug))
                    .col(string(Organizations::Name))
                    .col(timestamp_with_time_zone(Organizations::CreatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(string(Users::Id).primary_key())
                    .col(string(Users::OrgId))
                    .col(string(Users::Email))
                    .col(string_null(Users::Name))
                    .col(string(Users::Role))
                    .col(boolean(Users::Disabled))
                    .col(timestamp_with_time_zone(Users::CreatedAt))
                    .col(timestamp_with_time_zone(Users::UpdatedAt))
                    .foreign_key(&mut fk(
                        "fk_users_org",
                        (Users::Table, Users::OrgId),
                        (Organizations::Table, Organizations::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_users_org_email")
                    .table(Users::Table)
                    .col(Users::OrgId)
                    .col(Users::Email)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(string(ApiKeys::Id).primary_key())
                    .col(string(ApiKeys::OrgId))
                    .col(string(ApiKeys::UserId))
                    .col(string(ApiKeys::Name))
                    .col(string(ApiKeys::Environment))
                    .col(text(ApiKeys::Scopes))
                    .col(string_uniq(ApiKeys::Digest))
                    .col(timestamp_with_time_zone(ApiKeys::CreatedAt))
                    .col(timestamp_with_time_zone(ApiKeys::ExpiresAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::RevokedAt))
                    .col(timestamp_with_time_zone_null(ApiKeys::LastUsedAt))
                    .foreign_key(&mut fk(
                        "fk_api_keys_org",
                        (ApiKeys::Table, ApiKeys::OrgId),
                        (Organizations::Table, Organizations::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_api_keys_user",
                        (ApiKeys::Table, ApiKeys::UserId),
                        (Users::Table, Users::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_api_keys_org_user")
                    .table(ApiKeys::Table)
                    .col(ApiKeys::OrgId)
                    .col(ApiKeys::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(string(Sessions::Id).primary_key())
                    .col(string(Sessions::OrgId))
                    .col(string(Sessions::UserId))
                    .col(string(Sessions::ApiKeyId))
                    .col(string_null(Sessions::ActorUserId))
                    .col(string_null(Sessions::DpopJkt))
                    .col(text(Sessions::Scope))
                    .col(timestamp_with_time_zone(Sessions::CreatedAt))
                    .col(timestamp_with_time_zone(Sessions::ExpiresAt))
                    .col(timestamp_with_time_zone_null(Sessions::RevokedAt))
                    .foreign_key(&mut fk(
                        "fk_sessions_org",
                        (Sessions::Table, Sessions::OrgId),
                        (Organizations::Table, Organizations::Id),
                    ))
                    .foreign_key(&mut fk(
                        "fk_sessions_key",
                        (Sessions::Table, Sessions::ApiKeyId),
                        (ApiKeys::Table, ApiKeys::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        for (name, col) in [
            ("ix_sessions_user", Sessions::UserId),
            ("ix_sessions_key", Sessions::ApiKeyId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Sessions::Table)
                        .col(col)
                        .to_owned(),
                )
                .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(string(RefreshTokens::Id).primary_key())
                    .col(string(RefreshTokens::SessionId))
                    .col(string_uniq(RefreshTokens::Digest))
                    .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                    .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::UsedAt))
                    .foreign_key(&mut fk(
                        "fk_refresh_tokens_session",
                        (RefreshTokens::Table, RefreshTokens::SessionId),
                        (Sessions::Table, Sessions::Id),
                    ))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_refresh_tokens_session")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::SessionId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(string(SigningKeys::Id).primary_key())
                    .col(string(SigningKeys::Alg))
                    .col(blob(SigningKeys::PrivateKeyEnc))
                    .col(text(SigningKeys::PublicJwk))
                    .col(timestamp_with_time_zone(SigningKeys::CreatedAt))
                    .col(timestamp_with_time_zone(SigningKeys::ActivatedAt))
                    .col(timestamp_with_time_zone_null(SigningKeys::RetireAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(string(AuditEvents::Id).primary_key())
                    .col(string_null(AuditEvents::OrgId))
                    .col(timestamp_with_time_zone(AuditEvents::At))
                    .col(string(AuditEvents::Action))
                    .col(string(AuditEvents::Outcome))
                    .col(string_null(AuditEvents::Reason))
                    .col(string_null(AuditEvents::ActorUserId))
                    .col(string_null(AuditEvents::ActorKeyId))
                    .col(string_null(AuditEvents::TargetType))
                    .col(string_null(AuditEvents::TargetId))
                    .col(string_null(AuditEvents::Ip))
                    .col(text_null(AuditEvents::UserAgent))
                    .col(string_null(AuditEvents::RequestId))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_audit_events_org_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::OrgId)
                    .col(AuditEvents::At)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditEvents::Table.into_iden(),
            SigningKeys::Table.into_iden(),
            RefreshTokens::Table.into_iden(),
            Sessions::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Users::Table.into_iden(),
            Organizations::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
