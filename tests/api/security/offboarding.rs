//! Offboarding is total: disabling, deleting or demoting a user ends every session in which
//! it is the subject or the actor, on every node within the revocation window, and a
//! refresh re-checks the key, the key's owner and the actor's right to act.

use std::time::Duration;

use keygate::auth::revocation::STALENESS;
use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::dpop_key::DpopKey;
use crate::helpers::{Credentials, FLEET_URL, TestApp, json, spawn_app_with};

async fn me_at(app: &TestApp, base: &str, token: &str) -> reqwest::Response {
    app.client
        .get(format!("{base}/v1/default/user/me"))
        .bearer_auth(token)
        .send()
        .await
        .expect("me request")
}

/// Asserts `token` is refused at `base` with 401 `invalid_token` and a Bearer challenge.
async fn assert_refused(app: &TestApp, base: &str, token: &str, label: &str) {
    let res = me_at(app, base, token).await;
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let (status, body) = json(res).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{label}: {body}");
    assert_eq!(body["error"]["code"], "invalid_token", "{label}: {body}");
    assert!(
        challenge.starts_with("Bearer ") && challenge.contains("error=\"invalid_token\""),
        "{label}: {challenge}"
    );
}

async fn assert_accepted(app: &TestApp, base: &str, token: &str, label: &str) {
    let (status, body) = json(me_at(app, base, token).await).await;
    assert_eq!(status, StatusCode::OK, "{label}: {body}");
}

/// `grant_type=refresh_token` at `base`: the status and body.
async fn refresh_at(app: &TestApp, base: &str, refresh_token: &str) -> (StatusCode, Value) {
    json(
        app.client
            .post(format!("{base}/v1/default/oauth/token"))
            .form(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ])
            .send()
            .await
            .expect("token request"),
    )
    .await
}

async fn assert_refresh_refused(app: &TestApp, refresh_token: &str, label: &str) {
    let (status, body) = refresh_at(app, &app.address, refresh_token).await;
    assert_eq!(
        (status, body["error"].as_str().unwrap_or_default()),
        (StatusCode::BAD_REQUEST, "invalid_grant"),
        "{label}: {body}"
    );
}

/// An access token and refresh token of one session.
struct Signed {
    access: String,
    refresh: String,
}

async fn sign_in_as(app: &TestApp, creds: &Credentials, user_id: &str) -> Signed {
    let body = app.signin_as(creds, user_id).await;
    Signed {
        access: body["id_token"].as_str().expect("id_token").to_owned(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh_token")
            .to_owned(),
    }
}

#[derive(Clone, Copy, Debug)]
enum Offboard {
    Disable,
    Delete,
    DemoteToMember,
}

/// Admin A acts for member U (and also holds a session of its own); the owner offboards A.
/// At the node that did it A's tokens stop at once, at another node once the revocation
/// window has passed; no refresh token of those sessions refreshes. U's own session lives.
async fn offboarding_ends_the_sessions_a_user_acts_in(how: Offboard) {
    let app = spawn_app_with(|s| s.server.public_url = Some(FLEET_URL.into())).await;
    let other = app.second_node().await;
    let owner = app.session(&app.owner).await;
    let a = app.create_user("default", Role::Admin).await;
    let u = app.create_user("default", Role::Member).await;

    let acting = sign_in_as(&app, &a, &u.user_id).await;
    let own = sign_in_as(&app, &a, &a.user_id).await;
    let bystander = sign_in_as(&app, &u, &u.user_id).await;
    let me = app.me("default", &acting.access).await;
    let (status, body) = json(me).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["user_id"], u.user_id.as_str(), "{body}");
    // The other node has looked at both of A's sessions (and caches what it saw).
    assert_accepted(&app, &other, &acting.access, "acting, other node, before").await;
    assert_accepted(&app, &other, &own.access, "own, other node, before").await;

    let path = format!("/v1/default/users/{}", a.user_id);
    let reply = match how {
        Offboard::Disable => {
            app.patch_as(&owner.token, &path, &json!({"disabled": true}))
                .await
        }
        Offboard::Delete => app.delete_as(&owner.token, &path).await,
        Offboard::DemoteToMember => {
            app.patch_as(&owner.token, &path, &json!({"role": "member"}))
                .await
        }
    };
    assert!(reply.status.is_success(), "{how:?}: {}", reply.body);

    let label = format!("{how:?}");
    // This node forgets its cached sessions at once.
    assert_refused(&app, &app.address, &acting.access, &label).await;
    assert_refused(&app, &app.address, &own.access, &label).await;
    // Another node within the revocation window.
    app.clock.advance(STALENESS + Duration::from_secs(1));
    assert_refused(&app, &other, &acting.access, &label).await;
    assert_refused(&app, &other, &own.access, &label).await;
    assert_refresh_refused(&app, &acting.refresh, &label).await;
    assert_refresh_refused(&app, &own.refresh, &label).await;
    // The user A acted for keeps its own session.
    assert_accepted(&app, &app.address, &bystander.access, &label).await;
    let (status, body) = refresh_at(&app, &other, &bystander.refresh).await;
    assert_eq!(status, StatusCode::OK, "{label}: {body}");
}

#[tokio::test]
async fn disabling_an_actor_ends_the_sessions_it_acts_in() {
    offboarding_ends_the_sessions_a_user_acts_in(Offboard::Disable).await;
}

#[tokio::test]
async fn deleting_an_actor_ends_the_sessions_it_acts_in() {
    offboarding_ends_the_sessions_a_user_acts_in(Offboard::Delete).await;
}

#[tokio::test]
async fn demoting_an_actor_ends_the_sessions_it_acts_in() {
    offboarding_ends_the_sessions_a_user_acts_in(Offboard::DemoteToMember).await;
}

/// Admin A acts for member U; the owner promotes U to owner. The acting session would now
/// carry owner rights to A (the caller's rights are U's stored role), so a promotion ends
/// the sessions in which someone acts for U, at once on this node and within the window on
/// the other, and none of them refreshes; U's own session goes on, with its new rank.
#[tokio::test]
async fn promoting_a_subject_ends_the_sessions_an_admin_acts_in_for_it() {
    let app = spawn_app_with(|s| s.server.public_url = Some(FLEET_URL.into())).await;
    let other = app.second_node().await;
    let owner = app.session(&app.owner).await;
    let a = app.create_user("default", Role::Admin).await;
    let u = app.create_user("default", Role::Member).await;
    let acting = sign_in_as(&app, &a, &u.user_id).await;
    let own = sign_in_as(&app, &u, &u.user_id).await;
    assert_accepted(&app, &other, &acting.access, "acting, other node, before").await;

    let path = format!("/v1/default/users/{}", u.user_id);
    let reply = app
        .patch_as(&owner.token, &path, &json!({"role": "owner"}))
        .await;
    assert!(reply.status.is_success(), "{}", reply.body);

    assert_refused(
        &app,
        &app.address,
        &acting.access,
        "acting, after promotion",
    )
    .await;
    app.clock.advance(STALENESS + Duration::from_secs(1));
    assert_refused(&app, &other, &acting.access, "acting, other node").await;
    assert_refresh_refused(&app, &acting.refresh, "acting refresh").await;
    assert_accepted(&app, &app.address, &own.access, "U's own, after promotion").await;
    assert_accepted(&app, &other, &own.access, "U's own, other node").await;
    refresh_ok(&app, &own.refresh, "U's own refresh").await;
}

/// A user's role and whether it is disabled.
type UserState = (Role, bool);

#[tokio::test]
async fn a_refresh_rechecks_the_key_owner_and_the_actors_right_to_act() {
    let app = spawn_app_with(|_| {}).await;
    let a = app.create_user("default", Role::Admin).await;
    let u = app.create_user("default", Role::Member).await;
    let acting = sign_in_as(&app, &a, &u.user_id).await;
    let mut rt = refresh_ok(&app, &acting.refresh, "as issued").await;

    // (what is written to the database, what to the actor A / the subject U)
    let cases: [(&str, UserState, UserState); 4] = [
        (
            "key owner (the actor) disabled",
            (Role::Admin, true),
            (Role::Member, false),
        ),
        (
            "actor demoted to member",
            (Role::Member, false),
            (Role::Member, false),
        ),
        (
            "actor demoted to service",
            (Role::Service, false),
            (Role::Member, false),
        ),
        (
            "subject promoted above the actor",
            (Role::Admin, false),
            (Role::Owner, false),
        ),
    ];
    for (label, actor, subject) in cases {
        app.set_user_directly(&a.user_id, Some(actor.0), Some(actor.1))
            .await;
        app.set_user_directly(&u.user_id, Some(subject.0), Some(subject.1))
            .await;
        assert_refresh_refused(&app, &rt, label).await;
        // A refused refresh does not use the token up: restored, it refreshes again.
        app.set_user_directly(&a.user_id, Some(Role::Admin), Some(false))
            .await;
        app.set_user_directly(&u.user_id, Some(Role::Member), Some(false))
            .await;
        rt = refresh_ok(&app, &rt, label).await;
    }

    // An owner acting for an admin keeps its right; an owner demoted to admin acting for
    // an owner does not.
    let o = app.create_user("default", Role::Owner).await;
    let target = app.create_user("default", Role::Owner).await;
    let acting = sign_in_as(&app, &o, &target.user_id).await;
    app.set_user_directly(&o.user_id, Some(Role::Admin), Some(false))
        .await;
    assert_refresh_refused(
        &app,
        &acting.refresh,
        "owner demoted to admin, subject owner",
    )
    .await;
    app.set_user_directly(&target.user_id, Some(Role::Admin), Some(false))
        .await;
    refresh_ok(
        &app,
        &acting.refresh,
        "owner, now admin, acting for an admin",
    )
    .await;
}

/// Refreshes, expecting success; returns the new refresh token.
async fn refresh_ok(app: &TestApp, refresh_token: &str, label: &str) -> String {
    let (status, body) = refresh_at(app, &app.address, refresh_token).await;
    assert_eq!(status, StatusCode::OK, "{label}: {body}");
    body["refresh_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_dpop_bound_refresh_rechecks_the_actor_too() {
    let app = spawn_app_with(|_| {}).await;
    let owner = app.session(&app.owner).await;
    let a = app.create_user("default", Role::Admin).await;
    let u = app.create_user("default", Role::Member).await;
    let key = DpopKey::es256();
    let signin_path = "/v1/default/user/signin_with_api_key";
    let token_path = "/v1/default/oauth/token";
    let (status, body) = json(
        app.client
            .post(app.url(signin_path))
            .header("x-api-key", &a.api_key)
            .header("x-api-key-id", &a.api_key_id)
            .header("x-user-id", &u.user_id)
            .header("dpop", key.proof(&app, "POST", signin_path, None))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["token_type"], "DPoP", "{body}");
    let rt = body["refresh_token"].as_str().unwrap().to_owned();
    let refresh = || async {
        json(
            app.client
                .post(app.url(token_path))
                .header("dpop", key.proof(&app, "POST", token_path, None))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .unwrap(),
        )
        .await
    };
    let (status, body) = refresh().await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let invalid_grant = (StatusCode::BAD_REQUEST, "invalid_grant");
    app.set_user_directly(&a.user_id, Some(Role::Admin), Some(true))
        .await;
    let (status, body) = refresh().await;
    assert_eq!(
        (status, body["error"].as_str().unwrap_or_default()),
        invalid_grant,
        "{body}"
    );
    app.set_user_directly(&a.user_id, Some(Role::Member), Some(false))
        .await;
    let (status, body) = refresh().await;
    assert_eq!(
        (status, body["error"].as_str().unwrap_or_default()),
        invalid_grant,
        "{body}"
    );
    app.set_user_directly(&a.user_id, Some(Role::Admin), Some(false))
        .await;
    let (status, body) = refresh().await;
    assert_eq!(status, StatusCode::OK, "restored: {body}");

    // Disabled through the API: the session itself ends.
    app.patch_as(
        &owner.token,
        &format!("/v1/default/users/{}", a.user_id),
        &json!({"disabled": true}),
    )
    .await
    .expect(StatusCode::OK);
    app.set_user_directly(&a.user_id, Some(Role::Admin), Some(false))
        .await;
    let (status, body) = refresh().await;
    assert_eq!(
        (status, body["error"].as_str().unwrap_or_default()),
        invalid_grant,
        "{body}"
    );
}
