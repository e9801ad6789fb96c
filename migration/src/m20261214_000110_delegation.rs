//! Delegation and workload identity (RFC 8693 token exchange, RFC 7523 §2.1 JWT bearer
//! grant; README, "Delegation"):
//! - `sessions.parent_session_id`: the session of the subject token an exchanged token was
//!   issued from; `sessions.actor_session_id`: the session of its `actor_token`, if any.
//!   A token is live only while every session up its chain is (the revocation of any link
//!   ends the tokens exchanged from it).
//! - `trusted_issuers.allow_jwt_bearer`: whether the issuer's tokens may be presented as a
//!   JWT bearer grant's `assertion` (off for every existing issuer).
//! - `audit_events.act`: the delegation chain of the token an event is about, as the JSON
//!   of its nested `act` claim.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Sessions {
    Table,
    ParentSessionId,
    ActorSessionId,
}

#[derive(DeriveIden)]
enum TrustedIssuers {
    Table,
    AllowJwtBearer,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Act,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in [Sessions::ParentSessionId, Sessions::ActorSessionId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .add_column(ColumnDef::new(column).string().null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(TrustedIssuers::Table)
                    .add_column(
                        ColumnDef::new(TrustedIssuers::AllowJwtBearer)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .add_column(ColumnDef::new(AuditEvents::Act).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(AuditEvents::Table)
                    .drop_column(AuditEvents::Act)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(TrustedIssuers::Table)
                    .drop_column(TrustedIssuers::AllowJwtBearer)
                    .to_owned(),
            )
            .await?;
        for column in [Sessions::ActorSessionId, Sessions::ParentSessionId] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Sessions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
