//! The device authorization grant (RFC 8628): one row per device authorization request,
//! its two codes stored only as digests, and the wrong user codes people typed (the
//! brute-force throttle of the verification page counts them here, so every node of a
//! fleet sees the same count).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DeviceCodes {
    Table,
    Id,
    OrgId,
    ClientId,
    DeviceCodeDigest,
    UserCodeDigest,
    Scope,
    Resources,
    Status,
    UserId,
    GrantedScope,
    IntervalSecs,
    Polls,
    LastPolledAt,
    CreatedAt,
    ExpiresAt,
    DecidedAt,
    IssuedAt,
    RequestedIp,
}

#[derive(DeriveIden)]
enum UserCodeAttempts {
    Table,
    Id,
    OrgId,
    BrowserSessionId,
    UserId,
    Ip,
    At,
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
                    .table(DeviceCodes::Table)
                    .col(string(DeviceCodes::Id).primary_key())
                    .col(string(DeviceCodes::OrgId))
                    // An API key id, or a browser client's id (possibly a URL).
                    .col(text(DeviceCodes::ClientId))
                    .col(string_len(DeviceCodes::DeviceCodeDigest, 128))
                    .col(string_len(DeviceCodes::UserCodeDigest, 128))
                    .col(text_null(DeviceCodes::Scope))
                    .col(text_null(DeviceCodes::Resources))
                    .col(string_len(DeviceCodes::Status, 16))
                    .col(string_null(DeviceCodes::UserId))
                    .col(text_null(DeviceCodes::GrantedScope))
                    .col(integer(DeviceCodes::IntervalSecs))
                    .col(integer(DeviceCodes::Polls).default(0))
                    .col(timestamp_with_time_zone_null(DeviceCodes::LastPolledAt))
                    .col(timestamp_with_time_zone(DeviceCodes::CreatedAt))
                    .col(timestamp_with_time_zone(DeviceCodes::ExpiresAt))
                    .col(timestamp_with_time_zone_null(DeviceCodes::DecidedAt))
                    .col(timestamp_with_time_zone_null(DeviceCodes::IssuedAt))
                    // Where a public client asked from (its pending requests are limited).
                    .col(string_null(DeviceCodes::RequestedIp))
                    .foreign_key(
                        ForeignKey::create()
                            .from(DeviceCodes::Table, DeviceCodes::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("ux_device_codes_device_code", DeviceCodes::DeviceCodeDigest),
            ("ux_device_codes_user_code", DeviceCodes::UserCodeDigest),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(DeviceCodes::Table)
                        .col(column)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(
                Index::create()
                    .name("ix_device_codes_expires_at")
                    .table(DeviceCodes::Table)
                    .col(DeviceCodes::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_device_codes_requested_ip")
                    .table(DeviceCodes::Table)
                    .col(DeviceCodes::RequestedIp)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(UserCodeAttempts::Table)
                    .col(string(UserCodeAttempts::Id).primary_key())
                    .col(string(UserCodeAttempts::OrgId))
                    .col(string(UserCodeAttempts::BrowserSessionId))
                    .col(string(UserCodeAttempts::UserId))
                    .col(string_null(UserCodeAttempts::Ip))
                    .col(timestamp_with_time_zone(UserCodeAttempts::At))
                    .foreign_key(
                        ForeignKey::create()
                            .from(UserCodeAttempts::Table, UserCodeAttempts::OrgId)
                            .to(Organizations::Table, Organizations::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            (
                "ix_user_code_attempts_session",
                UserCodeAttempts::BrowserSessionId,
            ),
            ("ix_user_code_attempts_user", UserCodeAttempts::UserId),
            ("ix_user_code_attempts_ip", UserCodeAttempts::Ip),
            ("ix_user_code_attempts_at", UserCodeAttempts::At),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(UserCodeAttempts::Table)
                        .col(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(UserCodeAttempts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DeviceCodes::Table).to_owned())
            .await
    }
}
