//! `GET /v1/{org}/user/me` and the authentication every protected endpoint shares.

use std::time::Duration;

use keygate::types::Role;
use reqwest::StatusCode;

use crate::helpers::{TestApp, error_code, json, spawn_app};

/// `GET /v1/{org}/user/me` with `Bearer {token}` must answer 401 with the §6 `code` and an
/// RFC 6750 `Bearer` challenge with `error="invalid_token"`.
pub(crate) async fn assert_rejected(app: &TestApp, org: &str, token: &str, code: &str) {
    let res = app.me(org, token).await;
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), code, "{body}");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

/// A 401 `invalid_token` with a `Bearer … error="invalid_token"` challenge.
async fn assert_bearer_invalid_token(res: reqwest::Response) {
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "invalid_token", "{body}");
    assert!(challenge.starts_with("Bearer "), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
}

#[tokio::test]
async fn me_shows_the_caller() {
    let app = spawn_app().await;
    let token = app.signin(&app.owner).await;
    let (status, me) = json(app.me("default", token["id_token"].as_str().unwrap()).await).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["user_id"], app.owner.user_id.as_str());
    assert_eq!(me["org"], "default");
    assert_eq!(me["email"], "owner@keygate.local");
    assert_eq!(me["role"], "owner");
    assert_eq!(me["session_id"], token["session_id"]);
    assert_eq!(me["token_type"], "Bearer");
    assert_eq!(me["auth_method"], "bearer");
    assert!(me.get("act").is_none());
}

#[tokio::test]
async fn missing_malformed_expired_foreign_and_tampered_tokens_are_rejected() {
    let app = spawn_app().await;
    let token = app.signin(&app.owner).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // No Authorization header at all.
    let res = app
        .client
        .get(app.url("/v1/default/user/me"))
        .send()
        .await
        .unwrap();
    assert_bearer_invalid_token(res).await;

    // Another scheme.
    let res = app
        .client
        .get(app.url("/v1/default/user/me"))
        .header("authorization", format!("Token {token}"))
        .send()
        .await
        .unwrap();
    assert_bearer_invalid_token(res).await;

    assert_rejected(&app, "default", "not-a-jwt", "invalid_token").await;
    assert_rejected(&app, "default", "a.b.c", "invalid_token").await;

    // A flipped signature character.
    let sig_at = token.rfind('.').unwrap() + 1;
    let mut tampered = token.clone();
    let flipped = if &token[sig_at..=sig_at] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(sig_at..=sig_at, flipped);
    assert_rejected(&app, "default", &tampered, "invalid_token").await;

    // Claims swapped in from another token (same key, signature no longer matches).
    let member = app.create_user("default", Role::Member).await;
    let other = app.signin(&member).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = token.split('.').collect();
    let other_parts: Vec<&str> = other.split('.').collect();
    let spliced = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
    assert_rejected(&app, "default", &spliced, "invalid_token").await;

    // A token of org acme presented at org default.
    let acme = app.create_org("acme").await;
    let acme_token = app.signin(&acme).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_rejected(&app, "default", &acme_token, "invalid_token").await;
    assert_rejected(&app, "nope", &acme_token, "invalid_token").await;
    let (status, _) = json(app.me("acme", &acme_token).await).await;
    assert_eq!(status, StatusCode::OK);

    // Within the leeway it still works; past it, it has expired.
    app.clock.advance(Duration::from_secs(900 + 20));
    let (status, _) = json(app.me("default", &token).await).await;
    assert_eq!(status, StatusCode::OK);
    app.clock.advance(Duration::from_secs(15));
    assert_rejected(&app, "default", &token, "expired_token").await;
}

#[tokio::test]
async fn a_token_signed_by_a_key_keygate_never_published_is_rejected() {
    let app = spawn_app().await;
    let good = app.signin(&app.owner).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let claims: keygate::tokens::AccessClaims =
        serde_json::from_value(crate::helpers::claims_of(&good)).unwrap();
    let kek = keygate::secrets::Kek::new(&[7u8; 32]).unwrap();
    let rogue =
        keygate::keys::signing::generate(keygate::types::SigningAlg::ES256, &kek, app.now())
            .unwrap();
    let rogue_set = keygate::keys::signing::KeySet::build(&[rogue], &kek, app.now()).unwrap();
    let forged = keygate::tokens::issue(&rogue_set, &claims).unwrap();
    assert_rejected(&app, "default", &forged, "invalid_token").await;
}

#[tokio::test]
async fn disabling_the_user_or_revoking_the_key_ends_access_at_once() {
    let app = spawn_app().await;
    let member = app.create_user("default", Role::Member).await;
    let org = keygate::admin::find_org(&app.state.storage, "default")
        .await
        .unwrap();

    let token = app.signin(&member).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    keygate::storage::users::set_disabled(
        &app.state.storage,
        &org.id,
        &member.user_id,
        true,
        app.now(),
    )
    .await
    .unwrap();
    // A change on this node clears its user cache at once (as `admin::users` does).
    app.state.directory.users_changed();
    assert_rejected(&app, "default", &token, "invalid_token").await;
    keygate::storage::users::set_disabled(
        &app.state.storage,
        &org.id,
        &member.user_id,
        false,
        app.now(),
    )
    .await
    .unwrap();
    // A change on this node clears its user cache at once (as `admin::users` does).
    app.state.directory.users_changed();
    let (status, _) = json(app.me("default", &token).await).await;
    assert_eq!(status, StatusCode::OK);

    // Revoked behind the server's back (as the CLI or another node does): the server's
    // cached view of the session may lag, but never by more than the promised 5 seconds.
    keygate::admin::revoke_key(
        &app.state.storage,
        app.clock.as_ref(),
        &org,
        &member.api_key_id,
    )
    .await
    .unwrap();
    let revoked_at = std::time::Instant::now();
    loop {
        let status = app.me("default", &token).await.status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            revoked_at.elapsed() < std::time::Duration::from_secs(5),
            "still accepted 5 s after the revocation"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_rejected(&app, "default", &token, "invalid_token").await;
}

#[tokio::test]
async fn unknown_paths_methods_and_health_answer_json() {
    let app = spawn_app().await;
    let (status, body) = json(
        app.client
            .get(app.url("/v1/default/nothing"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    let (status, body) = json(
        app.client
            .get(app.url("/v1/default/user/signin_with_api_key"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(error_code(&body), "method_not_allowed");

    let res = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert!(res.headers().contains_key("x-request-id"));
    assert_eq!(res.status(), StatusCode::OK);
    let (status, body) = json(app.client.get(app.url("/readyz")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ready");
}
