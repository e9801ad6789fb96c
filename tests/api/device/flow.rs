//! The device flow from the client's side: the codes it gets, every polling answer of RFC
//! 8628 §3.5, the tokens (the person's, once), the scope a person's approval gives, who
//! may poll, DPoP binding and the audit trail.

use std::time::Duration;

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::Value;

use super::{GRANT, assert_oauth_error, authorize, browser, poll, poll_with, started, str_of};
use crate::dpop_key::DpopKey;
use crate::helpers::{TestApp, claims_of, json, spawn_app, spawn_app_with};
use crate::resources::{MCP, register};

fn is_user_code(code: &str) -> bool {
    let alphabet = "BCDFGHJKLMNPQRSTVWXZ";
    code.len() == 9
        && code.chars().enumerate().all(|(i, c)| {
            if i == 4 {
                c == '-'
            } else {
                alphabet.contains(c)
            }
        })
}

#[tokio::test]
async fn a_person_approves_and_the_client_polls_its_tokens_once() {
    let app = spawn_app().await;
    let person = app.create_user("default", Role::Member).await;
    let res = app
        .client
        .post(app.url("/v1/default/oauth/device_authorization"))
        .basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key))
        .form(&[("client_id", app.owner.api_key_id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    let (status, codes) = json(res).await;
    assert_eq!(status, StatusCode::OK, "{codes}");
    let user_code = str_of(&codes, "user_code").to_owned();
    let device_code = str_of(&codes, "device_code").to_owned();
    assert!(is_user_code(&user_code), "{user_code}");
    assert!(device_code.len() >= 43, "{device_code}");
    let uri = app.url("/v1/default/device");
    assert_eq!(codes["verification_uri"], uri.as_str());
    assert_eq!(
        codes["verification_uri_complete"],
        format!("{uri}?user_code={user_code}").as_str()
    );
    assert_eq!(codes["expires_in"], 600);
    assert_eq!(codes["interval"], 5);

    // Pending; polled again at once: slow_down, and the interval grows by 5 s (RFC 8628 §3.5).
    let (status, body) = poll(&app, &app.owner, &device_code).await;
    assert_oauth_error(status, &body, "authorization_pending");
    let (status, body) = poll(&app, &app.owner, &device_code).await;
    assert_oauth_error(status, &body, "slow_down");
    app.clock.advance(Duration::from_secs(10));
    let (status, body) = poll(&app, &app.owner, &device_code).await;
    assert_oauth_error(status, &body, "authorization_pending");
    app.clock.advance(Duration::from_secs(9));
    let (status, body) = poll(&app, &app.owner, &device_code).await;
    assert_oauth_error(status, &body, "slow_down");
    app.clock.advance(Duration::from_secs(15));
    let (status, body) = poll(&app, &app.owner, &device_code).await;
    assert_oauth_error(status, &body, "authorization_pending");

    let browser = browser(&app, "default", &person.user_id).await;
    let typed = user_code.replace('-', "").to_lowercase();
    let page = browser
        .get(&app, &format!("/v1/default/device?user_code={typed}"))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(page.contains(&user_code), "{page}");
    assert!(page.contains(&app.owner.api_key_id), "{page}");
    assert!(page.contains("owner@keygate.local"), "{page}");
    browser.approve(&app, &typed).await;

    let (status, tokens) = poll(&app, &app.owner, &device_code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    // Nothing asked for: no scope (the owner's key could have had every scope), a token
    // that only says who the person is.
    assert_eq!(tokens["scope"], "");
    let access = str_of(&tokens, "access_token");
    let claims = claims_of(access);
    assert_eq!(claims["sub"], person.user_id.as_str());
    assert_eq!(claims["client_id"], app.owner.api_key_id.as_str());
    assert_eq!(claims["sid"], tokens["session_id"]);
    assert!(claims.get("act").is_none(), "{claims}");
    let (status, me) = json(app.me("default", access).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user_id"], person.user_id.as_str());
    assert_eq!(me["role"], "member");

    // Once: the code is spent.
    let (status, body) = poll(&app, &app.owner, &device_code).await;
    assert_oauth_error(status, &body, "invalid_grant");

    // The session refreshes like any other, still the person's.
    let (status, refreshed) = crate::resources::token_request(
        &app,
        None,
        "default",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", str_of(&tokens, "refresh_token")),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_eq!(
        claims_of(str_of(&refreshed, "access_token"))["sub"],
        person.user_id.as_str()
    );

    let events = app.audit_events("default").await;
    let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
    for action in [
        "device_authorization.requested",
        "device_authorization.approved",
        "token.device_code.succeeded",
        "token.device_code.failed",
    ] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let approved = events
        .iter()
        .find(|e| e.action == "device_authorization.approved")
        .unwrap();
    assert_eq!(
        approved.actor_user_id.as_deref(),
        Some(person.user_id.as_str())
    );
    // A device polls every few seconds: waiting is not an audit event.
    assert!(
        events.iter().all(|e| !matches!(
            e.reason.as_deref(),
            Some("authorization_pending" | "slow_down")
        )),
        "{actions:?}"
    );
}

#[tokio::test]
async fn a_denied_request_answers_access_denied() {
    let app = spawn_app().await;
    let codes = started(&app, &app.owner, &[]).await;
    let browser = browser(&app, "default", &app.owner.user_id).await;
    let user_code = str_of(&codes, "user_code");
    let (status, page) = browser.decide(&app, user_code, "deny").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert!(page.contains("Denied"), "{page}");
    let device_code = str_of(&codes, "device_code");
    let (status, body) = poll(&app, &app.owner, device_code).await;
    assert_oauth_error(status, &body, "access_denied");
    // Decided once: an approval after the denial finds no pending request.
    let (status, page) = browser.decide(&app, user_code, "approve").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    let (status, body) = poll(&app, &app.owner, device_code).await;
    assert_oauth_error(status, &body, "access_denied");
    let events = app.audit_events("default").await;
    assert!(
        events
            .iter()
            .any(|e| e.action == "device_authorization.denied")
    );
}

#[tokio::test]
async fn expired_codes_answer_expired_token_and_cannot_be_approved() {
    let app = spawn_app().await;
    let browser = browser(&app, "default", &app.owner.user_id).await;
    // Pending until it expires.
    let pending = started(&app, &app.owner, &[]).await;
    // Approved, but not collected in time.
    let approved = started(&app, &app.owner, &[]).await;
    browser.approve(&app, str_of(&approved, "user_code")).await;
    app.clock.advance(Duration::from_secs(600));
    for codes in [&pending, &approved] {
        let (status, body) = poll(&app, &app.owner, str_of(codes, "device_code")).await;
        assert_oauth_error(status, &body, "expired_token");
    }
    let (status, page) = browser
        .decide(&app, str_of(&pending, "user_code"), "approve")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{page}");
    assert!(page.contains("not valid"), "{page}");
}

#[tokio::test]
async fn only_the_client_that_asked_collects_the_tokens() {
    let app = spawn_app().await;
    let other = app.create_user("default", Role::Admin).await;
    let elsewhere = app.create_org("elsewhere").await;
    let codes = started(&app, &app.owner, &[]).await;
    let device_code = str_of(&codes, "device_code");
    browser(&app, "default", &app.owner.user_id)
        .await
        .approve(&app, str_of(&codes, "user_code"))
        .await;

    let (status, body) = poll(&app, &other, device_code).await;
    assert_oauth_error(status, &body, "invalid_grant");
    // The same code at another organization is unknown there.
    let (status, body) = poll(&app, &elsewhere, device_code).await;
    assert_oauth_error(status, &body, "invalid_grant");
    let mut wrong = app.owner.clone();
    wrong.api_key = other.api_key.clone();
    let (status, body) = poll(&app, &wrong, device_code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    let (status, body) = json(
        app.client
            .post(app.url("/v1/default/oauth/token"))
            .form(&[("grant_type", GRANT), ("device_code", device_code)])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    for bad in ["", "dc_nope", &device_code.replace("dc_", "rt_")] {
        let (status, body) = poll(&app, &app.owner, bad).await;
        let want = if bad.is_empty() {
            "invalid_request"
        } else {
            "invalid_grant"
        };
        assert_oauth_error(status, &body, want);
    }
    // None of that spent the approval.
    let (status, body) = poll(&app, &app.owner, device_code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_device_endpoint_checks_the_client_and_what_it_asks_for() {
    let app = spawn_app().await;
    let url = app.url("/v1/default/oauth/device_authorization");
    let (status, body) = json(
        app.client
            .post(&url)
            .form(&[("scope", "keys:read")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");
    let mut wrong = app.owner.clone();
    wrong.api_key = format!("{}x", &wrong.api_key[..wrong.api_key.len() - 1]);
    let (status, body) = authorize(&app, &wrong, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"], "invalid_client");

    let narrow = app
        .create_scoped_key("default", &app.owner.user_id, &["keys:read"])
        .await;
    let (status, body) = authorize(&app, &narrow, &[("scope", "keys:read users:write")]).await;
    assert_oauth_error(status, &body, "invalid_scope");
    let (status, body) = authorize(&app, &narrow, &[("scope", "no:such")]).await;
    assert_oauth_error(status, &body, "invalid_scope");
    let (status, body) = authorize(
        &app,
        &app.owner,
        &[("resource", "https://unknown.example/api")],
    )
    .await;
    assert_oauth_error(status, &body, "invalid_target");
    let (status, body) = json(
        app.client
            .post(app.url("/v1/nosuchorg/oauth/device_authorization"))
            .basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key))
            .form(&[("scope", "keys:read")])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_oauth_error(status, &body, "invalid_request");
    let (status, body) = json(
        app.client
            .post(&url)
            .basic_auth(&app.owner.api_key_id, Some(&app.owner.api_key))
            .json(&serde_json::json!({"scope": "keys:read"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_oauth_error(status, &body, "invalid_request");
    // A client_secret and Basic together: one method only (RFC 6749 §2.3).
    let (status, body) = authorize(&app, &app.owner, &[("client_secret", "ak_live_x")]).await;
    assert_oauth_error(status, &body, "invalid_request");
}

/// Approves `extra`'s request of `client` as `approver` and collects the tokens.
async fn approved_tokens(
    app: &TestApp,
    client: &crate::helpers::Credentials,
    approver: &str,
    extra: &[(&str, &str)],
) -> Value {
    let codes = started(app, client, extra).await;
    browser(app, &client.org, approver)
        .await
        .approve(app, str_of(&codes, "user_code"))
        .await;
    let (status, tokens) = poll(app, client, str_of(&codes, "device_code")).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

#[tokio::test]
async fn the_scope_is_what_was_asked_within_the_key_and_the_persons_role() {
    let app = spawn_app().await;
    let member = app.create_user("default", Role::Member).await;
    let admin = app.create_user("default", Role::Admin).await;

    // Asked for: narrowed to what a member can exercise.
    let tokens = approved_tokens(
        &app,
        &app.owner,
        &member.user_id,
        &[("scope", "audit:read keys:read")],
    )
    .await;
    assert_eq!(tokens["scope"], "keys:read");
    // Not asked: no scope at all, even from a key that may use keys:read, even for an owner.
    let narrow = app
        .create_scoped_key("default", &app.owner.user_id, &["keys:read"])
        .await;
    let tokens = approved_tokens(&app, &narrow, &app.owner.user_id, &[]).await;
    assert_eq!(tokens["scope"], "");
    let tokens =
        approved_tokens(&app, &narrow, &app.owner.user_id, &[("scope", "keys:read")]).await;
    assert_eq!(tokens["scope"], "keys:read");
    // The role as it is when the tokens are collected: a demotion after the approval counts.
    let codes = started(&app, &app.owner, &[("scope", "audit:read keys:read")]).await;
    let page = browser(&app, "default", &admin.user_id)
        .await
        .get(
            &app,
            &format!(
                "/v1/default/device?user_code={}",
                str_of(&codes, "user_code")
            ),
        )
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("<code>audit:read</code>"), "{page}");
    browser(&app, "default", &admin.user_id)
        .await
        .approve(&app, str_of(&codes, "user_code"))
        .await;
    app.set_user_directly(&admin.user_id, Some(Role::Member), None)
        .await;
    let (status, tokens) = poll(&app, &app.owner, str_of(&codes, "device_code")).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["scope"], "keys:read");

    // For a protected resource (RFC 8707): its scopes, its `aud`.
    register(&app, &app.owner, MCP, &["mcp:tools", "mcp:admin"], None).await;
    let tokens = approved_tokens(
        &app,
        &app.owner,
        &member.user_id,
        &[("resource", MCP), ("scope", "mcp:tools")],
    )
    .await;
    assert_eq!(tokens["scope"], "mcp:tools");
    let claims = claims_of(str_of(&tokens, "access_token"));
    assert_eq!(claims["aud"], MCP);
    assert_eq!(claims["sub"], member.user_id.as_str());
}

#[tokio::test]
async fn a_disabled_person_neither_approves_nor_gets_tokens() {
    let app = spawn_app().await;
    let person = app.create_user("default", Role::Member).await;
    let browser = browser(&app, "default", &person.user_id).await;

    // Approved, then the person is disabled: the approval gives nothing.
    let codes = started(&app, &app.owner, &[]).await;
    browser.approve(&app, str_of(&codes, "user_code")).await;
    app.set_user_directly(&person.user_id, None, Some(true))
        .await;
    let (status, body) = poll(&app, &app.owner, str_of(&codes, "device_code")).await;
    assert_oauth_error(status, &body, "invalid_grant");

    // Disabled first: the page no longer knows them, and the request stays pending.
    let codes = started(&app, &app.owner, &[]).await;
    let res = browser
        .post_raw(
            &app,
            &[
                ("csrf", browser.csrf.as_str()),
                ("user_code", str_of(&codes, "user_code")),
                ("action", "approve"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(
        res.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/v1/default/login?")
    );
    let (status, body) = poll(&app, &app.owner, str_of(&codes, "device_code")).await;
    assert_oauth_error(status, &body, "authorization_pending");
}

#[tokio::test]
async fn a_proof_at_the_token_request_binds_the_device_tokens() {
    let app = spawn_app().await;
    let key = DpopKey::es256();
    let codes = started(&app, &app.owner, &[]).await;
    let device_code = str_of(&codes, "device_code");
    browser(&app, "default", &app.owner.user_id)
        .await
        .approve(&app, str_of(&codes, "user_code"))
        .await;
    // A proof for another URL is refused, and does not spend the approval.
    let bad = key.proof(&app, "POST", "/v1/default/oauth/revoke", None);
    let (status, body) = poll_with(&app, &app.owner, device_code, Some(&bad)).await;
    assert_oauth_error(status, &body, "invalid_dpop_proof");
    let proof = key.proof(&app, "POST", "/v1/default/oauth/token", None);
    let (status, tokens) = poll_with(&app, &app.owner, device_code, Some(&proof)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "DPoP");
    let access = str_of(&tokens, "access_token");
    assert_eq!(claims_of(access)["cnf"]["jkt"], key.thumbprint().as_str());
    // Bound: useless as a Bearer token.
    assert_eq!(
        app.me("default", access).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Where the organization requires DPoP, a poll without a proof gets no tokens.
    let app = spawn_app_with(|s| s.dpop.required = true).await;
    let codes = started(&app, &app.owner, &[]).await;
    browser(&app, "default", &app.owner.user_id)
        .await
        .approve(&app, str_of(&codes, "user_code"))
        .await;
    let (status, body) = poll(&app, &app.owner, str_of(&codes, "device_code")).await;
    assert_oauth_error(status, &body, "invalid_dpop_proof");
}

#[tokio::test]
async fn metadata_advertises_the_device_flow() {
    let app = spawn_app().await;
    let (status, doc) = json(
        app.client
            .get(app.url("/v1/default/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let endpoint = app.url("/v1/default/oauth/device_authorization");
    assert_eq!(doc["device_authorization_endpoint"], endpoint.as_str());
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from(GRANT))
    );
}

#[tokio::test]
async fn codes_are_stored_only_as_digests_and_purged_after_expiry() {
    let app = spawn_app().await;
    let codes = started(&app, &app.owner, &[]).await;
    let browser = browser(&app, "default", &app.owner.user_id).await;
    let (status, _) = browser.decide(&app, "BBBB-BBBB", "approve").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let dump = app.db.dump().await;
    let user_code = str_of(&codes, "user_code");
    for secret in [
        str_of(&codes, "device_code"),
        user_code,
        &user_code.replace('-', ""),
    ] {
        assert!(!dump.contains(secret), "{secret} is stored in plain text");
    }
    assert!(!dump.contains(&browser.cookie[browser.cookie.find('=').unwrap() + 1..]));

    let later = app.now() + chrono::Duration::days(2);
    let purged = keygate::housekeeping::run_once(&app.state, later)
        .await
        .unwrap();
    assert_eq!(purged.device_codes, 1);
    assert_eq!(purged.user_code_attempts, 1);
    let (status, body) = poll(&app, &app.owner, str_of(&codes, "device_code")).await;
    assert_oauth_error(status, &body, "invalid_grant");
}
