//! A promotion never hands a secret someone else holds a rank its issuer lacked: keys
//! record who issued them, raising a user's role revokes that user's keys issued by someone
//! now below the new role (and ends their sessions), and a key issued while its owner is
//! being promoted is caught by one side or the other (docs/admin-api.md, "Who issued a
//! key").

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keygate::types::Role;
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::sync::Barrier;

use crate::admin_helpers::Session;
use crate::helpers::{
    Credentials, TestApp, error_code, json as json_of, spawn_app, spawn_app_with,
};

#[track_caller]
fn assert_revoked(outcome: (StatusCode, Option<String>), what: &str) {
    assert_eq!(
        outcome,
        (StatusCode::UNAUTHORIZED, Some("revoked_api_key".into())),
        "{what}"
    );
}

async fn promote(app: &TestApp, boss: &Session, user_id: &str, role: &str) {
    app.patch_as(
        &boss.token,
        &format!("/v1/default/users/{user_id}"),
        &json!({"role": role}),
    )
    .await
    .expect(StatusCode::OK);
}

/// A key of `user_id` created over HTTP by the holder of `token`.
async fn create_for(app: &TestApp, token: &str, user_id: &str) -> Credentials {
    let reply = app
        .post_as(
            token,
            "/v1/default/api_keys",
            &json!({"name": "issued", "user_id": user_id}),
        )
        .await;
    reply.expect(StatusCode::CREATED);
    app.creds_from(&reply)
}

/// `api_key.revoked` events with the promotion's reason, by key id.
async fn revoked_for_rank(app: &TestApp) -> Vec<String> {
    app.audit_events("default")
        .await
        .into_iter()
        .filter(|e| {
            e.action == "api_key.revoked" && e.reason.as_deref() == Some("owner_outranks_issuer")
        })
        .filter_map(|e| e.target_id)
        .collect()
}

#[tokio::test]
async fn promoting_a_member_above_the_admin_who_issued_its_key_revokes_that_key() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let admin = app
        .session(&app.create_user("default", Role::Admin).await)
        .await;
    // The member's key made by the operator (the CLI's code path).
    let by_cli = app.create_user("default", Role::Member).await;
    let member = app.session(&by_cli).await;
    let own = create_for(&app, &member.token, &by_cli.user_id).await;
    // The admin may create the member's key (it outranks the member) and keeps the secret.
    let admins_copy = create_for(&app, &admin.token, &by_cli.user_id).await;
    let admins_session = app.session(&admins_copy).await;
    app.me("default", &admins_session.token)
        .await
        .error_for_status()
        .expect("the admin-issued key works while its owner is a member");

    // Member → admin: the admin ranks as high, the key stays.
    promote(&app, &boss, &by_cli.user_id, "admin").await;
    assert_eq!(app.signin_outcome(&admins_copy).await.0, StatusCode::OK);

    // Admin → owner: the admin's copy no longer signs in, nor does its session work.
    promote(&app, &boss, &by_cli.user_id, "owner").await;
    assert_revoked(app.signin_outcome(&admins_copy).await, "admin's copy");
    let (status, body) = json_of(app.me("default", &admins_session.token).await).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_code(&body), "invalid_token", "{body}");

    // The user's own key and the operator's survive.
    assert_eq!(app.signin_outcome(&own).await.0, StatusCode::OK);
    assert_eq!(app.signin_outcome(&by_cli).await.0, StatusCode::OK);
    assert_eq!(revoked_for_rank(&app).await, vec![admins_copy.api_key_id]);
}

#[tokio::test]
async fn promotion_revokes_a_key_an_admin_rotated_but_not_the_old_one() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let admin = app
        .session(&app.create_user("default", Role::Admin).await)
        .await;
    let member = app.create_user("default", Role::Member).await;
    let rotated = app
        .post_as(
            &admin.token,
            &format!("/v1/default/api_keys/{}/rotate", member.api_key_id),
            &json!({"grace_period": "1h"}),
        )
        .await;
    rotated.expect(StatusCode::CREATED);
    let admins_copy = app.creds_from(&rotated);
    assert_eq!(app.signin_outcome(&admins_copy).await.0, StatusCode::OK);

    promote(&app, &boss, &member.user_id, "owner").await;
    assert_revoked(
        app.signin_outcome(&admins_copy).await,
        "rotated by the admin",
    );
    // The operator's key, in its grace period, is the member's own: it keeps its grace.
    assert_eq!(app.signin_outcome(&member).await.0, StatusCode::OK);

    // An owner's rotation of the now-owner's key survives a later promotion test: owners
    // rank as high as anyone.
    let by_owner = app
        .post_as(
            &boss.token,
            &format!("/v1/default/api_keys/{}/rotate", member.api_key_id),
            &json!({"grace_period": "1h"}),
        )
        .await;
    by_owner.expect(StatusCode::CREATED);
    assert_eq!(
        app.signin_outcome(&app.creds_from(&by_owner)).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_key_issued_while_acting_for_a_member_counts_as_the_actors() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let admin_creds = app.create_user("default", Role::Admin).await;
    let member = app.create_user("default", Role::Member).await;
    // The admin signs in acting for the member and creates the member's "own" key.
    let body = app.signin_as(&admin_creds, &member.user_id).await;
    let acting = body["id_token"].as_str().expect("id_token").to_owned();
    let held_by_admin = create_for(&app, &acting, &member.user_id).await;

    promote(&app, &boss, &member.user_id, "owner").await;
    assert_revoked(
        app.signin_outcome(&held_by_admin).await,
        "created by an admin acting for the member",
    );
    assert_eq!(app.signin_outcome(&member).await.0, StatusCode::OK);
}

/// The issuer's rank is the lower of its role at issuance and its role now: an owner who
/// issued a member's key and was then demoted to admin loses it when the member becomes
/// owner; a key issued by an owner who is still one survives.
#[tokio::test]
async fn an_issuer_demoted_since_issuance_is_judged_by_its_role_now() {
    let app = spawn_app().await;
    let boss = app.session(&app.owner).await;
    let ex_owner = app
        .session(&app.create_user("default", Role::Owner).await)
        .await;
    let member = app.create_user("default", Role::Member).await;
    let kept = create_for(&app, &ex_owner.token, &member.user_id).await;
    let by_boss = create_for(&app, &boss.token, &member.user_id).await;
    promote(&app, &boss, &ex_owner.creds.user_id, "admin").await;

    promote(&app, &boss, &member.user_id, "owner").await;
    assert_revoked(
        app.signin_outcome(&kept).await,
        "issued by an owner since demoted",
    );
    assert_eq!(app.signin_outcome(&by_boss).await.0, StatusCode::OK);
}

/// A caller from another organization is judged by the role its grant gave, not the one
/// it holds at home: an owner of `default` with an `admin` grant in `acme` loses the key it
/// created for an acme member when that member becomes an acme owner.
#[tokio::test]
async fn a_cross_organization_issuer_is_judged_by_its_grants_role() {
    let app = spawn_app().await;
    let acme_owner = app.session(&app.create_org("acme").await).await;
    let member = app.create_user("acme", Role::Member).await;
    let visitor = app.session(&app.owner).await;
    app.post_as(
        &acme_owner.token,
        "/v1/acme/cross_org_grants",
        &json!({"source_org": "default", "user_id": visitor.creds.user_id, "role": "admin"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!(
            "default_{}:{}",
            visitor.creds.user_id, visitor.token
        ))
    );
    let reply = app
        .send(
            app.client
                .post(app.url("/v1/acme/api_keys"))
                .header("authorization", basic)
                .json(&json!({"name": "visitor's", "user_id": member.user_id})),
        )
        .await;
    reply.expect(StatusCode::CREATED);
    let held_by_visitor = Credentials {
        org: "acme".into(),
        ..app.creds_from(&reply)
    };
    assert_eq!(app.signin_outcome(&held_by_visitor).await.0, StatusCode::OK);

    app.patch_as(
        &acme_owner.token,
        &format!("/v1/acme/users/{}", member.user_id),
        &json!({"role": "owner"}),
    )
    .await
    .expect(StatusCode::OK);
    assert_revoked(
        app.signin_outcome(&held_by_visitor).await,
        "issued through an admin grant",
    );
    assert_eq!(app.signin_outcome(&member).await.0, StatusCode::OK);
}

const ROUNDS: usize = 20;

/// An admin creates a key of a member while an owner promotes that member to owner. Either
/// order is fine, but afterwards no key the admin got back signs in: the creation re-reads
/// the owner's role after storing the key (403 `permission_denied` if it rose), and the
/// promotion revokes what it finds once committed.
#[tokio::test]
async fn a_key_created_while_its_owner_is_promoted_never_outlives_the_promotion() {
    let app = Arc::new(spawn_app_with(|s| s.server.workers = Some(4)).await);
    let boss = app.session(&app.owner).await;
    let admin = app
        .session(&app.create_user("default", Role::Admin).await)
        .await;
    let (mut created, mut refused) = (0, 0);
    for round in 0..ROUNDS {
        let member = app.create_user("default", Role::Member).await;
        let barrier = Arc::new(Barrier::new(2));
        let create = {
            let (app, barrier) = (app.clone(), barrier.clone());
            let req = app
                .admin_request(Method::POST, "/v1/default/api_keys", &admin.token)
                .json(&json!({"name": "race", "user_id": member.user_id}));
            tokio::spawn(async move {
                barrier.wait().await;
                app.send(req).await
            })
        };
        let promotion = {
            let (app, barrier) = (app.clone(), barrier.clone());
            let req = app
                .admin_request(
                    Method::PATCH,
                    &format!("/v1/default/users/{}", member.user_id),
                    &boss.token,
                )
                .json(&json!({"role": "owner"}));
            tokio::spawn(async move {
                barrier.wait().await;
                app.send(req).await
            })
        };
        let (create, promotion) = (create.await.unwrap(), promotion.await.unwrap());
        promotion.expect(StatusCode::OK);
        if create.status == StatusCode::CREATED {
            created += 1;
            assert_revoked(
                app.signin_outcome(&app.creds_from(&create)).await,
                &format!("round {round}: the admin's secret"),
            );
        } else {
            refused += 1;
            create.expect_error(StatusCode::FORBIDDEN, "permission_denied");
        }
        // The promoted owner's operator-issued key is untouched.
        assert_eq!(app.signin_outcome(&member).await.0, StatusCode::OK);
    }
    eprintln!("{created} created then revoked, {refused} refused");
}
