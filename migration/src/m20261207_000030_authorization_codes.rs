//! Authorization codes (RFC 6749 §4.1, RFC 7636) and the consents people gave browser
//! clients; and sessions whose client is a browser client.
//!
//! - `authorization_codes`: one row per code, stored only as its digest, single-use
//!   (`used_at`), with everything the code is bound to (client, redirect URI, PKCE
//!   challenge, user, scope, resources, DPoP key) and the session it opened (`session_id`),
//!   which a second use of the code revokes (`reused_at`).
//! - `consents`: what a person approved for a client (scopes and resources) and the
//!   client's name as the person saw it, one row per (organization, user, client).
//! - `sessions.api_key_id` now also holds a browser client's id (`cli_…` or a Client ID
//!   Metadata Document URL), so its foreign key to `api_keys` is dropped. PostgreSQL drops
//!   the constraint; SQLite cannot drop a constraint, so `sessions` and `refresh_tokens`
//!   (which references it) are rebuilt with their rows and indexes, in the migration's
//!   transaction. Skipped when the foreign key is already gone. `down` leaves it dropped:
//!   sessions of browser clients could not satisfy it.

use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend, Statement};
use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum AuthorizationCodes {
    Table,
    Id,
    OrgId,
    Digest,
    ClientId,
    RedirectUri,
    CodeChallenge,
    UserId,
    Scope,
    Resources,
    DpopJkt,
    CreatedAt,
    ExpiresAt,
    UsedAt,
    SessionId,
    ReusedAt,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    Id,
    OrgId,
    UserId,
    ClientId,
    ClientName,
    Scope,
    Resources,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Organizations {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
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
    RefreshedAt,
    Resources,
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

fn org_fk(from: (impl IntoIden, impl IntoIden)) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from.0, from.1)
        .to(Organizations::Table, Organizations::Id)
        .on_delete(ForeignKeyAction::Cascade)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    /// One transaction on every backend: the SQLite rebuild must happen whole or not at all.
    fn use_transaction(&self) -> Option<bool> {
        Some(true)
    }

    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(AuthorizationCodes::Table)
                    .col(string(AuthorizationCodes::Id).primary_key())
                    .col(string(AuthorizationCodes::OrgId))
                    .col(string_len_uniq(AuthorizationCodes::Digest, 128))
                    .col(string_len(AuthorizationCodes::ClientId, 2048))
                    .col(text(AuthorizationCodes::RedirectUri))
                    .col(string(AuthorizationCodes::CodeChallenge))
                    .col(string(AuthorizationCodes::UserId))
                    .col(text(AuthorizationCodes::Scope))
                    .col(text_null(AuthorizationCodes::Resources))
                    .col(string_null(AuthorizationCodes::DpopJkt))
                    .col(timestamp_with_time_zone(AuthorizationCodes::CreatedAt))
                    .col(timestamp_with_time_zone(AuthorizationCodes::ExpiresAt))
                    .col(timestamp_with_time_zone_null(AuthorizationCodes::UsedAt))
                    .col(string_null(AuthorizationCodes::SessionId))
                    .col(timestamp_with_time_zone_null(AuthorizationCodes::ReusedAt))
                    .foreign_key(&mut org_fk((
                        AuthorizationCodes::Table,
                        AuthorizationCodes::OrgId,
                    )))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_authorization_codes_expires_at")
                    .table(AuthorizationCodes::Table)
                    .col(AuthorizationCodes::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Consents::Table)
                    .col(string(Consents::Id).primary_key())
                    .col(string(Consents::OrgId))
                    .col(string(Consents::UserId))
                    // Indexed (unique per user): a bounded string; a metadata document URL
                    // may be long.
                    .col(string_len(Consents::ClientId, 2048))
                    .col(text(Consents::ClientName))
                    .col(text(Consents::Scope))
                    .col(text(Consents::Resources))
                    .col(timestamp_with_time_zone(Consents::CreatedAt))
                    .col(timestamp_with_time_zone(Consents::UpdatedAt))
                    .foreign_key(&mut org_fk((Consents::Table, Consents::OrgId)))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Consents::Table, Consents::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_consents_org_user_client")
                    .table(Consents::Table)
                    .col(Consents::OrgId)
                    .col(Consents::UserId)
                    .col(Consents::ClientId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        drop_session_key_fk(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Consents::Table.into_iden(),
            AuthorizationCodes::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Drops the foreign key `sessions.api_key_id` → `api_keys.id`, if it is still there.
async fn drop_session_key_fk(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    match db.get_database_backend() {
        DbBackend::Postgres => {
            db.execute_unprepared("ALTER TABLE sessions DROP CONSTRAINT IF EXISTS fk_sessions_key")
                .await?;
            Ok(())
        }
        DbBackend::Sqlite => {
            let fks = db
                .query_all_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "SELECT \"table\" AS parent FROM pragma_foreign_key_list('sessions')",
                ))
                .await?;
            let mut references_keys = false;
            for row in fks {
                references_keys |= row.try_get::<String>("", "parent")? == "api_keys";
            }
            if references_keys {
                rebuild_sqlite_sessions(manager).await?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// SQLite's way to change a table's constraints (its documentation, "Making Other Kinds Of
/// Table Schema Changes"): new tables, rows copied, old tables dropped. `refresh_tokens` is
/// moved aside first so that dropping the old `sessions` cascades to nothing; renaming
/// `sessions` makes the moved table reference the renamed one.
async fn rebuild_sqlite_sessions(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    db.execute_unprepared("ALTER TABLE refresh_tokens RENAME TO refresh_tokens_old")
        .await?;
    db.execute_unprepared("ALTER TABLE sessions RENAME TO sessions_old")
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
                .col(timestamp_with_time_zone_null(Sessions::RefreshedAt))
                .col(text_null(Sessions::Resources))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_sessions_org")
                        .from(Sessions::Table, Sessions::OrgId)
                        .to(Organizations::Table, Organizations::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    db.execute_unprepared(
        "INSERT INTO sessions (id, org_id, user_id, api_key_id, actor_user_id, dpop_jkt, \
         scope, created_at, expires_at, revoked_at, refreshed_at, resources) \
         SELECT id, org_id, user_id, api_key_id, actor_user_id, dpop_jkt, scope, created_at, \
         expires_at, revoked_at, refreshed_at, resources FROM sessions_old",
    )
    .await?;
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
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_refresh_tokens_session")
                        .from(RefreshTokens::Table, RefreshTokens::SessionId)
                        .to(Sessions::Table, Sessions::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
    db.execute_unprepared(
        "INSERT INTO refresh_tokens (id, session_id, digest, created_at, expires_at, used_at) \
         SELECT id, session_id, digest, created_at, expires_at, used_at FROM refresh_tokens_old",
    )
    .await?;
    // The old indexes go with the old tables; then they are made again, same names.
    db.execute_unprepared("DROP TABLE refresh_tokens_old")
        .await?;
    db.execute_unprepared("DROP TABLE sessions_old").await?;
    let indexes: [(&str, DynIden, Vec<DynIden>); 7] = [
        (
            "ix_sessions_user",
            Sessions::Table.into_iden(),
            vec![Sessions::UserId.into_iden()],
        ),
        (
            "ix_sessions_key",
            Sessions::Table.into_iden(),
            vec![Sessions::ApiKeyId.into_iden()],
        ),
        (
            "ix_sessions_org_created",
            Sessions::Table.into_iden(),
            vec![
                Sessions::OrgId.into_iden(),
                Sessions::CreatedAt.into_iden(),
                Sessions::Id.into_iden(),
            ],
        ),
        (
            "ix_sessions_actor",
            Sessions::Table.into_iden(),
            vec![Sessions::ActorUserId.into_iden()],
        ),
        (
            "ix_sessions_expires_at",
            Sessions::Table.into_iden(),
            vec![Sessions::ExpiresAt.into_iden()],
        ),
        (
            "ix_refresh_tokens_session",
            RefreshTokens::Table.into_iden(),
            vec![RefreshTokens::SessionId.into_iden()],
        ),
        (
            "ix_refresh_tokens_expires_at",
            RefreshTokens::Table.into_iden(),
            vec![RefreshTokens::ExpiresAt.into_iden()],
        ),
    ];
    for (name, table, columns) in indexes {
        let mut index = Index::create();
        index.name(name).table(table);
        for column in columns {
            index.col(column);
        }
        manager.create_index(index.to_owned()).await?;
    }
    Ok(())
}
