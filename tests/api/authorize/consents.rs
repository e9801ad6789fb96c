//! Remembered consent: a request within it skips the page, `prompt=consent` shows it, a
//! wider request shows it again; withdrawing consents shows it again and ends the sessions;
//! who may list and withdraw whose consents.

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::Value;

use super::{
    Pkce, approve, authorize, exchange, location, oauth_error, public_client, query, refresh,
    register, request, sign_in, token_of, tokens,
};
use crate::helpers::{Credentials, TestApp, error_code, json, spawn_app};

async fn consents(app: &TestApp, caller: &Credentials, user_id: &str) -> (StatusCode, Value) {
    let token = token_of(app, caller).await;
    json(
        app.client
            .get(app.url(&format!("/v1/{}/users/{user_id}/consents", caller.org)))
            .bearer_auth(token)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn withdraw(
    app: &TestApp,
    caller: &Credentials,
    user_id: &str,
    client_id: Option<&str>,
) -> reqwest::Response {
    let token = token_of(app, caller).await;
    let mut req = app
        .client
        .delete(app.url(&format!("/v1/{}/users/{user_id}/consents", caller.org)))
        .bearer_auth(token);
    if let Some(client_id) = client_id {
        req = req.query(&[("client_id", client_id)]);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn a_remembered_consent_skips_the_page_unless_asked_for_or_exceeded() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let person = sign_in(&app, "default", &app.owner.user_id).await;
    let pkce = Pkce::new();
    let params = request(&client, &pkce, &[("scope", "keys:read")]);
    approve(&app, "default", &person, &params).await;

    // Within the consent: straight back to the client with a code, and the code works.
    let res = authorize(&app, "default", Some(&person), &params).await;
    let back = query(&location(&res));
    assert_eq!(back["state"], "st-8f3a");
    let (status, body) =
        exchange(&app, "default", &client, &back["code"], &pkce.verifier, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let narrower = request(&client, &pkce, &[("scope", "")]);
    assert!(
        query(&location(
            &authorize(&app, "default", Some(&person), &narrower).await
        ))
        .contains_key("code")
    );
    let remembered = app
        .audit_events("default")
        .await
        .into_iter()
        .filter(|e| e.action == "authorization.approved")
        .filter(|e| e.reason.as_deref() == Some("remembered_consent"))
        .count();
    assert_eq!(remembered, 2);

    // prompt=consent, a wider scope, another client or another person: the page.
    let asked = request(
        &client,
        &pkce,
        &[("scope", "keys:read"), ("prompt", "consent")],
    );
    let wider = request(&client, &pkce, &[("scope", "keys:read keys:write")]);
    let other_client = register(&app, &app.owner, "none", "https://other.example/cb").await;
    let other = request(&other_client, &pkce, &[("scope", "keys:read")]);
    for (name, params) in [
        ("prompt=consent", &asked),
        ("wider", &wider),
        ("another client", &other),
    ] {
        let res = authorize(&app, "default", Some(&person), params).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}: the consent page");
    }
    let admin = app.create_user("default", Role::Admin).await;
    let someone_else = sign_in(&app, "default", &admin.user_id).await;
    assert_eq!(
        authorize(&app, "default", Some(&someone_else), &params)
            .await
            .status(),
        StatusCode::OK
    );

    // Approving the wider request remembers both.
    approve(&app, "default", &person, &wider).await;
    for params in [&params, &wider] {
        assert!(
            query(&location(
                &authorize(&app, "default", Some(&person), params).await
            ))
            .contains_key("code")
        );
    }
    let (status, list) = consents(&app, &app.owner, &app.owner.user_id).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 1, "{list}");
    assert_eq!(data[0]["client_id"], client.id.as_str());
    assert_eq!(data[0]["client_name"], "Agent none");
    assert_eq!(data[0]["scope"], "keys:read keys:write");
    assert_eq!(data[0]["resources"], serde_json::json!([]));
    assert!(data[0]["created_at"].is_string() && data[0]["updated_at"].is_string());
    assert!(list["next_cursor"].is_null());
}

#[tokio::test]
async fn withdrawing_consents_shows_the_page_again_and_ends_the_sessions() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let other_client = register(&app, &app.owner, "none", "https://other.example/cb").await;
    let member = app.create_user("default", Role::Member).await;
    let person = sign_in(&app, "default", &member.user_id).await;
    let first = tokens(&app, &client, &person).await;
    let second = tokens(&app, &other_client, &person).await;
    // The member's own API-key session is not a browser client's: it stays.
    let own = app.signin(&member).await;

    // Only the named client's consent and sessions.
    let res = withdraw(&app, &member, &member.user_id, Some(&client.id)).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (status, err) = refresh(
        &app,
        "default",
        Some(&client),
        first["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (status, ok) = refresh(
        &app,
        "default",
        Some(&other_client),
        second["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{ok}");
    let pkce = Pkce::new();
    let res = authorize(
        &app,
        "default",
        Some(&person),
        &request(&client, &pkce, &[]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "the page again");
    let res = authorize(
        &app,
        "default",
        Some(&person),
        &request(&other_client, &pkce, &[]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "still remembered");

    // All of them.
    let res = withdraw(&app, &app.owner, &member.user_id, None).await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (status, err) = refresh(
        &app,
        "default",
        Some(&other_client),
        ok["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (status, oauth_error(&err)),
        (StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let (_, list) = consents(&app, &member, &member.user_id).await;
    assert_eq!(list["data"], serde_json::json!([]));
    let res = authorize(
        &app,
        "default",
        Some(&person),
        &request(&other_client, &pkce, &[]),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK, "the page again");
    let (status, _) = json(app.me("default", own["id_token"].as_str().unwrap()).await).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an API key's session is not a consent's"
    );
    let (status, _) = json(
        app.client
            .post(app.url("/v1/default/oauth/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", own["refresh_token"].as_str().unwrap()),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let withdrawn = app
        .audit_events("default")
        .await
        .into_iter()
        .filter(|e| e.action == "consent.revoked")
        .count();
    assert_eq!(withdrawn, 2);
}

#[tokio::test]
async fn a_user_or_an_admin_not_outranked_may_see_and_withdraw_consents() {
    let app = spawn_app().await;
    let member = app.create_user("default", Role::Member).await;
    let other_member = app.create_user("default", Role::Member).await;
    let admin = app.create_user("default", Role::Admin).await;
    let owner = &app.owner;
    // (caller, target, allowed)
    let cases = [
        (&member, &member.user_id, true),
        (&member, &other_member.user_id, false),
        (&member, &owner.user_id, false),
        (&admin, &member.user_id, true),
        (&admin, &admin.user_id, true),
        (&admin, &owner.user_id, false),
        (owner, &admin.user_id, true),
        (owner, &owner.user_id, true),
    ];
    for (caller, target, allowed) in cases {
        let (status, body) = consents(&app, caller, target).await;
        let res = withdraw(&app, caller, target, None).await;
        if allowed {
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(res.status(), StatusCode::NO_CONTENT);
        } else {
            assert_eq!(
                (status, error_code(&body)),
                (StatusCode::FORBIDDEN, "permission_denied")
            );
            assert_eq!(res.status(), StatusCode::FORBIDDEN);
        }
    }
    let (status, body) = consents(&app, owner, "usr_nobody").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
    // Another organization's user is not found either.
    let acme = app.create_org("acme").await;
    let (status, _) = consents(&app, owner, &acme.user_id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // The scope each needs.
    let reader = app
        .create_scoped_key("default", &owner.user_id, &["keys:read"])
        .await;
    let (status, body) = consents(&app, &reader, &member.user_id).await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::FORBIDDEN, "insufficient_scope")
    );
    assert_eq!(
        withdraw(&app, &reader, &member.user_id, None)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn a_member_cannot_be_made_to_approve_by_another_persons_consent() {
    let app = spawn_app().await;
    let client = public_client(&app).await;
    let member = app.create_user("default", Role::Member).await;
    let person = sign_in(&app, "default", &member.user_id).await;
    let admin = app.create_user("default", Role::Admin).await;
    let admin_person = sign_in(&app, "default", &admin.user_id).await;
    let pkce = Pkce::new();
    // The admin approves audit:read; the member's request for it is still beyond their role.
    let params = request(&client, &pkce, &[("scope", "audit:read")]);
    approve(&app, "default", &admin_person, &params).await;
    let res = authorize(&app, "default", Some(&person), &params).await;
    assert_eq!(query(&location(&res))["error"], "invalid_scope");
}
