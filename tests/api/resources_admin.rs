//! Protected resources through the admin API and the CLI: the life of a resource, who may
//! manage it, validation, the RFC 9728 document, and the audit trail.

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::cli::{keygate, keygate_json};
use crate::helpers::{claims_of, spawn_app};
use crate::resources::{FILES, MCP, cc};

const RESOURCES: &str = "/v1/default/resources";

fn path(id: &str) -> String {
    format!("{RESOURCES}/{id}")
}

fn body(uri: &str) -> Value {
    json!({"uri": uri, "name": "MCP server", "scopes": ["mcp:tools", "files:read", "mcp:tools"], "access_ttl": "5m"})
}

#[tokio::test]
async fn owners_register_read_change_and_remove_resources_and_each_write_is_audited() {
    let app = spawn_app().await;
    let owner = app.session(&app.owner).await.token;

    let created = app
        .post_as(&owner, RESOURCES, &body("HTTPS://MCP.Example.com:443/mcp"))
        .await;
    let r = created.expect(StatusCode::CREATED).clone();
    let id = r["id"].as_str().unwrap().to_owned();
    assert!(keygate::ids::is_id(&id, "res"), "{id}");
    assert_eq!(r["uri"], MCP, "stored normalized");
    assert_eq!(r["name"], "MCP server");
    assert_eq!(r["scopes"], json!(["files:read", "mcp:tools"]));
    assert_eq!(r["access_ttl"], "5m");
    assert!(r["created_at"].is_string() && r["updated_at"].is_string());

    assert_eq!(
        app.get_as(&owner, &path(&id)).await.expect(StatusCode::OK),
        &r
    );
    let listed = app.list_all(&owner, RESOURCES, 1).await;
    assert_eq!(listed, vec![r.clone()]);

    let changed = app
        .patch_as(
            &owner,
            &path(&id),
            &json!({"name": "Tools", "scopes": ["mcp:tools"], "access_ttl": null}),
        )
        .await;
    let c = changed.expect(StatusCode::OK).clone();
    assert_eq!(c["name"], "Tools");
    assert_eq!(c["scopes"], json!(["mcp:tools"]));
    assert!(c["access_ttl"].is_null(), "{c}");
    assert_eq!(c["uri"], MCP, "unchanged");
    // The change shows in the next token.
    let (status, token) = cc(&app, &app.owner, &[MCP], None).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(token["scope"], "mcp:tools");
    assert_eq!(token["expires_in"], 900);

    app.delete_as(&owner, &path(&id))
        .await
        .expect(StatusCode::NO_CONTENT);
    app.get_as(&owner, &path(&id))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    app.delete_as(&owner, &path(&id))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    let events = app.audit_events("default").await;
    for action in ["resource.created", "resource.updated", "resource.deleted"] {
        let event = events
            .iter()
            .find(|e| e.action == action)
            .unwrap_or_else(|| panic!("no {action} event"));
        assert_eq!(event.target_type.as_deref(), Some("resource"));
        assert_eq!(event.target_id.as_deref(), Some(id.as_str()));
        assert_eq!(
            event.actor_user_id.as_deref(),
            Some(app.owner.user_id.as_str())
        );
    }
}

#[tokio::test]
async fn only_owners_and_admins_manage_resources_and_tokens_need_the_resources_scopes() {
    let app = spawn_app().await;
    let owner = app.session(&app.owner).await.token;
    let id = app.post_as(&owner, RESOURCES, &body(MCP)).await.str("id");

    let admin = app.create_user("default", Role::Admin).await;
    let admin = app.session(&admin).await.token;
    let r = app.post_as(&admin, RESOURCES, &body(FILES)).await;
    let files_id = r.expect(StatusCode::CREATED)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.get_as(&admin, &path(&id)).await.expect(StatusCode::OK);
    app.patch_as(&admin, &path(&id), &json!({"name": "x"}))
        .await
        .expect(StatusCode::OK);
    app.delete_as(&admin, &path(&files_id))
        .await
        .expect(StatusCode::NO_CONTENT);

    for role in [Role::Member, Role::Service] {
        let c = app.create_user("default", role).await;
        let t = app.session(&c).await.token;
        let metadata = format!("{}/protected-resource-metadata", path(&id));
        for reply in [
            app.get_as(&t, RESOURCES).await,
            app.post_as(&t, RESOURCES, &body("https://x.example.com/"))
                .await,
            app.get_as(&t, &path(&id)).await,
            app.patch_as(&t, &path(&id), &json!({"name": "y"})).await,
            app.delete_as(&t, &path(&id)).await,
            app.get_as(&t, &metadata).await,
        ] {
            reply.expect_error(StatusCode::FORBIDDEN, "permission_denied");
        }
    }

    // An owner's token without the resources scopes: insufficient_scope, naming it.
    let read_only = app
        .create_scoped_key("default", &app.owner.user_id, &["resources:read"])
        .await;
    let t = app.session(&read_only).await.token;
    app.get_as(&t, RESOURCES).await.expect(StatusCode::OK);
    let denied = app
        .post_as(&t, RESOURCES, &body("https://y.example.com/"))
        .await;
    denied.expect_error(StatusCode::FORBIDDEN, "insufficient_scope");
    assert!(
        denied
            .header("www-authenticate")
            .is_some_and(|h| h.contains("scope=\"resources:write\"")),
        "{:?}",
        denied.headers
    );
    let none = app
        .create_scoped_key("default", &app.owner.user_id, &["keys:read"])
        .await;
    let t = app.session(&none).await.token;
    app.get_as(&t, RESOURCES)
        .await
        .expect_error(StatusCode::FORBIDDEN, "insufficient_scope");

    // Another organization's admin sees nothing of this one's resources.
    let other = app.create_org("other").await;
    let t = app.session(&other).await.token;
    app.get_as(&t, &format!("/v1/other/resources/{id}"))
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert!(app.list_page(&t, "/v1/other/resources").await.is_empty());
}

#[tokio::test]
async fn bad_resources_are_invalid_request_and_duplicates_conflict() {
    let app = spawn_app().await;
    let owner = app.session(&app.owner).await.token;
    let own_issuer = app.url("/v1/default");
    let bad: Vec<(&str, Value)> = vec![
        (
            "relative",
            json!({"uri": "mcp.example.com/mcp", "name": "x"}),
        ),
        ("a path only", json!({"uri": "/mcp", "name": "x"})),
        (
            "a fragment",
            json!({"uri": "https://mcp.example.com/mcp#x", "name": "x"}),
        ),
        (
            "plain http",
            json!({"uri": "http://mcp.example.com/", "name": "x"}),
        ),
        (
            "another scheme",
            json!({"uri": "ftp://mcp.example.com/", "name": "x"}),
        ),
        (
            "user info",
            json!({"uri": "https://u:p@mcp.example.com/", "name": "x"}),
        ),
        ("keygate itself", json!({"uri": own_issuer, "name": "x"})),
        ("no name", json!({"uri": MCP, "name": "  "})),
        ("no uri", json!({"name": "x"})),
        (
            "a scope with a space",
            json!({"uri": MCP, "name": "x", "scopes": ["a b"]}),
        ),
        (
            "an empty scope",
            json!({"uri": MCP, "name": "x", "scopes": [""]}),
        ),
        (
            "a zero ttl",
            json!({"uri": MCP, "name": "x", "access_ttl": "0s"}),
        ),
        (
            "a ttl over a day",
            json!({"uri": MCP, "name": "x", "access_ttl": "2d"}),
        ),
        (
            "not a ttl",
            json!({"uri": MCP, "name": "x", "access_ttl": "soon"}),
        ),
        (
            "an unknown field",
            json!({"uri": MCP, "name": "x", "audience": "y"}),
        ),
    ];
    for (name, body) in &bad {
        let reply = app.post_as(&owner, RESOURCES, body).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            reply.body
        );
        reply.expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    }
    assert!(app.list_page(&owner, RESOURCES).await.is_empty());

    // Loopback http is allowed (development), and stored normalized.
    let local = app
        .post_as(
            &owner,
            RESOURCES,
            &json!({"uri": "http://LOCALHOST:80/mcp", "name": "dev"}),
        )
        .await;
    assert_eq!(
        local.expect(StatusCode::CREATED)["uri"],
        "http://localhost/mcp"
    );

    let first = app.post_as(&owner, RESOURCES, &body(MCP)).await.str("id");
    for same in [MCP, "https://MCP.EXAMPLE.COM:443/mcp"] {
        app.post_as(&owner, RESOURCES, &body(same))
            .await
            .expect_error(StatusCode::CONFLICT, "conflict");
    }
    let second = app.post_as(&owner, RESOURCES, &body(FILES)).await.str("id");
    app.patch_as(&owner, &path(&second), &json!({"uri": MCP}))
        .await
        .expect_error(StatusCode::CONFLICT, "conflict");
    app.patch_as(
        &owner,
        &path(&first),
        &json!({"uri": "https://x.example.com/#f"}),
    )
    .await
    .expect_error(StatusCode::BAD_REQUEST, "invalid_request");
    // The same URI in another organization is another resource.
    let other = app.create_org("other").await;
    let t = app.session(&other).await.token;
    app.post_as(&t, "/v1/other/resources", &body(MCP))
        .await
        .expect(StatusCode::CREATED);
}

#[tokio::test]
async fn creation_is_idempotent_with_an_idempotency_key() {
    let app = spawn_app().await;
    let owner = app.session(&app.owner).await.token;
    let send = || {
        app.admin_request(reqwest::Method::POST, RESOURCES, &owner)
            .header("idempotency-key", "res-create-1")
            .json(&body(MCP))
    };
    let first = app.send(send()).await;
    let again = app.send(send()).await;
    assert_eq!(
        first.expect(StatusCode::CREATED),
        again.expect(StatusCode::CREATED)
    );
    assert_eq!(again.header("idempotent-replayed").as_deref(), Some("true"));
    assert_eq!(app.list_page(&owner, RESOURCES).await.len(), 1);
}

#[tokio::test]
async fn the_protected_resource_metadata_is_the_rfc_9728_document() {
    let app = spawn_app().await;
    let owner = app.session(&app.owner).await.token;
    let id = app.post_as(&owner, RESOURCES, &body(MCP)).await.str("id");
    let reply = app
        .get_as(
            &owner,
            &format!("{}/protected-resource-metadata", path(&id)),
        )
        .await;
    let doc = reply.expect(StatusCode::OK);
    assert_eq!(
        doc,
        &json!({
            "resource": MCP,
            "authorization_servers": [app.url("/v1/default")],
            "scopes_supported": ["files:read", "mcp:tools"],
            "bearer_methods_supported": ["header"],
            "resource_name": "MCP server",
            "dpop_signing_alg_values_supported": ["ES256", "ES384", "ES512"],
            "dpop_bound_access_tokens_required": false,
        })
    );
    // The authorization server it names is keygate's issuer, whose metadata exists.
    let issuer = doc["authorization_servers"][0].as_str().unwrap();
    let meta = app
        .client
        .get(format!("{issuer}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap();
    assert_eq!(meta.status(), StatusCode::OK);
    app.get_as(
        &owner,
        &format!("{RESOURCES}/res_nope/protected-resource-metadata"),
    )
    .await
    .expect_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_cli_creates_lists_and_deletes_resources_that_tokens_then_name() {
    let app = spawn_app().await;
    let created = keygate_json(
        &app,
        &[
            "resource",
            "create",
            "--org",
            "default",
            "--uri",
            "HTTPS://MCP.example.com/mcp",
            "--name",
            "MCP",
            "--scope",
            "mcp:tools",
            "--scope",
            "files:read",
            "--access-ttl",
            "5m",
            "--json",
        ],
    );
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("res_"), "{created}");
    assert_eq!(created["uri"], MCP);
    assert_eq!(created["scopes"], json!(["files:read", "mcp:tools"]));
    assert_eq!(created["access_ttl"], "5m");

    let (status, token) = cc(&app, &app.owner, &[MCP], None).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(
        claims_of(token["access_token"].as_str().unwrap())["aud"],
        MCP
    );
    assert_eq!(token["expires_in"], 300);

    let listed = keygate_json(&app, &["resource", "list", "--org", "default", "--json"]);
    assert_eq!(listed, json!([created]));

    let dup = keygate(
        &app,
        &[
            "resource", "create", "--org", "default", "--uri", MCP, "--name", "again",
        ],
    );
    assert!(!dup.status.success());
    let bad = keygate(
        &app,
        &[
            "resource",
            "create",
            "--org",
            "default",
            "--uri",
            "mcp.example.com",
            "--name",
            "x",
        ],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("absolute"),
        "{bad:?}"
    );

    let deleted = keygate_json(
        &app,
        &["resource", "delete", "--org", "default", &id, "--json"],
    );
    assert_eq!(deleted["id"], id.as_str());
    assert_eq!(
        keygate_json(&app, &["resource", "list", "--org", "default", "--json"]),
        json!([])
    );
    assert!(
        !keygate(&app, &["resource", "delete", "--org", "default", &id])
            .status
            .success()
    );
    let (status, body) = cc(&app, &app.owner, &[MCP], None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_target");
}
