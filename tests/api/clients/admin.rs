//! Registered clients through the admin API and the CLI: their life, who may manage them,
//! the secret shown once and stored as a digest, each redirect URI rule, deleting a client
//! ends its sessions, and the audit trail.

use keygate::types::Role;
use reqwest::StatusCode;
use sea_orm::{ActiveModelTrait, Database, EntityTrait};
use serde_json::{Value, json};

use super::{basic, create, identified, owner_token, registered};
use crate::cli::{keygate, keygate_json};
use crate::client_assertion::Signer;
use crate::helpers::spawn_app;

const CLIENTS: &str = "/v1/default/clients";

fn path(id: &str) -> String {
    format!("{CLIENTS}/{id}")
}

fn body(auth: &str) -> Value {
    json!({
        "client_name": "Acme desktop agent",
        "redirect_uris": ["https://agent.example/cb", "http://127.0.0.1/callback"],
        "token_endpoint_auth_method": auth,
        "scope": "mcp:tools files:read",
    })
}

#[tokio::test]
async fn owners_and_admins_create_read_list_and_delete_clients_and_each_write_is_audited() {
    let app = spawn_app().await;
    let owner = owner_token(&app).await;
    let admin = app.create_user("default", Role::Admin).await;
    let admin = app.session(&admin).await.token;

    let created = create(&app, &owner, &body("none")).await;
    let c = created.expect(StatusCode::CREATED).clone();
    app.clock.advance(std::time::Duration::from_secs(1));
    let id = c["client_id"].as_str().unwrap().to_owned();
    assert!(keygate::ids::is_id(&id, "cli"), "{id}");
    assert_eq!(c["client_name"], "Acme desktop agent");
    assert_eq!(
        c["redirect_uris"],
        json!(["https://agent.example/cb", "http://127.0.0.1/callback"])
    );
    assert_eq!(c["token_endpoint_auth_method"], "none");
    assert_eq!(c["scope"], "files:read mcp:tools", "sorted and distinct");
    assert_eq!(c["source"], "registered");
    assert!(
        c.get("client_secret").is_none(),
        "a public client has no secret"
    );
    assert_eq!(created.header("cache-control").as_deref(), Some("no-store"));

    // Read and listed by the owner and by an admin, with the same body.
    for token in [&owner, &admin] {
        assert_eq!(
            app.get_as(token, &path(&id)).await.expect(StatusCode::OK),
            &c
        );
    }
    let second = create(&app, &admin, &body("client_secret_basic")).await;
    let second_id = second.str("client_id");
    let listed = app.list_all(&owner, CLIENTS, 1).await;
    let ids: Vec<&str> = listed
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [second_id.as_str(), id.as_str()],
        "newest first, one per page"
    );

    // The client resolves for the flows.
    let org = super::org(&app, "default").await;
    let resolved = keygate::clients::resolve(&app.state, &org, &id)
        .await
        .unwrap();
    assert_eq!(resolved.name, "Acme desktop agent");
    assert_eq!(resolved.auth, keygate::clients::ClientAuth::None);
    assert_eq!(resolved.source, keygate::clients::ClientSource::Registered);
    assert_eq!(resolved.scope.as_deref(), Some("files:read mcp:tools"));
    assert!(resolved.accepts_redirect_uri("http://127.0.0.1:53124/callback"));
    assert!(!resolved.accepts_redirect_uri("https://agent.example/cb/x"));

    app.delete_as(&admin, &path(&second_id))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.delete_as(&owner, &path(&id))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get_as(&owner, &path(&id))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete_as(&owner, &path(&id))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert!(matches!(
        keygate::clients::resolve(&app.state, &org, &id).await,
        Err(keygate::clients::ClientError::Unknown)
    ));
    assert_eq!(
        identified(&app, None, &[("client_id", &id)]).await,
        Err("invalid_client".into())
    );

    let events = app.audit_events("default").await;
    let mine: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.target_type.as_deref() == Some("client"))
        .map(|e| (e.action.as_str(), e.target_id.as_deref().unwrap()))
        .collect();
    for expected in [
        ("client.created", id.as_str()),
        ("client.created", second_id.as_str()),
        ("client.deleted", id.as_str()),
        ("client.deleted", second_id.as_str()),
    ] {
        assert!(mine.contains(&expected), "{expected:?} in {mine:?}");
    }
}

#[tokio::test]
async fn members_and_service_accounts_may_not_see_or_manage_clients() {
    let app = spawn_app().await;
    let id = registered(&app, "none").await.str("client_id");
    for role in [Role::Member, Role::Service] {
        let creds = app.create_user("default", role).await;
        let token = app.session(&creds).await.token;
        create(&app, &token, &body("none"))
            .await
            .expect_error(StatusCode::FORBIDDEN, "permission_denied");
        app.get_as(&token, CLIENTS)
            .await
            .expect_error(StatusCode::FORBIDDEN, "permission_denied");
        app.get_as(&token, &path(&id))
            .await
            .expect_error(StatusCode::FORBIDDEN, "permission_denied");
        app.delete_as(&token, &path(&id))
            .await
            .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    }
    // An owner's key without the clients scopes: insufficient_scope, naming it.
    let narrow = app
        .create_scoped_key("default", &app.owner.user_id, &["clients:read"])
        .await;
    let narrow = app.session(&narrow).await.token;
    app.get_as(&narrow, &path(&id)).await.expect(StatusCode::OK);
    let denied = create(&app, &narrow, &body("none")).await;
    denied.expect_error(StatusCode::FORBIDDEN, "insufficient_scope");
    assert!(
        denied
            .header("www-authenticate")
            .is_some_and(|h| h.contains("scope=\"clients:write\"")),
        "{:?}",
        denied.headers
    );
    // Still there, and nothing was created.
    let owner = owner_token(&app).await;
    assert_eq!(app.list_all(&owner, CLIENTS, 50).await.len(), 1);
    let events = app.audit_events("default").await;
    assert!(events.iter().any(|e| e.action == "permission.denied"
        && e.reason.as_deref() == Some("permission_denied:clients.write")));
}

#[tokio::test]
async fn a_client_secret_is_shown_once_and_stored_only_as_a_digest() {
    let app = spawn_app().await;
    let created = registered(&app, "client_secret_basic").await;
    let id = created.str("client_id");
    let secret = created.str("client_secret");
    assert!(secret.starts_with("kgcs_") && secret.len() > 40, "{secret}");

    let owner = owner_token(&app).await;
    let got = app.get_as(&owner, &path(&id)).await;
    assert!(got.expect(StatusCode::OK).get("client_secret").is_none());
    let listed = app.list_all(&owner, CLIENTS, 50).await;
    assert!(listed.iter().all(|c| c.get("client_secret").is_none()));

    let dump = app.db.dump().await;
    assert!(!dump.contains(&secret), "the secret is not at rest");
    let digest = app.state.pepper.digest("client_secret", secret.as_bytes());
    assert!(dump.contains(&digest), "its digest is");

    // The secret authenticates the client (Basic and form), nothing else does.
    assert_eq!(
        identified(&app, Some(&basic(&id, &secret)), &[]).await,
        Ok(id.clone())
    );
    assert_eq!(
        identified(
            &app,
            None,
            &[("client_id", &id), ("client_secret", &secret)]
        )
        .await,
        Ok(id.clone())
    );
    let other = registered(&app, "client_secret_basic")
        .await
        .str("client_secret");
    assert_eq!(
        identified(&app, Some(&basic(&id, &other)), &[]).await,
        Err("invalid_client".into()),
        "another client's secret"
    );
}

#[tokio::test]
async fn each_redirect_uri_rule_is_enforced_at_registration() {
    let app = spawn_app().await;
    let owner = owner_token(&app).await;
    let with = |uris: Value| json!({"client_name": "c", "redirect_uris": uris, "token_endpoint_auth_method": "none"});
    for ok in [
        json!(["https://app.example/callback"]),
        json!(["https://app.example:8443/cb?tenant=1"]),
        json!(["http://127.0.0.1/callback"]),
        json!(["http://127.0.0.1:8080/callback"]),
        json!(["http://[::1]/callback"]),
        json!(["http://localhost:6274/oauth/callback"]),
        json!(["com.example.app:/oauth2redirect"]),
        json!([
            "https://a.example/1",
            "https://a.example/2",
            "com.example.app:/cb"
        ]),
    ] {
        create(&app, &owner, &with(ok.clone()))
            .await
            .expect(StatusCode::CREATED);
    }
    for (bad, says) in [
        (json!([]), "at least one"),
        (json!(["/callback"]), "absolute"),
        (json!(["https://app.example/cb#frag"]), "fragment"),
        (json!(["http://app.example/callback"]), "loopback"),
        (json!(["http://10.0.0.7/callback"]), "loopback"),
        (json!(["myapp:/callback"]), "private-use"),
        (json!(["javascript:alert(1)"]), "never"),
        (json!(["https://user:pw@app.example/cb"]), "password"),
        (
            json!(["https://a.example/cb", "https://a.example/cb"]),
            "twice",
        ),
    ] {
        let reply = create(&app, &owner, &with(bad.clone())).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(reply.message().contains(says), "{bad}: {}", reply.message());
    }
    // Not a list at all, and unknown fields: refused by the body's type.
    create(&app, &owner, &with(json!("https://a.example/cb")))
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    let mut unknown = with(json!(["https://a.example/cb"]));
    unknown["logo_uri"] = json!("https://a.example/logo.png");
    create(&app, &owner, &unknown)
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(app.list_all(&owner, CLIENTS, 50).await.len(), 8);
}

#[tokio::test]
async fn authentication_methods_and_their_keys_are_checked_at_registration() {
    let app = spawn_app().await;
    let owner = owner_token(&app).await;
    let signer = Signer::es256();
    let mut jwt = body("private_key_jwt");
    jwt["jwks"] = signer.jwks();
    let c = create(&app, &owner, &jwt).await;
    let c = c.expect(StatusCode::CREATED);
    assert_eq!(c["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(c["jwks"]["keys"][0]["x"], signer.jwk()["x"]);
    assert!(c.get("client_secret").is_none());

    // Default: client_secret_basic, as in RFC 7591.
    let mut default = body("none");
    default
        .as_object_mut()
        .unwrap()
        .remove("token_endpoint_auth_method");
    let d = create(&app, &owner, &default).await;
    assert_eq!(
        d.expect(StatusCode::CREATED)["token_endpoint_auth_method"],
        "client_secret_basic"
    );

    let mut private = jwt.clone();
    private["jwks"]["keys"][0]["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
    let mut keys_for_secret = body("client_secret_basic");
    keys_for_secret["jwks"] = signer.jwks();
    let mut no_keys = jwt.clone();
    no_keys.as_object_mut().unwrap().remove("jwks");
    for (bad, says) in [
        (private, "private"),
        (keys_for_secret, "only for"),
        (no_keys, "jwks"),
        (body("client_secret_post"), "token_endpoint_auth_method"),
        (body("tls_client_auth"), "token_endpoint_auth_method"),
        (
            json!({"client_name": "", "redirect_uris": ["https://a.example/cb"]}),
            "client_name",
        ),
        (
            json!({"client_name": "c", "redirect_uris": ["https://a.example/cb"], "scope": "a\"b"}),
            "scope",
        ),
    ] {
        let reply = create(&app, &owner, &bad).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(reply.message().contains(says), "{bad}: {}", reply.message());
    }
}

#[tokio::test]
async fn clients_of_one_organization_are_invisible_to_another() {
    let app = spawn_app().await;
    let id = registered(&app, "none").await.str("client_id");
    let acme = app.create_org("acme").await;
    let acme_token = app.session(&acme).await.token;
    for reply in [
        app.get_as(&acme_token, &format!("/v1/acme/clients/{id}"))
            .await,
        app.delete_as(&acme_token, &format!("/v1/acme/clients/{id}"))
            .await,
    ] {
        reply.expect_error(StatusCode::NOT_FOUND, "not_found");
    }
    assert!(
        app.list_page(&acme_token, "/v1/acme/clients")
            .await
            .is_empty()
    );
    let acme_org = super::org(&app, "acme").await;
    assert!(matches!(
        keygate::clients::resolve(&app.state, &acme_org, &id).await,
        Err(keygate::clients::ClientError::Unknown)
    ));
    // Still there at home.
    let owner = owner_token(&app).await;
    app.get_as(&owner, &path(&id)).await.expect(StatusCode::OK);
}

/// A session of `client_id` (as the flows record one: the client id in `api_key_id`),
/// written straight to the database. Until the authorization-code branch's migration drops
/// the `sessions.api_key_id` → `api_keys` foreign key, the row is written with foreign key
/// checks off, on one connection.
async fn session_of(app: &crate::helpers::TestApp, client_id: &str) -> String {
    use sea_orm::{ConnectOptions, ConnectionTrait, TransactionTrait};
    let org = super::org(app, "default").await;
    let now = app.now();
    let id = keygate::ids::new_id("ses");
    let mut options = ConnectOptions::new(app.db.url.clone());
    options.max_connections(1).min_connections(1);
    let db = Database::connect(options).await.unwrap();
    let txn = if app.db.is_postgres() {
        let txn = db.begin().await.unwrap();
        txn.execute_unprepared("SET LOCAL session_replication_role = replica")
            .await
            .unwrap();
        Some(txn)
    } else {
        db.execute_unprepared("PRAGMA foreign_keys = OFF")
            .await
            .unwrap();
        None
    };
    let row = entity::session::ActiveModel::from(entity::session::Model {
        id: id.clone(),
        org_id: org.id,
        user_id: app.owner.user_id.clone(),
        api_key_id: client_id.to_owned(),
        actor_user_id: None,
        dpop_jkt: None,
        scope: "mcp:tools".into(),
        created_at: now,
        expires_at: now + chrono::Duration::days(1),
        revoked_at: None,
        refreshed_at: None,
        resources: None,
        parent_session_id: None,
        actor_session_id: None,
    });
    match txn {
        Some(txn) => {
            row.insert(&txn).await.unwrap();
            txn.commit().await.unwrap();
        }
        None => {
            row.insert(&db).await.unwrap();
        }
    }
    db.close().await.ok();
    id
}

async fn revoked_at(
    app: &crate::helpers::TestApp,
    session: &str,
) -> Option<chrono::DateTime<chrono::Utc>> {
    let db = Database::connect(&app.db.url).await.unwrap();
    let row = entity::session::Entity::find_by_id(session)
        .one(&db)
        .await
        .unwrap()
        .unwrap();
    db.close().await.ok();
    row.revoked_at
}

#[tokio::test]
async fn deleting_a_client_ends_its_sessions_and_only_its_own() {
    let app = spawn_app().await;
    let doomed = registered(&app, "none").await.str("client_id");
    let kept = registered(&app, "none").await.str("client_id");
    let (a, b) = (
        session_of(&app, &doomed).await,
        session_of(&app, &doomed).await,
    );
    let other = session_of(&app, &kept).await;
    let org = super::org(&app, "default").await;
    // This node has the sessions cached as live.
    for s in [&a, &b, &other] {
        let cached = app
            .state
            .revocations
            .session(&app.state.storage, &org.id, s)
            .await
            .unwrap();
        assert!(cached.unwrap().revoked_at.is_none());
    }

    let owner = owner_token(&app).await;
    app.delete_as(&owner, &path(&doomed))
        .await
        .expect(StatusCode::NO_CONTENT);
    for s in [&a, &b] {
        let at = revoked_at(&app, s).await.expect("ended");
        assert!((app.now() - at).num_seconds().abs() < 1, "{s} ended now");
        // And this node sees it at once, not after the cache's window.
        let seen = app
            .state
            .revocations
            .session(&app.state.storage, &org.id, s)
            .await
            .unwrap();
        assert!(seen.unwrap().revoked_at.is_some(), "{s}");
    }
    assert_eq!(
        revoked_at(&app, &other).await,
        None,
        "another client's session lives"
    );
}

#[tokio::test]
async fn the_cli_creates_lists_and_deletes_clients() {
    let app = spawn_app().await;
    let created = keygate_json(
        &app,
        &[
            "client",
            "create",
            "--org",
            "default",
            "--name",
            "CLI agent",
            "--redirect-uri",
            "http://127.0.0.1/callback",
            "--redirect-uri",
            "com.example.agent:/cb",
            "--json",
        ],
    );
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(
        identified(&app, Some(&basic(&id, &secret)), &[]).await,
        Ok(id.clone())
    );

    let signer = Signer::es256();
    let jwks_file = app.data_dir.path().join("agent-jwks.json");
    std::fs::write(&jwks_file, signer.jwks().to_string()).unwrap();
    let jwt = keygate_json(
        &app,
        &[
            "client",
            "create",
            "--org",
            "default",
            "--name",
            "Key agent",
            "--redirect-uri",
            "https://agent.example/cb",
            "--auth",
            "private_key_jwt",
            "--jwks",
            jwks_file.to_str().unwrap(),
            "--json",
        ],
    );
    assert!(jwt.get("client_secret").is_none());

    let listed = keygate_json(&app, &["client", "list", "--org", "default", "--json"]);
    assert_eq!(listed.as_array().unwrap().len(), 2);

    let bad = keygate(
        &app,
        &[
            "client",
            "create",
            "--org",
            "default",
            "--name",
            "x",
            "--redirect-uri",
            "http://evil.example/cb",
        ],
    );
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("loopback"));

    let deleted = keygate_json(
        &app,
        &["client", "delete", "--org", "default", &id, "--json"],
    );
    assert_eq!(deleted["deleted"], true);
    assert_eq!(
        identified(&app, Some(&basic(&id, &secret)), &[]).await,
        Err("invalid_client".into())
    );
    assert!(
        !keygate(&app, &["client", "delete", "--org", "default", &id])
            .status
            .success()
    );
}
