//! API keys and the scopes of protected resources (RFC 8707): a key created with `scopes`
//! may list resource scopes (validated against the organization's resources) and then uses
//! only those; a key created without may use every one; a key's resource scopes give it
//! nothing at keygate itself; keys from before resource scopes keep their powers.

use keygate::types::{Role, Scopes};
use reqwest::StatusCode;
use sea_orm::{Database, EntityTrait};
use serde_json::{Value, json};

use crate::admin_helpers::Reply;
use crate::cli::{keygate, keygate_json};
use crate::helpers::{Credentials, TestApp, claims_of, spawn_app};
use crate::resources::{FILES, MCP, cc, register, signin};

/// `POST /v1/default/api_keys` as the owner.
async fn create(app: &TestApp, body: Value) -> Reply {
    let token = app.session(&app.owner).await.token;
    app.post_as(&token, "/v1/default/api_keys", &body).await
}

/// A new key of a new service account, created by the owner with `scopes` (if given).
async fn agent_key(app: &TestApp, scopes: Option<&[&str]>) -> (Credentials, Value) {
    let user = app.create_user("default", Role::Service).await;
    let mut body = json!({"name": "agent", "user_id": user.user_id});
    if let Some(scopes) = scopes {
        body["scopes"] = json!(scopes);
    }
    let reply = create(app, body).await;
    let created = reply.expect(StatusCode::CREATED).clone();
    (app.creds_from(&reply), created)
}

#[track_caller]
fn granted(status: StatusCode, body: &Value, scope: &str) {
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], scope, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(claims_of(token)["scope"], scope);
}

#[track_caller]
fn invalid_scope(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_scope", "{body}");
}

#[tokio::test]
async fn a_key_listing_one_resource_scope_gets_exactly_it_and_nothing_of_keygate() {
    let app = spawn_app().await;
    register(&app, &app.owner, MCP, &["mcp:tools", "files:read"], None).await;
    let (agent, created) = agent_key(&app, Some(&["mcp:tools"])).await;
    assert_eq!(created["scopes"], json!(["mcp:tools"]));
    assert_eq!(created["all_resource_scopes"], false);

    // Without `scope`: the resource's scopes the key may use, not the others.
    let (status, body) = cc(&app, &agent, &[MCP], None).await;
    granted(status, &body, "mcp:tools");
    let (status, body) = cc(&app, &agent, &[MCP], Some("mcp:tools")).await;
    granted(status, &body, "mcp:tools");
    for scope in ["files:read", "mcp:tools files:read"] {
        let (status, body) = cc(&app, &agent, &[MCP], Some(scope)).await;
        invalid_scope(status, &body);
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("not granted"),
            "{body}"
        );
    }
    let reply = signin(&app, &agent, &[MCP]).await;
    assert_eq!(reply.expect(StatusCode::OK)["scope"], "mcp:tools");

    // A resource whose scopes the key lists none of: refused, not an empty token.
    register(&app, &app.owner, FILES, &["files:read"], None).await;
    let (status, body) = cc(&app, &agent, &[FILES], None).await;
    invalid_scope(status, &body);

    // For keygate itself the key holds no scope: its token reaches no admin route.
    let (status, body) = cc(&app, &agent, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "");
    let own = body["access_token"].as_str().unwrap();
    assert_eq!(claims_of(own)["scope"], "");
    app.get_as(own, "/v1/default/api_keys")
        .await
        .expect_error(StatusCode::FORBIDDEN, "insufficient_scope");
    let (status, body) = cc(&app, &agent, &[], Some("mcp:tools")).await;
    invalid_scope(status, &body);
    let session = app.session(&agent).await;
    app.get_as(&session.token, "/v1/default/resources")
        .await
        .expect_error(StatusCode::FORBIDDEN, "insufficient_scope");
    assert_eq!(claims_of(&session.token)["scope"], "");

    // The list is shown as created, and a rotation keeps it.
    let owner = app.session(&app.owner).await.token;
    let path = format!("/v1/default/api_keys/{}", agent.api_key_id);
    let shown = app.get_as(&owner, &path).await;
    assert_eq!(shown.expect(StatusCode::OK)["scopes"], json!(["mcp:tools"]));
    let rotated = app
        .post_as(&owner, &format!("{path}/rotate"), &json!({}))
        .await;
    assert_eq!(
        rotated.expect(StatusCode::CREATED)["all_resource_scopes"],
        false
    );
    let (status, body) = cc(&app, &app.creds_from(&rotated), &[MCP], None).await;
    granted(status, &body, "mcp:tools");
}

#[tokio::test]
async fn a_key_created_without_a_list_may_use_every_resource_scope() {
    let app = spawn_app().await;
    let (agent, created) = agent_key(&app, None).await;
    assert_eq!(created["all_resource_scopes"], true);
    assert_eq!(
        created["scopes"],
        json!(Scopes::all().iter().collect::<Vec<_>>()),
        "keygate's scopes of the owner's token"
    );
    // Resources registered after the key was created count too.
    register(&app, &app.owner, MCP, &["mcp:tools", "files:read"], None).await;
    register(&app, &app.owner, FILES, &["files:write"], None).await;
    let (status, body) = cc(&app, &agent, &[MCP], None).await;
    granted(status, &body, "files:read mcp:tools");
    let (status, body) = cc(&app, &agent, &[MCP, FILES], None).await;
    granted(status, &body, "files:read files:write mcp:tools");
    // The bootstrap key (the operator's, no list) too.
    let (status, body) = cc(&app, &app.owner, &[FILES], Some("files:write")).await;
    granted(status, &body, "files:write");
}

#[tokio::test]
async fn a_key_listing_keygate_and_resource_scopes_uses_each_where_it_belongs() {
    let app = spawn_app().await;
    register(&app, &app.owner, MCP, &["mcp:tools", "files:read"], None).await;
    let (agent, created) = agent_key(&app, Some(&["mcp:tools", "keys:read"])).await;
    assert_eq!(created["scopes"], json!(["keys:read", "mcp:tools"]));

    let (status, body) = cc(&app, &agent, &[MCP], None).await;
    granted(status, &body, "mcp:tools");
    let (status, body) = cc(&app, &agent, &[], None).await;
    granted(status, &body, "keys:read");
    let own = body["access_token"].as_str().unwrap();
    app.get_as(own, "/v1/default/api_keys")
        .await
        .expect(StatusCode::OK);
    app.get_as(own, "/v1/default/users")
        .await
        .expect_error(StatusCode::FORBIDDEN, "insufficient_scope");
}

#[tokio::test]
async fn a_key_narrowed_to_keygate_scopes_gets_no_resource_scope_as_before() {
    let app = spawn_app().await;
    register(&app, &app.owner, MCP, &["mcp:tools"], None).await;
    let (agent, created) = agent_key(&app, Some(&["keys:read"])).await;
    assert_eq!(created["scopes"], json!(["keys:read"]));
    assert_eq!(created["all_resource_scopes"], false);
    let (status, body) = cc(&app, &agent, &[MCP], None).await;
    invalid_scope(status, &body);
    let (status, body) = cc(&app, &agent, &[MCP], Some("mcp:tools")).await;
    invalid_scope(status, &body);
    let (status, body) = cc(&app, &agent, &[], None).await;
    granted(status, &body, "keys:read");
}

#[tokio::test]
async fn a_listed_scope_must_be_keygates_or_a_registered_resources() {
    let app = spawn_app().await;
    let user = app.create_user("default", Role::Service).await;
    let body = |scopes: &[&str]| json!({"name": "k", "user_id": user.user_id, "scopes": scopes});

    for (scopes, named) in [
        (&["mcp:tools"][..], "`mcp:tools`"),
        (&["keys:read", "files:read"][..], "`files:read`"),
        (&["a b"][..], "`a b`"),
        (&["quote\"d"][..], "quote"),
    ] {
        let reply = create(&app, body(scopes)).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
        assert!(
            reply.message().contains(named),
            "{scopes:?}: {}",
            reply.body
        );
    }
    register(&app, &app.owner, MCP, &["mcp:tools"], None).await;
    create(&app, body(&["mcp:tools"]))
        .await
        .expect(StatusCode::CREATED);
    let reply = create(&app, body(&["mcp:tools", "files:read"])).await;
    reply.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    assert!(reply.message().contains("`files:read`"), "{}", reply.body);
}

#[tokio::test]
async fn the_cli_lists_resource_scopes_validated_against_the_organizations_resources() {
    let app = spawn_app().await;
    let user = app.create_user("default", Role::Service).await;
    let args = |scope: &'static str| -> Vec<String> {
        ["key", "create", "--org", "default", "--user", &user.user_id]
            .iter()
            .map(|s| (*s).to_owned())
            .chain(["--scope".into(), scope.into(), "--json".into()])
            .collect()
    };
    let unknown = args("mcp:tools");
    let out = keygate(
        &app,
        &unknown.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`mcp:tools`"), "{stderr}");

    register(&app, &app.owner, MCP, &["mcp:tools", "files:read"], None).await;
    let ok = args("mcp:tools");
    let created = keygate_json(&app, &ok.iter().map(String::as_str).collect::<Vec<_>>());
    let agent = Credentials {
        org: "default".into(),
        user_id: user.user_id.clone(),
        api_key_id: created["api_key_id"].as_str().unwrap().to_owned(),
        api_key: created["api_key"].as_str().unwrap().to_owned(),
    };
    let (status, body) = cc(&app, &agent, &[MCP], None).await;
    granted(status, &body, "mcp:tools");
    let (status, body) = cc(&app, &agent, &[], None).await;
    granted(status, &body, "");

    let listed = keygate_json(&app, &["key", "list", "--org", "default", "--json"]);
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["api_key_id"] == agent.api_key_id)
        .unwrap();
    assert_eq!(row["scopes"], "mcp:tools");
    assert_eq!(row["all_resource_scopes"], false);
}

/// Runs the schema back to before `api_keys.resource_scopes` and forward again: what the
/// migration makes of keys that existed before it.
async fn remigrate(app: &TestApp) {
    use migration::{Migrator, MigratorTrait};
    let all = Migrator::migrations();
    let at = all
        .iter()
        .position(|m| m.name() == "m20261202_000050_key_resource_scopes")
        .expect("the migration is listed");
    let db = Database::connect(&app.db.url).await.unwrap();
    let later = u32::try_from(all.len() - at).unwrap();
    Migrator::down(&db, Some(later)).await.unwrap();
    Migrator::up(&db, None).await.unwrap();
    db.close().await.ok();
    app.state.directory.keys_changed();
}

#[tokio::test]
async fn keys_from_before_resource_scopes_keep_their_powers() {
    let app = spawn_app().await;
    register(&app, &app.owner, MCP, &["mcp:tools", "files:read"], None).await;
    // Created as before: the bootstrap key (all eight of keygate's scopes), a key listing
    // the six original ones (what a key created without a list held), a narrowed one.
    let six = ["keys:read", "keys:write", "users:read", "users:write"]
        .into_iter()
        .chain(["sessions:write", "audit:read"]);
    let (full, _) = agent_key(&app, Some(&six.collect::<Vec<_>>())).await;
    let (narrow, _) = agent_key(&app, Some(&["keys:read", "users:read"])).await;
    remigrate(&app).await;

    let db = Database::connect(&app.db.url).await.unwrap();
    let stored = |id: String| {
        let db = db.clone();
        async move {
            entity::api_key::Entity::find_by_id(id)
                .one(&db)
                .await
                .unwrap()
                .unwrap()
                .resource_scopes
        }
    };
    assert_eq!(stored(app.owner.api_key_id.clone()).await, None);
    assert_eq!(stored(full.api_key_id.clone()).await, None);
    assert_eq!(stored(narrow.api_key_id.clone()).await.as_deref(), Some(""));

    for key in [&app.owner, &full] {
        let (status, body) = cc(&app, key, &[MCP], None).await;
        granted(status, &body, "files:read mcp:tools");
    }
    let (status, body) = cc(&app, &narrow, &[MCP], None).await;
    invalid_scope(status, &body);
    let (status, body) = cc(&app, &narrow, &[], None).await;
    granted(status, &body, "keys:read users:read");
}
