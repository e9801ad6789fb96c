//! The test harness: a fresh database per test, `spawn_app()`, and one method per endpoint.

use std::sync::Arc;
use std::time::Duration;

use keygate::auth::dpop::ReplayStore;
use keygate::clock::{Clock, ManualClock};
use keygate::config::Settings;
use keygate::startup::Application;
use keygate::state::AppState;
use keygate::types::Role;
use keygate::types::SigningAlg;
use reqwest::{Response, StatusCode};
use sea_orm::{ConnectionTrait, Database, EntityName, EntityTrait, Statement};
use serde_json::Value;
use tempfile::TempDir;

pub const POSTGRES_ENV: &str = "KEYGATE_TEST_POSTGRES_URL";

/// The public URL of a test fleet: every node is reached through it (as behind a load
/// balancer), so tokens issued by one verify at the others.
pub const FLEET_URL: &str = "http://keygate.fleet.test";

/// A database of a test's own, dropped with it.
pub struct TestDatabase {
    pub url: String,
    postgres: Option<(String, String)>,
}

impl TestDatabase {
    /// SQLite in `dir`, or, when `KEYGATE_TEST_POSTGRES_URL` is set, a new PostgreSQL
    /// database on that server (failing, never skipping, when it is unreachable).
    pub async fn create(dir: &std::path::Path) -> Self {
        match std::env::var(POSTGRES_ENV) {
            Ok(admin_url) => {
                let name = format!(
                    "keygate_test_{}",
                    keygate::ids::random_base62(16).to_ascii_lowercase()
                );
                let admin = Database::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("{POSTGRES_ENV}={admin_url} is unreachable: {e}"));
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create test database");
                admin.close().await.ok();
                let base = admin_url
                    .rsplit_once('/')
                    .expect("database url has a path")
                    .0;
                Self {
                    url: format!("{base}/{name}"),
                    postgres: Some((admin_url, name)),
                }
            }
            Err(_) => Self {
                url: format!("sqlite://{}?mode=rwc", dir.join("keygate.db").display()),
                postgres: None,
            },
        }
    }

    /// Every row of every table, rendered with `Debug`: what an attacker with the
    /// database would see. Every entity of the `entity` crate is listed here; a table that
    /// is not (a new one) fails the dump, so the secrets-at-rest check cannot miss it.
    pub async fn dump(&self) -> String {
        let db = Database::connect(&self.url)
            .await
            .expect("connect for dump");
        let mut out = String::new();
        let mut dumped: Vec<String> = Vec::new();
        macro_rules! dump {
            ($($table:ident),* $(,)?) => {$(
                let rows = entity::$table::Entity::find().all(&db).await.unwrap();
                out += &format!("{rows:?}");
                dumped.push(entity::$table::Entity.table_name().to_owned());
            )*};
        }
        dump!(
            organization,
            user,
            api_key,
            session,
            refresh_token,
            signing_key,
            audit_event,
            idempotency_key,
            identity_key,
            revoked_token,
            cross_org_grant,
            trusted_issuer,
            resource,
            browser_session,
            login_challenge,
            authorization_code,
            consent,
            client,
            device_code,
            user_code_attempt,
        );
        let sql = if self.is_postgres() {
            "SELECT table_name AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
        } else {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        };
        let mut tables: Vec<String> = db
            .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<String>("", "name").unwrap())
            // The migration bookkeeping: names and times of migrations, nothing else.
            .filter(|name| name != "seaql_migrations")
            .collect();
        tables.sort();
        dumped.sort();
        assert_eq!(
            tables, dumped,
            "every table must be in TestDatabase::dump (add the new table's entity there)"
        );
        db.close().await.ok();
        out
    }

    pub fn is_postgres(&self) -> bool {
        self.postgres.is_some()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop runs outside async; use a runtime of our own on a separate thread.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(db) = Database::connect(&admin_url).await {
                    let _ = db
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                    db.close().await.ok();
                }
            });
        })
        .join();
    }
}

/// Credentials as a client holds them.
#[derive(Clone, Debug)]
pub struct Credentials {
    pub org: String,
    pub user_id: String,
    pub api_key_id: String,
    pub api_key: String,
}

pub struct TestApp {
    /// `http://127.0.0.1:{port}` (the public URL too, unless a test configures one).
    pub address: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub clock: Arc<ManualClock>,
    /// The bootstrap organization's owner (org `default`).
    pub owner: Credentials,
    pub db: TestDatabase,
    pub data_dir: TempDir,
    /// `http://{metrics.bind}`, when the test configured a metrics listener of its own.
    pub metrics_address: Option<String>,
}

pub fn test_settings(data_dir: &std::path::Path, db: &TestDatabase) -> Settings {
    let mut settings = Settings {
        data_dir: data_dir.to_path_buf(),
        ..Settings::default()
    };
    settings.database.url = Some(db.url.clone());
    settings.database.max_connections = 4;
    settings.server.bind = "127.0.0.1:0".into();
    settings.server.workers = Some(1);
    // Tests make many failed sign-ins from 127.0.0.1; the throttle's own tests
    // (`security::throttle`) set the real limits.
    settings.limits.failed_auth_per_key_per_minute = 1_000_000;
    settings.limits.failed_auth_per_ip_per_minute = 1_000_000;
    // Likewise the rate limits of what succeeds (`limits::` tests set real ones).
    settings.limits.issuance_per_minute = 1_000_000;
    settings.limits.issuance_per_hour = 60_000_000;
    settings.limits.requests_per_user_per_minute = 1_000_000;
    settings
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with_store(configure, |store| store).await
}

/// `spawn_app_with`, with the replay store `wrap` makes of the configured one (built as
/// the server builds it, on the test's clock).
pub async fn spawn_app_with_store(
    configure: impl FnOnce(&mut Settings),
    wrap: impl FnOnce(Arc<dyn ReplayStore>) -> Arc<dyn ReplayStore>,
) -> TestApp {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let db = TestDatabase::create(data_dir.path()).await;
    let mut settings = test_settings(data_dir.path(), &db);
    configure(&mut settings);
    let clock = Arc::new(ManualClock::starting_now());
    let real = keygate::startup::replay_store(&settings.dpop, clock.clone())
        .await
        .expect("replay store");
    let mut app = Application::build_with_replay_store(settings, clock.clone(), wrap(real))
        .await
        .expect("application builds");
    let creds = app.take_bootstrap_credentials().expect("bootstrap");
    let owner = Credentials {
        org: creds.org,
        user_id: creds.user_id,
        api_key_id: creds.api_key_id,
        api_key: creds.api_key.expose().to_owned(),
    };
    let state = app.state().clone();
    let address = format!("http://{}", app.local_addr());
    let metrics_address = app.metrics_addr().map(|a| format!("http://{a}"));
    tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        // actix-web closes a keep-alive connection after 5 s idle; a client that reuses one
        // as the server closes it reads an incomplete message (seen on a loaded 2-core
        // machine). Idle connections are dropped on this side first.
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_idle_timeout(Duration::from_secs(2))
            .build()
            .expect("client"),
        state,
        clock,
        owner,
        db,
        data_dir,
        metrics_address,
    }
}

/// A response's status and JSON body.
pub async fn json(response: Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("body");
    let body = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text:?}"));
    (status, body)
}

/// Asserts the keygate error body (README, "Errors") and returns its code.
pub fn error_code(body: &Value) -> &str {
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        error["request_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    error["code"].as_str().expect("error.code")
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// `POST /v1/{org}/user/signin_with_api_key` with the given headers (`None`: omitted).
    pub async fn signin_raw(
        &self,
        org: &str,
        api_key: Option<&str>,
        api_key_id: Option<&str>,
        user_id: Option<&str>,
    ) -> Response {
        let mut req = self
            .client
            .post(self.url(&format!("/v1/{org}/user/signin_with_api_key")));
        if let Some(v) = api_key {
            req = req.header("x-api-key", v);
        }
        if let Some(v) = api_key_id {
            req = req.header("x-api-key-id", v);
        }
        if let Some(v) = user_id {
            req = req.header("x-user-id", v);
        }
        req.send().await.expect("signin request")
    }

    /// Writes a user's role and/or disabled flag straight to the database, bypassing the
    /// admin API: no session ends and no cache is cleared, as a change made by another node
    /// (or one that slipped past revocation) looks to this one.
    pub async fn set_user_directly(
        &self,
        user_id: &str,
        role: Option<Role>,
        disabled: Option<bool>,
    ) {
        use sea_orm::sea_query::Expr;
        use sea_orm::{ColumnTrait, QueryFilter};
        let db = Database::connect(&self.db.url).await.expect("connect");
        let mut update =
            entity::user::Entity::update_many().filter(entity::user::Column::Id.eq(user_id));
        if let Some(role) = role {
            update = update.col_expr(entity::user::Column::Role, Expr::value(role.as_str()));
        }
        if let Some(disabled) = disabled {
            update = update.col_expr(entity::user::Column::Disabled, Expr::value(disabled));
        }
        update.exec(&db).await.expect("update user");
        db.close().await.ok();
    }

    /// Signs in with `creds` as their own user: the status and the error code (if any).
    pub async fn signin_outcome(&self, creds: &Credentials) -> (StatusCode, Option<String>) {
        let (status, body) = json(self.signin_with_proof(creds, None).await).await;
        let code = (status != StatusCode::OK).then(|| error_code(&body).to_owned());
        (status, code)
    }

    /// Another node of this app's fleet: same database, secrets, settings (set
    /// `server.public_url`, e.g. [`FLEET_URL`], so tokens of one node verify at the other)
    /// and clock. Returns its base URL.
    pub async fn second_node(&self) -> String {
        let mut settings = (*self.state.settings).clone();
        settings.server.bind = "127.0.0.1:0".into();
        let node = Application::build(settings, self.clock.clone())
            .await
            .expect("second node builds");
        let address = format!("http://{}", node.local_addr());
        tokio::spawn(node.run_until_stopped());
        address
    }

    /// Signs in with `creds` as their key's owner, with a `DPoP` proof when one is given.
    pub async fn signin_with_proof(&self, creds: &Credentials, proof: Option<&str>) -> Response {
        let mut req = self
            .client
            .post(self.url(&format!("/v1/{}/user/signin_with_api_key", creds.org)))
            .header("x-api-key", &creds.api_key)
            .header("x-api-key-id", &creds.api_key_id)
            .header("x-user-id", &creds.user_id);
        if let Some(proof) = proof {
            req = req.header("dpop", proof);
        }
        req.send().await.expect("signin request")
    }

    /// Signs in as `user_id` with `creds`' key, expecting success; returns the body.
    pub async fn signin_as(&self, creds: &Credentials, user_id: &str) -> Value {
        let res = self
            .signin_raw(
                &creds.org,
                Some(&creds.api_key),
                Some(&creds.api_key_id),
                Some(user_id),
            )
            .await;
        let (status, body) = json(res).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    pub async fn signin(&self, creds: &Credentials) -> Value {
        self.signin_as(creds, &creds.user_id).await
    }

    /// `GET /v1/{org}/user/me` with `Authorization: Bearer {token}`.
    pub async fn me(&self, org: &str, token: &str) -> Response {
        self.client
            .get(self.url(&format!("/v1/{org}/user/me")))
            .bearer_auth(token)
            .send()
            .await
            .expect("me request")
    }

    pub async fn jwks(&self) -> Value {
        let (status, body) = json(
            self.client
                .get(self.url("/.well-known/jwks.json"))
                .send()
                .await
                .expect("jwks"),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        body
    }

    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Creates an organization with an owner and a key, through the same code the CLI uses.
    pub async fn create_org(&self, slug: &str) -> Credentials {
        let storage = &self.state.storage;
        let org = keygate::admin::create_org(
            storage,
            self.clock.as_ref(),
            &keygate::types::Slug::parse(slug).unwrap(),
            None,
        )
        .await
        .unwrap();
        let user = keygate::admin::create_user(
            storage,
            self.clock.as_ref(),
            &org,
            &format!("owner@{slug}.test"),
            None,
            keygate::types::Role::Owner,
        )
        .await
        .unwrap();
        self.create_key(slug, &user.id).await
    }

    /// Adds a user with `role` to `org` and gives them a key.
    pub async fn create_user(&self, org: &str, role: keygate::types::Role) -> Credentials {
        let model = keygate::admin::find_org(&self.state.storage, org)
            .await
            .unwrap();
        let email = format!(
            "{}@{org}.test",
            keygate::ids::random_base62(8).to_lowercase()
        );
        let user = keygate::admin::create_user(
            &self.state.storage,
            self.clock.as_ref(),
            &model,
            &email,
            None,
            role,
        )
        .await
        .unwrap();
        self.create_key(org, &user.id).await
    }

    pub async fn create_key(&self, org: &str, user_id: &str) -> Credentials {
        self.create_key_for(org, user_id, None).await
    }

    pub async fn create_key_for(
        &self,
        org: &str,
        user_id: &str,
        duration: Option<Duration>,
    ) -> Credentials {
        self.create_key_from(org, user_id, duration, None).await
    }

    /// A key of `user_id` limited to keygate's `scopes` (and no resource scope).
    pub async fn create_scoped_key(
        &self,
        org: &str,
        user_id: &str,
        scopes: &[&str],
    ) -> Credentials {
        let scopes = keygate::types::Scopes::parse(scopes.iter().copied()).unwrap();
        self.create_key_from(org, user_id, None, Some(scopes)).await
    }

    async fn create_key_from(
        &self,
        org: &str,
        user_id: &str,
        duration: Option<Duration>,
        scopes: Option<keygate::types::Scopes>,
    ) -> Credentials {
        let model = keygate::admin::find_org(&self.state.storage, org)
            .await
            .unwrap();
        // A listed key lists its resource scopes too: none.
        let resource_scopes = scopes.as_ref().map(|_| Default::default());
        let created = keygate::admin::create_key(
            &self.state.storage,
            &self.state.pepper,
            self.clock.as_ref(),
            &self.state.settings.api_keys,
            &model,
            keygate::admin::NewKey {
                user_id: user_id.to_owned(),
                name: "test".into(),
                duration,
                environment: keygate::types::Environment::Live,
                scopes,
                resource_scopes,
                public_jwks: None,
            },
        )
        .await
        .unwrap();
        Credentials {
            org: org.to_owned(),
            user_id: user_id.to_owned(),
            api_key_id: created.key.id,
            api_key: created.secret.unwrap().expose().to_owned(),
        }
    }

    /// Every audit event of the organization, after the writer has caught up.
    pub async fn audit_events(&self, org: &str) -> Vec<entity::audit_event::Model> {
        self.state.audit.flush().await;
        let model = keygate::admin::find_org(&self.state.storage, org)
            .await
            .unwrap();
        keygate::storage::audit::list(&self.state.storage, &model.id)
            .await
            .unwrap()
    }
}

/// Decodes a JWT's payload without verifying it (to read claims in assertions).
pub fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("JWT payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

pub const ALL_ALGS: [SigningAlg; 2] = [SigningAlg::ES256, SigningAlg::EdDSA];
