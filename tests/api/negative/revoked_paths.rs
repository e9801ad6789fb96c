//! A revoked session and a disabled user are refused whichever way the token comes in:
//! Basic (same organization and cross-organization), DPoP, and Bearer with `X-ORG-ID`, each
//! with a 401 `invalid_token` and the challenge of its scheme. Basic with an `X-ORG-ID`
//! naming another organization is refused too. Trusted identity providers are read by
//! owners and admins only and changed by owners only (docs/admin-api.md).
//!
//! Session look-ups are cached per node (`auth::revocation`), but a revocation made on a
//! node clears its cache at once, so these single-node tests need no waiting.

use keygate::types::Role;
use reqwest::StatusCode;
use serde_json::json;

use super::{basic, dpop_signin, expect_unauthorized, issuer_body, me_dpop};
use crate::admin_helpers::{Reply, Session};
use crate::dpop_key::DpopKey;
use crate::helpers::{TestApp, spawn_app};

/// A member of `default` with a Bearer session and a DPoP-bound one, let into `acme` by an
/// organization-wide member grant.
struct Visitor {
    bearer: Session,
    dpop_token: String,
    dpop_key: DpopKey,
}

async fn setup(app: &TestApp) -> Visitor {
    let acme_owner = app.session(&app.create_org("acme").await).await;
    app.post_as(
        &acme_owner.token,
        "/v1/acme/cross_org_grants",
        &json!({"source_org": "default", "role": "member"}),
    )
    .await
    .expect(StatusCode::CREATED);
    let member = app.create_user("default", Role::Member).await;
    let bearer = app.session(&member).await;
    let dpop_key = DpopKey::es256();
    let dpop_token = dpop_signin(app, &member, &dpop_key).await["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    Visitor {
        bearer,
        dpop_token,
        dpop_key,
    }
}

/// Every way the visitor presents a token: (name, the scheme of the challenge, the reply).
async fn every_presentation(
    app: &TestApp,
    v: &Visitor,
) -> Vec<(&'static str, &'static str, Reply)> {
    let user = &v.bearer.creds.user_id;
    let token = &v.bearer.token;
    let bearer = format!("Bearer {token}");
    vec![
        (
            "Basic, same organization",
            "Basic",
            app.me_with(
                "default",
                &[("authorization", &basic("default", user, token))],
            )
            .await,
        ),
        (
            "Basic, cross-organization",
            "Basic",
            app.me_with("acme", &[("authorization", &basic("default", user, token))])
                .await,
        ),
        (
            "Bearer + X-ORG-ID, cross-organization",
            "Bearer",
            app.me_with(
                "acme",
                &[("authorization", &bearer), ("x-org-id", "default")],
            )
            .await,
        ),
        (
            "Bearer + X-ORG-ID, same organization",
            "Bearer",
            app.me_with(
                "default",
                &[("authorization", &bearer), ("x-org-id", "default")],
            )
            .await,
        ),
        (
            "DPoP",
            "DPoP",
            me_dpop(app, "default", &v.dpop_token, &v.dpop_key).await,
        ),
    ]
}

async fn all_accepted(app: &TestApp, v: &Visitor) {
    for (name, _, reply) in every_presentation(app, v).await {
        assert_eq!(reply.status, StatusCode::OK, "{name}: {}", reply.body);
        assert_eq!(
            reply.body["user_id"],
            v.bearer.creds.user_id.as_str(),
            "{name}"
        );
    }
}

async fn all_refused(app: &TestApp, v: &Visitor, why: &str) {
    for (name, scheme, reply) in every_presentation(app, v).await {
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{why}, {name}: {}",
            reply.body
        );
        expect_unauthorized(&reply, "invalid_token", scheme);
    }
}

fn dpop_session_id(v: &Visitor) -> String {
    crate::helpers::claims_of(&v.dpop_token)["sid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_revoked_session_is_refused_through_basic_dpop_and_x_org_id() {
    let app = spawn_app().await;
    let owner = app.session(&app.owner.clone()).await;
    let v = setup(&app).await;
    all_accepted(&app, &v).await;
    for session in [v.bearer.session_id.clone(), dpop_session_id(&v)] {
        app.delete_as(&owner.token, &format!("/v1/default/sessions/{session}"))
            .await
            .expect(StatusCode::NO_CONTENT);
    }
    all_refused(&app, &v, "revoked session").await;
}

#[tokio::test]
async fn a_disabled_user_is_refused_through_basic_dpop_and_x_org_id() {
    let app = spawn_app().await;
    let owner = app.session(&app.owner.clone()).await;

    // Disabled through the admin API.
    let v = setup(&app).await;
    all_accepted(&app, &v).await;
    app.patch_as(
        &owner.token,
        &format!("/v1/default/users/{}", v.bearer.creds.user_id),
        &json!({"disabled": true}),
    )
    .await
    .expect(StatusCode::OK);
    all_refused(&app, &v, "disabled through the API").await;

    // Only the user's flag, its sessions left open: the user check alone refuses.
    let app = spawn_app().await;
    let v = setup(&app).await;
    all_accepted(&app, &v).await;
    let org = keygate::admin::find_org(&app.state.storage, "default")
        .await
        .unwrap();
    keygate::storage::users::set_disabled(
        &app.state.storage,
        &org.id,
        &v.bearer.creds.user_id,
        true,
        app.now(),
    )
    .await
    .unwrap();
    // A change on this node clears its user cache at once (as `admin::users` does).
    app.state.directory.users_changed();
    all_refused(&app, &v, "disabled, sessions open").await;
}

#[tokio::test]
async fn basic_with_an_x_org_id_naming_another_organization_is_refused() {
    let app = spawn_app().await;
    let v = setup(&app).await;
    let user = &v.bearer.creds.user_id;
    let credential = basic("default", user, &v.bearer.token);
    for path_org in ["default", "acme"] {
        // Agreeing with the Basic username: accepted.
        app.me_with(
            path_org,
            &[("authorization", &credential), ("x-org-id", "default")],
        )
        .await
        .expect(StatusCode::OK);
        // Naming another organization, existing or not (README: 401 `invalid_token`).
        for x_org in ["acme", "nowhere"] {
            let reply = app
                .me_with(
                    path_org,
                    &[("authorization", &credential), ("x-org-id", x_org)],
                )
                .await;
            expect_unauthorized(&reply, "invalid_token", "Basic");
        }
    }
}

#[tokio::test]
async fn members_neither_read_nor_register_providers_and_admins_do_not_delete_them() {
    let app = spawn_app().await;
    let owner = app.session(&app.owner.clone()).await;
    let created = app
        .post_as(
            &owner.token,
            "/v1/default/trusted_issuers",
            &issuer_body("https://idp-a.example"),
        )
        .await;
    created.expect(StatusCode::CREATED);
    let id = created.str("id");
    let one = format!("/v1/default/trusted_issuers/{id}");
    let list = "/v1/default/trusted_issuers";

    for role in [Role::Member, Role::Service] {
        let s = app.session(&app.create_user("default", role).await).await;
        app.get_as(&s.token, list)
            .await
            .expect_error(StatusCode::FORBIDDEN, "permission_denied");
        app.get_as(&s.token, &one)
            .await
            .expect_error(StatusCode::FORBIDDEN, "permission_denied");
        app.post_as(&s.token, list, &issuer_body("https://idp-member.example"))
            .await
            .expect_error(StatusCode::FORBIDDEN, "permission_denied");
        app.delete_as(&s.token, &one)
            .await
            .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    }

    let admin = app
        .session(&app.create_user("default", Role::Admin).await)
        .await;
    // Admins may look...
    assert_eq!(
        app.get_as(&admin.token, &one).await.expect(StatusCode::OK),
        created.expect(StatusCode::CREATED)
    );
    assert_eq!(app.list_page(&admin.token, list).await.len(), 1);
    // ...but neither register nor delete.
    app.post_as(
        &admin.token,
        list,
        &issuer_body("https://idp-admin.example"),
    )
    .await
    .expect_error(StatusCode::FORBIDDEN, "permission_denied");
    app.delete_as(&admin.token, &one)
        .await
        .expect_error(StatusCode::FORBIDDEN, "permission_denied");

    // Nothing changed: the one provider is still there, as it was.
    let now = app.list_page(&owner.token, list).await;
    assert_eq!(now.len(), 1, "{now:?}");
    assert_eq!(&now[0], created.expect(StatusCode::CREATED));

    // Each refusal is in the audit log.
    let denied: Vec<String> = app
        .audit_events("default")
        .await
        .into_iter()
        .filter(|e| e.action == "permission.denied")
        .filter_map(|e| e.reason)
        .collect();
    let count = |reason: &str| denied.iter().filter(|r| *r == reason).count();
    assert_eq!(
        count("permission_denied:trusted_issuers.read"),
        4,
        "{denied:?}"
    );
    assert_eq!(
        count("permission_denied:trusted_issuers.write"),
        6,
        "{denied:?}"
    );
}
