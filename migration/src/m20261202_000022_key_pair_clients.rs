//! Key-pair clients (README, "Key-pair clients (private_key_jwt)"): `api_keys.public_jwks`,
//! the JWK Set of a secretless key whose client authenticates with signed assertions
//! (RFC 7523 §2.2). NULL: a key with a secret, as before. The `digest` column stays NOT NULL
//! and unique: a secretless key stores `none:{id}` there, which no HMAC digest (lower-case
//! hex) can equal.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    PublicJwks,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .add_column(ColumnDef::new(ApiKeys::PublicJwks).text().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(ApiKeys::Table)
                    .drop_column(ApiKeys::PublicJwks)
                    .to_owned(),
            )
            .await
    }
}
