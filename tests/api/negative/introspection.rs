//! Introspection's inactive answers (RFC 7662 §2.2: 200 `{"active": false}` and nothing
//! else) for a revoked session, a disabled user, a rotated refresh token and another
//! organization's tokens; and revocation by a client the token was not issued to (RFC 7009
//! §2.1: refused with 400 `unauthorized_client`, the token untouched).

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Client, client_credentials, expect_oauth_error, inactive, introspect, oauth, refresh};
use crate::admin_helpers::Session;
use crate::helpers::{Credentials, TestApp, spawn_app};

/// Asserts both tokens of `session` introspect active (the control before each change).
async fn both_active(app: &TestApp, client: &Credentials, session: &Session) {
    for (token, kind) in [
        (&session.token, "Bearer"),
        (&session.refresh_token, "refresh_token"),
    ] {
        let info = introspect(app, "default", client, token).await;
        assert_eq!(info["active"], true, "{info}");
        assert_eq!(info["token_type"], kind, "{info}");
        assert_eq!(info["sid"], session.session_id.as_str(), "{info}");
    }
}

async fn both_inactive(app: &TestApp, client: &Credentials, session: &Session, why: &str) {
    for token in [&session.token, &session.refresh_token] {
        assert_eq!(
            introspect(app, "default", client, token).await,
            inactive(),
            "{why}"
        );
    }
}

#[tokio::test]
async fn a_revoked_session_introspects_inactive() {
    let app = spawn_app().await;
    let owner = app.session(&app.owner.clone()).await;
    let member = app
        .session(&app.create_user("default", Role::Member).await)
        .await;
    both_active(&app, &app.owner, &member).await;
    app.delete_as(
        &owner.token,
        &format!("/v1/default/sessions/{}", member.session_id),
    )
    .await
    .expect(StatusCode::NO_CONTENT);
    both_inactive(&app, &app.owner, &member, "revoked session").await;
    // The member's own client sees the same.
    both_inactive(&app, &member.creds, &member, "revoked session, own client").await;
}

#[tokio::test]
async fn a_disabled_users_tokens_introspect_inactive() {
    let app = spawn_app().await;
    let owner = app.session(&app.owner.clone()).await;

    // Disabled through the admin API (which also ends the user's sessions).
    let member = app
        .session(&app.create_user("default", Role::Member).await)
        .await;
    both_active(&app, &app.owner, &member).await;
    app.patch_as(
        &owner.token,
        &format!("/v1/default/users/{}", member.creds.user_id),
        &json!({"disabled": true}),
    )
    .await
    .expect(StatusCode::OK);
    both_inactive(&app, &app.owner, &member, "disabled through the API").await;

    // Disabled while the session stays open (what a sign-in racing the disabling leaves):
    // the user check alone must make both tokens inactive, as the refresh grant and the
    // protected endpoints refuse them.
    let other = app
        .session(&app.create_user("default", Role::Member).await)
        .await;
    both_active(&app, &app.owner, &other).await;
    let org = keygate::admin::find_org(&app.state.storage, "default")
        .await
        .unwrap();
    keygate::storage::users::set_disabled(
        &app.state.storage,
        &org.id,
        &other.creds.user_id,
        true,
        app.now(),
    )
    .await
    .unwrap();
    let sessions = app
        .list_page(
            &owner.token,
            &format!("/v1/default/sessions?user_id={}", other.creds.user_id),
        )
        .await;
    assert_eq!(sessions[0]["status"], "active", "the session is still open");
    both_inactive(&app, &app.owner, &other, "disabled, session open").await;
    // Introspection reads the user at once; keygate's own endpoints see a change made
    // behind this node's back (another node, the CLI) within the revocation window.
    app.clock
        .advance(keygate::auth::revocation::STALENESS + std::time::Duration::from_secs(1));
    let (status, _) = crate::helpers::json(app.me("default", &other.token).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    expect_oauth_error(
        &refresh(&app, "default", &other.refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
}

#[tokio::test]
async fn a_rotated_refresh_token_introspects_inactive_and_its_successor_active() {
    let app = spawn_app().await;
    let member = app
        .session(&app.create_user("default", Role::Member).await)
        .await;
    both_active(&app, &app.owner, &member).await;
    let rotated = refresh(&app, "default", &member.refresh_token).await;
    let next = rotated.str("refresh_token");
    assert_ne!(next, member.refresh_token);

    assert_eq!(
        introspect(&app, "default", &app.owner, &member.refresh_token).await,
        inactive(),
        "the used refresh token"
    );
    // Asking about the used token is not a reuse: the session and its new token live on.
    let info = introspect(&app, "default", &app.owner, &next).await;
    assert_eq!(info["active"], true, "{info}");
    assert_eq!(info["sid"], member.session_id.as_str());
    refresh(&app, "default", &next).await.expect(StatusCode::OK);
}

#[tokio::test]
async fn another_organizations_tokens_introspect_inactive() {
    let app = spawn_app().await;
    let acme = app.create_org("acme").await;
    let foreign = app.session(&acme).await;
    // At its own organization the token is active (the control).
    for token in [&foreign.token, &foreign.refresh_token] {
        assert_eq!(introspect(&app, "acme", &acme, token).await["active"], true);
    }
    // At `default`, with `default`'s client: inactive and nothing else.
    for token in [&foreign.token, &foreign.refresh_token] {
        assert_eq!(
            introspect(&app, "default", &app.owner, token).await,
            inactive()
        );
    }
    // And `acme`'s client cannot introspect at `default` at all.
    let reply = oauth(
        &app,
        "default",
        "introspect",
        Client::Basic(&acme),
        &[("token", &foreign.refresh_token)],
    )
    .await;
    expect_oauth_error(&reply, StatusCode::UNAUTHORIZED, "invalid_client");
}

#[tokio::test]
async fn a_client_cannot_revoke_another_clients_tokens() {
    let app = spawn_app().await;
    let owner = app.session(&app.owner.clone()).await;
    // The victim: tokens issued to the owner's key.
    let issued: Value = client_credentials(&app, &app.owner, &[]).await;
    let access = issued["access_token"].as_str().unwrap().to_owned();
    let refresh_token = issued["refresh_token"].as_str().unwrap().to_owned();
    let session_id = issued["session_id"].as_str().unwrap().to_owned();

    // Other clients: a member's key, and another key of the same owner (RFC 7009 binds a
    // token to the client, not to the user).
    let member = app.create_user("default", Role::Member).await;
    let sibling = app.create_key("default", &app.owner.user_id).await;
    for (who, client) in [
        ("a member's key", &member),
        ("the owner's other key", &sibling),
    ] {
        for (token, kind) in [(&refresh_token, "refresh"), (&access, "access")] {
            for auth in [Client::Basic(client), Client::Post(client)] {
                let reply = oauth(&app, "default", "revoke", auth, &[("token", token)]).await;
                assert_eq!(
                    reply.status,
                    StatusCode::BAD_REQUEST,
                    "{who}, {kind}: {}",
                    reply.body
                );
                expect_oauth_error(&reply, StatusCode::BAD_REQUEST, "unauthorized_client");
            }
        }
    }

    // The victim's tokens all still work.
    for token in [&access, &refresh_token] {
        assert_eq!(
            introspect(&app, "default", &app.owner, token).await["active"],
            true
        );
    }
    let (status, body) = crate::helpers::json(app.me("default", &access).await).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let sessions = app
        .list_page(
            &owner.token,
            &format!("/v1/default/sessions?api_key_id={}", app.owner.api_key_id),
        )
        .await;
    let session = sessions
        .iter()
        .find(|s| s["session_id"] == session_id.as_str())
        .unwrap();
    assert_eq!(session["status"], "active", "{session}");
    refresh(&app, "default", &refresh_token)
        .await
        .expect(StatusCode::OK);
}

/// An acting session's refresh token introspects active exactly as long as the refresh
/// grant would take it: when the actor loses the right to act (demoted to member, the
/// session left open), it is inactive, as the refresh is refused.
#[tokio::test]
async fn an_acting_refresh_token_is_inactive_once_the_actor_may_no_longer_act() {
    let app = spawn_app().await;
    let admin = app.create_user("default", Role::Admin).await;
    let member = app.create_user("default", Role::Member).await;
    let acting = app.signin_as(&admin, &member.user_id).await;
    let refresh_token = acting["refresh_token"].as_str().unwrap();
    let active = introspect(&app, "default", &app.owner, refresh_token).await;
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["act"]["sub"], admin.user_id.as_str(), "{active}");

    // The actor demoted in the database, bypassing the admin API's session revocation.
    app.set_user_directly(&admin.user_id, Some(Role::Member), None)
        .await;
    assert_eq!(
        introspect(&app, "default", &app.owner, refresh_token).await,
        inactive(),
        "the actor may no longer act"
    );
    expect_oauth_error(
        &refresh(&app, "default", refresh_token).await,
        StatusCode::BAD_REQUEST,
        "invalid_grant",
    );
}
