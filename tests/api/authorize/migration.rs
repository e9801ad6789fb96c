//! Migration `m20261207_000030_authorization_codes` on a database that already holds
//! sessions: they and their refresh tokens survive (SQLite rebuilds both tables), a session
//! may then name a browser client, and a session's refresh tokens still go with it.

use keygate::storage::sessions::Opening;
use keygate::storage::{self, Storage};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, Statement};

use crate::helpers::{TestDatabase, test_settings};

const MIGRATION: &str = "m20261207_000030_authorization_codes";

fn session(id: &str, org_id: &str, user_id: &str, client_id: &str) -> Opening {
    let now = keygate::clock::Clock::now(&keygate::clock::SystemClock);
    Opening {
        session: entity::session::Model {
            id: id.into(),
            org_id: org_id.into(),
            user_id: user_id.into(),
            api_key_id: client_id.into(),
            actor_user_id: None,
            dpop_jkt: None,
            scope: "keys:read".into(),
            created_at: now,
            expires_at: now + chrono::Duration::days(1),
            revoked_at: None,
            refreshed_at: None,
            resources: None,
            parent_session_id: None,
            actor_session_id: None,
        },
        refresh: Some(entity::refresh_token::Model {
            id: format!("rtk_{id}"),
            session_id: id.into(),
            digest: format!("digest-of-{id}"),
            created_at: now,
            expires_at: now + chrono::Duration::days(1),
            used_at: None,
        }),
        touch_key: false,
        used_from: None,
    }
}

/// Writes a session and its refresh token with the columns the tables had before the
/// migration (later migrations add columns the entity now has, so the repository's insert
/// cannot run on the old schema).
async fn open_before(
    db: &sea_orm::DatabaseConnection,
    opening: &Opening,
) -> Result<(), sea_orm::DbErr> {
    use sea_orm::sea_query::{Alias, Query};
    let s = &opening.session;
    let insert = Query::insert()
        .into_table(Alias::new("sessions"))
        .columns(
            [
                "id",
                "org_id",
                "user_id",
                "api_key_id",
                "actor_user_id",
                "dpop_jkt",
                "scope",
                "created_at",
                "expires_at",
                "revoked_at",
                "refreshed_at",
                "resources",
            ]
            .map(Alias::new),
        )
        .values_panic([
            s.id.clone().into(),
            s.org_id.clone().into(),
            s.user_id.clone().into(),
            s.api_key_id.clone().into(),
            s.actor_user_id.clone().into(),
            s.dpop_jkt.clone().into(),
            s.scope.clone().into(),
            s.created_at.into(),
            s.expires_at.into(),
            s.revoked_at.into(),
            s.refreshed_at.into(),
            s.resources.clone().into(),
        ])
        .to_owned();
    db.execute_raw(db.get_database_backend().build(&insert))
        .await?;
    if let Some(refresh) = &opening.refresh {
        use sea_orm::{ActiveModelTrait, IntoActiveModel};
        refresh.clone().into_active_model().insert(db).await?;
    }
    Ok(())
}

/// The names of the indexes on `table`.
async fn indexes(db: &impl ConnectionTrait, postgres: bool, table: &str) -> Vec<String> {
    let sql = if postgres {
        format!("SELECT indexname AS name FROM pg_indexes WHERE tablename = '{table}'")
    } else {
        format!("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{table}'")
    };
    db.query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "name").unwrap())
        .collect()
}

#[tokio::test]
async fn sessions_and_refresh_tokens_survive_and_a_session_may_name_a_browser_client() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDatabase::create(dir.path()).await;
    let migrations = Database::connect(&db.url).await.unwrap();
    let before = Migrator::migrations()
        .iter()
        .position(|m| m.name() == MIGRATION)
        .expect("the migration is registered");
    Migrator::up(&migrations, Some(u32::try_from(before).unwrap()))
        .await
        .unwrap();

    let settings = test_settings(dir.path(), &db);
    let store = Storage::connect(&settings).await.unwrap();
    let now = keygate::clock::Clock::now(&keygate::clock::SystemClock);
    // The rows are written with the columns that existed before the migration only (later
    // migrations add columns the current entities would try to write).
    use sea_orm::{ActiveValue::Set, EntityTrait};
    entity::organization::Entity::insert(entity::organization::ActiveModel {
        id: Set("org_acme".into()),
        slug: Set("acme".into()),
        name: Set("acme".into()),
        created_at: Set(now),
        dpop_required: Set(None),
        dpop_nonce: Set(None),
        dynamic_registration: Set(None),
        ..Default::default()
    })
    .exec_without_returning(&migrations)
    .await
    .unwrap();
    entity::user::Entity::insert(entity::user::ActiveModel {
        id: Set("usr_someone".into()),
        org_id: Set("org_acme".into()),
        email: Set("someone@acme.test".into()),
        name: Set(None),
        role: Set("member".into()),
        disabled: Set(false),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
        external_subject: Set(None),
    })
    .exec_without_returning(&migrations)
    .await
    .unwrap();
    entity::api_key::Entity::insert(entity::api_key::ActiveModel {
        id: Set("key_k".into()),
        org_id: Set("org_acme".into()),
        user_id: Set("usr_someone".into()),
        name: Set("k".into()),
        environment: Set("live".into()),
        scopes: Set("keys:read".into()),
        resource_scopes: Set(None),
        digest: Set("digest-of-key_k".into()),
        created_at: Set(now),
        expires_at: Set(now + chrono::Duration::days(30)),
        revoked_at: Set(None),
        last_used_at: Set(None),
        created_by_user_id: Set(None),
        created_by_role: Set(None),
        public_jwks: Set(None),
        ..Default::default()
    })
    .exec_without_returning(&migrations)
    .await
    .unwrap();
    let (org_id, user_id, key_id) = ("org_acme", "usr_someone", "key_k");
    let old = session("ses_old", org_id, user_id, key_id);
    open_before(&migrations, &old).await.unwrap();
    // Before: a session must name an API key.
    let browser = session("ses_browser", org_id, user_id, "cli_someapp");
    assert!(open_before(&migrations, &browser).await.is_err());

    Migrator::up(&migrations, None).await.unwrap();

    let kept = storage::sessions::get(&store, org_id, "ses_old")
        .await
        .unwrap();
    assert_eq!(kept, Some(old.session.clone()));
    let token = storage::refresh_tokens::by_digest(&store, "digest-of-ses_old")
        .await
        .unwrap();
    assert_eq!(token, old.refresh.clone());
    // After: a browser client's session is stored.
    storage::sessions::open_many(&store, &[&browser], now)
        .await
        .unwrap();
    assert!(
        storage::sessions::get(&store, org_id, "ses_browser")
            .await
            .unwrap()
            .is_some()
    );
    // refresh_tokens still belongs to sessions: a token of no session is refused.
    let orphan = session("ses_none", org_id, user_id, "cli_someapp");
    assert!(
        storage::refresh_tokens::insert(&store, orphan.refresh.unwrap())
            .await
            .is_err(),
        "the foreign key of refresh_tokens survived the rebuild"
    );
    // The indexes are all there.
    let postgres = db.is_postgres();
    let sessions = indexes(&migrations, postgres, "sessions").await;
    for name in [
        "ix_sessions_user",
        "ix_sessions_key",
        "ix_sessions_org_created",
        "ix_sessions_actor",
        "ix_sessions_expires_at",
    ] {
        assert!(sessions.iter().any(|n| n == name), "{name}: {sessions:?}");
    }
    let tokens = indexes(&migrations, postgres, "refresh_tokens").await;
    for name in ["ix_refresh_tokens_session", "ix_refresh_tokens_expires_at"] {
        assert!(tokens.iter().any(|n| n == name), "{name}: {tokens:?}");
    }
    store.close().await.unwrap();
    migrations.close().await.unwrap();
}
