//! Protected resources (RFC 8707) at sign-in and the token endpoint: `aud` is the resource,
//! scopes come from the resources and the key, a refresh narrows but never widens,
//! `access_ttl` caps the lifetime, and keygate's own endpoints refuse such tokens.

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::admin_helpers::Reply;
use crate::helpers::{Credentials, TestApp, claims_of, error_code, json as json_of, spawn_app};
use crate::me::assert_rejected;

pub const MCP: &str = "https://mcp.example.com/mcp";
pub const FILES: &str = "https://files.example.com/api";

/// Registers a resource in `org` as its owner (`owner`'s token), asserting 201.
pub async fn register(
    app: &TestApp,
    owner: &Credentials,
    uri: &str,
    scopes: &[&str],
    access_ttl: Option<&str>,
) -> Value {
    let token = app.session(owner).await.token;
    let mut body = json!({"uri": uri, "name": "a resource", "scopes": scopes});
    if let Some(ttl) = access_ttl {
        body["access_ttl"] = json!(ttl);
    }
    let reply = app
        .post_as(&token, &format!("/v1/{}/resources", owner.org), &body)
        .await;
    reply.expect(StatusCode::CREATED).clone()
}

/// `POST /v1/{org}/oauth/token` with HTTP Basic as `client` (when given) and `form`
/// (repeated names allowed).
pub async fn token_request(
    app: &TestApp,
    client: Option<&Credentials>,
    org: &str,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(app.url(&format!("/v1/{org}/oauth/token")))
        .form(form);
    if let Some(c) = client {
        req = req.basic_auth(&c.api_key_id, Some(&c.api_key));
    }
    json_of(req.send().await.unwrap()).await
}

/// `client_credentials` for these resources (and `scope`).
pub async fn cc(
    app: &TestApp,
    c: &Credentials,
    resources: &[&str],
    scope: Option<&str>,
) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    form.extend(resources.iter().map(|r| ("resource", *r)));
    form.extend(scope.map(|s| ("scope", s)));
    token_request(app, Some(c), &c.org, &form).await
}

async fn refresh(app: &TestApp, org: &str, rt: &str, resources: &[&str]) -> (StatusCode, Value) {
    let mut form = vec![("grant_type", "refresh_token"), ("refresh_token", rt)];
    form.extend(resources.iter().map(|r| ("resource", *r)));
    token_request(app, None, org, &form).await
}

/// Signs in with `?resource=` values.
pub async fn signin(app: &TestApp, c: &Credentials, resources: &[&str]) -> Reply {
    let query: Vec<(&str, &str)> = resources.iter().map(|r| ("resource", *r)).collect();
    let req = app
        .client
        .post(app.url(&format!("/v1/{}/user/signin_with_api_key", c.org)))
        .query(&query)
        .header("x-api-key", &c.api_key)
        .header("x-api-key-id", &c.api_key_id)
        .header("x-user-id", &c.user_id);
    app.send(req).await
}

#[track_caller]
fn oauth_error(status: StatusCode, body: &Value, code: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], code, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
}

async fn introspect(app: &TestApp, c: &Credentials, token: &str) -> Value {
    let res = app
        .client
        .post(app.url(&format!("/v1/{}/oauth/introspect", c.org)))
        .basic_auth(&c.api_key_id, Some(&c.api_key))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(res).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn a_token_for_a_resource_carries_its_uri_as_aud_and_its_scopes_and_keygate_refuses_it() {
    let app = spawn_app().await;
    register(&app, &app.owner, MCP, &["mcp:tools", "files:read"], None).await;
    let agent = app.create_user("default", Role::Service).await;

    // Spelled differently (scheme and host case, default port): the same resource.
    let (status, body) = cc(&app, &agent, &["HTTPS://MCP.Example.COM:443/mcp"], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "files:read mcp:tools");
    let token = body["access_token"].as_str().unwrap();
    let claims = claims_of(token);
    assert_eq!(claims["aud"], MCP, "one resource: aud is a string");
    assert_eq!(claims["scope"], "files:read mcp:tools");
    assert_eq!(claims["iss"], app.url("/v1/default"));

    // Introspection knows it: active, with its aud (it verified the token, so this node
    // remembers it as verified: that must not make it pass below).
    let info = introspect(&app, &agent, token).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["aud"], MCP);
    assert_eq!(info["scope"], "files:read mcp:tools");

    // Its aud is not keygate: every protected endpoint refuses it, whatever the scheme.
    assert_rejected(&app, "default", token, "invalid_token").await;
    let basic = app
        .me_with(
            "default",
            &[(
                "authorization",
                &format!(
                    "Basic {}",
                    base64::Engine::encode(
                        &base64::engine::general_purpose::STANDARD,
                        format!("default_{}:{token}", agent.user_id)
                    )
                ),
            )],
        )
        .await;
    basic.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");
    let admin = app.get_as(token, "/v1/default/api_keys").await;
    admin.expect_error(StatusCode::UNAUTHORIZED, "invalid_token");

    // Without `resource` nothing changes: keygate's audience and scopes.
    let (status, body) = cc(&app, &agent, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let own = body["access_token"].as_str().unwrap();
    assert_eq!(claims_of(own)["aud"], app.url("/v1/default"));
    assert!(!body["scope"].as_str().unwrap().contains("mcp:tools"));
    assert_eq!(app.me("default", own).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn several_resources_give_an_aud_list_and_the_union_of_their_scopes() {
    let app = spawn_app().await;
    register(&app, &app.owner, MCP, &["mcp:tools"], None).await;
    register(
        &app,
        &app.owner,
        FILES,
        &["files:read", "files:write"],
        None,
    )
    .await;
    let (status, body) = cc(&app, &app.owner, &[MCP, FILES, MCP], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], json!([FILES, MCP]));
    assert_eq!(claims["scope"], "files:read files:write mcp:tools");

    let signed_in = signin(&app, &app.owner, &[MCP, FILES]).await;
    let body = signed_in.expect(StatusCode::OK);
    assert_eq!(
        claims_of(body["id_token"].as_str().unwrap())["aud"],
        json!([FILES, MCP])
    );
    assert_eq!(body["scope"], "files:read files:write mcp:tools");
}

#[tokio::test]
async fn unregistered_relative_fragment_and_foreign_resources_are_invalid_target() {
    let app = spawn_app().await;
    register(&app, &app.owner, MCP, &["mcp:tools"], None).await;
    let other = app.create_org("other").await;
    register(&app, &other, FILES, &["files:read"], None).await;

    let cases: &[(&str, &[&str])] = &[
        ("unregistered", &["https://unknown.example.com/mcp"]),
        ("no scheme", &["mcp.example.com/mcp"]),
        ("relative", &["/mcp"]),
        ("a fragment", &["https://mcp.example.com/mcp#tools"]),
        ("an empty fragment", &["https://mcp.example.com/mcp#"]),
        ("plain http", &["http://mcp.example.com/mcp"]),
        ("another path", &["https://mcp.example.com/mcp/"]),
        ("another organization's", &[FILES]),
        ("one good, one bad", &[MCP, "https://unknown.example.com/"]),
    ];
    for (name, resources) in cases {
        let (status, body) = cc(&app, &app.owner, resources, None).await;
        assert_eq!(body["error"], "invalid_target", "{name}: {body}");
        oauth_error(status, &body, "invalid_target");

        let reply = signin(&app, &app.owner, resources).await;
        reply.expect_error(StatusCode::BAD_REQUEST, "invalid_target");
    }
    // The other organization's own resource works there.
    let (status, body) = cc(&app, &other, &[FILES], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["aud"],
        FILES
    );

    // Too many at once.
    let many = vec![MCP; 17];
    let (status, body) = cc(&app, &app.owner, &many, None).await;
    oauth_error(status, &body, "invalid_target");
}

#[tokio::test]
async fn scope_lies_within_the_named_resources_and_the_keys_allowance() {
    let app = spawn_app().await;
    register(&app, &app.owner, MCP, &["mcp:tools", "mcp:admin"], None).await;
    register(&app, &app.owner, FILES, &["files:read"], None).await;
    let agent = app.create_user("default", Role::Member).await;

    let (status, body) = cc(&app, &agent, &[MCP], Some("mcp:tools")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "mcp:tools");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["scope"],
        "mcp:tools"
    );

    for (name, scope) in [
        ("a scope of a resource not named", "files:read"),
        ("keygate's own scope", "keys:read"),
        ("an unknown scope", "mcp:tools mcp:everything"),
    ] {
        let (status, body) = cc(&app, &agent, &[MCP], Some(scope)).await;
        assert_eq!(body["error"], "invalid_scope", "{name}: {body}");
        oauth_error(status, &body, "invalid_scope");
    }

    // A key narrowed to keygate's keys:read may use no resource scope.
    let narrow = app
        .create_scoped_key("default", &agent.user_id, &["keys:read"])
        .await;
    let (status, body) = cc(&app, &narrow, &[MCP], None).await;
    oauth_error(status, &body, "invalid_scope");
    let (status, body) = cc(&app, &narrow, &[MCP], Some("mcp:tools")).await;
    oauth_error(status, &body, "invalid_scope");
    signin(&app, &narrow, &[MCP])
        .await
        .expect_error(StatusCode::BAD_REQUEST, "invalid_scope");
    // ... and is unchanged for keygate itself.
    let (status, body) = cc(&app, &narrow, &[], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "keys:read");
}

#[tokio::test]
async fn a_refresh_narrows_to_a_subset_of_the_sessions_resources_and_never_adds_one() {
    let app = spawn_app().await;
    register(&app, &app.owner, MCP, &["mcp:tools"], None).await;
    register(&app, &app.owner, FILES, &["files:read"], None).await;
    let third = "https://third.example.com/";
    register(&app, &app.owner, third, &["third:x"], None).await;

    let (status, body) = cc(&app, &app.owner, &[MCP, FILES], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();

    // A resource the session was not granted: refused, and the refresh token is not used up.
    let (status, body) = refresh(&app, "default", &rt, &[third]).await;
    oauth_error(status, &body, "invalid_target");
    let (status, body) = refresh(&app, "default", &rt, &[MCP, third]).await;
    oauth_error(status, &body, "invalid_target");

    // A subset: aud and scope narrow.
    let (status, body) = refresh(&app, "default", &rt, &["https://MCP.example.com/mcp"]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], MCP);
    assert_eq!(claims["scope"], "mcp:tools");
    assert_eq!(body["scope"], "mcp:tools");

    // No `resource`: the session's own, all of them.
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let (status, body) = refresh(&app, "default", &rt, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = claims_of(body["access_token"].as_str().unwrap());
    assert_eq!(claims["aud"], json!([FILES, MCP]));
    assert_eq!(claims["scope"], "files:read mcp:tools");

    // A session for keygate itself cannot be turned into one for a resource.
    let own = app.session(&app.owner).await;
    let (status, body) = refresh(&app, "default", &own.refresh_token, &[MCP]).await;
    oauth_error(status, &body, "invalid_target");
    let (status, body) = refresh(&app, "default", &own.refresh_token, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        claims_of(body["access_token"].as_str().unwrap())["aud"],
        app.url("/v1/default")
    );
}

#[tokio::test]
async fn a_removed_resource_is_no_longer_issued_nor_refreshed() {
    let app = spawn_app().await;
    let created = register(&app, &app.owner, MCP, &["mcp:tools"], None).await;
    let (status, body) = cc(&app, &app.owner, &[MCP], None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let token = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&app, &app.owner, &token).await["active"], true);

    let owner = app.session(&app.owner).await;
    let path = format!("/v1/default/resources/{}", created["id"].as_str().unwrap());
    app.delete_as(&owner.token, &path)
        .await
        .expect(StatusCode::NO_CONTENT);

    let (status, body) = refresh(&app, "default", &rt, &[]).await;
    oauth_error(status, &body, "invalid_target");
    let (status, body) = cc(&app, &app.owner, &[MCP], None).await;
    oauth_error(status, &body, "invalid_target");
    // Introspection answers only for audiences keygate still issues.
    assert_eq!(
        introspect(&app, &app.owner, &token).await,
        json!({"active": false})
    );
}

#[tokio::test]
async fn a_resources_access_ttl_caps_the_lifetime_the_smallest_when_several() {
    let app = spawn_app().await;
    register(&app, &app.owner, MCP, &["mcp:tools"], Some("5m")).await;
    register(&app, &app.owner, FILES, &["files:read"], Some("2m")).await;
    let third = "https://third.example.com/";
    register(&app, &app.owner, third, &[], None).await;

    for (resources, want) in [
        (vec![MCP], 300),
        (vec![MCP, FILES], 120),
        (vec![third], 900),
        (vec![third, MCP], 300),
    ] {
        let (status, body) = cc(&app, &app.owner, &resources, None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["expires_in"], want, "{resources:?}");
        let claims = claims_of(body["access_token"].as_str().unwrap());
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            want,
            "{resources:?}"
        );
        // A refresh keeps the cap.
        let rt = body["refresh_token"].as_str().unwrap();
        let (status, body) = refresh(&app, "default", rt, &[]).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["expires_in"], want, "{resources:?} refreshed");
    }
    let signed_in = signin(&app, &app.owner, &[FILES]).await;
    assert_eq!(signed_in.expect(StatusCode::OK)["expires_in"], 120);
    // A resource with no scopes: a token with an empty scope.
    let (_, body) = cc(&app, &app.owner, &[third], None).await;
    assert_eq!(body["scope"], "");
}

#[tokio::test]
async fn sign_in_with_a_resource_issues_a_token_keygate_itself_refuses() {
    let app = spawn_app().await;
    register(&app, &app.owner, MCP, &["mcp:tools"], None).await;
    let reply = signin(&app, &app.owner, &[MCP]).await;
    let body = reply.expect(StatusCode::OK).clone();
    let token = body["id_token"].as_str().unwrap();
    assert_eq!(claims_of(token)["aud"], MCP);
    assert_eq!(body["scope"], "mcp:tools");
    assert_rejected(&app, "default", token, "invalid_token").await;
    assert_eq!(introspect(&app, &app.owner, token).await["aud"], MCP);

    // Unknown query parameters are ignored as before; an empty resource is omitted.
    let plain = signin(&app, &app.owner, &[""]).await;
    let body = plain.expect(StatusCode::OK);
    assert_eq!(
        claims_of(body["id_token"].as_str().unwrap())["aud"],
        app.url("/v1/default")
    );
    // A bad resource is refused only after the credential: a wrong secret is still
    // invalid_api_key, so an unauthenticated caller learns nothing about resources.
    let mut wrong = app.owner.clone();
    wrong.api_key =
        keygate::keys::api_key::PlainApiKey::generate(keygate::types::Environment::Live)
            .expose()
            .to_owned();
    let reply = signin(&app, &wrong, &["https://unknown.example.com/"]).await;
    assert_eq!(error_code(&reply.body), "invalid_api_key", "{}", reply.body);
}
