//! RFC 7591 dynamic client registration at `/v1/{org}/oauth/register`: off (404) unless the
//! organization turns it on; then open, answering the client information (§3.2.1) or the
//! §3.2.2 errors, throttled per client IP, audited, and the registered client works.

use std::time::Duration;

use keygate::clients::{ClientAuth, ClientSource};
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{basic, identified, org};
use crate::admin_helpers::Reply;
use crate::cli::keygate_json;
use crate::helpers::{TestApp, spawn_app, spawn_app_with};

async fn register(app: &TestApp, org: &str, body: &Value) -> Reply {
    Reply::from(
        app.client
            .post(app.url(&format!("/v1/{org}/oauth/register")))
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn metadata(app: &TestApp) -> Value {
    app.client
        .get(app.url("/v1/default/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn turn_on(app: &TestApp) {
    keygate::admin::clients::set_dynamic_registration(&app.state.storage, "default", true)
        .await
        .unwrap();
}

fn mcp_client() -> Value {
    json!({
        "client_name": "MCP Inspector",
        "redirect_uris": ["http://localhost:6274/oauth/callback"],
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "mcp:tools",
        "client_uri": "https://inspector.example",
        "logo_uri": "https://inspector.example/logo.png",
    })
}

/// Asserts an OAuth error body with this status and code.
#[track_caller]
fn oauth_error(reply: &Reply, status: StatusCode, code: &str) -> String {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.body["error"], code, "{}", reply.body);
    reply.body["error_description"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn registration_is_off_unless_the_organization_turns_it_on() {
    let app = spawn_app().await;
    register(&app, "default", &mcp_client())
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert!(metadata(&app).await.get("registration_endpoint").is_none());
    register(&app, "nope", &mcp_client())
        .await
        .expect_error(StatusCode::NOT_FOUND, "unknown_organization");

    // The CLI turns it on (and off again).
    let on = keygate_json(
        &app,
        &[
            "org",
            "update",
            "default",
            "--dynamic-registration",
            "true",
            "--json",
        ],
    );
    assert_eq!(on["dynamic_registration"], true);
    assert_eq!(
        metadata(&app).await["registration_endpoint"],
        format!("{}/v1/default/oauth/register", app.state.public_url)
    );
    register(&app, "default", &mcp_client())
        .await
        .expect(StatusCode::CREATED);
    // Another organization stays closed.
    app.create_org("acme").await;
    register(&app, "acme", &mcp_client())
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");

    let off = keygate_json(
        &app,
        &[
            "org",
            "update",
            "default",
            "--dynamic-registration",
            "false",
            "--json",
        ],
    );
    assert_eq!(off["dynamic_registration"], false);
    register(&app, "default", &mcp_client())
        .await
        .expect_error(StatusCode::NOT_FOUND, "not_found");
    assert!(metadata(&app).await.get("registration_endpoint").is_none());
}

#[tokio::test]
async fn a_public_client_registers_and_then_resolves_and_authenticates() {
    let app = spawn_app().await;
    turn_on(&app).await;
    let reply = register(&app, "default", &mcp_client()).await;
    let body = reply.expect(StatusCode::CREATED).clone();
    assert_eq!(reply.header("cache-control").as_deref(), Some("no-store"));
    let id = body["client_id"].as_str().unwrap().to_owned();
    assert!(keygate::ids::is_id(&id, "cli"), "{id}");
    assert!(body.get("client_secret").is_none());
    assert!(body.get("client_secret_expires_at").is_none());
    assert_eq!(body["client_id_issued_at"], app.now().timestamp());
    assert_eq!(body["client_name"], "MCP Inspector");
    assert_eq!(
        body["redirect_uris"],
        json!(["http://localhost:6274/oauth/callback"])
    );
    assert_eq!(body["token_endpoint_auth_method"], "none");
    assert_eq!(
        body["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(body["scope"], "mcp:tools");
    assert!(
        body.get("logo_uri").is_none(),
        "unknown metadata is ignored"
    );

    let org = org(&app, "default").await;
    let client = keygate::clients::resolve(&app.state, &org, &id)
        .await
        .unwrap();
    assert_eq!(client.source, ClientSource::Dynamic);
    assert_eq!(client.auth, ClientAuth::None);
    assert!(client.accepts_redirect_uri("http://localhost:51000/oauth/callback"));
    assert_eq!(
        identified(&app, None, &[("client_id", &id)]).await,
        Ok(id.clone())
    );

    // Admins see it (as `dynamic`) and may delete it.
    let owner = super::owner_token(&app).await;
    let got = app
        .get_as(&owner, &format!("/v1/default/clients/{id}"))
        .await;
    assert_eq!(got.expect(StatusCode::OK)["source"], "dynamic");

    let events = app.audit_events("default").await;
    let event = events
        .iter()
        .find(|e| e.action == "client.registered")
        .expect("audited");
    assert_eq!(event.target_id.as_deref(), Some(id.as_str()));
    assert_eq!(event.ip.as_deref(), Some("127.0.0.1"));
    assert!(event.actor_user_id.is_none());
}

#[tokio::test]
async fn a_confidential_client_gets_a_secret_once_that_authenticates_it() {
    let app = spawn_app().await;
    turn_on(&app).await;
    // No token_endpoint_auth_method: client_secret_basic (RFC 7591 §2); no grant types:
    // authorization_code with response type code.
    let reply = register(
        &app,
        "default",
        &json!({"redirect_uris": ["https://web.example/cb"]}),
    )
    .await;
    let body = reply.expect(StatusCode::CREATED).clone();
    let (id, secret) = (reply.str("client_id"), reply.str("client_secret"));
    assert_eq!(body["client_secret_expires_at"], 0);
    assert_eq!(body["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(body["grant_types"], json!(["authorization_code"]));
    assert_eq!(body["response_types"], json!(["code"]));
    assert_eq!(
        body["client_name"], "web.example",
        "named after its redirect URI"
    );
    assert_eq!(
        identified(&app, Some(&basic(&id, &secret)), &[]).await,
        Ok(id.clone())
    );
    assert!(!app.db.dump().await.contains(&secret));

    // A device-flow-only client: no response type.
    let device = register(
        &app,
        "default",
        &json!({
            "redirect_uris": ["http://127.0.0.1/cb"], "token_endpoint_auth_method": "none",
            "grant_types": ["urn:ietf:params:oauth:grant-type:device_code"],
        }),
    )
    .await;
    assert_eq!(
        device.expect(StatusCode::CREATED)["response_types"],
        json!([])
    );
}

#[tokio::test]
async fn bad_metadata_answers_the_rfc_7591_errors_and_registers_nothing() {
    let app = spawn_app().await;
    turn_on(&app).await;
    let with = |k: &str, v: Value| {
        let mut b = mcp_client();
        b[k] = v;
        b
    };
    for (body, code) in [
        (with("redirect_uris", json!([])), "invalid_redirect_uri"),
        (with("redirect_uris", Value::Null), "invalid_redirect_uri"),
        (
            with("redirect_uris", json!(["http://evil.example/cb"])),
            "invalid_redirect_uri",
        ),
        (
            with("redirect_uris", json!(["https://a.example/cb#x"])),
            "invalid_redirect_uri",
        ),
        (
            with("redirect_uris", json!(["myapp:/cb"])),
            "invalid_redirect_uri",
        ),
        (
            with("redirect_uris", json!("https://a.example/cb")),
            "invalid_redirect_uri",
        ),
        (
            with("token_endpoint_auth_method", json!("client_secret_jwt")),
            "invalid_client_metadata",
        ),
        (
            with("token_endpoint_auth_method", json!("private_key_jwt")),
            "invalid_client_metadata",
        ),
        (
            with("grant_types", json!(["implicit"])),
            "invalid_client_metadata",
        ),
        (
            with("grant_types", json!(["password"])),
            "invalid_client_metadata",
        ),
        (
            with("grant_types", json!(["client_credentials"])),
            "invalid_client_metadata",
        ),
        (
            with("response_types", json!(["token"])),
            "invalid_client_metadata",
        ),
        (
            with("grant_types", json!(["refresh_token"])),
            "invalid_client_metadata",
        ),
        (with("client_name", json!(42)), "invalid_client_metadata"),
        (with("client_name", json!("")), "invalid_client_metadata"),
        (with("scope", json!("a\\b")), "invalid_client_metadata"),
        (
            with("jwks_uri", json!("https://a.example/jwks.json")),
            "invalid_client_metadata",
        ),
        (json!([1, 2]), "invalid_client_metadata"),
    ] {
        let reply = register(&app, "default", &body).await;
        let description = oauth_error(&reply, StatusCode::BAD_REQUEST, code);
        assert!(!description.is_empty(), "{body}");
    }
    // Not JSON at all.
    let raw = Reply::from(
        app.client
            .post(app.url("/v1/default/oauth/register"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("redirect_uris=https://a.example/cb")
            .send()
            .await
            .unwrap(),
    )
    .await;
    oauth_error(&raw, StatusCode::BAD_REQUEST, "invalid_request");
    let broken = Reply::from(
        app.client
            .post(app.url("/v1/default/oauth/register"))
            .header("content-type", "application/json")
            .body("{\"redirect_uris\": [")
            .send()
            .await
            .unwrap(),
    )
    .await;
    oauth_error(&broken, StatusCode::BAD_REQUEST, "invalid_request");

    let owner = super::owner_token(&app).await;
    assert!(
        app.list_page(&owner, "/v1/default/clients")
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn registrations_are_throttled_per_client_ip() {
    let app = spawn_app_with(|s| s.clients.registrations_per_ip_per_hour = 2).await;
    turn_on(&app).await;
    // Refused requests cost nothing.
    for _ in 0..5 {
        let bad = register(&app, "default", &json!({"redirect_uris": []})).await;
        oauth_error(&bad, StatusCode::BAD_REQUEST, "invalid_redirect_uri");
    }
    for _ in 0..2 {
        register(&app, "default", &mcp_client())
            .await
            .expect(StatusCode::CREATED);
    }
    let throttled = register(&app, "default", &mcp_client()).await;
    oauth_error(&throttled, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let wait: u64 = throttled.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=1800).contains(&wait), "{wait}");
    // Half an hour later one more is allowed (2 per hour), then not again.
    app.clock.advance(Duration::from_secs(1800));
    register(&app, "default", &mcp_client())
        .await
        .expect(StatusCode::CREATED);
    let again = register(&app, "default", &mcp_client()).await;
    oauth_error(&again, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let owner = super::owner_token(&app).await;
    assert_eq!(app.list_page(&owner, "/v1/default/clients").await.len(), 3);
}

#[tokio::test]
async fn a_key_pair_client_registers_its_public_keys_and_proves_itself_with_them() {
    use crate::client_assertion::{ASSERTION_TYPE, Signer, claims};
    let app = spawn_app().await;
    turn_on(&app).await;
    let signer = Signer::es256().with_kid("k1");
    let reply = register(
        &app,
        "default",
        &json!({
            "client_name": "Key agent", "redirect_uris": ["https://agent.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt", "jwks": signer.jwks(),
        }),
    )
    .await;
    let body = reply.expect(StatusCode::CREATED).clone();
    assert!(body.get("client_secret").is_none());
    assert_eq!(body["jwks"]["keys"][0]["kid"], "k1");
    let id = reply.str("client_id");
    let jwt = signer.sign(&signer.header(), &claims(&app, &id));
    let form = [
        ("client_assertion_type", ASSERTION_TYPE),
        ("client_assertion", jwt.as_str()),
    ];
    assert_eq!(identified(&app, None, &form).await, Ok(id.clone()));
    assert_eq!(
        identified(&app, None, &form).await,
        Err("invalid_client".into()),
        "replayed"
    );

    // A private key in `jwks` is refused, and registers nothing.
    let mut private = signer.jwks();
    private["keys"][0]["d"] = json!("jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI");
    let refused = register(
        &app,
        "default",
        &json!({
            "redirect_uris": ["https://agent.example/cb"],
            "token_endpoint_auth_method": "private_key_jwt", "jwks": private,
        }),
    )
    .await;
    oauth_error(&refused, StatusCode::BAD_REQUEST, "invalid_client_metadata");
    let owner = super::owner_token(&app).await;
    assert_eq!(app.list_page(&owner, "/v1/default/clients").await.len(), 1);
}
