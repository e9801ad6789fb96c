//! Migration `m20261207_000030_authorization_codes` on a database that already holds
//! sessions: they and their refresh tokens survive (SQLite rebuilds both tables), a session
//! may then name a browser client, and a session's refresh tokens still go with it.

use keygate::storage::sessions::Opening;
use keygate::storage::{self, Storage};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveValue::Set, ConnectionTrait, Database, EntityTrait, Statement};

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
        },
        refresh: entity::refresh_token::Model {
            id: format!("rtk_{id}"),
            session_id: id.into(),
            digest: format!("digest-of-{id}"),
            created_at: now,
            expires_at: now + chrono::Duration::days(1),
            used_at: None,
        },
        touch_key: false,
        used_from: None,
    }
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
    let clock = keygate::clock::SystemClock;
    let org = keygate::admin::create_org(
        &store,
        &clock,
        &keygate::types::Slug::parse("acme").unwrap(),
        None,
    )
    .await
    .unwrap();
    let user = keygate::admin::create_user(
        &store,
        &clock,
        &org,
        "someone@acme.test",
        None,
        keygate::types::Role::Member,
    )
    .await
    .unwrap();
    // The key row as the schema of that time holds it (columns added by later migrations,
    // e.g. the key's limits, are left out).
    let key_id = keygate::ids::new_id("key");
    let created = keygate::clock::Clock::now(&clock);
    let row = entity::api_key::ActiveModel {
        id: Set(key_id.clone()),
        org_id: Set(org.id.clone()),
        user_id: Set(user.id.clone()),
        name: Set("k".into()),
        environment: Set("live".into()),
        scopes: Set("keys:read".into()),
        resource_scopes: Set(None),
        digest: Set(format!("none:{key_id}")),
        created_at: Set(created),
        expires_at: Set(created + chrono::Duration::days(30)),
        revoked_at: Set(None),
        last_used_at: Set(None),
        created_by_user_id: Set(None),
        created_by_role: Set(None),
        public_jwks: Set(None),
        ..Default::default()
    };
    entity::api_key::Entity::insert(row)
        .exec_without_returning(&migrations)
        .await
        .unwrap();
    let old = session("ses_old", &org.id, &user.id, &key_id);
    entity::session::Entity::insert(entity::session::ActiveModel::from(old.session.clone()))
        .exec_without_returning(&migrations)
        .await
        .unwrap();
    entity::refresh_token::Entity::insert(entity::refresh_token::ActiveModel::from(
        old.refresh.clone(),
    ))
    .exec_without_returning(&migrations)
    .await
    .unwrap();
    // Before: a session must name an API key.
    let browser = session("ses_browser", &org.id, &user.id, "cli_someapp");
    assert!(
        entity::session::Entity::insert(entity::session::ActiveModel::from(
            browser.session.clone()
        ))
        .exec_without_returning(&migrations)
        .await
        .is_err()
    );
    let now = keygate::clock::Clock::now(&clock);

    Migrator::up(&migrations, None).await.unwrap();

    let kept = storage::sessions::get(&store, &org.id, "ses_old")
        .await
        .unwrap();
    assert_eq!(kept, Some(old.session.clone()));
    let token = storage::refresh_tokens::by_digest(&store, "digest-of-ses_old")
        .await
        .unwrap();
    assert_eq!(token, Some(old.refresh.clone()));
    // After: a browser client's session is stored.
    storage::sessions::open_many(&store, &[&browser], now)
        .await
        .unwrap();
    assert!(
        storage::sessions::get(&store, &org.id, "ses_browser")
            .await
            .unwrap()
            .is_some()
    );
    // refresh_tokens still belongs to sessions: a token of no session is refused.
    let orphan = session("ses_none", &org.id, &user.id, "cli_someapp");
    assert!(
        storage::refresh_tokens::insert(&store, orphan.refresh)
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
