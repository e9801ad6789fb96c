//! Agent self-registration: `POST /v1/{org}/register` is indistinguishable from an unknown
//! endpoint while off; on, it creates a `service` user and a key (shown once) that works
//! within its scopes; with approval on, the key is `pending` until an admin approves it;
//! registrations are throttled per client IP and per organization, and audited.

use std::sync::Arc;
use std::time::Duration;

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use super::{me_with, token_of, turn_on};
use crate::helpers::{Credentials, TestApp, error_code, json, spawn_app, spawn_app_with};

const REGISTER: &str = "/v1/default/register";

async fn register(app: &TestApp, body: Value) -> (StatusCode, Value) {
    json(
        app.client
            .post(app.url(REGISTER))
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn creds_of(body: &Value) -> Credentials {
    Credentials {
        org: "default".into(),
        user_id: body["user_id"].as_str().unwrap().into(),
        api_key_id: body["api_key_id"].as_str().unwrap().into(),
        api_key: body["api_key"].as_str().unwrap().into(),
    }
}

#[tokio::test]
async fn off_it_answers_like_an_unknown_endpoint_whatever_the_body() {
    let app = spawn_app().await;
    let (_, unknown) = json(
        app.client
            .post(app.url("/v1/default/no-such-endpoint"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    let bodies: [reqwest::RequestBuilder; 3] = [
        app.client
            .post(app.url(REGISTER))
            .json(&json!({"name": "bot"})),
        app.client.post(app.url(REGISTER)).body("{not json"),
        app.client
            .post(app.url("/v1/no-such-org/register"))
            .json(&json!({"name": "bot"})),
    ];
    for req in bodies {
        let (status, body) = json(req.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(error_code(&body), "not_found");
        assert_eq!(body["error"]["message"], unknown["error"]["message"]);
    }
}

#[tokio::test]
async fn a_registered_agent_is_a_service_user_whose_key_works_within_its_scopes() {
    let app = spawn_app().await;
    turn_on(&app, &app.owner, &["self_registration"]).await;
    let now = app.now();
    let (status, body) = register(
        &app,
        json!({"name": "shopping bot", "email": "Bot@Agents.example"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body["api_key"].as_str().unwrap().starts_with("ak_live_"));
    assert_eq!(body["name"], "shopping bot");
    assert_eq!(body["scopes"], json!([]));
    assert_eq!(body["all_resource_scopes"], false);
    assert_eq!(body["pending"], false);
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.timestamp(),
        (now + chrono::Duration::days(30)).timestamp()
    );

    let agent = creds_of(&body);
    let signed_in = app.signin(&agent).await;
    assert_eq!(signed_in["scope"], "");
    let token = signed_in["id_token"].as_str().unwrap();
    let (status, me) = json(app.me("default", token).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["role"], "service");
    assert_eq!(me["email"], "bot@agents.example");
    // None of keygate's admin scopes: not even its own keys.
    for path in [
        "/v1/default/api_keys",
        "/v1/default/users",
        "/v1/default/audit_events",
    ] {
        let res = app
            .client
            .get(app.url(path))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let (status, body) = json(res).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(error_code(&body), "insufficient_scope", "{path}");
    }
    // Without an email the user gets an address that reaches no one.
    let (status, body) = register(&app, json!({"name": "quiet bot"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = token_of(&app, &creds_of(&body)).await;
    let (_, me) = json(app.me("default", &token).await).await;
    assert!(
        me["email"].as_str().unwrap().ends_with("@agents.invalid"),
        "{me}"
    );

    let events = app.audit_events("default").await;
    let created = events
        .iter()
        .find(|e| {
            e.action == "registration.created"
                && e.actor_user_id.as_deref() == Some(agent.user_id.as_str())
        })
        .expect("audited");
    assert_eq!(created.outcome, "success");
    assert_eq!(
        created.actor_key_id.as_deref(),
        Some(agent.api_key_id.as_str())
    );
    assert_eq!(
        created.target_id.as_deref(),
        Some(agent.api_key_id.as_str())
    );
    assert_eq!(created.ip.as_deref(), Some("127.0.0.1"));
}

#[tokio::test]
async fn the_default_scopes_come_from_the_configuration() {
    let app = spawn_app_with(|s| {
        s.registration.default_scopes = vec!["keys:read".into(), "mcp:tools".into()];
        s.registration.key_duration = Duration::from_secs(86_400);
    })
    .await;
    turn_on(&app, &app.owner, &["self_registration"]).await;
    let now = app.now();
    let (status, body) = register(&app, json!({"name": "bot"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["scopes"], json!(["keys:read", "mcp:tools"]));
    let expires =
        chrono::DateTime::parse_from_rfc3339(body["expires_at"].as_str().unwrap()).unwrap();
    assert_eq!(
        expires.timestamp(),
        (now + chrono::Duration::days(1)).timestamp()
    );
    let agent = creds_of(&body);
    let token = token_of(&app, &agent).await;
    let res = app
        .client
        .get(app.url("/v1/default/api_keys"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let (status, keys) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    assert_eq!(
        keys["data"].as_array().unwrap().len(),
        1,
        "its own key only"
    );
}

#[tokio::test]
async fn with_approval_the_key_is_pending_until_an_admin_approves_it() {
    let app = spawn_app().await;
    turn_on(
        &app,
        &app.owner,
        &[
            "self_registration",
            "registration_approval",
            "direct_api_keys",
        ],
    )
    .await;
    let (status, body) = register(&app, json!({"name": "bot"})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["pending"], true);
    let agent = creds_of(&body);

    // The attacker uses the pending key anyway: sign-in, the token endpoint, directly.
    let (status, code) = app.signin_outcome(&agent).await;
    assert_eq!(
        (status, code.as_deref()),
        (StatusCode::FORBIDDEN, Some("pending_approval"))
    );
    let res = app
        .client
        .post(app.url("/v1/default/oauth/token"))
        .basic_auth(&agent.api_key_id, Some(&agent.api_key))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    let (status, body) =
        json(me_with(&app, "default", &[("x-api-key", &agent.api_key)]).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(error_code(&body), "pending_approval");
    // A wrong secret for that key id still says nothing about the key.
    let (status, code) = app
        .signin_outcome(&Credentials {
            api_key: app.owner.api_key.clone(),
            ..agent.clone()
        })
        .await;
    assert_eq!(
        (status, code.as_deref()),
        (StatusCode::UNAUTHORIZED, Some("invalid_api_key"))
    );

    let approve = |token: String| {
        let req = app
            .client
            .post(app.url(&format!(
                "/v1/default/api_keys/{}/approve",
                agent.api_key_id
            )))
            .bearer_auth(token);
        async move { json(req.send().await.unwrap()).await }
    };
    let member = token_of(&app, &app.create_user("default", Role::Member).await).await;
    let (status, body) = approve(member).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let admin = token_of(&app, &app.create_user("default", Role::Admin).await).await;
    let (status, body) = approve(admin.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["pending"], false);
    let (status, body) = approve(admin).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "conflict");

    // At once on this node.
    let (status, code) = app.signin_outcome(&agent).await;
    assert_eq!(status, StatusCode::OK, "{code:?}");
    let (status, _) = json(me_with(&app, "default", &[("x-api-key", &agent.api_key)]).await).await;
    assert_eq!(status, StatusCode::OK);

    let events = app.audit_events("default").await;
    let created = events
        .iter()
        .find(|e| e.action == "registration.created")
        .unwrap();
    assert_eq!(created.reason.as_deref(), Some("pending_approval"));
    let approved = events
        .iter()
        .find(|e| e.action == "api_key.approved")
        .unwrap();
    assert_eq!(
        approved.target_id.as_deref(),
        Some(agent.api_key_id.as_str())
    );
}

#[tokio::test]
async fn a_flood_from_one_address_gets_its_hourly_allowance_and_no_more() {
    let app = Arc::new(spawn_app().await);
    turn_on(&app, &app.owner, &["self_registration"]).await;
    // Bad requests cost nothing.
    for bad in [
        json!({"name": ""}),
        json!({"name": "bot", "role": "owner"}),
        json!({"email": "x@y.z"}),
    ] {
        let (status, body) = register(&app, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    // Twenty at once, released together: exactly five (the default per IP) get through.
    let barrier = Arc::new(Barrier::new(20));
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (app, barrier) = (app.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            register(&app, json!({"name": format!("bot {i}")})).await
        }));
    }
    let mut created = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::TOO_MANY_REQUESTS => assert_eq!(error_code(&body), "rate_limited"),
            other => panic!("{other}: {body}"),
        }
    }
    assert_eq!(created, 5);
    let res = app
        .client
        .post(app.url(REGISTER))
        .json(&json!({"name": "one more"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=3_600).contains(&retry), "{retry}");
    // Throttled attempts are counted, not written to the audit log one by one.
    let events = app.audit_events("default").await;
    assert_eq!(
        events
            .iter()
            .filter(|e| e.action.starts_with("registration"))
            .count(),
        5
    );
    app.clock.advance(Duration::from_secs(3_600));
    assert_eq!(
        register(&app, json!({"name": "next hour"})).await.0,
        StatusCode::CREATED
    );
}

#[tokio::test]
async fn an_organization_takes_its_own_hourly_allowance_from_every_address() {
    let app = spawn_app_with(|s| {
        s.registration.per_ip_per_hour = 1_000;
        s.registration.per_org_per_hour = 3;
    })
    .await;
    turn_on(&app, &app.owner, &["self_registration"]).await;
    let other = app.create_org("other").await;
    turn_on(&app, &other, &["self_registration"]).await;
    for i in 0..3 {
        assert_eq!(
            register(&app, json!({"name": format!("bot {i}")})).await.0,
            StatusCode::CREATED
        );
    }
    let (status, body) = register(&app, json!({"name": "bot 4"})).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    // Another organization's allowance is its own.
    let res = app
        .client
        .post(app.url("/v1/other/register"))
        .json(&json!({"name": "bot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
}

#[tokio::test]
async fn an_email_already_taken_is_a_conflict() {
    let app = spawn_app().await;
    turn_on(&app, &app.owner, &["self_registration"]).await;
    let (status, body) =
        register(&app, json!({"name": "bot", "email": "owner@keygate.local"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "conflict");
}
