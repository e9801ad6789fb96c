//! Login challenges: a person asked for a one-time code to sign in to an organization's
//! pages. The code is stored only as a digest; the row counts wrong attempts and is
//! consumed once. Rows of people who are not users look the same (no `user_id`), so the
//! table is also what the per-email and per-IP throttles count.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum LoginChallenges {
    Table,
    Id,
    OrgId,
    UserId,
    EmailDigest,
    BrowserDigest,
    CodeDigest,
    Ip,
    Attempts,
    CreatedAt,
    ExpiresAt,
    ConsumedAt,
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
                    .table(LoginChallenges::Table)
                    .col(string(LoginChallenges::Id).primary_key())
                    .col(string(LoginChallenges::OrgId))
                    .col(string_null(LoginChallenges::UserId))
                    .col(string_len(LoginChallenges::EmailDigest, 128))
                    .col(string_len(LoginChallenges::BrowserDigest, 128))
                    .col(string_len(LoginChallenges::CodeDigest, 128))
                    .col(string_len_null(LoginChallenges::Ip, 64))
                    .col(integer(LoginChallenges::Attempts).default(0))
                    .col(timestamp_with_time_zone(LoginChallenges::CreatedAt))
                    .col(timestamp_with_time_zone(LoginChallenges::ExpiresAt))
                    .col(timestamp_with_time_zone_null(LoginChallenges::ConsumedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(LoginChallenges::Table, LoginChallenges::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        let indexes: [(&str, &[LoginChallenges]); 3] = [
            (
                "ix_login_challenges_email",
                &[
                    LoginChallenges::OrgId,
                    LoginChallenges::EmailDigest,
                    LoginChallenges::CreatedAt,
                ],
            ),
            (
                "ix_login_challenges_ip",
                &[LoginChallenges::Ip, LoginChallenges::CreatedAt],
            ),
            (
                "ix_login_challenges_expires_at",
                &[LoginChallenges::ExpiresAt],
            ),
        ];
        for (name, columns) in indexes {
            let mut index = Index::create();
            index.name(name).table(LoginChallenges::Table);
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(LoginChallenges::Table).to_owned())
            .await
    }
}
